//! The verification pool: worker threads that decode received envelopes and check their
//! signatures ([`alertmesh_protocol::batch::BatchVerifier`], with cached author keys)
//! before the core sees them, so the core task spends no time on curve arithmetic and
//! checks run on every core.
//!
//! The driver hands each gossip message and each answer to one of our requests to
//! [`VerifyPool::submit`] and feeds the [`Input`] that comes back to the state, in the
//! order it submitted them. A worker judges nothing: the state applies every validation
//! rule, in order, taking rule 7's answer from the worker's check
//! ([`alertmesh_protocol::Validator::validate_checked`]).

use super::state::{CheckedGossip, CheckedPage, Input};
use crate::net::{Gossip, RequestTag};
use alertmesh_protocol::batch::BatchVerifier;
use alertmesh_protocol::wire;
use libp2p::PeerId;
use std::sync::{Arc, Mutex, mpsc};
use tokio::sync::oneshot;

/// Most worker threads (one per core, up to this).
const MAX_WORKERS: usize = 8;

/// What a worker checks.
pub enum Job {
    /// A gossip message (its data may be an envelope).
    Gossip(Gossip),
    /// An answer to one of our requests (it may be a sync page).
    Response {
        /// The peer.
        peer: PeerId,
        /// Our request's tag.
        tag: RequestTag,
        /// The raw frame.
        data: Vec<u8>,
    },
}

type Task = (Job, oneshot::Sender<Input>);

/// Handle to the worker threads; they stop when it is dropped.
pub struct VerifyPool {
    tx: mpsc::Sender<Task>,
}

impl VerifyPool {
    /// Starts one worker per available core (at least one).
    pub fn start() -> std::io::Result<Self> {
        let workers = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .clamp(1, MAX_WORKERS);
        Self::with_workers(workers)
    }

    /// Starts `workers` worker threads.
    pub fn with_workers(workers: usize) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Task>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..workers.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("alertmesh-verify-{i}"))
                .spawn(move || work(&rx))?;
        }
        Ok(Self { tx })
    }

    /// Queues a job; the answer is the state's input for it.
    pub fn submit(&self, job: Job) -> oneshot::Receiver<Input> {
        let (done, answer) = oneshot::channel();
        // If the workers are gone the receiver reports it (the sender is dropped).
        let _ = self.tx.send((job, done));
        answer
    }
}

/// A worker's loop: one job at a time until the pool is dropped.
fn work(rx: &Mutex<mpsc::Receiver<Task>>) {
    let mut verifier = BatchVerifier::new();
    loop {
        let task = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok((job, done)) = task else {
            return;
        };
        let _ = done.send(check(&mut verifier, job));
    }
}

/// Decodes and checks the envelopes of a job.
pub fn check(verifier: &mut BatchVerifier, job: Job) -> Input {
    match job {
        Job::Gossip(Gossip {
            source,
            id,
            topic,
            data,
        }) => Input::CheckedGossip(CheckedGossip {
            source,
            id,
            topic,
            checked: verifier.check_one(data),
        }),
        Job::Response { peer, tag, data } => match wire::Response::decode(&data) {
            Ok(wire::Response::Sync(page)) => Input::CheckedPage {
                peer,
                tag,
                page: CheckedPage {
                    topic: page.topic,
                    certs: page.certs,
                    // One by one: faster than `BatchVerifier::check` here, see its docs.
                    envelopes: verifier.check_each(
                        page.envelopes
                            .into_iter()
                            .take(wire::MAX_PAGE_ENVELOPES)
                            .collect(),
                    ),
                    more: page.more,
                },
            },
            // Anything else is the state's to decode and judge, as it came.
            _ => Input::Response { peer, tag, data },
        },
    }
}
