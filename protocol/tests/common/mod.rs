//! Helpers shared by the protocol integration tests: deterministic networks built with
//! `bootstrap`, charter successors, drafts and sealed alerts.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use alertmesh_protocol::bootstrap::{Network, NetworkPlan, NodeMaterial, OrgMaterial};
use alertmesh_protocol::charter::Cutoff;
use alertmesh_protocol::envelope::Draft;
use alertmesh_protocol::{
    Alert, CertDirectory, Charter, CharterChain, CharterUpdate, Context, EnvelopeId, Kind,
    MemoryChains, NetworkId, OrgId, SignedCharter, SignedEnvelope, Tlp, TopicId,
};
use alertmesh_protocol::{NodeKey, SenderKey};
use rand_chacha08::ChaCha20Rng;
use rand_chacha08::rand_core::SeedableRng;

/// The creation time of every test network (2020-09-13), also the start of cert validity.
pub const NOW: u64 = 1_600_000_000_000;

/// A deterministic RNG.
pub fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// An org id that must be valid.
pub fn org(s: &str) -> OrgId {
    OrgId::new(s).unwrap()
}

/// A small valid alert (the example alert with its domain and IPv4 address only).
pub fn sample_alert() -> Alert {
    let mut alert = Alert::example(NOW);
    alert.observables.truncate(2);
    alert
}

/// A built network with its charter chain (from the pinned genesis) and every node's
/// certificate in a directory.
pub struct TestNet {
    /// Keys, certificates, genesis.
    pub network: Network,
    /// The charter chain, starting at the pinned genesis.
    pub charters: CharterChain,
    /// Every node's certificate.
    pub certs: CertDirectory,
}

impl TestNet {
    /// Builds `plan` with a deterministic RNG.
    pub fn new(plan: &NetworkPlan, seed: u64) -> Self {
        let network = plan.build(&mut rng(seed));
        let charters =
            CharterChain::from_genesis(network.genesis.clone(), &network.genesis_hash()).unwrap();
        let mut certs = CertDirectory::default();
        for (_, node) in network.nodes() {
            assert!(
                certs
                    .insert(node.cert.clone(), network.genesis.charter())
                    .unwrap()
            );
        }
        Self {
            network,
            charters,
            certs,
        }
    }

    /// The network id.
    pub fn network_id(&self) -> NetworkId {
        self.network.genesis.charter().network_id
    }

    /// Org `i` of the plan.
    pub fn org(&self, i: usize) -> &OrgMaterial {
        &self.network.orgs[i]
    }

    /// The org id of org `i`.
    pub fn org_id(&self, i: usize) -> OrgId {
        self.org(i).member.org_id.clone()
    }

    /// The first node of org `i`.
    pub fn node(&self, i: usize) -> &NodeMaterial {
        &self.org(i).nodes[0]
    }

    /// The id of the topic named `name` in this network.
    pub fn topic(&self, name: &str) -> TopicId {
        TopicId::derive(&self.network_id(), name)
    }

    /// The control topic.
    pub fn control(&self) -> TopicId {
        TopicId::control(&self.network_id())
    }

    /// The current charter body.
    pub fn current(&self) -> &Charter {
        self.charters.current().charter()
    }

    /// A draft on `topic` at `seq` with predecessor `prev`, under the current charter,
    /// timestamped [`NOW`], epoch 1, TLP:AMBER.
    pub fn draft(&self, topic: TopicId, seq: u64, prev: EnvelopeId, kind: Kind) -> Draft {
        Draft {
            network_id: self.network_id(),
            topic_id: topic,
            seq,
            prev,
            charter_version: self.current().version,
            timestamp_ms: NOW,
            kind,
            key_epoch: if kind.is_encrypted() { 1 } else { 0 },
            tlp: Tlp::Amber,
        }
    }

    /// The validator context at time `now_ms` over `chains`.
    pub fn ctx<'a>(&'a self, chains: &'a MemoryChains, now_ms: u64) -> Context<'a, MemoryChains> {
        Context {
            charters: &self.charters,
            certs: &self.certs,
            chains,
            now_ms,
        }
    }

    /// The current charter's successor body: version + 1, `prev_hash` = current hash.
    pub fn successor(&self) -> Charter {
        let current = self.charters.current();
        let mut next = current.charter().clone();
        next.version += 1;
        next.prev_hash = current.hash();
        next.created_ms += 1;
        next
    }

    /// Signs `charter` with the root keys of the orgs at `signers`.
    pub fn sign_by(&self, charter: Charter, signers: &[usize]) -> SignedCharter {
        let mut signed = SignedCharter::unsigned(charter);
        for &i in signers {
            signed.sign(&self.org_id(i), &self.org(i).root);
        }
        signed
    }

    /// Offers `charter` signed by `signers` and requires it to be adopted.
    pub fn adopt(&mut self, charter: Charter, signers: &[usize]) {
        let signed = self.sign_by(charter, signers);
        let version = signed.charter().version;
        assert_eq!(
            self.charters.offer(signed),
            Ok(CharterUpdate::Adopted(version))
        );
    }

    /// Adopts a successor that revokes the first node of org `i`, with optional cut-offs.
    pub fn revoke(&mut self, i: usize, cutoffs: Vec<Cutoff>, signers: &[usize]) {
        let mut next = self.successor();
        next.revoked_certs.push(self.node(i).key.public());
        next.cutoffs.extend(cutoffs);
        self.adopt(next, signers);
    }

    /// Adopts a successor without org `i` (as member, governor, reader and publisher).
    pub fn remove_org(&mut self, i: usize, cutoffs: Vec<Cutoff>, signers: &[usize]) {
        let gone = self.org_id(i);
        let mut next = self.successor();
        next.members.retain(|m| m.org_id != gone);
        next.governors.retain(|g| g != &gone);
        next.threshold = next.threshold.min(next.governors.len() as u32);
        for t in &mut next.topics {
            t.readers.retain(|o| o != &gone);
            t.publishers.retain(|o| o != &gone);
        }
        next.cutoffs.extend(cutoffs);
        self.adopt(next, signers);
    }
}

/// Seals `alert` under `key` as `node`.
pub fn seal_alert(
    node: &NodeKey,
    draft: &Draft,
    key: &SenderKey,
    alert: &Alert,
    rng: &mut ChaCha20Rng,
) -> SignedEnvelope {
    let plaintext = alertmesh_protocol::codec::encode(alert);
    SignedEnvelope::seal_encrypted(node, draft, key, &plaintext, rng).unwrap()
}

/// Re-signs `signed_bytes` (header ‖ payload) with `key`: a complete envelope.
pub fn resign(key: &NodeKey, signed_bytes: &[u8]) -> Vec<u8> {
    let mut bytes = signed_bytes.to_vec();
    let sig = key.sign(alertmesh_protocol::ids::tags::ENVELOPE, &bytes);
    bytes.extend_from_slice(&sig);
    bytes
}
