//! The request-response protocol (PROTOCOL.md §17.2): requests of peers, throttled per
//! peer and dispatched to admission or sync, and the answers to our own requests, matched
//! to what they asked for by tag.

use super::ingest::Incoming;
use super::state::{CoreState, InboundId, Output, Outstanding};
use crate::net::{NetCommand, RequestTag};
use alertmesh_protocol::wire;
use libp2p::PeerId;

impl CoreState {
    /// Sends a request, remembering what it asked for.
    pub(super) fn request(&mut self, peer: PeerId, data: Vec<u8>, what: Outstanding) {
        self.next_tag += 1;
        let tag = RequestTag(self.next_tag);
        self.outstanding.insert(tag, (peer, what));
        self.send(NetCommand::Request { peer, data, tag });
    }

    pub(super) fn respond(&mut self, inbound: InboundId, response: wire::Response) {
        self.out.push(Output::Respond {
            inbound,
            response: response.encode(),
        });
    }

    pub(super) fn on_request_frame(&mut self, peer: PeerId, data: &[u8], inbound: InboundId) {
        let _span = tracing::debug_span!("request").entered();
        let request = match wire::Request::decode(data) {
            Ok(r) => r,
            Err(e) => {
                self.refuse(peer, &format!("malformed request: {e}"), Some(inbound));
                return;
            }
        };
        let (now, limits) = (self.now.instant, self.request_limits);
        let Some(state) = self.peers.get_mut(&peer) else {
            // Refused (or gone) while its request was queued: the swarm task answers with
            // the refusal's reason if it has one.
            let fallback = wire::Response::Refused("not admitted".into()).encode();
            self.out.push(Output::RespondRefused {
                peer,
                inbound,
                fallback,
            });
            return;
        };
        if let Err(wait) = state.throttle.take(limits, now) {
            self.metrics.throttled_requests.inc();
            let retry_after_ms = u32::try_from(wait.as_millis()).unwrap_or(u32::MAX).max(1);
            self.respond(inbound, wire::Response::Busy { retry_after_ms });
            return;
        }
        match request {
            wire::Request::Hello(hello) => self.on_hello(peer, hello, Some(inbound)),
            wire::Request::Directory => self.on_directory_request(peer, inbound),
            wire::Request::AddCheckpoint(req) => self.on_add_checkpoint(peer, req, inbound),
            wire::Request::Checkpoints => {
                let list = self.witnessed_checkpoints();
                self.respond(inbound, wire::Response::Checkpoints(list));
            }
            wire::Request::Inclusions { size, ids } => {
                self.on_inclusions_request(inbound, peer, size, ids)
            }
            wire::Request::Sync(req) => match self.plan_page(peer, &req) {
                Ok(plan) => self.out.push(Output::ServePage {
                    inbound,
                    peer,
                    plan,
                }),
                Err(reason) => self.respond(inbound, wire::Response::Refused(reason)),
            },
        }
    }

    pub(super) fn on_response(&mut self, peer: PeerId, what: Outstanding, data: &[u8]) {
        let _span = tracing::debug_span!("response", ?what).entered();
        let response = match wire::Response::decode(data) {
            Ok(r) => r,
            Err(e) => {
                self.refuse(peer, &format!("malformed response: {e}"), None);
                return;
            }
        };
        match (what, response) {
            (Outstanding::Hello, wire::Response::Hello(hello)) => {
                self.on_hello(peer, hello, None);
            }
            (Outstanding::Directory, wire::Response::Directory(d)) => {
                self.on_directory(peer, d);
            }
            (Outstanding::Sync(_), wire::Response::Sync(page)) => {
                let envelopes = page.envelopes.iter().map(|e| Incoming::Bytes(e));
                self.on_sync_page(peer, page.topic, &page.certs, envelopes, page.more);
            }
            (Outstanding::Sync(topic), wire::Response::Busy { retry_after_ms }) => {
                self.retry_sync_after(peer, topic, retry_after_ms);
            }
            (Outstanding::AddCheckpoint { witness, size }, wire::Response::Cosigned(line)) => {
                self.on_cosigned(peer, witness, size, &line);
            }
            (
                Outstanding::AddCheckpoint { witness, .. },
                wire::Response::WitnessConflict { size },
            ) => {
                self.on_witness_conflict(witness, size);
            }
            (Outstanding::AddCheckpoint { witness, .. }, wire::Response::Refused(reason)) => {
                self.on_offer_failed(witness, &reason);
            }
            (Outstanding::AddCheckpoint { witness, .. }, _) => {
                self.on_offer_failed(witness, "unexpected answer");
            }
            (Outstanding::Checkpoints, wire::Response::Checkpoints(list)) => {
                self.on_checkpoints(list);
            }
            (Outstanding::Inclusions { author }, wire::Response::Inclusions(proofs)) => {
                self.on_inclusions(author, proofs);
            }
            (Outstanding::Inclusions { author }, _) => self.on_inclusions_failed(author),
            (what, wire::Response::Refused(reason)) => {
                tracing::warn!(%reason, "peer refused our request");
                if let Outstanding::Sync(topic) = what {
                    self.sync_rounds.remove(&(peer, topic));
                }
            }
            (what, other) => {
                tracing::debug!(answer = ?std::mem::discriminant(&other), "unexpected answer ignored");
                if let Outstanding::Sync(topic) = what {
                    self.sync_rounds.remove(&(peer, topic));
                }
            }
        }
    }
}
