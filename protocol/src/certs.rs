//! The certificates a node knows, verified against the charter's org root keys.
//!
//! Every certificate carries the node's own signature (proof of possession, see
//! [`crate::cert`]), so a node key can only be certified by orgs its holder co-signed
//! for. A node key belongs to one org: if the held certificates for one node key name
//! different orgs, the key's author is *ambiguous* and the validator rejects its envelopes
//! (`ambiguous_author`) rather than pick one. Certificates are grouped by org, so one
//! org's certificates never evict another's, and attribution does not depend on which
//! certificate ends last.

use crate::cert::{CertError, SignedNodeCert};
use crate::charter::Charter;
use crate::ids::{NodePublicKey, OrgId, OrgPublicKey};
use std::collections::{BTreeMap, HashMap};

/// Most certificates kept per node key and org (renewals overlap); the ones that end
/// last are kept.
pub const MAX_CERTS_PER_NODE: usize = 8;

/// Verified node certificates by node key, then by org.
#[derive(Debug, Clone, Default)]
pub struct CertDirectory {
    by_node: HashMap<NodePublicKey, BTreeMap<OrgId, Vec<KnownCert>>>,
}

#[derive(Debug, Clone)]
struct KnownCert {
    cert: SignedNodeCert,
    /// The org root key the signature was verified with.
    root: OrgPublicKey,
}

/// Which org the held certificates attribute a node key to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attribution<'a> {
    /// No certificate is held for the key.
    Unknown,
    /// Every held certificate names this org.
    Org(&'a OrgId),
    /// Held certificates name two or more orgs.
    Ambiguous,
}

impl CertDirectory {
    /// Verifies `cert` (both signatures, see [`SignedNodeCert::verify`]) against its org's
    /// root key in `charter` and stores it. Returns whether it was new and kept (at most
    /// [`MAX_CERTS_PER_NODE`] per node key and org, those that end last).
    pub fn insert(&mut self, cert: SignedNodeCert, charter: &Charter) -> Result<bool, CertError> {
        let member = charter
            .member(&cert.cert().org_id)
            .ok_or_else(|| CertError::UnknownOrg(cert.cert().org_id.clone()))?;
        // The same bytes already verified with the same root key: nothing to check again
        // (hellos and announcements repeat every certificate a peer holds).
        if self.holds_verified(&cert, &member.root_pub) {
            return Ok(false);
        }
        cert.verify(&charter.network_id, &member.root_pub)?;
        let list = self
            .by_node
            .entry(cert.cert().node_sign_pub)
            .or_default()
            .entry(cert.cert().org_id.clone())
            .or_default();
        if list.iter().any(|k| k.cert == cert) {
            return Ok(false);
        }
        let bytes = cert.as_bytes().to_vec();
        list.push(KnownCert {
            cert,
            root: member.root_pub,
        });
        // Keep the certificates that end last (ties: by bytes, so the choice does not
        // depend on arrival order).
        list.sort_by(|a, b| {
            b.cert
                .cert()
                .not_after_ms
                .cmp(&a.cert.cert().not_after_ms)
                .then_with(|| a.cert.as_bytes().cmp(b.cert.as_bytes()))
        });
        list.truncate(MAX_CERTS_PER_NODE);
        Ok(list.iter().any(|k| k.cert.as_bytes() == bytes))
    }

    /// Whether exactly this certificate is held, verified with `root`.
    pub fn holds_verified(&self, cert: &SignedNodeCert, root: &OrgPublicKey) -> bool {
        self.by_node
            .get(&cert.cert().node_sign_pub)
            .and_then(|orgs| orgs.get(&cert.cert().org_id))
            .is_some_and(|list| list.iter().any(|k| k.root == *root && k.cert == *cert))
    }

    /// The org the held certificates attribute `node` to.
    pub fn attribution(&self, node: &NodePublicKey) -> Attribution<'_> {
        let Some(orgs) = self.by_node.get(node) else {
            return Attribution::Unknown;
        };
        let mut names = orgs.keys();
        match (names.next(), names.next()) {
            (None, _) => Attribution::Unknown,
            (Some(org), None) => Attribution::Org(org),
            (Some(_), Some(_)) => Attribution::Ambiguous,
        }
    }

    /// The one org every held certificate for `node` names; `None` if no certificate is
    /// held or they name different orgs.
    pub fn org_of(&self, node: &NodePublicKey) -> Option<&OrgId> {
        match self.attribution(node) {
            Attribution::Org(org) => Some(org),
            Attribution::Unknown | Attribution::Ambiguous => None,
        }
    }

    /// A certificate for `node` that was verified with the root key `charter` lists for
    /// its org and that covers `time_ms` (the latest-ending such). `None` as well when
    /// the held certificates for `node` name different orgs.
    pub fn valid_for(
        &self,
        node: &NodePublicKey,
        charter: &Charter,
        time_ms: u64,
    ) -> Option<&SignedNodeCert> {
        let org = self.org_of(node)?;
        let member = charter.member(org)?;
        self.by_node
            .get(node)?
            .get(org)?
            .iter()
            .find(|k| member.root_pub == k.root && k.cert.valid_at(time_ms))
            .map(|k| &k.cert)
    }

    /// Any certificate for `node` (the latest-ending first), whatever its validity. It
    /// does not decide the node's org: use [`CertDirectory::org_of`] for that.
    pub fn any_for(&self, node: &NodePublicKey) -> Option<&SignedNodeCert> {
        self.by_node
            .get(node)?
            .values()
            .filter_map(|list| list.first())
            .map(|k| &k.cert)
            .reduce(|best, c| {
                if c.cert().not_after_ms > best.cert().not_after_ms {
                    c
                } else {
                    best
                }
            })
    }

    /// All certificates held.
    pub fn all(&self) -> impl Iterator<Item = &SignedNodeCert> {
        self.by_node
            .values()
            .flat_map(|orgs| orgs.values().flatten())
            .map(|k| &k.cert)
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::bootstrap::simple_plan;
    use crate::cert::NodeCert;
    use crate::keys::NodeKey;
    use rand_chacha08::ChaCha20Rng;
    use rand_chacha08::rand_core::SeedableRng;

    const NOW: u64 = 1_000_000;

    #[test]
    fn one_orgs_certificates_never_evict_anothers() {
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let net = simple_plan(2, NOW).build(&mut rng);
        let charter = net.genesis.charter();
        let node = &net.orgs[0].nodes[0];
        let mut dir = CertDirectory::default();
        assert_eq!(dir.insert(node.cert.clone(), charter), Ok(true));
        assert_eq!(dir.insert(node.cert.clone(), charter), Ok(false));
        assert_eq!(
            dir.org_of(&node.key.public()),
            Some(&net.orgs[0].member.org_id)
        );

        // The node co-signs many later-ending certificates for org-1.
        for serial in 0..2 * MAX_CERTS_PER_NODE as u64 {
            let cert = NodeCert {
                org_id: net.orgs[1].member.org_id.clone(),
                not_after_ms: node.cert.cert().not_after_ms + 1 + serial,
                serial: 100 + serial,
                ..node.cert.cert().clone()
            };
            let signed =
                SignedNodeCert::issue_with_node_key(&net.orgs[1].root, &node.key, cert).unwrap();
            assert_eq!(dir.insert(signed, charter), Ok(true));
        }
        // org-0's certificate is still held; org-1 keeps at most MAX_CERTS_PER_NODE.
        assert!(dir.all().any(|c| c == &node.cert));
        assert_eq!(dir.all().count(), 1 + MAX_CERTS_PER_NODE);
        assert_eq!(dir.len(), 1);
        // Two orgs named: ambiguous, so no org and no valid certificate.
        assert_eq!(dir.attribution(&node.key.public()), Attribution::Ambiguous);
        assert_eq!(dir.org_of(&node.key.public()), None);
        assert!(dir.valid_for(&node.key.public(), charter, NOW).is_none());
        assert_eq!(
            dir.any_for(&node.key.public()).unwrap().cert().org_id,
            net.orgs[1].member.org_id
        );
        assert_eq!(
            dir.attribution(&NodeKey::from_secret_bytes(&[1; 32]).public()),
            Attribution::Unknown
        );
    }

    #[test]
    fn renewals_of_one_org_keep_the_latest_ending() {
        let mut rng = ChaCha20Rng::seed_from_u64(12);
        let net = simple_plan(1, NOW).build(&mut rng);
        let charter = net.genesis.charter();
        let org = &net.orgs[0];
        let node = &org.nodes[0];
        let mut dir = CertDirectory::default();
        let renewal = |i: u64| {
            let cert = NodeCert {
                not_before_ms: NOW + i * 10,
                not_after_ms: NOW + i * 10 + 9,
                serial: 10 + i,
                ..node.cert.cert().clone()
            };
            SignedNodeCert::issue_with_node_key(&org.root, &node.key, cert).unwrap()
        };
        for i in (0..MAX_CERTS_PER_NODE as u64 + 2).rev() {
            dir.insert(renewal(i), charter).unwrap();
        }
        // The two earliest-ending were dropped; one that ends earlier than every kept
        // certificate is not kept.
        assert_eq!(dir.all().count(), MAX_CERTS_PER_NODE);
        assert_eq!(dir.insert(renewal(0), charter), Ok(false));
        assert!(
            dir.valid_for(&node.key.public(), charter, NOW + 5)
                .is_none()
        );
        let at = NOW + 25;
        assert_eq!(
            dir.valid_for(&node.key.public(), charter, at)
                .unwrap()
                .cert()
                .serial,
            12
        );
    }
}
