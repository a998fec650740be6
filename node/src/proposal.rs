//! `alertmesh charter propose`: builds charter version n+1 from version n and a list of
//! changes, recording the cut-offs the change needs.
//!
//! Cut-offs (see PROTOCOL.md): when an author loses rights on a topic — its org removed,
//! its certificate revoked, its org dropped from the topic's publishers, or the topic's
//! `max_tlp` lowered below a marking it used — the new charter records the last seq
//! accepted from it on that topic, as seen in the proposing node's database. Earlier
//! envelopes stay valid in history sync; anything later is rejected everywhere.

use crate::store;
use alertmesh_protocol::charter::Cutoff;
use alertmesh_protocol::{
    Charter, Member, NodePublicKey, OrgId, OrgPublicKey, SignedCharter, SignedEnvelope,
    SignedNodeCert, Tlp, TopicId, TopicRule,
};
use anyhow::{Context, bail};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// One topic to create or change.
#[derive(Debug, Clone, Default)]
pub struct TopicEdit {
    /// Topic name.
    pub name: String,
    /// Create it (it must not exist).
    pub create: bool,
    /// New readers.
    pub readers: Option<Vec<OrgId>>,
    /// New publishers.
    pub publishers: Option<Vec<OrgId>>,
    /// New maximum TLP.
    pub max_tlp: Option<Tlp>,
}

/// The changes of one proposal.
#[derive(Debug, Clone, Default)]
pub struct Proposal {
    /// Members to add, with whether each becomes a governor.
    pub add_members: Vec<(Member, bool)>,
    /// Orgs to remove (from members, governors and every topic).
    pub remove_orgs: Vec<OrgId>,
    /// Topic changes.
    pub topics: Vec<TopicEdit>,
    /// Node keys to revoke.
    pub revoke: Vec<NodePublicKey>,
    /// A new governor set.
    pub governors: Option<Vec<OrgId>>,
    /// A new threshold.
    pub threshold: Option<u32>,
}

/// What the proposing node holds: per (author, topic), the head seq and the highest TLP
/// used; per author, its org.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// Head seq and highest TLP per (author, topic).
    pub heads: BTreeMap<(NodePublicKey, TopicId), (u64, Tlp)>,
    /// Org of each author with a known certificate.
    pub orgs: HashMap<NodePublicKey, OrgId>,
}

impl History {
    /// Reads a node's database (read-only; the node may be running).
    pub fn from_data_dir(data_dir: &Path) -> anyhow::Result<Self> {
        let conn = store::open_reader(data_dir)?;
        let mut history = History::default();
        store::for_each_envelope_bytes(&conn, |bytes| {
            let Ok(env) = SignedEnvelope::decode(&bytes, bytes.len()) else {
                return;
            };
            let h = env.header();
            let entry = history
                .heads
                .entry((h.author, h.topic_id))
                .or_insert((0, Tlp::Clear));
            entry.0 = entry.0.max(h.seq);
            entry.1 = entry.1.max(h.tlp);
        })?;
        for (_, bytes) in store::certs(&conn)? {
            if let Ok(cert) = SignedNodeCert::decode(&bytes) {
                history
                    .orgs
                    .insert(cert.cert().node_sign_pub, cert.cert().org_id.clone());
            }
        }
        Ok(history)
    }
}

/// The newest charter a node has adopted: the highest version in its database, or the
/// genesis file.
pub fn current_charter(data_dir: &Path, genesis: &Path) -> anyhow::Result<SignedCharter> {
    if store::db_path(data_dir).exists() {
        let conn = store::open_reader(data_dir)?;
        if let Some(bytes) = store::latest_charter(&conn)? {
            return SignedCharter::decode(&bytes)
                .map_err(|e| anyhow::anyhow!("stored charter: {e}"));
        }
    }
    crate::files::load_charter(genesis)
}

fn cut(cutoffs: &mut Vec<Cutoff>, author: NodePublicKey, topic: TopicId, last_seq: u64) {
    if !cutoffs
        .iter()
        .any(|c| c.author == author && c.topic == topic)
    {
        cutoffs.push(Cutoff {
            author,
            topic,
            last_seq,
        });
    }
}

/// Builds version n+1 (unsigned) from version n.
pub fn propose(
    current: &SignedCharter,
    history: &History,
    p: &Proposal,
    now_ms: u64,
) -> anyhow::Result<Charter> {
    let old = current.charter();
    let mut c = old.clone();
    c.version = old.version + 1;
    c.prev_hash = current.hash();
    c.created_ms = now_ms;
    let net = c.network_id;

    for (member, governor) in &p.add_members {
        if c.member(&member.org_id).is_some() {
            bail!("{} is already a member", member.org_id);
        }
        c.members.push(member.clone());
        if *governor {
            c.governors.push(member.org_id.clone());
        }
    }
    for org in &p.remove_orgs {
        if c.member(org).is_none() {
            bail!("{org} is not a member");
        }
        c.members.retain(|m| &m.org_id != org);
        c.governors.retain(|g| g != org);
        for t in &mut c.topics {
            t.readers.retain(|o| o != org);
            t.publishers.retain(|o| o != org);
        }
    }
    for edit in &p.topics {
        if edit.create {
            if c.topic_by_name(&edit.name).is_some() {
                bail!("topic {} already exists", edit.name);
            }
            c.topics.push(TopicRule {
                name: edit.name.clone(),
                readers: edit.readers.clone().unwrap_or_default(),
                publishers: edit.publishers.clone().unwrap_or_default(),
                max_tlp: edit.max_tlp.unwrap_or(Tlp::Amber),
            });
            continue;
        }
        let Some(t) = c.topics.iter_mut().find(|t| t.name == edit.name) else {
            bail!(
                "no topic named {:?} (use --new-topic to create one)",
                edit.name
            );
        };
        if let Some(r) = &edit.readers {
            t.readers = r.clone();
        }
        if let Some(pb) = &edit.publishers {
            t.publishers = pb.clone();
        }
        if let Some(m) = edit.max_tlp {
            t.max_tlp = m;
        }
    }
    for node in &p.revoke {
        if !c.revoked_certs.contains(node) {
            c.revoked_certs.push(*node);
        }
    }
    if let Some(g) = &p.governors {
        c.governors = g.clone();
    }
    if let Some(k) = p.threshold {
        c.threshold = k;
    }

    // Cut-offs for every author whose rights on a topic shrink.
    for ((author, topic), (head, max_used)) in &history.heads {
        let org = history.orgs.get(author);
        let removed = org.is_some_and(|o| c.member(o).is_none())
            && org.is_some_and(|o| old.member(o).is_some());
        let revoked = c.is_revoked(author) && !old.is_revoked(author);
        let (was_publisher, old_max) = old
            .topic(topic)
            .map(|t| (org.is_some_and(|o| t.publishers.contains(o)), t.max_tlp))
            .unwrap_or((false, Tlp::Clear));
        let (is_publisher, new_max) = c
            .topic(topic)
            .map(|t| (org.is_some_and(|o| t.publishers.contains(o)), t.max_tlp))
            .unwrap_or((false, Tlp::Clear));
        let demoted = was_publisher && !is_publisher;
        let lowered = new_max < old_max && *max_used > new_max;
        if (removed || revoked || demoted || lowered) && *topic != TopicId::control(&net) {
            cut(&mut c.cutoffs, *author, *topic, *head);
        }
        if (removed || revoked) && *topic == TopicId::control(&net) {
            cut(&mut c.cutoffs, *author, *topic, *head);
        }
    }
    c.check_well_formed()
        .context("the proposed charter is not well formed")?;
    Ok(c)
}

/// Parses a comma-separated org list.
pub fn org_list(s: &str) -> anyhow::Result<Vec<OrgId>> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(|x| Ok(OrgId::new(x)?))
        .collect()
}

/// Builds a member entry from CLI arguments.
pub fn member(org: &str, name: &str, root_pub: &str, roles: &[String]) -> anyhow::Result<Member> {
    Ok(Member {
        org_id: OrgId::new(org)?,
        name: name.to_string(),
        root_pub: OrgPublicKey::from_hex(root_pub)
            .map_err(|_| anyhow::anyhow!("--root-pub must be 64 hex digits"))?,
        roles: roles.to_vec(),
    })
}
