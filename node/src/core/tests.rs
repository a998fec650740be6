//! Unit tests of [`CoreState`] without a network or a clock: a few states wired together
//! in memory ([`Mesh`]), a fixed clock advanced by hand and seeded RNGs. Each node has a
//! real database in a temporary directory (the state reads its committed history);
//! writes commit the moment they are executed, so each test also checks what happens
//! *before* a commit by looking at the outputs of one call.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::state::{
    AfterCommit, Answer, CoreState, Identity, InboundId, Input, Now, Output, ReplyId, StateParts,
};
use super::verify_pool::{self, Job};
use super::{ADMISSION_TIMEOUT, RequestLimits};
use crate::metrics::Metrics;
use crate::net::{Gossip, NetCommand, RequestTag};
use crate::store::{self, Loaded, Write};
use alertmesh_protocol::batch::BatchVerifier;
use alertmesh_protocol::bootstrap::{Network, NetworkPlan, TopicPlan, simple_plan};
use alertmesh_protocol::{
    Alert, AlertKind, CharterChain, Content, EnvelopeId, Kind, Observable, OrgRootKey, Severity,
    SignedCharter, SignedEnvelope, Tlp, wire,
};
use libp2p::PeerId;
use libp2p::gossipsub::{MessageAcceptance, MessageId, TopicHash};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_chacha03::ChaCha20Rng;
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

/// The test networks' creation time; certificates are valid from then.
const NOW: u64 = 1_600_000_000_000;

/// One state and what its outputs did.
struct TestNode {
    state: CoreState,
    /// Its database (the state reads committed history from it).
    dir: tempfile::TempDir,
    writer: crate::store::Writer,
    peer: PeerId,
    /// Committed envelopes, by id.
    envelopes: HashMap<EnvelopeId, Vec<u8>>,
    /// Committed alert rows: (topic, org, kind).
    alerts: Vec<(String, String, Kind)>,
    /// Committed charter versions.
    charters: Vec<u64>,
    /// Swarm commands other than requests, answers and publishes.
    commands: Vec<NetCommand>,
    /// Answers to local requests.
    answers: Vec<(ReplyId, Answer)>,
    /// Peers it refused, with the reason.
    refused: Vec<(PeerId, String)>,
    /// Gossip topics it subscribed to.
    subscribed: HashSet<TopicHash>,
    /// Witness states it committed: (author, size).
    witnessed: Vec<(alertmesh_protocol::NodePublicKey, u64)>,
}

/// States wired together in memory: requests, answers and gossip go between them.
struct Mesh {
    t0: Instant,
    elapsed: Duration,
    nodes: Vec<TestNode>,
    /// Org root keys, by org index, to sign charters with.
    roots: Vec<OrgRootKey>,
    links: HashSet<(usize, usize)>,
    /// (node, inbound) → (requester, its tag).
    inbound: HashMap<(usize, InboundId), (usize, RequestTag)>,
    next_inbound: u64,
    next_reply: u64,
    queue: VecDeque<(usize, Input)>,
    /// Sync pages served: (server, envelopes in the page).
    pages: Vec<(usize, usize)>,
    /// Directory requests each node sent.
    directory_asks: Vec<usize>,
    /// If set, gossip and answers go through the verification pool's check first, as
    /// the driver sends them.
    checker: Option<BatchVerifier>,
    /// Sync pages handed to the state checked by the pool.
    checked_pages: usize,
}

impl Mesh {
    /// A network of `n` orgs with one node each (`simple_plan`: one topic `all`).
    fn new(n: usize, seed: u64) -> Self {
        Self::from_plan(simple_plan(n, NOW), seed)
    }

    /// The network of `plan`, whose orgs have one node each.
    fn from_plan(plan: NetworkPlan, seed: u64) -> Self {
        let n = plan.orgs.len();
        let network: Network = plan.build(&mut ChaCha20Rng::seed_from_u64(seed));
        let genesis = network.genesis.clone();
        let mut roots = Vec::new();
        let mut nodes = Vec::new();
        let t0 = Instant::now();
        for (i, org) in network.orgs.into_iter().enumerate() {
            roots.push(org.root);
            let node = org.nodes.into_iter().next().unwrap();
            let me = Identity {
                key: node.key,
                agreement: node.agreement,
                cert: node.cert,
            };
            let peer = crate::net::peer_id_of(&me.key.public()).unwrap();
            let charters = CharterChain::from_genesis(genesis.clone(), &genesis.hash()).unwrap();
            let dir = tempfile::tempdir().unwrap();
            let network_id = genesis.charter().network_id;
            let writer = store::spawn_writer(store::open(dir.path(), &network_id).unwrap());
            let parts = StateParts {
                me,
                charters,
                loaded: Loaded::default(),
                history: Box::new(store::SqliteHistory::open(dir.path()).unwrap()),
                metrics: Metrics::new(),
                sync_period: Duration::from_secs(15),
                max_peers: 32,
                request_limits: RequestLimits::default(),
            };
            let now = Now {
                instant: t0,
                unix_ms: NOW,
            };
            let rng = StdRng::seed_from_u64(seed + i as u64);
            let (state, startup) = CoreState::new(parts, now, rng).unwrap();
            nodes.push(TestNode {
                state,
                dir,
                writer,
                peer,
                envelopes: HashMap::new(),
                alerts: Vec::new(),
                charters: Vec::new(),
                commands: Vec::new(),
                answers: Vec::new(),
                refused: Vec::new(),
                subscribed: HashSet::new(),
                witnessed: Vec::new(),
            });
            let mut other = Vec::new();
            for output in startup {
                if let Output::Net(NetCommand::Subscribe(name)) = output {
                    nodes[i].subscribed.insert(TopicHash::from_raw(name));
                } else {
                    other.push(output);
                }
            }
            assert!(other.is_empty(), "a fresh node writes nothing at start");
        }
        Self {
            t0,
            elapsed: Duration::ZERO,
            nodes,
            roots,
            links: HashSet::new(),
            inbound: HashMap::new(),
            next_inbound: 0,
            next_reply: 0,
            queue: VecDeque::new(),
            pages: Vec::new(),
            directory_asks: vec![0; n],
            checker: None,
            checked_pages: 0,
        }
    }

    /// `input` as the driver hands it to the state: through the verification pool's
    /// check if the mesh has a checker.
    fn checked(&mut self, input: Input) -> Input {
        let Some(verifier) = self.checker.as_mut() else {
            return input;
        };
        match input {
            Input::Gossip(msg) => verify_pool::check(verifier, Job::Gossip(msg)),
            Input::Response { peer, tag, data } => {
                let input = verify_pool::check(verifier, Job::Response { peer, tag, data });
                if matches!(input, Input::CheckedPage { .. }) {
                    self.checked_pages += 1;
                }
                input
            }
            other => other,
        }
    }

    fn now(&self) -> Now {
        Now {
            instant: self.t0 + self.elapsed,
            unix_ms: NOW + self.elapsed.as_millis() as u64,
        }
    }

    fn index(&self, peer: &PeerId) -> usize {
        self.nodes.iter().position(|n| n.peer == *peer).unwrap()
    }

    fn connected(&self, a: usize, b: usize) -> bool {
        self.links.contains(&(a.min(b), a.max(b)))
    }

    /// Whether `a` has admitted `b`.
    fn admitted(&self, a: usize, b: usize) -> bool {
        let peer = self.nodes[b].peer;
        self.nodes[a]
            .commands
            .iter()
            .any(|c| matches!(c, NetCommand::Admit(p) if *p == peer))
            && self.connected(a, b)
    }

    fn connect(&mut self, a: usize, b: usize) {
        self.links.insert((a.min(b), a.max(b)));
        let (pa, pb) = (self.nodes[a].peer, self.nodes[b].peer);
        self.queue.push_back((a, Input::Connected(pb)));
        self.queue.push_back((b, Input::Connected(pa)));
        self.run();
    }

    /// Advances the clock and ticks every node.
    fn advance(&mut self, by: Duration) {
        self.elapsed += by;
        for i in 0..self.nodes.len() {
            self.queue.push_back((i, Input::Tick));
        }
        self.run();
    }

    fn publish(&mut self, i: usize, topic: &str, tlp: Tlp, title: &str) -> ReplyId {
        self.next_reply += 1;
        let reply = ReplyId(self.next_reply);
        let content = Content::Alert(alert(title, NOW + self.elapsed.as_millis() as u64));
        self.queue.push_back((
            i,
            Input::Publish {
                reply,
                topic: topic.into(),
                tlp,
                content,
            },
        ));
        self.run();
        reply
    }

    /// Handles one input and returns its outputs without executing them.
    fn handle_only(&mut self, i: usize, input: Input) -> Vec<Output> {
        let now = self.now();
        self.nodes[i].state.handle(now, input)
    }

    /// Handles queued inputs until none is left.
    fn run(&mut self) {
        let mut steps = 0;
        while let Some((i, input)) = self.queue.pop_front() {
            steps += 1;
            assert!(steps < 100_000, "the mesh does not settle");
            let outputs = self.handle_only(i, input);
            self.execute(i, outputs);
        }
    }

    fn execute(&mut self, i: usize, outputs: Vec<Output>) {
        for output in outputs {
            match output {
                Output::Net(cmd) => self.net(i, cmd),
                Output::Respond { inbound, response } => self.answer(i, inbound, response),
                Output::RespondRefused {
                    inbound, fallback, ..
                } => self.answer(i, inbound, fallback),
                Output::Refuse {
                    peer,
                    refusal,
                    inbound,
                    ..
                } => {
                    let reason = match wire::Response::decode(&refusal) {
                        Ok(wire::Response::Refused(r)) => r,
                        other => panic!("not a refusal: {other:?}"),
                    };
                    self.nodes[i].refused.push((peer, reason));
                    if let Some(inbound) = inbound {
                        self.answer(i, inbound, refusal);
                    }
                    let j = self.index(&peer);
                    self.links.remove(&(i.min(j), i.max(j)));
                    let pi = self.nodes[i].peer;
                    self.queue.push_back((i, Input::Disconnected(peer)));
                    self.queue.push_back((j, Input::Disconnected(pi)));
                }
                Output::Store { writes, then } => {
                    self.commit(i, writes);
                    self.after_commit(i, then);
                }
                Output::FetchHeld { held, conflicting } => {
                    let held = self.nodes[i].envelopes.get(&held).cloned();
                    let outputs = self.handle_only(i, Input::Held { held, conflicting });
                    self.execute(i, outputs);
                }
                Output::ServePage {
                    inbound,
                    peer,
                    plan,
                } => {
                    let node = &self.nodes[i];
                    let envelopes: Vec<Vec<u8>> = node
                        .envelopes
                        .values()
                        .filter(|b| {
                            let env = SignedEnvelope::decode(b, b.len()).unwrap();
                            let h = env.header();
                            h.topic_id == plan.topic && plan.wanted.contains(&(h.author, h.seq))
                        })
                        .cloned()
                        .collect();
                    let bytes = envelopes.iter().map(Vec::len).sum();
                    self.pages.push((i, envelopes.len()));
                    let page = wire::SyncPage {
                        topic: plan.topic,
                        certs: plan.certs.into_values().collect(),
                        envelopes,
                        more: plan.more,
                    };
                    self.answer(i, inbound, wire::Response::Sync(page).encode());
                    let outputs = self.handle_only(i, Input::PageServed { peer, bytes });
                    self.execute(i, outputs);
                }
                Output::RecordFork(_) => {}
                Output::Answer(reply, answer) => self.nodes[i].answers.push((reply, answer)),
            }
        }
    }

    fn net(&mut self, i: usize, cmd: NetCommand) {
        match cmd {
            NetCommand::Request { peer, data, tag } => {
                let j = self.index(&peer);
                if !self.connected(i, j) {
                    return;
                }
                if matches!(wire::Request::decode(&data), Ok(wire::Request::Directory)) {
                    self.directory_asks[i] += 1;
                }
                self.next_inbound += 1;
                let inbound = InboundId(self.next_inbound);
                self.inbound.insert((j, inbound), (i, tag));
                let from = self.nodes[i].peer;
                self.queue.push_back((
                    j,
                    Input::Request {
                        peer: from,
                        data,
                        inbound,
                    },
                ));
            }
            NetCommand::Publish(topic, data) => self.gossip(i, topic, data),
            NetCommand::Subscribe(name) => {
                self.nodes[i].subscribed.insert(TopicHash::from_raw(name));
            }
            NetCommand::Unsubscribe(name) => {
                self.nodes[i].subscribed.remove(&TopicHash::from_raw(name));
            }
            other => self.nodes[i].commands.push(other),
        }
    }

    /// Answers the request `inbound` of node `i`.
    fn answer(&mut self, i: usize, inbound: InboundId, data: Vec<u8>) {
        let (requester, tag) = self.inbound.remove(&(i, inbound)).unwrap();
        if self.connected(i, requester) {
            let peer = self.nodes[i].peer;
            let input = self.checked(Input::Response { peer, tag, data });
            self.queue.push_back((requester, input));
        }
    }

    /// Gossips a message of `i` to every neighbour that admitted it and subscribes.
    fn gossip(&mut self, i: usize, topic: TopicHash, data: Vec<u8>) {
        let source = self.nodes[i].peer;
        for j in 0..self.nodes.len() {
            if j != i && self.admitted(j, i) && self.nodes[j].subscribed.contains(&topic) {
                let msg = Gossip {
                    source,
                    id: MessageId::new(&alertmesh_protocol::ids::sha256(&data)),
                    topic: topic.clone(),
                    data: data.clone(),
                };
                let input = self.checked(Input::Gossip(msg));
                self.queue.push_back((j, input));
            }
        }
    }

    fn commit(&mut self, i: usize, writes: Vec<Write>) {
        let node = &mut self.nodes[i];
        for write in &writes {
            match write {
                Write::Envelope(row) => {
                    let env = &row.envelope;
                    node.envelopes.insert(env.id(), env.as_bytes().to_vec());
                }
                Write::Alert(row) => {
                    node.alerts
                        .push((row.topic_name.clone(), row.org.clone(), row.content.kind()))
                }
                Write::Charter { version, .. } => node.charters.push(*version),
                Write::Witnessed { author, size, .. } => node.witnessed.push((*author, *size)),
                _ => {}
            }
        }
        let committed = futures::executor::block_on(async {
            node.writer.write_all(writes).await.unwrap().await.unwrap()
        });
        assert_eq!(committed, Ok(()));
    }

    fn after_commit(&mut self, i: usize, then: AfterCommit) {
        match then {
            AfterCommit::Nothing => {}
            AfterCommit::Respond { inbound, response } => self.answer(i, inbound, response),
            AfterCommit::OfferCheckpoint {
                peer,
                tag,
                old_size,
                size,
                note,
                topics,
            } => {
                let reader = store::open_reader(self.nodes[i].dir.path()).unwrap();
                let req =
                    store::tlog::add_checkpoint(&reader, old_size, size, note, &topics).unwrap();
                let data = wire::Request::AddCheckpoint(req).encode();
                self.net(i, NetCommand::Request { peer, data, tag });
            }
            AfterCommit::ServeInclusions { inbound, size, ids } => {
                let reader = store::open_reader(self.nodes[i].dir.path()).unwrap();
                let proofs = store::tlog::inclusion_proofs(&reader, size, &ids).unwrap();
                self.answer(i, inbound, wire::Response::Inclusions(proofs).encode());
            }
            AfterCommit::Report { message, source } => {
                let report = NetCommand::Report(message, source, MessageAcceptance::Accept);
                self.nodes[i].commands.push(report);
            }
            AfterCommit::Gossip {
                topic,
                data,
                receipt,
            } => {
                self.gossip(i, topic, data);
                if let Some((reply, receipt)) = receipt {
                    let answer = Answer::Published(Ok(receipt));
                    self.nodes[i].answers.push((reply, answer));
                }
            }
        }
    }

    /// Connects every pair and lets admission and key packages settle.
    fn connect_all(&mut self) {
        for a in 0..self.nodes.len() {
            for b in a + 1..self.nodes.len() {
                self.connect(a, b);
            }
        }
        self.advance(Duration::from_secs(1));
    }

    fn answer_of(&self, i: usize, reply: ReplyId) -> &Answer {
        &self.nodes[i]
            .answers
            .iter()
            .find(|(r, _)| *r == reply)
            .expect("answered")
            .1
    }

    /// Publishes any content (an update, a retraction) on `topic`.
    fn publish_content(&mut self, i: usize, topic: &str, content: Content) -> ReplyId {
        self.next_reply += 1;
        let reply = ReplyId(self.next_reply);
        let input = Input::Publish {
            reply,
            topic: topic.into(),
            tlp: Tlp::Green,
            content,
        };
        self.queue.push_back((i, input));
        self.run();
        reply
    }

    /// Rebuilds node `i`'s state from its database, as a restarted daemon does.
    fn restart(&mut self, i: usize) {
        let node = &self.nodes[i];
        let me = &node.state.me;
        let me = Identity {
            key: alertmesh_protocol::NodeKey::from_secret_bytes(&me.key.secret_bytes()),
            agreement: alertmesh_protocol::AgreementKey::from_secret_bytes(
                &me.agreement.secret_bytes(),
            ),
            cert: me.cert.clone(),
        };
        let genesis = node.state.charters.history()[0].clone();
        let charters = CharterChain::from_genesis(genesis.clone(), &genesis.hash()).unwrap();
        let reader = store::open_reader(node.dir.path()).unwrap();
        let parts = StateParts {
            me,
            charters,
            loaded: store::load(&reader, node.dir.path()).unwrap(),
            history: Box::new(store::SqliteHistory::open(node.dir.path()).unwrap()),
            metrics: Metrics::new(),
            sync_period: Duration::from_secs(15),
            max_peers: 32,
            request_limits: RequestLimits::default(),
        };
        let rng = StdRng::seed_from_u64(1000 + i as u64);
        let (state, startup) = CoreState::new(parts, self.now(), rng).unwrap();
        self.nodes[i].state = state;
        self.execute(i, startup);
        self.run();
    }

    fn status(&mut self, i: usize) -> super::Status {
        let now = self.now();
        self.nodes[i].state.status(now)
    }

    fn alerts_held(&self, i: usize) -> usize {
        self.nodes[i].alerts.len()
    }
}

fn alert(title: &str, now_ms: u64) -> Alert {
    Alert {
        kind: AlertKind::Indicator,
        title: title.into(),
        description: "Credential phishing targeting poll workers.".into(),
        severity: Severity::High,
        confidence: 80,
        observables: vec![Observable::Domain("vote-county-example.com".into())],
        labels: vec![],
        references: vec![],
        valid_from_ms: now_ms,
        valid_until_ms: None,
        related: vec![],
        stix: None,
    }
}

fn status_admitted(mesh: &mut Mesh, i: usize) -> usize {
    let now = mesh.now();
    mesh.nodes[i].state.status(now).admitted_peers
}

#[test]
fn members_admit_each_other_and_open_gossip_only_then() {
    let mut mesh = Mesh::new(2, 1);
    let p1 = mesh.nodes[1].peer;
    // The first thing a node does on a connection is send its hello; nothing opens yet.
    let outputs = mesh.handle_only(0, Input::Connected(p1));
    assert!(matches!(
        outputs.as_slice(),
        [Output::Net(NetCommand::Request { peer, .. })] if *peer == p1
    ));
    let mut mesh = Mesh::new(2, 1);
    mesh.connect(0, 1);
    assert!(mesh.admitted(0, 1) && mesh.admitted(1, 0));
    assert_eq!(status_admitted(&mut mesh, 0), 1);
    assert_eq!(status_admitted(&mut mesh, 1), 1);
    assert!(mesh.nodes.iter().all(|n| n.refused.is_empty()));
}

fn known_nodes(mesh: &mut Mesh, i: usize) -> usize {
    let now = mesh.now();
    mesh.nodes[i].state.status(now).known_nodes
}

#[test]
fn certificates_spread_by_directory_refresh_which_then_backs_off() {
    // A line 0 - 1 - 2, the second link admitted after the first: node 0 read node 1's
    // directory when 1 knew only itself and 0. Certificate announcements are not
    // forwarded in this mesh and the first anti-entropy round is 15 s away, so only a
    // refreshed directory brings node 2's certificate to node 0 within a second.
    let mut mesh = Mesh::new(3, 11);
    mesh.connect(0, 1);
    mesh.connect(1, 2);
    assert_eq!(known_nodes(&mut mesh, 0), 2);
    mesh.advance(Duration::from_secs(1));
    assert_eq!(
        known_nodes(&mut mesh, 0),
        3,
        "node 2's certificate reached node 0"
    );
    // Nothing new is left to learn: the pulls back off (2, 4, 8, … s; 60 without).
    let before = mesh.directory_asks[0];
    for _ in 0..120 {
        mesh.advance(Duration::from_secs(1));
    }
    let asked = mesh.directory_asks[0] - before;
    assert!(
        (1..=7).contains(&asked),
        "{asked} directory pulls in 120 s once nothing was new"
    );
}

#[test]
fn a_stranger_is_refused_and_a_silent_peer_times_out() {
    // Two networks: a node of the other one shows a certificate our charter does not know.
    let mut mesh = Mesh::new(2, 2);
    let other = Mesh::new(2, 3);
    let stranger = other.nodes[0].peer;
    let hello = wire::Request::Hello(wire::Hello {
        cert: other.nodes[0].state.me.cert.as_bytes().to_vec(),
    });
    mesh.handle_only(0, Input::Connected(stranger));
    let outputs = mesh.handle_only(
        0,
        Input::Request {
            peer: stranger,
            data: hello.encode(),
            inbound: InboundId(99),
        },
    );
    // Its certificate does not verify under our org's root: refused on its request.
    assert!(
        !outputs
            .iter()
            .any(|o| matches!(o, Output::Net(NetCommand::Admit(_))))
    );
    assert!(outputs.iter().any(|o| matches!(
        o,
        Output::Refuse { peer, inbound: Some(InboundId(99)), .. } if *peer == stranger
    )));
    // A peer that shows nothing is refused after the admission timeout.
    let silent = PeerId::random();
    mesh.handle_only(1, Input::Connected(silent));
    mesh.elapsed += ADMISSION_TIMEOUT + Duration::from_millis(1);
    let outputs = mesh.handle_only(1, Input::Tick);
    assert!(outputs.iter().any(|o| matches!(
        o,
        Output::Refuse { peer, .. } if *peer == silent
    )));
    // And a hello whose certificate is for another key is refused at once.
    let impostor = PeerId::random();
    mesh.handle_only(1, Input::Connected(impostor));
    let hello = wire::Request::Hello(wire::Hello {
        cert: mesh.nodes[0].state.me.cert.as_bytes().to_vec(),
    });
    let outputs = mesh.handle_only(
        1,
        Input::Request {
            peer: impostor,
            data: hello.encode(),
            inbound: InboundId(100),
        },
    );
    assert!(outputs.iter().any(|o| matches!(
        o,
        Output::Refuse { peer, inbound: Some(InboundId(100)), .. } if *peer == impostor
    )));
}

#[test]
fn a_publish_is_answered_and_gossiped_only_after_its_commit() {
    let mut mesh = Mesh::new(2, 4);
    mesh.connect_all();
    let outputs = mesh.handle_only(
        0,
        Input::Publish {
            reply: ReplyId(7),
            topic: "all".into(),
            tlp: Tlp::Green,
            content: Content::Alert(alert("first", NOW)),
        },
    );
    // Nothing is published or answered in the call itself: only writes with actions.
    assert!(
        outputs.iter().all(|o| matches!(o, Output::Store { .. })),
        "{outputs:?}"
    );
    let last = outputs.last().unwrap();
    assert!(matches!(
        last,
        Output::Store { then: AfterCommit::Gossip { receipt: Some((ReplyId(7), r)), .. }, .. }
            if r.seq == 2 && r.topic == "all" // after the key package, seq 1
    ));
    mesh.execute(0, outputs);
    mesh.run();
    assert!(matches!(
        mesh.answer_of(0, ReplyId(7)),
        Answer::Published(Ok(_))
    ));
    // The reader decrypted it, with the key package that went out first.
    assert_eq!(mesh.alerts_held(1), 1);
    assert_eq!(mesh.nodes[1].alerts[0].1, "org-0");
}

#[test]
fn gossip_is_reported_accept_only_from_its_commit() {
    let mut mesh = Mesh::new(2, 5);
    mesh.connect_all();
    // Node 0's alert, as it would be gossiped once committed.
    let outputs = mesh.handle_only(
        0,
        Input::Publish {
            reply: ReplyId(1),
            topic: "all".into(),
            tlp: Tlp::Green,
            content: Content::Alert(alert("x", NOW)),
        },
    );
    let Some(Output::Store {
        then: AfterCommit::Gossip { topic, data, .. },
        ..
    }) = outputs.last()
    else {
        panic!("{outputs:?}")
    };
    let p0 = mesh.nodes[0].peer;
    let gossip = Gossip {
        source: p0,
        id: MessageId::new(b"m"),
        topic: topic.clone(),
        data: data.clone(),
    };
    let outputs = mesh.handle_only(1, Input::Gossip(gossip));
    // Not accepted in the call: only a write whose action reports it.
    assert!(
        !outputs
            .iter()
            .any(|o| matches!(o, Output::Net(NetCommand::Report(..)))),
        "reported before its commit: {outputs:?}"
    );
    assert!(outputs.iter().any(|o| matches!(
        o,
        Output::Store {
            then: AfterCommit::Report { source, .. },
            ..
        } if *source == p0
    )));
}

#[test]
fn sync_pages_through_a_long_history() {
    sync_through_a_long_history(false);
}

#[test]
fn sync_pages_checked_by_the_pool_through_a_long_history() {
    sync_through_a_long_history(true);
}

#[test]
fn gossip_checked_by_the_pool_is_judged_as_before() {
    let mut mesh = Mesh::new(2, 5);
    mesh.connect_all();
    let outputs = mesh.handle_only(
        0,
        Input::Publish {
            reply: ReplyId(1),
            topic: "all".into(),
            tlp: Tlp::Green,
            content: Content::Alert(alert("x", NOW)),
        },
    );
    let Some(Output::Store {
        then: AfterCommit::Gossip { topic, data, .. },
        ..
    }) = outputs.last()
    else {
        panic!("{outputs:?}")
    };
    let (topic, data) = (topic.clone(), data.clone());
    let mut forged = data.clone();
    let n = forged.len();
    forged[n - 1] ^= 0x01;
    let p0 = mesh.nodes[0].peer;
    let mut verifier = BatchVerifier::new();
    let mut judge = |mesh: &mut Mesh, data: Vec<u8>| {
        let gossip = Gossip {
            source: p0,
            id: MessageId::new(&alertmesh_protocol::ids::sha256(&data)),
            topic: topic.clone(),
            data,
        };
        let input = verify_pool::check(&mut verifier, Job::Gossip(gossip));
        assert!(matches!(input, Input::CheckedGossip(_)), "{input:?}");
        mesh.handle_only(1, input)
    };
    // A forged signature: rejected at once, nothing stored.
    let outputs = judge(&mut mesh, forged);
    assert!(
        outputs.iter().any(|o| matches!(
            o,
            Output::Net(NetCommand::Report(_, _, MessageAcceptance::Reject))
        )),
        "{outputs:?}"
    );
    assert!(!outputs.iter().any(|o| matches!(o, Output::Store { .. })));
    // The genuine message: stored, and reported only from its commit.
    let outputs = judge(&mut mesh, data);
    assert!(
        !outputs
            .iter()
            .any(|o| matches!(o, Output::Net(NetCommand::Report(..)))),
        "reported before its commit: {outputs:?}"
    );
    assert!(outputs.iter().any(|o| matches!(
        o,
        Output::Store {
            then: AfterCommit::Report { source, .. },
            ..
        } if *source == p0
    )));
}

fn sync_through_a_long_history(checked: bool) {
    let mut mesh = Mesh::new(2, 6);
    if checked {
        mesh.checker = Some(BatchVerifier::new());
    }
    // Node 0 publishes more than one page while alone.
    let total = wire::MAX_PAGE_ENVELOPES + 40;
    for k in 0..total {
        mesh.publish(0, "all", Tlp::Green, &format!("alert {k}"));
    }
    mesh.connect_all();
    mesh.advance(Duration::from_secs(1));
    let held = mesh.nodes[1]
        .envelopes
        .values()
        .filter(|b| {
            SignedEnvelope::decode(b, b.len())
                .unwrap()
                .header()
                .topic_id
                != alertmesh_protocol::TopicId::control(&mesh.nodes[1].state.network())
        })
        .count();
    // Every alert (and node 0's key package) arrived, over at least two pages.
    assert!(held > total, "{held} of {total}");
    let pages_from_0 = mesh.pages.iter().filter(|(i, n)| *i == 0 && *n > 0).count();
    assert!(pages_from_0 >= 2, "{:?}", mesh.pages);
    if checked {
        assert!(mesh.checked_pages >= pages_from_0, "{}", mesh.checked_pages);
    }
}

#[test]
fn a_reader_syncs_the_chain_of_a_publisher_that_does_not_read() {
    let mut plan = simple_plan(2, NOW);
    let orgs: Vec<_> = plan.orgs.iter().map(|o| o.org_id.clone()).collect();
    plan.topics.push(TopicPlan {
        name: "tips".into(),
        readers: vec![orgs[1].clone()],
        publishers: orgs,
        max_tlp: Tlp::Red,
    });
    let mut mesh = Mesh::from_plan(plan, 12);
    // Node 0 publishes (a key package, then alerts) while alone: nobody got it by gossip.
    for k in 0..3 {
        mesh.publish(0, "tips", Tlp::Green, &format!("tip {k}"));
    }
    mesh.connect_all();
    mesh.advance(Duration::from_secs(1));
    let tips: Vec<_> = mesh.nodes[1]
        .alerts
        .iter()
        .filter(|(topic, org, _)| topic == "tips" && org == "org-0")
        .collect();
    assert_eq!(tips.len(), 3, "{:?}", mesh.nodes[1].alerts);
}

#[test]
fn a_busy_peer_is_asked_again_after_its_wait() {
    let mut mesh = Mesh::new(2, 7);
    mesh.connect_all();
    let p1 = mesh.nodes[1].peer;
    // A sync request of ours answered Busy: asked again only once the wait is over.
    let topic = alertmesh_protocol::TopicId::derive(&mesh.nodes[0].state.network(), "all");
    mesh.nodes[0].state.sync_rounds.insert((p1, topic), 1);
    mesh.nodes[0].state.outstanding.insert(
        RequestTag(9_999),
        (p1, super::state::Outstanding::Sync(topic)),
    );
    let busy = wire::Response::Busy {
        retry_after_ms: 500,
    };
    let outputs = mesh.handle_only(
        0,
        Input::Response {
            peer: p1,
            tag: RequestTag(9_999),
            data: busy.encode(),
        },
    );
    assert!(outputs.is_empty());
    mesh.elapsed += Duration::from_millis(200);
    let outputs = mesh.handle_only(0, Input::Tick);
    assert!(
        !outputs
            .iter()
            .any(|o| matches!(o, Output::Net(NetCommand::Request { .. })))
    );
    mesh.elapsed += Duration::from_millis(400);
    let outputs = mesh.handle_only(0, Input::Tick);
    assert!(outputs.iter().any(|o| matches!(
        o,
        Output::Net(NetCommand::Request { peer, .. }) if *peer == p1
    )));
}

#[test]
fn removing_a_reader_rotates_the_sender_key() {
    let mut mesh = Mesh::new(3, 8);
    mesh.connect_all();
    mesh.publish(0, "all", Tlp::Green, "before");
    assert_eq!(mesh.alerts_held(2), 1);
    let epoch_before = mesh.nodes[0].state.own.values().next().unwrap().key.epoch();
    // Governors 0 and 1 (threshold 2 of 3) remove org-2 as a reader of `all`.
    let current = mesh.nodes[0].state.charters.current().clone();
    let mut next = current.charter().clone();
    next.version += 1;
    next.prev_hash = current.hash();
    next.created_ms += 1;
    next.topics[0].readers.retain(|o| o.0 != "org-2");
    let mut signed = SignedCharter::unsigned(next);
    for g in [0, 1] {
        let org = alertmesh_protocol::OrgId(format!("org-{g}"));
        signed.sign(&org, &mesh.roots[g]);
    }
    mesh.queue.push_back((
        0,
        Input::SubmitCharter {
            reply: ReplyId(900),
            bytes: signed.as_bytes().to_vec(),
        },
    ));
    mesh.run();
    let answer = mesh.answer_of(0, ReplyId(900));
    assert!(matches!(answer, Answer::Submitted(Ok(2))), "{answer:?}");
    mesh.advance(Duration::from_secs(1));
    let epoch_after = mesh.nodes[0].state.own.values().next().unwrap().key.epoch();
    assert!(epoch_after > epoch_before, "{epoch_before} → {epoch_after}");
    mesh.publish(0, "all", Tlp::Green, "after");
    // Org-1 reads it; org-2, no longer a reader, does not.
    assert_eq!(mesh.alerts_held(1), 2);
    assert_eq!(mesh.alerts_held(2), 1);
}

#[test]
fn a_charter_needs_its_threshold_and_is_stored_and_gossiped() {
    let mut mesh = Mesh::new(3, 9);
    mesh.connect_all();
    let current = mesh.nodes[0].state.charters.current().clone();
    let mut next = current.charter().clone();
    next.version += 1;
    next.prev_hash = current.hash();
    next.created_ms += 1;
    let mut one = SignedCharter::unsigned(next.clone());
    one.sign(&alertmesh_protocol::OrgId("org-0".into()), &mesh.roots[0]);
    mesh.queue.push_back((
        0,
        Input::SubmitCharter {
            reply: ReplyId(1),
            bytes: one.as_bytes().to_vec(),
        },
    ));
    mesh.run();
    assert!(matches!(
        mesh.answer_of(0, ReplyId(1)),
        Answer::Submitted(Err(_))
    ));
    assert!(mesh.nodes[0].charters.is_empty());
    one.sign(&alertmesh_protocol::OrgId("org-1".into()), &mesh.roots[1]);
    mesh.queue.push_back((
        0,
        Input::SubmitCharter {
            reply: ReplyId(2),
            bytes: one.as_bytes().to_vec(),
        },
    ));
    mesh.run();
    assert!(matches!(
        mesh.answer_of(0, ReplyId(2)),
        Answer::Submitted(Ok(2))
    ));
    // Stored by the submitter and, through gossip, by every other member.
    for node in &mesh.nodes {
        assert_eq!(node.charters, vec![2]);
        assert_eq!(node.state.charters.current().charter().version, 2);
    }
}

#[test]
fn a_peer_sending_garbage_is_scored_down_and_the_penalty_halves() {
    let mut mesh = Mesh::new(2, 10);
    mesh.connect_all();
    let p1 = mesh.nodes[1].peer;
    let network = mesh.nodes[0].state.network();
    let topic = TopicHash::from_raw(
        alertmesh_protocol::TopicId::derive(&network, "all").gossip_name(&network),
    );
    let outputs = mesh.handle_only(
        0,
        Input::Gossip(Gossip {
            source: p1,
            id: MessageId::new(b"garbage"),
            topic,
            data: b"not an envelope".to_vec(),
        }),
    );
    let score = outputs.iter().find_map(|o| match o {
        Output::Net(NetCommand::Score(p, s)) if *p == p1 => Some(*s),
        _ => None,
    });
    assert_eq!(score, Some(-super::penalty::OFFENCE_PENALTY));
    assert!(outputs.iter().any(|o| matches!(
        o,
        Output::Net(NetCommand::Report(_, _, MessageAcceptance::Reject))
    )));
    mesh.elapsed += super::penalty::PENALTY_HALF_LIFE;
    let outputs = mesh.handle_only(0, Input::Tick);
    let score = outputs.iter().find_map(|o| match o {
        Output::Net(NetCommand::Score(p, s)) if *p == p1 => Some(*s),
        _ => None,
    });
    assert_eq!(score, Some(-super::penalty::OFFENCE_PENALTY / 2.0));
}

#[test]
fn a_publish_on_an_unknown_topic_is_refused_without_a_write() {
    let mut mesh = Mesh::new(1, 11);
    let outputs = mesh.handle_only(
        0,
        Input::Publish {
            reply: ReplyId(1),
            topic: "nope".into(),
            tlp: Tlp::Green,
            content: Content::Alert(alert("x", NOW)),
        },
    );
    assert!(matches!(
        outputs.as_slice(),
        [Output::Answer(
            ReplyId(1),
            Answer::Published(Err(super::PublishError::UnknownTopic(_)))
        )]
    ));
}

/// The receipt of a publish that succeeded.
fn receipt(mesh: &Mesh, i: usize, reply: ReplyId) -> super::answers::Receipt {
    match mesh.answer_of(i, reply) {
        Answer::Published(Ok(r)) => r.clone(),
        other => panic!("not published: {other:?}"),
    }
}

#[test]
fn a_restarted_node_keeps_chains_authorship_and_duplicates_from_its_database() {
    let mut mesh = Mesh::new(2, 21);
    mesh.connect_all();
    let replies: Vec<ReplyId> = (0..5)
        .map(|k| mesh.publish(0, "all", Tlp::Green, &format!("alert {k}")))
        .collect();
    let first = receipt(&mesh, 0, replies[0]);
    let last = receipt(&mesh, 0, replies[4]);
    mesh.advance(Duration::from_secs(1));
    mesh.advance(Duration::from_secs(1));
    // Everything is committed, so the overlay is empty: what follows reads the database.
    for i in 0..2 {
        assert_eq!(mesh.nodes[i].state.chains.unflushed_len(), 0, "node {i}");
    }
    let before = mesh.status(1);
    assert_eq!((before.chain_gaps, before.undecryptable), (0, 0));

    // An old envelope offered again is a duplicate: ignored, not stored.
    let old = mesh.nodes[0].envelopes[&first.id].clone();
    let topic = TopicHash::from_raw(
        alertmesh_protocol::TopicId::derive(&mesh.nodes[0].state.network(), "all")
            .gossip_name(&mesh.nodes[0].state.network()),
    );
    let gossip = Gossip {
        source: mesh.nodes[0].peer,
        id: MessageId::new(b"again"),
        topic: topic.clone(),
        data: old,
    };
    let outputs = mesh.handle_only(1, Input::Gossip(gossip));
    assert!(
        outputs.iter().all(|o| !matches!(o, Output::Store { .. })),
        "{outputs:?}"
    );
    assert!(outputs.iter().any(|o| matches!(
        o,
        Output::Net(NetCommand::Report(_, _, MessageAcceptance::Ignore))
    )));

    // Both restart: the same envelopes and no gap, from the chain heads.
    mesh.restart(0);
    mesh.restart(1);
    let after = mesh.status(1);
    assert_eq!(after.envelopes, before.envelopes);
    assert_eq!((after.chain_gaps, after.undecryptable), (0, 0));
    mesh.connect_all();

    // The author amends its first alert after the restart: its authorship is read from
    // the database, its chain continues at the head, and the reader applies it.
    let alerts_before = mesh.alerts_held(1);
    let update = Content::Update(alertmesh_protocol::alert::AlertUpdate {
        original: first.id,
        alert: alert("alert 0, revised", NOW),
    });
    let reply = mesh.publish_content(0, "all", update);
    let amended = receipt(&mesh, 0, reply);
    assert!(amended.seq > last.seq, "{} after {}", amended.seq, last.seq);
    mesh.advance(Duration::from_secs(1));
    assert_eq!(mesh.alerts_held(1), alerts_before + 1);
    assert_eq!(mesh.nodes[1].alerts.last().unwrap().2, Kind::Update);
    assert_eq!(mesh.status(1).chain_gaps, 0);

    // Another org may not amend it, whatever the database holds.
    let forged = Content::Retraction(alertmesh_protocol::alert::Retraction {
        original: first.id,
        reason: "not yours".into(),
    });
    let reply = mesh.publish_content(1, "all", forged);
    assert!(matches!(
        mesh.answer_of(1, reply),
        Answer::Published(Err(super::answers::PublishError::NotAuthor(_)))
    ));
}

#[test]
fn an_equivocation_against_committed_history_yields_evidence_once() {
    let mut mesh = Mesh::new(2, 22);
    mesh.connect_all();
    let replies: Vec<ReplyId> = (0..4)
        .map(|k| mesh.publish(0, "all", Tlp::Green, &format!("alert {k}")))
        .collect();
    let second = receipt(&mesh, 0, replies[1]);
    mesh.advance(Duration::from_secs(1));
    mesh.advance(Duration::from_secs(1));
    assert_eq!(mesh.nodes[1].state.chains.unflushed_len(), 0);

    // Node 0's key signs a second envelope at the seq of its second alert.
    let held = SignedEnvelope::decode(&mesh.nodes[0].envelopes[&second.id], 1 << 20).unwrap();
    let h = held.header().clone();
    let state = &mut mesh.nodes[0].state;
    let key = &state.own[&h.topic_id].key;
    let draft = alertmesh_protocol::Draft {
        network_id: h.network_id,
        topic_id: h.topic_id,
        seq: h.seq,
        prev: h.prev,
        charter_version: h.charter_version,
        timestamp_ms: h.timestamp_ms + 1,
        kind: Kind::Alert,
        key_epoch: h.key_epoch,
        tlp: h.tlp,
    };
    let content = Content::Alert(alert("the other history", NOW));
    let twin = SignedEnvelope::seal_encrypted(
        &state.me.key,
        &draft,
        key,
        &content.encode(),
        &mut StdRng::seed_from_u64(5),
    )
    .unwrap();
    let topic = TopicHash::from_raw(h.topic_id.gossip_name(&h.network_id));
    let offer = |mesh: &mut Mesh| {
        let gossip = Gossip {
            source: mesh.nodes[0].peer,
            id: MessageId::new(b"twin"),
            topic: topic.clone(),
            data: twin.as_bytes().to_vec(),
        };
        mesh.queue.push_back((1, Input::Gossip(gossip)));
        mesh.run();
    };
    offer(&mut mesh);
    assert_eq!(mesh.status(1).evidence, 1);
    mesh.advance(Duration::from_secs(1));
    mesh.advance(Duration::from_secs(1));

    // After a restart the evidence is counted from the database and not made again.
    mesh.restart(1);
    assert_eq!(mesh.status(1).evidence, 1);
    mesh.connect_all();
    offer(&mut mesh);
    assert_eq!(mesh.status(1).evidence, 1);
}

fn checkpoint_status(mesh: &mut Mesh, i: usize) -> super::status::Status {
    let now = mesh.now();
    mesh.nodes[i].state.status(now)
}

#[test]
fn a_checkpoint_is_cosigned_by_the_other_orgs_and_witnessed_everywhere() {
    let mut mesh = Mesh::new(3, 40);
    mesh.connect_all();
    for n in 0..3 {
        mesh.publish(0, "all", Tlp::Green, &format!("alert {n}"));
    }
    // Nothing is signed before N (60 s by default) has passed.
    assert!(checkpoint_status(&mut mesh, 0).checkpoint.is_none());
    mesh.advance(Duration::from_secs(61));
    let s = checkpoint_status(&mut mesh, 0);
    let cp = s.checkpoint.expect("a checkpoint");
    assert_eq!(cp.size, s.log_size);
    assert_eq!(cp.cosigning_orgs, 2);
    assert!(cp.witnessed);
    let author = mesh.nodes[0].state.me.key.public();
    for i in 1..3 {
        // Each witness committed its new state before it answered.
        assert!(mesh.nodes[i].witnessed.contains(&(author, cp.size)));
        let s = checkpoint_status(&mut mesh, i);
        assert!(
            s.witnessed_logs >= 1,
            "node {i} holds the witnessed checkpoint"
        );
        assert_eq!(s.withheld, 0);
        assert_eq!(s.split_views, 0);
    }
    // A second round extends the first: witnesses check consistency from what they hold.
    mesh.publish(0, "all", Tlp::Green, "alert 3");
    mesh.advance(Duration::from_secs(61));
    let cp2 = checkpoint_status(&mut mesh, 0).checkpoint.unwrap();
    assert!(cp2.size > cp.size && cp2.witnessed);
    assert!(mesh.nodes[1].witnessed.contains(&(author, cp2.size)));
}

/// Sends node `from`'s add-checkpoint `req` to node `to` directly; returns the answer.
fn offer(
    mesh: &mut Mesh,
    from: usize,
    to: usize,
    req: alertmesh_protocol::tlog::AddCheckpoint,
) -> wire::Response {
    let peer = mesh.nodes[from].peer;
    let data = wire::Request::AddCheckpoint(req).encode();
    let mut outputs = mesh.handle_only(
        to,
        Input::Request {
            peer,
            data,
            inbound: InboundId(7_000),
        },
    );
    // A cosignature comes after its write is committed.
    let mut answer = None;
    for o in outputs.drain(..) {
        match o {
            Output::Respond { response, .. } => answer = Some(response),
            Output::Store {
                writes,
                then: AfterCommit::Respond { response, .. },
            } => {
                mesh.commit(to, writes);
                answer = Some(response);
            }
            _ => {}
        }
    }
    wire::Response::decode(&answer.expect("answered")).unwrap()
}

#[test]
fn a_witness_refuses_inconsistent_forged_and_oversized_checkpoints() {
    use alertmesh_protocol::tlog::{AddCheckpoint, Checkpoint, SplitView, tree};
    let mut mesh = Mesh::new(2, 41);
    mesh.connect_all();
    let key = NodeKeyRef(0);
    let net = mesh.nodes[0].state.network();
    let author = mesh.nodes[0].state.me.key.public();
    let cp = |size, root| Checkpoint {
        network: net,
        author,
        size,
        root,
        heads: vec![],
    };
    let sign = |mesh: &Mesh, c: &Checkpoint| c.sign(&mesh.nodes[key.0].state.me.key).to_bytes();
    // A first checkpoint of 4 leaves is cosigned (nothing to be consistent with yet).
    let first = sign(&mesh, &cp(4, [1; 32]));
    let req = |old_size, consistency: Vec<[u8; 32]>, checkpoint| AddCheckpoint {
        old_size,
        consistency,
        checkpoint,
        inclusions: vec![],
    };
    assert!(matches!(
        offer(&mut mesh, 0, 1, req(0, vec![], first.clone())),
        wire::Response::Cosigned(_)
    ));
    mesh.advance(Duration::from_secs(1));
    // The wrong old size: tlog-witness 409 with the size it holds.
    let next = sign(&mesh, &cp(6, [2; 32]));
    assert_eq!(
        offer(&mut mesh, 0, 1, req(3, vec![], next.clone())),
        wire::Response::WitnessConflict { size: 4 }
    );
    mesh.advance(Duration::from_secs(1));
    // A proof that does not lead from the old root to the new one: refused.
    let bogus = vec![[3; 32], [4; 32]];
    assert!(
        matches!(offer(&mut mesh, 0, 1, req(4, bogus, next.clone())), wire::Response::Refused(r) if r.contains("consistency"))
    );
    mesh.advance(Duration::from_secs(1));
    // An oversized proof: refused before any hashing.
    let huge = vec![[0; 32]; tree::MAX_CONSISTENCY_HASHES + 1];
    assert!(
        matches!(offer(&mut mesh, 0, 1, req(4, huge, next.clone())), wire::Response::Refused(r) if r.contains("bounds"))
    );
    mesh.advance(Duration::from_secs(1));
    // A forged signature: refused.
    let forged = String::from_utf8(next.clone())
        .unwrap()
        .replace("\n6\n", "\n7\n")
        .into_bytes();
    assert!(
        matches!(offer(&mut mesh, 0, 1, req(4, vec![], forged)), wire::Response::Refused(r) if r.contains("signature"))
    );
    mesh.advance(Duration::from_secs(1));
    // Same size, another root: refused, and the two checkpoints are split-view evidence.
    let other = sign(&mesh, &cp(4, [9; 32]));
    assert!(
        matches!(offer(&mut mesh, 0, 1, req(4, vec![], other.clone())), wire::Response::Refused(r) if r.contains("split view"))
    );
    assert_eq!(checkpoint_status(&mut mesh, 1).split_views, 1);
    SplitView::new(first, other, &net)
        .unwrap()
        .verify(&net)
        .unwrap();
    // The witness state never moved past what it cosigned.
    assert_eq!(mesh.nodes[1].witnessed, vec![(author, 4)]);
}

/// Index of the node whose key signs, for readability.
#[derive(Clone, Copy)]
struct NodeKeyRef(usize);
