//! The certificates an audit verified, by node key.

use crate::cert::SignedNodeCert;
use crate::certs::Attribution;
use crate::charter::Charter;
use crate::ids::{NodePublicKey, OrgId, OrgPublicKey};
use crate::policy::Certificates;
use std::collections::HashMap;

/// Every certificate of the log that verified under some charter version (unlike the
/// node's [`crate::certs::CertDirectory`], nothing is evicted: an old one may cover an
/// old envelope).
#[derive(Debug, Default)]
pub(super) struct HeldCerts {
    by_node: HashMap<NodePublicKey, Vec<HeldCert>>,
}

#[derive(Debug)]
struct HeldCert {
    cert: SignedNodeCert,
    /// The org root key the signature was verified with.
    root: OrgPublicKey,
}

impl HeldCerts {
    /// Keeps `cert`, verified with `root`.
    pub(super) fn insert(&mut self, cert: SignedNodeCert, root: OrgPublicKey) {
        self.by_node
            .entry(cert.cert().node_sign_pub)
            .or_default()
            .push(HeldCert { cert, root });
    }

    /// The one org the certificates for `node` name.
    pub(super) fn org_of(&self, node: &NodePublicKey) -> Option<&OrgId> {
        match self.attribution(node) {
            Attribution::Org(org) => Some(org),
            Attribution::Unknown | Attribution::Ambiguous => None,
        }
    }
}

impl Certificates for HeldCerts {
    fn attribution(&self, node: &NodePublicKey) -> Attribution<'_> {
        let Some(list) = self.by_node.get(node) else {
            return Attribution::Unknown;
        };
        let Some(first) = list.first() else {
            return Attribution::Unknown;
        };
        let org = &first.cert.cert().org_id;
        if list.iter().any(|h| &h.cert.cert().org_id != org) {
            return Attribution::Ambiguous;
        }
        Attribution::Org(org)
    }

    fn certified(&self, node: &NodePublicKey, charter: &Charter, time_ms: u64) -> bool {
        let Some(member) = self.org_of(node).and_then(|org| charter.member(org)) else {
            return false;
        };
        self.by_node
            .get(node)
            .into_iter()
            .flatten()
            .any(|h| h.root == member.root_pub && h.cert.valid_at(time_ms))
    }
}
