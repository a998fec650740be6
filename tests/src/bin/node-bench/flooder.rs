//! The in-process member peer of `ingest`: a libp2p swarm of org `flood` that says hello
//! to the sink, publishes its key package and floods pre-signed envelopes.

use alertmesh_node::net::{self, Behaviour, BehaviourEvent};
use alertmesh_protocol::TopicId;
use alertmesh_protocol::bootstrap::Network;
use alertmesh_protocol::wire::{self, Hello};
use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, TopicHash};
use libp2p::request_response;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, Swarm};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::ingest::BENCH_TOPIC;

/// What the flooder did.
#[derive(Debug, Default, Clone)]
pub struct FloodStats {
    pub published: usize,
    pub queue_full: u64,
    pub other_errors: u64,
    pub window_waits: u64,
    pub first_publish: Option<Instant>,
    pub last_publish: Option<Instant>,
}

/// What the flooder's task is told to do.
pub enum FloodCmd {
    /// Dial the sink.
    Dial(Multiaddr),
    /// Publish one envelope now; the reply carries gossipsub's error, if any.
    Publish(Vec<u8>, tokio::sync::oneshot::Sender<Result<(), String>>),
    /// Publish `envs`, at most `window` ahead of what the sink holds (`held` - `base`).
    Flood {
        envs: Vec<Vec<u8>>,
        window: u64,
        held: Arc<AtomicU64>,
        base: u64,
        done: tokio::sync::oneshot::Sender<FloodStats>,
    },
}

/// The running peer; its task stops on drop.
pub struct Flooder {
    pub cmds: tokio::sync::mpsc::Sender<FloodCmd>,
    /// Messages gossipsub failed to send to a slow peer.
    pub slow_peer_failures: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Flooder {
    /// Starts the peer of the `flood` org's node on `rt`.
    pub fn start(rt: &tokio::runtime::Runtime, network: &Network) -> anyhow::Result<Self> {
        let flood = &network.orgs[1].nodes[0];
        let keypair = net::keypair(&flood.key)?;
        let hello = Hello {
            cert: flood.cert.as_bytes().to_vec(),
        };
        let net_id = network.genesis.charter().network_id;
        let topic_name = TopicId::derive(&net_id, BENCH_TOPIC).gossip_name(&net_id);
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let slow = Arc::new(AtomicU64::new(0));
        let slow2 = slow.clone();
        let _guard = rt.enter();
        let swarm = net::build_swarm(keypair, &["/ip4/127.0.0.1/tcp/0".parse()?])?;
        let task = rt.spawn(flood_task(swarm, rx, hello, topic_name, slow2));
        Ok(Self {
            cmds: tx,
            slow_peer_failures: slow,
            task,
        })
    }
}

impl Drop for Flooder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A flood in progress.
struct Job {
    envs: Vec<Vec<u8>>,
    next: usize,
    window: u64,
    held: Arc<AtomicU64>,
    base: u64,
    stats: FloodStats,
    done: Option<tokio::sync::oneshot::Sender<FloodStats>>,
}

/// The swarm's owner: publishes in bursts of at most 64 and answers commands and events.
async fn flood_task(
    mut swarm: Swarm<Behaviour>,
    mut cmds: tokio::sync::mpsc::Receiver<FloodCmd>,
    hello: Hello,
    topic_name: String,
    slow: Arc<AtomicU64>,
) {
    let topic = TopicHash::from_raw(topic_name.clone());
    let _ = swarm
        .behaviour_mut()
        .gossipsub
        .subscribe(&IdentTopic::new(topic_name));
    let mut job: Option<Job> = None;
    loop {
        let mut burst = 0;
        if let Some(j) = job.as_mut() {
            while j.next < j.envs.len() && burst < 64 {
                let held = j
                    .held
                    .load(Ordering::Relaxed)
                    .saturating_sub(j.base)
                    .min(j.next as u64);
                if j.window > 0 && j.next as u64 - held >= j.window {
                    j.stats.window_waits += 1;
                    break;
                }
                let data = std::mem::take(&mut j.envs[j.next]);
                match swarm.behaviour_mut().gossipsub.publish(topic.clone(), data) {
                    Ok(_) => {}
                    Err(gossipsub::PublishError::AllQueuesFull(_)) => j.stats.queue_full += 1,
                    Err(_) => j.stats.other_errors += 1,
                }
                let now = Instant::now();
                j.stats.first_publish.get_or_insert(now);
                j.stats.last_publish = Some(now);
                j.next += 1;
                j.stats.published += 1;
                burst += 1;
            }
            if j.next == j.envs.len() {
                if let Some(done) = j.done.take() {
                    let _ = done.send(j.stats.clone());
                }
                job = None;
            }
        }
        let pause = if burst > 0 {
            Duration::ZERO
        } else {
            Duration::from_millis(2)
        };
        tokio::select! {
            biased;
            ev = swarm.select_next_some() => on_flood_event(&mut swarm, ev, &hello, &slow),
            cmd = cmds.recv() => match cmd {
                None => break,
                Some(FloodCmd::Dial(a)) => { let _ = swarm.dial(a); }
                Some(FloodCmd::Publish(data, reply)) => {
                    let r = swarm.behaviour_mut().gossipsub.publish(topic.clone(), data).map(|_| ()).map_err(|e| e.to_string());
                    let _ = reply.send(r);
                }
                Some(FloodCmd::Flood { envs, window, held, base, done }) => {
                    job = Some(Job { envs, next: 0, window, held, base, stats: FloodStats::default(), done: Some(done) });
                }
            },
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

/// Admits the sink, says hello, accepts gossip and counts slow-peer failures.
fn on_flood_event(
    swarm: &mut Swarm<Behaviour>,
    ev: SwarmEvent<BehaviourEvent>,
    hello: &Hello,
    slow: &AtomicU64,
) {
    match ev {
        SwarmEvent::ConnectionEstablished {
            peer_id,
            num_established,
            ..
        } if num_established.get() == 1 => {
            // The flooder trusts the sink it dialled: its gossip opens at once.
            swarm.behaviour_mut().gossipsub.admit(peer_id);
            swarm
                .behaviour_mut()
                .req
                .send_request(&peer_id, wire::Request::Hello(hello.clone()).encode());
        }
        SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
            message_id,
            propagation_source,
            ..
        })) => {
            swarm
                .behaviour_mut()
                .gossipsub
                .report_message_validation_result(
                    &message_id,
                    &propagation_source,
                    gossipsub::MessageAcceptance::Accept,
                );
        }
        SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::SlowPeer {
            failed_messages,
            ..
        })) => {
            slow.fetch_add(
                (failed_messages.priority + failed_messages.non_priority) as u64,
                Ordering::Relaxed,
            );
        }
        SwarmEvent::Behaviour(BehaviourEvent::Req(request_response::Event::Message {
            message: request_response::Message::Request { channel, .. },
            ..
        })) => {
            let _ = swarm
                .behaviour_mut()
                .req
                .send_response(channel, wire::Response::Hello(hello.clone()).encode());
        }
        _ => {}
    }
}
