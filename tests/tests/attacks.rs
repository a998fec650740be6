//! Hostile members and outsiders (issue 8): an adversarial test suite.
//!
//! Every test starts a network of real nodes in this process (TCP, Noise, Yamux,
//! gossipsub, request-response, SQLite files) and attacks it with the hostile test peer
//! of `alertmesh_sim::hostile`: a libp2p peer built from the same crates that
//! introduces itself with any certificate (or none) and sends any bytes on any protocol.
//! Keys, certificates, signatures, HPKE and AEAD are all real; nothing is mocked.
//!
//! Each test asserts two things:
//!
//! 1. **the attack fails**, observably: a typed verdict counted in the node's metrics,
//!    nothing stored, a closed connection, a gossipsub score below a threshold, a sealed
//!    key or ciphertext that does not open;
//! 2. **honest traffic flows**: alerts published by honest nodes while the attack runs
//!    reach every node of every reader org (waited for in the readers' SQLite stores).
//!
//! Waits are on conditions, bounded by [`WAIT`]; no sleep is used to synchronize. Where a
//! test asserts that something did *not* happen, it first waits for a positive marker
//! that proves the hostile input was processed (a verdict counter, the end of the stream
//! it came on, an answer on the same connection, a later honest alert on the same path).
//!
//! | attack | tests |
//! |---|---|
//! | 1. outsider without a certificate | `outsider_receives_no_gossip_and_nothing_it_sends_is_processed`, `outsider_learns_nothing_but_the_nodes_own_certificate`, `bad_certificate_is_told_refused_then_disconnected`, `request_flood_is_answered_busy_and_counted` |
//! | 2. member beyond its rights, forged authors and signatures, another org's certificate | `member_forging_or_exceeding_its_rights_is_rejected_everywhere`, `certificates_of_another_org_are_refused` |
//! | 3. member subscribed where it may not read | `non_reader_subscriber_is_scored_down_and_holds_only_ciphertext_it_cannot_open` |
//! | 4. replays (gossip and sync), envelopes from the future | `replays_are_ignored_and_future_envelopes_rejected_in_gossip_and_sync` |
//! | 5. equivocation | `split_view_equivocation_is_proven_to_every_honest_node`, `certificate_announcement_reaches_nodes_beyond_the_first_hop` |
//! | 6. malformed input on every protocol | `malformed_input_on_every_protocol_leaves_the_node_serving_in_bounded_memory` |
//! | 7. flood at 100× the rate limit | `flooding_member_is_rate_limited_and_graylisted_while_honest_alerts_flow` |
//! | 8. removed org, revoked node | `removed_org_and_revoked_node_cannot_keep_reading_or_publishing` |
//! | 9. wrong, partial and endless sync pages | `lying_sync_peer_is_contained_and_the_node_converges_with_honest_peers` |

use alertmesh_node::net::PeerInfo;
use alertmesh_node::node::Node;
use alertmesh_node::proposal::{self, History, Proposal};
use alertmesh_protocol::bootstrap::{NetworkPlan, NodeMaterial, OrgPlan, TopicPlan, new_node};
use alertmesh_protocol::evidence::Misbehaviour;
use alertmesh_protocol::ids::{sha256, tags};
use alertmesh_protocol::wire::{self, Hello, MAX_FRAME_BYTES};
use alertmesh_protocol::{
    AgreementKey, ControlMessage, Draft, EnvelopeId, Evidence, KeyPackage, Kind, Limits, NetworkId,
    NodeCert, NodeKey, NodePublicKey, OrgId, SenderKey, SignedCharter, SignedEnvelope,
    SignedNodeCert, Tlp, TopicId,
};
use alertmesh_sim::files::TOKEN;
use alertmesh_sim::harness::{Builder, Harness, NodeView};
use alertmesh_sim::harness::{listen_addr, verdict_count};
use alertmesh_sim::hostile::{Answer, HostilePeer, RawProtocol, Responder, Seen};
use alertmesh_tests::{WAIT, wait_for};
use anyhow::{Context, bail, ensure};
use libp2p::PeerId;
use libp2p::gossipsub::TopicHash;
use rand::RngCore;
use rand::rngs::OsRng;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

type Result<T = ()> = anyhow::Result<T>;

const ALL: &str = "all";
const OPS: &str = "ops";
const AGENCY: &str = "agency-only";
const TIPS: &str = "platforms-to-agencies";
const CONTROL: &str = alertmesh_protocol::topic::CONTROL_TOPIC_NAME;
/// The size limit the test decodes envelopes with (above any limit the nodes apply).
const MAX_ENVELOPE: usize = 1 << 20;
/// How much the test process's resident memory may grow while a node is fed malformed
/// input (other tests run in the same process; a decoder that believed a length field
/// would allocate gigabytes).
const MAX_RSS_GROWTH: u64 = 256 * 1024 * 1024;

// ---------------------------------------------------------------------------------------
// Networks
// ---------------------------------------------------------------------------------------

fn org(s: &str) -> OrgId {
    OrgId(s.to_string())
}

fn now() -> u64 {
    alertmesh_node::clock::now_ms()
}

fn topic_plan(name: &str, readers: &[&str], publishers: &[&str], max_tlp: Tlp) -> TopicPlan {
    TopicPlan {
        name: name.into(),
        readers: readers.iter().map(|o| org(o)).collect(),
        publishers: publishers.iter().map(|o| org(o)).collect(),
        max_tlp,
    }
}

/// A plan of `(org, nodes)`; orgs that run nodes are governors (threshold 2).
fn plan(orgs: &[(&str, usize)], topics: Vec<TopicPlan>, limits: Limits) -> NetworkPlan {
    NetworkPlan {
        network_name: "attacks".into(),
        orgs: orgs
            .iter()
            .map(|(o, nodes)| OrgPlan {
                governor: *nodes > 0,
                ..OrgPlan::new(o, *nodes)
            })
            .collect(),
        topics,
        threshold: 2,
        limits,
        now_ms: now() - 60_000,
        cert_lifetime_ms: 24 * 3600 * 1000,
    }
}

/// `org-0` … `org-{n-1}`, one node each, every org reading and publishing every topic.
fn flat_plan(n: usize, topics: &[&str]) -> NetworkPlan {
    let names: Vec<String> = (0..n).map(|i| format!("org-{i}")).collect();
    let all: Vec<&str> = names.iter().map(String::as_str).collect();
    let orgs: Vec<(&str, usize)> = all.iter().map(|o| (*o, 1)).collect();
    let topics = topics
        .iter()
        .map(|t| topic_plan(t, &all, &all, Tlp::Red))
        .collect();
    plan(&orgs, topics, Limits::default())
}

/// Two platforms and two agencies: `all` for everyone, `agency-only` for agencies, and
/// `platforms-to-agencies`, which platforms publish and agencies read.
fn acl_plan() -> NetworkPlan {
    let everyone = ["plat-a", "plat-b", "agency-a", "agency-b"];
    let agencies = ["agency-a", "agency-b"];
    let platforms = ["plat-a", "plat-b"];
    plan(
        &everyone.map(|o| (o, 1)),
        vec![
            topic_plan(ALL, &everyone, &everyone, Tlp::Amber),
            topic_plan(AGENCY, &agencies, &agencies, Tlp::Red),
            topic_plan(TIPS, &agencies, &platforms, Tlp::Amber),
        ],
        Limits::default(),
    )
}

fn net_id(net: &Harness) -> NetworkId {
    net.network().genesis.charter().network_id
}

fn topic_id(net: &Harness, name: &str) -> TopicId {
    TopicId::derive(&net_id(net), name)
}

/// The gossipsub topic of a topic name (the control topic included).
fn gossip_topic(net: &Harness, name: &str) -> TopicHash {
    TopicHash::from_raw(topic_id(net, name).gossip_name(&net_id(net)))
}

fn org_index(net: &Harness, name: &str) -> Result<usize> {
    net.network()
        .orgs
        .iter()
        .position(|o| o.member.org_id.as_str() == name)
        .with_context(|| format!("no org {name} in the plan"))
}

fn nodes(net: &Harness) -> Vec<&Node> {
    net.nodes().into_iter().map(|n| n.node).collect()
}

// ---------------------------------------------------------------------------------------
// Stores
// ---------------------------------------------------------------------------------------

fn data_dir(n: NodeView<'_>) -> PathBuf {
    n.data.to_path_buf()
}

fn db(n: NodeView<'_>) -> Result<rusqlite::Connection> {
    Ok(alertmesh_node::store::open_reader(&data_dir(n))?)
}

fn id_of(bytes: &[u8]) -> EnvelopeId {
    EnvelopeId(sha256(bytes))
}

/// Whether the node holds `id` decrypted in its alerts table.
fn has_alert(n: NodeView<'_>, id: &EnvelopeId) -> bool {
    db(n).is_ok_and(|c| {
        c.query_row(
            "SELECT count(*) FROM alerts WHERE envelope_id = ?1",
            [id.as_bytes()],
            |r| r.get::<_, i64>(0),
        )
        .is_ok_and(|k| k == 1)
    })
}

/// How many rows of the envelopes table have this id.
fn stored(n: NodeView<'_>, id: &EnvelopeId) -> Result<i64> {
    Ok(db(n)?.query_row(
        "SELECT count(*) FROM envelopes WHERE id = ?1",
        [id.as_bytes()],
        |r| r.get(0),
    )?)
}

/// How many envelopes by `author` the node stores.
fn stored_by(n: NodeView<'_>, author: &NodePublicKey) -> Result<i64> {
    Ok(db(n)?.query_row(
        "SELECT count(*) FROM envelopes WHERE author = ?1",
        [author.as_bytes()],
        |r| r.get(0),
    )?)
}

/// The envelopes a node stores on a topic by an author, in seq order.
fn chain_of(n: NodeView<'_>, author: &NodePublicKey, topic: &TopicId) -> Result<Vec<Vec<u8>>> {
    let conn = db(n)?;
    let mut q =
        conn.prepare("SELECT bytes FROM envelopes WHERE author = ?1 AND topic = ?2 ORDER BY seq")?;
    let rows = q
        .query_map(
            rusqlite::params![author.as_bytes(), topic.as_bytes()],
            |r| r.get(0),
        )?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

/// Every envelope a node stores on a topic.
fn envelopes_on(n: NodeView<'_>, topic: &TopicId) -> Result<Vec<SignedEnvelope>> {
    let conn = db(n)?;
    let mut q = conn.prepare("SELECT bytes FROM envelopes WHERE topic = ?1")?;
    let rows: Vec<Vec<u8>> = q
        .query_map([topic.as_bytes()], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    rows.iter()
        .map(|b| Ok(SignedEnvelope::decode(b, MAX_ENVELOPE)?))
        .collect()
}

fn ids_on(n: NodeView<'_>, topic: &TopicId) -> BTreeSet<EnvelopeId> {
    envelopes_on(n, topic)
        .map(|envs| envs.iter().map(SignedEnvelope::id).collect())
        .unwrap_or_default()
}

/// The stored evidence objects.
fn evidence_rows(n: NodeView<'_>) -> Result<Vec<Vec<u8>>> {
    let conn = db(n)?;
    let mut q = conn.prepare("SELECT bytes FROM evidence")?;
    let rows = q
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

fn envelope_bytes(n: NodeView<'_>, id: &EnvelopeId) -> Result<Vec<u8>> {
    Ok(db(n)?.query_row(
        "SELECT bytes FROM envelopes WHERE id = ?1",
        [id.as_bytes()],
        |r| r.get(0),
    )?)
}

/// Fails if any node of `net` stores any of `ids`.
fn assert_stored_nowhere(net: &Harness, ids: &[EnvelopeId], what: &str) -> Result<()> {
    for n in net.nodes() {
        for id in ids {
            ensure!(
                stored(n, id)? == 0,
                "{} stored {what} {}",
                n.org,
                id.short()
            );
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Honest traffic
// ---------------------------------------------------------------------------------------

/// Honest alerts published while an attack runs, each with the orgs that must get it.
#[derive(Default)]
struct Honest(Vec<(EnvelopeId, String, Vec<String>)>);

impl Honest {
    /// Publishes an alert from `from`'s node on `topic`; every reader org of the topic
    /// under the publisher's current charter must receive it.
    async fn publish(
        &mut self,
        net: &Harness,
        from: &str,
        topic: &str,
        title: &str,
    ) -> Result<EnvelopeId> {
        let core = &net.node(from)?.core;
        let readers = core
            .topics()
            .await?
            .into_iter()
            .find(|t| t.name == topic)
            .map(|t| t.readers)
            .with_context(|| format!("no topic {topic}"))?;
        let receipt = core
            .publish(
                topic.into(),
                Tlp::Green,
                alertmesh_sim::samples::sample_alert(title),
            )
            .await?
            .map_err(|e| anyhow::anyhow!("honest publish by {from} on {topic}: {e}"))?;
        self.0.push((receipt.id, title.to_string(), readers));
        Ok(receipt.id)
    }

    /// Waits until every running node of every reader org holds every alert decrypted.
    async fn delivered(&self, net: &Harness) -> Result<()> {
        for (id, title, readers) in &self.0 {
            for n in net
                .nodes()
                .into_iter()
                .filter(|n| readers.iter().any(|r| r == n.org))
            {
                wait_for(
                    &format!("{} to hold the honest alert {title:?}", n.org),
                    || async { has_alert(n, id) },
                )
                .await?;
            }
        }
        Ok(())
    }
}

async fn wait_verdict(
    n: NodeView<'_>,
    verdict: &'static str,
    reason: &'static str,
    at_least: u64,
) -> Result {
    wait_for(
        &format!("{} to count {at_least} × {verdict}/{reason}", n.org),
        || async { verdict_count(n.node, verdict, reason) >= at_least },
    )
    .await
}

/// What a node's swarm reports about `peer`, if connected.
async fn peer_info(n: &Node, peer: &PeerId) -> Option<PeerInfo> {
    let id = peer.to_string();
    n.net
        .peers()
        .await
        .ok()?
        .into_iter()
        .find(|p| p.peer_id == id)
}

/// Waits until every node in `on` reports a score for `peer` that satisfies `pred`.
async fn wait_score(
    on: &[NodeView<'_>],
    peer: &PeerId,
    what: &str,
    pred: impl Fn(&PeerInfo) -> bool,
) -> Result {
    for n in on {
        let last = std::sync::Mutex::new(None);
        let waited = wait_for(&format!("{} to see the peer {what}", n.org), || async {
            let info = peer_info(n.node, peer).await;
            let holds = info.as_ref().is_some_and(&pred);
            if let Ok(mut l) = last.lock() {
                *l = info;
            }
            holds
        })
        .await;
        if let Err(e) = waited {
            let last = last.lock().map(|l| l.clone()).ok().flatten();
            bail!("{e}; last seen: {last:?}");
        }
    }
    Ok(())
}

/// Resident memory of this process.
fn rss_bytes() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .context("no VmRSS in /proc/self/status")?;
    Ok(kb * 1024)
}

// ---------------------------------------------------------------------------------------
// Hostile peers
// ---------------------------------------------------------------------------------------

fn hello_with(cert: &[u8]) -> Hello {
    Hello {
        cert: cert.to_vec(),
    }
}

/// A fresh node identity with a certificate for `org_id` signed by `root`.
fn identity(
    net: &Harness,
    org_id: &str,
    root: &alertmesh_protocol::OrgRootKey,
    serial: u64,
) -> NodeMaterial {
    new_node(
        &net_id(net),
        &org(org_id),
        root,
        serial,
        now() - 1000,
        now() + 24 * 3_600_000,
        &mut OsRng,
    )
}

fn copy_identity(m: &NodeMaterial) -> NodeMaterial {
    NodeMaterial {
        key: NodeKey::from_secret_bytes(&m.key.secret_bytes()),
        agreement: AgreementKey::from_secret_bytes(&m.agreement.secret_bytes()),
        cert: m.cert.clone(),
    }
}

/// Answers hellos with `hello` and sync requests with `page(request)` (encoded response).
fn sync_responder(
    hello: Hello,
    mut page: impl FnMut(&wire::SyncRequest) -> Vec<u8> + Send + 'static,
) -> Responder {
    Box::new(move |_, frame| match wire::Request::decode(frame) {
        Ok(wire::Request::Hello(_)) => {
            Answer::Respond(wire::Response::Hello(hello.clone()).encode())
        }
        Ok(wire::Request::Sync(req)) => Answer::Respond(page(&req)),
        Ok(wire::Request::Directory) => {
            Answer::Respond(wire::Response::Refused("no directory here".into()).encode())
        }
        Ok(
            wire::Request::AddCheckpoint(_)
            | wire::Request::Checkpoints
            | wire::Request::Inclusions { .. },
        ) => Answer::Respond(wire::Response::Refused("no transparency here".into()).encode()),
        Err(_) => Answer::Drop,
    })
}

/// Answers sync requests for `topic` with `page`, and for any other topic with nothing.
fn serving(hello: Hello, topic: TopicId, page: Vec<u8>) -> Responder {
    sync_responder(hello, move |req| {
        if req.topic == topic {
            page.clone()
        } else {
            sync_page(req.topic, vec![], vec![], false)
        }
    })
}

fn sync_page(topic: TopicId, certs: Vec<Vec<u8>>, envelopes: Vec<Vec<u8>>, more: bool) -> Vec<u8> {
    wire::Response::Sync(wire::SyncPage {
        topic,
        certs,
        envelopes,
        more,
    })
    .encode()
}

fn sync_request(topic: TopicId) -> Vec<u8> {
    wire::Request::Sync(wire::SyncRequest {
        topic,
        have: vec![],
    })
    .encode()
}

/// The topic of a sync request frame, if it is one.
fn sync_topic(frame: &[u8]) -> Option<TopicId> {
    match wire::Request::decode(frame) {
        Ok(wire::Request::Sync(req)) => Some(req.topic),
        _ => None,
    }
}

fn is_hello_from(s: &Seen, peer: &PeerId) -> bool {
    matches!(s, Seen::Response(p, b) if p == peer
        && matches!(wire::Response::decode(b), Ok(wire::Response::Hello(_))))
}

/// A hostile peer run by the test, with the node identity it uses.
struct Rogue {
    peer: HostilePeer,
    me: NodeMaterial,
    /// The sender key its own alerts are encrypted with (epoch 1; never shared).
    key: SenderKey,
    /// Everything a wait consumed, in order.
    log: Vec<Seen>,
}

impl Rogue {
    /// A new node of the member org `org_id`, certified by the org's own root key (so it
    /// is admitted), optionally answering requests with `responder`.
    fn member(
        net: &Harness,
        org_id: &str,
        serial: u64,
        responder: Option<Responder>,
    ) -> Result<Self> {
        let root = &net.network().orgs[org_index(net, org_id)?].root;
        let me = identity(net, org_id, root, serial);
        let hello = hello_with(me.cert.as_bytes());
        Self::start(me, Some(hello), responder)
    }

    /// A peer with identity `me` that introduces itself with `hello` (or not at all).
    fn start(me: NodeMaterial, hello: Option<Hello>, responder: Option<Responder>) -> Result<Self> {
        let keypair = alertmesh_node::net::keypair(&me.key)?;
        let peer = match responder {
            Some(r) => HostilePeer::start_with(keypair, hello, r)?,
            None => HostilePeer::start(keypair, hello)?,
        };
        Ok(Self {
            peer,
            me,
            key: SenderKey::generate(1, &mut OsRng),
            log: Vec::new(),
        })
    }

    fn author(&self) -> NodePublicKey {
        self.me.key.public()
    }

    /// Waits for an event matching `pred`, keeping every event seen on the way.
    async fn wait(&mut self, what: &str, mut pred: impl FnMut(&Seen) -> bool) -> Result<Seen> {
        let log = &mut self.log;
        self.peer
            .wait_seen(what, |s| {
                log.push(s.clone());
                pred(s)
            })
            .await
    }

    /// Everything seen so far.
    fn everything(&mut self) -> Vec<Seen> {
        let mut all = std::mem::take(&mut self.log);
        all.extend(self.peer.drain());
        all
    }

    async fn dial(&self, nodes: &[&Node]) -> Result {
        for n in nodes {
            self.peer.dial(listen_addr(n, WAIT).await?).await?;
        }
        Ok(())
    }

    /// Dials `nodes` and waits until each admitted it (answered its hello with its own).
    async fn join(&mut self, nodes: &[&Node]) -> Result {
        self.dial(nodes).await?;
        let mut pending: HashSet<PeerId> = nodes.iter().map(|n| n.peer_id).collect();
        while !pending.is_empty() {
            let seen = self
                .wait("admission by every node dialled", |s| {
                    pending.iter().any(|p| is_hello_from(s, p))
                })
                .await?;
            if let Seen::Response(p, _) = seen {
                pending.remove(&p);
            }
        }
        Ok(())
    }

    /// Waits until every one of `nodes` closed its connection.
    async fn wait_disconnected(&mut self, nodes: &[&Node]) -> Result {
        let mut pending: HashSet<PeerId> = nodes.iter().map(|n| n.peer_id).collect();
        while !pending.is_empty() {
            let seen = self
                .wait(
                    "disconnection by every node",
                    |s| matches!(s, Seen::Disconnected(p) if pending.contains(p)),
                )
                .await?;
            if let Seen::Disconnected(p) = seen {
                pending.remove(&p);
            }
        }
        Ok(())
    }

    /// Publishes `bytes` on `topic` once every node in `to` is known to be subscribed.
    async fn gossip(&self, topic: &TopicHash, to: &[&Node], bytes: Vec<u8>) -> Result {
        let peers: Vec<PeerId> = to.iter().map(|n| n.peer_id).collect();
        self.peer.wait_subscribed(topic, &peers).await?;
        self.peer.publish(topic.clone(), bytes).await
    }

    /// Writes `bytes` on a raw stream to `to` and waits until the stream ended.
    async fn raw(
        &mut self,
        to: &Node,
        protocol: RawProtocol,
        bytes: Vec<u8>,
    ) -> Result<std::result::Result<usize, String>> {
        let target = to.peer_id;
        self.peer.raw(target, protocol, bytes).await?;
        match self
            .wait(
                &format!("the end of a raw {protocol:?} stream"),
                |s| matches!(s, Seen::Raw(p, pr, _) if *p == target && *pr == protocol),
            )
            .await?
        {
            Seen::Raw(_, _, outcome) => Ok(outcome),
            other => bail!("unexpected {other:?}"),
        }
    }

    /// Sends a request and waits for the node's decoded response.
    async fn ask(&mut self, to: &Node, frame: Vec<u8>) -> Result<wire::Response> {
        let target = to.peer_id;
        self.peer.request(target, frame).await?;
        let seen = self
            .wait("a response", |s| {
                matches!(s, Seen::Response(p, b) if *p == target
                    && !matches!(wire::Response::decode(b), Ok(wire::Response::Hello(_))))
            })
            .await?;
        match seen {
            Seen::Response(_, b) => Ok(wire::Response::decode(&b)?),
            other => bail!("unexpected {other:?}"),
        }
    }

    /// One of its own alerts, encrypted under its sender key and signed with its key.
    fn alert(&self, draft: Draft, text: &str) -> Result<SignedEnvelope> {
        Ok(SignedEnvelope::seal_encrypted(
            &self.me.key,
            &draft,
            &self.key,
            text.as_bytes(),
            &mut OsRng,
        )?)
    }
}

/// An alert draft under charter version 1, stamped now.
fn draft(net: &Harness, topic: &str, seq: u64, prev: EnvelopeId) -> Draft {
    Draft {
        network_id: net_id(net),
        topic_id: topic_id(net, topic),
        seq,
        prev,
        charter_version: 1,
        timestamp_ms: now(),
        kind: Kind::Alert,
        key_epoch: 1,
        tlp: Tlp::Green,
    }
}

fn random_bytes(len: usize) -> Vec<u8> {
    let mut b = vec![0u8; len];
    OsRng.fill_bytes(&mut b);
    b
}

/// Re-signs envelope bytes (whatever their header says) with `key`.
fn resign(mut bytes: Vec<u8>, key: &NodeKey) -> Vec<u8> {
    let body = bytes.len() - 64;
    let sig = key.sign(tags::ENVELOPE, &bytes[..body]);
    bytes[body..].copy_from_slice(&sig);
    bytes
}

/// Byte offsets of header fields (PROTOCOL.md §8.1).
mod offset {
    pub const AUTHOR: std::ops::Range<usize> = 65..97;
    pub const TIMESTAMP: usize = 145;
    pub const KIND: std::ops::Range<usize> = 153..157;
    pub const TLP: usize = 165;
}

fn varint(mut n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// A varint-length-prefixed frame (gossipsub, Kademlia, identify).
fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = varint(body.len() as u64);
    out.extend_from_slice(body);
    out
}

/// A protobuf body of `depth` nested groups of an unknown field (15): decoders that
/// skip unknown fields recurse once per level.
fn nested_groups(depth: usize) -> Vec<u8> {
    let mut body = vec![0x7b; depth]; // field 15, wire type 3 (start group)
    body.extend(std::iter::repeat_n(0x7c, depth)); // field 15, wire type 4 (end group)
    body
}

// ---------------------------------------------------------------------------------------
// Governance
// ---------------------------------------------------------------------------------------

/// The next charter from node 0's view of history, signed by the given orgs.
fn next_charter(net: &Harness, p: &Proposal, signers: &[&str]) -> Result<SignedCharter> {
    let history = History::from_data_dir(&data_dir(net.nodes()[0]))?;
    let next = proposal::propose(&net.network().genesis, &history, p, now())?;
    let mut signed = SignedCharter::unsigned(next);
    for s in signers {
        let o = &net.network().orgs[org_index(net, s)?];
        signed.sign(&o.member.org_id, &o.root);
    }
    Ok(signed)
}

/// Hands `charter` to node 0 and waits until every node adopted it.
async fn adopt_everywhere(net: &Harness, charter: &SignedCharter) -> Result {
    let version = net.nodes()[0]
        .node
        .core
        .submit_charter(charter.as_bytes().to_vec())
        .await?
        .map_err(|e| anyhow::anyhow!("charter refused: {e}"))?;
    for n in net.nodes() {
        wait_for(&format!("{} to adopt version {version}", n.org), || async {
            n.node
                .core
                .status()
                .await
                .is_ok_and(|s| s.charter_version == version)
        })
        .await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// 1. Outsiders
// ---------------------------------------------------------------------------------------

/// A gossipsub RPC frame that subscribes to `topic` and publishes `data` on it, written by
/// hand so that it reaches a node that never told the outsider it subscribes anywhere.
fn gossip_publish_frame(topic: &TopicHash, data: &[u8]) -> Vec<u8> {
    let t = topic.as_str().as_bytes();
    let mut sub = vec![0x08, 0x01, 0x12]; // subscribe: true; topic_id
    sub.extend(varint(t.len() as u64));
    sub.extend_from_slice(t);
    let mut msg = vec![0x12]; // data
    msg.extend(varint(data.len() as u64));
    msg.extend_from_slice(data);
    msg.push(0x22); // topic
    msg.extend(varint(t.len() as u64));
    msg.extend_from_slice(t);
    let mut rpc = vec![0x0a]; // subscriptions
    rpc.extend(varint(sub.len() as u64));
    rpc.extend(sub);
    rpc.push(0x12); // publish
    rpc.extend(varint(msg.len() as u64));
    rpc.extend(msg);
    frame(&rpc)
}

/// A Kademlia FIND_NODE request for `key`.
fn kad_find_node_frame(key: &[u8]) -> Vec<u8> {
    let mut body = vec![0x08, 0x04, 0x12]; // type: FIND_NODE; key
    body.extend(varint(key.len() as u64));
    body.extend_from_slice(key);
    frame(&body)
}

/// An outsider that shows no certificate connects to a node **while alerts are being
/// published**, and in its admission window tries everything: it subscribes and
/// publishes a well-formed envelope on a raw gossipsub stream, asks for history, for the
/// node's directory and for Kademlia routing. The node's gossipsub and Kademlia stay
/// closed to it: it receives **zero gossip frames** (the node never opens a gossipsub
/// stream to it: no subscription list, GRAFT, IHAVE or message), nothing it wrote is
/// processed (no verdict anywhere, stored nowhere), history and directory are refused,
/// Kademlia answers nothing, and it is disconnected and counted as refused. Honest alerts
/// reach every reader throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outsider_receives_no_gossip_and_nothing_it_sends_is_processed() -> Result {
    let net = Builder::from_plan(flat_plan(3, &[ALL]))
        .seed(101)
        .start()
        .await?;
    let target = net.nodes()[0];
    let stranger_root = alertmesh_protocol::OrgRootKey::generate(&mut OsRng);
    // No hello: it stays connected for the whole admission window.
    let mut outsider = Rogue::start(identity(&net, "org-1", &stranger_root, 1), None, None)?;
    let all = gossip_topic(&net, ALL);

    // Alerts are being published from before the outsider connects until it is gone.
    let publishing = {
        let cores: Vec<_> = net.nodes().iter().map(|n| n.node.core.clone()).collect();
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..40u32 {
                let core = &cores[i as usize % cores.len()];
                let receipt = core
                    .publish(
                        ALL.into(),
                        Tlp::Green,
                        alertmesh_sim::samples::sample_alert(&format!(
                            "during the outsider's visit {i}"
                        )),
                    )
                    .await??;
                ids.push(receipt.id);
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
            anyhow::Ok(ids)
        })
    };
    outsider.dial(&[target.node]).await?;
    outsider
        .wait(
            "the connection",
            |s| matches!(s, Seen::Connected(p) if *p == target.node.peer_id),
        )
        .await?;

    // Everything at once: the admission window is 5 s and gated streams are never read.
    let env = outsider.alert(draft(&net, ALL, 1, EnvelopeId::default()), "from nowhere")?;
    let target_id = target.node.peer_id;
    outsider
        .peer
        .raw(
            target_id,
            RawProtocol::Gossip,
            gossip_publish_frame(&all, env.as_bytes()),
        )
        .await?;
    outsider
        .peer
        .raw(
            target_id,
            RawProtocol::Kad,
            kad_find_node_frame(&net.nodes()[1].node.peer_id.to_bytes()),
        )
        .await?;
    let history = outsider
        .ask(target.node, sync_request(topic_id(&net, ALL)))
        .await?;
    ensure!(
        matches!(history, wire::Response::Refused(_)),
        "an outsider got history: {history:?}"
    );
    // Held until the node has judged the outsider: it is refused.
    let directory = outsider
        .ask(target.node, wire::Request::Directory.encode())
        .await?;
    ensure!(
        matches!(directory, wire::Response::Refused(_)),
        "an outsider got the directory: {directory:?}"
    );
    outsider.wait_disconnected(&[target.node]).await?;
    let ids = publishing.await??;
    ensure!(target.node.metrics.refused_peers.get() >= 1);

    ensure!(
        outsider.peer.gossip_streams_from(&target.node.peer_id) == 0,
        "the node opened a gossipsub stream to an outsider"
    );
    let seen = outsider.everything();
    let gossip: Vec<_> = seen
        .iter()
        .filter(|s| matches!(s, Seen::Gossip(..)))
        .collect();
    ensure!(gossip.is_empty(), "an outsider received gossip: {gossip:?}");
    let routing: Vec<_> = seen
        .iter()
        .filter(|s| matches!(s, Seen::Raw(_, RawProtocol::Kad, Ok(n)) if *n > 0))
        .collect();
    ensure!(
        routing.is_empty(),
        "Kademlia answered an outsider: {routing:?}"
    );

    // Honest alerts flowed meanwhile; the outsider's envelope was never even judged.
    for n in net.nodes() {
        for id in &ids {
            wait_for(&format!("{} to hold every honest alert", n.org), || async {
                has_alert(n, id)
            })
            .await?;
        }
        for (verdict, reason) in [("reject", "unadmitted_peer"), ("ignore", "unknown_author")] {
            ensure!(
                verdict_count(n.node, verdict, reason) == 0,
                "{} judged the outsider's envelope ({verdict}/{reason})",
                n.org
            );
        }
    }
    assert_stored_nowhere(&net, &[env.id()], "the outsider's envelope")?;
    ensure!(target.node.core.status().await?.admitted_peers == net.nodes().len() - 1);
    net.shutdown().await;
    Ok(())
}

/// An outsider learns nothing beyond the node's own certificate: the node's hello names
/// the node alone (no other certificate, no charter), and a certificate of an org the
/// charter does not name gets `Refused` once the admission window closes, never a
/// directory. The node's refusal reaches it before the connection is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outsider_learns_nothing_but_the_nodes_own_certificate() -> Result {
    let net = Builder::from_plan(flat_plan(3, &[ALL]))
        .seed(111)
        .start()
        .await?;
    let target = net.nodes()[0].node;
    let stranger_root = alertmesh_protocol::OrgRootKey::generate(&mut OsRng);
    let me = identity(&net, "no-such-org", &stranger_root, 2);
    let hello = hello_with(me.cert.as_bytes());
    let mut outsider = Rogue::start(me, Some(hello), None)?;
    outsider.dial(&[target]).await?;
    let seen = outsider
        .wait("the node's hello", |s| {
            matches!(s, Seen::Request(p, b) if *p == target.peer_id
                && matches!(wire::Request::decode(b), Ok(wire::Request::Hello(_))))
        })
        .await?;
    let Seen::Request(_, frame) = seen else {
        bail!("unexpected {seen:?}");
    };
    let Ok(wire::Request::Hello(theirs)) = wire::Request::decode(&frame) else {
        bail!("not a hello");
    };
    let own = net.network().orgs[0].nodes[0].cert.as_bytes();
    ensure!(
        theirs.cert == own,
        "the node's hello is not its own certificate"
    );
    // An org unknown to the charter may be one a newer charter adds: the node asks the
    // outsider for its directory rather than refusing at once, and shows its own in
    // return only once it admitted the outsider, which it never does.
    let directory = outsider
        .ask(target, wire::Request::Directory.encode())
        .await?;
    ensure!(
        matches!(directory, wire::Response::Refused(_)),
        "an outsider got the directory: {directory:?}"
    );
    outsider.wait_disconnected(&[target]).await?;
    let learned: Vec<Seen> = outsider
        .everything()
        .into_iter()
        .filter(|s| match s {
            Seen::Response(_, b) => !matches!(
                wire::Response::decode(b),
                Ok(wire::Response::Refused(_) | wire::Response::Hello(_))
            ),
            Seen::Gossip(..) => true,
            _ => false,
        })
        .collect();
    ensure!(learned.is_empty(), "an outsider learned more: {learned:?}");
    ensure!(outsider.peer.gossip_streams_from(&target.peer_id) == 0);
    net.shutdown().await;
    Ok(())
}

/// A certificate signed by a stranger's root for a member org is refused at the hello:
/// the outsider's hello is answered `Refused(reason)` (it learns why), then the node
/// closes the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_certificate_is_told_refused_then_disconnected() -> Result {
    let net = Builder::from_plan(flat_plan(3, &[ALL]))
        .seed(112)
        .start()
        .await?;
    let target = net.nodes()[0].node;
    let stranger_root = alertmesh_protocol::OrgRootKey::generate(&mut OsRng);
    let me = identity(&net, "org-1", &stranger_root, 3);
    let hello = hello_with(me.cert.as_bytes());
    let mut outsider = Rogue::start(me, Some(hello), None)?;
    outsider.dial(&[target]).await?;
    let answer = outsider
        .wait(
            "the node's answer to our hello",
            |s| matches!(s, Seen::Response(p, _) if *p == target.peer_id),
        )
        .await?;
    let Seen::Response(_, bytes) = answer else {
        bail!("unexpected {answer:?}");
    };
    let reason = match wire::Response::decode(&bytes)? {
        wire::Response::Refused(reason) => reason,
        other => bail!("a bad certificate was answered {other:?}"),
    };
    ensure!(reason.contains("signature"), "unhelpful reason {reason:?}");
    outsider.wait_disconnected(&[target]).await?;
    ensure!(target.metrics.refused_peers.get() >= 1);
    net.shutdown().await;
    Ok(())
}

/// An admitted member floods a node with sync requests (and hellos): beyond its per-peer
/// budget it is answered `Busy` with a wait, the node counts the throttled requests, and
/// honest alerts keep reaching every reader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_flood_is_answered_busy_and_counted() -> Result {
    let net = Builder::from_plan(flat_plan(3, &[ALL]))
        .seed(113)
        .start()
        .await?;
    let target = net.nodes()[0];
    let mut rogue = Rogue::member(&net, "org-1", 80, None)?;
    rogue.join(&[target.node]).await?;
    let mut honest = Honest::default();
    // Batches small enough for request-response's concurrent-stream limit, sent faster
    // than the budget refills.
    const BATCH: usize = 50;
    const FLOOD: usize = 4 * BATCH;
    let hello = wire::Request::Hello(hello_with(rogue.me.cert.as_bytes())).encode();
    let mut busy = 0;
    for batch in 0..FLOOD / BATCH {
        for i in 0..BATCH {
            let frame = if i % 10 == 0 {
                hello.clone()
            } else {
                sync_request(topic_id(&net, ALL))
            };
            rogue.peer.request(target.node.peer_id, frame).await?;
        }
        if batch == 0 {
            honest
                .publish(&net, "org-0", ALL, "while a member floods requests")
                .await?;
        }
        let mut answered = 0;
        while answered < BATCH {
            let seen = rogue
                .wait(
                    "an answer to every flooded request",
                    |s| matches!(s, Seen::Response(p, _) if *p == target.node.peer_id),
                )
                .await?;
            if let Seen::Response(_, b) = seen {
                answered += 1;
                if let Ok(wire::Response::Busy { retry_after_ms }) = wire::Response::decode(&b) {
                    ensure!(retry_after_ms >= 1, "Busy without a wait");
                    busy += 1;
                }
            }
        }
    }
    ensure!(busy > 0, "{FLOOD} requests at once were all served");
    ensure!(
        target.node.metrics.throttled_requests.get() >= busy,
        "throttled requests not counted"
    );
    honest.delivered(&net).await?;
    net.shutdown().await;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// 2. Members that forge or exceed their rights
// ---------------------------------------------------------------------------------------

/// Modified nodes of a member platform (valid certificates, admitted) send envelopes
/// that break the charter or the signature rules; each variant has its own rogue, since
/// two rejections already graylist a peer:
///
/// - on a topic its org may not publish (`not_publisher` at the agencies that read it)
///   and above the topic's TLP (`tlp_too_high` everywhere);
/// - a header naming another node (plat-a) as author, signed with the rogue's key;
/// - a validly signed envelope whose header was altered after signing (TLP raised);
/// - an honest plat-a envelope with an altered header, re-signed with the rogue's key.
///
/// The last three are `bad_signature` at every node and lower the sender's gossipsub
/// score below zero; no node stores any of them; honest alerts reach every reader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_forging_or_exceeding_its_rights_is_rejected_everywhere() -> Result {
    let net = Builder::from_plan(acl_plan().clone())
        .seed(102)
        .start()
        .await?;
    let everyone = nodes(&net);
    let agencies = [net.node("agency-a")?, net.node("agency-b")?];
    let (all, agency) = (gossip_topic(&net, ALL), gossip_topic(&net, AGENCY));
    let mut honest = Honest::default();
    let genuine = honest
        .publish(&net, "plat-a", ALL, "genuine plat-a alert")
        .await?;
    honest.delivered(&net).await?;

    // Beyond its rights.
    let mut overreach = Rogue::member(&net, "plat-b", 70, None)?;
    overreach.join(&everyone).await?;
    let not_publisher =
        overreach.alert(draft(&net, AGENCY, 1, EnvelopeId::default()), "not mine")?;
    let too_high = overreach.alert(
        Draft {
            tlp: Tlp::Red,
            ..draft(&net, ALL, 1, EnvelopeId::default())
        },
        "marked above the topic's maximum",
    )?;
    overreach
        .gossip(&agency, &agencies, not_publisher.as_bytes().to_vec())
        .await?;
    overreach
        .gossip(&all, &everyone, too_high.as_bytes().to_vec())
        .await?;
    honest
        .publish(&net, "agency-a", AGENCY, "agency alert during forgeries")
        .await?;

    // Forged signatures.
    let plat_a = net.network().orgs[org_index(&net, "plat-a")?].nodes[0]
        .key
        .public();
    let mut forgers = Vec::new();
    for serial in 71..74 {
        let mut r = Rogue::member(&net, "plat-b", serial, None)?;
        r.join(&everyone).await?;
        forgers.push(r);
    }
    let mut forged_author = forgers[0]
        .alert(
            draft(&net, ALL, 1, EnvelopeId::default()),
            "claims to be plat-a",
        )?
        .into_bytes();
    forged_author[offset::AUTHOR].copy_from_slice(plat_a.as_bytes());
    let forged_author = resign(forged_author, &forgers[0].me.key);
    let mut altered = forgers[1]
        .alert(
            draft(&net, ALL, 1, EnvelopeId::default()),
            "TLP raised after signing",
        )?
        .into_bytes();
    ensure!(altered[offset::TLP] == 1, "the draft is GREEN");
    altered[offset::TLP] = 2; // AMBER
    let mut resigned = envelope_bytes(net.view("plat-a")?, &genuine)?;
    resigned[offset::TIMESTAMP] ^= 0x01;
    let resigned = resign(resigned, &forgers[2].me.key);
    let forged = [forged_author, altered, resigned];
    for (rogue, bytes) in forgers.iter().zip(&forged) {
        rogue.gossip(&all, &everyone, bytes.clone()).await?;
    }
    honest
        .publish(&net, "plat-b", TIPS, "platform tip during forgeries")
        .await?;
    honest
        .publish(&net, "agency-b", ALL, "agency-b alert during forgeries")
        .await?;

    for n in net.nodes() {
        wait_verdict(n, "reject", "tlp_too_high", 1).await?;
        wait_verdict(n, "reject", "bad_signature", 3).await?;
        if n.org.starts_with("agency") {
            wait_verdict(n, "reject", "not_publisher", 1).await?;
        }
    }
    let on_all: Vec<NodeView<'_>> = net.nodes();
    for rogue in &forgers {
        wait_score(&on_all, &rogue.peer.peer_id, "scored below zero", |p| {
            p.score.is_some_and(|s| s < 0.0)
        })
        .await?;
    }
    honest.delivered(&net).await?;
    let mut bad: Vec<EnvelopeId> = forged.iter().map(|b| id_of(b)).collect();
    bad.extend([not_publisher.id(), too_high.id()]);
    assert_stored_nowhere(&net, &bad, "a forged or unauthorized envelope")?;
    for n in net.nodes() {
        ensure!(
            stored(n, &genuine)? == 1,
            "{}: the genuine envelope is intact",
            n.org
        );
    }
    net.shutdown().await;
    Ok(())
}

/// Certificates that do not belong to the presenting peer or its org:
///
/// - a certificate naming `agency-a`, issued (with a valid proof of possession) by
///   `plat-b`'s root key: refused at the hello, disconnected by every node;
/// - `agency-b`'s genuine node certificate presented by a peer with another key:
///   refused, disconnected;
/// - an admitted `plat-b` node announcing, on the control topic, a second certificate
///   for its own key that names `agency-a` and is signed by `plat-b`'s root: `bad_cert`
///   everywhere and not learned — its next envelope on the agencies' topic is still
///   judged as `plat-b`'s (`not_publisher`, not `ambiguous_author` nor accepted).
///
/// Honest alerts reach every reader meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_of_another_org_are_refused() -> Result {
    let net = Builder::from_plan(acl_plan().clone())
        .seed(103)
        .start()
        .await?;
    let everyone = nodes(&net);
    let agencies = [net.node("agency-a")?, net.node("agency-b")?];
    let plat_b_root = &net.network().orgs[org_index(&net, "plat-b")?].root;
    let mut honest = Honest::default();

    let foreign_root = identity(&net, "agency-a", plat_b_root, 90);
    let hello = hello_with(foreign_root.cert.as_bytes());
    let mut wrong_root = Rogue::start(foreign_root, Some(hello), None)?;
    let stolen = &net.network().orgs[org_index(&net, "agency-b")?].nodes[0].cert;
    let mut wrong_key = Rogue::start(
        identity(&net, "agency-b", plat_b_root, 91),
        Some(hello_with(stolen.as_bytes())),
        None,
    )?;
    for impostor in [&mut wrong_root, &mut wrong_key] {
        impostor.dial(&everyone).await?;
        impostor.wait_disconnected(&everyone).await?;
        ensure!(
            !impostor
                .everything()
                .iter()
                .any(|s| everyone.iter().any(|n| is_hello_from(s, &n.peer_id))),
            "an impostor was admitted"
        );
    }
    honest
        .publish(&net, "agency-b", AGENCY, "while impostors knock")
        .await?;

    let mut rogue = Rogue::member(&net, "plat-b", 92, None)?;
    rogue.join(&everyone).await?;
    let claim = NodeCert {
        network_id: net_id(&net),
        org_id: org("agency-a"),
        node_sign_pub: rogue.author(),
        node_agree_pub: rogue.me.agreement.public(),
        not_before_ms: now() - 1000,
        not_after_ms: now() + 3_600_000,
        serial: 93,
    };
    let forged_cert = SignedNodeCert::issue_with_node_key(plat_b_root, &rogue.me.key, claim)?;
    rogue
        .gossip(
            &gossip_topic(&net, CONTROL),
            &everyone,
            ControlMessage::Cert(forged_cert.as_bytes().to_vec()).encode(),
        )
        .await?;
    for n in net.nodes() {
        wait_verdict(n, "reject", "bad_cert", 1).await?;
    }
    let as_agency = rogue.alert(draft(&net, AGENCY, 1, EnvelopeId::default()), "as agency-a")?;
    rogue
        .gossip(
            &gossip_topic(&net, AGENCY),
            &agencies,
            as_agency.as_bytes().to_vec(),
        )
        .await?;
    honest
        .publish(&net, "plat-a", ALL, "after a forged certificate")
        .await?;

    for n in net.nodes() {
        ensure!(
            n.node.metrics.refused_peers.get() >= 2,
            "{} refused both impostors",
            n.org
        );
        ensure!(
            n.node.core.status().await?.admitted_peers == net.nodes().len(),
            "{}: only the members' nodes and the rogue are admitted",
            n.org
        );
        if n.org.starts_with("agency") {
            wait_verdict(n, "reject", "not_publisher", 1).await?;
            ensure!(verdict_count(n.node, "reject", "ambiguous_author") == 0);
        }
    }
    honest.delivered(&net).await?;
    assert_stored_nowhere(&net, &[as_agency.id()], "the rogue's envelope")?;
    net.shutdown().await;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// 3. A member that subscribes where it may not read
// ---------------------------------------------------------------------------------------

/// A second `plat-b` node subscribes to the agencies-only topic. Every node scores it
/// below the graylist threshold (−80) and prunes it from every mesh; it is refused the
/// topic's history; it obtains genuine sender keys for `all` (which its org reads) and
/// tries them, and its agreement key, on everything of the agencies' topic it received and
/// on that topic's stored ciphertext and key packages: nothing opens. Honest alerts on both
/// topics reach their readers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_reader_subscriber_is_scored_down_and_holds_only_ciphertext_it_cannot_open() -> Result {
    let net = Builder::from_plan(acl_plan().clone())
        .seed(104)
        .start()
        .await?;
    let everyone = nodes(&net);
    let network = net_id(&net);
    let (agency_topic, all_topic) = (topic_id(&net, AGENCY), topic_id(&net, ALL));
    let mut spy = Rogue::member(&net, "plat-b", 80, None)?;
    spy.peer
        .subscribe(gossip_topic(&net, AGENCY).to_string())
        .await?;
    spy.peer
        .subscribe(gossip_topic(&net, ALL).to_string())
        .await?;
    spy.join(&everyone).await?;
    let mut honest = Honest::default();
    honest
        .publish(&net, "agency-a", AGENCY, "agency lead")
        .await?;

    let on_all: Vec<NodeView<'_>> = net.nodes();
    wait_score(
        &on_all,
        &spy.peer.peer_id,
        "graylisted and out of every mesh",
        |p| p.score.is_some_and(|s| s < -80.0) && p.mesh_topics == 0,
    )
    .await?;
    honest
        .publish(&net, "agency-b", AGENCY, "agency follow-up")
        .await?;
    honest.publish(&net, "plat-a", ALL, "for everyone").await?;

    let agency_a = net.node("agency-a")?;
    let answer = spy.ask(agency_a, sync_request(agency_topic)).await?;
    ensure!(
        matches!(answer, wire::Response::Refused(_)),
        "a non-reader got the agencies' history: {answer:?}"
    );

    // Its genuine keys: every honest node re-seals its `all` key to it once it knows it.
    let mut keys: HashMap<NodePublicKey, Vec<SenderKey>> = HashMap::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while keys.len() < net.nodes().len() {
        ensure!(
            tokio::time::Instant::now() < deadline,
            "the spy never got the `all` keys of every node"
        );
        if let wire::Response::Sync(page) = spy.ask(agency_a, sync_request(all_topic)).await? {
            for bytes in &page.envelopes {
                let env = SignedEnvelope::decode(bytes, MAX_ENVELOPE)?;
                if env.header().kind != Kind::KeyPackage {
                    continue;
                }
                let pkg = KeyPackage::decode(env.payload())?;
                if let Ok(k) = pkg.open(&network, &env.header().author, &spy.me.agreement) {
                    keys.entry(env.header().author).or_default().push(k);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await; // poll interval
    }
    honest.delivered(&net).await?;

    // Everything of the agencies' topic it could hold: what it received, and (as if it
    // leaked) what an agency stores.
    let mut closed = Vec::new();
    for seen in spy.everything() {
        if let Seen::Gossip(t, data) = seen {
            if t == gossip_topic(&net, AGENCY) {
                closed.push(SignedEnvelope::decode(&data, MAX_ENVELOPE)?);
            }
        }
    }
    let received: Vec<&str> = closed.iter().map(|e| e.header().kind.as_str()).collect();
    closed.extend(envelopes_on(net.view("agency-b")?, &agency_topic)?);
    let (mut alerts, mut packages) = (0, 0);
    for env in &closed {
        match env.header().kind {
            Kind::KeyPackage => {
                packages += 1;
                let pkg = KeyPackage::decode(env.payload())?;
                ensure!(
                    pkg.open(&network, &env.header().author, &spy.me.agreement)
                        .is_err(),
                    "the spy opened an agency sender key"
                );
            }
            kind if kind.is_encrypted() => {
                alerts += 1;
                for key in keys.values().flatten() {
                    let guess = SenderKey::from_bytes(env.header().key_epoch, &key.secret_bytes());
                    ensure!(
                        env.open(&guess).is_err(),
                        "an `all` key opened an agency alert"
                    );
                }
            }
            _ => {}
        }
    }
    ensure!(
        alerts >= 2 && packages >= 2,
        "agency ciphertext to try: {alerts} alerts, {packages} key packages"
    );
    eprintln!(
        "spy: received on the agencies' topic {received:?}; holds {} `all` keys; nothing opened",
        keys.values().map(Vec::len).sum::<usize>()
    );
    net.shutdown().await;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// 4. Replays and envelopes from the future
// ---------------------------------------------------------------------------------------

/// History published while `org-0`'s node was alone (so no gossipsub ever saw it) reaches
/// the others through sync. A member then replays it twice: in its answers to the nodes'
/// sync requests, and on gossip. Every copy is counted `ignore/duplicate` by every node and
/// stored once. Envelopes stamped an hour ahead, in the sync page and on gossip, are
/// `reject/from_future` everywhere and stored nowhere. Honest alerts reach every org.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_are_ignored_and_future_envelopes_rejected_in_gossip_and_sync() -> Result {
    const OLD: usize = 4;
    let (mut net, later) = Builder::from_plan(flat_plan(3, &[ALL]))
        .seed(105)
        .start_some(1)
        .await?;
    let mut history = Honest::default();
    for i in 0..OLD {
        history
            .publish(&net, "org-0", ALL, &format!("history {i}"))
            .await?;
    }
    for name in &later {
        net.restart(name).await?;
    }
    history.delivered(&net).await?;
    let old: Vec<Vec<u8>> = history
        .0
        .iter()
        .map(|(id, _, _)| envelope_bytes(net.nodes()[0], id))
        .collect::<Result<_>>()?;

    let all = topic_id(&net, ALL);
    let mut rogue = Rogue::member(&net, "org-1", 40, None)?;
    let ahead = |seq: u64, text: &str| {
        rogue.alert(
            Draft {
                timestamp_ms: now() + 3_600_000,
                ..draft(&net, ALL, seq, EnvelopeId::default())
            },
            text,
        )
    };
    let (future_gossip, future_sync) = (
        ahead(1, "from the future (gossip)")?,
        ahead(1, "from the future (sync)")?,
    );
    let mut served = old.clone();
    served.push(future_sync.as_bytes().to_vec());
    rogue
        .peer
        .set_responder(serving(
            hello_with(rogue.me.cert.as_bytes()),
            all,
            sync_page(all, vec![], served, true),
        ))
        .await?;
    let before: Vec<(u64, u64)> = net
        .nodes()
        .iter()
        .map(|n| {
            (
                verdict_count(n.node, "ignore", "duplicate"),
                verdict_count(n.node, "reject", "from_future"),
            )
        })
        .collect();

    // In sync: every node asks the newly admitted member for history.
    let everyone = nodes(&net);
    rogue.join(&everyone).await?;
    let mut honest = Honest::default();
    honest.publish(&net, "org-2", ALL, "during replays").await?;
    for (n, (dup, fut)) in net.nodes().into_iter().zip(&before) {
        wait_verdict(n, "ignore", "duplicate", dup + OLD as u64).await?;
        wait_verdict(n, "reject", "from_future", fut + 1).await?;
    }
    // On gossip.
    let gossip = gossip_topic(&net, ALL);
    for bytes in &old {
        rogue.gossip(&gossip, &everyone, bytes.clone()).await?;
    }
    rogue
        .gossip(&gossip, &everyone, future_gossip.as_bytes().to_vec())
        .await?;
    honest.publish(&net, "org-1", ALL, "after replays").await?;
    for (n, (dup, fut)) in net.nodes().into_iter().zip(&before) {
        wait_verdict(n, "ignore", "duplicate", dup + 2 * OLD as u64).await?;
        wait_verdict(n, "reject", "from_future", fut + 2).await?;
    }
    honest.delivered(&net).await?;
    for n in net.nodes() {
        for bytes in &old {
            ensure!(
                stored(n, &id_of(bytes))? == 1,
                "{} holds a replay twice",
                n.org
            );
        }
        ensure!(
            stored_by(n, &rogue.author())? == 0,
            "{} stored a future envelope",
            n.org
        );
    }
    net.shutdown().await;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// 5. Equivocation
// ---------------------------------------------------------------------------------------

/// A member shows two versions of its seq 1 to two different nodes at the same time
/// (two hostile peers with one key: one connected to node 0, one to node 2; node 1 never
/// meets it). Every honest node ends with the equivocation proven: status and metrics
/// count one evidence object, and the stored evidence verifies and holds both envelopes.
/// Nodes 0 and 2 each keep exactly one version in their envelopes table, node 1 at most
/// one. Honest alerts reach every org.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_view_equivocation_is_proven_to_every_honest_node() -> Result {
    let net = Builder::from_plan(flat_plan(3, &[ALL]))
        .seed(106)
        .start()
        .await?;
    let root = &net.network().orgs[1].root;
    let me = identity(&net, "org-1", root, 60);
    let hello = hello_with(me.cert.as_bytes());
    let mut left = Rogue::start(copy_identity(&me), Some(hello.clone()), None)?;
    let mut right = Rogue::start(me, Some(hello), None)?;
    let (first, last) = (net.nodes()[0].node, net.nodes()[2].node);
    left.join(&[first]).await?;
    right.join(&[last]).await?;
    let a = left.alert(draft(&net, ALL, 1, EnvelopeId::default()), "one story")?;
    let b = right.alert(draft(&net, ALL, 1, EnvelopeId::default()), "another story")?;
    let all = gossip_topic(&net, ALL);
    for (rogue, node) in [(&left, first), (&right, last)] {
        rogue.peer.wait_subscribed(&all, &[node.peer_id]).await?;
    }
    let (sent_a, sent_b) = tokio::join!(
        left.peer.publish(all.clone(), a.as_bytes().to_vec()),
        right.peer.publish(all.clone(), b.as_bytes().to_vec()),
    );
    sent_a?;
    sent_b?;
    let mut honest = Honest::default();
    honest
        .publish(&net, "org-1", ALL, "during equivocation")
        .await?;

    let mut ids = [a.id(), b.id()];
    ids.sort();
    for n in net.nodes() {
        wait_for(&format!("{} to hold the evidence", n.org), || async {
            n.node.core.status().await.is_ok_and(|s| s.evidence == 1)
        })
        .await?;
        ensure!(
            n.node.metrics.evidence.get() == 1,
            "{}: evidence metric",
            n.org
        );
        // Status counts the evidence as soon as it is checked; the row follows.
        wait_for(&format!("{} to store the evidence", n.org), || async {
            evidence_rows(n).is_ok_and(|rows| !rows.is_empty())
        })
        .await?;
        let rows = evidence_rows(n)?;
        ensure!(rows.len() == 1, "{}: {} evidence rows", n.org, rows.len());
        let evidence = Evidence::decode(&rows[0], MAX_ENVELOPE)?;
        let proven = evidence.verify(MAX_ENVELOPE)?;
        ensure!(proven.misbehaviour == Misbehaviour::Equivocation);
        ensure!(proven.author == left.author() && proven.seq == 1);
        ensure!(
            proven.ids == (ids[0], ids[1]),
            "{}: both envelopes are the evidence",
            n.org
        );
        let kept = || stored(n, &a.id()).and_then(|x| Ok(x + stored(n, &b.id())?));
        if n.org == "org-1" {
            // It never met the equivocator: without its certificate it cannot attribute
            // the relayed versions (`unknown_author`) until anti-entropy brings one, but
            // the evidence proves the equivocation by signatures alone.
            ensure!(kept()? <= 1, "org-1 stores both versions");
        } else {
            // The evidence may overtake the envelope on the way to the store.
            wait_for(
                &format!("{} to store one of the two versions", n.org),
                || async { kept().is_ok_and(|k| k == 1) },
            )
            .await?;
        }
    }
    let detected: u64 = net
        .nodes()
        .iter()
        .map(|n| verdict_count(n.node, "reject", "equivocation"))
        .sum();
    ensure!(detected >= 1, "some node saw both versions itself");
    honest.delivered(&net).await?;
    net.shutdown().await;
    Ok(())
}

/// A certificate announced on the control topic reaches nodes beyond the announcer's
/// direct peers, although those already hold it from the announcer's hello: otherwise
/// nodes further away would ignore the member's envelopes as `unknown_author` until
/// anti-entropy brought the certificate (up to the sync period, 15 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_announcement_reaches_nodes_beyond_the_first_hop() -> Result {
    let net = Builder::from_plan(flat_plan(3, &[ALL]))
        .seed(112)
        .start()
        .await?;
    let (first, far) = (net.nodes()[0].node, net.nodes()[1].node);
    let mut member = Rogue::member(&net, "org-2", 61, None)?;
    member.join(&[first]).await?;
    let known = far.core.status().await?.known_nodes;
    let announcement = ControlMessage::Cert(member.me.cert.as_bytes().to_vec()).encode();
    member
        .gossip(&gossip_topic(&net, CONTROL), &[first], announcement)
        .await?;
    wait_for("a node two hops away to learn the certificate", || async {
        far.core.status().await.is_ok_and(|s| s.known_nodes > known)
    })
    .await?;
    net.shutdown().await;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// 6. Malformed input
// ---------------------------------------------------------------------------------------

/// Node 0 is fed malformed input on every protocol it speaks, by admitted members:
///
/// - gossip (validated): garbage, a truncated envelope, an envelope over the size limit,
///   an unknown kind, a signed key package and a signed evidence envelope whose bincode
///   length fields claim 2^60 entries, a control message whose length claims 2^60 bytes;
///   and a 4 MiB gossip message (beyond gossipsub's transmit limit);
/// - raw streams: on the request protocol, u32 length prefixes of 4 GiB and of 4 MiB + 1
///   and a truncated frame; on gossipsub, Kademlia and identify push, varint lengths of
///   2^32, an overflowing varint, garbage and 100 000 / 7 000 / 1 500 nested protobuf groups;
/// - a framed sync request whose summary length claims 2^60 entries (the peer is refused).
///
/// Each validated case gets its typed reason; the node keeps serving (honest alerts flow
/// through it, its API status answers) and the process's resident memory grows by less
/// than 256 MiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_input_on_every_protocol_leaves_the_node_serving_in_bounded_memory() -> Result {
    let rss_before = rss_bytes()?;
    let net = Builder::from_plan(flat_plan(3, &[ALL]))
        .seed(107)
        .start()
        .await?;
    let target = net.nodes()[0];
    let at = [target.node];
    let (all, control) = (gossip_topic(&net, ALL), gossip_topic(&net, CONTROL));
    let mut honest = Honest::default();
    honest
        .publish(&net, "org-1", ALL, "before malformed input")
        .await?;

    // Gossip, two cases per member (two rejections graylist a peer).
    let mut rogues = Vec::new();
    for serial in 20..24 {
        let mut r = Rogue::member(&net, "org-1", serial, None)?;
        r.join(&at).await?;
        rogues.push(r);
    }
    let valid = rogues[0].alert(draft(&net, ALL, 1, EnvelopeId::default()), "template")?;
    let mut oversized = valid.as_bytes().to_vec();
    oversized.extend(random_bytes(300 * 1024));
    let mut unknown_kind = valid.as_bytes().to_vec();
    unknown_kind[offset::KIND].copy_from_slice(&99u32.to_le_bytes());
    let huge = (1u64 << 60).to_le_bytes();
    let mut package = topic_id(&net, ALL).as_bytes().to_vec();
    package.extend(1u64.to_le_bytes());
    package.extend(huge);
    package.extend(random_bytes(112));
    let package = SignedEnvelope::seal_clear(
        &rogues[2].me.key,
        &Draft {
            kind: Kind::KeyPackage,
            tlp: Tlp::Clear,
            ..draft(&net, ALL, 1, EnvelopeId::default())
        },
        &package,
    )?;
    let mut control_msg = 1u32.to_le_bytes().to_vec(); // ControlMessage::Cert
    control_msg.extend(huge);
    control_msg.extend(random_bytes(64));
    let mut evidence = huge.to_vec();
    evidence.extend(random_bytes(64));
    let evidence = SignedEnvelope::seal_clear(
        &rogues[3].me.key,
        &Draft {
            kind: Kind::Evidence,
            tlp: Tlp::Clear,
            key_epoch: 0,
            ..draft(&net, CONTROL, 1, EnvelopeId::default())
        },
        &evidence,
    )?;
    let cases: [[(&TopicHash, Vec<u8>); 2]; 4] = [
        [
            (&all, random_bytes(2048)),
            (&all, valid.as_bytes()[..150].to_vec()),
        ],
        [(&all, oversized), (&all, random_bytes(4 * 1024 * 1024))],
        [(&all, package.as_bytes().to_vec()), (&control, control_msg)],
        [
            (
                &control,
                ControlMessage::Envelope(evidence.as_bytes().to_vec()).encode(),
            ),
            (&all, unknown_kind),
        ],
    ];
    for (rogue, pair) in rogues.iter().zip(cases) {
        for (topic, bytes) in pair {
            rogue.gossip(topic, &at, bytes).await?;
        }
    }
    for (reason, count) in [
        ("malformed", 3),
        ("too_large", 1),
        ("bad_payload", 2),
        ("malformed_control", 1),
    ] {
        wait_verdict(target, "reject", reason, count).await?;
    }
    honest
        .publish(&net, "org-0", ALL, "after malformed gossip")
        .await?;

    // Raw streams: bytes written verbatim, then the stream is closed.
    let mut streamer = Rogue::member(&net, "org-2", 24, None)?;
    streamer.join(&at).await?;
    let gigabytes = varint(1 << 32);
    let with = |prefix: &[u8], tail: usize| {
        let mut b = prefix.to_vec();
        b.extend(random_bytes(tail));
        b
    };
    let raw_cases: Vec<(RawProtocol, Vec<u8>)> = vec![
        (RawProtocol::Req, with(&u32::MAX.to_le_bytes(), 16)),
        (
            RawProtocol::Req,
            with(&(MAX_FRAME_BYTES as u32 + 1).to_le_bytes(), 1024),
        ),
        (RawProtocol::Req, with(&1000u32.to_le_bytes(), 10)),
        (RawProtocol::Gossip, with(&gigabytes, 16)),
        (RawProtocol::Gossip, frame(&nested_groups(100_000))),
        (RawProtocol::Gossip, with(&[0xff; 10], 16)),
        (RawProtocol::Kad, with(&gigabytes, 16)),
        (RawProtocol::Kad, frame(&nested_groups(7_000))),
        (RawProtocol::Kad, frame(&random_bytes(200))),
        (RawProtocol::IdentifyPush, with(&gigabytes, 16)),
        (RawProtocol::IdentifyPush, frame(&nested_groups(1_500))),
        (RawProtocol::IdentifyPush, frame(&random_bytes(8 * 1024))),
    ];
    for (protocol, bytes) in raw_cases {
        let outcome = streamer.raw(target.node, protocol, bytes).await?;
        eprintln!("raw {protocol:?}: {outcome:?}");
    }
    honest
        .publish(&net, "org-2", ALL, "after raw streams")
        .await?;

    // A well-framed request whose bincode length field claims 2^60 summaries.
    let mut request = 1u32.to_le_bytes().to_vec(); // Request::Sync
    request.extend(topic_id(&net, ALL).as_bytes());
    request.extend(huge);
    request.extend(random_bytes(64));
    let refused_before = target.node.metrics.refused_peers.get();
    streamer.peer.request(target.node.peer_id, request).await?;
    streamer.wait_disconnected(&at).await?;
    ensure!(target.node.metrics.refused_peers.get() > refused_before);

    honest
        .publish(&net, "org-0", ALL, "after every malformed input")
        .await?;
    honest.delivered(&net).await?;
    assert_stored_nowhere(&net, &[package.id(), evidence.id()], "a malformed envelope")?;
    let client = alertmesh_node::client::Client::new(
        target.node.api_addr,
        zeroize::Zeroizing::new(TOKEN.to_string()),
    );
    let status: serde_json::Value =
        tokio::task::spawn_blocking(move || client.get("/v1/status")).await??;
    ensure!(
        status["peer_id"] == target.node.peer_id.to_string(),
        "status answers: {status}"
    );
    let growth = rss_bytes()?.saturating_sub(rss_before);
    eprintln!("resident memory grew by {} KiB", growth / 1024);
    ensure!(growth < MAX_RSS_GROWTH, "memory grew by {growth} bytes");
    net.shutdown().await;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// 7. Flooding
// ---------------------------------------------------------------------------------------

/// A member org (`flooder`, no honest node) is allowed 10 envelopes of burst and 60 per
/// minute. Its node, first grafted into every mesh, floods 400 validly signed alerts as
/// fast as it can (at least 100× the sustained rate). Every node accepts at most the
/// burst plus the refill since the flood began, counts the rest `ignore/rate_limited`,
/// scores the flooder below the graylist threshold and prunes it from its mesh. Honest
/// alerts, during and after the flood, reach every org; their delivery latencies are
/// printed (the latency comparison is a benchmark's job, not a test's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flooding_member_is_rate_limited_and_graylisted_while_honest_alerts_flow() -> Result {
    const FLOOD: u64 = 400;
    let limits = Limits {
        rate_per_org_per_minute: 60,
        rate_burst: 10,
        ..Limits::default()
    };
    let orgs = ["org-0", "org-1", "org-2", "flooder"];
    let flood_plan = plan(
        &[("org-0", 1), ("org-1", 1), ("org-2", 1), ("flooder", 0)],
        vec![topic_plan(ALL, &orgs, &orgs, Tlp::Red)],
        limits.clone(),
    );
    let net = Builder::from_plan(flood_plan.clone())
        .seed(108)
        .start()
        .await?;
    let everyone = nodes(&net);
    let on_all: Vec<NodeView<'_>> = net.nodes();
    let all = gossip_topic(&net, ALL);
    let mut flooder = Rogue::member(&net, "flooder", 1, None)?;
    flooder.join(&everyone).await?;
    let node_ids: Vec<PeerId> = everyone.iter().map(|n| n.peer_id).collect();
    flooder.peer.wait_subscribed(&all, &node_ids).await?;
    // Joining the topic now grafts every node at once.
    flooder.peer.subscribe(all.to_string()).await?;
    wait_score(&on_all, &flooder.peer.peer_id, "in the mesh", |p| {
        p.mesh_topics >= 1
    })
    .await?;

    let mut envelopes = Vec::new();
    let mut prev = EnvelopeId::default();
    for seq in 1..=FLOOD {
        let env = flooder.alert(draft(&net, ALL, seq, prev), &format!("flood {seq}"))?;
        prev = env.id();
        envelopes.push(env.into_bytes());
    }
    let started = Instant::now();
    let flood = async {
        // The hostile peer's own gossipsub may refuse some (full queues): counted.
        let mut refused = 0;
        for bytes in envelopes {
            if flooder.peer.publish(all.clone(), bytes).await.is_err() {
                refused += 1;
            }
        }
        (started.elapsed(), refused)
    };
    let honest_during = async {
        let mut latencies = Vec::new();
        for o in ["org-0", "org-1", "org-2"] {
            latencies.extend(timed_publish(&net, o, &format!("{o} during the flood")).await?);
        }
        Ok::<_, anyhow::Error>(latencies)
    };
    let ((flood_took, refused), during) = tokio::join!(flood, honest_during);
    let during = during?;
    eprintln!(
        "flood: {FLOOD} alerts in {flood_took:?} ({:.0}/s against a sustained limit of {}/s; \
         {refused} refused by the flooder's own gossipsub)",
        FLOOD as f64 / flood_took.as_secs_f64(),
        limits.rate_per_org_per_minute / 60
    );
    ensure!(refused < FLOOD / 2, "the flood did not go out");

    wait_score(
        &on_all,
        &flooder.peer.peer_id,
        "graylisted and pruned",
        |p| p.score.is_some_and(|s| s < -80.0) && p.mesh_topics == 0,
    )
    .await?;
    let mut after = Vec::new();
    for o in ["org-0", "org-1", "org-2"] {
        after.extend(timed_publish(&net, o, &format!("{o} after the flood")).await?);
    }
    for n in net.nodes() {
        ensure!(
            verdict_count(n.node, "ignore", "rate_limited") >= 9,
            "{} counted the flood as rate limited",
            n.org
        );
        let allowed = u64::from(limits.rate_burst)
            + started.elapsed().as_secs() * u64::from(limits.rate_per_org_per_minute) / 60
            + 1;
        let accepted = stored_by(n, &flooder.author())? as u64;
        ensure!(
            (1..=allowed).contains(&accepted),
            "{} accepted {accepted} of the flood (at most {allowed} allowed)",
            n.org
        );
    }
    eprintln!("honest delivery latency during the flood: {during:?}");
    eprintln!("honest delivery latency after the flood: {after:?}");
    net.shutdown().await;
    Ok(())
}

/// Publishes an honest alert on `all` and returns how long each other node took to
/// decrypt it (from its live event stream), after checking it is in every store.
async fn timed_publish(net: &Harness, from: &str, title: &str) -> Result<Vec<Duration>> {
    let mut streams: Vec<_> = net
        .nodes()
        .iter()
        .filter(|n| n.org != from)
        .map(|n| n.node.core.subscribe())
        .collect();
    let start = Instant::now();
    let mut honest = Honest::default();
    let id = honest.publish(net, from, ALL, title).await?.to_hex();
    let mut latencies = Vec::new();
    for stream in &mut streams {
        let arrived = tokio::time::timeout(WAIT, async {
            loop {
                match stream.recv().await {
                    Ok(alert) if alert.id == id => return Ok(start.elapsed()),
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(e) => return Err(anyhow::anyhow!("event stream closed: {e}")),
                }
            }
        })
        .await
        .with_context(|| format!("{title:?} was not delivered"))??;
        latencies.push(arrived);
    }
    honest.delivered(net).await?;
    Ok(latencies)
}

// ---------------------------------------------------------------------------------------
// 8. Removed orgs and revoked nodes
// ---------------------------------------------------------------------------------------

/// Charter version 2 removes `org-3` and revokes a second node of `org-2`. Before the
/// change, both the revoked node and a second node of `org-3` are admitted and publish.
/// After it is adopted everywhere:
///
/// - every node closes their connections (and `org-3`'s node's), and a reconnect by the
///   revoked node is closed without a hello;
/// - their new envelopes, relayed by a member in good standing on gossip and in its sync
///   answers, are rejected at every remaining node — `beyond_cutoff` (also when backdated
///   and naming version 1), `cert_not_valid` for the removed org under version 2 — stored
///   nowhere, and the relay is not penalized;
/// - alerts published after the change use a rotated sender key whose key package does
///   not open with the agreement key of any of them, and `org-3`'s node never gets them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_org_and_revoked_node_cannot_keep_reading_or_publishing() -> Result {
    let net = Builder::from_plan(flat_plan(4, &[ALL]))
        .seed(109)
        .start()
        .await?;
    let everyone = nodes(&net);
    let all = gossip_topic(&net, ALL);
    let all_id = topic_id(&net, ALL);
    let mut revoked = Rogue::member(&net, "org-2", 50, None)?;
    let mut removed = Rogue::member(&net, "org-3", 51, None)?;
    let mut first = Vec::new();
    for r in [&mut revoked, &mut removed] {
        r.peer.subscribe(all.to_string()).await?;
        r.join(&everyone).await?;
        let env = r.alert(draft(&net, ALL, 1, EnvelopeId::default()), "while a member")?;
        r.gossip(&all, &everyone, env.as_bytes().to_vec()).await?;
        first.push(env);
    }
    for n in net.nodes() {
        for env in &first {
            wait_for("the first envelopes to be accepted everywhere", || async {
                stored(n, &env.id()).is_ok_and(|k| k == 1)
            })
            .await?;
        }
    }
    let mut honest = Honest::default();
    let before = honest
        .publish(&net, "org-0", ALL, "before the change")
        .await?;
    honest.delivered(&net).await?;

    let cut_at = now();
    let p = Proposal {
        remove_orgs: vec![org("org-3")],
        revoke: vec![revoked.author()],
        ..Default::default()
    };
    let v2 = next_charter(&net, &p, &["org-0", "org-1"])?;
    adopt_everywhere(&net, &v2).await?;
    let remaining: Vec<NodeView<'_>> = net.nodes()[..3].to_vec();
    let gone = net.nodes()[3].node.peer_id;
    for r in [&mut revoked, &mut removed] {
        r.wait_disconnected(&everyone).await?;
    }
    for n in &remaining {
        wait_for(
            &format!("{} to close org-3's connection", n.org),
            || async { peer_info(n.node, &gone).await.is_none() },
        )
        .await?;
    }
    let first_node = net.nodes()[0].node;
    let _ = revoked.everything();
    revoked.dial(&[first_node]).await?;
    revoked.wait_disconnected(&[first_node]).await?;
    ensure!(
        !revoked
            .everything()
            .iter()
            .any(|s| is_hello_from(s, &first_node.peer_id)),
        "the revoked node was admitted again"
    );

    // Their next envelopes, relayed by a member in good standing.
    let org3 = &net.network().orgs[3].nodes[0];
    let org3_chain = chain_of(net.nodes()[0], &org3.key.public(), &all_id)?;
    let org3_head = SignedEnvelope::decode(
        org3_chain.last().context("org-3 published key packages")?,
        MAX_ENVELOPE,
    )?;
    // Seq 2 of a rogue's chain (seq 1 is its envelope from before the change).
    let next = |r: &Rogue, prev: &SignedEnvelope, version: u64, timestamp_ms: u64, text: &str| {
        r.alert(
            Draft {
                charter_version: version,
                timestamp_ms,
                ..draft(&net, ALL, 2, prev.id())
            },
            text,
        )
    };
    let beyond = [
        next(&revoked, &first[0], 2, now(), "revoked, under version 2")?,
        next(
            &revoked,
            &first[0],
            1,
            cut_at - 500,
            "revoked, backdated under version 1",
        )?,
        next(
            &removed,
            &first[1],
            1,
            now(),
            "removed org, under version 1",
        )?,
        SignedEnvelope::seal_encrypted(
            &org3.key,
            &Draft {
                prev: org3_head.id(),
                ..draft(&net, ALL, org3_head.header().seq + 1, EnvelopeId::default())
            },
            &SenderKey::generate(1, &mut OsRng),
            b"org-3's node, after its removal",
            &mut OsRng,
        )?,
    ];
    let not_valid = next(
        &removed,
        &first[1],
        2,
        now(),
        "removed org, under version 2",
    )?;
    let mut forbidden: Vec<Vec<u8>> = beyond.iter().map(|e| e.as_bytes().to_vec()).collect();
    forbidden.push(not_valid.as_bytes().to_vec());
    let counts = |n: NodeView<'_>| {
        (
            verdict_count(n.node, "reject", "beyond_cutoff"),
            verdict_count(n.node, "reject", "cert_not_valid"),
        )
    };
    let base: Vec<(u64, u64)> = remaining.iter().map(|n| counts(*n)).collect();
    let mut relay = Rogue::member(&net, "org-1", 52, None)?;
    relay
        .peer
        .set_responder(serving(
            hello_with(relay.me.cert.as_bytes()),
            all_id,
            sync_page(all_id, vec![], forbidden.clone(), false),
        ))
        .await?;
    let in_good_standing: Vec<&Node> = remaining.iter().map(|n| n.node).collect();
    relay.join(&in_good_standing).await?;
    for bytes in &forbidden {
        relay.gossip(&all, &in_good_standing, bytes.clone()).await?;
    }
    let after = honest
        .publish(&net, "org-0", ALL, "org-0 after the change")
        .await?;
    for o in ["org-1", "org-2"] {
        honest
            .publish(&net, o, ALL, &format!("{o} after the change"))
            .await?;
    }
    for (n, (cut, invalid)) in remaining.iter().copied().zip(&base) {
        // Each forbidden envelope arrives twice: on gossip and in the sync page.
        wait_verdict(n, "reject", "beyond_cutoff", cut + 2 * beyond.len() as u64).await?;
        wait_verdict(n, "reject", "cert_not_valid", invalid + 2).await?;
    }
    wait_score(
        &remaining,
        &relay.peer.peer_id,
        "not penalized for relaying",
        |p| p.score.is_some_and(|s| s >= 0.0),
    )
    .await?;
    honest.delivered(&net).await?;
    let forbidden_ids: Vec<EnvelopeId> = forbidden.iter().map(|b| id_of(b)).collect();
    assert_stored_nowhere(
        &net,
        &forbidden_ids,
        "an envelope published after the change",
    )?;

    // What was published after the change stays closed to all of them.
    let reader = net.nodes()[1];
    ensure!(
        !has_alert(net.nodes()[3], &after),
        "the removed org's node decrypted an alert published after its removal"
    );
    let author = net.network().orgs[0].nodes[0].key.public();
    let epoch_of = |id: &EnvelopeId| -> Result<u64> {
        Ok(
            SignedEnvelope::decode(&envelope_bytes(reader, id)?, MAX_ENVELOPE)?
                .header()
                .key_epoch,
        )
    };
    let (old_epoch, new_epoch) = (epoch_of(&before)?, epoch_of(&after)?);
    ensure!(
        new_epoch > old_epoch,
        "the sender key was rotated ({old_epoch} → {new_epoch})"
    );
    // Every package of the rotated key: the first seals it to the readers of the moment,
    // later ones only to readers that joined since.
    let packages: Vec<KeyPackage> = chain_of(reader, &author, &all_id)?
        .into_iter()
        .filter_map(|b| SignedEnvelope::decode(&b, MAX_ENVELOPE).ok())
        .filter(|e| e.header().kind == Kind::KeyPackage && e.header().key_epoch == new_epoch)
        .map(|e| KeyPackage::decode(e.payload()))
        .collect::<std::result::Result<_, _>>()?;
    ensure!(!packages.is_empty(), "the rotated key has a package");
    let network = net_id(&net);
    for (who, agreement) in [
        ("the revoked node", &revoked.me.agreement),
        ("the removed org's second node", &removed.me.agreement),
        ("the removed org's node", &org3.agreement),
    ] {
        ensure!(
            packages
                .iter()
                .all(|p| p.open(&network, &author, agreement).is_err()),
            "{who} opened the rotated sender key"
        );
    }
    ensure!(
        packages.iter().any(|p| p
            .open(&network, &author, &net.network().orgs[1].nodes[0].agreement)
            .is_ok()),
        "a remaining reader can open the rotated sender key"
    );
    net.shutdown().await;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// 9. Lying sync peers
// ---------------------------------------------------------------------------------------

/// A late joiner's first peer is a member that answers every sync request with a page
/// that always claims more, carrying envelopes of another topic, forged and garbage
/// bytes, and only every other envelope of an honest chain (gaps); a second member
/// answers with a page whose bincode length claims 2^60 envelopes. The joiner rejects the
/// bad data with typed reasons (`topic_mismatch`, `bad_signature`, `malformed`), refuses
/// the second peer, stops asking the first once a page brings nothing new, stays within a
/// memory bound, and — once it meets honest peers — converges to exactly their envelopes
/// with no gaps and every alert decrypted, including those published during the attack.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lying_sync_peer_is_contained_and_the_node_converges_with_honest_peers() -> Result {
    let rss_before = rss_bytes()?;
    let started = Instant::now();
    let (mut net, later) = Builder::from_plan(flat_plan(3, &[ALL, OPS]))
        .seed(110)
        .start_some(2)
        .await?;
    let mut honest = Honest::default();
    for i in 0..5 {
        honest
            .publish(&net, "org-0", ALL, &format!("all {i}"))
            .await?;
    }
    for i in 0..3 {
        honest
            .publish(&net, "org-1", OPS, &format!("ops {i}"))
            .await?;
    }
    honest.delivered(&net).await?;
    let (all, ops, control) = (
        topic_id(&net, ALL),
        topic_id(&net, OPS),
        topic_id(&net, CONTROL),
    );
    let authors = [
        (all, net.network().orgs[0].nodes[0].key.public()),
        (ops, net.network().orgs[1].nodes[0].key.public()),
    ];

    // The lies.
    let mut liar = Rogue::member(&net, "org-0", 45, None)?;
    let certs: Vec<Vec<u8>> = std::iter::once(random_bytes(300))
        .chain(
            net.network().orgs[..2]
                .iter()
                .map(|o| o.nodes[0].cert.as_bytes().to_vec()),
        )
        .collect();
    let mut pages = HashMap::new();
    let mut bad = Vec::new();
    for ((topic, author), other) in authors.iter().zip([OPS, ALL]) {
        let chain = chain_of(net.nodes()[0], author, topic)?;
        ensure!(chain.len() >= 3, "an honest chain long enough to have gaps");
        let wrong = liar.alert(
            draft(&net, other, 1, EnvelopeId::default()),
            "another topic's",
        )?;
        let mut forged = chain[0].clone();
        let last = forged.len() - 70;
        forged[last] ^= 0x01;
        bad.extend([wrong.id(), id_of(&forged)]);
        let mut envelopes: Vec<Vec<u8>> = chain.iter().step_by(2).cloned().collect();
        envelopes.extend([
            wrong.into_bytes(),
            forged,
            random_bytes(300),
            chain[1][..120].to_vec(),
        ]);
        pages.insert(*topic, sync_page(*topic, certs.clone(), envelopes, true));
    }
    pages.insert(
        control,
        sync_page(control, vec![], vec![random_bytes(300)], true),
    );
    liar.peer
        .set_responder(sync_responder(
            hello_with(liar.me.cert.as_bytes()),
            move |req| {
                pages
                    .get(&req.topic)
                    .cloned()
                    .unwrap_or_else(|| sync_page(req.topic, vec![], vec![], true))
            },
        ))
        .await?;
    let mut huge = 2u32.to_le_bytes().to_vec(); // Response::Sync
    huge.extend(all.as_bytes());
    huge.extend(0u64.to_le_bytes()); // no certs
    huge.extend((1u64 << 60).to_le_bytes()); // "2^60 envelopes"
    huge.extend(random_bytes(64));
    let boaster_me = identity(&net, "org-1", &net.network().orgs[1].root, 46);
    let boaster_hello = hello_with(boaster_me.cert.as_bytes());
    let mut boaster = Rogue::start(
        boaster_me,
        Some(boaster_hello.clone()),
        Some(sync_responder(boaster_hello, move |_| huge.clone())),
    )?;

    // The joiner meets the liars first.
    net.start_node(&later[0]).await?;
    let joiner = net.nodes()[2];
    liar.join(&[joiner.node]).await?;
    for (reason, count) in [
        ("topic_mismatch", 2),
        ("bad_signature", 2),
        ("malformed", 5),
    ] {
        wait_verdict(joiner, "reject", reason, count).await?;
    }
    wait_for("the gaps the partial pages leave", || async {
        joiner
            .node
            .core
            .status()
            .await
            .is_ok_and(|s| s.chain_gaps >= 2)
    })
    .await?;
    let refused_before = joiner.node.metrics.refused_peers.get();
    boaster.dial(&[joiner.node]).await?;
    boaster.wait_disconnected(&[joiner.node]).await?;
    ensure!(joiner.node.metrics.refused_peers.get() > refused_before);
    ensure!(
        boaster
            .everything()
            .iter()
            .any(|s| matches!(s, Seen::Request(_, f) if sync_topic(f).is_some())),
        "the boaster was refused for its page"
    );
    honest
        .publish(&net, "org-0", ALL, "during the lies")
        .await?;
    honest
        .publish(&net, "org-1", OPS, "ops during the lies")
        .await?;

    // Then it meets honest peers.
    for n in &net.nodes()[..2] {
        joiner.node.dial(listen_addr(n.node, WAIT).await?).await?;
    }
    honest.delivered(&net).await?;
    for topic in [all, ops] {
        wait_for(
            "the joiner to hold exactly the honest envelopes",
            || async {
                let mine = ids_on(joiner, &topic);
                net.nodes()[..2].iter().all(|n| ids_on(*n, &topic) == mine)
            },
        )
        .await?;
    }
    let status = joiner.node.core.status().await?;
    ensure!(
        status.chain_gaps == 0 && status.undecryptable == 0,
        "{status:?}"
    );
    assert_stored_nowhere(&net, &bad, "a lying page's envelope")?;

    // An answer on the same connection, asked after everything above: any further sync
    // request the joiner sent the liar came before it.
    let answer = liar.ask(joiner.node, sync_request(all)).await?;
    ensure!(matches!(answer, wire::Response::Sync(_)), "{answer:?}");
    let mut asked: HashMap<TopicId, usize> = HashMap::new();
    for seen in liar.everything() {
        if let Seen::Request(_, frame) = seen {
            if let Some(t) = sync_topic(&frame) {
                *asked.entry(t).or_default() += 1;
            }
        }
    }
    // One session per admission and per anti-entropy period; two pages each at most.
    let bound = 2 * (2 + started.elapsed().as_secs() as usize / 15);
    eprintln!("sync pages the joiner asked the liar for: {asked:?} (bound {bound} per topic)");
    ensure!(
        asked.values().all(|k| *k <= bound) && asked.contains_key(&all),
        "endless pages were followed: {asked:?}"
    );
    let growth = rss_bytes()?.saturating_sub(rss_before);
    ensure!(growth < MAX_RSS_GROWTH, "memory grew by {growth} bytes");
    net.shutdown().await;
    Ok(())
}
