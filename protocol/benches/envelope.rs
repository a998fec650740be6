//! Cost of the envelope path (DESIGN.md §6–7): the Ed25519 signature should be the only
//! significant cost of sealing and opening an alert.
//!
//! Run: `CARGO_TARGET_DIR=/work/target-bench cargo bench -p alertmesh-protocol --bench envelope`.
//! Medians land in `$CARGO_TARGET_DIR/criterion/<group>/<bench>/new/estimates.json`;
//! `BENCHMARKS.md` at the repository root records one run.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use alertmesh_protocol::alert::{Alert, Tlp};
use alertmesh_protocol::bootstrap::{Network, simple_plan};
use alertmesh_protocol::envelope::{Draft, Kind, SignedEnvelope, decode_content};
use alertmesh_protocol::ids::{AgreementPublicKey, EnvelopeId, TopicId, sha256, tagged, tags};
use alertmesh_protocol::{
    AgreementKey, CertDirectory, CharterChain, Content, Context, KeyPackage, MemoryChains,
    SenderKey, Source, Validator, Verdict,
};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use rand_chacha08::ChaCha20Rng;
use rand_chacha08::rand_core::SeedableRng;
use std::hint::black_box;
use std::time::Duration;

const NOW_MS: u64 = 1_700_000_000_000;
/// Plaintext size of the benchmarked alert.
const ALERT_BYTES: usize = 1024;

/// An alert whose encoding is exactly [`ALERT_BYTES`] long.
fn alert_1k() -> Vec<u8> {
    let mut alert = Alert::example(NOW_MS);
    alert.description = String::new();
    alert.observables.truncate(2);
    let base = Content::Alert(alert.clone()).encode().len();
    alert.description = "x".repeat(ALERT_BYTES - base);
    let bytes = Content::Alert(alert).encode();
    assert_eq!(bytes.len(), ALERT_BYTES);
    bytes
}

struct Fixture {
    network: Network,
    topic: TopicId,
    sender_key: SenderKey,
    plaintext: Vec<u8>,
    envelope: SignedEnvelope,
}

fn draft(f_topic: TopicId, network: &Network) -> Draft {
    Draft {
        network_id: network.genesis.charter().network_id,
        topic_id: f_topic,
        seq: 1,
        prev: EnvelopeId::default(),
        charter_version: 1,
        timestamp_ms: NOW_MS,
        kind: Kind::Alert,
        key_epoch: 1,
        tlp: Tlp::Amber,
    }
}

fn fixture() -> Fixture {
    let mut rng = ChaCha20Rng::seed_from_u64(42);
    let network = simple_plan(7, NOW_MS).build(&mut rng);
    let topic = TopicId::derive(&network.genesis.charter().network_id, "all");
    let sender_key = SenderKey::generate(1, &mut rng);
    let plaintext = alert_1k();
    let author = &network.orgs[0].nodes[0].key;
    let envelope = SignedEnvelope::seal_encrypted(
        author,
        &draft(topic, &network),
        &sender_key,
        &plaintext,
        &mut rng,
    )
    .unwrap();
    Fixture {
        network,
        topic,
        sender_key,
        plaintext,
        envelope,
    }
}

fn envelope_benches(c: &mut Criterion) {
    let f = fixture();
    let node = &f.network.orgs[0].nodes[0];
    let mut rng = ChaCha20Rng::seed_from_u64(7);

    // The exact message an envelope signature covers: tag ‖ 0 ‖ header ‖ ciphertext.
    let message = tagged(tags::ENVELOPE, f.envelope.signed_bytes());
    let signing = SigningKey::from_bytes(&node.key.secret_bytes());
    let verifying = VerifyingKey::from_bytes(node.key.public().as_bytes()).unwrap();
    let signature = signing.sign(&message);

    // Each operation runs right after the raw signature operation it is compared with,
    // so that the ratios see similar machine load.
    let mut g = c.benchmark_group("envelope");
    g.throughput(Throughput::Elements(1));

    g.bench_function("ed25519_sign", |b| {
        b.iter(|| signing.sign(black_box(&message)))
    });

    let d = draft(f.topic, &f.network);
    g.bench_function("seal", |b| {
        b.iter(|| {
            SignedEnvelope::seal_encrypted(
                &node.key,
                black_box(&d),
                &f.sender_key,
                black_box(&f.plaintext),
                &mut rng,
            )
            .unwrap()
        })
    });

    g.bench_function("ed25519_verify_strict", |b| {
        b.iter(|| {
            verifying
                .verify_strict(black_box(&message), black_box(&signature))
                .unwrap()
        })
    });
    let bytes = f.envelope.as_bytes().to_vec();
    g.bench_function("open", |b| {
        b.iter(|| {
            let env = SignedEnvelope::decode(black_box(&bytes), 256 * 1024).unwrap();
            env.verify_signature().unwrap();
            env.open(&f.sender_key).unwrap()
        })
    });

    let pinned = f.network.genesis_hash();
    let charters = CharterChain::from_genesis(f.network.genesis.clone(), &pinned).unwrap();
    let mut certs = CertDirectory::default();
    for (_, n) in f.network.nodes() {
        certs
            .insert(n.cert.clone(), charters.current().charter())
            .unwrap();
    }
    let chains = MemoryChains::default();
    let ctx = Context {
        charters: &charters,
        certs: &certs,
        chains: &chains,
        now_ms: NOW_MS,
    };
    let mut validator = Validator::new();
    assert!(matches!(
        validator.validate(&ctx, &bytes, Source::Sync),
        Verdict::Accept(_)
    ));
    g.bench_function("validate", |b| {
        b.iter(
            || match validator.validate(&ctx, black_box(&bytes), Source::Sync) {
                Verdict::Accept(a) => a,
                other => panic!("{other:?}"),
            },
        )
    });
    g.finish();

    // Where `open` spends its time beyond the signature check.
    let mut g = c.benchmark_group("open_parts");
    g.throughput(Throughput::Elements(1));
    let env = SignedEnvelope::decode(&bytes, 256 * 1024).unwrap();
    g.bench_function("decode", |b| {
        b.iter(|| SignedEnvelope::decode(black_box(&bytes), 256 * 1024).unwrap())
    });
    g.bench_function("key_from_bytes", |b| {
        b.iter(|| {
            let key = VerifyingKey::from_bytes(black_box(node.key.public().as_bytes())).unwrap();
            assert!(!key.is_weak());
            key
        })
    });
    g.bench_function("verify_signature", |b| {
        b.iter(|| black_box(&env).verify_signature().unwrap())
    });
    g.bench_function("decrypt", |b| {
        b.iter(|| black_box(&env).decrypt(&f.sender_key).unwrap())
    });
    let plaintext = env.decrypt(&f.sender_key).unwrap();
    g.bench_function("decode_content", |b| {
        b.iter(|| decode_content(Kind::Alert, black_box(&plaintext)).unwrap())
    });
    g.bench_function("sha256_id", |b| b.iter(|| sha256(black_box(&bytes))));
    g.finish();

    // Key packages: one HPKE seal (X25519) per reader.
    let network_id = f.network.genesis.charter().network_id;
    let author = node.key.public();
    let readers: Vec<AgreementKey> = (0..200).map(|_| AgreementKey::generate(&mut rng)).collect();
    let reader_pubs: Vec<AgreementPublicKey> = readers.iter().map(AgreementKey::public).collect();

    let mut g = c.benchmark_group("key_package");
    g.throughput(Throughput::Elements(1));
    for n in [10usize, 200] {
        if n == 200 {
            g.sample_size(10);
        }
        g.bench_function(format!("seal_{n}"), |b| {
            b.iter_batched(
                || ChaCha20Rng::seed_from_u64(n as u64),
                |mut r| {
                    KeyPackage::seal(
                        &network_id,
                        &f.topic,
                        &author,
                        &f.sender_key,
                        &reader_pubs[..n],
                        &mut r,
                    )
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.sample_size(20);
    let (pkg200, refused) = KeyPackage::seal(
        &network_id,
        &f.topic,
        &author,
        &f.sender_key,
        &reader_pubs,
        &mut rng,
    );
    assert!(refused.is_empty());
    let me = &readers[199]; // the last entry: worst case for the linear recipient search
    g.bench_function("open_of_200", |b| {
        b.iter(|| pkg200.open(&network_id, &author, black_box(me)).unwrap())
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = envelope_benches
}
criterion_main!(benches);
