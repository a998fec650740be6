//! Building a new network: org root keys, node keys, certificates and a genesis charter
//! signed by the first `threshold` governors. Used by `alertmesh charter new`, the example
//! network generator, the simulator and tests.

use crate::alert::Tlp;
use crate::cert::{NodeCert, SignedNodeCert};
use crate::charter::{Charter, Limits, Member, SignedCharter, TopicRule};
use crate::ids::{CharterHash, NetworkId, OrgId};
use crate::keys::{AgreementKey, NodeKey, OrgRootKey};
use rand_core::CryptoRngCore;

/// One organization to create.
#[derive(Debug, Clone)]
pub struct OrgPlan {
    /// Its id.
    pub org_id: OrgId,
    /// Display name.
    pub name: String,
    /// Roles.
    pub roles: Vec<String>,
    /// Whether it is a governor.
    pub governor: bool,
    /// How many nodes it runs.
    pub nodes: usize,
}

impl OrgPlan {
    /// An org named by its id, a governor without roles, running `nodes` nodes.
    pub fn new(id: &str, nodes: usize) -> Self {
        OrgPlan {
            org_id: OrgId(id.to_string()),
            name: id.to_string(),
            roles: vec![],
            governor: true,
            nodes,
        }
    }
}

/// One topic to create.
#[derive(Debug, Clone)]
pub struct TopicPlan {
    /// Topic name.
    pub name: String,
    /// Reader orgs.
    pub readers: Vec<OrgId>,
    /// Publisher orgs.
    pub publishers: Vec<OrgId>,
    /// Maximum TLP.
    pub max_tlp: Tlp,
}

/// What to create.
#[derive(Debug, Clone)]
pub struct NetworkPlan {
    /// Network name.
    pub network_name: String,
    /// Organizations.
    pub orgs: Vec<OrgPlan>,
    /// Topics.
    pub topics: Vec<TopicPlan>,
    /// Governor signatures needed.
    pub threshold: u32,
    /// Limits.
    pub limits: Limits,
    /// Creation time (ms), also the start of certificate validity.
    pub now_ms: u64,
    /// Certificate lifetime in ms.
    pub cert_lifetime_ms: u64,
}

/// A node's secret keys and certificate.
#[derive(Debug)]
pub struct NodeMaterial {
    /// Signing key.
    pub key: NodeKey,
    /// Agreement key.
    pub agreement: AgreementKey,
    /// Certificate.
    pub cert: SignedNodeCert,
}

/// An org's root key and nodes.
#[derive(Debug)]
pub struct OrgMaterial {
    /// Its charter entry.
    pub member: Member,
    /// Root key.
    pub root: OrgRootKey,
    /// Nodes.
    pub nodes: Vec<NodeMaterial>,
}

/// A freshly created network.
#[derive(Debug)]
pub struct Network {
    /// The signed genesis charter.
    pub genesis: SignedCharter,
    /// Every org's material, in plan order.
    pub orgs: Vec<OrgMaterial>,
}

impl Network {
    /// The genesis hash nodes pin.
    pub fn genesis_hash(&self) -> CharterHash {
        self.genesis.hash()
    }

    /// Every node with its org id.
    pub fn nodes(&self) -> impl Iterator<Item = (&OrgId, &NodeMaterial)> {
        self.orgs
            .iter()
            .flat_map(|o| o.nodes.iter().map(move |n| (&o.member.org_id, n)))
    }
}

/// Generates fresh node keys and issues their certificate: the node key signs the
/// request (proof of possession), then `root` signs it (both keys are at hand here; an
/// org that keeps its root offline uses [`NodeCert::request`] on the node and
/// [`SignedNodeCert::issue`] offline instead).
pub fn new_node(
    network: &NetworkId,
    org: &OrgId,
    root: &OrgRootKey,
    serial: u64,
    not_before_ms: u64,
    not_after_ms: u64,
    rng: &mut impl CryptoRngCore,
) -> NodeMaterial {
    let key = NodeKey::generate(rng);
    let agreement = AgreementKey::generate(rng);
    let body = NodeCert {
        network_id: *network,
        org_id: org.clone(),
        node_sign_pub: key.public(),
        node_agree_pub: agreement.public(),
        not_before_ms,
        not_after_ms,
        serial,
    };
    let cert = match SignedNodeCert::issue_with_node_key(root, &key, body) {
        Ok(cert) => cert,
        // The request is signed by the key it names, so its proof of possession holds.
        Err(e) => unreachable!("a fresh node's own certificate request is refused: {e}"),
    };
    NodeMaterial {
        key,
        agreement,
        cert,
    }
}

impl NetworkPlan {
    /// Creates every key, certificate and the genesis charter, signed by the first
    /// `threshold` governors.
    pub fn build(&self, rng: &mut impl CryptoRngCore) -> Network {
        let mut id = [0u8; 32];
        rng.fill_bytes(&mut id);
        let network_id = NetworkId(id);
        let orgs: Vec<OrgMaterial> = self
            .orgs
            .iter()
            .map(|plan| {
                let root = OrgRootKey::generate(rng);
                let nodes = (0..plan.nodes)
                    .map(|i| {
                        new_node(
                            &network_id,
                            &plan.org_id,
                            &root,
                            i as u64 + 1,
                            self.now_ms,
                            self.now_ms.saturating_add(self.cert_lifetime_ms),
                            rng,
                        )
                    })
                    .collect();
                OrgMaterial {
                    member: Member {
                        org_id: plan.org_id.clone(),
                        name: plan.name.clone(),
                        root_pub: root.public(),
                        roles: plan.roles.clone(),
                    },
                    root,
                    nodes,
                }
            })
            .collect();
        let governors: Vec<OrgId> = self
            .orgs
            .iter()
            .filter(|o| o.governor)
            .map(|o| o.org_id.clone())
            .collect();
        let charter = Charter {
            network_id,
            network_name: self.network_name.clone(),
            version: 1,
            prev_hash: CharterHash::default(),
            created_ms: self.now_ms,
            members: orgs.iter().map(|o| o.member.clone()).collect(),
            governors: governors.clone(),
            threshold: self.threshold,
            topics: self
                .topics
                .iter()
                .map(|t| TopicRule {
                    name: t.name.clone(),
                    readers: t.readers.clone(),
                    publishers: t.publishers.clone(),
                    max_tlp: t.max_tlp,
                })
                .collect(),
            revoked_certs: Vec::new(),
            cutoffs: Vec::new(),
            limits: self.limits.clone(),
        };
        let mut genesis = SignedCharter::unsigned(charter);
        for gov in governors.iter().take(self.threshold as usize) {
            if let Some(org) = orgs.iter().find(|o| &o.member.org_id == gov) {
                genesis.sign(gov, &org.root);
            }
        }
        Network { genesis, orgs }
    }
}

/// A small plan for tests and examples: `n` orgs `org-0..`, each one node, all governors,
/// threshold ⌈n/2⌉, and one topic `all` that every org reads and publishes.
pub fn simple_plan(n: usize, now_ms: u64) -> NetworkPlan {
    let orgs: Vec<OrgPlan> = (0..n)
        .map(|i| OrgPlan {
            org_id: OrgId(format!("org-{i}")),
            name: format!("Organization {i}"),
            roles: vec![],
            governor: true,
            nodes: 1,
        })
        .collect();
    let all: Vec<OrgId> = orgs.iter().map(|o| o.org_id.clone()).collect();
    NetworkPlan {
        network_name: "test".into(),
        topics: vec![TopicPlan {
            name: "all".into(),
            readers: all.clone(),
            publishers: all,
            max_tlp: Tlp::Red,
        }],
        threshold: n.div_ceil(2) as u32,
        orgs,
        limits: Limits::default(),
        now_ms,
        cert_lifetime_ms: 365 * 24 * 3600 * 1000,
    }
}
