//! The request-response protocol (PROTOCOL.md §17.2): requests of peers, throttled per
//! peer and dispatched to admission or sync, and the answers to our own requests, matched
//! to what they asked for by tag.

use super::{Core, Outstanding};
use crate::net::{NetCommand, RequestTag};
use alertmesh_protocol::wire;
use libp2p::PeerId;
use libp2p::request_response::ResponseChannel;
use std::time::{Duration, Instant};

impl Core {
    /// Sends a request, remembering what it asked for.
    pub(super) async fn request(&mut self, peer: PeerId, data: Vec<u8>, what: Outstanding) {
        self.next_tag += 1;
        let tag = RequestTag(self.next_tag);
        self.outstanding.insert(tag, (peer, what));
        self.send(NetCommand::Request { peer, data, tag }).await;
    }

    pub(super) async fn respond(
        &self,
        channel: ResponseChannel<Vec<u8>>,
        response: wire::Response,
    ) {
        self.send(NetCommand::Respond(channel, response.encode()))
            .await;
    }

    pub(super) async fn on_request_frame(
        &mut self,
        peer: PeerId,
        data: &[u8],
        channel: ResponseChannel<Vec<u8>>,
    ) {
        let request = match wire::Request::decode(data) {
            Ok(r) => r,
            Err(e) => {
                self.refuse(peer, &format!("malformed request: {e}"), Some(channel))
                    .await;
                return;
            }
        };
        let now = Instant::now();
        let limits = self.request_limits;
        let Some(state) = self.peers.get_mut(&peer) else {
            // Refused (or gone) while its request was queued: the swarm task answers with
            // the refusal's reason if it has one.
            let fallback = wire::Response::Refused("not admitted".into()).encode();
            self.send(NetCommand::RespondRefused {
                peer,
                channel,
                fallback,
            })
            .await;
            return;
        };
        if let Err(wait) = state.throttle.take(limits, now) {
            self.metrics.throttled_requests.inc();
            let retry_after_ms = u32::try_from(wait.as_millis()).unwrap_or(u32::MAX).max(1);
            self.respond(channel, wire::Response::Busy { retry_after_ms })
                .await;
            return;
        }
        match request {
            wire::Request::Hello(hello) => self.on_hello(peer, hello, Some(channel)).await,
            wire::Request::Directory => self.on_directory_request(peer, channel).await,
            wire::Request::Sync(req) => {
                let response = match self.serve_sync(peer, &req) {
                    Ok(page) => {
                        let bytes = page.envelopes.iter().map(Vec::len).sum();
                        if let Some(p) = self.peers.get_mut(&peer) {
                            p.throttle.spend_bytes(bytes);
                        }
                        wire::Response::Sync(page)
                    }
                    Err(reason) => wire::Response::Refused(reason),
                };
                self.respond(channel, response).await;
            }
        }
    }

    pub(super) async fn on_response(&mut self, peer: PeerId, what: Outstanding, data: &[u8]) {
        let response = match wire::Response::decode(data) {
            Ok(r) => r,
            Err(e) => {
                self.refuse(peer, &format!("malformed response: {e}"), None)
                    .await;
                return;
            }
        };
        match (what, response) {
            (Outstanding::Hello, wire::Response::Hello(hello)) => {
                self.on_hello(peer, hello, None).await;
            }
            (Outstanding::Directory, wire::Response::Directory(d)) => {
                self.on_directory(peer, d).await;
            }
            (Outstanding::Sync(_), wire::Response::Sync(page)) => {
                self.on_sync_page(peer, page).await;
            }
            (Outstanding::Sync(topic), wire::Response::Busy { retry_after_ms }) => {
                let wait = Duration::from_millis(u64::from(retry_after_ms).clamp(10, 10_000));
                self.sync_retries.push((Instant::now() + wait, peer, topic));
            }
            (what, wire::Response::Refused(reason)) => {
                tracing::warn!(%peer, ?what, %reason, "peer refused our request");
                if let Outstanding::Sync(topic) = what {
                    self.sync_rounds.remove(&(peer, topic));
                }
            }
            (what, other) => {
                tracing::debug!(%peer, ?what, answer = ?std::mem::discriminant(&other), "unexpected answer ignored");
                if let Outstanding::Sync(topic) = what {
                    self.sync_rounds.remove(&(peer, topic));
                }
            }
        }
    }
}
