//! Deterministic known-answer vectors for PROTOCOL.md.
//!
//! Shared by the `gen-vectors` example (which prints them) and `protocol/tests/vectors.rs`
//! (which checks them and regenerates them to catch drift). Everything comes from one
//! `rand_chacha` 0.3 `ChaCha20Rng::seed_from_u64(SEED)`: keys, the network id, sender keys,
//! XChaCha20 nonces and the HPKE ephemeral keys (through the seed the crate draws for its
//! HPKE RNG). The order of draws is the order of the code below; changing it changes every
//! vector after it, which the drift test reports.
//!
//! TEST KEYS ONLY. Never use any key from these vectors for anything else.
#![allow(dead_code, missing_docs, clippy::unwrap_used, clippy::expect_used)]

use alertmesh_protocol::alert::{
    Alert, AlertKind, AlertUpdate, Content, Observable, Retraction, Severity, Tlp,
};
use alertmesh_protocol::cert::{NodeCert, SignedNodeCert};
use alertmesh_protocol::charter::{Charter, Cutoff, Limits, Member, SignedCharter, TopicRule};
use alertmesh_protocol::codec;
use alertmesh_protocol::control::ControlMessage;
use alertmesh_protocol::envelope::{Draft, Kind, SignedEnvelope};
use alertmesh_protocol::evidence::Evidence;
use alertmesh_protocol::ids::{CharterHash, EnvelopeId, NetworkId, OrgId, TopicId, tags};
use alertmesh_protocol::keys::{AgreementKey, NodeKey, OrgRootKey};
use alertmesh_protocol::sender_key::{KeyPackage, SenderKey};
use alertmesh_protocol::wire::{
    ChainSummary, Directory, Hello, Request, Response, SyncPage, SyncRequest,
};
use rand_chacha08::ChaCha20Rng;
use rand_chacha08::rand_core::{RngCore, SeedableRng};
use serde::Serialize;
use std::fmt::Write as _;

/// The RNG seed.
pub const SEED: u64 = 2020;
/// Start of certificate validity and the genesis' creation time (2020-09-13T12:26:40Z).
pub const T0: u64 = 1_600_000_000_000;
/// The validator's clock for every vector.
pub const NOW_MS: u64 = T0 + 3_600_000;
/// Certificate lifetime.
pub const CERT_LIFETIME_MS: u64 = 365 * 24 * 3_600_000;
/// The vectors' charter limit on envelope size (small, so the too-large vector stays small).
pub const MAX_ENVELOPE: u32 = 4096;
/// The vectors' allowed clock skew.
pub const SKEW_MS: u64 = 30_000;
/// The topic names.
pub const DISINFO: &str = "election-2020/disinfo";
/// The second topic.
pub const VOTING: &str = "voting-infra";

/// Byte offsets of the header fields (the header is always 193 bytes).
pub mod offsets {
    pub const VERSION: usize = 0;
    pub const NETWORK_ID: usize = 1;
    pub const TOPIC_ID: usize = 33;
    pub const AUTHOR: usize = 65;
    pub const SEQ: usize = 97;
    pub const PREV: usize = 105;
    pub const CHARTER_VERSION: usize = 137;
    pub const TIMESTAMP_MS: usize = 145;
    pub const KIND: usize = 153;
    pub const KEY_EPOCH: usize = 157;
    pub const TLP: usize = 165;
    pub const NONCE: usize = 169;
    pub const HEADER_LEN: usize = 193;
}

#[derive(Serialize)]
pub struct Vectors {
    pub about: &'static str,
    pub command: &'static str,
    pub seed: u64,
    pub now_ms: u64,
    pub setup: Setup,
    pub network_id: String,
    pub network_name: String,
    pub orgs: Vec<OrgVector>,
    pub nodes: Vec<NodeVector>,
    pub charters: Vec<CharterVector>,
    pub genesis_hash: String,
    pub topics: Vec<TopicVector>,
    pub sender_keys: Vec<SenderKeyVector>,
    pub envelopes: Vec<EnvelopeVector>,
    pub cases: Vec<EnvelopeVector>,
    pub extra_certs: Vec<CertVector>,
    pub evidence: Vec<EvidenceVector>,
    pub control_messages: Vec<ControlVector>,
    pub wire_messages: Vec<WireVector>,
}

#[derive(Serialize)]
pub struct Setup {
    pub charters: &'static str,
    pub cert_directory: &'static str,
    pub envelopes: &'static str,
    pub cases: &'static str,
    pub source: &'static str,
}

#[derive(Serialize)]
pub struct OrgVector {
    pub org_id: String,
    pub name: String,
    pub governor: bool,
    pub root_secret: String,
    pub root_public: String,
}

#[derive(Serialize)]
pub struct NodeVector {
    pub name: String,
    pub org_id: String,
    pub sign_secret: String,
    pub sign_public: String,
    pub agree_secret: String,
    pub agree_public: String,
    pub cert: String,
    pub in_directory: bool,
}

/// A certificate beyond each node's own: `expected` is `valid` or the `CertError` label
/// its verification fails with.
#[derive(Serialize)]
pub struct CertVector {
    pub name: String,
    pub description: String,
    pub node: String,
    pub org_id: String,
    pub hex: String,
    pub in_directory: bool,
    pub expected: &'static str,
}

#[derive(Serialize)]
pub struct CharterVector {
    pub version: u64,
    pub hex: String,
    pub body_len: usize,
    pub hash: String,
    pub signers: Vec<String>,
}

#[derive(Serialize)]
pub struct TopicVector {
    pub name: String,
    pub topic_id: String,
    pub gossip_name: String,
}

#[derive(Serialize)]
pub struct SenderKeyVector {
    pub author: String,
    pub topic: String,
    pub epoch: u64,
    pub key: String,
}

#[derive(Serialize)]
pub struct Expected {
    pub verdict: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gap: Option<bool>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentJson {
    Alert {
        alert: Alert,
    },
    Update {
        original: EnvelopeId,
        alert: Alert,
    },
    Retraction {
        original: EnvelopeId,
        reason: String,
    },
}

#[derive(Serialize)]
pub struct KeyPackageVector {
    pub payload: String,
    pub epoch: u64,
    pub recipients: Vec<String>,
    pub sender_key: String,
}

#[derive(Serialize)]
pub struct EnvelopeVector {
    pub name: String,
    pub description: String,
    pub author: String,
    pub topic: String,
    pub hex: String,
    pub len: usize,
    pub id: String,
    pub expected: Expected,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plaintext: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<ContentJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_package: Option<KeyPackageVector>,
}

#[derive(Serialize)]
pub struct EvidenceVector {
    pub name: String,
    pub hex: String,
    pub misbehaviour: &'static str,
    pub author: String,
    pub topic: String,
    pub seq: u64,
    pub first_id: String,
    pub second_id: String,
}

#[derive(Serialize)]
pub struct ControlVector {
    pub name: String,
    pub variant: u32,
    pub hex: String,
}

/// One message of the request-response protocol `/alertmesh/req/1` (PROTOCOL.md §17.2).
#[derive(Serialize)]
pub struct WireVector {
    pub name: String,
    pub description: String,
    /// `request` or `response`.
    pub message: &'static str,
    pub variant: u32,
    /// `encode(message)`, without the frame's length prefix.
    pub hex: String,
    /// The whole frame on the stream: `u32 LE length ‖ encode(message)`.
    pub frame: String,
}

struct Node {
    name: &'static str,
    org: OrgId,
    key: NodeKey,
    agree: AgreementKey,
    cert: SignedNodeCert,
    in_directory: bool,
}

fn h(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

fn accept(gap: bool) -> Expected {
    Expected {
        verdict: "accept",
        reason: None,
        gap: Some(gap),
    }
}

fn reject(reason: &'static str) -> Expected {
    Expected {
        verdict: "reject",
        reason: Some(reason),
        gap: None,
    }
}

fn ignore(reason: &'static str) -> Expected {
    Expected {
        verdict: "ignore",
        reason: Some(reason),
        gap: None,
    }
}

/// Re-signs envelope bytes whose header or payload were patched: the last 64 bytes are
/// replaced by the author's signature over everything before them.
fn resign(key: &NodeKey, mut bytes: Vec<u8>) -> Vec<u8> {
    let n = bytes.len() - 64;
    let sig = key.sign(tags::ENVELOPE, &bytes[..n]);
    bytes[n..].copy_from_slice(&sig);
    bytes
}

fn env_vector(
    name: &str,
    description: &str,
    author: &Node,
    topic: &str,
    bytes: &[u8],
    expected: Expected,
) -> EnvelopeVector {
    EnvelopeVector {
        name: name.into(),
        description: description.into(),
        author: author.name.into(),
        topic: topic.into(),
        hex: h(bytes),
        len: bytes.len(),
        id: h(&alertmesh_protocol::ids::sha256(bytes)),
        expected,
        sender_key: None,
        plaintext: None,
        content: None,
        key_package: None,
    }
}

/// A case: (name, description, edit of the bytes, re-signed, reject reason).
type ByteEdit = (
    &'static str,
    &'static str,
    fn(&mut Vec<u8>),
    bool,
    &'static str,
);

/// A case: (name, description, author, sender key, topic, draft, expected).
type SealedCase<'a> = (
    &'a str,
    &'a str,
    &'a Node,
    &'a SenderKey,
    &'a str,
    Draft,
    Expected,
);

/// The cases in order, each sealed from its draft over `plaintext`.
fn sealed_cases(
    rng: &mut ChaCha20Rng,
    plaintext: &[u8],
    rows: Vec<SealedCase>,
) -> Vec<EnvelopeVector> {
    rows.into_iter()
        .map(|(name, description, node, key, topic, draft, expected)| {
            let e = SignedEnvelope::seal_encrypted(&node.key, &draft, key, plaintext, rng).unwrap();
            env_vector(name, description, node, topic, e.as_bytes(), expected)
        })
        .collect()
}

fn with_plain(
    mut v: EnvelopeVector,
    key: &SenderKey,
    plaintext: &[u8],
    content: ContentJson,
) -> EnvelopeVector {
    v.sender_key = Some(h(key.secret_bytes().as_ref()));
    v.plaintext = Some(h(plaintext));
    v.content = Some(content);
    v
}

fn phishing_alert() -> Alert {
    Alert {
        kind: AlertKind::Indicator,
        title: "Phishing domain impersonating county election office".into(),
        description: "Credential phishing pages target poll workers with fake training sign-ups."
            .into(),
        severity: Severity::High,
        confidence: 80,
        observables: vec![
            Observable::Domain("vote-county-example.com".into()),
            Observable::Url("https://vote-county-example.com/poll-worker/login".into()),
            Observable::Ipv4([192, 0, 2, 7]),
            Observable::SocialAccount {
                platform: "example-social".into(),
                handle: "@fake_poll_news".into(),
            },
        ],
        labels: vec!["election-2020".into(), "phishing".into()],
        references: vec!["https://example.invalid/case/2020-0917".into()],
        valid_from_ms: T0,
        valid_until_ms: Some(T0 + 30 * 24 * 3_600_000),
        related: vec![],
        stix: None,
    }
}

fn network_alert(related: EnvelopeId) -> Alert {
    Alert {
        kind: AlertKind::AccountNetwork,
        title: "Coordinated accounts amplifying a voter-suppression narrative".into(),
        description: "Takedown notice: 212 accounts created within 48 hours, shared ad spend."
            .into(),
        severity: Severity::Medium,
        confidence: 65,
        observables: vec![
            Observable::SocialAccount {
                platform: "example-social".into(),
                handle: "@stay_home_nov3".into(),
            },
            Observable::Hashtag("StayHomeNov3".into()),
            Observable::AdId {
                network: "example-ads".into(),
                id: "cmp-5501".into(),
            },
            Observable::Phone("+15555550123".into()),
        ],
        labels: vec!["election-2020".into(), "inauthentic-behavior".into()],
        references: vec![],
        valid_from_ms: T0 + 600_000,
        valid_until_ms: None,
        related: vec![related],
        stix: None,
    }
}

fn infra_alert() -> Alert {
    Alert {
        kind: AlertKind::Advisory,
        title: "Malware sample targeting voter registration database servers".into(),
        description: "Web shell found on a state registration portal; hash and C2 below.".into(),
        severity: Severity::Critical,
        confidence: 90,
        observables: vec![
            Observable::FileSha256([0xab; 32]),
            Observable::Ipv6([
                0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x53,
            ]),
            Observable::Email("registrar-support@example.invalid".into()),
        ],
        labels: vec!["voting-infra".into()],
        references: vec!["CISA-2020-XYZ (example)".into()],
        valid_from_ms: T0 + 1_200_000,
        valid_until_ms: None,
        related: vec![],
        stix: None,
    }
}

fn plain_alert(title: &str, description: String) -> Alert {
    Alert {
        kind: AlertKind::Sighting,
        title: title.into(),
        description,
        severity: Severity::Low,
        confidence: 50,
        observables: vec![Observable::Domain("vote-county-example.com".into())],
        labels: vec![],
        references: vec![],
        valid_from_ms: T0,
        valid_until_ms: None,
        related: vec![],
        stix: None,
    }
}

/// Builds every vector.
pub fn build() -> Vectors {
    let mut rng = ChaCha20Rng::seed_from_u64(SEED);

    // --- network, orgs, nodes -------------------------------------------------------
    let mut id = [0u8; 32];
    rng.fill_bytes(&mut id);
    let net = NetworkId(id);
    let network_name = "alertmesh test vectors (TEST KEYS ONLY)".to_string();

    let org_specs: [(&str, &str, &str, bool); 4] = [
        (
            "fbi",
            "Federal Bureau of Investigation (test)",
            "law-enforcement",
            true,
        ),
        (
            "dhs",
            "Department of Homeland Security (test)",
            "government",
            true,
        ),
        (
            "platform-a",
            "Example Social Platform A (test)",
            "platform",
            true,
        ),
        (
            "platform-b",
            "Example Search Platform B (test)",
            "platform",
            false,
        ),
    ];
    let roots: Vec<OrgRootKey> = org_specs
        .iter()
        .map(|_| OrgRootKey::generate(&mut rng))
        .collect();
    let members: Vec<Member> = org_specs
        .iter()
        .zip(&roots)
        .map(|(s, root)| Member {
            org_id: OrgId::new(s.0).unwrap(),
            name: s.1.into(),
            root_pub: root.public(),
            roles: vec![s.2.into()],
        })
        .collect();
    let org = |i: usize| members[i].org_id.clone();

    // (name, org index, serial, in directory)
    let node_specs: [(&'static str, usize, u64, bool); 5] = [
        ("fbi-1", 0, 1, true),
        ("dhs-1", 1, 1, true),
        ("platform-a-1", 2, 1, true),
        ("platform-b-1", 3, 1, true),
        ("platform-a-2", 2, 2, false),
    ];
    let nodes: Vec<Node> = node_specs
        .iter()
        .map(|&(name, o, serial, in_directory)| {
            let key = NodeKey::generate(&mut rng);
            let agree = AgreementKey::generate(&mut rng);
            let request = NodeCert {
                network_id: net,
                org_id: org(o),
                node_sign_pub: key.public(),
                node_agree_pub: agree.public(),
                not_before_ms: T0,
                not_after_ms: T0 + CERT_LIFETIME_MS,
                serial,
            }
            .request(&key);
            let cert = SignedNodeCert::issue(&roots[o], request).unwrap();
            Node {
                name,
                org: org(o),
                key,
                agree,
                cert,
                in_directory,
            }
        })
        .collect();
    let (fbi, dhs, pa, pb, stranger) = (&nodes[0], &nodes[1], &nodes[2], &nodes[3], &nodes[4]);

    // --- charters -------------------------------------------------------------------
    let limits = Limits {
        max_envelope_bytes: MAX_ENVELOPE,
        max_clock_skew_ms: SKEW_MS,
        rate_per_org_per_minute: 6_000,
        rate_burst: 2_000,
        checkpoint_period_ms: 60_000,
        checkpoint_every: 256,
        witness_threshold: 2,
    };
    let genesis_body = Charter {
        network_id: net,
        network_name: network_name.clone(),
        version: 1,
        prev_hash: CharterHash::default(),
        created_ms: T0,
        members: members.clone(),
        governors: vec![org(0), org(1), org(2)],
        threshold: 2,
        topics: vec![
            TopicRule {
                name: DISINFO.into(),
                readers: vec![org(0), org(1), org(2), org(3)],
                publishers: vec![org(0), org(1), org(2), org(3)],
                max_tlp: Tlp::Amber,
            },
            TopicRule {
                name: VOTING.into(),
                readers: vec![org(0), org(1)],
                publishers: vec![org(1)],
                max_tlp: Tlp::Red,
            },
        ],
        revoked_certs: vec![],
        cutoffs: vec![],
        limits: limits.clone(),
    };
    let mut genesis = SignedCharter::unsigned(genesis_body);
    genesis.sign(&org(0), &roots[0]);
    genesis.sign(&org(1), &roots[1]);

    let disinfo = TopicId::derive(&net, DISINFO);
    let voting = TopicId::derive(&net, VOTING);
    let control = TopicId::control(&net);

    // Version 2: platform-b leaves, dhs no longer publishes on the disinfo topic (it has
    // published nothing there, so no cut-off), platform-a-1 is revoked with a cut-off at
    // seq 1 on the disinfo topic. Signed by two governors of version 1 (fbi, dhs).
    let v2_body = Charter {
        network_id: net,
        network_name: network_name.clone(),
        version: 2,
        prev_hash: genesis.hash(),
        created_ms: T0 + 1_800_000,
        members: members[..3].to_vec(),
        governors: vec![org(0), org(1), org(2)],
        threshold: 2,
        topics: vec![
            TopicRule {
                name: DISINFO.into(),
                readers: vec![org(0), org(1), org(2)],
                publishers: vec![org(0), org(2)],
                max_tlp: Tlp::Amber,
            },
            TopicRule {
                name: VOTING.into(),
                readers: vec![org(0), org(1)],
                publishers: vec![org(1)],
                max_tlp: Tlp::Red,
            },
        ],
        revoked_certs: vec![pa.key.public()],
        cutoffs: vec![Cutoff {
            author: pa.key.public(),
            topic: disinfo,
            last_seq: 1,
        }],
        limits,
    };
    let mut v2 = SignedCharter::unsigned(v2_body);
    v2.sign(&org(1), &roots[1]);
    v2.sign(&org(0), &roots[0]);

    // --- sender keys ------------------------------------------------------------------
    let fbi_sk = SenderKey::generate(1, &mut rng);
    let dhs_sk = SenderKey::generate(1, &mut rng);
    let pa_sk = SenderKey::generate(1, &mut rng);
    let fbi_sk2 = SenderKey::generate(2, &mut rng);

    let base = Draft {
        network_id: net,
        topic_id: disinfo,
        seq: 1,
        prev: EnvelopeId::default(),
        charter_version: 2,
        timestamp_ms: T0 + 2_000_000,
        kind: Kind::Alert,
        key_epoch: 1,
        tlp: Tlp::Amber,
    };
    let seal =
        |node: &Node, d: &Draft, key: &SenderKey, plaintext: &[u8], rng: &mut ChaCha20Rng| {
            SignedEnvelope::seal_encrypted(&node.key, d, key, plaintext, rng).unwrap()
        };
    let clear = |node: &Node, d: &Draft, payload: &[u8]| {
        SignedEnvelope::seal_clear(&node.key, d, payload).unwrap()
    };

    // --- accepted envelopes, in order -------------------------------------------------
    let mut envelopes = Vec::new();

    // 1. fbi-1's key package on disinfo, epoch 1, to the readers' nodes (not the revoked one).
    let (fbi_pkg, refused) = KeyPackage::seal(
        &net,
        &disinfo,
        &fbi.key.public(),
        &fbi_sk,
        &[dhs.agree.public(), fbi.agree.public()],
        &mut rng,
    );
    assert!(refused.is_empty());
    let fbi_pkg_bytes = fbi_pkg.encode();
    let d1 = Draft {
        kind: Kind::KeyPackage,
        tlp: Tlp::Clear,
        timestamp_ms: T0 + 2_000_000,
        ..base.clone()
    };
    let e1 = clear(fbi, &d1, &fbi_pkg_bytes);
    let mut v = env_vector(
        "fbi-key-package",
        "fbi-1's sender key for election-2020/disinfo, epoch 1, sealed to dhs-1 and fbi-1 (seq 1)",
        fbi,
        DISINFO,
        e1.as_bytes(),
        accept(false),
    );
    v.key_package = Some(KeyPackageVector {
        payload: h(&fbi_pkg_bytes),
        epoch: 1,
        recipients: vec!["dhs-1".into(), "fbi-1".into()],
        sender_key: h(fbi_sk.secret_bytes().as_ref()),
    });
    envelopes.push(v);

    // 2. fbi-1's alert, seq 2.
    let a2 = phishing_alert();
    let p2 = codec::encode(&a2);
    let d2 = Draft {
        seq: 2,
        prev: e1.id(),
        timestamp_ms: T0 + 2_100_000,
        ..base.clone()
    };
    let e2 = seal(fbi, &d2, &fbi_sk, &p2, &mut rng);
    envelopes.push(with_plain(
        env_vector(
            "fbi-alert",
            "fbi-1's alert (Indicator, TLP:AMBER), seq 2, encrypted under its epoch-1 sender key",
            fbi,
            DISINFO,
            e2.as_bytes(),
            accept(false),
        ),
        &fbi_sk,
        &p2,
        ContentJson::Alert { alert: a2.clone() },
    ));

    // 3. fbi-1's update of that alert, seq 3.
    let mut a3 = phishing_alert();
    a3.severity = Severity::Critical;
    a3.confidence = 95;
    a3.observables
        .push(Observable::Email("training@vote-county-example.com".into()));
    a3.observables
        .push(Observable::Hashtag("PollWorkerTraining".into()));
    let u3 = AlertUpdate {
        original: e2.id(),
        alert: a3.clone(),
    };
    let p3 = codec::encode(&u3);
    let d3 = Draft {
        seq: 3,
        prev: e2.id(),
        kind: Kind::Update,
        timestamp_ms: T0 + 2_200_000,
        ..base.clone()
    };
    let e3 = seal(fbi, &d3, &fbi_sk, &p3, &mut rng);
    envelopes.push(with_plain(
        env_vector(
            "fbi-update",
            "fbi-1 updates its alert (kind Update), seq 3",
            fbi,
            DISINFO,
            e3.as_bytes(),
            accept(false),
        ),
        &fbi_sk,
        &p3,
        ContentJson::Update {
            original: e2.id(),
            alert: a3,
        },
    ));

    // 4. fbi-1 retracts it, seq 4, TLP:GREEN.
    let r4 = Retraction {
        original: e2.id(),
        reason: "Domain confirmed benign after registrar review".into(),
    };
    let p4 = codec::encode(&r4);
    let d4 = Draft {
        seq: 4,
        prev: e3.id(),
        kind: Kind::Retraction,
        tlp: Tlp::Green,
        timestamp_ms: T0 + 2_300_000,
        ..base.clone()
    };
    let e4 = seal(fbi, &d4, &fbi_sk, &p4, &mut rng);
    envelopes.push(with_plain(
        env_vector(
            "fbi-retraction",
            "fbi-1 retracts its alert (kind Retraction, TLP:GREEN), seq 4",
            fbi,
            DISINFO,
            e4.as_bytes(),
            accept(false),
        ),
        &fbi_sk,
        &p4,
        ContentJson::Retraction {
            original: e2.id(),
            reason: r4.reason.clone(),
        },
    ));

    // 5. platform-a-1 (revoked in version 2 with cut-off 1 on disinfo): seq 1 under version 1.
    let a5 = network_alert(e2.id());
    let p5 = codec::encode(&a5);
    let d5 = Draft {
        charter_version: 1,
        timestamp_ms: T0 + 2_400_000,
        ..base.clone()
    };
    let e5 = seal(pa, &d5, &pa_sk, &p5, &mut rng);
    envelopes.push(with_plain(
        env_vector(
            "platform-a-alert-within-cutoff",
            "platform-a-1's alert, seq 1, charter version 1: its node is revoked in version 2, but the cut-off admits seq 1",
            pa,
            DISINFO,
            e5.as_bytes(),
            accept(false),
        ),
        &pa_sk,
        &p5,
        ContentJson::Alert { alert: a5 },
    ));

    // 6. dhs-1's key package on voting-infra.
    let (dhs_pkg, refused) = KeyPackage::seal(
        &net,
        &voting,
        &dhs.key.public(),
        &dhs_sk,
        &[fbi.agree.public(), dhs.agree.public()],
        &mut rng,
    );
    assert!(refused.is_empty());
    let dhs_pkg_bytes = dhs_pkg.encode();
    let d6 = Draft {
        topic_id: voting,
        kind: Kind::KeyPackage,
        tlp: Tlp::Clear,
        timestamp_ms: T0 + 2_500_000,
        ..base.clone()
    };
    let e6 = clear(dhs, &d6, &dhs_pkg_bytes);
    let mut v = env_vector(
        "dhs-key-package",
        "dhs-1's sender key for voting-infra, epoch 1, sealed to fbi-1 and dhs-1 (seq 1)",
        dhs,
        VOTING,
        e6.as_bytes(),
        accept(false),
    );
    v.key_package = Some(KeyPackageVector {
        payload: h(&dhs_pkg_bytes),
        epoch: 1,
        recipients: vec!["fbi-1".into(), "dhs-1".into()],
        sender_key: h(dhs_sk.secret_bytes().as_ref()),
    });
    envelopes.push(v);

    // 7. dhs-1's TLP:RED alert, timestamp exactly now + skew (the boundary is accepted).
    let a7 = infra_alert();
    let p7 = codec::encode(&a7);
    let d7 = Draft {
        topic_id: voting,
        seq: 2,
        prev: e6.id(),
        tlp: Tlp::Red,
        timestamp_ms: NOW_MS + SKEW_MS,
        ..base.clone()
    };
    let e7 = seal(dhs, &d7, &dhs_sk, &p7, &mut rng);
    envelopes.push(with_plain(
        env_vector(
            "dhs-alert-red-at-skew-limit",
            "dhs-1's TLP:RED alert on voting-infra, seq 2, timestamp exactly now_ms + max_clock_skew_ms",
            dhs,
            VOTING,
            e7.as_bytes(),
            accept(false),
        ),
        &dhs_sk,
        &p7,
        ContentJson::Alert { alert: a7 },
    ));

    // An equivocating seq 2 by fbi-1 (a case below), and the evidence dhs-1 publishes.
    let mut a_eq = phishing_alert();
    a_eq.title = "Phishing domain impersonating state election office".into();
    let p_eq = codec::encode(&a_eq);
    let e_eq = seal(fbi, &d2, &fbi_sk, &p_eq, &mut rng);
    let equivocation = Evidence::new(&e2, &e_eq).unwrap();
    let eq_bytes = equivocation.encode();

    // 8. dhs-1 reports the equivocation on the control topic.
    let d8 = Draft {
        topic_id: control,
        kind: Kind::Evidence,
        key_epoch: 0,
        tlp: Tlp::Clear,
        timestamp_ms: T0 + 2_700_000,
        ..base.clone()
    };
    let e8 = clear(dhs, &d8, &eq_bytes);
    envelopes.push(env_vector(
        "dhs-evidence",
        "dhs-1 publishes the equivocation evidence (vector evidence[0]) on the control topic (seq 1)",
        dhs,
        "_control",
        e8.as_bytes(),
        accept(false),
    ));

    // --- cases: each validated against the state after all envelopes above ------------
    let mut cases = Vec::new();
    let mut case = |v: EnvelopeVector| cases.push(v);

    // A valid successor, the base for most tampering cases.
    let a5f = plain_alert(
        "Sighting of the phishing domain",
        "Seen in 14 user reports.".into(),
    );
    let p5f = codec::encode(&a5f);
    let d5f = Draft {
        seq: 5,
        prev: e4.id(),
        timestamp_ms: T0 + 3_000_000,
        ..base.clone()
    };
    let b5 = seal(fbi, &d5f, &fbi_sk, &p5f, &mut rng);
    let b5b = b5.as_bytes().to_vec();
    case(with_plain(
        env_vector(
            "valid-successor",
            "fbi-1's seq 5 after seq 4: valid (the base of the tampering cases below)",
            fbi,
            DISINFO,
            &b5b,
            accept(false),
        ),
        &fbi_sk,
        &p5f,
        ContentJson::Alert { alert: a5f.clone() },
    ));

    // The same successor whose alert carries a STIX object (PROTOCOL.md §10.2: the
    // plaintext is encode(Alert) ‖ encode(Trailer::Stix(json))). Sealed with its own RNG
    // so that every other vector stays as it was.
    let mut a5s = a5f.clone();
    a5s.stix = Some(
        r#"{"type":"indicator","spec_version":"2.1","id":"indicator--6b8c3e5a-1c1f-4f7e-9a43-0b2b7e1d5a01","created":"2020-10-01T12:00:00.000Z","modified":"2020-10-01T12:00:00.000Z","pattern":"[domain-name:value = 'vote-county-example.com']","pattern_type":"stix","valid_from":"2020-10-01T12:00:00.000Z"}"#
            .into(),
    );
    let p5s = Content::Alert(a5s.clone()).encode();
    let mut stix_rng = ChaCha20Rng::seed_from_u64(SEED ^ 0x5717);
    let b5s = seal(fbi, &d5f, &fbi_sk, &p5s, &mut stix_rng);
    case(with_plain(
        env_vector(
            "valid-successor-with-stix",
            "valid-successor whose alert carries a STIX object in the plaintext's trailer (PROTOCOL.md §10.2): valid",
            fbi,
            DISINFO,
            b5s.as_bytes(),
            accept(false),
        ),
        &fbi_sk,
        &p5s,
        ContentJson::Alert { alert: a5s },
    ));

    // Byte edits of valid-successor: (name, description, edit, re-signed, reason).
    let tampered: [ByteEdit; 11] = [
        (
            "bad-signature",
            "valid-successor with the lowest bit of the signature's last byte flipped",
            |x| {
                let last = x.len() - 1;
                x[last] ^= 0x01;
            },
            false,
            "bad_signature",
        ),
        (
            "tampered-header",
            "valid-successor with timestamp_ms changed by one (signature not redone)",
            |x| {
                x[offsets::TIMESTAMP_MS] ^= 0x01;
            },
            false,
            "bad_signature",
        ),
        (
            "tampered-ciphertext",
            "valid-successor with the first ciphertext byte changed",
            |x| {
                x[offsets::HEADER_LEN] ^= 0x80;
            },
            false,
            "bad_signature",
        ),
        (
            "appended-byte",
            "valid-successor with one zero byte appended: the envelope has no length framing, so the last 64 bytes are no longer the signature",
            |x| {
                x.push(0);
            },
            false,
            "bad_signature",
        ),
        (
            "truncated-after-header",
            "header plus 63 bytes: no room for the 64-byte signature",
            |x| {
                x.truncate(offsets::HEADER_LEN + 63);
            },
            false,
            "malformed",
        ),
        (
            "truncated-header",
            "the first 100 bytes: the header is incomplete",
            |x| {
                x.truncate(100);
            },
            false,
            "malformed",
        ),
        (
            "bad-version",
            "valid-successor with version 2, re-signed",
            |x| {
                x[offsets::VERSION] = 2;
            },
            true,
            "malformed",
        ),
        (
            "bad-kind-variant",
            "valid-successor with kind variant 5 (only 0-4 exist), re-signed",
            |x| {
                x[offsets::KIND..offsets::KIND + 4].copy_from_slice(&5u32.to_le_bytes());
            },
            true,
            "malformed",
        ),
        (
            "bad-tlp-variant",
            "valid-successor with tlp variant 5 (only 0-4 exist), re-signed",
            |x| {
                x[offsets::TLP..offsets::TLP + 4].copy_from_slice(&5u32.to_le_bytes());
            },
            true,
            "malformed",
        ),
        (
            "seq-zero",
            "valid-successor with seq 0 and a zero prev, re-signed",
            |x| {
                x[offsets::SEQ..offsets::SEQ + 8].copy_from_slice(&0u64.to_le_bytes());
                x[offsets::PREV..offsets::PREV + 32].copy_from_slice(&[0; 32]);
            },
            true,
            "malformed",
        ),
        (
            "seq-one-with-prev",
            "valid-successor with seq 1 but a non-zero prev, re-signed",
            |x| {
                x[offsets::SEQ..offsets::SEQ + 8].copy_from_slice(&1u64.to_le_bytes());
            },
            true,
            "malformed",
        ),
    ];
    for (name, description, edit, resigned, reason) in tampered {
        let mut x = b5b.clone();
        edit(&mut x);
        if resigned {
            x = resign(&fbi.key, x);
        }
        case(env_vector(
            name,
            description,
            fbi,
            DISINFO,
            &x,
            reject(reason),
        ));
    }

    let mut x = e1.as_bytes().to_vec();
    x[offsets::NONCE] = 1;
    case(env_vector(
        "clear-kind-with-nonce",
        "fbi-key-package with a non-zero nonce byte, re-signed",
        fbi,
        DISINFO,
        &resign(&fbi.key, x),
        reject("malformed"),
    ));

    // Exactly one byte over the limit, validly signed.
    let mut big = plain_alert("Oversized", String::new());
    let target_plain = MAX_ENVELOPE as usize + 1 - offsets::HEADER_LEN - 16 - 64;
    let base_len = codec::encode(&big).len();
    big.description = "x".repeat(target_plain - base_len);
    let pbig = codec::encode(&big);
    assert_eq!(pbig.len(), target_plain);
    let ebig = seal(fbi, &d5f, &fbi_sk, &pbig, &mut rng);
    assert_eq!(ebig.as_bytes().len(), MAX_ENVELOPE as usize + 1);
    case(env_vector(
        "too-large",
        "a validly signed seq 5 of max_envelope_bytes + 1 bytes",
        fbi,
        DISINFO,
        ebig.as_bytes(),
        reject("too_large"),
    ));

    let other_net = NetworkId([0x42; 32]);
    for v in sealed_cases(
        &mut rng,
        &p5f,
        vec![
            (
                "wrong-network",
                "fbi-1's seq 5 for network 4242..42 (its disinfo topic id)",
                fbi,
                &fbi_sk,
                DISINFO,
                Draft {
                    network_id: other_net,
                    topic_id: TopicId::derive(&other_net, DISINFO),
                    ..d5f.clone()
                },
                reject("wrong_network"),
            ),
            (
                "unknown-topic",
                "fbi-1's seq 1 on topic \"no-such-topic\", which no charter lists",
                fbi,
                &fbi_sk,
                "no-such-topic",
                Draft {
                    topic_id: TopicId::derive(&net, "no-such-topic"),
                    seq: 1,
                    prev: EnvelopeId::default(),
                    ..d5f.clone()
                },
                reject("unknown_topic"),
            ),
            (
                "charter-ahead",
                "fbi-1's seq 5 naming charter version 3 (we have 2)",
                fbi,
                &fbi_sk,
                DISINFO,
                Draft {
                    charter_version: 3,
                    ..d5f.clone()
                },
                ignore("charter_ahead"),
            ),
            (
                "charter-version-zero",
                "fbi-1's seq 5 naming charter version 0",
                fbi,
                &fbi_sk,
                DISINFO,
                Draft {
                    charter_version: 0,
                    ..d5f.clone()
                },
                reject("unknown_charter_version"),
            ),
            (
                "unknown-author",
                "platform-a-2's seq 1: its certificate exists (nodes[4]) but is not in the validator's directory",
                stranger,
                &pa_sk,
                DISINFO,
                Draft {
                    seq: 1,
                    prev: EnvelopeId::default(),
                    ..d5f.clone()
                },
                ignore("unknown_author"),
            ),
            (
                "before-cert-validity",
                "fbi-1's seq 5 with a timestamp 1 ms before its certificate's not_before",
                fbi,
                &fbi_sk,
                DISINFO,
                Draft {
                    timestamp_ms: T0 - 1,
                    ..d5f.clone()
                },
                reject("cert_not_valid"),
            ),
            (
                "revoked-node",
                "platform-a-1 (revoked in version 2, no cut-off on this topic) on voting-infra",
                pa,
                &pa_sk,
                VOTING,
                Draft {
                    topic_id: voting,
                    seq: 1,
                    prev: EnvelopeId::default(),
                    ..d5f.clone()
                },
                reject("cert_revoked"),
            ),
            (
                "beyond-cutoff",
                "platform-a-1's seq 2 on disinfo: the cut-off is 1",
                pa,
                &pa_sk,
                DISINFO,
                Draft {
                    seq: 2,
                    prev: e5.id(),
                    charter_version: 1,
                    ..d5f.clone()
                },
                reject("beyond_cutoff"),
            ),
        ],
    ) {
        case(v);
    }

    let pb_sk = SenderKey::generate(1, &mut rng);
    for v in sealed_cases(
        &mut rng,
        &p5f,
        vec![
            (
                "org-removed",
                "platform-b-1's seq 1 under version 1, where platform-b publishes; version 2 removed the org",
                pb,
                &pb_sk,
                DISINFO,
                Draft {
                    seq: 1,
                    prev: EnvelopeId::default(),
                    charter_version: 1,
                    ..d5f.clone()
                },
                reject("org_removed"),
            ),
            (
                "not-publisher",
                "fbi-1 on voting-infra, which fbi reads but may not publish to",
                fbi,
                &fbi_sk,
                VOTING,
                Draft {
                    topic_id: voting,
                    seq: 1,
                    prev: EnvelopeId::default(),
                    ..d5f.clone()
                },
                reject("not_publisher"),
            ),
            (
                "alert-on-control-topic",
                "fbi-1's alert on the control topic, which carries only evidence",
                fbi,
                &fbi_sk,
                "_control",
                Draft {
                    topic_id: control,
                    seq: 1,
                    prev: EnvelopeId::default(),
                    ..d5f.clone()
                },
                reject("not_publisher"),
            ),
        ],
    ) {
        case(v);
    }

    let d = Draft {
        kind: Kind::Evidence,
        key_epoch: 0,
        tlp: Tlp::Clear,
        ..d5f.clone()
    };
    let e = clear(fbi, &d, &eq_bytes);
    case(env_vector(
        "evidence-on-data-topic",
        "fbi-1's seq 5 carrying evidence on disinfo instead of the control topic",
        fbi,
        DISINFO,
        e.as_bytes(),
        reject("not_publisher"),
    ));

    for v in sealed_cases(
        &mut rng,
        &p5f,
        vec![(
            "tlp-too-high",
            "fbi-1's seq 5 marked TLP:RED on a topic whose max_tlp is AMBER",
            fbi,
            &fbi_sk,
            DISINFO,
            Draft {
                tlp: Tlp::Red,
                ..d5f.clone()
            },
            reject("tlp_too_high"),
        )],
    ) {
        case(v);
    }

    let (pkg2, _) = KeyPackage::seal(
        &net,
        &disinfo,
        &fbi.key.public(),
        &fbi_sk2,
        &[dhs.agree.public()],
        &mut rng,
    );
    let mut pkg2_bytes = pkg2.encode();
    pkg2_bytes.push(0);
    let d = Draft {
        kind: Kind::KeyPackage,
        key_epoch: 2,
        tlp: Tlp::Clear,
        ..d5f.clone()
    };
    let e = clear(fbi, &d, &pkg2_bytes);
    case(env_vector(
        "key-package-trailing-byte",
        "fbi-1's epoch-2 key package (seq 5) with a zero byte after the package",
        fbi,
        DISINFO,
        e.as_bytes(),
        reject("bad_payload"),
    ));

    let d = Draft {
        kind: Kind::KeyPackage,
        key_epoch: 3,
        tlp: Tlp::Clear,
        ..d5f.clone()
    };
    let e = clear(fbi, &d, &pkg2.encode());
    case(env_vector(
        "key-package-epoch-mismatch",
        "fbi-1's seq 5: header key_epoch 3, package epoch 2",
        fbi,
        DISINFO,
        e.as_bytes(),
        reject("bad_payload"),
    ));

    for v in sealed_cases(
        &mut rng,
        &p5f,
        vec![(
            "from-future",
            "fbi-1's seq 5 with timestamp now_ms + max_clock_skew_ms + 1",
            fbi,
            &fbi_sk,
            DISINFO,
            Draft {
                timestamp_ms: NOW_MS + SKEW_MS + 1,
                ..d5f.clone()
            },
            reject("from_future"),
        )],
    ) {
        case(v);
    }

    case(with_plain(
        env_vector(
            "equivocation",
            "a second, different seq 2 by fbi-1 (same header fields, other title and nonce)",
            fbi,
            DISINFO,
            e_eq.as_bytes(),
            reject("equivocation"),
        ),
        &fbi_sk,
        &p_eq,
        ContentJson::Alert { alert: a_eq },
    ));

    let d = Draft {
        prev: e3.id(),
        ..d5f.clone()
    };
    let e_cc = seal(fbi, &d, &fbi_sk, &p5f, &mut rng);
    case(env_vector(
        "chain-conflict",
        "fbi-1's seq 5 naming seq 3 (not the held seq 4) as prev",
        fbi,
        DISINFO,
        e_cc.as_bytes(),
        reject("chain_conflict"),
    ));

    case(env_vector(
        "duplicate",
        "envelopes[1] (fbi-alert) again",
        fbi,
        DISINFO,
        e2.as_bytes(),
        ignore("duplicate"),
    ));

    for v in sealed_cases(
        &mut rng,
        &p5f,
        vec![
            (
                "gap",
                "fbi-1's seq 7 while seq 5 and 6 are missing: accepted, with a gap",
                fbi,
                &fbi_sk,
                DISINFO,
                Draft {
                    seq: 7,
                    prev: EnvelopeId([0x77; 32]),
                    ..d5f.clone()
                },
                accept(true),
            ),
            // Naming an old charter version does not restore rights (drawn after every vector
            // above, so adding it changed none of them).
            (
                "old-charter-does-not-restore-rights",
                "dhs-1's seq 1 on election-2020/disinfo naming charter version 1, where dhs publishes there; version 2 dropped dhs from the topic's publishers with no cut-off, and the author must be authorized under both the named and the current version",
                dhs,
                &dhs_sk,
                DISINFO,
                Draft {
                    seq: 1,
                    prev: EnvelopeId::default(),
                    charter_version: 1,
                    ..d5f.clone()
                },
                reject("not_publisher"),
            ),
        ],
    ) {
        case(v);
    }

    // dhs-2: a node whose key co-signed certificate requests for two orgs (dhs and fbi).
    let dual_key = NodeKey::generate(&mut rng);
    let dual_agree = AgreementKey::generate(&mut rng);
    let dual_body = |o: usize, serial: u64| NodeCert {
        network_id: net,
        org_id: org(o),
        node_sign_pub: dual_key.public(),
        node_agree_pub: dual_agree.public(),
        not_before_ms: T0,
        not_after_ms: T0 + CERT_LIFETIME_MS,
        serial,
    };
    let dual_own = SignedNodeCert::issue(&roots[1], dual_body(1, 2).request(&dual_key)).unwrap();
    let dual_fbi = SignedNodeCert::issue(&roots[0], dual_body(0, 3).request(&dual_key)).unwrap();
    let dual = Node {
        name: "dhs-2",
        org: org(1),
        key: dual_key,
        agree: dual_agree,
        cert: dual_own,
        in_directory: true,
    };
    for v in sealed_cases(
        &mut rng,
        &p5f,
        vec![(
            "ambiguous-author",
            "dhs-2's seq 1 on voting-infra: the directory holds certificates for its key from dhs (nodes[5]) and from fbi (extra_certs[0]), so the author cannot be attributed to one org",
            &dual,
            &dhs_sk,
            VOTING,
            Draft {
                topic_id: voting,
                seq: 1,
                prev: EnvelopeId::default(),
                ..d5f.clone()
            },
            reject("ambiguous_author"),
        )],
    ) {
        case(v);
    }

    // platform-a's root signs a certificate naming fbi-1's keys for platform-a, with a
    // "proof of possession" by platform-a-1's key: the org signature is valid, the node
    // signature is not.
    let mut hijack = codec::encode(&NodeCert {
        network_id: net,
        org_id: org(2),
        node_sign_pub: fbi.key.public(),
        node_agree_pub: fbi.agree.public(),
        not_before_ms: T0,
        not_after_ms: T0 + CERT_LIFETIME_MS + 1,
        serial: 99,
    });
    let pop = pa.key.sign(tags::NODE_CERT_POP, &hijack);
    hijack.extend_from_slice(&pop);
    let org_sig = roots[2].sign(tags::NODE_CERT, &hijack);
    hijack.extend_from_slice(&org_sig);
    let extra_certs = vec![
        CertVector {
            name: "dhs-2-by-fbi".into(),
            description: "fbi certifies dhs-2's keys; dhs-2 co-signed the request, so the certificate is valid, and the directory holds it next to dhs-2's own certificate from dhs".into(),
            node: "dhs-2".into(),
            org_id: org(0).0,
            hex: h(dual_fbi.as_bytes()),
            in_directory: true,
            expected: "valid",
        },
        CertVector {
            name: "fbi-1-by-platform-a".into(),
            description: "platform-a certifies fbi-1's keys with a node signature by platform-a-1's key: no proof of possession, so it does not verify and no directory takes it".into(),
            node: "fbi-1".into(),
            org_id: org(2).0,
            hex: h(&hijack),
            in_directory: false,
            expected: "bad_node_signature",
        },
    ];

    // --- evidence, control messages -----------------------------------------------------
    let chain_conflict = Evidence::new(&e_cc, &e4).unwrap();
    let (eq_first, eq_second) = if e2.id() < e_eq.id() {
        (&e2, &e_eq)
    } else {
        (&e_eq, &e2)
    };
    let evidence = vec![
        EvidenceVector {
            name: "equivocation".into(),
            hex: h(&eq_bytes),
            misbehaviour: "equivocation",
            author: "fbi-1".into(),
            topic: DISINFO.into(),
            seq: 2,
            first_id: eq_first.id().to_hex(),
            second_id: eq_second.id().to_hex(),
        },
        EvidenceVector {
            name: "chain-conflict".into(),
            hex: h(&chain_conflict.encode()),
            misbehaviour: "chain_conflict",
            author: "fbi-1".into(),
            topic: DISINFO.into(),
            seq: 4,
            first_id: e4.id().to_hex(),
            second_id: e_cc.id().to_hex(),
        },
    ];
    let control_messages = vec![
        ControlVector {
            name: "charter-v2".into(),
            variant: 0,
            hex: h(&ControlMessage::Charter(v2.as_bytes().to_vec()).encode()),
        },
        ControlVector {
            name: "cert-fbi-1".into(),
            variant: 1,
            hex: h(&ControlMessage::Cert(fbi.cert.as_bytes().to_vec()).encode()),
        },
        ControlVector {
            name: "evidence-envelope".into(),
            variant: 2,
            hex: h(&ControlMessage::Envelope(e8.as_bytes().to_vec()).encode()),
        },
    ];

    let wire =
        |name: &str, description: &str, message: &'static str, variant: u32, bytes: Vec<u8>| {
            let mut frame = (bytes.len() as u32).to_le_bytes().to_vec();
            frame.extend_from_slice(&bytes);
            WireVector {
                name: name.into(),
                description: description.into(),
                message,
                variant,
                hex: h(&bytes),
                frame: h(&frame),
            }
        };
    let wire_messages = vec![
        wire(
            "hello-request",
            "fbi-1 introduces itself: Request::Hello with its own certificate",
            "request",
            0,
            Request::Hello(Hello {
                cert: fbi.cert.as_bytes().to_vec(),
            })
            .encode(),
        ),
        wire(
            "sync-request",
            "dhs-1 asks for election-2020/disinfo holding fbi-1's seqs 1-2 and 4",
            "request",
            1,
            Request::Sync(SyncRequest {
                topic: disinfo,
                have: vec![ChainSummary::from_seqs(fbi.key.public(), [1, 2, 4])],
            })
            .encode(),
        ),
        wire(
            "directory-request",
            "Request::Directory (no fields)",
            "request",
            2,
            Request::Directory.encode(),
        ),
        wire(
            "hello-response",
            "dhs-1 answers a hello: Response::Hello with its own certificate",
            "response",
            0,
            Response::Hello(Hello {
                cert: dhs.cert.as_bytes().to_vec(),
            })
            .encode(),
        ),
        wire(
            "refused-response",
            "Response::Refused with the reason a node gives a peer it has not admitted",
            "response",
            1,
            Response::Refused("not admitted".into()).encode(),
        ),
        wire(
            "sync-response",
            "a page for the sync request above: fbi-1's certificate and its seq 3, more = false",
            "response",
            2,
            Response::Sync(SyncPage {
                topic: disinfo,
                certs: vec![fbi.cert.as_bytes().to_vec()],
                envelopes: vec![e3.as_bytes().to_vec()],
                more: false,
            })
            .encode(),
        ),
        wire(
            "directory-response",
            "Response::Directory: charter version 2 and the certificates of fbi-1 and dhs-1",
            "response",
            3,
            Response::Directory(Directory {
                charters: vec![v2.as_bytes().to_vec()],
                certs: vec![fbi.cert.as_bytes().to_vec(), dhs.cert.as_bytes().to_vec()],
            })
            .encode(),
        ),
        wire(
            "busy-response",
            "Response::Busy: ask again after 250 ms",
            "response",
            4,
            Response::Busy {
                retry_after_ms: 250,
            }
            .encode(),
        ),
    ];

    let charter_vector = |c: &SignedCharter| CharterVector {
        version: c.charter().version,
        hex: h(c.as_bytes()),
        body_len: c.body_bytes().len(),
        hash: c.hash().to_hex(),
        signers: c.signatures().iter().map(|s| s.org_id.0.clone()).collect(),
    };
    let topic_vector = |name: &str| {
        let id = TopicId::derive(&net, name);
        TopicVector {
            name: name.into(),
            topic_id: id.to_hex(),
            gossip_name: id.gossip_name(&net),
        }
    };

    Vectors {
        about: "Known-answer vectors for PROTOCOL.md. TEST KEYS ONLY: never use them for anything else.",
        command: "cargo run -p alertmesh-protocol --example gen-vectors > protocol/testdata/vectors.json",
        seed: SEED,
        now_ms: NOW_MS,
        setup: Setup {
            charters: "pin genesis_hash, start from charters[0] (version 1), then offer charters[1] (version 2), which is adopted: the current charter is version 2",
            cert_directory: "every node whose in_directory is true, then every extra_certs entry whose in_directory is true, each certificate verified against its org's root key in charters[0]; extra_certs entries whose in_directory is false fail verification with the expected label",
            envelopes: "validate envelopes[0..] in order; each is accepted and then held (inserted into the chain store)",
            cases: "validate each case independently against the state after all envelopes; cases are never held",
            source: "gossip, with a fresh per-org rate limiter for every envelope and case (no vector reaches the rate limit)",
        },
        network_id: net.to_hex(),
        network_name,
        orgs: org_specs
            .iter()
            .zip(&roots)
            .map(|(s, root)| OrgVector {
                org_id: s.0.into(),
                name: s.1.into(),
                governor: s.3,
                root_secret: h(root.secret_bytes().as_ref()),
                root_public: root.public().to_hex(),
            })
            .collect(),
        nodes: nodes
            .iter()
            .chain(std::iter::once(&dual))
            .map(|n| NodeVector {
                name: n.name.into(),
                org_id: n.org.0.clone(),
                sign_secret: h(n.key.secret_bytes().as_ref()),
                sign_public: n.key.public().to_hex(),
                agree_secret: h(n.agree.secret_bytes().as_ref()),
                agree_public: n.agree.public().to_hex(),
                cert: h(n.cert.as_bytes()),
                in_directory: n.in_directory,
            })
            .collect(),
        charters: vec![charter_vector(&genesis), charter_vector(&v2)],
        genesis_hash: genesis.hash().to_hex(),
        topics: vec![
            topic_vector(DISINFO),
            topic_vector(VOTING),
            topic_vector("_control"),
        ],
        sender_keys: vec![
            SenderKeyVector {
                author: "fbi-1".into(),
                topic: DISINFO.into(),
                epoch: 1,
                key: h(fbi_sk.secret_bytes().as_ref()),
            },
            SenderKeyVector {
                author: "dhs-1".into(),
                topic: VOTING.into(),
                epoch: 1,
                key: h(dhs_sk.secret_bytes().as_ref()),
            },
            SenderKeyVector {
                author: "platform-a-1".into(),
                topic: DISINFO.into(),
                epoch: 1,
                key: h(pa_sk.secret_bytes().as_ref()),
            },
            SenderKeyVector {
                author: "fbi-1".into(),
                topic: DISINFO.into(),
                epoch: 2,
                key: h(fbi_sk2.secret_bytes().as_ref()),
            },
        ],
        envelopes,
        cases,
        extra_certs,
        evidence,
        control_messages,
        wire_messages,
    }
}

/// The JSON file's exact contents.
pub fn to_json(v: &Vectors) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap();
    s.push('\n');
    s
}

struct Dump {
    rows: Vec<(String, Vec<u8>, String)>,
}

impl Dump {
    fn row(&mut self, field: impl Into<String>, bytes: &[u8], note: impl Into<String>) {
        self.rows.push((field.into(), bytes.to_vec(), note.into()));
    }

    fn render(&self, out: &mut String) {
        let _ = writeln!(out, "offset  size  field               bytes (hex)");
        let mut offset = 0;
        for (field, bytes, note) in &self.rows {
            let hex = hex::encode(bytes);
            let mut lines = hex
                .as_bytes()
                .chunks(64)
                .map(|c| std::str::from_utf8(c).unwrap_or(""));
            let first = lines.next().unwrap_or("");
            let note = if note.is_empty() {
                String::new()
            } else {
                format!("  ; {note}")
            };
            let _ = writeln!(
                out,
                "{offset:>6}  {:>4}  {field:<18}  {first}{note}",
                bytes.len()
            );
            for line in lines {
                let _ = writeln!(out, "{:>6}  {:>4}  {:<18}  {line}", "", "", "");
            }
            offset += bytes.len();
        }
        let _ = writeln!(out, "{offset:>6}        (end)");
    }

    fn concat(&self) -> Vec<u8> {
        self.rows.iter().flat_map(|r| r.1.iter().copied()).collect()
    }
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn string_rows(d: &mut Dump, field: &str, s: &str) {
    d.row(
        format!("{field}.len"),
        &(s.len() as u64).to_le_bytes(),
        format!("u64 = {}", s.len()),
    );
    d.row(field, s.as_bytes(), format!("UTF-8 {s:?}"));
}

/// The worked example of PROTOCOL.md: `envelopes[1]` (fbi-alert) and its plaintext, field
/// by field. The test checks that PROTOCOL.md contains this text verbatim.
pub fn worked_example(v: &Vectors) -> String {
    use offsets::*;
    let ev = &v.envelopes[1];
    let b = hex::decode(&ev.hex).unwrap();
    let n = b.len();
    let mut d = Dump { rows: Vec::new() };
    let kinds = ["Alert", "Update", "Retraction", "KeyPackage", "Evidence"];
    let tlps = ["Clear", "Green", "Amber", "AmberStrict", "Red"];
    d.row("version", &b[VERSION..NETWORK_ID], "u8 = 1");
    d.row("network_id", &b[NETWORK_ID..TOPIC_ID], "");
    d.row("topic_id", &b[TOPIC_ID..AUTHOR], DISINFO);
    d.row("author", &b[AUTHOR..SEQ], "fbi-1 node_sign_pub");
    d.row("seq", &b[SEQ..PREV], format!("u64 = {}", u64_at(&b, SEQ)));
    d.row("prev", &b[PREV..CHARTER_VERSION], "id of envelopes[0]");
    d.row(
        "charter_version",
        &b[CHARTER_VERSION..TIMESTAMP_MS],
        format!("u64 = {}", u64_at(&b, CHARTER_VERSION)),
    );
    d.row(
        "timestamp_ms",
        &b[TIMESTAMP_MS..KIND],
        format!("u64 = {}", u64_at(&b, TIMESTAMP_MS)),
    );
    let kind = u32_at(&b, KIND) as usize;
    d.row(
        "kind",
        &b[KIND..KEY_EPOCH],
        format!("u32 = {kind} ({})", kinds[kind]),
    );
    d.row(
        "key_epoch",
        &b[KEY_EPOCH..TLP],
        format!("u64 = {}", u64_at(&b, KEY_EPOCH)),
    );
    let tlp = u32_at(&b, TLP) as usize;
    d.row(
        "tlp",
        &b[TLP..NONCE],
        format!("u32 = {tlp} ({})", tlps[tlp]),
    );
    d.row("nonce", &b[NONCE..HEADER_LEN], "XChaCha20 nonce");
    d.row(
        "ciphertext",
        &b[HEADER_LEN..n - 64 - 16],
        "XChaCha20 of the plaintext below",
    );
    d.row("poly1305_tag", &b[n - 64 - 16..n - 64], "");
    d.row("signature.R", &b[n - 64..n - 32], "Ed25519 R");
    d.row(
        "signature.s",
        &b[n - 32..],
        "Ed25519 s (little-endian scalar)",
    );
    assert_eq!(d.concat(), b);

    let mut out = String::new();
    let _ = writeln!(out, "Envelope `envelopes[1]` (\"{}\"), {n} bytes.", ev.name);
    let _ = writeln!(out, "Envelope id = SHA-256(all {n} bytes) = `{}`.", ev.id);
    let _ = writeln!(out);
    let _ = writeln!(out, "```text");
    d.render(&mut out);
    let _ = writeln!(out, "```");

    let p = hex::decode(ev.plaintext.as_ref().unwrap()).unwrap();
    let alert: Alert = codec::decode_exact(&p, 1 << 20).unwrap();
    let mut d = Dump { rows: Vec::new() };
    d.row(
        "kind",
        &codec::encode(&alert.kind),
        format!("AlertKind::{:?}", alert.kind),
    );
    string_rows(&mut d, "title", &alert.title);
    string_rows(&mut d, "description", &alert.description);
    d.row(
        "severity",
        &codec::encode(&alert.severity),
        format!("Severity::{:?}", alert.severity),
    );
    d.row(
        "confidence",
        &[alert.confidence],
        format!("u8 = {}", alert.confidence),
    );
    d.row(
        "observables.len",
        &(alert.observables.len() as u64).to_le_bytes(),
        format!("u64 = {}", alert.observables.len()),
    );
    for (i, o) in alert.observables.iter().enumerate() {
        let enc = codec::encode(o);
        let variant = u32_at(&enc, 0);
        d.row(
            format!("observables[{i}]"),
            &enc[..4],
            format!("variant {variant}"),
        );
        match o {
            Observable::Domain(s)
            | Observable::Url(s)
            | Observable::Email(s)
            | Observable::Hashtag(s)
            | Observable::Phone(s) => string_rows(&mut d, "  .0", s),
            Observable::SocialAccount { platform, handle } => {
                string_rows(&mut d, "  .platform", platform);
                string_rows(&mut d, "  .handle", handle);
            }
            Observable::AdId { network, id } => {
                string_rows(&mut d, "  .network", network);
                string_rows(&mut d, "  .id", id);
            }
            Observable::Ipv4(a) => d.row("  .0", a, "[u8; 4]"),
            Observable::Ipv6(a) => d.row("  .0", a, "[u8; 16]"),
            Observable::FileSha256(a) => d.row("  .0", a, "[u8; 32]"),
        }
    }
    d.row(
        "labels.len",
        &(alert.labels.len() as u64).to_le_bytes(),
        format!("u64 = {}", alert.labels.len()),
    );
    for (i, l) in alert.labels.iter().enumerate() {
        string_rows(&mut d, &format!("labels[{i}]"), l);
    }
    d.row(
        "references.len",
        &(alert.references.len() as u64).to_le_bytes(),
        format!("u64 = {}", alert.references.len()),
    );
    for (i, r) in alert.references.iter().enumerate() {
        string_rows(&mut d, &format!("references[{i}]"), r);
    }
    d.row(
        "valid_from_ms",
        &alert.valid_from_ms.to_le_bytes(),
        format!("u64 = {}", alert.valid_from_ms),
    );
    match alert.valid_until_ms {
        Some(t) => {
            d.row("valid_until_ms", &[1], "Option tag: Some");
            d.row("  .0", &t.to_le_bytes(), format!("u64 = {t}"));
        }
        None => d.row("valid_until_ms", &[0], "Option tag: None"),
    }
    d.row(
        "related.len",
        &(alert.related.len() as u64).to_le_bytes(),
        format!("u64 = {}", alert.related.len()),
    );
    for (i, r) in alert.related.iter().enumerate() {
        d.row(format!("related[{i}]"), r.as_bytes(), "EnvelopeId");
    }
    assert_eq!(d.concat(), p);
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Its plaintext (`envelopes[1].plaintext`, an `Alert`, {} bytes):",
        p.len()
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "```text");
    d.render(&mut out);
    let _ = writeln!(out, "```");
    out
}
