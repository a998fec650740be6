//! Checks `protocol/testdata/vectors.json`, the known-answer vectors of PROTOCOL.md.
//!
//! Part (a) re-derives what it can from the file with the primitive crates directly (hand
//! parsing of the fixed layouts, SHA-256, Ed25519 `verify_strict`, X25519, HPKE,
//! XChaCha20-Poly1305), and runs the crate's decoders and [`Validator`] on every envelope.
//! Part (b) regenerates the file with the generator the `gen-vectors` example uses and
//! requires byte equality, so the vectors cannot drift from the code.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

#[path = "../examples/gen-vectors/vectors.rs"]
mod generator;

use alertmesh_protocol::charter::CharterUpdate;
use alertmesh_protocol::envelope::decode_content;
use alertmesh_protocol::evidence::Misbehaviour;
use alertmesh_protocol::ids::{AgreementPublicKey, CharterHash, NetworkId, NodePublicKey, TopicId};
use alertmesh_protocol::validate::{Context, Source, Validator, Verdict};
use alertmesh_protocol::{
    AgreementKey, CertDirectory, CertRequest, CharterChain, Content, ControlMessage, Evidence,
    KeyPackage, Kind, MemoryChains, SignedCharter, SignedEnvelope, SignedNodeCert,
};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use ed25519_dalek::{Signature, VerifyingKey};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::PathBuf;

const REGENERATE: &str =
    "cargo run -p alertmesh-protocol --example gen-vectors > protocol/testdata/vectors.json";

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn file_text() -> String {
    std::fs::read_to_string(manifest_dir().join("testdata/vectors.json"))
        .expect("protocol/testdata/vectors.json")
}

fn load() -> Value {
    serde_json::from_str(&file_text()).unwrap()
}

fn hx(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))).unwrap()
}

fn h32(v: &Value) -> [u8; 32] {
    hx(v).try_into().unwrap()
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap()
}

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// `tag ‖ 0x00 ‖ body`, written out independently of the crate.
fn tagged(tag: &str, body: &[u8]) -> Vec<u8> {
    let mut m = tag.as_bytes().to_vec();
    m.push(0);
    m.extend_from_slice(body);
    m
}

fn ed25519_ok(public: &[u8; 32], tag: &str, body: &[u8], sig: &[u8]) -> bool {
    let Ok(key) = VerifyingKey::from_bytes(public) else {
        return false;
    };
    let sig = Signature::from_bytes(&sig.try_into().unwrap());
    key.verify_strict(&tagged(tag, body), &sig).is_ok()
}

/// A minimal reader for the fixed-int little-endian layout of PROTOCOL.md §2.
struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(b: &'a [u8]) -> Self {
        Self { b, at: 0 }
    }
    fn take(&mut self, n: usize) -> &'a [u8] {
        let out = &self.b[self.at..self.at + n];
        self.at += n;
        out
    }
    fn u8(&mut self) -> u8 {
        self.take(1)[0]
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take(4).try_into().unwrap())
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take(8).try_into().unwrap())
    }
    fn a32(&mut self) -> [u8; 32] {
        self.take(32).try_into().unwrap()
    }
    fn string(&mut self) -> String {
        let n = self.u64() as usize;
        String::from_utf8(self.take(n).to_vec()).unwrap()
    }
    fn rest(&self) -> &'a [u8] {
        &self.b[self.at..]
    }
}

struct ParsedHeader {
    version: u8,
    network_id: [u8; 32],
    topic_id: [u8; 32],
    author: [u8; 32],
    seq: u64,
    prev: [u8; 32],
    charter_version: u64,
    timestamp_ms: u64,
    kind: u32,
    key_epoch: u64,
    tlp: u32,
    nonce: [u8; 24],
}

fn parse_header(b: &[u8]) -> ParsedHeader {
    let mut r = Reader::new(b);
    let h = ParsedHeader {
        version: r.u8(),
        network_id: r.a32(),
        topic_id: r.a32(),
        author: r.a32(),
        seq: r.u64(),
        prev: r.a32(),
        charter_version: r.u64(),
        timestamp_ms: r.u64(),
        kind: r.u32(),
        key_epoch: r.u64(),
        tlp: r.u32(),
        nonce: r.take(24).try_into().unwrap(),
    };
    assert_eq!(r.at, generator::offsets::HEADER_LEN);
    h
}

fn node<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .unwrap_or_else(|| panic!("node {name}"))
}

fn org<'a>(v: &'a Value, id: &str) -> &'a Value {
    v["orgs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["org_id"] == id)
        .unwrap()
}

fn topic_id(v: &Value, name: &str) -> [u8; 32] {
    sha256(&[
        b"alertmesh/v1/topic\0",
        &h32(&v["network_id"]),
        name.as_bytes(),
    ])
}

// ---------------------------------------------------------------------------------------
// (b) no drift

#[test]
fn file_matches_generator() {
    let generated = generator::to_json(&generator::build());
    assert!(
        generated == file_text(),
        "protocol/testdata/vectors.json differs from the generator's output; if the change is intended, run\n    {REGENERATE}\nand update PROTOCOL.md"
    );
}

#[test]
fn protocol_md_has_the_worked_example() {
    let doc = std::fs::read_to_string(manifest_dir().join("../PROTOCOL.md"))
        .expect("PROTOCOL.md at the repository root");
    let example = generator::worked_example(&generator::build());
    assert!(
        doc.contains(&example),
        "PROTOCOL.md's worked example is stale; regenerate it with\n    cargo run -p alertmesh-protocol --example gen-vectors -- --worked-example"
    );
}

// ---------------------------------------------------------------------------------------
// (a) independent checks

#[test]
fn keys_match_their_secrets() {
    let v = load();
    for o in v["orgs"].as_array().unwrap() {
        let sk = ed25519_dalek::SigningKey::from_bytes(&h32(&o["root_secret"]));
        assert_eq!(
            sk.verifying_key().to_bytes(),
            h32(&o["root_public"]),
            "{}",
            o["org_id"]
        );
    }
    for n in v["nodes"].as_array().unwrap() {
        let sk = ed25519_dalek::SigningKey::from_bytes(&h32(&n["sign_secret"]));
        assert_eq!(
            sk.verifying_key().to_bytes(),
            h32(&n["sign_public"]),
            "{}",
            n["name"]
        );
        let x = x25519_dalek::StaticSecret::from(h32(&n["agree_secret"]));
        assert_eq!(
            x25519_dalek::PublicKey::from(&x).to_bytes(),
            h32(&n["agree_public"]),
            "{}",
            n["name"]
        );
        // The crate derives the same public key.
        let a = AgreementKey::from_secret_bytes(&h32(&n["agree_secret"]));
        assert_eq!(a.public().0, h32(&n["agree_public"]));
    }
}

/// Hand-parses a signed certificate: `(body, node signature, org signature, org_id,
/// node_sign_pub)`, checking the body's fixed fields against the network and the
/// vectors' validity period.
fn parse_cert<'a>(v: &Value, bytes: &'a [u8]) -> (&'a [u8], &'a [u8], &'a [u8], String, [u8; 32]) {
    let (signed, org_sig) = bytes.split_at(bytes.len() - 64);
    let (body, node_sig) = signed.split_at(signed.len() - 64);
    let mut r = Reader::new(body);
    assert_eq!(r.a32(), h32(&v["network_id"]));
    let org_id = r.string();
    let sign_pub = r.a32();
    let _agree_pub = r.a32();
    let (not_before, not_after, _serial) = (r.u64(), r.u64(), r.u64());
    assert!(r.rest().is_empty());
    assert_eq!(not_before, generator::T0);
    assert!(not_after >= generator::T0 + generator::CERT_LIFETIME_MS);
    (body, node_sig, org_sig, org_id, sign_pub)
}

#[test]
fn node_certificates() {
    let v = load();
    let net = h32(&v["network_id"]);
    for n in v["nodes"].as_array().unwrap() {
        let bytes = hx(&n["cert"]);
        let (body, node_sig, org_sig, org_id, sign_pub) = parse_cert(&v, &bytes);
        assert_eq!(org_id, s(&n["org_id"]));
        assert_eq!(sign_pub, h32(&n["sign_public"]));
        assert_eq!(
            &body[32 + 8 + org_id.len() + 32..][..32],
            &h32(&n["agree_public"])
        );
        // Proof of possession: the node key over the body.
        assert!(
            ed25519_ok(&sign_pub, "alertmesh/v1/node-cert-pop", body, node_sig),
            "{}",
            n["name"]
        );
        // The org root over the body and the node signature.
        let root = h32(&org(&v, &org_id)["root_public"]);
        let request = &bytes[..bytes.len() - 64];
        assert!(
            ed25519_ok(&root, "alertmesh/v1/node-cert", request, org_sig),
            "{}",
            n["name"]
        );
        // Another org's root does not verify it, nor does the org signature cover the
        // body alone.
        let other = h32(&org(&v, if org_id == "fbi" { "dhs" } else { "fbi" })["root_public"]);
        assert!(!ed25519_ok(
            &other,
            "alertmesh/v1/node-cert",
            request,
            org_sig
        ));
        assert!(!ed25519_ok(&root, "alertmesh/v1/node-cert", body, org_sig));

        let cert = SignedNodeCert::decode(&bytes).unwrap();
        assert_eq!(
            cert.verify(&NetworkId(net), &alertmesh_protocol::OrgPublicKey(root)),
            Ok(())
        );
        assert_eq!(cert.as_bytes(), &bytes[..]);
        let request = CertRequest::decode(cert.request_bytes()).unwrap();
        assert_eq!(request.verify_pop(), Ok(()));
        assert_eq!(request.cert(), cert.cert());
    }
}

#[test]
fn extra_certificates() {
    let v = load();
    let net = h32(&v["network_id"]);
    let mut labels = Vec::new();
    for c in v["extra_certs"].as_array().unwrap() {
        let name = s(&c["name"]);
        let bytes = hx(&c["hex"]);
        let (body, node_sig, org_sig, org_id, sign_pub) = parse_cert(&v, &bytes);
        assert_eq!(org_id, s(&c["org_id"]), "{name}");
        assert_eq!(
            sign_pub,
            h32(&node(&v, s(&c["node"]))["sign_public"]),
            "{name}"
        );
        let root = h32(&org(&v, &org_id)["root_public"]);
        // Every extra certificate carries a valid org signature; what differs is the
        // node's proof of possession.
        assert!(ed25519_ok(
            &root,
            "alertmesh/v1/node-cert",
            &bytes[..bytes.len() - 64],
            org_sig
        ));
        let pop_ok = ed25519_ok(&sign_pub, "alertmesh/v1/node-cert-pop", body, node_sig);
        let expected = s(&c["expected"]);
        assert_eq!(pop_ok, expected == "valid", "{name}");
        let verdict = SignedNodeCert::decode(&bytes)
            .unwrap()
            .verify(&NetworkId(net), &alertmesh_protocol::OrgPublicKey(root));
        assert_eq!(
            verdict.map_or_else(|e| e.label(), |()| "valid"),
            expected,
            "{name}"
        );
        assert_eq!(
            c["in_directory"].as_bool().unwrap(),
            expected == "valid",
            "{name}"
        );
        labels.push(expected);
    }
    assert_eq!(labels, ["valid", "bad_node_signature"]);
}

#[test]
fn charters_hashes_and_signatures() {
    let v = load();
    let charters = v["charters"].as_array().unwrap();
    let mut prev_hash = [0u8; 32];
    for c in charters {
        let bytes = hx(&c["hex"]);
        let body_len = c["body_len"].as_u64().unwrap() as usize;
        let (body, sigs) = bytes.split_at(body_len);
        let hash = sha256(&[b"alertmesh/v1/charter-hash\0", body]);
        assert_eq!(hash, h32(&c["hash"]));
        // Hand-parse the start of the body: network_id, network_name, version, prev_hash.
        let mut r = Reader::new(body);
        assert_eq!(r.a32(), h32(&v["network_id"]));
        assert_eq!(r.string(), s(&v["network_name"]));
        assert_eq!(r.u64(), c["version"].as_u64().unwrap());
        assert_eq!(r.a32(), prev_hash);
        prev_hash = hash;
        // Signatures: u64 count, then (org_id string, 64 bytes) each, sorted by org id.
        let mut r = Reader::new(sigs);
        let count = r.u64() as usize;
        let signers: Vec<&str> = c["signers"].as_array().unwrap().iter().map(s).collect();
        assert_eq!(count, signers.len());
        let mut names = Vec::new();
        for _ in 0..count {
            let org_id = r.string();
            let sig = r.take(64);
            // Governors of the authorizing version: genesis for both vectors (version 2's
            // authority is version 1, whose governors sign).
            let root = h32(&org(&v, &org_id)["root_public"]);
            assert!(
                ed25519_ok(&root, "alertmesh/v1/charter", body, sig),
                "{org_id}"
            );
            names.push(org_id);
        }
        assert!(r.rest().is_empty());
        assert_eq!(names, signers);
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);

        let decoded = SignedCharter::decode(&bytes).unwrap();
        assert_eq!(decoded.hash().0, hash);
        assert_eq!(decoded.body_bytes().len(), body_len);
    }
    assert_eq!(h32(&v["genesis_hash"]), h32(&charters[0]["hash"]));

    let genesis = SignedCharter::decode(&hx(&charters[0]["hex"])).unwrap();
    let mut chain =
        CharterChain::from_genesis(genesis, &CharterHash(h32(&v["genesis_hash"]))).unwrap();
    let v2 = SignedCharter::decode(&hx(&charters[1]["hex"])).unwrap();
    assert_eq!(chain.offer(v2.clone()), Ok(CharterUpdate::Adopted(2)));
    assert_eq!(chain.offer(v2), Ok(CharterUpdate::AlreadyKnown));
}

#[test]
fn topics() {
    let v = load();
    let net = h32(&v["network_id"]);
    for t in v["topics"].as_array().unwrap() {
        let id = topic_id(&v, s(&t["name"]));
        assert_eq!(id, h32(&t["topic_id"]));
        assert_eq!(
            s(&t["gossip_name"]),
            format!("alertmesh/{}/{}", hex::encode(&net[..8]), hex::encode(id))
        );
        assert_eq!(TopicId::derive(&NetworkId(net), s(&t["name"])).0, id);
    }
    assert_eq!(
        TopicId::control(&NetworkId(net)).0,
        topic_id(&v, "_control")
    );
}

#[test]
fn key_packages_open_with_hpke() {
    use hpke::{Deserializable, OpModeR};
    type Kem = hpke::kem::X25519HkdfSha256;
    let v = load();
    let net = h32(&v["network_id"]);
    let mut seen = 0;
    for e in v["envelopes"].as_array().unwrap() {
        let Some(kp) = e.get("key_package") else {
            continue;
        };
        seen += 1;
        let bytes = hx(&e["hex"]);
        let payload = hx(&kp["payload"]);
        assert_eq!(
            &bytes[generator::offsets::HEADER_LEN..bytes.len() - 64],
            &payload[..]
        );
        let header = parse_header(&bytes);
        assert_eq!(header.kind, 3, "KeyPackage");
        assert_eq!(header.nonce, [0; 24]);
        let author = h32(&node(&v, s(&e["author"]))["sign_public"]);
        assert_eq!(header.author, author);

        let mut r = Reader::new(&payload);
        let topic = r.a32();
        let epoch = r.u64();
        assert_eq!(topic, header.topic_id);
        assert_eq!(epoch, header.key_epoch);
        assert_eq!(epoch, kp["epoch"].as_u64().unwrap());
        let count = r.u64() as usize;
        let recipients = kp["recipients"].as_array().unwrap();
        assert_eq!(count, recipients.len());
        let mut info = tagged("alertmesh/v1/sender-key", &net);
        info.extend_from_slice(&topic);
        info.extend_from_slice(&author);
        info.extend_from_slice(&epoch.to_le_bytes());
        for name in recipients {
            let n = node(&v, s(name));
            let recipient = r.a32();
            assert_eq!(recipient, h32(&n["agree_public"]));
            let enc = r.take(32);
            let ct = r.take(48);
            let sk = <Kem as hpke::Kem>::PrivateKey::from_bytes(&hx(&n["agree_secret"])).unwrap();
            let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(enc).unwrap();
            let key = hpke::single_shot_open::<
                hpke::aead::ChaCha20Poly1305,
                hpke::kdf::HkdfSha256,
                Kem,
            >(&OpModeR::Base, &sk, &enc, &info, ct, &recipient)
            .unwrap();
            assert_eq!(key, hx(&kp["sender_key"]), "{name}");

            // The crate agrees.
            let pkg = KeyPackage::decode(&payload).unwrap();
            let me = AgreementKey::from_secret_bytes(&h32(&n["agree_secret"]));
            let opened = pkg
                .open(&NetworkId(net), &NodePublicKey(author), &me)
                .unwrap();
            assert_eq!(&opened.secret_bytes()[..], &hx(&kp["sender_key"])[..]);
            assert_eq!(opened.epoch(), epoch);
        }
        assert!(r.rest().is_empty());
        // The sealed key is one of the listed sender keys.
        assert!(
            v["sender_keys"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["key"] == kp["sender_key"]
                    && k["epoch"] == kp["epoch"]
                    && k["author"] == e["author"])
        );
    }
    assert_eq!(seen, 2);
}

/// Checks one envelope vector independently of the validator: id, header layout,
/// signature (if the vector is not about a bad signature or malformed bytes), decryption.
fn check_envelope_bytes(v: &Value, e: &Value) {
    let name = s(&e["name"]);
    let bytes = hx(&e["hex"]);
    assert_eq!(bytes.len() as u64, e["len"].as_u64().unwrap(), "{name}");
    assert_eq!(
        sha256(&[&bytes]),
        h32(&e["id"]),
        "{name}: id = SHA-256(bytes)"
    );
    let reason = e["expected"]["reason"].as_str().unwrap_or("");
    if bytes.len() < generator::offsets::HEADER_LEN + 64 {
        assert_eq!(reason, "malformed", "{name}");
        return;
    }
    let header = parse_header(&bytes);
    let (signed, sig) = bytes.split_at(bytes.len() - 64);
    let sig_ok = ed25519_ok(&header.author, "alertmesh/v1/envelope", signed, sig);
    assert_eq!(sig_ok, reason != "bad_signature", "{name}: signature");
    assert_eq!(
        header.author,
        h32(&node(v, s(&e["author"]))["sign_public"]),
        "{name}: author"
    );

    let decoded = SignedEnvelope::decode(&bytes, usize::MAX);
    if reason == "malformed" {
        assert!(decoded.is_err(), "{name} decodes");
        return;
    }
    let env = decoded.unwrap();
    let dh = env.header();
    assert_eq!(dh.version, header.version);
    assert_eq!(dh.network_id.0, header.network_id);
    assert_eq!(dh.topic_id.0, header.topic_id);
    assert_eq!(dh.author.0, header.author);
    assert_eq!(dh.seq, header.seq);
    assert_eq!(dh.prev.0, header.prev);
    assert_eq!(dh.charter_version, header.charter_version);
    assert_eq!(dh.timestamp_ms, header.timestamp_ms);
    assert_eq!(dh.kind as u32, header.kind);
    assert_eq!(dh.key_epoch, header.key_epoch);
    assert_eq!(dh.tlp as u32, header.tlp);
    assert_eq!(dh.nonce, header.nonce);
    assert_eq!(env.id().0, sha256(&[&bytes]));
    assert_eq!(env.header_bytes().len(), generator::offsets::HEADER_LEN);
    if header.network_id == h32(&v["network_id"]) && s(&e["topic"]) != "no-such-topic" {
        assert_eq!(
            header.topic_id,
            topic_id(v, s(&e["topic"])),
            "{name}: topic"
        );
    }

    if let Some(plain) = e.get("plaintext") {
        let key = hx(&e["sender_key"]);
        let cipher = XChaCha20Poly1305::new(key.as_slice().into());
        let aad = &bytes[..generator::offsets::HEADER_LEN];
        let ct = &bytes[generator::offsets::HEADER_LEN..bytes.len() - 64];
        let opened = cipher
            .decrypt(XNonce::from_slice(&header.nonce), Payload { msg: ct, aad })
            .unwrap();
        assert_eq!(opened, hx(plain), "{name}: plaintext");
        // Another header as associated data does not open it.
        let mut other = aad.to_vec();
        other[generator::offsets::SEQ] ^= 1;
        assert!(
            cipher
                .decrypt(
                    XNonce::from_slice(&header.nonce),
                    Payload {
                        msg: ct,
                        aad: &other
                    }
                )
                .is_err()
        );

        let content = decode_content(dh.kind, &opened).unwrap();
        let c = &e["content"];
        match (&content, s(&c["type"])) {
            (Content::Alert(a), "alert") => {
                assert_eq!(serde_json::to_value(a).unwrap(), c["alert"])
            }
            (Content::Update(u), "update") => {
                assert_eq!(serde_json::to_value(&u.alert).unwrap(), c["alert"]);
                assert_eq!(u.original.to_hex(), s(&c["original"]));
            }
            (Content::Retraction(r), "retraction") => {
                assert_eq!(r.reason, s(&c["reason"]));
                assert_eq!(r.original.to_hex(), s(&c["original"]));
            }
            (other, t) => panic!("{name}: content {other:?} vs {t}"),
        }
        assert_eq!(content.encode(), opened, "{name}: canonical plaintext");
    }
}

fn label(verdict: &Verdict) -> (&'static str, Option<&'static str>, Option<bool>) {
    match verdict {
        Verdict::Accept(a) => ("accept", None, Some(a.gap)),
        Verdict::Ignore(r) => ("ignore", Some(r.label()), None),
        Verdict::Reject(r) => ("reject", Some(r.label()), None),
    }
}

fn expected(e: &Value) -> (&str, Option<&str>, Option<bool>) {
    let x = &e["expected"];
    (s(&x["verdict"]), x["reason"].as_str(), x["gap"].as_bool())
}

#[test]
fn envelopes_and_verdicts() {
    let v = load();
    let charters = v["charters"].as_array().unwrap();
    let genesis = SignedCharter::decode(&hx(&charters[0]["hex"])).unwrap();
    let mut chain =
        CharterChain::from_genesis(genesis.clone(), &CharterHash(h32(&v["genesis_hash"]))).unwrap();
    chain
        .offer(SignedCharter::decode(&hx(&charters[1]["hex"])).unwrap())
        .unwrap();
    let mut certs = CertDirectory::default();
    for n in v["nodes"].as_array().unwrap() {
        if n["in_directory"].as_bool().unwrap() {
            assert!(
                certs
                    .insert(
                        SignedNodeCert::decode(&hx(&n["cert"])).unwrap(),
                        genesis.charter()
                    )
                    .unwrap()
            );
        }
    }
    for c in v["extra_certs"].as_array().unwrap() {
        let cert = SignedNodeCert::decode(&hx(&c["hex"])).unwrap();
        let inserted = certs.insert(cert, genesis.charter());
        if c["in_directory"].as_bool().unwrap() {
            assert_eq!(inserted, Ok(true), "{}", c["name"]);
        } else {
            assert_eq!(
                inserted.map_err(|e| e.label()),
                Err(s(&c["expected"])),
                "{}",
                c["name"]
            );
        }
    }
    let now_ms = v["now_ms"].as_u64().unwrap();
    let mut chains = MemoryChains::default();

    for e in v["envelopes"].as_array().unwrap() {
        check_envelope_bytes(&v, e);
        let bytes = hx(&e["hex"]);
        let ctx = Context {
            charters: &chain,
            certs: &certs,
            chains: &chains,
            now_ms,
        };
        let verdict = Validator::new().validate(&ctx, &bytes, Source::Gossip);
        assert_eq!(label(&verdict), expected(e), "{}: {verdict:?}", e["name"]);
        let Verdict::Accept(accepted) = verdict else {
            unreachable!()
        };
        assert_eq!(accepted.org.0, s(&node(&v, s(&e["author"]))["org_id"]));
        chains.insert(accepted.envelope);
    }

    let mut labels = std::collections::BTreeSet::new();
    for e in v["cases"].as_array().unwrap() {
        check_envelope_bytes(&v, e);
        let ctx = Context {
            charters: &chain,
            certs: &certs,
            chains: &chains,
            now_ms,
        };
        let verdict = Validator::new().validate(&ctx, &hx(&e["hex"]), Source::Gossip);
        assert_eq!(label(&verdict), expected(e), "{}: {verdict:?}", e["name"]);
        labels.insert(label(&verdict).1.unwrap_or("accept"));
    }
    for must in [
        "bad_signature",
        "malformed",
        "too_large",
        "wrong_network",
        "unknown_topic",
        "unknown_charter_version",
        "charter_ahead",
        "unknown_author",
        "ambiguous_author",
        "cert_not_valid",
        "cert_revoked",
        "beyond_cutoff",
        "org_removed",
        "not_publisher",
        "tlp_too_high",
        "bad_payload",
        "from_future",
        "equivocation",
        "chain_conflict",
        "duplicate",
        "accept",
    ] {
        assert!(labels.contains(must), "no case for {must}");
    }
}

#[test]
fn evidence() {
    let v = load();
    let max = generator::MAX_ENVELOPE as usize;
    for x in v["evidence"].as_array().unwrap() {
        let bytes = hx(&x["hex"]);
        // Hand parse: two u64-length-prefixed envelopes.
        let mut r = Reader::new(&bytes);
        let n = r.u64() as usize;
        let first = r.take(n).to_vec();
        let n = r.u64() as usize;
        let second = r.take(n).to_vec();
        assert!(r.rest().is_empty());
        assert_eq!(sha256(&[&first]), h32(&x["first_id"]));
        assert_eq!(sha256(&[&second]), h32(&x["second_id"]));
        let (a, b) = (parse_header(&first), parse_header(&second));
        let author = h32(&node(&v, s(&x["author"]))["sign_public"]);
        assert_eq!((a.author, b.author), (author, author));
        for env in [&first, &second] {
            let (signed, sig) = env.split_at(env.len() - 64);
            assert!(ed25519_ok(&author, "alertmesh/v1/envelope", signed, sig));
        }
        match s(&x["misbehaviour"]) {
            "equivocation" => {
                assert_eq!(a.seq, b.seq);
                assert!(
                    h32(&x["first_id"]) < h32(&x["second_id"]),
                    "smaller id first"
                );
            }
            "chain_conflict" => {
                assert_eq!(a.seq + 1, b.seq);
                assert_ne!(b.prev, sha256(&[&first]));
            }
            other => panic!("{other}"),
        }

        let ev = Evidence::decode(&bytes, max).unwrap();
        assert_eq!(ev.encode(), bytes);
        let proven = ev.verify(max).unwrap();
        assert_eq!(proven.author.0, author);
        assert_eq!(proven.topic.0, topic_id(&v, s(&x["topic"])));
        assert_eq!(proven.seq, x["seq"].as_u64().unwrap());
        assert_eq!(
            (proven.ids.0.0, proven.ids.1.0),
            (h32(&x["first_id"]), h32(&x["second_id"]))
        );
        let want = if s(&x["misbehaviour"]) == "equivocation" {
            Misbehaviour::Equivocation
        } else {
            Misbehaviour::ChainConflict
        };
        assert_eq!(proven.misbehaviour, want);
        // Swapped order is not canonical.
        let swapped = Evidence {
            first: ev.second.clone(),
            second: ev.first.clone(),
        };
        assert!(swapped.verify(max).is_err());
    }
}

#[test]
fn control_messages() {
    let v = load();
    let evidence_envelope = v["envelopes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "dhs-evidence")
        .unwrap();
    for c in v["control_messages"].as_array().unwrap() {
        let bytes = hx(&c["hex"]);
        let mut r = Reader::new(&bytes);
        let variant = r.u32();
        assert_eq!(u64::from(variant), c["variant"].as_u64().unwrap());
        let n = r.u64() as usize;
        let inner = r.take(n).to_vec();
        assert!(r.rest().is_empty());
        let want = match variant {
            0 => hx(&v["charters"][1]["hex"]),
            1 => hx(&node(&v, "fbi-1")["cert"]),
            2 => hx(&evidence_envelope["hex"]),
            _ => panic!("variant"),
        };
        assert_eq!(inner, want);
        let decoded = ControlMessage::decode(&bytes).unwrap();
        let inner2 = match decoded {
            ControlMessage::Charter(b) | ControlMessage::Cert(b) | ControlMessage::Envelope(b) => b,
            ControlMessage::Checkpoint(_) | ControlMessage::SplitView(_) => panic!("variant"),
        };
        assert_eq!(inner2, want);
        let env = SignedEnvelope::decode(&hx(&evidence_envelope["hex"]), usize::MAX).unwrap();
        assert_eq!(env.header().kind, Kind::Evidence);
        assert_eq!(env.header().topic_id.0, topic_id(&v, "_control"));
    }
    // The agreement key type is what key packages address.
    let _: AgreementPublicKey = AgreementPublicKey(h32(&node(&v, "dhs-1")["agree_public"]));
}

/// The request-response messages of PROTOCOL.md §17.2, parsed by hand from the layout.
#[test]
fn wire_messages() {
    use alertmesh_protocol::wire::{Request, Response};
    let v = load();
    let msgs = v["wire_messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 8);
    let disinfo = topic_id(&v, "election-2020/disinfo");
    let fbi_cert = hx(&node(&v, "fbi-1")["cert"]);
    let dhs_cert = hx(&node(&v, "dhs-1")["cert"]);
    let fbi_pub = hx(&node(&v, "fbi-1")["sign_public"]);
    let vec_of_bytes = |r: &mut Reader| -> Vec<Vec<u8>> {
        let n = r.u64() as usize;
        (0..n)
            .map(|_| {
                let len = r.u64() as usize;
                r.take(len).to_vec()
            })
            .collect()
    };
    for m in msgs {
        let name = m["name"].as_str().unwrap();
        let bytes = hx(&m["hex"]);
        let frame = hx(&m["frame"]);
        assert_eq!(frame[..4], (bytes.len() as u32).to_le_bytes(), "{name}");
        assert_eq!(frame[4..], bytes[..], "{name}");
        let mut r = Reader::new(&bytes);
        let variant = r.u32();
        assert_eq!(u64::from(variant), m["variant"].as_u64().unwrap(), "{name}");
        let request = m["message"] == "request";
        match (request, variant) {
            // Hello { cert }
            (_, 0) => {
                let n = r.u64() as usize;
                let cert = r.take(n).to_vec();
                let want = if request { &fbi_cert } else { &dhs_cert };
                assert_eq!(&cert, want, "{name}");
            }
            // SyncRequest { topic, have: Vec<ChainSummary { author, ranges: Vec<(u64, u64)> }> }
            (true, 1) => {
                assert_eq!(r.a32(), disinfo);
                assert_eq!(r.u64(), 1);
                assert_eq!(r.a32().to_vec(), fbi_pub);
                assert_eq!(r.u64(), 2);
                assert_eq!((r.u64(), r.u64(), r.u64(), r.u64()), (1, 2, 4, 4));
            }
            (true, 2) => {}
            // Refused(String)
            (false, 1) => assert_eq!(r.string(), "not admitted"),
            // SyncPage { topic, certs, envelopes, more }
            (false, 2) => {
                assert_eq!(r.a32(), disinfo);
                assert_eq!(vec_of_bytes(&mut r), vec![fbi_cert.clone()]);
                let envs = vec_of_bytes(&mut r);
                assert_eq!(envs.len(), 1);
                let want = v["envelopes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|e| e["name"] == "fbi-update")
                    .unwrap();
                assert_eq!(envs[0], hx(&want["hex"]));
                assert_eq!(r.u8(), 0);
            }
            // Directory { charters, certs }
            (false, 3) => {
                assert_eq!(vec_of_bytes(&mut r), vec![hx(&v["charters"][1]["hex"])]);
                assert_eq!(
                    vec_of_bytes(&mut r),
                    vec![fbi_cert.clone(), dhs_cert.clone()]
                );
            }
            // Busy { retry_after_ms: u32 }
            (false, 4) => assert_eq!(r.u32(), 250),
            _ => panic!("{name}: unexpected variant {variant}"),
        }
        assert!(r.rest().is_empty(), "{name}: trailing bytes");
        // The reference decoder agrees and re-encodes to the same bytes.
        if request {
            assert_eq!(Request::decode(&bytes).unwrap().encode(), bytes, "{name}");
        } else {
            assert_eq!(Response::decode(&bytes).unwrap().encode(), bytes, "{name}");
        }
        // One byte more or less is refused.
        let mut longer = bytes.clone();
        longer.push(0);
        let shorter = &bytes[..bytes.len() - 1];
        if request {
            assert!(Request::decode(&longer).is_err() && Request::decode(shorter).is_err());
        } else {
            assert!(Response::decode(&longer).is_err() && Response::decode(shorter).is_err());
        }
    }
}
