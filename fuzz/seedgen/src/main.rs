//! Regenerates `fuzz/seeds/<target>/*` deterministically: valid objects of the fixed fuzz
//! network (`fuzz/fixture.rs`) plus a few near-misses.
//!
//! `cargo run --manifest-path fuzz/seedgen/Cargo.toml --target-dir fuzz/target/seedgen`

#[path = "../../fixture.rs"]
mod fixture;

use alertmesh_protocol::alert::{AlertUpdate, Retraction};
use alertmesh_protocol::ids::EnvelopeId;
use alertmesh_protocol::wire::{
    ChainSummary, Directory, Hello, Request, Response, SyncPage, SyncRequest,
};
use alertmesh_protocol::{Content, Context, NodeCert, ControlMessage, Evidence, Kind, SignedEnvelope, Source, Validator, Verdict};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use std::fs;
use std::path::{Path, PathBuf};

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
    let d = dir.join(target);
    fs::create_dir_all(&d).expect("create seed dir");
    fs::write(d.join(name), bytes).expect("write seed");
}

fn main() {
    let dir: PathBuf = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../seeds"));
    let f = fixture::fixture();
    let mut rng = ChaCha20Rng::seed_from_u64(0x5eed);
    let node = &f.network.orgs[0].nodes[0];

    // cert: every node's certificate (org 0's verifies against the target's key).
    for (i, (_, n)) in f.network.nodes().enumerate() {
        write(&dir, "cert", &format!("node-{i}"), n.cert.as_bytes());
    }
    // ... and a certificate request (body and proof of possession) for a new node of org 0.
    let request = NodeCert {
        serial: 99,
        ..node.cert.cert().clone()
    }
    .request(&node.key);
    write(&dir, "cert", "request", request.as_bytes());

    // charter: the genesis, and an unsigned copy.
    write(&dir, "charter", "genesis", f.network.genesis.as_bytes());
    let unsigned = alertmesh_protocol::SignedCharter::unsigned(f.network.genesis.charter().clone());
    write(&dir, "charter", "unsigned", unsigned.as_bytes());

    // envelope: held, new, key package, evidence on the control topic, equivocation.
    write(&dir, "envelope", "alert-seq1-held", f.alerts[0].as_bytes());
    write(&dir, "envelope", "alert-seq3-new", f.alerts[2].as_bytes());
    let pkg = f.key_package(&mut rng);
    let pkg_env = SignedEnvelope::seal_clear(&node.key, &f.draft(4, f.alerts[2].id(), Kind::KeyPackage), &pkg.encode())
        .expect("seal key package");
    write(&dir, "envelope", "key-package-seq4", pkg_env.as_bytes());
    let rival = SignedEnvelope::seal_encrypted(
        &node.key,
        &f.draft(2, f.alerts[0].id(), Kind::Retraction),
        &f.sender_key,
        &Content::Retraction(Retraction {
            original: f.alerts[0].id(),
            reason: "mistake".into(),
        })
        .encode(),
        &mut rng,
    )
    .expect("seal rival");
    write(&dir, "envelope", "retraction-seq2-equivocates", rival.as_bytes());
    let evidence = Evidence::new(&f.alerts[1], &rival).expect("equivocation evidence");
    let mut control_draft = f.draft(1, EnvelopeId::default(), Kind::Evidence);
    control_draft.topic_id = alertmesh_protocol::TopicId::control(&f.network_id);
    let reporter = &f.network.orgs[1].nodes[0].key;
    let evidence_env =
        SignedEnvelope::seal_clear(reporter, &control_draft, &evidence.encode()).expect("seal evidence");
    write(&dir, "envelope", "evidence-control", evidence_env.as_bytes());

    // key_package: one addressed to every node (the target opens org 1's copy).
    write(&dir, "key_package", "all-nodes", &pkg.encode());

    // evidence: an equivocation and a chain conflict (seq 3 naming another seq 2).
    write(&dir, "evidence", "equivocation", &evidence.encode());
    let conflict = Evidence::new(&rival, &f.alerts[2]).expect("chain-conflict evidence");
    write(&dir, "evidence", "chain-conflict", &conflict.encode());

    // control: one of each variant.
    write(&dir, "control", "charter", &ControlMessage::Charter(f.network.genesis.as_bytes().to_vec()).encode());
    write(&dir, "control", "cert", &ControlMessage::Cert(node.cert.as_bytes().to_vec()).encode());
    write(&dir, "control", "envelope", &ControlMessage::Envelope(evidence_env.as_bytes().to_vec()).encode());

    // wire: one request and response of each kind.
    let certs: Vec<Vec<u8>> = f.network.nodes().map(|(_, n)| n.cert.as_bytes().to_vec()).collect();
    let hello = Hello {
        cert: node.cert.as_bytes().to_vec(),
    };
    write(&dir, "wire", "request-hello", &Request::Hello(hello.clone()).encode());
    write(&dir, "wire", "request-directory", &Request::Directory.encode());
    let directory = Directory {
        charters: vec![],
        certs: certs[1..].to_vec(),
    };
    write(&dir, "wire", "response-directory", &Response::Directory(directory).encode());
    write(&dir, "wire", "response-busy", &Response::Busy { retry_after_ms: 250 }.encode());
    let have = SyncRequest {
        topic: f.topic,
        have: vec![ChainSummary::from_seqs(f.author(), [1, 2, 4])],
    };
    write(&dir, "wire", "request-sync", &Request::Sync(have).encode());
    write(&dir, "wire", "response-hello", &Response::Hello(hello).encode());
    write(&dir, "wire", "response-refused", &Response::Refused("not a member".into()).encode());
    let page = SyncPage {
        topic: f.topic,
        certs: vec![node.cert.as_bytes().to_vec()],
        envelopes: f.alerts.iter().map(|e| e.as_bytes().to_vec()).collect(),
        more: false,
    };
    write(&dir, "wire", "response-sync", &Response::Sync(page).encode());

    // content: one plaintext per encrypted kind.
    let alert = fixture::sample_alert();
    write(&dir, "content", "alert", &Content::Alert(alert.clone()).encode());
    write(
        &dir,
        "content",
        "update",
        &Content::Update(AlertUpdate {
            original: f.alerts[0].id(),
            alert,
        })
        .encode(),
    );
    write(
        &dir,
        "content",
        "retraction",
        &Content::Retraction(Retraction {
            original: f.alerts[0].id(),
            reason: "false positive".into(),
        })
        .encode(),
    );
    // Report what the `envelope` target's validator makes of each envelope seed.
    let ctx = Context {
        charters: &f.charters,
        certs: &f.certs,
        chains: &f.chains,
        now_ms: fixture::VALIDATE_AT_MS,
    };
    for (name, env) in [
        ("alert-seq1-held", &f.alerts[0]),
        ("alert-seq3-new", &f.alerts[2]),
        ("key-package-seq4", &pkg_env),
        ("retraction-seq2-equivocates", &rival),
        ("evidence-control", &evidence_env),
    ] {
        let verdict = match Validator::new().validate(&ctx, env.as_bytes(), Source::Gossip) {
            Verdict::Accept(_) => "accept".to_string(),
            Verdict::Ignore(r) => format!("ignore ({})", r.label()),
            Verdict::Reject(r) => format!("reject ({})", r.label()),
        };
        println!("envelope/{name}: {verdict}");
    }
    println!("seeds written to {}", dir.display());
}
