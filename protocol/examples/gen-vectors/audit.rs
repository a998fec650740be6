//! Known-answer vectors for audit exports (PROTOCOL.md §18.8): one small valid export and
//! one tampered variant per finding code, each with the findings `verify_export` reports
//! (code, severity, record).
//!
//! ```text
//! cargo run -p alertmesh-protocol --example gen-vectors -- --audit > protocol/testdata/audit-vectors.json
//! ```
//!
//! Self-contained (it is also compiled into `protocol/tests/audit_vectors.rs`, which
//! regenerates the file and fails if it drifted). Deterministic: every key and nonce
//! comes from `ChaCha20Rng::seed_from_u64(AUDIT_SEED)`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use alertmesh_protocol::alert::{Alert, AlertUpdate, Content, Tlp};
use alertmesh_protocol::audit::{
    AuditOptions, EXPORT_TAG, ExportEnd, ExportMeta, ExportedKey, FORMAT_VERSION, MAGIC,
    RECORD_TAG, Report, Severity, verify_export,
};
use alertmesh_protocol::bootstrap::{NetworkPlan, OrgPlan, TopicPlan, new_node};
use alertmesh_protocol::cert::{NodeCert, SignedNodeCert};
use alertmesh_protocol::charter::{Charter, Cutoff, Limits, SignedCharter};
use alertmesh_protocol::codec;
use alertmesh_protocol::envelope::{Draft, Kind, SignedEnvelope};
use alertmesh_protocol::evidence::Evidence;
use alertmesh_protocol::ids::{
    CharterHash, EnvelopeId, NetworkId, NodePublicKey, OrgId, TopicId, tagged_hash, tags,
};
use alertmesh_protocol::keys::{NodeKey, OrgRootKey};
use alertmesh_protocol::sender_key::{KeyPackage, SenderKey};
use rand_chacha08::ChaCha20Rng;
use rand_chacha08::rand_core::SeedableRng;
use serde::Serialize;

/// The RNG seed.
pub const AUDIT_SEED: u64 = 2024;
/// The network's "now": certificates start here.
pub const T0: u64 = 1_600_000_000_000;
/// `received_ms` of every envelope record (unless a variant says otherwise).
pub const RECEIVED: u64 = T0 + 60_000;
/// The data topic.
pub const TOPIC: &str = "alerts";

#[derive(Serialize)]
pub struct AuditVectors {
    pub about: &'static str,
    pub command: &'static str,
    pub seed: u64,
    /// The genesis hash every export is verified against, unless it says otherwise.
    pub genesis_hash: String,
    pub network_id: String,
    pub topic: &'static str,
    pub topic_id: String,
    pub control_topic_id: String,
    /// Node names and keys, for reading the findings.
    pub nodes: Vec<NodeInfo>,
    pub exports: Vec<ExportVector>,
}

#[derive(Serialize)]
pub struct NodeInfo {
    pub name: &'static str,
    pub org_id: String,
    pub sign_public: String,
    pub in_log: bool,
}

#[derive(Serialize)]
pub struct ExportVector {
    pub name: String,
    /// The finding code this variant exists for (`none` for the valid export).
    pub target: &'static str,
    pub description: String,
    /// The genesis hash to pin (hex), or null: verify without pinning one.
    pub pinned_genesis: Option<String>,
    pub hex: String,
    /// The verdict: no problem found.
    pub ok: bool,
    /// Every finding, in report order.
    pub findings: Vec<FindingVector>,
}

#[derive(Serialize, PartialEq, Eq, Debug, Clone)]
pub struct FindingVector {
    pub code: String,
    pub severity: &'static str,
    /// Record index (the meta record is 0); null when the finding has none (e.g. `bad_magic`).
    pub record: Option<u64>,
}

/// One record before framing.
#[derive(Clone)]
pub struct Rec {
    pub ty: u8,
    pub body: Vec<u8>,
}

fn rec(ty: u8, body: &[u8]) -> Rec {
    Rec {
        ty,
        body: body.to_vec(),
    }
}

fn env_rec(received: u64, env: &SignedEnvelope) -> Rec {
    let mut body = received.to_le_bytes().to_vec();
    body.extend_from_slice(env.as_bytes());
    rec(5, &body)
}

fn pt_rec(id: &EnvelopeId, pt: &[u8]) -> Rec {
    let mut body = id.as_bytes().to_vec();
    body.extend_from_slice(pt);
    rec(6, &body)
}

fn ev_rec(ev: &Evidence) -> Rec {
    let mut body = RECEIVED.to_le_bytes().to_vec();
    body.extend_from_slice(&ev.encode());
    rec(7, &body)
}

/// How the end record is written.
pub enum End<'a> {
    /// Signed by this node.
    Signed(&'a NodeKey),
    /// All zero.
    Unsigned,
    /// As given (no signature computed).
    Raw(ExportEnd),
    /// Signed by this node over a wrong record count.
    WrongCount(&'a NodeKey, u64),
    /// No end record.
    Missing,
}

/// Frames records (digests recomputed, as whoever rewrites a file can) and ends the file.
pub fn frame(recs: &[Rec], end: End) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    let mut prev = [0u8; 32];
    let push = |out: &mut Vec<u8>, prev: &mut [u8; 32], ty: u8, body: &[u8]| {
        let len = (body.len() as u32).to_le_bytes();
        let digest = tagged_hash(RECORD_TAG, &[&prev[..], &[ty], &len, body]);
        out.push(ty);
        out.extend_from_slice(&len);
        out.extend_from_slice(body);
        out.extend_from_slice(&digest);
        *prev = digest;
    };
    for r in recs {
        push(&mut out, &mut prev, r.ty, &r.body);
    }
    let n = recs.len() as u64;
    let sign = |key: &NodeKey, count: u64, prev: &[u8; 32]| {
        let mut msg = prev.to_vec();
        msg.extend_from_slice(&count.to_le_bytes());
        ExportEnd {
            records: count,
            exporter: key.public(),
            signature: key.sign(EXPORT_TAG, &msg),
        }
    };
    let end = match end {
        End::Signed(key) => sign(key, n, &prev),
        End::Unsigned => ExportEnd {
            records: n,
            exporter: NodePublicKey::default(),
            signature: [0; 64],
        },
        End::Raw(e) => e,
        End::WrongCount(key, count) => sign(key, count, &prev),
        End::Missing => return out,
    };
    push(&mut out, &mut prev, 8, &codec::encode(&end));
    out
}

/// The offsets of the records of a well-framed file.
fn offsets(file: &[u8]) -> Vec<usize> {
    let mut at = MAGIC.len();
    let mut out = Vec::new();
    while at + 5 <= file.len() {
        out.push(at);
        let len = u32::from_le_bytes(file[at + 1..at + 5].try_into().unwrap()) as usize;
        at += 5 + len + 32;
    }
    out
}

/// An alert, built from its JSON form (§14) so that optional fields added to `Alert` later
/// keep their defaults without touching this generator.
fn alert(title: &str, description: String) -> Alert {
    serde_json::from_value(serde_json::json!({
        "kind": "sighting",
        "title": title,
        "description": description,
        "severity": "medium",
        "confidence": 60,
        "observables": [{"type": "domain", "value": "ballot-example.org"}],
        "labels": [],
        "references": [],
        "valid_from_ms": T0,
        "valid_until_ms": null,
        "related": [],
    }))
    .expect("a valid alert")
}

/// Runs the reference verifier as `alertmesh audit verify` does.
pub fn audit(file: &[u8], pinned: Option<CharterHash>) -> Report {
    verify_export(
        file,
        AuditOptions {
            pinned_genesis: pinned,
            check_plaintext: true,
            ..AuditOptions::default()
        },
    )
}

/// The findings of a report, as in the vectors.
pub fn findings_of(report: &Report) -> Vec<FindingVector> {
    report
        .findings
        .iter()
        .map(|f| FindingVector {
            code: f.code.to_string(),
            severity: match f.severity {
                Severity::Problem => "problem",
                Severity::Note => "note",
            },
            record: f.location.record,
        })
        .collect()
}

/// Every finding code of PROTOCOL.md §18.6, with its severity.
pub const CODES: &[(&str, &str)] = &[
    ("bad_magic", "problem"),
    ("bad_framing", "problem"),
    ("truncated", "problem"),
    ("record_digest_mismatch", "problem"),
    ("unknown_record", "problem"),
    ("out_of_order", "problem"),
    ("missing_meta", "problem"),
    ("unsupported_format", "problem"),
    ("network_mismatch", "problem"),
    ("record_count_mismatch", "problem"),
    ("bad_export_signature", "problem"),
    ("exporter_mismatch", "problem"),
    ("after_end", "problem"),
    ("bad_record", "problem"),
    ("plaintext_undeclared", "problem"),
    ("genesis_pinned_by_export", "note"),
    ("genesis_not_pinned", "note"),
    ("unsigned_export", "note"),
    ("no_genesis", "problem"),
    ("genesis_mismatch", "problem"),
    ("authorization_unchecked", "problem"),
    ("charter_malformed", "problem"),
    ("charter_prev_hash", "problem"),
    ("charter_bad_signature", "problem"),
    ("charter_threshold", "problem"),
    ("charter_missing_predecessor", "problem"),
    ("charter_wrong_network", "problem"),
    ("charter_version", "problem"),
    ("charter_fork", "problem"),
    ("charter_after_fork", "problem"),
    ("charter_duplicate", "note"),
    ("cert_malformed", "problem"),
    ("cert_invalid", "problem"),
    ("envelope_malformed", "problem"),
    ("too_large", "problem"),
    ("bad_signature", "problem"),
    ("wrong_network", "problem"),
    ("unknown_charter_version", "problem"),
    ("unknown_author", "problem"),
    ("ambiguous_author", "problem"),
    ("cert_not_valid", "problem"),
    ("beyond_cutoff", "problem"),
    ("unknown_topic", "problem"),
    ("not_publisher", "problem"),
    ("control_not_evidence", "problem"),
    ("evidence_on_data_topic", "problem"),
    ("tlp_too_high", "problem"),
    ("from_future", "problem"),
    ("bad_payload", "problem"),
    ("equivocation_in_log", "problem"),
    ("rights_withdrawn_without_cutoff", "note"),
    ("duplicate_envelope", "note"),
    ("plaintext_missing", "problem"),
    ("plaintext_misplaced", "problem"),
    ("plaintext_undecryptable", "problem"),
    ("plaintext_mismatch", "problem"),
    ("content_invalid", "problem"),
    ("amendment_not_by_author", "problem"),
    ("amendment_original_missing", "note"),
    ("bad_evidence", "problem"),
    ("equivocation", "problem"),
    ("chain_conflict_evidence", "problem"),
    ("chain_gap", "problem"),
    ("chain_fork", "problem"),
];

struct Ctx {
    network: NetworkId,
    topic: TopicId,
    control: TopicId,
    genesis: SignedCharter,
    roots: Vec<OrgRootKey>,
    orgs: Vec<OrgId>,
    a1: NodeKey,
    b1: NodeKey,
    c1: NodeKey,
    d1: NodeKey,
    a_key: SenderKey,
    b_key: SenderKey,
    d_key: SenderKey,
    rng: ChaCha20Rng,
}

impl Ctx {
    fn draft(&self, seq: u64, prev: EnvelopeId, kind: Kind) -> Draft {
        Draft {
            network_id: self.network,
            topic_id: self.topic,
            seq,
            prev,
            charter_version: 1,
            timestamp_ms: T0 + 1_000 * seq,
            kind,
            key_epoch: 1,
            tlp: if kind.is_encrypted() {
                Tlp::Amber
            } else {
                Tlp::Clear
            },
        }
    }

    fn key_package(&mut self, author: &NodeKey, draft: &Draft, key: &SenderKey) -> SignedEnvelope {
        let (pkg, _) = KeyPackage::seal(
            &draft.network_id,
            &draft.topic_id,
            &author.public(),
            key,
            &[],
            &mut self.rng,
        );
        SignedEnvelope::seal_clear(author, draft, &pkg.encode()).unwrap()
    }

    fn sealed(
        &mut self,
        author: &NodeKey,
        draft: &Draft,
        key: &SenderKey,
        pt: &[u8],
    ) -> SignedEnvelope {
        SignedEnvelope::seal_encrypted(author, draft, key, pt, &mut self.rng).unwrap()
    }

    /// A charter version `version` built from genesis by `edit`, signed by `signers`.
    fn charter(
        &self,
        version: u64,
        prev: CharterHash,
        signers: &[usize],
        edit: impl FnOnce(&mut Charter),
    ) -> SignedCharter {
        let mut c = self.genesis.charter().clone();
        c.version = version;
        c.prev_hash = prev;
        c.created_ms = T0 + version;
        edit(&mut c);
        let mut s = SignedCharter::unsigned(c);
        for i in signers {
            s.sign(&self.orgs[*i], &self.roots[*i]);
        }
        s
    }

    fn cert(&self, org: usize, key: &NodeKey, serial: u64, not_after: u64) -> SignedNodeCert {
        let mut rng = ChaCha20Rng::seed_from_u64(serial);
        let agree = alertmesh_protocol::keys::AgreementKey::generate(&mut rng);
        SignedNodeCert::issue_with_node_key(
            &self.roots[org],
            key,
            NodeCert {
                network_id: self.network,
                org_id: self.orgs[org].clone(),
                node_sign_pub: key.public(),
                node_agree_pub: agree.public(),
                not_before_ms: T0,
                not_after_ms: not_after,
                serial,
            },
        )
        .unwrap()
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Builds every export vector.
pub fn build() -> AuditVectors {
    let mut rng = ChaCha20Rng::seed_from_u64(AUDIT_SEED);
    let org = |s: &str| OrgId(s.to_string());
    let plan = NetworkPlan {
        network_name: "audit-vectors".into(),
        orgs: ["org-a", "org-b", "org-c"]
            .iter()
            .enumerate()
            .map(|(i, o)| OrgPlan {
                org_id: org(o),
                name: format!("Organization {}", &o[4..]),
                roles: vec![],
                governor: i < 2,
                nodes: 1,
            })
            .collect(),
        topics: vec![TopicPlan {
            name: TOPIC.into(),
            readers: vec![org("org-a"), org("org-b"), org("org-c")],
            publishers: vec![org("org-a"), org("org-b")],
            max_tlp: Tlp::Amber,
        }],
        threshold: 2,
        limits: Limits {
            max_envelope_bytes: 2048,
            ..Limits::default()
        },
        now_ms: T0,
        cert_lifetime_ms: 365 * 24 * 3600 * 1000,
    };
    let net = plan.build(&mut rng);
    let network = net.genesis.charter().network_id;
    let mut orgs_material = net.orgs.into_iter();
    let (a, b, c) = (
        orgs_material.next().unwrap(),
        orgs_material.next().unwrap(),
        orgs_material.next().unwrap(),
    );
    let genesis = net.genesis;
    let cert_a = a.nodes[0].cert.clone();
    let cert_b = b.nodes[0].cert.clone();
    let cert_c = c.nodes[0].cert.clone();
    let a_key = SenderKey::generate(1, &mut rng);
    let b_key = SenderKey::generate(1, &mut rng);
    let d_key = SenderKey::generate(1, &mut rng);
    let d_node = new_node(
        &network,
        &org("org-a"),
        &OrgRootKey::generate(&mut rng),
        9,
        T0,
        T0 + 1,
        &mut rng,
    );
    let mut cx = Ctx {
        network,
        topic: TopicId::derive(&network, TOPIC),
        control: TopicId::control(&network),
        genesis: genesis.clone(),
        roots: vec![a.root, b.root, c.root],
        orgs: vec![org("org-a"), org("org-b"), org("org-c")],
        a1: a.nodes.into_iter().next().unwrap().key,
        b1: b.nodes.into_iter().next().unwrap().key,
        c1: c.nodes.into_iter().next().unwrap().key,
        d1: d_node.key,
        a_key,
        b_key,
        d_key,
        rng,
    };
    let gh = genesis.hash();

    // --- the valid export -------------------------------------------------------------
    let a1 = NodeKey::from_secret_bytes(&cx.a1.secret_bytes());
    let b1 = NodeKey::from_secret_bytes(&cx.b1.secret_bytes());
    let a_sk = SenderKey::from_bytes(1, &cx.a_key.secret_bytes());
    let b_sk = SenderKey::from_bytes(1, &cx.b_key.secret_bytes());
    let d = cx.draft(1, EnvelopeId::default(), Kind::KeyPackage);
    let a_kp = cx.key_package(&a1, &d, &a_sk);
    let a_pt2 = Content::Alert(alert(
        "Fake polling-place closure posts",
        "Coordinated posts claim polling places are closed.".into(),
    ))
    .encode();
    let a_alert = cx.sealed(&a1, &cx.draft(2, a_kp.id(), Kind::Alert), &a_sk, &a_pt2);
    let a_pt3 = Content::Update(AlertUpdate {
        original: a_alert.id(),
        alert: alert(
            "Fake polling-place closure posts",
            "Now also on a second platform.".into(),
        ),
    })
    .encode();
    let a_upd = cx.sealed(&a1, &cx.draft(3, a_alert.id(), Kind::Update), &a_sk, &a_pt3);
    let b_kp = cx.key_package(
        &b1,
        &cx.draft(1, EnvelopeId::default(), Kind::KeyPackage),
        &b_sk,
    );
    let b_pt2 = Content::Alert(alert(
        "Phishing kit aimed at poll workers",
        "Lure pages mimic the county training portal.".into(),
    ))
    .encode();
    let b_alert = cx.sealed(&b1, &cx.draft(2, b_kp.id(), Kind::Alert), &b_sk, &b_pt2);

    let meta = ExportMeta {
        format_version: FORMAT_VERSION,
        network_id: network,
        genesis_hash: gh,
        exporter: a1.public(),
        exported_ms: T0 + 100_000,
        topics: vec![],
        since_ms: None,
        until_ms: None,
        with_plaintext: true,
    };
    let meta_rec = |m: &ExportMeta| rec(1, &codec::encode(m));
    let topic_id = cx.topic;
    let key_rec = move |author: &NodeKey, k: &SenderKey| {
        rec(
            4,
            &codec::encode(&ExportedKey {
                author: author.public(),
                topic: topic_id,
                epoch: 1,
                key: *k.secret_bytes(),
            }),
        )
    };
    // Record indices of the valid export:
    //  0 meta  1 genesis  2-4 certs a1 b1 c1  5-6 sender keys a1 b1
    //  7 a1 key package  8 a1 alert  9 its plaintext  10 a1 update  11 its plaintext
    //  12 b1 key package  13 b1 alert  14 its plaintext  15 end
    let base: Vec<Rec> = vec![
        meta_rec(&meta),
        rec(2, genesis.as_bytes()),
        rec(3, cert_a.as_bytes()),
        rec(3, cert_b.as_bytes()),
        rec(3, cert_c.as_bytes()),
        key_rec(&a1, &a_sk),
        key_rec(&b1, &b_sk),
        env_rec(RECEIVED, &a_kp),
        env_rec(RECEIVED, &a_alert),
        pt_rec(&a_alert.id(), &a_pt2),
        env_rec(RECEIVED, &a_upd),
        pt_rec(&a_upd.id(), &a_pt3),
        env_rec(RECEIVED, &b_kp),
        env_rec(RECEIVED, &b_alert),
        pt_rec(&b_alert.id(), &b_pt2),
    ];
    const END_AT: usize = 15;
    let valid = frame(&base, End::Signed(&a1));

    let mut out: Vec<ExportVector> = Vec::new();
    let mut add = |name: &str,
                   target: &'static str,
                   description: &str,
                   pinned: Option<CharterHash>,
                   file: Vec<u8>| {
        let report = audit(&file, pinned);
        let findings = findings_of(&report);
        if target == "none" {
            assert!(findings.is_empty(), "{name}: {findings:?}");
        } else {
            assert!(
                findings.iter().any(|f| f.code == target),
                "{name} does not yield {target}: {findings:?}"
            );
        }
        out.push(ExportVector {
            name: name.into(),
            target,
            description: description.into(),
            pinned_genesis: pinned.map(|h| h.to_hex()),
            hex: hex(&file),
            ok: report.ok,
            findings,
        });
    };
    let p = Some(gh);
    // Helpers for variants.
    let with = |edit: &dyn Fn(&mut Vec<Rec>)| {
        let mut r = base.clone();
        edit(&mut r);
        r
    };
    let insert_before_end = |extra: Vec<Rec>| {
        let mut r = base.clone();
        r.extend(extra);
        r
    };

    add(
        "valid",
        "none",
        "the valid export: genesis, three certificates, two sender keys, five envelopes with three plaintexts, signed by the exporter the meta record names (a1)",
        p,
        valid.clone(),
    );

    // --- 1. framing, meta and end ---------------------------------------------------
    let offs = offsets(&valid);
    let mut f = valid.clone();
    f[0] ^= 0x01;
    add(
        "bad-magic",
        "bad_magic",
        "the first byte of the magic changed: nothing else is read",
        p,
        f,
    );
    let mut f = valid.clone();
    f[offs[8] + 1..offs[8] + 5].copy_from_slice(&u32::MAX.to_le_bytes());
    add(
        "bad-framing",
        "bad_framing",
        "record 8's length field set to 0xffffffff, over MAX_RECORD_BODY: the audit stops there",
        p,
        f,
    );
    add(
        "truncated-inside-record",
        "truncated",
        "the file cut 10 bytes into record 8: the audit stops there",
        p,
        valid[..offs[8] + 10].to_vec(),
    );
    add(
        "truncated-no-end",
        "truncated",
        "the file cut exactly before the end record: reported at the record index and offset where the end record should be",
        p,
        valid[..offs[END_AT]].to_vec(),
    );
    let mut f = valid.clone();
    let d8 = offs[9] - 1;
    f[d8] ^= 0x80;
    add(
        "digest-mismatch",
        "record_digest_mismatch",
        "a bit of record 8's stored digest flipped (only record 8 fails: record 9 chains on the stored digest)",
        p,
        f,
    );
    let mut f = valid.clone();
    f[offs[12] + 100] ^= 0x01;
    add(
        "digest-mismatch-body",
        "record_digest_mismatch",
        "a bit inside record 12's body (b1's key package) flipped, digests not recomputed: the record's digest and the envelope's signature fail",
        p,
        f,
    );
    add(
        "unknown-record",
        "unknown_record",
        "a record of type 99 inserted before the end record",
        p,
        frame(&insert_before_end(vec![rec(99, b"?")]), End::Signed(&a1)),
    );
    add(
        "out-of-order",
        "out_of_order",
        "the certificate of c1 moved after the sender keys (it is still processed)",
        p,
        frame(
            &with(&|r| {
                let c = r.remove(4);
                r.insert(6, c);
            }),
            End::Signed(&a1),
        ),
    );
    add(
        "out-of-order-charter",
        "out_of_order",
        "a second copy of the genesis after the certificates: reported and ignored",
        p,
        frame(
            &with(&|r| r.insert(5, rec(2, genesis.as_bytes()))),
            End::Signed(&a1),
        ),
    );
    let no_pt: Vec<Rec> = base
        .iter()
        .filter(|r| r.ty != 4 && r.ty != 6)
        .cloned()
        .collect();
    let mut no_meta = no_pt.clone();
    no_meta.remove(0);
    add(
        "missing-meta",
        "missing_meta",
        "no meta record (an export without plaintext otherwise), unsigned",
        p,
        frame(&no_meta, End::Unsigned),
    );
    add(
        "missing-meta-unpinned",
        "genesis_not_pinned",
        "no meta record and no pinned genesis: the log's only genesis is used",
        None,
        frame(&no_meta, End::Unsigned),
    );
    let mut m = meta.clone();
    m.format_version = 2;
    add(
        "unsupported-format",
        "unsupported_format",
        "meta.format_version = 2",
        p,
        frame(&with(&|r| r[0] = meta_rec(&m)), End::Signed(&a1)),
    );
    let mut m = meta.clone();
    m.network_id.0[0] ^= 0xff;
    add(
        "network-mismatch",
        "network_mismatch",
        "meta.network_id differs from the genesis' network_id (reported at the meta record)",
        p,
        frame(&with(&|r| r[0] = meta_rec(&m)), End::Signed(&a1)),
    );
    add(
        "record-count-mismatch",
        "record_count_mismatch",
        "the end record counts 14 records (there are 15 before it), signed over that count",
        p,
        frame(&base, End::WrongCount(&a1, 14)),
    );
    // Flip a bit of the signature and recompute the end record's digest.
    let f = {
        let at = offs[END_AT];
        let mut body = valid[at + 5..at + 5 + 104].to_vec();
        body[40] ^= 0x01;
        let end: ExportEnd = codec::decode_exact(&body, 1024).unwrap();
        frame(&base, End::Raw(end))
    };
    add(
        "bad-export-signature",
        "bad_export_signature",
        "one bit of the exporter signature flipped, digests recomputed",
        p,
        f,
    );
    add(
        "exporter-mismatch-other-signer",
        "exporter_mismatch",
        "the meta record names a1, the end record is signed (validly) by b1",
        p,
        frame(&base, End::Signed(&b1)),
    );
    add(
        "exporter-mismatch-signature-stripped",
        "exporter_mismatch",
        "the meta record names a1, the end record is unsigned (signature removed, digests recomputed)",
        p,
        frame(&base, End::Unsigned),
    );
    let mut m = meta.clone();
    m.exporter = NodePublicKey::default();
    add(
        "exporter-mismatch-meta-unsigned",
        "exporter_mismatch",
        "the meta record names no exporter, the end record is signed by a1",
        p,
        frame(&with(&|r| r[0] = meta_rec(&m)), End::Signed(&a1)),
    );
    add(
        "unsigned",
        "unsigned_export",
        "meta names no exporter and the end record is unsigned: a note, not a problem",
        p,
        frame(&with(&|r| r[0] = meta_rec(&m)), End::Unsigned),
    );
    // A certificate record chained on the end record's digest, after it.
    let mut f = valid.clone();
    {
        let last_digest: [u8; 32] = valid[valid.len() - 32..].try_into().unwrap();
        let body = cert_c.as_bytes();
        let len = (body.len() as u32).to_le_bytes();
        let digest = tagged_hash(RECORD_TAG, &[&last_digest[..], &[3], &len, body]);
        f.push(3);
        f.extend_from_slice(&len);
        f.extend_from_slice(body);
        f.extend_from_slice(&digest);
    }
    add(
        "after-end",
        "after_end",
        "a certificate record after the end record",
        p,
        f,
    );
    add(
        "bad-record",
        "bad_record",
        "an envelope record whose body is 4 bytes (shorter than received_ms)",
        p,
        frame(
            &insert_before_end(vec![rec(5, &[1, 2, 3, 4])]),
            End::Signed(&a1),
        ),
    );
    let mut m = meta.clone();
    m.with_plaintext = false;
    add(
        "plaintext-undeclared",
        "plaintext_undeclared",
        "meta.with_plaintext = false above sender-key and plaintext records: each is reported and ignored",
        p,
        frame(&with(&|r| r[0] = meta_rec(&m)), End::Signed(&a1)),
    );
    add(
        "genesis-pinned-by-export",
        "genesis_pinned_by_export",
        "the valid export verified without a pinned genesis: meta.genesis_hash is used",
        None,
        valid.clone(),
    );
    let mut other = gh;
    other.0[0] ^= 0xff;
    add(
        "genesis-mismatch-meta",
        "genesis_mismatch",
        "the pinned genesis differs from meta.genesis_hash (and the log holds no charter with the pinned hash)",
        Some(other),
        valid.clone(),
    );

    // --- 2. charters ------------------------------------------------------------------
    add(
        "no-genesis",
        "no_genesis",
        "the genesis charter record removed: no authorization can be checked",
        p,
        frame(
            &with(&|r| {
                r.remove(1);
            }),
            End::Signed(&a1),
        ),
    );
    let mut g_one = SignedCharter::unsigned(genesis.charter().clone());
    g_one.sign(&cx.orgs[0], &cx.roots[0]);
    add(
        "genesis-under-threshold",
        "authorization_unchecked",
        "the genesis carries one governor signature of the two its threshold needs (same body, so same hash)",
        p,
        frame(
            &with(&|r| r[1] = rec(2, g_one.as_bytes())),
            End::Signed(&a1),
        ),
    );
    let g_other = cx.charter(1, CharterHash::default(), &[0, 1], |c| {
        c.network_name = "another".into()
    });
    add(
        "second-genesis",
        "genesis_mismatch",
        "a second, valid version-1 charter besides the pinned one",
        p,
        frame(
            &with(&|r| r.insert(2, rec(2, g_other.as_bytes()))),
            End::Signed(&a1),
        ),
    );
    add(
        "charter-malformed",
        "charter_malformed",
        "a charter record whose body does not decode",
        p,
        frame(
            &with(&|r| r.insert(2, rec(2, b"not a charter"))),
            End::Signed(&a1),
        ),
    );
    let v2 = cx.charter(2, gh, &[0, 1], |_| {});
    let bad_prev = cx.charter(2, CharterHash([7; 32]), &[0, 1], |_| {});
    add(
        "charter-prev-hash",
        "charter_prev_hash",
        "version 2 names a prev_hash that is not the genesis hash",
        p,
        frame(
            &with(&|r| r.insert(2, rec(2, bad_prev.as_bytes()))),
            End::Signed(&a1),
        ),
    );
    let mut forged = SignedCharter::unsigned(v2.charter().clone());
    forged.sign(&cx.orgs[0], &cx.roots[0]);
    forged.sign(&cx.orgs[1], &OrgRootKey::from_secret_bytes(&[9; 32]));
    add(
        "charter-bad-signature",
        "charter_bad_signature",
        "version 2 signed by org-a and by a key that is not org-b's root claiming org-b",
        p,
        frame(
            &with(&|r| r.insert(2, rec(2, forged.as_bytes()))),
            End::Signed(&a1),
        ),
    );
    let v2_one = cx.charter(2, gh, &[0], |_| {});
    add(
        "charter-threshold",
        "charter_threshold",
        "version 2 signed by one governor of the two the threshold needs",
        p,
        frame(
            &with(&|r| r.insert(2, rec(2, v2_one.as_bytes()))),
            End::Signed(&a1),
        ),
    );
    let v3_alone = cx.charter(3, CharterHash([3; 32]), &[0, 1], |_| {});
    add(
        "charter-missing-predecessor",
        "charter_missing_predecessor",
        "version 3 without a version 2",
        p,
        frame(
            &with(&|r| r.insert(2, rec(2, v3_alone.as_bytes()))),
            End::Signed(&a1),
        ),
    );
    let v2_net = cx.charter(2, gh, &[0, 1], |c| c.network_id = NetworkId([5; 32]));
    add(
        "charter-wrong-network",
        "charter_wrong_network",
        "version 2 of another network",
        p,
        frame(
            &with(&|r| r.insert(2, rec(2, v2_net.as_bytes()))),
            End::Signed(&a1),
        ),
    );
    let v0 = cx.charter(0, gh, &[0, 1], |_| {});
    add(
        "charter-version",
        "charter_version",
        "a charter of version 0 (not above any adopted version)",
        p,
        frame(
            &with(&|r| r.insert(2, rec(2, v0.as_bytes()))),
            End::Signed(&a1),
        ),
    );
    let v2b = cx.charter(2, gh, &[0, 1], |c| c.network_name = "fork".into());
    let v3 = cx.charter(3, v2.hash(), &[0, 1], |_| {});
    add(
        "charter-fork",
        "charter_fork",
        "two valid, different version-2 charters",
        p,
        frame(
            &with(&|r| {
                r.insert(2, rec(2, v2b.as_bytes()));
                r.insert(2, rec(2, v2.as_bytes()));
            }),
            End::Signed(&a1),
        ),
    );
    add(
        "charter-after-fork",
        "charter_after_fork",
        "a valid version 3 after a fork at version 2",
        p,
        frame(
            &with(&|r| {
                r.insert(2, rec(2, v3.as_bytes()));
                r.insert(2, rec(2, v2b.as_bytes()));
                r.insert(2, rec(2, v2.as_bytes()));
            }),
            End::Signed(&a1),
        ),
    );
    add(
        "charter-duplicate",
        "charter_duplicate",
        "version 2 twice",
        p,
        frame(
            &with(&|r| {
                r.insert(2, rec(2, v2.as_bytes()));
                r.insert(2, rec(2, v2.as_bytes()));
            }),
            End::Signed(&a1),
        ),
    );

    // --- 3. certificates ----------------------------------------------------------------
    add(
        "cert-malformed",
        "cert_malformed",
        "a certificate record whose body does not decode",
        p,
        frame(
            &with(&|r| r.insert(5, rec(3, b"not a cert"))),
            End::Signed(&a1),
        ),
    );
    let rogue_root = OrgRootKey::from_secret_bytes(&[8; 32]);
    let rogue = {
        let mut rng = ChaCha20Rng::seed_from_u64(77);
        let agree = alertmesh_protocol::keys::AgreementKey::generate(&mut rng);
        SignedNodeCert::issue_with_node_key(
            &rogue_root,
            &cx.d1,
            NodeCert {
                network_id: network,
                org_id: cx.orgs[2].clone(),
                node_sign_pub: cx.d1.public(),
                node_agree_pub: agree.public(),
                not_before_ms: T0,
                not_after_ms: T0 + 1_000_000,
                serial: 5,
            },
        )
        .unwrap()
    };
    add(
        "cert-invalid",
        "cert_invalid",
        "a certificate for org-c signed by a key that is not org-c's root",
        p,
        frame(
            &with(&|r| r.insert(5, rec(3, rogue.as_bytes()))),
            End::Signed(&a1),
        ),
    );

    // --- 4. envelopes (appended after the last envelope of the valid export) ----------
    let b_next = |cx: &Ctx, seq: u64, prev: EnvelopeId| cx.draft(seq, prev, Kind::KeyPackage);
    let mut short = RECEIVED.to_le_bytes().to_vec();
    short.extend_from_slice(&b_alert.as_bytes()[..100]);
    add(
        "envelope-malformed",
        "envelope_malformed",
        "an envelope record holding the first 100 bytes of b1's alert (shorter than a header)",
        p,
        frame(&insert_before_end(vec![rec(5, &short)]), End::Signed(&a1)),
    );
    let big_pt = Content::Alert(alert("Large", "x".repeat(2500))).encode();
    let big = cx.sealed(&b1, &cx.draft(3, b_alert.id(), Kind::Alert), &b_sk, &big_pt);
    add(
        "too-large",
        "too_large",
        "b1's seq 3 is larger than max_envelope_bytes (2048) of the charter version it names",
        p,
        frame(
            &insert_before_end(vec![env_rec(RECEIVED, &big), pt_rec(&big.id(), &big_pt)]),
            End::Signed(&a1),
        ),
    );
    let mut bytes = b_alert.as_bytes().to_vec();
    let n = bytes.len();
    bytes[n - 1] ^= 0x01;
    let mut body = RECEIVED.to_le_bytes().to_vec();
    body.extend_from_slice(&bytes);
    let mut pt_body = alertmesh_protocol::ids::sha256(&bytes).to_vec();
    pt_body.extend_from_slice(&b_pt2);
    add(
        "bad-signature",
        "bad_signature",
        "the last byte of b1's alert's signature flipped (its plaintext record names the new id)",
        p,
        frame(
            &with(&|r| {
                r[13] = rec(5, &body);
                r[14] = rec(6, &pt_body);
            }),
            End::Signed(&a1),
        ),
    );
    let mut dr = b_next(&cx, 3, b_alert.id());
    dr.network_id = NetworkId([6; 32]);
    let e = cx.key_package(&b1, &dr, &b_sk);
    add(
        "wrong-network",
        "wrong_network",
        "b1's seq 3 names another network",
        p,
        frame(
            &insert_before_end(vec![env_rec(RECEIVED, &e)]),
            End::Signed(&a1),
        ),
    );
    let mut dr = b_next(&cx, 3, b_alert.id());
    dr.charter_version = 5;
    let e = cx.key_package(&b1, &dr, &b_sk);
    add(
        "unknown-charter-version",
        "unknown_charter_version",
        "b1's seq 3 names charter version 5",
        p,
        frame(
            &insert_before_end(vec![env_rec(RECEIVED, &e)]),
            End::Signed(&a1),
        ),
    );
    let d1 = NodeKey::from_secret_bytes(&cx.d1.secret_bytes());
    let e = cx.key_package(
        &d1,
        &cx.draft(1, EnvelopeId::default(), Kind::KeyPackage),
        &b_sk,
    );
    add(
        "unknown-author",
        "unknown_author",
        "a key package by node d1, whose certificate is not in the log",
        p,
        frame(
            &insert_before_end(vec![env_rec(RECEIVED, &e)]),
            End::Signed(&a1),
        ),
    );
    let b_as_c = cx.cert(2, &b1, 2, T0 + 1_000_000_000);
    add(
        "ambiguous-author",
        "ambiguous_author",
        "a second certificate of b1's node key, issued by org-c (with b1's proof of possession)",
        p,
        frame(
            &with(&|r| r.insert(5, rec(3, b_as_c.as_bytes()))),
            End::Signed(&a1),
        ),
    );
    let mut dr = b_next(&cx, 3, b_alert.id());
    dr.timestamp_ms = T0 + 400 * 24 * 3600 * 1000;
    let e = cx.key_package(&b1, &dr, &b_sk);
    add(
        "cert-not-valid",
        "cert_not_valid",
        "b1's seq 3 claims a time after its certificate's not_after",
        p,
        frame(
            &insert_before_end(vec![env_rec(dr.timestamp_ms, &e)]),
            End::Signed(&a1),
        ),
    );
    let v2_cut = cx.charter(2, gh, &[0, 1], |c| {
        c.cutoffs.push(Cutoff {
            author: b1.public(),
            topic: cx.topic,
            last_seq: 1,
        })
    });
    add(
        "beyond-cutoff",
        "beyond_cutoff",
        "version 2 records a cut-off of seq 1 for (b1, alerts); b1's seq 2 is beyond it",
        p,
        frame(
            &with(&|r| r.insert(2, rec(2, v2_cut.as_bytes()))),
            End::Signed(&a1),
        ),
    );
    let mut dr = b_next(&cx, 1, EnvelopeId::default());
    dr.topic_id = TopicId::derive(&network, "not-in-charter");
    let e = cx.key_package(&b1, &dr, &b_sk);
    add(
        "unknown-topic",
        "unknown_topic",
        "b1 publishes on a topic the charter does not list",
        p,
        frame(
            &insert_before_end(vec![env_rec(RECEIVED, &e)]),
            End::Signed(&a1),
        ),
    );
    let c1 = NodeKey::from_secret_bytes(&cx.c1.secret_bytes());
    let e = cx.key_package(
        &c1,
        &cx.draft(1, EnvelopeId::default(), Kind::KeyPackage),
        &b_sk,
    );
    add(
        "not-publisher",
        "not_publisher",
        "c1 (org-c reads but does not publish) publishes a key package",
        p,
        frame(
            &insert_before_end(vec![env_rec(RECEIVED, &e)]),
            End::Signed(&a1),
        ),
    );
    let mut dr = b_next(&cx, 1, EnvelopeId::default());
    dr.topic_id = cx.control;
    let e = cx.key_package(&b1, &dr, &b_sk);
    add(
        "control-not-evidence",
        "control_not_evidence",
        "a key package on the control topic (its payload names the control topic too)",
        p,
        frame(
            &insert_before_end(vec![env_rec(RECEIVED, &e)]),
            End::Signed(&a1),
        ),
    );
    // An equivocating twin of b1's seq 2, and the evidence.
    let twin = cx.key_package(&b1, &b_next(&cx, 2, b_kp.id()), &b_sk);
    let equiv = Evidence::new(&b_alert, &twin).unwrap();
    let mut dr = cx.draft(3, b_alert.id(), Kind::Evidence);
    dr.tlp = Tlp::Clear;
    let e = SignedEnvelope::seal_clear(&b1, &dr, &equiv.encode()).unwrap();
    add(
        "evidence-on-data-topic",
        "evidence_on_data_topic",
        "an evidence envelope (valid evidence of b1's own equivocation) on the data topic",
        p,
        frame(
            &insert_before_end(vec![env_rec(RECEIVED, &e)]),
            End::Signed(&a1),
        ),
    );
    let mut dr = b_next(&cx, 3, b_alert.id());
    dr.tlp = Tlp::Red;
    let e = cx.key_package(&b1, &dr, &b_sk);
    add(
        "tlp-too-high",
        "tlp_too_high",
        "b1's seq 3 is marked TLP:RED; the topic's max_tlp is AMBER",
        p,
        frame(
            &insert_before_end(vec![env_rec(RECEIVED, &e)]),
            End::Signed(&a1),
        ),
    );
    let dr = b_next(&cx, 3, b_alert.id());
    let e = cx.key_package(&b1, &dr, &b_sk);
    add(
        "from-future",
        "from_future",
        "b1's seq 3 claims a time 30 001 ms after the exporter received it (max_clock_skew_ms = 30 000)",
        p,
        frame(
            &insert_before_end(vec![env_rec(dr.timestamp_ms - 30_001, &e)]),
            End::Signed(&a1),
        ),
    );
    let mut dr = b_next(&cx, 3, b_alert.id());
    dr.key_epoch = 2;
    let e = cx.key_package(&b1, &cx.draft(3, b_alert.id(), Kind::KeyPackage), &b_sk);
    let e = {
        // Header epoch 2, payload epoch 1.
        let payload = e.payload().to_vec();
        SignedEnvelope::seal_clear(&b1, &dr, &payload).unwrap()
    };
    add(
        "bad-payload",
        "bad_payload",
        "b1's key package at seq 3 carries epoch 1 under a header saying epoch 2",
        p,
        frame(
            &insert_before_end(vec![env_rec(RECEIVED, &e)]),
            End::Signed(&a1),
        ),
    );
    add(
        "equivocation-in-log",
        "equivocation_in_log",
        "a second, different seq 2 of b1 (a key package) in the log",
        p,
        frame(
            &insert_before_end(vec![env_rec(RECEIVED, &twin)]),
            End::Signed(&a1),
        ),
    );
    let v2_drop = cx.charter(2, gh, &[0, 1], |c| {
        c.topics[0].publishers.retain(|o| o.as_str() != "org-b")
    });
    add(
        "rights-withdrawn",
        "rights_withdrawn_without_cutoff",
        "version 2 drops org-b from the publishers without a cut-off: b1's envelopes (naming version 1) get the note",
        p,
        frame(
            &with(&|r| r.insert(2, rec(2, v2_drop.as_bytes()))),
            End::Signed(&a1),
        ),
    );
    add(
        "duplicate-envelope",
        "duplicate_envelope",
        "a1's key package twice",
        p,
        frame(
            &insert_before_end(vec![env_rec(RECEIVED, &a_kp)]),
            End::Signed(&a1),
        ),
    );

    // --- 5. plaintexts --------------------------------------------------------------------
    add(
        "plaintext-missing",
        "plaintext_missing",
        "b1's alert's plaintext record removed (the ciphertext is still decrypted and checked)",
        p,
        frame(
            &with(&|r| {
                r.remove(14);
            }),
            End::Signed(&a1),
        ),
    );
    let mut tampered = b_alert.signed_bytes().to_vec();
    tampered[200] ^= 0x01;
    let sig = b1.sign(tags::ENVELOPE, &tampered);
    tampered.extend_from_slice(&sig);
    let t_env = SignedEnvelope::decode(&tampered, 1 << 20).unwrap();
    add(
        "plaintext-missing-tampered",
        "plaintext_undecryptable",
        "b1's alert's ciphertext altered (re-signed by b1) and its plaintext record removed: decrypting still reveals it",
        p,
        frame(
            &with(&|r| {
                r[13] = env_rec(RECEIVED, &t_env);
                r.remove(14);
            }),
            End::Signed(&a1),
        ),
    );
    add(
        "plaintext-undecryptable",
        "plaintext_undecryptable",
        "b1's alert's ciphertext altered (re-signed by b1); its plaintext record names the new id",
        p,
        frame(
            &with(&|r| {
                r[13] = env_rec(RECEIVED, &t_env);
                r[14] = pt_rec(&t_env.id(), &b_pt2);
            }),
            End::Signed(&a1),
        ),
    );
    add(
        "plaintext-misplaced",
        "plaintext_misplaced",
        "a plaintext record after a1's key package (a clear envelope)",
        p,
        frame(
            &with(&|r| r.insert(8, pt_rec(&a_kp.id(), b"clear"))),
            End::Signed(&a1),
        ),
    );
    add(
        "plaintext-misplaced-other-id",
        "plaintext_misplaced",
        "b1's alert's plaintext record names a1's alert: misplaced, and b1's alert's plaintext is missing",
        p,
        frame(
            &with(&|r| r[14] = pt_rec(&a_alert.id(), &b_pt2)),
            End::Signed(&a1),
        ),
    );
    let other_pt = Content::Alert(alert(
        "Phishing kit aimed at poll workers",
        "A different story.".into(),
    ))
    .encode();
    add(
        "plaintext-mismatch",
        "plaintext_mismatch",
        "b1's alert's plaintext record replaced by another valid alert",
        p,
        frame(
            &with(&|r| r[14] = pt_rec(&b_alert.id(), &other_pt)),
            End::Signed(&a1),
        ),
    );
    let junk = b"not an alert".to_vec();
    let e = cx.sealed(&b1, &cx.draft(3, b_alert.id(), Kind::Alert), &b_sk, &junk);
    add(
        "content-invalid",
        "content_invalid",
        "b1's seq 3 decrypts to bytes that are not an alert",
        p,
        frame(
            &insert_before_end(vec![env_rec(RECEIVED, &e), pt_rec(&e.id(), &junk)]),
            End::Signed(&a1),
        ),
    );
    let upd = Content::Update(AlertUpdate {
        original: a_alert.id(),
        alert: alert("Hijacked", "b1 rewrites a1's alert.".into()),
    })
    .encode();
    let e = cx.sealed(&b1, &cx.draft(3, b_alert.id(), Kind::Update), &b_sk, &upd);
    add(
        "amendment-not-by-author",
        "amendment_not_by_author",
        "b1 (org-b) updates a1's (org-a) alert; reported at the plaintext record",
        p,
        frame(
            &insert_before_end(vec![env_rec(RECEIVED, &e), pt_rec(&e.id(), &upd)]),
            End::Signed(&a1),
        ),
    );
    let upd2 = Content::Update(AlertUpdate {
        original: EnvelopeId([0x42; 32]),
        alert: alert("Orphan", "Updates an alert the log does not hold.".into()),
    })
    .encode();
    let e = cx.sealed(&b1, &cx.draft(3, b_alert.id(), Kind::Update), &b_sk, &upd2);
    add(
        "amendment-original-missing",
        "amendment_original_missing",
        "b1 updates an alert the log does not hold: a note",
        p,
        frame(
            &insert_before_end(vec![env_rec(RECEIVED, &e), pt_rec(&e.id(), &upd2)]),
            End::Signed(&a1),
        ),
    );
    let d_sk = SenderKey::from_bytes(1, &cx.d_key.secret_bytes());
    let upd3 = Content::Update(AlertUpdate {
        original: a_alert.id(),
        alert: alert(
            "Unknown",
            "An update by a node no certificate names.".into(),
        ),
    })
    .encode();
    let mut dr = cx.draft(1, EnvelopeId::default(), Kind::Update);
    dr.timestamp_ms = T0 + 5_000;
    let e = cx.sealed(&d1, &dr, &d_sk, &upd3);
    let mut extra_key = base.clone();
    extra_key.insert(7, key_rec(&d1, &d_sk));
    extra_key.push(env_rec(RECEIVED, &e));
    extra_key.push(pt_rec(&e.id(), &upd3));
    add(
        "amendment-unknown-org",
        "amendment_not_by_author",
        "an update of a1's alert by d1, whose org no certificate in the log names (its sender key is exported)",
        p,
        frame(&extra_key, End::Signed(&a1)),
    );

    // --- 6. evidence ----------------------------------------------------------------------
    add(
        "bad-evidence",
        "bad_evidence",
        "an evidence record whose body does not decode",
        p,
        frame(&insert_before_end(vec![rec(7, &[0; 12])]), End::Signed(&a1)),
    );
    add(
        "equivocation",
        "equivocation",
        "an evidence record proving b1 signed two seq-2 envelopes",
        p,
        frame(&insert_before_end(vec![ev_rec(&equiv)]), End::Signed(&a1)),
    );
    let cc = cx.key_package(&b1, &b_next(&cx, 3, EnvelopeId([0x33; 32])), &b_sk);
    let conflict = Evidence::new(&b_alert, &cc).unwrap();
    add(
        "chain-conflict-evidence",
        "chain_conflict_evidence",
        "an evidence record proving b1's seq 3 does not chain onto its seq 2",
        p,
        frame(
            &insert_before_end(vec![ev_rec(&conflict)]),
            End::Signed(&a1),
        ),
    );

    // --- 7. chains --------------------------------------------------------------------------
    add(
        "chain-gap",
        "chain_gap",
        "a1's alert (seq 2) and its plaintext removed: the gap is reported at seq 3",
        p,
        frame(
            &with(&|r| {
                r.remove(9);
                r.remove(8);
            }),
            End::Signed(&a1),
        ),
    );
    add(
        "chain-fork",
        "chain_fork",
        "b1's seq 3 names a prev that is not its seq 2",
        p,
        frame(
            &insert_before_end(vec![env_rec(RECEIVED, &cc)]),
            End::Signed(&a1),
        ),
    );

    AuditVectors {
        about: "Audit export vectors (PROTOCOL.md §18.8). Test keys only.",
        command: "cargo run -p alertmesh-protocol --example gen-vectors -- --audit > protocol/testdata/audit-vectors.json",
        seed: AUDIT_SEED,
        genesis_hash: gh.to_hex(),
        network_id: network.to_hex(),
        topic: TOPIC,
        topic_id: cx.topic.to_hex(),
        control_topic_id: cx.control.to_hex(),
        nodes: vec![
            NodeInfo {
                name: "a1",
                org_id: "org-a".into(),
                sign_public: a1.public().to_hex(),
                in_log: true,
            },
            NodeInfo {
                name: "b1",
                org_id: "org-b".into(),
                sign_public: b1.public().to_hex(),
                in_log: true,
            },
            NodeInfo {
                name: "c1",
                org_id: "org-c".into(),
                sign_public: c1.public().to_hex(),
                in_log: true,
            },
            NodeInfo {
                name: "d1",
                org_id: "(none)".into(),
                sign_public: d1.public().to_hex(),
                in_log: false,
            },
        ],
        exports: out,
    }
}

/// The JSON file's exact contents.
pub fn to_json(v: &AuditVectors) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap();
    s.push('\n');
    s
}
