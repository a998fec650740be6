//! The driver: the task that runs [`CoreState`] against the real world. It turns network
//! events and local requests into [`Input`]s, executes the [`Output`]s (swarm commands,
//! database writes and reads, answers), and runs each write's [`AfterCommit`] once the
//! writer has committed it, in the order the writes were queued.

use super::RequestLimits;
use super::answers::SubmitError;
use super::answers::{PublishError, Receipt};
use super::handle::{CoreHandle, Request};
use super::state::{
    AfterCommit, Answer, CoreState, Identity, InboundId, Input, Now, Output, PagePlan, ReplyId,
    StateParts,
};
use super::verify_pool::{Job, VerifyPool};
use crate::metrics::Metrics;
use crate::net::{EventReceivers, NetCommand, NetEvent, NetHandle};
use crate::store::{self, Write, Writer};
use alertmesh_protocol::charter::CharterFork;
use alertmesh_protocol::{CharterChain, EnvelopeId, wire};
use futures::StreamExt;
use futures::stream::FuturesOrdered;
use libp2p::PeerId;
use libp2p::gossipsub::MessageAcceptance;
use libp2p::request_response::ResponseChannel;
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Requests queued from the API and CLI.
const REQUEST_QUEUE: usize = 256;
/// How often the state's timers run.
const TICK: Duration = Duration::from_millis(200);

/// Everything [`Core::new`] needs.
pub struct CoreParts {
    /// Our keys.
    pub me: Identity,
    /// Charter history.
    pub charters: CharterChain,
    /// Database writer.
    pub writer: Writer,
    /// A read connection.
    pub reader: rusqlite::Connection,
    /// Data dir (governance forks are kept under it).
    pub data_dir: PathBuf,
    /// What was loaded from the database.
    pub loaded: store::Loaded,
    /// Network handle.
    pub net: NetHandle,
    /// Metrics.
    pub metrics: Metrics,
    /// How often anti-entropy runs ([`super::SYNC_PERIOD`] by default).
    pub sync_period: Duration,
    /// Admitted peers kept at most ([`crate::net::DEFAULT_MAX_PEERS`] by default).
    pub max_peers: usize,
    /// Per-peer request limits.
    pub request_limits: RequestLimits,
}

/// Where the answer to a local request goes.
enum Replier {
    Publish(oneshot::Sender<Result<Receipt, PublishError>>),
    Submit(oneshot::Sender<Result<u64, SubmitError>>),
}

/// A queued write's outcome, with what to do after it.
type Commit = Pin<Box<dyn Future<Output = (AfterCommit, Result<(), String>)> + Send + Sync>>;

/// Messages handed to the verification pool and not yet back, at most (gossip is not
/// read from the network beyond this; answers to our requests always are).
const MAX_VERIFYING: usize = 1024;

/// The core task: the state and the I/O around it.
pub struct Core {
    state: CoreState,
    /// Outputs of the start, executed first.
    startup: Vec<Output>,
    writer: Writer,
    reader: std::sync::Mutex<rusqlite::Connection>,
    data_dir: PathBuf,
    net: NetHandle,
    /// Peers' requests the state has not answered yet.
    inbound: HashMap<InboundId, (PeerId, ResponseChannel<Vec<u8>>)>,
    next_inbound: u64,
    replies: HashMap<ReplyId, Replier>,
    next_reply: u64,
    /// Queued writes with an action, in queue order.
    commits: FuturesOrdered<Commit>,
    /// Decodes received envelopes and checks their signatures off this task.
    pool: VerifyPool,
    /// Messages at the pool, in the order they arrived.
    verifying: FuturesOrdered<oneshot::Receiver<Input>>,
}

impl Core {
    /// Builds the core from loaded state and returns it with its handle.
    pub fn new(parts: CoreParts) -> anyhow::Result<(Self, CoreHandle, mpsc::Receiver<Request>)> {
        let CoreParts {
            me,
            charters,
            writer,
            reader,
            data_dir,
            loaded,
            net,
            metrics,
            sync_period,
            max_peers,
            request_limits,
        } = parts;
        // The state reads committed history on a read-only connection of its own.
        let history = Box::new(store::SqliteHistory::open(&data_dir)?);
        let state_parts = StateParts {
            me,
            charters,
            loaded,
            history,
            metrics,
            sync_period,
            max_peers,
            request_limits,
        };
        let (state, startup) = CoreState::new(state_parts, now(), StdRng::from_entropy())?;
        let (tx, rx) = mpsc::channel(REQUEST_QUEUE);
        let handle = CoreHandle {
            tx,
            writer: writer.clone(),
        };
        let core = Self {
            state,
            startup,
            writer,
            reader: std::sync::Mutex::new(reader),
            data_dir,
            net,
            inbound: HashMap::new(),
            next_inbound: 0,
            replies: HashMap::new(),
            next_reply: 0,
            commits: FuturesOrdered::new(),
            pool: VerifyPool::start()?,
            verifying: FuturesOrdered::new(),
        };
        Ok((core, handle, rx))
    }

    /// Runs until shutdown.
    pub async fn run(
        mut self,
        net: EventReceivers,
        mut requests: mpsc::Receiver<Request>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let EventReceivers {
            mut gossip,
            mut events,
        } = net;
        let startup = std::mem::take(&mut self.startup);
        self.execute(startup).await;
        let mut tick = tokio::time::interval(TICK);
        loop {
            let input = tokio::select! {
                // Commits first (they release forwarding), then connection and request
                // events: they are never shed.
                biased;
                _ = shutdown.changed() => break,
                Some((then, result)) = self.commits.next(), if !self.commits.is_empty() => {
                    self.after_commit(then, result).await;
                    continue;
                }
                // Checked messages before new ones, in the order they arrived.
                checked = self.verifying.next(), if !self.verifying.is_empty() => match checked {
                    Some(Ok(input)) => input,
                    Some(Err(_)) => {
                        // The message is dropped (gossipsub times its validation out).
                        tracing::error!("a verification worker stopped");
                        continue;
                    }
                    None => continue,
                },
                ev = events.recv() => match ev {
                    Some(NetEvent::Response { peer, tag, data }) => {
                        self.verify(Job::Response { peer, tag, data });
                        continue;
                    }
                    Some(ev) => self.input_of(ev),
                    None => break,
                },
                msg = gossip.recv(), if self.verifying.len() < MAX_VERIFYING => match msg {
                    Some(msg) => {
                        self.verify(Job::Gossip(msg));
                        continue;
                    }
                    None => break,
                },
                req = requests.recv() => match req {
                    Some(req) => match self.local(req) {
                        Some(input) => input,
                        None => continue,
                    },
                    None => break,
                },
                _ = tick.tick() => Input::Tick,
            };
            let outputs = self.state.handle(now(), input);
            self.execute(outputs).await;
        }
        while let Some((then, result)) = self.commits.next().await {
            self.after_commit(then, result).await;
        }
        let _ = self.writer.flush().await;
        tracing::debug!("core stopped");
    }

    /// Hands a message to the verification pool; its input comes back in order.
    fn verify(&mut self, job: Job) {
        self.verifying.push_back(self.pool.submit(job));
    }

    fn input_of(&mut self, ev: NetEvent) -> Input {
        match ev {
            NetEvent::Connected(peer) => Input::Connected(peer),
            NetEvent::Disconnected(peer) => {
                self.inbound.retain(|_, (p, _)| *p != peer);
                Input::Disconnected(peer)
            }
            NetEvent::Subscribed(peer, topic) => Input::Subscribed(peer, topic),
            NetEvent::Request {
                peer,
                data,
                channel,
            } => {
                self.next_inbound += 1;
                let inbound = InboundId(self.next_inbound);
                self.inbound.insert(inbound, (peer, channel));
                Input::Request {
                    peer,
                    data,
                    inbound,
                }
            }
            NetEvent::Response { peer, tag, data } => Input::Response { peer, tag, data },
            NetEvent::RequestFailed { peer, tag, error } => {
                Input::RequestFailed { peer, tag, error }
            }
        }
    }

    /// A local request: answered at once, or turned into an input answered later.
    fn local(&mut self, req: Request) -> Option<Input> {
        self.next_reply += 1;
        let reply = ReplyId(self.next_reply);
        match req {
            Request::Publish {
                topic,
                tlp,
                content,
                reply: tx,
            } => {
                self.replies.insert(reply, Replier::Publish(tx));
                Some(Input::Publish {
                    reply,
                    topic,
                    tlp,
                    content: *content,
                })
            }
            Request::SubmitCharter { bytes, reply: tx } => {
                self.replies.insert(reply, Replier::Submit(tx));
                Some(Input::SubmitCharter { reply, bytes })
            }
            Request::Status(tx) => {
                let _ = tx.send(self.state.status(now()));
                None
            }
            Request::Topics(tx) => {
                let _ = tx.send(self.state.topics());
                None
            }
        }
    }

    /// Executes outputs in order; the answers to reads go back to the state at once.
    async fn execute(&mut self, outputs: Vec<Output>) {
        let mut queue = VecDeque::from(outputs);
        while let Some(output) = queue.pop_front() {
            match output {
                Output::Net(cmd) => self.send(cmd).await,
                Output::Respond { inbound, response } => {
                    if let Some((_, channel)) = self.inbound.remove(&inbound) {
                        self.send(NetCommand::Respond(channel, response)).await;
                    }
                }
                Output::Refuse {
                    peer,
                    refusal,
                    inbound,
                    speaks_protocol,
                } => {
                    let channel = inbound
                        .and_then(|i| self.inbound.remove(&i))
                        .map(|(_, c)| c);
                    let cmd = NetCommand::Refuse {
                        peer,
                        refusal,
                        channel,
                        speaks_protocol,
                    };
                    self.send(cmd).await;
                }
                Output::RespondRefused {
                    peer,
                    inbound,
                    fallback,
                } => {
                    if let Some((_, channel)) = self.inbound.remove(&inbound) {
                        let cmd = NetCommand::RespondRefused {
                            peer,
                            channel,
                            fallback,
                        };
                        self.send(cmd).await;
                    }
                }
                Output::Store { writes, then } => self.store(writes, then).await,
                Output::FetchHeld { held, conflicting } => {
                    let held = self.held_envelope(held).await;
                    let input = Input::Held { held, conflicting };
                    queue.extend(self.state.handle(now(), input));
                }
                Output::ServePage {
                    inbound,
                    peer,
                    plan,
                } => {
                    let (page, bytes) = self.read_page(plan);
                    if let Some((_, channel)) = self.inbound.remove(&inbound) {
                        let response = wire::Response::Sync(page).encode();
                        self.send(NetCommand::Respond(channel, response)).await;
                    }
                    let input = Input::PageServed { peer, bytes };
                    queue.extend(self.state.handle(now(), input));
                }
                Output::RecordFork(fork) => record_fork(&self.data_dir, &fork),
                Output::Answer(reply, answer) => self.answer(reply, answer),
            }
        }
    }

    async fn send(&self, cmd: NetCommand) {
        if self.net.send(cmd).await.is_err() {
            tracing::debug!("network task gone");
        }
    }

    /// Queues writes; their action runs once they are committed.
    async fn store(&mut self, writes: Vec<Write>, then: AfterCommit) {
        let queued = self.writer.write_all(writes).await;
        if matches!(then, AfterCommit::Nothing) {
            return;
        }
        let commit: Commit = match queued {
            Ok(done) => Box::pin(async move {
                let result = done
                    .await
                    .unwrap_or_else(|_| Err("database writer stopped".into()));
                (then, result)
            }),
            Err(e) => Box::pin(std::future::ready((then, Err(e.to_string())))),
        };
        self.commits.push_back(commit);
    }

    async fn after_commit(&mut self, then: AfterCommit, result: Result<(), String>) {
        match then {
            AfterCommit::Nothing => {}
            AfterCommit::Report { message, source } => {
                let acceptance = match result {
                    Ok(()) => MessageAcceptance::Accept,
                    // Not on disk, so not forwarded.
                    Err(_) => MessageAcceptance::Ignore,
                };
                self.send(NetCommand::Report(message, source, acceptance))
                    .await;
            }
            AfterCommit::OfferCheckpoint {
                peer,
                tag,
                old_size,
                size,
                note,
                topics,
            } => {
                let request = result
                    .map_err(anyhow::Error::msg)
                    .and_then(|()| self.offer(old_size, size, note, &topics));
                match request {
                    Ok(data) => self.send(NetCommand::Request { peer, data, tag }).await,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot prove our checkpoint");
                        let data = wire::Response::Refused(format!("cannot prove: {e}")).encode();
                        let outputs = self
                            .state
                            .handle(now(), Input::Response { peer, tag, data });
                        self.execute(outputs).await;
                    }
                }
            }
            AfterCommit::ServeInclusions { inbound, size, ids } => {
                let proofs = result
                    .map_err(anyhow::Error::msg)
                    .and_then(|()| self.inclusions(size, &ids));
                let response = match proofs {
                    Ok(proofs) => wire::Response::Inclusions(proofs),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot prove our envelopes");
                        wire::Response::Refused("cannot prove".into())
                    }
                };
                if let Some((_, channel)) = self.inbound.remove(&inbound) {
                    self.send(NetCommand::Respond(channel, response.encode()))
                        .await;
                }
            }
            AfterCommit::Respond { inbound, response } => {
                let response = match result {
                    Ok(()) => response,
                    Err(e) => wire::Response::Refused(format!("storage: {e}")).encode(),
                };
                if let Some((_, channel)) = self.inbound.remove(&inbound) {
                    self.send(NetCommand::Respond(channel, response)).await;
                }
            }
            AfterCommit::Gossip {
                topic,
                data,
                receipt,
            } => {
                if result.is_ok() {
                    self.send(NetCommand::Publish(topic, data)).await;
                }
                if let Some((reply, receipt)) = receipt {
                    let answer = result.map(|()| receipt).map_err(PublishError::Storage);
                    self.answer(reply, Answer::Published(answer));
                }
            }
        }
    }

    fn answer(&mut self, reply: ReplyId, answer: Answer) {
        match (self.replies.remove(&reply), answer) {
            (Some(Replier::Publish(tx)), Answer::Published(result)) => {
                let _ = tx.send(result);
            }
            (Some(Replier::Submit(tx)), Answer::Submitted(result)) => {
                let _ = tx.send(result);
            }
            (_, answer) => tracing::error!(?reply, ?answer, "answer without its request"),
        }
    }

    /// Our add-checkpoint request with its proofs, read from the store (its leaves are
    /// committed).
    fn offer(
        &self,
        old_size: u64,
        size: u64,
        note: Vec<u8>,
        topics: &[alertmesh_protocol::TopicId],
    ) -> anyhow::Result<Vec<u8>> {
        let reader = self
            .reader
            .lock()
            .map_err(|_| anyhow::anyhow!("reader lock poisoned"))?;
        let req = store::tlog::add_checkpoint(&reader, old_size, size, note, topics)?;
        Ok(wire::Request::AddCheckpoint(req).encode())
    }

    /// Inclusion proofs in our log of `size` leaves (its leaves are committed).
    fn inclusions(
        &self,
        size: u64,
        ids: &[EnvelopeId],
    ) -> anyhow::Result<Vec<alertmesh_protocol::tlog::Inclusion>> {
        let reader = self
            .reader
            .lock()
            .map_err(|_| anyhow::anyhow!("reader lock poisoned"))?;
        store::tlog::inclusion_proofs(&reader, size, ids)
    }

    /// A held envelope, once everything queued before is committed.
    async fn held_envelope(&self, id: EnvelopeId) -> Option<Vec<u8>> {
        self.writer.flush().await.ok()?;
        let reader = self.reader.lock().ok()?;
        store::envelope_bytes(&reader, &id).ok().flatten()
    }

    /// Reads a planned sync page: the committed envelopes, up to the page's byte limit.
    fn read_page(&self, plan: PagePlan) -> (wire::SyncPage, usize) {
        let PagePlan {
            topic,
            wanted,
            mut more,
            certs,
        } = plan;
        let mut envelopes = Vec::new();
        let mut bytes_total = 0;
        let mut authors = std::collections::BTreeSet::new();
        let Ok(reader) = self.reader.lock() else {
            return (
                wire::SyncPage {
                    topic,
                    certs: Vec::new(),
                    envelopes,
                    more: true,
                },
                0,
            );
        };
        for (author, seq) in wanted {
            let Ok(Some(bytes)) = store::envelope_bytes_at(&reader, &author, &topic, seq) else {
                continue; // not committed yet: next round
            };
            if bytes_total + bytes.len() > wire::MAX_PAGE_BYTES {
                more = true;
                break;
            }
            bytes_total += bytes.len();
            authors.insert(author);
            envelopes.push(bytes);
        }
        let certs = authors
            .iter()
            .filter_map(|a| certs.get(a).cloned())
            .collect();
        let page = wire::SyncPage {
            topic,
            certs,
            envelopes,
            more,
        };
        (page, bytes_total)
    }
}

/// Keeps both charters of a governance fork on disk as evidence for the operator.
fn record_fork(data_dir: &std::path::Path, fork: &CharterFork) {
    let dir = data_dir.join("charter-forks");
    let result = std::fs::create_dir_all(&dir).and_then(|()| {
        for c in [&fork.first, &fork.second] {
            std::fs::write(
                dir.join(format!("v{}-{}.bin", fork.version, c.hash())),
                c.as_bytes(),
            )?;
        }
        Ok(())
    });
    if let Err(e) = result {
        tracing::error!(error = %e, "cannot store governance fork evidence");
    }
    tracing::error!(
        version = fork.version,
        first = %fork.first.hash(),
        second = %fork.second.hash(),
        dir = %dir.display(),
        "GOVERNANCE FORK: two valid charters with the same version; neither is adopted"
    );
}

/// The time now, for the state.
pub(super) fn now() -> Now {
    Now {
        instant: std::time::Instant::now(),
        unix_ms: crate::clock::now_ms(),
    }
}
