//! Tests of the export format and the verifier on small generated logs.

use super::*;
use crate::alert::Content;
use crate::alert::{AlertUpdate, Tlp};
use crate::bootstrap::{Network, simple_plan};
use crate::charter::SignedCharter;
use crate::codec;
use crate::envelope::Draft;
use crate::envelope::{Kind, SignedEnvelope};
use crate::evidence::Evidence;
use crate::ids::{EnvelopeId, NodePublicKey, TopicId};
use crate::keys::NodeKey;
use crate::sender_key::{KeyPackage, SenderKey};
use rand_chacha08::ChaCha20Rng;
use rand_chacha08::rand_core::SeedableRng;
use std::collections::HashMap;

const NOW: u64 = 1_600_000_000_000;

struct Log {
    net: Network,
    envelopes: Vec<SignedEnvelope>,
    keys: Vec<ExportedKey>,
    plaintexts: HashMap<EnvelopeId, Vec<u8>>,
}

/// Two orgs; org-0's node publishes a key package and three alerts on `all`, org-1's
/// node one key package and one alert.
fn log() -> Log {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let net = simple_plan(2, NOW).build(&mut rng);
    let network = net.genesis.charter().network_id;
    let topic = TopicId::derive(&network, "all");
    let readers: Vec<_> = net.nodes().map(|(_, n)| n.agreement.public()).collect();
    let mut envelopes = Vec::new();
    let mut keys = Vec::new();
    let mut plaintexts = HashMap::new();
    for (i, (_, node)) in net.nodes().enumerate() {
        let key = SenderKey::generate(1, &mut rng);
        let (pkg, _) = KeyPackage::seal(
            &network,
            &topic,
            &node.key.public(),
            &key,
            &readers,
            &mut rng,
        );
        let mut draft = Draft {
            network_id: network,
            topic_id: topic,
            seq: 1,
            prev: EnvelopeId::default(),
            charter_version: 1,
            timestamp_ms: NOW + 1000,
            kind: Kind::KeyPackage,
            key_epoch: 1,
            tlp: Tlp::Clear,
        };
        let kp = SignedEnvelope::seal_clear(&node.key, &draft, &pkg.encode()).unwrap();
        let mut prev = kp.id();
        envelopes.push(kp);
        keys.push(ExportedKey {
            author: node.key.public(),
            topic,
            epoch: 1,
            key: *key.secret_bytes(),
        });
        let count = if i == 0 { 3 } else { 1 };
        for n in 0..count {
            draft.seq += 1;
            draft.prev = prev;
            draft.kind = Kind::Alert;
            draft.tlp = Tlp::Amber;
            draft.timestamp_ms += 1000;
            let mut alert = crate::alert::tests::sample_alert();
            alert.title = format!("alert {i}-{n}");
            let content = if i == 0 && n == 2 {
                draft.kind = Kind::Update;
                Content::Update(AlertUpdate {
                    original: envelopes[1].id(),
                    alert,
                })
            } else {
                Content::Alert(alert)
            };
            let pt = content.encode();
            let env =
                SignedEnvelope::seal_encrypted(&node.key, &draft, &key, &pt, &mut rng).unwrap();
            prev = env.id();
            plaintexts.insert(env.id(), pt);
            envelopes.push(env);
        }
    }
    Log {
        net,
        envelopes,
        keys,
        plaintexts,
    }
}

fn export(log: &Log, with_plaintext: bool, skip: Option<usize>) -> Vec<u8> {
    let meta = ExportMeta {
        format_version: FORMAT_VERSION,
        network_id: log.net.genesis.charter().network_id,
        genesis_hash: log.net.genesis_hash(),
        exporter: log.net.orgs[0].nodes[0].key.public(),
        exported_ms: NOW + 100_000,
        topics: vec![],
        since_ms: None,
        until_ms: None,
        with_plaintext,
    };
    let mut b = ExportBuilder::new(&meta);
    b.record(RecordType::Charter, log.net.genesis.as_bytes())
        .unwrap();
    for (_, n) in log.net.nodes() {
        b.record(RecordType::Cert, n.cert.as_bytes()).unwrap();
    }
    if with_plaintext {
        for k in &log.keys {
            b.record(RecordType::SenderKey, &codec::encode(k)).unwrap();
        }
    }
    for (i, env) in log.envelopes.iter().enumerate() {
        if Some(i) == skip {
            continue;
        }
        b.envelope(NOW + 50_000, env.as_bytes()).unwrap();
        if with_plaintext {
            if let Some(pt) = log.plaintexts.get(&env.id()) {
                b.plaintext(&env.id(), pt).unwrap();
            }
        }
    }
    b.finish(Some(&log.net.orgs[0].nodes[0].key))
}

fn opts(log: &Log) -> AuditOptions {
    AuditOptions {
        pinned_genesis: Some(log.net.genesis_hash()),
        ..AuditOptions::default()
    }
}

#[test]
fn clean_export_verifies() {
    let log = log();
    for with_plaintext in [false, true] {
        let file = export(&log, with_plaintext, None);
        let report = verify_export(&file, opts(&log));
        assert!(report.ok, "{:#?}", report.findings);
        assert_eq!(report.stats.envelopes, 6);
        assert_eq!(report.stats.signatures_verified, 6);
        assert_eq!(report.stats.chains, 2);
        let export = report.export.as_ref().unwrap();
        assert!(export.signature_valid);
        assert_eq!(export.exporter_org.as_deref(), Some("org-0"));
        if with_plaintext {
            assert_eq!(report.stats.plaintexts_checked, 4);
        }
    }
}

#[test]
fn every_flipped_bit_is_detected_and_located() {
    let log = log();
    let file = export(&log, true, None);
    // Record boundaries, to check the location.
    let bounds: Vec<(u64, usize)> = RecordReader::new(&file)
        .map(|r| r.unwrap())
        .map(|r| (r.index, r.offset as usize))
        .collect();
    let record_of = |pos: usize| {
        bounds
            .iter()
            .rev()
            .find(|(_, off)| *off <= pos)
            .map(|(i, _)| *i)
    };
    // Every byte in the file, one bit each (the file is a few KiB).
    for pos in 0..file.len() {
        let mut bad = file.clone();
        bad[pos] ^= 1 << (pos % 8);
        let report = verify_export(&bad, opts(&log));
        assert!(!report.ok, "flip at byte {pos} went unnoticed");
        if pos < MAGIC.len() {
            assert!(report.has("bad_magic"));
            continue;
        }
        let first = &report
            .findings
            .iter()
            .find(|f| f.severity == Severity::Problem)
            .unwrap();
        assert_eq!(
            first.location.record,
            record_of(pos),
            "flip at byte {pos}: first problem {first:?}"
        );
    }
}

#[test]
fn truncation_removal_and_reordering() {
    let log = log();
    let file = export(&log, false, None);
    // Truncated anywhere after the magic: reported.
    for cut in [MAGIC.len() + 3, file.len() / 2, file.len() - 1] {
        let report = verify_export(&file[..cut], opts(&log));
        assert!(
            report.has("truncated"),
            "cut at {cut}: {:?}",
            report.by_code
        );
    }
    // The end record cut off exactly at a record boundary.
    let records: Vec<_> = RecordReader::new(&file).map(|r| r.unwrap()).collect();
    let end_offset = records.last().unwrap().offset as usize;
    let report = verify_export(&file[..end_offset], opts(&log));
    assert!(report.has("truncated"));

    // An envelope removed from the middle of org-0's chain, digests recomputed by
    // whoever removed it: the chain shows the gap.
    let removed = export(&log, false, Some(2));
    let report = verify_export(&removed, opts(&log));
    assert!(!report.has("record_digest_mismatch"));
    let gap: Vec<_> = report.with_code("chain_gap").collect();
    assert_eq!(gap.len(), 1, "{:?}", report.findings);
    // Reported at the envelope after the hole (seq 4), naming the missing seq 3.
    assert_eq!(gap[0].envelope.as_ref().unwrap().seq, 4);
    assert!(
        gap[0].message.contains("seq 3 is missing"),
        "{}",
        gap[0].message
    );

    // Two envelope records swapped in place: both digests break.
    let (a, b) = (&records[4], &records[5]);
    let a_len = b.offset as usize - a.offset as usize;
    let b_end = records[6].offset as usize;
    let mut swapped = file[..a.offset as usize].to_vec();
    swapped.extend_from_slice(&file[b.offset as usize..b_end]);
    swapped.extend_from_slice(&file[a.offset as usize..a.offset as usize + a_len]);
    swapped.extend_from_slice(&file[b_end..]);
    let report = verify_export(&swapped, opts(&log));
    let at: Vec<_> = report
        .with_code("record_digest_mismatch")
        .map(|f| f.location.record.unwrap())
        .collect();
    assert_eq!(at, vec![4, 5, 6]);
}

#[test]
fn resigned_envelope_and_forged_charter() {
    let log = log();
    // org-1's node re-signs org-0's alert (author field unchanged): bad signature.
    let victim = &log.envelopes[2];
    let other = &log.net.orgs[1].nodes[0].key;
    let mut bytes = victim.signed_bytes().to_vec();
    let sig = other.sign(crate::ids::tags::ENVELOPE, &bytes);
    bytes.extend_from_slice(&sig);
    let mut forged = log;
    forged.envelopes[2] = SignedEnvelope::decode(&bytes, 1 << 20).unwrap();
    let report = verify_export(&export(&forged, false, None), opts(&forged));
    let bad: Vec<_> = report.with_code("bad_signature").collect();
    assert_eq!(bad.len(), 1);
    assert_eq!(
        bad[0].envelope.as_ref().unwrap().id,
        forged.envelopes[2].id()
    );
    // Its successor no longer chains onto it.
    assert!(report.has("chain_fork"));

    // A version 2 signed by one governor only (threshold 1 of 2 here is 1, so use a
    // non-governor signature instead): refused as a bad charter transition.
    let mut c2 = forged.net.genesis.charter().clone();
    c2.version = 2;
    c2.prev_hash = forged.net.genesis_hash();
    c2.governors.retain(|g| g.as_str() == "org-0");
    c2.threshold = 1;
    let mut signed = SignedCharter::unsigned(c2.clone());
    signed.sign(&forged.net.orgs[0].member.org_id, &forged.net.orgs[0].root);
    let mut auditor = Auditor::new(opts(&forged));
    auditor.charter(forged.net.genesis.as_bytes(), Location::record(1, 0));
    auditor.charter(signed.as_bytes(), Location::record(2, 0));
    // Forged: signed by a key that is not org-1's root but claims to be org-1.
    let mut c2b = c2;
    c2b.network_name = "forged".into();
    let mut bad = SignedCharter::unsigned(c2b);
    bad.sign(
        &forged.net.orgs[1].member.org_id,
        &crate::keys::OrgRootKey::from_secret_bytes(&[9; 32]),
    );
    auditor.charter(bad.as_bytes(), Location::record(3, 0));
    let report = auditor.finish();
    assert_eq!(report.stats.charter_version, 2);
    let f: Vec<_> = report.with_code("charter_bad_signature").collect();
    assert_eq!(f.len(), 1, "{:?}", report.findings);
    assert_eq!(f[0].location.record, Some(3));
}

#[test]
fn wrong_plaintext_and_equivocation_evidence() {
    let mut tampered = log();
    let id = tampered.envelopes[1].id();
    let mut alert = crate::alert::tests::sample_alert();
    alert.title = "a different story".into();
    tampered
        .plaintexts
        .insert(id, Content::Alert(alert).encode());
    let report = verify_export(&export(&tampered, true, None), opts(&tampered));
    let f: Vec<_> = report.with_code("plaintext_mismatch").collect();
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].envelope.as_ref().unwrap().id, id);

    // Equivocation: a second seq-2 envelope by org-0's node, given as evidence.
    let node = &tampered.net.orgs[0].nodes[0];
    let original = &tampered.envelopes[1];
    let h = original.header();
    let draft = Draft {
        network_id: h.network_id,
        topic_id: h.topic_id,
        seq: h.seq,
        prev: h.prev,
        charter_version: 1,
        timestamp_ms: h.timestamp_ms + 1,
        kind: Kind::KeyPackage,
        key_epoch: 1,
        tlp: Tlp::Clear,
    };
    let pkg = KeyPackage {
        topic_id: h.topic_id,
        epoch: 1,
        entries: vec![],
    };
    let twin = SignedEnvelope::seal_clear(&node.key, &draft, &pkg.encode()).unwrap();
    let ev = Evidence::new(original, &twin).unwrap();
    let mut auditor = Auditor::new(opts(&tampered));
    auditor.charter(tampered.net.genesis.as_bytes(), Location::default());
    for (_, n) in tampered.net.nodes() {
        auditor.cert(n.cert.as_bytes(), Location::default());
    }
    for e in &tampered.envelopes {
        auditor.envelope(e.as_bytes(), None, Location::default());
    }
    auditor.envelope(twin.as_bytes(), None, Location::row("envelopes", 99));
    auditor.evidence(&ev.encode(), Location::row("evidence", 1));
    let report = auditor.finish();
    assert!(report.has("equivocation_in_log"));
    assert_eq!(report.evidence.len(), 1);
    assert_eq!(report.evidence[0].org.as_deref(), Some("org-0"));
    assert_eq!(report.evidence[0].seq, 2);
}

fn export_signed_by(log: &Log, meta_exporter: NodePublicKey, signer: Option<&NodeKey>) -> Vec<u8> {
    let meta = ExportMeta {
        format_version: FORMAT_VERSION,
        network_id: log.net.genesis.charter().network_id,
        genesis_hash: log.net.genesis_hash(),
        exporter: meta_exporter,
        exported_ms: NOW + 100_000,
        topics: vec![],
        since_ms: None,
        until_ms: None,
        with_plaintext: false,
    };
    let mut b = ExportBuilder::new(&meta);
    b.record(RecordType::Charter, log.net.genesis.as_bytes())
        .unwrap();
    for (_, n) in log.net.nodes() {
        b.record(RecordType::Cert, n.cert.as_bytes()).unwrap();
    }
    for env in &log.envelopes {
        b.envelope(NOW + 50_000, env.as_bytes()).unwrap();
    }
    b.finish(signer)
}

#[test]
fn exporter_in_meta_must_sign_the_end_record() {
    let log = log();
    let a = &log.net.orgs[0].nodes[0].key;
    let b = &log.net.orgs[1].nodes[0].key;
    let zero = NodePublicKey::default();
    let cases = [
        (a.public(), Some(a), None),
        (zero, None, Some("unsigned_export")),
        (a.public(), Some(b), Some("exporter_mismatch")),
        (a.public(), None, Some("exporter_mismatch")),
        (zero, Some(a), Some("exporter_mismatch")),
    ];
    for (named, signer, code) in cases {
        let file = export_signed_by(&log, named, signer);
        let report = verify_export(&file, opts(&log));
        match code {
            None => assert!(report.ok && report.notes == 0, "{:?}", report.by_code),
            Some(code) => {
                let f: Vec<_> = report.with_code(code).collect();
                assert_eq!(f.len(), 1, "{:?}", report.by_code);
                // At the end record: meta, charter, 2 certs, 6 envelopes, end.
                assert_eq!(f[0].location.record, Some(10));
                assert_eq!(report.ok, code == "unsigned_export");
            }
        }
    }
}

#[test]
fn framing_error_stops_the_audit() {
    let log = log();
    let mut file = export(&log, false, None);
    file[0] ^= 1;
    let report = verify_export(&file, AuditOptions::default());
    assert_eq!(
        report.by_code.keys().copied().collect::<Vec<_>>(),
        ["bad_magic"]
    );
    // A length field over the limit in the middle: findings before it stand, nothing
    // after it (no chain or genesis checks).
    let file = export(&log, false, None);
    let records: Vec<_> = RecordReader::new(&file).map(|r| r.unwrap()).collect();
    let mut bad = file.clone();
    let at = records[2].offset as usize;
    bad[at + 1..at + 5].copy_from_slice(&u32::MAX.to_le_bytes());
    let report = verify_export(&bad, opts(&log));
    assert_eq!(
        report.by_code.keys().copied().collect::<Vec<_>>(),
        ["bad_framing"]
    );
}

#[test]
fn meta_network_must_be_the_genesis_network() {
    let log = log();
    let mut meta_net = log.net.genesis.charter().network_id;
    meta_net.0[0] ^= 1;
    let meta = ExportMeta {
        format_version: FORMAT_VERSION,
        network_id: meta_net,
        genesis_hash: log.net.genesis_hash(),
        exporter: NodePublicKey::default(),
        exported_ms: NOW,
        topics: vec![],
        since_ms: None,
        until_ms: None,
        with_plaintext: false,
    };
    let mut b = ExportBuilder::new(&meta);
    b.record(RecordType::Charter, log.net.genesis.as_bytes())
        .unwrap();
    let report = verify_export(&b.finish(None), opts(&log));
    let f: Vec<_> = report.with_code("network_mismatch").collect();
    assert_eq!(f.len(), 1, "{:?}", report.by_code);
    assert_eq!(f[0].location.record, Some(0));
}

#[test]
fn plaintext_rules() {
    let log = log();
    // Sender keys and plaintexts in an export that does not declare them.
    let mut file = export(&log, true, None);
    let records: Vec<_> = RecordReader::new(&file).map(|r| r.unwrap()).collect();
    let meta: ExportMeta = codec::decode_exact(records[0].body, 4096).unwrap();
    let mut b = ExportBuilder::new(&ExportMeta {
        with_plaintext: false,
        ..meta
    });
    for r in &records[1..records.len() - 1] {
        b.record(RecordType::from_u8(r.ty).unwrap(), r.body)
            .unwrap();
    }
    let report = verify_export(&b.finish(Some(&log.net.orgs[0].nodes[0].key)), opts(&log));
    // 2 sender keys, 4 plaintexts.
    assert_eq!(
        report.by_code.get("plaintext_undeclared"),
        Some(&6),
        "{:?}",
        report.by_code
    );
    assert_eq!(report.problems, 6);

    // A ciphertext tampered with (and re-signed by its author) whose plaintext record
    // was dropped: still decrypted, so reported.
    let node = &log.net.orgs[0].nodes[0].key;
    let victim = &log.envelopes[1];
    let mut bytes = victim.signed_bytes().to_vec();
    bytes[200] ^= 1;
    let sig = node.sign(crate::ids::tags::ENVELOPE, &bytes);
    bytes.extend_from_slice(&sig);
    let tampered = SignedEnvelope::decode(&bytes, 1 << 20).unwrap();
    let mut log2 = log;
    log2.envelopes[1] = tampered;
    file = export(&log2, true, None);
    let report = verify_export(&file, opts(&log2));
    for code in ["plaintext_missing", "plaintext_undecryptable"] {
        let f: Vec<_> = report.with_code(code).collect();
        assert_eq!(f.len(), 1, "{code}: {:?}", report.by_code);
        // meta, charter, 2 certs, 2 sender keys, key package, the tampered envelope.
        assert_eq!(f[0].location.record, Some(7));
    }
}
