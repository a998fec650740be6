//! `audit verify` throughput against raw `verify_strict` throughput, in one run.
//!
//! ```text
//! cargo run --release -p alertmesh-protocol --example audit-bench -- [ENVELOPES] [--write FILE]
//! ```
//!
//! Builds a network of four orgs, has each node publish ENVELOPES/4 encrypted alerts
//! (default 1 000 000 in all) on one topic, writes them as an export file in memory (or to
//! FILE, for timing `alertmesh audit verify FILE`), then measures
//!
//! - raw: `verify_strict` of every envelope's signature over its exact bytes (the
//!   envelopes already decoded), and
//! - audit: `audit::verify_export` of the whole file (framing, record digests, strict
//!   decoding, signatures, certificates, charter authorization, chains),
//!
//! and prints both rates and their ratio.

use alertmesh_protocol::audit::{
    AuditOptions, ExportBuilder, ExportMeta, FORMAT_VERSION, RecordType, verify_export,
};
use alertmesh_protocol::bootstrap::simple_plan;
use alertmesh_protocol::{Draft, EnvelopeId, Kind, SenderKey, SignedEnvelope, Tlp, TopicId};
use rand_chacha08::ChaCha20Rng;
use rand_chacha08::rand_core::SeedableRng;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let total: usize = args
        .iter()
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let write = args
        .iter()
        .position(|a| a == "--write")
        .and_then(|i| args.get(i + 1));
    let now = 1_600_000_000_000u64;
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let net = simple_plan(4, now).build(&mut rng);
    let network = net.genesis.charter().network_id;
    let topic = TopicId::derive(&network, "all");
    let started = Instant::now();
    let mut envelopes = Vec::with_capacity(total);
    let per_node = total / 4;
    let plaintext = vec![0x5a; 200];
    for (_, node) in net.nodes() {
        let key = SenderKey::generate(1, &mut rng);
        let mut prev = EnvelopeId::default();
        for seq in 1..=per_node as u64 {
            let draft = Draft {
                network_id: network,
                topic_id: topic,
                seq,
                prev,
                charter_version: 1,
                timestamp_ms: now + seq,
                kind: Kind::Alert,
                key_epoch: 1,
                tlp: Tlp::Green,
            };
            let env = SignedEnvelope::seal_encrypted(&node.key, &draft, &key, &plaintext, &mut rng)
                .unwrap_or_else(|e| panic!("sealing failed: {e}"));
            prev = env.id();
            envelopes.push(env);
        }
    }
    let meta = ExportMeta {
        format_version: FORMAT_VERSION,
        network_id: network,
        genesis_hash: net.genesis_hash(),
        exporter: Default::default(),
        exported_ms: now,
        topics: vec![],
        since_ms: None,
        until_ms: None,
        with_plaintext: false,
    };
    let mut b = ExportBuilder::new(&meta);
    let _ = b.record(RecordType::Charter, net.genesis.as_bytes());
    for (_, n) in net.nodes() {
        let _ = b.record(RecordType::Cert, n.cert.as_bytes());
    }
    for e in &envelopes {
        let _ = b.envelope(now + 10_000_000, e.as_bytes());
    }
    let file = b.finish(None);
    eprintln!(
        "built {} envelopes, export {} bytes, in {:.1} s",
        envelopes.len(),
        file.len(),
        started.elapsed().as_secs_f64()
    );
    if let Some(path) = write {
        std::fs::write(path, &file).unwrap_or_else(|e| panic!("cannot write {path}: {e}"));
        eprintln!("written to {path} (genesis hash {})", net.genesis_hash());
    }

    let t = Instant::now();
    let ok = envelopes
        .iter()
        .filter(|e| e.verify_signature().is_ok())
        .count();
    let raw = t.elapsed().as_secs_f64();
    assert_eq!(ok, envelopes.len());

    let t = Instant::now();
    let report = verify_export(
        &file,
        AuditOptions {
            pinned_genesis: Some(net.genesis_hash()),
            ..AuditOptions::default()
        },
    );
    let audit = t.elapsed().as_secs_f64();
    assert!(report.ok, "{:?}", report.by_code);
    assert_eq!(report.stats.signatures_verified as usize, envelopes.len());

    let n = envelopes.len() as f64;
    println!("envelopes                 {}", envelopes.len());
    println!(
        "raw verify_strict         {raw:.2} s  {:.0} envelopes/s",
        n / raw
    );
    println!(
        "audit verify_export       {audit:.2} s  {:.0} envelopes/s",
        n / audit
    );
    println!("audit / raw throughput    {:.2}", raw / audit);
}
