//! Round trips of every wire type (DESIGN.md §6, strict decoding): encode → decode gives
//! the same value and the same bytes; truncations and appended bytes are rejected; random
//! or mutated bytes never panic a decoder, and whatever decodes is canonical.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use alertmesh_protocol::charter::{Cutoff, MAX_ENVELOPE_BYTES};
use alertmesh_protocol::envelope::{Draft, decode_content};
use alertmesh_protocol::sender_key::SealedKey;
use alertmesh_protocol::{AgreementPublicKey, Content, alert::AlertUpdate, alert::Retraction};
use alertmesh_protocol::{
    Alert, AlertKind, CertRequest, Charter, ControlMessage, EnvelopeId, Evidence, Header,
    KeyPackage, Kind, Limits, Member, NetworkId, NodeCert, NodeKey, NodePublicKey, Observable,
    OrgId, OrgPublicKey, OrgRootKey, SenderKey, Severity, SignedCharter, SignedEnvelope,
    SignedNodeCert, Tlp, TopicId, TopicRule, codec,
};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::RngSeed;
use std::collections::BTreeMap;

const MAX: usize = MAX_ENVELOPE_BYTES as usize;

/// 64 cases from a fixed seed: the same inputs on every run (a failure reproduces
/// without a regression file).
fn config() -> ProptestConfig {
    ProptestConfig {
        rng_seed: RngSeed::Fixed(0xa1e7_2020),
        failure_persistence: None,
        ..ProptestConfig::with_cases(64)
    }
}

// ---------------------------------------------------------------- strategies

fn b32() -> impl Strategy<Value = [u8; 32]> {
    any::<[u8; 32]>()
}

/// Arbitrary printable Unicode (not necessarily valid for the charter's rules).
fn text() -> impl Strategy<Value = String> {
    "\\PC{0,20}"
}

/// Non-empty strings within the alert bounds.
fn word() -> impl Strategy<Value = String> {
    "[a-z0-9é😀][ -~é😀]{0,20}"
}

fn org_id() -> impl Strategy<Value = OrgId> {
    "[a-z0-9-]{1,12}".prop_map(OrgId)
}

fn tlp() -> impl Strategy<Value = Tlp> {
    select(vec![
        Tlp::Clear,
        Tlp::Green,
        Tlp::Amber,
        Tlp::AmberStrict,
        Tlp::Red,
    ])
}

fn kind() -> impl Strategy<Value = Kind> {
    select(vec![
        Kind::Alert,
        Kind::Update,
        Kind::Retraction,
        Kind::KeyPackage,
        Kind::Evidence,
    ])
}

fn node_cert() -> impl Strategy<Value = NodeCert> {
    (
        b32(),
        org_id(),
        b32(),
        b32(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(
            |(network, org_id, sign, agree, not_before_ms, not_after_ms, serial)| NodeCert {
                network_id: NetworkId(network),
                org_id,
                node_sign_pub: NodePublicKey(sign),
                node_agree_pub: AgreementPublicKey(agree),
                not_before_ms,
                not_after_ms,
                serial,
            },
        )
}

fn member() -> impl Strategy<Value = Member> {
    (org_id(), text(), b32(), vec(text(), 0..3)).prop_map(|(org_id, name, root, roles)| Member {
        org_id,
        name,
        root_pub: OrgPublicKey(root),
        roles,
    })
}

fn topic_rule() -> impl Strategy<Value = TopicRule> {
    (text(), vec(org_id(), 0..3), vec(org_id(), 0..3), tlp()).prop_map(
        |(name, readers, publishers, max_tlp)| TopicRule {
            name,
            readers,
            publishers,
            max_tlp,
        },
    )
}

fn charter() -> impl Strategy<Value = Charter> {
    let limits = (
        (any::<u32>(), any::<u64>(), any::<u32>(), any::<u32>()),
        (any::<u64>(), any::<u32>(), any::<u32>()),
    )
        .prop_map(|((a, b, c, d), (n, m, k))| Limits {
            max_envelope_bytes: a,
            max_clock_skew_ms: b,
            rate_per_org_per_minute: c,
            rate_burst: d,
            checkpoint_period_ms: n,
            checkpoint_every: m,
            witness_threshold: k,
        });
    let cutoff = (b32(), b32(), any::<u64>()).prop_map(|(a, t, last_seq)| Cutoff {
        author: NodePublicKey(a),
        topic: TopicId(t),
        last_seq,
    });
    (
        b32(),
        text(),
        any::<u64>(),
        b32(),
        any::<u64>(),
        vec(member(), 0..4),
        vec(org_id(), 0..4),
        any::<u32>(),
        vec(topic_rule(), 0..3),
        vec(b32().prop_map(NodePublicKey), 0..3),
        vec(cutoff, 0..3),
        limits,
    )
        .prop_map(
            |(
                network,
                network_name,
                version,
                prev,
                created_ms,
                members,
                governors,
                threshold,
                topics,
                revoked,
                cutoffs,
                limits,
            )| {
                Charter {
                    network_id: NetworkId(network),
                    network_name,
                    version,
                    prev_hash: alertmesh_protocol::CharterHash(prev),
                    created_ms,
                    members,
                    governors,
                    threshold,
                    topics,
                    revoked_certs: revoked,
                    cutoffs,
                    limits,
                }
            },
        )
}

/// Governors (distinct org ids) with the seeds of their root keys.
fn signers() -> impl Strategy<Value = BTreeMap<OrgId, [u8; 32]>> {
    btree_map(org_id(), b32(), 0..4)
}

fn header() -> impl Strategy<Value = Header> {
    (
        any::<u8>(),
        b32(),
        b32(),
        b32(),
        any::<u64>(),
        b32(),
        any::<u64>(),
        any::<u64>(),
        kind(),
        any::<u64>(),
        tlp(),
        any::<[u8; 24]>(),
    )
        .prop_map(
            |(
                version,
                network,
                topic,
                author,
                seq,
                prev,
                charter_version,
                timestamp_ms,
                kind,
                key_epoch,
                tlp,
                nonce,
            )| {
                Header {
                    version,
                    network_id: NetworkId(network),
                    topic_id: TopicId(topic),
                    author: NodePublicKey(author),
                    seq,
                    prev: EnvelopeId(prev),
                    charter_version,
                    timestamp_ms,
                    kind,
                    key_epoch,
                    tlp,
                    nonce,
                }
            },
        )
}

fn observable() -> impl Strategy<Value = Observable> {
    prop_oneof![
        word().prop_map(Observable::Domain),
        word().prop_map(Observable::Url),
        any::<[u8; 4]>().prop_map(Observable::Ipv4),
        any::<[u8; 16]>().prop_map(Observable::Ipv6),
        word().prop_map(Observable::Email),
        (word(), word())
            .prop_map(|(platform, handle)| Observable::SocialAccount { platform, handle }),
        word().prop_map(Observable::Hashtag),
        b32().prop_map(Observable::FileSha256),
        word().prop_map(Observable::Phone),
        (word(), word()).prop_map(|(network, id)| Observable::AdId { network, id }),
    ]
}

/// Alerts that pass `Alert::check`.
fn alert() -> impl Strategy<Value = Alert> {
    (
        select(vec![
            AlertKind::Indicator,
            AlertKind::Campaign,
            AlertKind::AccountNetwork,
            AlertKind::Advisory,
            AlertKind::Sighting,
        ]),
        word(),
        text(),
        select(vec![
            Severity::Low,
            Severity::Medium,
            Severity::High,
            Severity::Critical,
        ]),
        0..=100u8,
        vec(observable(), 0..4),
        vec(word(), 0..3),
        vec(word(), 0..3),
        any::<u64>(),
        proptest::option::of(any::<u64>()),
        vec(b32().prop_map(EnvelopeId), 0..3),
    )
        .prop_map(
            |(
                kind,
                title,
                description,
                severity,
                confidence,
                observables,
                labels,
                references,
                from,
                until,
                related,
            )| {
                Alert {
                    kind,
                    title,
                    description,
                    severity,
                    confidence,
                    observables,
                    labels,
                    references,
                    valid_from_ms: from,
                    valid_until_ms: until.map(|d| from.saturating_add(d)),
                    related,
                    stix: None,
                }
            },
        )
}

fn content() -> impl Strategy<Value = Content> {
    prop_oneof![
        alert().prop_map(Content::Alert),
        (b32(), alert()).prop_map(|(o, alert)| Content::Update(AlertUpdate {
            original: EnvelopeId(o),
            alert
        })),
        (b32(), text()).prop_map(|(o, reason)| Content::Retraction(Retraction {
            original: EnvelopeId(o),
            reason
        })),
    ]
}

fn content_kind(c: &Content) -> Kind {
    match c {
        Content::Alert(_) => Kind::Alert,
        Content::Update(_) => Kind::Update,
        Content::Retraction(_) => Kind::Retraction,
    }
}

fn key_package() -> impl Strategy<Value = KeyPackage> {
    let entry = (b32(), b32(), vec(any::<u8>(), 48)).prop_map(|(r, enc, ct)| SealedKey {
        recipient: AgreementPublicKey(r),
        enc,
        ciphertext: ct.try_into().unwrap(),
    });
    (b32(), any::<u64>(), vec(entry, 0..4)).prop_map(|(t, epoch, entries)| KeyPackage {
        topic_id: TopicId(t),
        epoch,
        entries,
    })
}

fn evidence() -> impl Strategy<Value = Evidence> {
    (vec(any::<u8>(), 0..200), vec(any::<u8>(), 0..200))
        .prop_map(|(first, second)| Evidence { first, second })
}

fn control() -> impl Strategy<Value = ControlMessage> {
    prop_oneof![
        vec(any::<u8>(), 0..200).prop_map(ControlMessage::Charter),
        vec(any::<u8>(), 0..200).prop_map(ControlMessage::Cert),
        vec(any::<u8>(), 0..200).prop_map(ControlMessage::Envelope),
    ]
}

fn draft() -> impl Strategy<Value = Draft> {
    let seq = prop_oneof![Just(1u64), 2..10u64, (1..=u64::MAX)];
    (
        b32(),
        b32(),
        seq,
        b32(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        tlp(),
    )
        .prop_map(
            |(network, topic, seq, prev, charter_version, timestamp_ms, key_epoch, tlp)| Draft {
                network_id: NetworkId(network),
                topic_id: TopicId(topic),
                seq,
                prev: if seq == 1 {
                    EnvelopeId::default()
                } else {
                    EnvelopeId(prev)
                },
                charter_version,
                timestamp_ms,
                kind: Kind::Alert,
                key_epoch,
                tlp,
            },
        )
}

/// What an envelope carries.
#[derive(Debug, Clone)]
enum Body {
    Encrypted(Box<Content>),
    Clear(Kind, Vec<u8>),
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        content().prop_map(|c| Body::Encrypted(Box::new(c))),
        (
            select(vec![Kind::KeyPackage, Kind::Evidence]),
            vec(any::<u8>(), 0..200)
        )
            .prop_map(|(k, p)| Body::Clear(k, p)),
    ]
}

/// An envelope sealed by a key from `author`, with the sender key used (if encrypted).
fn envelope() -> impl Strategy<Value = (SignedEnvelope, Option<(SenderKey, Content)>)> {
    (draft(), body(), b32(), b32(), any::<u64>()).prop_map(
        |(mut draft, body, author, key, seed)| {
            let author = NodeKey::from_secret_bytes(&author);
            match body {
                Body::Encrypted(content) => {
                    draft.kind = content_kind(&content);
                    let key = SenderKey::from_bytes(draft.key_epoch, &key);
                    let env = SignedEnvelope::seal_encrypted(
                        &author,
                        &draft,
                        &key,
                        &content.encode(),
                        &mut common::rng(seed),
                    )
                    .unwrap();
                    (env, Some((key, *content)))
                }
                Body::Clear(kind, payload) => {
                    draft.kind = kind;
                    (
                        SignedEnvelope::seal_clear(&author, &draft, &payload).unwrap(),
                        None,
                    )
                }
            }
        },
    )
}

/// A node cert co-signed by a node key and signed by a root key, both from seeds (the
/// cert names the node key).
fn signed_cert() -> impl Strategy<Value = (SignedNodeCert, OrgPublicKey)> {
    (node_cert(), b32(), b32()).prop_map(|(cert, seed, node_seed)| {
        let root = OrgRootKey::from_secret_bytes(&seed);
        let node = NodeKey::from_secret_bytes(&node_seed);
        let cert = NodeCert {
            node_sign_pub: node.public(),
            ..cert
        };
        (
            SignedNodeCert::issue(&root, cert.request(&node)).unwrap(),
            root.public(),
        )
    })
}

/// A charter signed by every signer, with an authority charter in which exactly the
/// signers govern (threshold = their number).
fn signed_charter() -> impl Strategy<Value = (SignedCharter, Charter)> {
    (charter(), signers()).prop_map(|(body, signers)| {
        let mut signed = SignedCharter::unsigned(body.clone());
        let mut authority = body;
        authority.members.clear();
        authority.governors.clear();
        for (org, seed) in &signers {
            let root = OrgRootKey::from_secret_bytes(seed);
            signed.sign(org, &root);
            authority.members.push(Member {
                org_id: org.clone(),
                name: String::new(),
                root_pub: root.public(),
                roles: vec![],
            });
            authority.governors.push(org.clone());
        }
        authority.threshold = signers.len() as u32;
        (signed, authority)
    })
}

// ---------------------------------------------------------------- helpers

/// Every strict prefix and the input plus one byte.
/// `bytes`, the encoding of `value`, decodes back to it and re-encodes to the same bytes,
/// and no damaged copy of it decodes.
fn check_round_trip<T: PartialEq + std::fmt::Debug, E>(
    value: &T,
    bytes: &[u8],
    extra: u8,
    encode: impl Fn(&T) -> Vec<u8>,
    decode: impl Fn(&[u8]) -> Result<T, E>,
) -> Result<(), TestCaseError> {
    let decoded = decode(bytes).map_err(|_| TestCaseError::fail("does not decode"))?;
    prop_assert_eq!(&decoded, value);
    prop_assert_eq!(encode(&decoded), bytes.to_vec());
    for bad in damaged(bytes, extra) {
        prop_assert!(decode(&bad).is_err());
    }
    Ok(())
}

fn damaged(bytes: &[u8], extra: u8) -> impl Iterator<Item = Vec<u8>> + '_ {
    (0..bytes.len())
        .map(|cut| bytes[..cut].to_vec())
        .chain(std::iter::once({
            let mut longer = bytes.to_vec();
            longer.push(extra);
            longer
        }))
}

/// An envelope decoder result counts as rejected when decoding or the signature fails:
/// the payload has no length prefix, so only the signature can notice a cut there.
fn envelope_rejected(bytes: &[u8]) -> bool {
    match SignedEnvelope::decode(bytes, MAX) {
        Err(_) => true,
        Ok(env) => env.verify_signature().is_err(),
    }
}

/// Runs every decoder on `bytes`. Whatever decodes must be canonical: re-encoding
/// reproduces the input.
fn decode_all(bytes: &[u8]) {
    if let Ok(c) = SignedNodeCert::decode(bytes) {
        assert_eq!(c.as_bytes(), bytes);
        assert_eq!(codec::encode(c.cert()), bytes[..bytes.len() - 128]);
    }
    if let Ok(r) = CertRequest::decode(bytes) {
        assert_eq!(r.as_bytes(), bytes);
        assert_eq!(codec::encode(r.cert()), bytes[..bytes.len() - 64]);
        let _ = r.verify_pop();
    }
    if let Ok(c) = SignedCharter::decode(bytes) {
        assert_eq!(c.as_bytes(), bytes);
        let mut again = codec::encode(c.charter());
        again.extend_from_slice(&codec::encode(&c.signatures().to_vec()));
        assert_eq!(again, bytes);
    }
    if let Ok(e) = SignedEnvelope::decode(bytes, MAX) {
        assert_eq!(e.as_bytes(), bytes);
        assert_eq!(codec::encode(e.header()), e.header_bytes());
        let _ = e.verify_signature();
    }
    if let Ok(p) = KeyPackage::decode(bytes) {
        assert_eq!(p.encode(), bytes);
    }
    if let Ok(e) = Evidence::decode(bytes, MAX) {
        assert_eq!(e.encode(), bytes);
        let _ = e.verify(MAX);
    }
    if let Ok(m) = ControlMessage::decode(bytes) {
        assert_eq!(m.encode(), bytes);
    }
    if let Ok(h) = codec::decode_exact::<Header>(bytes, MAX) {
        assert_eq!(codec::encode(&h), bytes);
    }
    for kind in [
        Kind::Alert,
        Kind::Update,
        Kind::Retraction,
        Kind::KeyPackage,
        Kind::Evidence,
    ] {
        if let Ok(c) = decode_content(kind, bytes) {
            assert_eq!(c.encode(), bytes);
        }
    }
}

/// Overwrites bytes of `bytes` at the given positions.
fn mutate(bytes: &[u8], edits: &[(Index, u8)]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    if !out.is_empty() {
        for (i, b) in edits {
            let at = i.index(out.len());
            out[at] = *b;
        }
    }
    out
}

// ---------------------------------------------------------------- round trips

proptest! {
    #![proptest_config(config())]

    #[test]
    fn node_cert_round_trip((signed, root) in signed_cert(), extra in any::<u8>()) {
        let bytes = signed.as_bytes();
        let decoded = SignedNodeCert::decode(bytes).unwrap();
        prop_assert_eq!(&decoded, &signed);
        prop_assert_eq!(decoded.as_bytes(), bytes);
        prop_assert_eq!(decoded.verify(&signed.cert().network_id, &root).is_ok(),
            signed.cert().not_after_ms >= signed.cert().not_before_ms);
        // The body alone, then the request (body and node signature).
        let body = codec::encode(signed.cert());
        prop_assert_eq!(&body[..], &bytes[..bytes.len() - 128]);
        let request = CertRequest::decode(signed.request_bytes()).unwrap();
        prop_assert_eq!(request.cert(), signed.cert());
        prop_assert_eq!(request.verify_pop(), Ok(()));
        for bad in damaged(signed.request_bytes(), extra) {
            prop_assert!(CertRequest::decode(&bad).map(|r| r.verify_pop().is_err()).unwrap_or(true));
        }
        let cert: NodeCert = codec::decode_exact(&body, 1024).unwrap();
        prop_assert_eq!(&cert, signed.cert());
        for bad in damaged(bytes, extra) {
            prop_assert!(SignedNodeCert::decode(&bad).is_err(), "accepted {} of {} bytes", bad.len(), bytes.len());
        }
        for bad in damaged(&body, extra) {
            prop_assert!(codec::decode_exact::<NodeCert>(&bad, 1024).is_err());
        }
    }

    #[test]
    fn charter_round_trip((signed, authority) in signed_charter(), extra in any::<u8>()) {
        let bytes = signed.as_bytes();
        let decoded = SignedCharter::decode(bytes).unwrap();
        prop_assert_eq!(&decoded, &signed);
        prop_assert_eq!(decoded.as_bytes(), bytes);
        prop_assert_eq!(decoded.hash(), signed.hash());
        prop_assert_eq!(decoded.signatures().len(), authority.governors.len());
        // The signatures survive the trip and verify against the signers' keys.
        prop_assert_eq!(decoded.verify_signatures(&authority), Ok(()));
        prop_assert_eq!(codec::encode(decoded.charter()), decoded.body_bytes());
        let body: Charter = codec::decode_exact(decoded.body_bytes(), 1 << 20).unwrap();
        prop_assert_eq!(&body, signed.charter());
        for bad in damaged(bytes, extra) {
            prop_assert!(SignedCharter::decode(&bad).is_err(), "accepted {} of {} bytes", bad.len(), bytes.len());
        }
    }

    #[test]
    fn header_round_trip(header in header(), extra in any::<u8>()) {
        let bytes = codec::encode(&header);
        prop_assert_eq!(bytes.len(), 193);
        let decoded: Header = codec::decode_exact(&bytes, MAX).unwrap();
        prop_assert_eq!(&decoded, &header);
        prop_assert_eq!(codec::encode(&decoded), bytes.clone());
        for bad in damaged(&bytes, extra) {
            prop_assert!(codec::decode_exact::<Header>(&bad, MAX).is_err());
        }
    }

    #[test]
    fn envelope_round_trip((env, key) in envelope(), extra in any::<u8>()) {
        let bytes = env.as_bytes();
        let decoded = SignedEnvelope::decode(bytes, MAX).unwrap();
        prop_assert_eq!(&decoded, &env);
        prop_assert_eq!(decoded.as_bytes(), bytes);
        prop_assert_eq!(decoded.id(), env.id());
        prop_assert_eq!(decoded.verify_signature(), Ok(()));
        prop_assert_eq!(codec::encode(decoded.header()), decoded.header_bytes());
        prop_assert_eq!(decoded.header().kind.is_encrypted(), key.is_some());
        match key {
            Some((key, content)) => {
                prop_assert_eq!(decoded.open(&key).unwrap(), content);
            }
            None => {
                prop_assert_eq!(decoded.header().nonce, [0u8; 24]);
            }
        }
        for bad in damaged(bytes, extra) {
            prop_assert!(envelope_rejected(&bad), "accepted {} of {} bytes", bad.len(), bytes.len());
        }
    }

    #[test]
    fn key_package_round_trip(pkg in key_package(), extra in any::<u8>()) {
        check_round_trip(&pkg, &pkg.encode(), extra, KeyPackage::encode, KeyPackage::decode)?;
    }

    #[test]
    fn evidence_round_trip(evidence in evidence(), extra in any::<u8>()) {
        check_round_trip(&evidence, &evidence.encode(), extra, Evidence::encode, |b| Evidence::decode(b, MAX))?;
    }

    #[test]
    fn control_message_round_trip(msg in control(), extra in any::<u8>()) {
        check_round_trip(&msg, &msg.encode(), extra, ControlMessage::encode, ControlMessage::decode)?;
    }

    #[test]
    fn content_round_trip(content in content(), extra in any::<u8>()) {
        let kind = content_kind(&content);
        let bytes = content.encode();
        check_round_trip(&content, &bytes, extra, Content::encode, |b| decode_content(kind, b))?;
        // The plaintext of one kind is not valid content of the clear kinds.
        prop_assert!(decode_content(Kind::KeyPackage, &bytes).is_err());
        prop_assert!(decode_content(Kind::Evidence, &bytes).is_err());
    }

    // ------------------------------------------------------------ no panics

    #[test]
    fn random_bytes_never_panic(bytes in vec(any::<u8>(), 0..600)) {
        decode_all(&bytes);
    }

    #[test]
    fn mutated_encodings_never_panic(
        (env, _) in envelope(),
        (cert, _) in signed_cert(),
        (charter, _) in signed_charter(),
        pkg in key_package(),
        content in content(),
        control in control(),
        edits in vec((any::<Index>(), any::<u8>()), 1..4),
    ) {
        let evidence = Evidence { first: env.as_bytes().to_vec(), second: cert.as_bytes().to_vec() };
        let inputs = [
            env.into_bytes(),
            cert.as_bytes().to_vec(),
            charter.as_bytes().to_vec(),
            pkg.encode(),
            content.encode(),
            control.encode(),
            evidence.encode(),
        ];
        for input in &inputs {
            decode_all(&mutate(input, &edits));
        }
    }
}

// ---------------------------------------------------------------- fixed cases

#[test]
fn envelope_decoder_refuses_what_the_header_forbids() {
    let author = NodeKey::from_secret_bytes(&[1; 32]);
    let mut draft = Draft {
        network_id: NetworkId([2; 32]),
        topic_id: TopicId([3; 32]),
        seq: 1,
        prev: EnvelopeId::default(),
        charter_version: 1,
        timestamp_ms: common::NOW,
        kind: Kind::Evidence,
        key_epoch: 0,
        tlp: Tlp::Clear,
    };
    let ok = SignedEnvelope::seal_clear(&author, &draft, b"x").unwrap();
    assert!(SignedEnvelope::decode(ok.as_bytes(), MAX).is_ok());

    let reseal = |edit: &dyn Fn(&mut Header)| {
        let mut h = ok.header().clone();
        edit(&mut h);
        let mut signed = codec::encode(&h);
        signed.extend_from_slice(b"x");
        common::resign(&author, &signed)
    };
    for (what, bytes) in [
        ("version", reseal(&|h| h.version = 2)),
        ("seq 0", reseal(&|h| h.seq = 0)),
        ("prev on seq 1", reseal(&|h| h.prev = EnvelopeId([1; 32]))),
        ("nonce on a clear kind", reseal(&|h| h.nonce = [1; 24])),
    ] {
        assert!(
            SignedEnvelope::decode(&bytes, MAX).is_err(),
            "{what} accepted"
        );
    }
    // Too large for the caller's limit, and shorter than a header plus signature.
    assert!(SignedEnvelope::decode(ok.as_bytes(), ok.as_bytes().len() - 1).is_err());
    assert!(SignedEnvelope::decode(&ok.as_bytes()[..193 + 63], MAX).is_err());
    draft.kind = Kind::Alert;
    assert!(SignedEnvelope::seal_clear(&author, &draft, b"x").is_err());
}

#[test]
fn invalid_tags_and_variants_refused() {
    // An Option tag other than 0/1 (Alert.valid_until_ms).
    let alert = common::sample_alert();
    let bytes = codec::encode(&alert);
    // valid_until_ms (None = one 0 byte) sits before `related` (8-byte length 0).
    let tag_at = bytes.len() - 9;
    assert_eq!(bytes[tag_at], 0);
    let mut bad = bytes.clone();
    bad[tag_at] = 2;
    assert!(decode_content(Kind::Alert, &bad).is_err());
    // An out-of-range enum variant (Tlp in a header).
    let author = NodeKey::from_secret_bytes(&[1; 32]);
    let draft = Draft {
        network_id: NetworkId([2; 32]),
        topic_id: TopicId([3; 32]),
        seq: 1,
        prev: EnvelopeId::default(),
        charter_version: 1,
        timestamp_ms: 0,
        kind: Kind::KeyPackage,
        key_epoch: 0,
        tlp: Tlp::Red,
    };
    let env = SignedEnvelope::seal_clear(&author, &draft, b"").unwrap();
    let mut bytes = env.as_bytes().to_vec();
    // tlp is the u32 before the 24-byte nonce.
    let tlp_at = 193 - 24 - 4;
    assert_eq!(bytes[tlp_at], 4);
    bytes[tlp_at] = 5;
    assert!(SignedEnvelope::decode(&bytes, MAX).is_err());
}

#[test]
fn evidence_size_bound_saturates() {
    // Any max_envelope is safe, including ones whose bound would overflow.
    let evidence = Evidence {
        first: vec![1; 10],
        second: vec![2; 20],
    };
    let bytes = evidence.encode();
    assert_eq!(bytes.len(), 8 + 10 + 8 + 20);
    for max in [usize::MAX, usize::MAX - 7, usize::MAX / 2] {
        assert_eq!(Evidence::decode(&bytes, max), Ok(evidence.clone()), "{max}");
        assert_eq!(Evidence::max_encoded_len(max), usize::MAX, "{max}");
    }
    assert_eq!(Evidence::max_encoded_len(100), 216);
    // The bound is 2 × (max + 8) on the whole encoding: 46 bytes fit with max 15, not 14.
    assert!(Evidence::decode(&bytes, 15).is_ok());
    assert!(matches!(
        Evidence::decode(&bytes, 14),
        Err(alertmesh_protocol::DecodeError::TooLarge { .. })
    ));
    // Garbage with a huge max is still refused without panicking.
    assert!(Evidence::decode(&[0xff; 40], usize::MAX).is_err());
}
