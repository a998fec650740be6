//! The validation rules of DESIGN.md §7: one negative test per reject and ignore reason,
//! the positive cases, and the order of the rules where two would fail.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use alertmesh_protocol::bootstrap::{NetworkPlan, NodeMaterial, TopicPlan, new_node, simple_plan};
use alertmesh_protocol::cert::CertError;
use alertmesh_protocol::charter::Cutoff;
use alertmesh_protocol::evidence::Misbehaviour;
use alertmesh_protocol::ids::tags;
use alertmesh_protocol::validate::Accepted;
use alertmesh_protocol::{
    AgreementPublicKey, CertDirectory, Draft, EnvelopeId, Evidence, IgnoreReason, KeyPackage, Kind,
    Limits, MemoryChains, NetworkId, NodeCert, OrgRootKey, RejectReason, SenderKey, SignedEnvelope,
    SignedNodeCert, Source, Tlp, TopicId, Validator, Verdict,
};
use common::{NOW, TestNet, resign, rng, sample_alert, seal_alert};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::RngSeed;
use rand_chacha08::ChaCha20Rng;

const ZERO: EnvelopeId = EnvelopeId([0; 32]);

/// Four orgs, all governors, threshold 2. Topic `all`: everyone reads, org-0..org-2
/// publish (org-3 only reads), TLP up to RED. Topic `amber`: everyone reads and
/// publishes, TLP up to AMBER.
fn plan() -> NetworkPlan {
    let mut plan = simple_plan(4, NOW);
    let all = plan.topics[0].readers.clone();
    plan.topics[0].publishers.retain(|o| o.as_str() != "org-3");
    plan.topics.push(TopicPlan {
        name: "amber".into(),
        readers: all.clone(),
        publishers: all,
        max_tlp: Tlp::Amber,
    });
    plan
}

struct Fixture {
    net: TestNet,
    key: SenderKey,
    rng: ChaCha20Rng,
    chains: MemoryChains,
    validator: Validator,
}

fn fixture(seed: u64) -> Fixture {
    fixture_with(&plan(), seed)
}

fn fixture_with(plan: &NetworkPlan, seed: u64) -> Fixture {
    let mut rng = rng(seed ^ 0x5eed);
    Fixture {
        net: TestNet::new(plan, seed),
        key: SenderKey::generate(1, &mut rng),
        rng,
        chains: MemoryChains::default(),
        validator: Validator::new(),
    }
}

impl Fixture {
    /// An alert by org `org`'s node on topic `all`.
    fn alert(&mut self, org: usize, seq: u64, prev: EnvelopeId) -> SignedEnvelope {
        let draft = self
            .net
            .draft(self.net.topic("all"), seq, prev, Kind::Alert);
        self.alert_with(org, draft)
    }

    /// An alert, seq 1 with no predecessor, by org `org`'s node on `topic`, its draft
    /// changed by `edit` first.
    fn alert_edited(
        &mut self,
        org: usize,
        topic: &str,
        edit: impl FnOnce(&mut Draft),
    ) -> SignedEnvelope {
        let mut draft = self.net.draft(self.net.topic(topic), 1, ZERO, Kind::Alert);
        edit(&mut draft);
        self.alert_with(org, draft)
    }

    fn alert_with(&mut self, org: usize, draft: Draft) -> SignedEnvelope {
        seal_alert(
            &self.net.node(org).key,
            &draft,
            &self.key,
            &sample_alert(),
            &mut self.rng,
        )
    }

    /// An unencrypted envelope (key package, evidence) by org `org`'s node.
    fn clear(&self, org: usize, draft: &Draft, payload: &[u8]) -> SignedEnvelope {
        SignedEnvelope::seal_clear(&self.net.node(org).key, draft, payload).unwrap()
    }

    /// Org-0's node's seq 1 on `topic` carrying `payload` as a key package of `key_epoch`.
    fn key_package_envelope(
        &self,
        topic: TopicId,
        key_epoch: u64,
        payload: &[u8],
    ) -> SignedEnvelope {
        let mut draft = self.net.draft(topic, 1, ZERO, Kind::KeyPackage);
        draft.key_epoch = key_epoch;
        self.clear(0, &draft, payload)
    }

    /// Org-0's node's package of the fixture's sender key on `topic` for `readers`.
    fn key_package(&mut self, topic: TopicId, readers: &[AgreementPublicKey]) -> KeyPackage {
        let author = self.net.node(0).key.public();
        let (pkg, refused) = KeyPackage::seal(
            &self.net.network_id(),
            &topic,
            &author,
            &self.key,
            readers,
            &mut self.rng,
        );
        assert!(refused.is_empty());
        pkg
    }

    /// The agreement keys of every node.
    fn all_readers(&self) -> Vec<AgreementPublicKey> {
        self.net
            .network
            .nodes()
            .map(|(_, n)| n.agreement.public())
            .collect()
    }

    /// A correctly certified node of org-0 whose certificate the directory does not hold.
    fn stranger(&mut self) -> NodeMaterial {
        let network_id = self.net.network_id();
        let org = self.net.org_id(0);
        new_node(
            &network_id,
            &org,
            &self.net.org(0).root,
            99,
            NOW,
            NOW + 1_000_000,
            &mut self.rng,
        )
    }

    fn check_at(&mut self, bytes: &[u8], source: Source, now_ms: u64) -> Verdict {
        let ctx = self.net.ctx(&self.chains, now_ms);
        self.validator.validate(&ctx, bytes, source)
    }

    fn check(&mut self, bytes: &[u8]) -> Verdict {
        self.check_at(bytes, Source::Gossip, NOW)
    }

    fn reject(&mut self, bytes: &[u8]) -> RejectReason {
        match self.check(bytes) {
            Verdict::Reject(reason) => reason,
            other => panic!("expected a rejection, got {}", describe(&other)),
        }
    }

    fn ignore(&mut self, bytes: &[u8]) -> IgnoreReason {
        match self.check(bytes) {
            Verdict::Ignore(reason) => reason,
            other => panic!("expected an ignore, got {}", describe(&other)),
        }
    }

    fn accept_from(&mut self, bytes: &[u8], source: Source) -> Accepted {
        match self.check_at(bytes, source, NOW) {
            Verdict::Accept(accepted) => *accepted,
            other => panic!("expected acceptance, got {}", describe(&other)),
        }
    }

    /// Accepts from gossip and stores the envelope, as a node would.
    fn accept(&mut self, bytes: &[u8]) -> Accepted {
        let accepted = self.accept_from(bytes, Source::Gossip);
        self.chains.insert(accepted.envelope.clone());
        accepted
    }

    fn cutoff(&self, org: usize, topic: &str, last_seq: u64) -> Cutoff {
        Cutoff {
            author: self.net.node(org).key.public(),
            topic: self.net.topic(topic),
            last_seq,
        }
    }
}

/// [`plan`] with a charter rate limit of one envelope per org and minute, after a burst.
fn rate_limited_plan(rate_burst: u32) -> NetworkPlan {
    let mut p = plan();
    p.limits = Limits {
        rate_per_org_per_minute: 1,
        rate_burst,
        ..Limits::default()
    };
    p
}

/// A verdict without the envelope's bytes.
fn describe(verdict: &Verdict) -> String {
    match verdict {
        Verdict::Accept(a) => format!(
            "Accept(org {}, {:?}, gap {})",
            a.org,
            a.envelope.header(),
            a.gap
        ),
        other => format!("{other:?}"),
    }
}

/// A copy of `env` with one bit of its signature flipped.
fn bad_signature(env: &SignedEnvelope) -> Vec<u8> {
    let mut bytes = env.as_bytes().to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    bytes
}

// ---------------------------------------------------------------- positive cases

#[test]
fn accepts_a_valid_alert() {
    let mut f = fixture(1);
    let env = f.alert(0, 1, ZERO);
    let accepted = f.accept(env.as_bytes());
    assert_eq!(accepted.envelope, env);
    assert_eq!(accepted.envelope.as_bytes(), env.as_bytes());
    assert_eq!(accepted.org, f.net.org_id(0));
    assert!(!accepted.gap);
    // Its successor, naming it, is accepted without a gap.
    let next = f.alert(0, 2, env.id());
    assert!(!f.accept(next.as_bytes()).gap);
}

#[test]
fn gap_flag_set_when_predecessor_missing() {
    let mut f = fixture(2);
    let first = f.alert(0, 1, ZERO);
    let second = f.alert(0, 2, first.id());
    let accepted = f.accept(second.as_bytes());
    assert!(accepted.gap, "seq 2 without seq 1 must be flagged as a gap");
    // Once the predecessor arrives it is accepted (its successor names it) without a gap.
    assert!(!f.accept(first.as_bytes()).gap);
}

#[test]
fn sync_source_is_not_rate_limited() {
    let mut f = fixture_with(&rate_limited_plan(2), 3);
    let mut prev = ZERO;
    for seq in 1..=10 {
        let env = f.alert(0, seq, prev);
        let accepted = f.accept_from(env.as_bytes(), Source::Sync);
        f.chains.insert(accepted.envelope);
        prev = env.id();
    }
    assert_eq!(f.chains.len(), 10);
    // Sync did not use up the gossip bucket either.
    let env = f.alert(0, 11, prev);
    f.accept(env.as_bytes());
}

#[test]
fn evidence_envelope_accepted_on_the_control_topic() {
    let mut f = fixture(4);
    let a = f.alert(0, 1, ZERO);
    let b = f.alert(0, 1, ZERO);
    assert_ne!(a.id(), b.id());
    let evidence = Evidence::new(&a, &b).unwrap();
    let proven = evidence
        .verify(f.net.current().limits.max_envelope_bytes as usize)
        .unwrap();
    assert_eq!(proven.misbehaviour, Misbehaviour::Equivocation);
    assert_eq!(proven.author, f.net.node(0).key.public());

    // Any member (here the read-only org-3) may report it.
    let mut draft = f.net.draft(f.net.control(), 1, ZERO, Kind::Evidence);
    draft.tlp = Tlp::Clear;
    let env = f.clear(3, &draft, &evidence.encode());
    let accepted = f.accept(env.as_bytes());
    assert_eq!(accepted.org, f.net.org_id(3));
}

#[test]
fn key_package_envelope_accepted() {
    let mut f = fixture(5);
    let topic = f.net.topic("all");
    let readers = f.all_readers();
    let pkg = f.key_package(topic, &readers);
    let env = f.key_package_envelope(topic, 1, &pkg.encode());
    f.accept(env.as_bytes());
}

#[test]
fn historical_envelopes_of_a_revoked_author_accepted_up_to_the_cutoff() {
    let mut f = fixture(6);
    // Published under v1 before the revocation.
    let e1 = f.alert(1, 1, ZERO);
    let e2 = f.alert(1, 2, e1.id());
    let e3 = f.alert(1, 3, e2.id());
    let cutoff = f.cutoff(1, "all", 2);
    f.net.revoke(1, vec![cutoff], &[0, 2]);
    assert_eq!(f.net.current().version, 2);

    assert_eq!(f.accept(e1.as_bytes()).org, f.net.org_id(1));
    assert!(!f.accept(e2.as_bytes()).gap);
    assert_eq!(
        f.reject(e3.as_bytes()),
        RejectReason::BeyondCutoff {
            seq: 3,
            last_seq: 2
        }
    );
}

#[test]
fn historical_envelopes_of_a_removed_org_accepted_up_to_the_cutoff() {
    let mut f = fixture(7);
    let e1 = f.alert(2, 1, ZERO);
    let e2 = f.alert(2, 2, e1.id());
    let cutoff = f.cutoff(2, "all", 1);
    f.net.remove_org(2, vec![cutoff], &[0, 1]);
    assert!(f.net.current().member(&f.net.org_id(2)).is_none());

    f.accept(e1.as_bytes());
    assert_eq!(
        f.reject(e2.as_bytes()),
        RejectReason::BeyondCutoff {
            seq: 2,
            last_seq: 1
        }
    );
}

#[test]
fn tlp_at_the_topic_maximum_and_timestamp_at_the_skew_limit_accepted() {
    let mut f = fixture(8);
    let skew = f.net.current().limits.max_clock_skew_ms;
    let env = f.alert_edited(0, "amber", |d| {
        d.tlp = Tlp::Amber;
        d.timestamp_ms = NOW + skew;
    });
    f.accept(env.as_bytes());
}

// ---------------------------------------------------------------- reject reasons

#[test]
fn reject_too_large() {
    let mut f = fixture(10);
    let max = f.net.current().limits.max_envelope_bytes as usize;
    let bytes = vec![0u8; max + 1];
    assert_eq!(
        f.reject(&bytes),
        RejectReason::TooLarge { len: max + 1, max }
    );
}

#[test]
fn reject_malformed() {
    let mut f = fixture(11);
    assert!(matches!(f.reject(&[1, 2, 3]), RejectReason::Malformed(_)));
    // A valid envelope cut inside its header.
    let env = f.alert(0, 1, ZERO);
    assert!(matches!(
        f.reject(&env.as_bytes()[..100]),
        RejectReason::Malformed(_)
    ));
}

#[test]
fn reject_wrong_network() {
    let mut f = fixture(12);
    let env = f.alert_edited(0, "all", |d| d.network_id = NetworkId([7; 32]));
    assert_eq!(f.reject(env.as_bytes()), RejectReason::WrongNetwork);
}

#[test]
fn reject_unknown_topic() {
    let mut f = fixture(13);
    let draft = f
        .net
        .draft(f.net.topic("not-in-the-charter"), 1, ZERO, Kind::Alert);
    let env = f.alert_with(0, draft);
    assert_eq!(f.reject(env.as_bytes()), RejectReason::UnknownTopic);
}

#[test]
fn reject_unknown_charter_version() {
    let mut f = fixture(14);
    let env = f.alert_edited(0, "all", |d| d.charter_version = 0);
    assert_eq!(
        f.reject(env.as_bytes()),
        RejectReason::UnknownCharterVersion(0)
    );
}

#[test]
fn reject_cert_not_valid_before_its_start() {
    let mut f = fixture(15);
    let env = f.alert_edited(0, "all", |d| {
        d.timestamp_ms = NOW - 1; // certificates start at NOW
    });
    assert_eq!(f.reject(env.as_bytes()), RejectReason::CertNotValid);
}

#[test]
fn reject_cert_not_valid_after_its_end() {
    let mut f = fixture(16);
    let end = f.net.node(0).cert.cert().not_after_ms;
    let env = f.alert_edited(0, "all", |d| d.timestamp_ms = end + 1);
    // Checked at a time when the timestamp is not in the future.
    let verdict = f.check_at(env.as_bytes(), Source::Gossip, end + 1);
    assert_eq!(verdict, Verdict::Reject(RejectReason::CertNotValid));
}

#[test]
fn reject_cert_revoked() {
    let mut f = fixture(17);
    f.net.revoke(1, vec![], &[0, 2]);
    let env = f.alert(1, 1, ZERO);
    assert_eq!(f.reject(env.as_bytes()), RejectReason::CertRevoked);
    // Also when published under the old charter version.
    let old = f.alert_edited(1, "all", |d| d.charter_version = 1);
    assert_eq!(f.reject(old.as_bytes()), RejectReason::CertRevoked);
    // Other authors are unaffected.
    let other = f.alert(0, 1, ZERO);
    f.accept(other.as_bytes());
}

#[test]
fn reject_org_removed() {
    let mut f = fixture(18);
    // Signed while org-2 was a member, naming version 1.
    let env = f.alert(2, 1, ZERO);
    f.net.remove_org(2, vec![], &[0, 1]);
    assert_eq!(f.reject(env.as_bytes()), RejectReason::OrgRemoved);
}

#[test]
fn reject_beyond_cutoff_whatever_the_claimed_time_or_version() {
    let mut f = fixture(19);
    let cutoff = f.cutoff(0, "all", 1);
    f.net.revoke(0, vec![cutoff], &[1, 2]);
    for (version, timestamp) in [(1, NOW), (2, NOW), (1, NOW + 1)] {
        let mut draft = f
            .net
            .draft(f.net.topic("all"), 2, EnvelopeId([5; 32]), Kind::Alert);
        draft.charter_version = version;
        draft.timestamp_ms = timestamp;
        let env = f.alert_with(0, draft);
        assert_eq!(
            f.reject(env.as_bytes()),
            RejectReason::BeyondCutoff {
                seq: 2,
                last_seq: 1
            }
        );
    }
}

#[test]
fn reject_not_publisher() {
    let mut f = fixture(20);
    // org-3 reads `all` but may not publish there.
    let env = f.alert(3, 1, ZERO);
    assert_eq!(f.reject(env.as_bytes()), RejectReason::NotPublisher);
    // It may publish on `amber`.
    let draft = f.net.draft(f.net.topic("amber"), 1, ZERO, Kind::Alert);
    let ok = f.alert_with(3, draft);
    f.accept(ok.as_bytes());
}

#[test]
fn reject_not_publisher_for_kind_and_topic_mismatch() {
    let mut f = fixture(21);
    // Evidence belongs on the control topic only.
    let a = f.alert(0, 1, ZERO);
    let b = f.alert(0, 1, ZERO);
    let evidence = Evidence::new(&a, &b).unwrap().encode();
    let draft = f.net.draft(f.net.topic("all"), 1, ZERO, Kind::Evidence);
    let env = f.clear(1, &draft, &evidence);
    assert_eq!(f.reject(env.as_bytes()), RejectReason::NotPublisher);
    // Alerts do not belong on the control topic.
    let draft = f.net.draft(f.net.control(), 1, ZERO, Kind::Alert);
    let env = f.alert_with(1, draft);
    assert_eq!(f.reject(env.as_bytes()), RejectReason::NotPublisher);
}

#[test]
fn reject_tlp_too_high() {
    let mut f = fixture(22);
    let env = f.alert_edited(0, "amber", |d| d.tlp = Tlp::AmberStrict);
    assert_eq!(f.reject(env.as_bytes()), RejectReason::TlpTooHigh);
}

#[test]
fn reject_bad_signature() {
    let mut f = fixture(23);
    let env = f.alert(0, 1, ZERO);
    assert_eq!(f.reject(&bad_signature(&env)), RejectReason::BadSignature);
    // A flipped ciphertext byte breaks the signature too.
    let mut bytes = env.as_bytes().to_vec();
    let i = env.header_bytes().len() + 3;
    bytes[i] ^= 0x40;
    assert_eq!(f.reject(&bytes), RejectReason::BadSignature);
    // A valid signature by another member's node over the same bytes is still bad:
    // the header names the author.
    let forged = resign(&f.net.node(1).key, env.signed_bytes());
    assert_eq!(f.reject(&forged), RejectReason::BadSignature);
    // The untouched envelope is fine.
    f.accept(env.as_bytes());
}

#[test]
fn reject_bad_payload_key_package() {
    let mut f = fixture(24);
    let topic = f.net.topic("all");
    let readers = f.all_readers();
    let pkg = f.key_package(topic, &readers);

    // The header's epoch differs from the package's.
    let env = f.key_package_envelope(topic, 2, &pkg.encode());
    assert!(matches!(
        f.reject(env.as_bytes()),
        RejectReason::BadPayload(_)
    ));

    // The package is for another topic.
    let env = f.key_package_envelope(f.net.topic("amber"), 1, &pkg.encode());
    assert!(matches!(
        f.reject(env.as_bytes()),
        RejectReason::BadPayload(_)
    ));

    // The payload does not decode.
    let mut garbage = pkg.encode();
    garbage.push(0);
    let env = f.key_package_envelope(topic, 1, &garbage);
    assert!(matches!(
        f.reject(env.as_bytes()),
        RejectReason::BadPayload(_)
    ));
}

#[test]
fn reject_bad_payload_evidence() {
    let mut f = fixture(25);
    // Two properly chained envelopes prove nothing.
    let a = f.alert(0, 1, ZERO);
    let b = f.alert(0, 2, a.id());
    assert!(Evidence::new(&a, &b).is_err());
    let fake = Evidence {
        first: a.as_bytes().to_vec(),
        second: b.as_bytes().to_vec(),
    };
    let draft = f.net.draft(f.net.control(), 1, ZERO, Kind::Evidence);
    let env = f.clear(1, &draft, &fake.encode());
    assert!(matches!(
        f.reject(env.as_bytes()),
        RejectReason::BadPayload(_)
    ));

    // Real equivocation, but one envelope's signature is forged.
    let c = f.alert(0, 1, ZERO);
    let forged = Evidence::new(&a, &c).unwrap();
    let mut forged = forged;
    let last = forged.second.len() - 1;
    forged.second[last] ^= 1;
    let draft = f.net.draft(f.net.control(), 2, env.id(), Kind::Evidence);
    let env = f.clear(1, &draft, &forged.encode());
    assert!(matches!(
        f.reject(env.as_bytes()),
        RejectReason::BadPayload(_)
    ));
}

#[test]
fn reject_from_future() {
    let mut f = fixture(26);
    let skew = f.net.current().limits.max_clock_skew_ms;
    let env = f.alert_edited(0, "all", |d| d.timestamp_ms = NOW + skew + 1);
    assert_eq!(
        f.reject(env.as_bytes()),
        RejectReason::FromFuture {
            timestamp_ms: NOW + skew + 1,
            now_ms: NOW
        }
    );
    // A millisecond later it is acceptable.
    assert!(matches!(
        f.check_at(env.as_bytes(), Source::Gossip, NOW + 1),
        Verdict::Accept(_)
    ));
}

#[test]
fn reject_equivocation() {
    let mut f = fixture(27);
    let a = f.alert(0, 1, ZERO);
    let b = f.alert(0, 1, ZERO);
    f.accept(a.as_bytes());
    assert_eq!(
        f.reject(b.as_bytes()),
        RejectReason::Equivocation { existing: a.id() }
    );
    // The two form transferable evidence.
    let proven = Evidence::new(&a, &b).unwrap().verify(1 << 20).unwrap();
    assert_eq!(proven.misbehaviour, Misbehaviour::Equivocation);
}

#[test]
fn reject_chain_conflict_prev_mismatch() {
    let mut f = fixture(28);
    let a = f.alert(0, 1, ZERO);
    f.accept(a.as_bytes());
    let b = f.alert(0, 2, EnvelopeId([9; 32]));
    assert_eq!(
        f.reject(b.as_bytes()),
        RejectReason::ChainConflict { other: a.id() }
    );
    let proven = Evidence::new(&a, &b).unwrap().verify(1 << 20).unwrap();
    assert_eq!(proven.misbehaviour, Misbehaviour::ChainConflict);
}

#[test]
fn reject_chain_conflict_successor_mismatch() {
    let mut f = fixture(29);
    let a = f.alert(0, 1, ZERO);
    let c = f.alert(0, 2, a.id());
    f.accept(c.as_bytes()); // held with a gap; it names `a`
    let b = f.alert(0, 1, ZERO); // another seq 1
    assert_eq!(
        f.reject(b.as_bytes()),
        RejectReason::ChainConflict { other: c.id() }
    );
    // The real predecessor is still accepted.
    f.accept(a.as_bytes());
}

// ---------------------------------------------------------------- ignore reasons

#[test]
fn ignore_duplicate() {
    let mut f = fixture(30);
    let a = f.alert(0, 1, ZERO);
    f.accept(a.as_bytes());
    assert_eq!(f.ignore(a.as_bytes()), IgnoreReason::Duplicate);
}

#[test]
fn ignore_unknown_author() {
    let mut f = fixture(31);
    // A correctly certified node whose cert has not reached us.
    let stranger = f.stranger();
    let draft = f.net.draft(f.net.topic("all"), 1, ZERO, Kind::Alert);
    let env = seal_alert(&stranger.key, &draft, &f.key, &sample_alert(), &mut f.rng);
    assert_eq!(f.ignore(env.as_bytes()), IgnoreReason::UnknownAuthor);
    // Once the cert is known the same bytes are accepted.
    f.net
        .certs
        .insert(stranger.cert.clone(), f.net.network.genesis.charter())
        .unwrap();
    f.accept(env.as_bytes());
}

#[test]
fn ignore_charter_ahead() {
    let mut f = fixture(32);
    let env = f.alert_edited(0, "all", |d| d.charter_version = 2);
    assert_eq!(
        f.ignore(env.as_bytes()),
        IgnoreReason::CharterAhead {
            named: 2,
            current: 1
        }
    );
    // After adopting version 2 it is accepted.
    let next = f.net.successor();
    f.net.adopt(next, &[0, 1]);
    f.accept(env.as_bytes());
}

#[test]
fn ignore_rate_limited() {
    let mut f = fixture_with(&rate_limited_plan(2), 33);
    let e1 = f.alert(0, 1, ZERO);
    let e2 = f.alert(0, 2, e1.id());
    let e3 = f.alert(0, 3, e2.id());
    f.accept(e1.as_bytes());
    f.accept(e2.as_bytes());
    assert_eq!(f.ignore(e3.as_bytes()), IgnoreReason::RateLimited);
    // The limit is per org: org-1 still has its burst.
    let other = f.alert(1, 1, ZERO);
    f.accept(other.as_bytes());
    // A minute later org-0 has a token again.
    assert!(matches!(
        f.check_at(e3.as_bytes(), Source::Gossip, NOW + 60_000),
        Verdict::Accept(_)
    ));
}

// ---------------------------------------------------------------- rule order

#[test]
fn order_non_publisher_with_bad_signature_is_not_publisher() {
    let mut f = fixture(40);
    let env = f.alert(3, 1, ZERO);
    assert_eq!(f.reject(&bad_signature(&env)), RejectReason::NotPublisher);
}

#[test]
fn order_tlp_too_high_with_bad_signature_is_tlp_too_high() {
    let mut f = fixture(41);
    let env = f.alert_edited(0, "amber", |d| d.tlp = Tlp::Red);
    assert_eq!(f.reject(&bad_signature(&env)), RejectReason::TlpTooHigh);
}

#[test]
fn order_bad_signature_before_time_and_chain() {
    let mut f = fixture(42);
    // From the future and with a bad signature: the signature is checked first.
    let future = f.alert_edited(0, "all", |d| d.timestamp_ms = NOW + 10 * 60_000);
    assert_eq!(
        f.reject(&bad_signature(&future)),
        RejectReason::BadSignature
    );
    // A tampered copy of a held seq is a bad signature, not equivocation: nobody but
    // the author can produce equivocation.
    let a = f.alert(0, 1, ZERO);
    f.accept(a.as_bytes());
    assert_eq!(f.reject(&bad_signature(&a)), RejectReason::BadSignature);
}

#[test]
fn order_unknown_author_before_signature() {
    let mut f = fixture(43);
    let stranger = f.stranger();
    let draft = f.net.draft(f.net.topic("all"), 1, ZERO, Kind::Alert);
    let env = seal_alert(&stranger.key, &draft, &f.key, &sample_alert(), &mut f.rng);
    assert_eq!(f.ignore(&bad_signature(&env)), IgnoreReason::UnknownAuthor);
}

#[test]
fn order_network_before_everything_else() {
    let mut f = fixture(44);
    // Wrong network, unknown topic, charter ahead, non-publisher, bad signature.
    let mut draft = f.net.draft(TopicId([3; 32]), 1, ZERO, Kind::Alert);
    draft.network_id = NetworkId([7; 32]);
    draft.charter_version = 9;
    let env = f.alert_with(3, draft);
    assert_eq!(f.reject(&bad_signature(&env)), RejectReason::WrongNetwork);
}

#[test]
fn order_rejected_envelopes_do_not_use_rate_tokens() {
    let mut f = fixture_with(&rate_limited_plan(1), 45);
    let env = f.alert(0, 1, ZERO);
    for _ in 0..5 {
        assert_eq!(f.reject(&bad_signature(&env)), RejectReason::BadSignature);
    }
    f.accept(env.as_bytes());
}

// ---------------------------------------------------------------- damaged input

proptest! {
    #![proptest_config(ProptestConfig {
        rng_seed: RngSeed::Fixed(0x7a11_da7e),
        failure_persistence: None,
        ..ProptestConfig::with_cases(64)
    })]

    /// Whatever bytes arrive, the validator answers without panicking, and no changed
    /// copy of a valid envelope (alert, key package or evidence) is accepted.
    #[test]
    fn damaged_envelopes_never_accepted(
        which in 0..3usize,
        edits in vec((any::<Index>(), any::<u8>()), 1..4),
        cut in any::<Index>(),
        junk in vec(any::<u8>(), 0..300),
    ) {
        let mut f = fixture(60);
        let original = match which {
            0 => f.alert(0, 1, ZERO),
            1 => {
                let topic = f.net.topic("all");
                let readers = [f.net.node(1).agreement.public()];
                let pkg = f.key_package(topic, &readers);
                f.key_package_envelope(topic, 1, &pkg.encode())
            }
            _ => {
                let evidence = Evidence::new(&f.alert(0, 1, ZERO), &f.alert(0, 1, ZERO)).unwrap();
                let draft = f.net.draft(f.net.control(), 1, ZERO, Kind::Evidence);
                f.clear(1, &draft, &evidence.encode())
            }
        };
        let bytes = original.as_bytes();
        let mut mutated = bytes.to_vec();
        for (i, b) in &edits {
            let at = i.index(mutated.len());
            mutated[at] = *b;
        }
        let truncated = &bytes[..cut.index(bytes.len())];
        let mut extended = bytes.to_vec();
        extended.extend_from_slice(&junk);
        for damaged in [&mutated[..], truncated, &extended[..], &junk[..]] {
            let verdict = f.check(damaged);
            if damaged != bytes {
                prop_assert!(!matches!(verdict, Verdict::Accept(_)), "accepted a damaged copy: {}", describe(&verdict));
            }
        }
        // The original is still accepted.
        prop_assert!(matches!(f.check(bytes), Verdict::Accept(_)));
    }
}

// ---------------------------------------------------------------- certificate binding

/// A certificate needs the node's own signature (proof of possession), so a member org
/// cannot certify another org's node key and take over the attribution of its envelopes.
#[test]
fn foreign_org_certificate_does_not_hijack_a_node_key() {
    let mut f = fixture(50);
    let victim = f.net.node(0).cert.cert().clone();
    let body = NodeCert {
        org_id: f.net.org_id(3),
        not_after_ms: victim.not_after_ms + 1,
        serial: 77,
        ..victim
    };
    // Org-3 cannot get a request for org-0's key signed: its own node's signature is not
    // a proof of possession of that key, and the org root refuses to issue.
    let forged_request = body.clone().request(&f.net.node(3).key);
    assert!(matches!(
        forged_request.verify_pop(),
        Err(CertError::ProofOfPossession(_))
    ));
    assert!(matches!(
        SignedNodeCert::issue(&f.net.org(3).root, forged_request.clone()),
        Err(CertError::ProofOfPossession(_))
    ));
    // Signing the forged request by hand gives bytes that decode but do not verify, so
    // no directory takes them.
    let mut bytes = forged_request.as_bytes().to_vec();
    let org_sig = f.net.org(3).root.sign(tags::NODE_CERT, &bytes);
    bytes.extend_from_slice(&org_sig);
    let hijack = SignedNodeCert::decode(&bytes).unwrap();
    let genesis = f.net.network.genesis.charter().clone();
    assert!(matches!(
        f.net.certs.insert(hijack, &genesis),
        Err(CertError::ProofOfPossession(_))
    ));
    assert_eq!(f.net.certs.all().count(), 4);
    let env = f.alert(0, 1, ZERO);
    assert_eq!(f.accept(env.as_bytes()).org, f.net.org_id(0));
}

/// A node key whose holder co-signed certificates for two orgs cannot be attributed: its
/// envelopes are rejected, whatever the order in which the certificates arrived and
/// whichever ends last.
#[test]
fn node_key_certified_by_two_orgs_is_ambiguous() {
    let mut f = fixture(52);
    let own = f.net.node(0).cert.clone();
    let second = |f: &Fixture, not_after_ms: u64, serial: u64| {
        let body = NodeCert {
            org_id: f.net.org_id(1),
            not_after_ms,
            serial,
            ..own.cert().clone()
        };
        SignedNodeCert::issue(&f.net.org(1).root, body.request(&f.net.node(0).key)).unwrap()
    };
    let earlier = second(&f, own.cert().not_after_ms - 1, 5);
    let later = second(&f, own.cert().not_after_ms + 1, 6);
    let genesis = f.net.network.genesis.charter().clone();
    let author = f.net.node(0).key.public();
    let env = f.alert(0, 1, ZERO);
    let other = f.alert(2, 1, ZERO);
    for (first, then) in [
        (&own, &earlier),
        (&earlier, &own),
        (&own, &later),
        (&later, &own),
    ] {
        let mut certs = CertDirectory::default();
        for (_, n) in f.net.network.nodes().skip(1) {
            certs.insert(n.cert.clone(), &genesis).unwrap();
        }
        assert!(certs.insert(first.clone(), &genesis).unwrap());
        assert!(certs.insert(then.clone(), &genesis).unwrap());
        assert_eq!(certs.org_of(&author), None);
        f.net.certs = certs;
        let reason = f.reject(env.as_bytes());
        assert_eq!(reason, RejectReason::AmbiguousAuthor);
        assert_eq!(reason.label(), "ambiguous_author");
        // Decided before the signature is checked, like the other author rules.
        assert_eq!(
            f.reject(&bad_signature(&env)),
            RejectReason::AmbiguousAuthor
        );
        // Other authors are unaffected.
        assert!(matches!(f.check(other.as_bytes()), Verdict::Accept(_)));
    }
}

// ---------------------------------------------------------------- authorization across charter versions

/// Publishing rights are checked under the named charter version and the current one.
/// An org dropped from a topic's publishers (but still a member, and with no cut-off)
/// cannot publish new envelopes by naming version 1.
#[test]
fn demoted_publisher_cannot_publish_by_naming_an_old_charter() {
    let mut f = fixture(51);
    let mut v2 = f.net.successor();
    v2.topics[0].publishers.retain(|o| o.as_str() != "org-1");
    f.net.adopt(v2, &[0, 2]);
    let env = f.alert_edited(1, "all", |d| {
        d.charter_version = 1;
        d.timestamp_ms = NOW + 1; // published after the change
    });
    assert_eq!(f.reject(env.as_bytes()), RejectReason::NotPublisher);
    // Naming the current version does not help either; org-1 may still publish on `amber`.
    let env = f.alert(1, 1, ZERO);
    assert_eq!(f.reject(env.as_bytes()), RejectReason::NotPublisher);
    let ok = f.alert_edited(1, "amber", |d| d.charter_version = 1);
    f.accept(ok.as_bytes());
}

/// With a cut-off recorded for the demoted author, its earlier envelopes stay valid (they
/// are checked against the version they name only) and nothing later is admitted.
#[test]
fn demoted_publisher_history_admitted_by_its_cutoff() {
    // Version 2 drops org-1 from the publishers of `all`, with a cut-off at seq 2.
    let demote = |f: &mut Fixture| {
        let mut v2 = f.net.successor();
        v2.topics[0].publishers.retain(|o| o.as_str() != "org-1");
        v2.cutoffs.push(f.cutoff(1, "all", 2));
        f.net.adopt(v2, &[0, 2]);
    };
    let mut f = fixture(53);
    let e1 = f.alert(1, 1, ZERO);
    let e2 = f.alert(1, 2, e1.id());
    let e3 = f.alert(1, 3, e2.id());
    demote(&mut f);

    assert_eq!(f.accept(e1.as_bytes()).org, f.net.org_id(1));
    assert!(!f.accept(e2.as_bytes()).gap);
    assert_eq!(
        f.reject(e3.as_bytes()),
        RejectReason::BeyondCutoff {
            seq: 3,
            last_seq: 2
        }
    );
    // An envelope admitted by the cut-off is checked against the version it names: under
    // version 2 org-1 is no publisher.
    let mut f = fixture(53);
    demote(&mut f);
    let env = f.alert(1, 1, ZERO);
    assert_eq!(f.net.current().version, 2);
    assert_eq!(f.reject(env.as_bytes()), RejectReason::NotPublisher);
}

/// A lowered `max_tlp` applies to envelopes that name the older version, unless a cut-off
/// admits them.
#[test]
fn lowered_max_tlp_applies_to_envelopes_naming_an_old_charter() {
    let mut f = fixture(54);
    let mut v2 = f.net.successor();
    v2.topics[0].max_tlp = Tlp::Amber;
    v2.cutoffs.push(f.cutoff(2, "all", 1));
    f.net.adopt(v2, &[0, 1]);
    let old = |f: &Fixture, tlp: Tlp, seq: u64, prev: EnvelopeId| {
        let mut draft = f.net.draft(f.net.topic("all"), seq, prev, Kind::Alert);
        draft.charter_version = 1;
        draft.tlp = tlp;
        draft
    };
    let d = old(&f, Tlp::Red, 1, ZERO);
    let red = f.alert_with(0, d);
    assert_eq!(f.reject(red.as_bytes()), RejectReason::TlpTooHigh);
    let d = old(&f, Tlp::Amber, 1, ZERO);
    let amber = f.alert_with(0, d);
    f.accept(amber.as_bytes());
    // Org-2's node has a cut-off at seq 1: its TLP:RED seq 1 is history, seq 2 is not.
    let d = old(&f, Tlp::Red, 1, ZERO);
    let historical = f.alert_with(2, d);
    f.accept(historical.as_bytes());
    let d = old(&f, Tlp::Amber, 2, historical.id());
    let later = f.alert_with(2, d);
    assert_eq!(
        f.reject(later.as_bytes()),
        RejectReason::BeyondCutoff {
            seq: 2,
            last_seq: 1
        }
    );
}

/// An org added to a topic's publishers in version 2 may not publish there naming
/// version 1.
#[test]
fn promoted_publisher_needs_rights_under_the_named_version_too() {
    let mut f = fixture(55);
    let mut v2 = f.net.successor();
    v2.topics[0].publishers.push(f.net.org_id(3));
    f.net.adopt(v2, &[0, 1]);
    let env = f.alert_edited(3, "all", |d| d.charter_version = 1);
    assert_eq!(f.reject(env.as_bytes()), RejectReason::NotPublisher);
    let env = f.alert(3, 1, ZERO);
    f.accept(env.as_bytes());
}

/// After an org's root key is replaced, certificates under the old root count only for
/// envelopes admitted by a cut-off; the org re-certifies its node keys under the new root.
#[test]
fn replaced_org_root_needs_certificates_under_both_roots() {
    let mut f = fixture(56);
    let new_root = OrgRootKey::generate(&mut f.rng);
    let mut v2 = f.net.successor();
    v2.members[1].root_pub = new_root.public();
    f.net.adopt(v2, &[0, 2]);
    let named_old = f.alert_edited(1, "all", |d| d.charter_version = 1);
    assert_eq!(f.reject(named_old.as_bytes()), RejectReason::CertNotValid);
    let current = f.alert(1, 1, ZERO);
    assert_eq!(f.reject(current.as_bytes()), RejectReason::CertNotValid);

    // The node key is re-certified under the new root, for the same period.
    let node = f.net.node(1);
    let author = node.key.public();
    let renewed = SignedNodeCert::issue(
        &new_root,
        NodeCert {
            serial: 2,
            ..node.cert.cert().clone()
        }
        .request(&node.key),
    )
    .unwrap();
    let v2 = f.net.current().clone();
    assert!(f.net.certs.insert(renewed, &v2).unwrap());
    assert_eq!(f.net.certs.org_of(&author), Some(&f.net.org_id(1)));
    f.accept(named_old.as_bytes());
    let env = f.alert_edited(1, "amber", |d| d.charter_version = 2);
    f.accept(env.as_bytes());
}
