//! Charter chain rules (DESIGN.md §4): genesis, threshold signatures of the previous
//! version's governors, well-formedness, and the governance fork rule.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use alertmesh_protocol::bootstrap::{NetworkPlan, simple_plan};
use alertmesh_protocol::charter::{CharterError, GovernorSignature};
use alertmesh_protocol::codec;
use alertmesh_protocol::keys::SignatureError;
use alertmesh_protocol::{
    Charter, CharterChain, CharterHash, CharterUpdate, NetworkId, OrgId, SignedCharter, Tlp,
    TopicRule,
};
use common::{NOW, TestNet};

/// Five orgs; org-0..org-3 govern with threshold 3; org-4 is a plain member.
fn plan() -> NetworkPlan {
    let mut plan = simple_plan(5, NOW);
    plan.orgs[4].governor = false;
    plan.threshold = 3;
    plan
}

fn net() -> TestNet {
    TestNet::new(&plan(), 100)
}

fn genesis_body(t: &TestNet) -> Charter {
    t.network.genesis.charter().clone()
}

fn malformed(result: Result<impl std::fmt::Debug, CharterError>, needle: &str) {
    match result {
        Err(CharterError::Malformed(msg)) => {
            assert!(msg.contains(needle), "{msg:?} should mention {needle:?}")
        }
        other => panic!("expected Malformed({needle:?}), got {other:?}"),
    }
}

// ---------------------------------------------------------------- genesis

#[test]
fn genesis_accepted_with_k_signatures_rejected_with_k_minus_1() {
    let t = net();
    let body = genesis_body(&t);
    let k = body.threshold as usize;
    assert_eq!(k, 3);

    let with_k = t.sign_by(body.clone(), &[0, 1, 2]);
    assert_eq!(CharterChain::verify_genesis(&with_k), Ok(()));
    let chain = CharterChain::from_genesis(with_k.clone(), &with_k.hash()).unwrap();
    assert_eq!(chain.current().hash(), with_k.hash());
    assert_eq!(chain.history().len(), 1);

    // Any k of the governors will do.
    let other_k = t.sign_by(body.clone(), &[1, 2, 3]);
    assert!(CharterChain::from_genesis(other_k, &with_k.hash()).is_ok());

    let with_k_minus_1 = t.sign_by(body, &[0, 3]);
    assert_eq!(
        CharterChain::from_genesis(with_k_minus_1, &with_k.hash()).err(),
        Some(CharterError::TooFewSignatures {
            valid: 2,
            needed: 3
        })
    );
}

#[test]
fn genesis_signature_by_non_governor_refused() {
    let t = net();
    // org-4 is a member but not a governor; k governors signed too.
    let signed = t.sign_by(genesis_body(&t), &[0, 1, 2, 4]);
    assert_eq!(
        CharterChain::verify_genesis(&signed),
        Err(CharterError::NotGovernor(t.org_id(4)))
    );
    // A signature by an org that is not even a member.
    let mut outsider = t.sign_by(genesis_body(&t), &[0, 1, 2]);
    outsider.sign(&common::org("outsider"), &t.org(4).root);
    assert_eq!(
        CharterChain::verify_genesis(&outsider),
        Err(CharterError::NotGovernor(common::org("outsider")))
    );
}

#[test]
fn duplicate_signature_refused() {
    let t = net();
    let signed = t.sign_by(genesis_body(&t), &[0, 1]);
    // `sign` replaces a governor's signature, so build the duplicate on the wire.
    let mut sigs = signed.signatures().to_vec();
    sigs.push(sigs[0].clone());
    let mut bytes = signed.body_bytes().to_vec();
    bytes.extend_from_slice(&codec::encode::<Vec<GovernorSignature>>(&sigs));
    let dup = SignedCharter::decode(&bytes).unwrap();
    assert_eq!(dup.signatures().len(), 3);
    assert_eq!(
        CharterChain::verify_genesis(&dup),
        Err(CharterError::DuplicateSignature(t.org_id(0)))
    );
}

#[test]
fn bad_signature_refused() {
    let t = net();
    let mut signed = t.sign_by(genesis_body(&t), &[0, 1]);
    // org-2's entry signed with org-3's key.
    signed.sign(&t.org_id(2), &t.org(3).root);
    assert_eq!(
        CharterChain::verify_genesis(&signed),
        Err(CharterError::BadSignature(
            t.org_id(2),
            SignatureError::Invalid
        ))
    );
    // A flipped bit in a correct signature.
    let good = t.sign_by(genesis_body(&t), &[0, 1, 2]);
    let mut bytes = good.as_bytes().to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x02;
    let flipped = SignedCharter::decode(&bytes).unwrap();
    assert!(matches!(
        CharterChain::verify_genesis(&flipped),
        Err(CharterError::BadSignature(_, SignatureError::Invalid))
    ));
}

#[test]
fn pinned_genesis_mismatch() {
    let mut t = net();
    let genesis = t.network.genesis.clone();
    let pinned = CharterHash([1; 32]);
    assert_eq!(
        CharterChain::from_genesis(genesis.clone(), &pinned).err(),
        Some(CharterError::GenesisMismatch {
            pinned,
            found: genesis.hash()
        })
    );
    // Another, validly signed, genesis offered later is refused too.
    let mut other = genesis_body(&t);
    other.network_name = "impostor".into();
    let other = t.sign_by(other, &[0, 1, 2]);
    assert_eq!(CharterChain::verify_genesis(&other), Ok(()));
    assert_eq!(
        t.charters.offer(other.clone()),
        Err(CharterError::GenesisMismatch {
            pinned: genesis.hash(),
            found: other.hash()
        })
    );
    assert_eq!(t.charters.offer(genesis), Ok(CharterUpdate::AlreadyKnown));
}

#[test]
fn genesis_must_be_version_1() {
    let t = net();
    let mut body = genesis_body(&t);
    body.version = 2;
    let signed = t.sign_by(body, &[0, 1, 2]);
    assert_eq!(
        CharterChain::verify_genesis(&signed),
        Err(CharterError::VersionNotIncreasing {
            offered: 2,
            current: 0
        })
    );
}

// ---------------------------------------------------------------- successors

#[test]
fn successor_adopted_with_k_signatures_of_the_previous_governors() {
    let mut t = net();
    let next = t.successor();
    let too_few = t.sign_by(next.clone(), &[0, 1]);
    assert_eq!(
        t.charters.offer(too_few),
        Err(CharterError::TooFewSignatures {
            valid: 2,
            needed: 3
        })
    );
    assert_eq!(t.charters.current().charter().version, 1);
    let signed = t.sign_by(next, &[1, 2, 3]);
    assert_eq!(
        t.charters.offer(signed.clone()),
        Ok(CharterUpdate::Adopted(2))
    );
    assert_eq!(t.charters.current().hash(), signed.hash());
    assert_eq!(t.charters.offer(signed), Ok(CharterUpdate::AlreadyKnown));
}

#[test]
fn successor_with_wrong_prev_hash_refused() {
    let mut t = net();
    let mut next = t.successor();
    next.prev_hash = CharterHash([0xab; 32]);
    let signed = t.sign_by(next, &[0, 1, 2]);
    assert_eq!(
        t.charters.offer(signed),
        Err(CharterError::WrongPrevHash(1))
    );
    assert_eq!(t.charters.current().charter().version, 1);
}

#[test]
fn version_not_increasing_and_missing_predecessor() {
    let mut t = net();
    let mut zero = t.successor();
    zero.version = 0;
    let zero = t.sign_by(zero, &[0, 1, 2]);
    assert_eq!(
        t.charters.offer(zero),
        Err(CharterError::VersionNotIncreasing {
            offered: 0,
            current: 1
        })
    );

    // Version 3 while we hold only version 1.
    let mut v3 = t.successor();
    v3.version = 3;
    let v3 = t.sign_by(v3, &[0, 1, 2]);
    assert_eq!(
        t.charters.offer(v3),
        Err(CharterError::MissingPredecessor {
            offered: 3,
            current: 1
        })
    );
    assert_eq!(t.charters.current().charter().version, 1);
}

#[test]
fn successor_for_another_network_refused() {
    let mut t = net();
    let mut next = t.successor();
    next.network_id = NetworkId([0x42; 32]);
    let signed = t.sign_by(next, &[0, 1, 2]);
    assert_eq!(t.charters.offer(signed), Err(CharterError::WrongNetwork));
}

#[test]
fn successor_signed_by_new_governors_alone_refused() {
    let mut t = TestNet::new(
        &{
            // org-0, org-1 govern (threshold 2); org-2, org-3 are plain members.
            let mut p = simple_plan(4, NOW);
            p.orgs[2].governor = false;
            p.orgs[3].governor = false;
            p.threshold = 2;
            p
        },
        101,
    );
    let mut v2 = t.successor();
    v2.governors = vec![t.org_id(2), t.org_id(3)];

    // The incoming governors cannot authorize their own appointment.
    let by_new = t.sign_by(v2.clone(), &[2, 3]);
    assert_eq!(
        t.charters.offer(by_new),
        Err(CharterError::NotGovernor(t.org_id(2)))
    );
    let mixed = t.sign_by(v2.clone(), &[0, 2]);
    assert_eq!(
        t.charters.offer(mixed),
        Err(CharterError::NotGovernor(t.org_id(2)))
    );
    assert_eq!(t.charters.current().charter().version, 1);

    // The outgoing governors can.
    t.adopt(v2, &[0, 1]);

    // From then on only the new governors sign.
    let v3 = t.successor();
    let by_old = t.sign_by(v3.clone(), &[0, 1]);
    assert_eq!(
        t.charters.offer(by_old),
        Err(CharterError::NotGovernor(t.org_id(0)))
    );
    t.adopt(v3, &[2, 3]);
    assert_eq!(t.charters.current().charter().version, 3);
}

#[test]
fn successor_threshold_is_the_previous_versions() {
    let mut t = net();
    // v2 lowers the threshold to 1; v2 itself still needs 3 signatures.
    let mut v2 = t.successor();
    v2.threshold = 1;
    let two = t.sign_by(v2.clone(), &[0, 1]);
    assert_eq!(
        t.charters.offer(two),
        Err(CharterError::TooFewSignatures {
            valid: 2,
            needed: 3
        })
    );
    t.adopt(v2, &[0, 1, 2]);
    // v3 needs only one.
    let v3 = t.successor();
    t.adopt(v3, &[3]);
}

// ---------------------------------------------------------------- malformed charters

fn check_malformed(edit: impl Fn(&mut Charter, &TestNet), needle: &str) {
    let mut t = net();
    // As a genesis.
    let mut body = genesis_body(&t);
    edit(&mut body, &t);
    malformed(
        CharterChain::verify_genesis(&t.sign_by(body, &[0, 1, 2, 3])),
        needle,
    );
    // As a successor.
    let mut next = t.successor();
    edit(&mut next, &t);
    let signed = t.sign_by(next, &[0, 1, 2, 3]);
    malformed(t.charters.offer(signed), needle);
    assert_eq!(t.charters.current().charter().version, 1);
}

#[test]
fn malformed_threshold_zero() {
    check_malformed(|c, _| c.threshold = 0, "threshold");
}

#[test]
fn malformed_threshold_above_governors() {
    check_malformed(
        |c, _| c.threshold = c.governors.len() as u32 + 1,
        "threshold",
    );
}

#[test]
fn malformed_unknown_reader_org() {
    check_malformed(
        |c, _| c.topics[0].readers.push(common::org("stranger")),
        "not a member",
    );
}

#[test]
fn malformed_duplicate_org_ids() {
    check_malformed(
        |c, t| {
            let mut twin = c.members[1].clone();
            twin.org_id = t.org_id(0);
            c.members.push(twin);
        },
        "listed twice",
    );
}

#[test]
fn malformed_topic_name_starting_with_underscore() {
    check_malformed(
        |c, t| {
            c.topics.push(TopicRule {
                name: "_secret".into(),
                readers: vec![t.org_id(0)],
                publishers: vec![t.org_id(0)],
                max_tlp: Tlp::Green,
            });
        },
        "must be 1-128 bytes and not start with '_'",
    );
}

#[test]
fn malformed_invalid_org_id_and_unknown_governor() {
    check_malformed(
        |c, _| c.members[4].org_id = OrgId("Not Valid".into()),
        "invalid org id",
    );
    check_malformed(
        |c, _| c.governors.push(common::org("stranger")),
        "not a member",
    );
}

// ---------------------------------------------------------------- forks

struct Forks {
    t: TestNet,
    a: SignedCharter,
    b: SignedCharter,
    /// A v3 that follows `a`.
    a3: SignedCharter,
}

fn forks() -> Forks {
    let t = net();
    let mut a = t.successor();
    a.network_name = "fork a".into();
    let mut b = t.successor();
    b.network_name = "fork b".into();
    let a = t.sign_by(a, &[0, 1, 2]);
    let b = t.sign_by(b, &[1, 2, 3]);
    assert_ne!(a.hash(), b.hash());
    let mut a3 = a.charter().clone();
    a3.version = 3;
    a3.prev_hash = a.hash();
    let a3 = t.sign_by(a3, &[0, 1, 2]);
    Forks { t, a, b, a3 }
}

/// Everything a node's charter state consists of: history hashes and forks.
fn state(chain: &CharterChain) -> (Vec<CharterHash>, Vec<(u64, CharterHash, CharterHash)>) {
    (
        chain.history().iter().map(SignedCharter::hash).collect(),
        chain
            .forks()
            .iter()
            .map(|f| (f.version, f.first.hash(), f.second.hash()))
            .collect(),
    )
}

fn run(chain: &mut CharterChain, first: &SignedCharter, second: &SignedCharter) -> CharterUpdate {
    assert_eq!(chain.offer(first.clone()), Ok(CharterUpdate::Adopted(2)));
    chain.offer(second.clone()).unwrap()
}

#[test]
fn fork_detected_rolled_back_and_halted() {
    let Forks { t, a, b, a3 } = forks();
    let genesis_hash = t.charters.current().hash();
    let mut chain = t.charters.clone();
    let update = run(&mut chain, &a, &b);
    let CharterUpdate::Fork(fork) = update else {
        panic!("expected a fork, got {update:?}");
    };
    assert_eq!(fork.version, 2);
    let mut pair = [fork.first.hash(), fork.second.hash()];
    pair.sort();
    let mut expected = [a.hash(), b.hash()];
    expected.sort();
    assert_eq!(pair, expected, "both charters are kept as evidence");
    assert!(fork.first.hash() < fork.second.hash());

    // The current charter falls back to v1.
    assert_eq!(chain.current().hash(), genesis_hash);
    assert_eq!(chain.history().len(), 1);
    assert_eq!(chain.forks().len(), 1);

    // Nothing at or after the fork is adopted again.
    assert_eq!(chain.offer(a3), Err(CharterError::Halted(2)));
    assert_eq!(chain.offer(a.clone()), Ok(CharterUpdate::AlreadyKnown));
    assert_eq!(chain.offer(b.clone()), Ok(CharterUpdate::AlreadyKnown));
    let mut b3 = b.charter().clone();
    b3.version = 3;
    b3.prev_hash = b.hash();
    assert_eq!(
        chain.offer(t.sign_by(b3, &[0, 1, 2])),
        Err(CharterError::Halted(2))
    );
    assert_eq!(chain.current().hash(), genesis_hash);
}

#[test]
fn fork_end_state_independent_of_order() {
    let Forks { t, a, b, a3 } = forks();
    let mut ab = t.charters.clone();
    let mut ba = t.charters.clone();
    let fork_ab = run(&mut ab, &a, &b);
    let fork_ba = run(&mut ba, &b, &a);
    assert_eq!(fork_ab, fork_ba, "the same fork evidence either way");
    assert!(matches!(fork_ab, CharterUpdate::Fork(_)));
    assert_eq!(state(&ab), state(&ba));

    // A node that had already moved on to v3 (built on `a`) ends in the same state.
    let mut late = t.charters.clone();
    assert_eq!(late.offer(a.clone()), Ok(CharterUpdate::Adopted(2)));
    assert_eq!(late.offer(a3.clone()), Ok(CharterUpdate::Adopted(3)));
    assert!(matches!(late.offer(b.clone()), Ok(CharterUpdate::Fork(_))));
    assert_eq!(state(&late), state(&ab));

    for chain in [&mut ab, &mut ba, &mut late] {
        assert_eq!(chain.offer(a3.clone()), Err(CharterError::Halted(2)));
        assert_eq!(chain.current().charter().version, 1);
    }
}

#[test]
fn invalid_rival_does_not_fork() {
    let Forks { t, a, .. } = forks();
    let mut chain = t.charters.clone();
    assert_eq!(chain.offer(a.clone()), Ok(CharterUpdate::Adopted(2)));
    // A rival v2 with too few signatures cannot halt governance.
    let mut rival = t.successor();
    rival.network_name = "rival".into();
    let rival = t.sign_by(rival, &[3]);
    assert!(matches!(
        chain.offer(rival),
        Err(CharterError::TooFewSignatures { .. })
    ));
    // Nor can one signed by a non-governor.
    let mut rival = t.successor();
    rival.network_name = "rival 2".into();
    let rival = t.sign_by(rival, &[0, 1, 2, 4]);
    assert_eq!(
        chain.offer(rival),
        Err(CharterError::NotGovernor(t.org_id(4)))
    );
    assert!(chain.forks().is_empty());
    assert_eq!(chain.current().hash(), a.hash());
}
