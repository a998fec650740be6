//! A small fixed network shared by the fuzz targets and the seed generator (`seedgen/`).
//!
//! Everything is derived from a seeded ChaCha20 RNG, so the fuzz targets and the
//! committed seeds under `seeds/` agree on every key: a seed envelope verifies and
//! validates against the network the `envelope` target builds.
#![allow(dead_code)]

use alertmesh_protocol::alert::Tlp;
use alertmesh_protocol::bootstrap::{Network, simple_plan};
use alertmesh_protocol::envelope::{Draft, Kind, SignedEnvelope};
use alertmesh_protocol::ids::{AgreementPublicKey, EnvelopeId, NetworkId, TopicId};
use alertmesh_protocol::{
    CertDirectory, CharterChain, KeyPackage, MemoryChains, NodePublicKey, OrgPublicKey, SenderKey,
};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use std::sync::OnceLock;

/// The network's creation time; certificates are valid for a year from it.
pub const NOW_MS: u64 = 1_700_000_000_000;
/// The validator's clock in the `envelope` target (one hour after creation).
pub const VALIDATE_AT_MS: u64 = NOW_MS + 3_600_000;
/// Envelope size limit used when decoding outside the validator.
pub const MAX_ENVELOPE: usize = 256 * 1024;

/// The fixed network and derived state.
pub struct Fixture {
    /// Keys, certificates and the genesis charter.
    pub network: Network,
    /// The network id.
    pub network_id: NetworkId,
    /// The `all` topic.
    pub topic: TopicId,
    /// Org 0's node's sender key for `topic`, epoch 1.
    pub sender_key: SenderKey,
    /// The adopted charters (genesis only).
    pub charters: CharterChain,
    /// Every node's certificate, verified.
    pub certs: CertDirectory,
    /// Chains holding org 0's first two alerts (so duplicates and equivocations are
    /// reachable from mutated seeds).
    pub chains: MemoryChains,
    /// Org 0's first alerts on `topic` (seq 1, 2, 3), the first two held in `chains`.
    pub alerts: Vec<SignedEnvelope>,
}

impl Fixture {
    /// Org 0's root key (the key the `cert` target verifies against).
    pub fn org0_root(&self) -> OrgPublicKey {
        self.network.orgs[0].member.root_pub
    }

    /// Org 0's node key (author of the seed envelopes and key packages).
    pub fn author(&self) -> NodePublicKey {
        self.network.orgs[0].nodes[0].key.public()
    }

    /// Every node's agreement key.
    pub fn readers(&self) -> Vec<AgreementPublicKey> {
        self.network.nodes().map(|(_, n)| n.agreement.public()).collect()
    }

    /// A draft by org 0's node on `topic`.
    pub fn draft(&self, seq: u64, prev: EnvelopeId, kind: Kind) -> Draft {
        Draft {
            network_id: self.network_id,
            topic_id: self.topic,
            seq,
            prev,
            charter_version: 1,
            timestamp_ms: NOW_MS + seq,
            kind,
            key_epoch: 1,
            tlp: Tlp::Amber,
        }
    }

    /// A key package for `sender_key`, sealed to every node.
    pub fn key_package(&self, rng: &mut ChaCha20Rng) -> KeyPackage {
        let (pkg, refused) =
            KeyPackage::seal(&self.network_id, &self.topic, &self.author(), &self.sender_key, &self.readers(), rng);
        assert!(refused.is_empty());
        pkg
    }
}

/// A short alert used in the seeds.
pub fn sample_alert() -> alertmesh_protocol::Alert {
    let mut alert = alertmesh_protocol::Alert::example(NOW_MS);
    alert.references = vec!["case-1234".into()];
    alert.valid_until_ms = Some(NOW_MS + 86_400_000);
    alert.related = vec![EnvelopeId([7; 32])];
    alert
}

fn build() -> Fixture {
    let mut rng = ChaCha20Rng::seed_from_u64(0xa1e7);
    let network = simple_plan(4, NOW_MS).build(&mut rng);
    let network_id = network.genesis.charter().network_id;
    let topic = TopicId::derive(&network_id, "all");
    let sender_key = SenderKey::generate(1, &mut rng);
    let charters = CharterChain::from_genesis(network.genesis.clone(), &network.genesis_hash())
        .expect("fixture genesis verifies");
    let mut certs = CertDirectory::default();
    for (_, node) in network.nodes() {
        certs
            .insert(node.cert.clone(), charters.current().charter())
            .expect("fixture cert verifies");
    }
    let mut fixture = Fixture {
        network,
        network_id,
        topic,
        sender_key,
        charters,
        certs,
        chains: MemoryChains::default(),
        alerts: Vec::new(),
    };
    let plaintext = alertmesh_protocol::Content::Alert(sample_alert()).encode();
    let mut prev = EnvelopeId::default();
    for seq in 1..=3 {
        let env = SignedEnvelope::seal_encrypted(
            &fixture.network.orgs[0].nodes[0].key,
            &fixture.draft(seq, prev, Kind::Alert),
            &fixture.sender_key,
            &plaintext,
            &mut rng,
        )
        .expect("fixture alert seals");
        prev = env.id();
        fixture.alerts.push(env);
    }
    for env in &fixture.alerts[..2] {
        fixture.chains.insert(env.clone());
    }
    fixture
}

/// The fixture, built once per process.
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(build)
}
