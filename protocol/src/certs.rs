//! The certificates a node knows, verified against the charter's org root keys.

use crate::cert::{CertError, SignedNodeCert};
use crate::charter::Charter;
use crate::ids::{NodePublicKey, OrgPublicKey};
use std::collections::HashMap;

/// Most certificates kept per node key (renewals overlap).
pub const MAX_CERTS_PER_NODE: usize = 8;

/// Verified node certificates by node key.
#[derive(Debug, Clone, Default)]
pub struct CertDirectory {
    by_node: HashMap<NodePublicKey, Vec<KnownCert>>,
}

#[derive(Debug, Clone)]
struct KnownCert {
    cert: SignedNodeCert,
    /// The org root key the signature was verified with.
    root: OrgPublicKey,
}

impl CertDirectory {
    /// Verifies `cert` against its org's root key in `charter` and stores it. Returns
    /// whether it was new.
    pub fn insert(&mut self, cert: SignedNodeCert, charter: &Charter) -> Result<bool, CertError> {
        let member = charter
            .member(&cert.cert().org_id)
            .ok_or_else(|| CertError::UnknownOrg(cert.cert().org_id.clone()))?;
        cert.verify(&charter.network_id, &member.root_pub)?;
        let list = self.by_node.entry(cert.cert().node_sign_pub).or_default();
        if list.iter().any(|k| k.cert == cert) {
            return Ok(false);
        }
        list.push(KnownCert {
            cert,
            root: member.root_pub,
        });
        // Keep the certificates that end last.
        list.sort_by_key(|k| std::cmp::Reverse(k.cert.cert().not_after_ms));
        list.truncate(MAX_CERTS_PER_NODE);
        Ok(true)
    }

    /// A certificate for `node` that was verified with the root key `charter` lists for
    /// its org and that covers `time_ms`.
    pub fn valid_for(&self, node: &NodePublicKey, charter: &Charter, time_ms: u64) -> Option<&SignedNodeCert> {
        self.by_node.get(node)?.iter().find_map(|k| {
            let member = charter.member(&k.cert.cert().org_id)?;
            (member.root_pub == k.root && k.cert.valid_at(time_ms)).then_some(&k.cert)
        })
    }

    /// Any certificate for `node` (the latest-ending first), whatever its validity.
    pub fn any_for(&self, node: &NodePublicKey) -> Option<&SignedNodeCert> {
        self.by_node.get(node)?.first().map(|k| &k.cert)
    }

    /// All certificates held.
    pub fn all(&self) -> impl Iterator<Item = &SignedNodeCert> {
        self.by_node.values().flatten().map(|k| &k.cert)
    }

    /// Number of node keys with certificates.
    pub fn len(&self) -> usize {
        self.by_node.len()
    }

    /// Whether no certificate is held.
    pub fn is_empty(&self) -> bool {
        self.by_node.is_empty()
    }
}
