//! `alertmesh audit verify` as a command: report, `--json`, exit status.

use alertmesh_protocol::audit::{ExportBuilder, ExportMeta, FORMAT_VERSION, RecordType};
use alertmesh_protocol::bootstrap::simple_plan;
use alertmesh_protocol::{Draft, EnvelopeId, Kind, SenderKey, SignedEnvelope, Tlp, TopicId};
use rand_chacha03::ChaCha20Rng;
use rand_chacha03::rand_core::SeedableRng;
use std::process::Command;

/// A small valid export: two orgs, each node three alerts on `all`; and its genesis hash.
fn export() -> (Vec<u8>, String) {
    let now = 1_600_000_000_000;
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let net = simple_plan(2, now).build(&mut rng);
    let network = net.genesis.charter().network_id;
    let topic = TopicId::derive(&network, "all");
    let meta = ExportMeta {
        format_version: FORMAT_VERSION,
        network_id: network,
        genesis_hash: net.genesis_hash(),
        exporter: net.orgs[0].nodes[0].key.public(),
        exported_ms: now + 60_000,
        topics: vec![],
        since_ms: None,
        until_ms: None,
        with_plaintext: false,
    };
    let mut b = ExportBuilder::new(&meta);
    b.record(RecordType::Charter, net.genesis.as_bytes()).ok();
    for (_, n) in net.nodes() {
        b.record(RecordType::Cert, n.cert.as_bytes()).ok();
    }
    for (_, n) in net.nodes() {
        let key = SenderKey::generate(1, &mut rng);
        let mut prev = EnvelopeId::default();
        for seq in 1..=3 {
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
            let env = SignedEnvelope::seal_encrypted(&n.key, &draft, &key, b"x", &mut rng);
            let Ok(env) = env else { panic!("seal") };
            prev = env.id();
            b.envelope(now + 30_000, env.as_bytes()).ok();
        }
    }
    (
        b.finish(Some(&net.orgs[0].nodes[0].key)),
        net.genesis_hash().to_hex(),
    )
}

fn alertmesh(args: &[&str]) -> std::process::Output {
    match Command::new(env!("CARGO_BIN_EXE_alertmesh"))
        .args(args)
        .output()
    {
        Ok(o) => o,
        Err(e) => panic!("cannot run alertmesh: {e}"),
    }
}

#[test]
fn verify_prints_a_report_and_exits_non_zero_on_problems() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (file, genesis) = export();
    let path = dir.path().join("log.audit");
    std::fs::write(&path, &file).unwrap_or_else(|e| panic!("{e}"));
    let p = path.to_string_lossy().to_string();

    let out = alertmesh(&["audit", "verify", &p, "--genesis-hash", &genesis]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("result: OK") && text.contains("signature valid"),
        "{text}"
    );

    let out = alertmesh(&["audit", "verify", &p, "--genesis-hash", &genesis, "--json"]);
    assert!(out.status.success());
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(json["ok"], true);
    assert_eq!(json["stats"]["envelopes"], 6);

    // One flipped bit: non-zero exit, the record named.
    let mut bad = file.clone();
    let at = bad.len() - 400;
    bad[at] ^= 4;
    std::fs::write(&path, &bad).unwrap_or_else(|e| panic!("{e}"));
    let out = alertmesh(&["audit", "verify", &p, "--genesis-hash", &genesis, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(json["ok"], false);
    assert_eq!(json["by_code"]["record_digest_mismatch"], 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("the audit found"));

    // Another genesis pinned: refused.
    let other = "00".repeat(32);
    let out = alertmesh(&["audit", "verify", &p, "--genesis-hash", &other]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("genesis_mismatch"));

    // Not a log at all.
    let out = alertmesh(&[
        "audit",
        "verify",
        &dir.path().join("missing").to_string_lossy(),
    ]);
    assert!(!out.status.success());
}
