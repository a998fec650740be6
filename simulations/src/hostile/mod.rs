//! Hostile members: nodes of member orgs with valid certificates (they are admitted) that
//! run the hostile peer ([`HostilePeer`]) instead of a node and,
//! on every tick, flood, forge, replay and equivocate:
//!
//! - **flood**: [`FLOOD_PER_TICK`] validly signed alerts on a topic the org may publish
//!   (beyond the charter's per-org rate they are ignored as `rate_limited`);
//! - **forge**: one alert whose bytes were altered after signing (`bad_signature`) and
//!   one on a topic the org may not publish (`not_publisher`);
//! - **replay**: an honest member's alert taken from a database, sent again;
//! - **equivocate**: two different alerts with the same (author, topic, seq).

pub mod peer;
pub mod watch;

pub use peer::{
    Answer, HostilePeer, MAX_HOSTILE_TRANSMIT, RawProtocol, Responder, Seen, hello_responder,
};

use crate::Check;
use crate::plan::Plan;
use crate::scenario::Scenario;
use alertmesh_node::core::CoreHandle;
use alertmesh_protocol::bootstrap::NodeMaterial;
use alertmesh_protocol::wire::Hello;
use alertmesh_protocol::{
    Draft, EnvelopeId, Kind, NodeKey, SenderKey, SignedEnvelope, Tlp, TopicId,
};
use libp2p::gossipsub::TopicHash;
use libp2p::{Multiaddr, PeerId};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// Valid alerts a hostile node floods per tick.
pub const FLOOD_PER_TICK: usize = 10;

/// What the hostile nodes sent.
#[derive(Debug, Default)]
pub struct Sent {
    /// Flood alerts.
    pub flood: AtomicU64,
    /// Altered after signing.
    pub bad_signature: AtomicU64,
    /// On a topic the org may not publish.
    pub not_publisher: AtomicU64,
    /// Replayed honest alerts.
    pub replay: AtomicU64,
    /// Equivocating pairs.
    pub equivocation: AtomicU64,
    /// Publishes the hostile peer's own gossipsub refused (no peers, duplicate).
    pub refused_locally: AtomicU64,
}

/// The running hostile nodes.
pub struct HostileDriver {
    peers: Vec<Option<Arc<HostilePeer>>>,
    ids: Vec<Option<PeerId>>,
    keys: Vec<Option<Arc<NodeKey>>>,
    stop: Option<tokio::sync::watch::Sender<bool>>,
    tasks: JoinSet<()>,
    sent: Arc<Sent>,
    forged: Arc<std::sync::Mutex<Vec<EnvelopeId>>>,
}

impl HostileDriver {
    /// Starts a hostile peer for every hostile node of the plan.
    pub fn start(plan: &Plan, materials: &[&NodeMaterial]) -> anyhow::Result<Self> {
        let mut peers = Vec::new();
        let mut ids = Vec::new();
        let mut keys = Vec::new();
        for (i, m) in materials.iter().enumerate() {
            if !plan.hostile[i] {
                peers.push(None);
                ids.push(None);
                keys.push(None);
                continue;
            }
            let hello = Hello {
                cert: m.cert.as_bytes().to_vec(),
            };
            let peer = HostilePeer::start(alertmesh_node::net::keypair(&m.key)?, Some(hello))?;
            ids.push(Some(peer.peer_id));
            peers.push(Some(Arc::new(peer)));
            keys.push(Some(Arc::new(NodeKey::from_secret_bytes(
                &m.key.secret_bytes(),
            ))));
        }
        Ok(Self {
            peers,
            ids,
            keys,
            stop: None,
            tasks: JoinSet::new(),
            sent: Arc::default(),
            forged: Arc::default(),
        })
    }

    /// Dials from hostile node `i`.
    pub async fn dial(&self, i: usize, addr: Multiaddr) -> anyhow::Result<()> {
        match self.peers.get(i).and_then(|p| p.as_ref()) {
            Some(p) => p.dial(addr).await,
            None => Ok(()),
        }
    }

    /// The peer id of hostile node `i` (a random one for any other index).
    pub fn peer_id(&self, i: usize) -> PeerId {
        self.ids
            .get(i)
            .copied()
            .flatten()
            .unwrap_or_else(PeerId::random)
    }

    /// Starts the attacks for `duration`; replays come from the honest databases.
    pub fn start_attacks(
        &mut self,
        s: &Scenario,
        plan: &Plan,
        duration: Duration,
        honest_dirs: &[Option<PathBuf>],
    ) {
        let Some(h) = &s.faults.hostile else { return };
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        self.stop = Some(stop);
        let network = plan.network.genesis.charter().network_id;
        let hash = move |name: &str| {
            TopicHash::from_raw(TopicId::derive(&network, name).gossip_name(&network))
        };
        let replay_dir = honest_dirs.iter().flatten().next().cloned();
        let tick = Duration::from_secs_f64(1.0 / h.rate.max(0.01));
        for (i, peer) in self.peers.iter().enumerate() {
            let (Some(peer), Some(key)) = (peer.clone(), self.keys[i].clone()) else {
                continue;
            };
            let own: Vec<(TopicId, TopicHash)> = plan
                .topics
                .iter()
                .filter(|t| t.publishers[i])
                .map(|t| (TopicId::derive(&network, &t.name), hash(&t.name)))
                .collect();
            let foreign: Vec<(TopicId, TopicHash)> = plan
                .topics
                .iter()
                .filter(|t| !t.publishers[i])
                .map(|t| (TopicId::derive(&network, &t.name), hash(&t.name)))
                .collect();
            let sent = self.sent.clone();
            let forged = self.forged.clone();
            let mut stop_rx = stop_rx.clone();
            let replay_dir = replay_dir.clone();
            self.tasks.spawn(async move {
                let end = Instant::now() + duration;
                let sender_key = SenderKey::generate(1, &mut rand::rngs::OsRng);
                let mut seqs: BTreeMap<TopicId, (u64, EnvelopeId)> = BTreeMap::new();
                let next = |seqs: &mut BTreeMap<TopicId, (u64, EnvelopeId)>, topic: TopicId| {
                    let e = seqs.entry(topic).or_insert((0, EnvelopeId::default()));
                    e.0 += 1;
                    *e
                };
                let seal = |topic: TopicId, seq: u64, prev: EnvelopeId, text: &str| {
                    let draft = Draft {
                        network_id: network,
                        topic_id: topic,
                        seq,
                        prev,
                        charter_version: 1,
                        timestamp_ms: alertmesh_node::clock::now_ms(),
                        kind: Kind::Alert,
                        key_epoch: 1,
                        tlp: Tlp::Green,
                    };
                    SignedEnvelope::seal_encrypted(
                        &key,
                        &draft,
                        &sender_key,
                        text.as_bytes(),
                        &mut rand::rngs::OsRng,
                    )
                    .ok()
                };
                let send = async |hash: &TopicHash, bytes: Vec<u8>, counter: &AtomicU64| {
                    counter.fetch_add(1, Ordering::Relaxed);
                    if peer.publish(hash.clone(), bytes).await.is_err() {
                        sent.refused_locally.fetch_add(1, Ordering::Relaxed);
                    }
                };
                let mut round = 0u64;
                while Instant::now() < end && !*stop_rx.borrow() {
                    round += 1;
                    if let Some((topic, hash)) = own.get(round as usize % own.len().max(1)) {
                        // Flood.
                        for k in 0..FLOOD_PER_TICK {
                            let (seq, prev) = next(&mut seqs, *topic);
                            if let Some(env) =
                                seal(*topic, seq, prev, &format!("flood {round} {k}"))
                            {
                                seqs.insert(*topic, (seq, env.id()));
                                send(hash, env.as_bytes().to_vec(), &sent.flood).await;
                            }
                        }
                        // Forge: altered after signing.
                        let (seq, prev) = next(&mut seqs, *topic);
                        if let Some(env) = seal(*topic, seq, prev, &format!("forged {round}")) {
                            let mut bytes = env.as_bytes().to_vec();
                            let at = bytes.len() - 65;
                            bytes[at] ^= 0x01;
                            forged
                                .lock()
                                .map(|mut f| {
                                    f.push(EnvelopeId(alertmesh_protocol::ids::sha256(&bytes)))
                                })
                                .ok();
                            // The seq stays unused by a valid envelope: the next one reuses it.
                            if let Some(e) = seqs.get_mut(topic) {
                                e.0 -= 1;
                            }
                            send(hash, bytes, &sent.bad_signature).await;
                        }
                        // Equivocate: two alerts, one (author, topic, seq).
                        let (seq, prev) = next(&mut seqs, *topic);
                        let a = seal(*topic, seq, prev, &format!("version A {round}"));
                        let b = seal(*topic, seq, prev, &format!("version B {round}"));
                        if let (Some(a), Some(b)) = (a, b) {
                            seqs.insert(*topic, (seq, a.id()));
                            sent.equivocation.fetch_add(1, Ordering::Relaxed);
                            let c = AtomicU64::new(0);
                            send(hash, a.as_bytes().to_vec(), &c).await;
                            send(hash, b.as_bytes().to_vec(), &c).await;
                        }
                    }
                    // Forge: a topic the org may not publish on.
                    if let Some((topic, hash)) = foreign.get(round as usize % foreign.len().max(1))
                    {
                        if let Some(env) =
                            seal(*topic, 1 + round, EnvelopeId::default(), "not mine")
                        {
                            forged.lock().map(|mut f| f.push(env.id())).ok();
                            send(hash, env.as_bytes().to_vec(), &sent.not_publisher).await;
                        }
                    }
                    // Replay an honest alert.
                    if let Some(dir) = &replay_dir {
                        if let Some(bytes) = recent_alert(dir.clone(), round).await {
                            if let Ok(env) = SignedEnvelope::decode(&bytes, 1 << 20) {
                                let h = TopicHash::from_raw(
                                    env.header().topic_id.gossip_name(&network),
                                );
                                send(&h, bytes, &sent.replay).await;
                            }
                        }
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(tick) => {}
                        _ = stop_rx.changed() => break,
                    }
                }
            });
        }
    }

    /// Stops the attacks.
    pub async fn stop_attacks(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        while self.tasks.join_next().await.is_some() {}
    }

    /// The hostile scenario's checks: forged and unauthorized envelopes stored nowhere,
    /// evidence of equivocation at every honest node.
    pub async fn checks(&self, honest: &[Option<(PathBuf, CoreHandle)>]) -> Vec<Check> {
        let mut out = Vec::new();
        let forged: Vec<EnvelopeId> = self.forged.lock().map(|f| f.clone()).unwrap_or_default();
        let dirs: Vec<PathBuf> = honest.iter().flatten().map(|(d, _)| d.clone()).collect();
        let ids = forged.clone();
        let stored = tokio::task::spawn_blocking(move || {
            let mut held = 0u64;
            for dir in dirs {
                let Ok(conn) = alertmesh_node::store::open_reader(&dir) else {
                    continue;
                };
                for id in &ids {
                    held += conn
                        .query_row(
                            "SELECT count(*) FROM envelopes WHERE id = ?1",
                            [id.as_bytes()],
                            |r| r.get::<_, i64>(0),
                        )
                        .unwrap_or(0) as u64;
                }
            }
            held
        })
        .await
        .unwrap_or(u64::MAX);
        out.push(Check {
            name: "forged_never_stored".into(),
            holds: stored == 0 && !forged.is_empty(),
            detail: format!(
                "{} forged or unauthorized envelopes sent; {stored} copies stored by honest nodes",
                forged.len()
            ),
        });
        let equivocations = self.sent.equivocation.load(Ordering::Relaxed);
        let mut with_evidence = 0;
        let total = honest.iter().flatten().count();
        crate::wait_until(
            Duration::from_secs(30),
            Duration::from_millis(250),
            async || {
                with_evidence = 0;
                for (_, core) in honest.iter().flatten() {
                    if core.status().await.is_ok_and(|s| s.evidence > 0) {
                        with_evidence += 1;
                    }
                }
                with_evidence == total
            },
        )
        .await;
        out.push(Check {
            name: "equivocation_detected_everywhere".into(),
            holds: equivocations > 0 && with_evidence == total,
            detail: format!(
                "{equivocations} equivocating pairs sent; {with_evidence}/{total} honest nodes hold evidence"
            ),
        });
        out
    }

    /// What was sent, by kind.
    pub fn sent(&self) -> BTreeMap<String, u64> {
        let s = &self.sent;
        [
            ("flood", &s.flood),
            ("bad_signature", &s.bad_signature),
            ("not_publisher", &s.not_publisher),
            ("replay", &s.replay),
            ("equivocation_pairs", &s.equivocation),
            ("refused_by_own_gossipsub", &s.refused_locally),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.load(Ordering::Relaxed)))
        .collect()
    }
}

/// A recent honest alert's bytes from a database.
async fn recent_alert(dir: PathBuf, round: u64) -> Option<Vec<u8>> {
    tokio::task::spawn_blocking(move || {
        let conn = alertmesh_node::store::open_reader(&dir).ok()?;
        conn.query_row(
            "SELECT e.bytes FROM envelopes e JOIN alerts a ON a.envelope_id = e.id \
             ORDER BY e.rowid DESC LIMIT 1 OFFSET ?1",
            [(round % 5) as i64],
            |r| r.get::<_, Vec<u8>>(0),
        )
        .ok()
    })
    .await
    .ok()
    .flatten()
}
