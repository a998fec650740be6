//! `wire::Request::decode` and `wire::Response::decode` (the request-response protocol),
//! and the strict decode of the certificates, charters and envelopes they carry.
#![no_main]

#[path = "../fixture.rs"]
mod fixture;

use alertmesh_protocol::wire::{Directory, Hello, Request, Response, SyncRequest};
use alertmesh_protocol::{SignedCharter, SignedEnvelope, SignedNodeCert};
use libfuzzer_sys::fuzz_target;

fn hello(h: &Hello) {
    let _ = SignedNodeCert::decode(&h.cert);
}

fn directory(d: &Directory) {
    for c in &d.charters {
        let _ = SignedCharter::decode(c);
    }
    for c in &d.certs {
        let _ = SignedNodeCert::decode(c);
    }
}

fn sync(s: &SyncRequest) {
    for summary in &s.have {
        for seq in [0, 1, 2, u64::MAX] {
            let _ = summary.holds(seq);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = Request::decode(data) {
        assert_eq!(request.encode(), data);
        match &request {
            Request::Hello(h) => hello(h),
            Request::Sync(s) => sync(s),
            Request::Directory | Request::Checkpoints | Request::Inclusions { .. } => {}
            Request::AddCheckpoint(a) => {
                let _ = a.within_bounds();
                let _ = alertmesh_protocol::tlog::Note::parse(&a.checkpoint);
            }
        }
    }
    if let Ok(response) = Response::decode(data) {
        assert_eq!(response.encode(), data);
        match &response {
            Response::Hello(h) => hello(h),
            Response::Refused(_) | Response::Busy { .. } | Response::WitnessConflict { .. } => {}
            Response::Cosigned(line) => {
                if let Ok(l) = std::str::from_utf8(line) {
                    let _ = alertmesh_protocol::tlog::NoteSignature::parse_line(
                        l.trim_end_matches('\n'),
                    );
                }
            }
            Response::Checkpoints(list) => {
                for n in list {
                    let _ = alertmesh_protocol::tlog::Note::parse(n);
                }
            }
            Response::Inclusions(list) => {
                for i in list {
                    let _ = i.verify(i.index.saturating_add(1), &[0; 32]);
                }
            }
            Response::Directory(d) => directory(d),
            Response::Sync(page) => {
                for c in &page.certs {
                    let _ = SignedNodeCert::decode(c);
                }
                for e in &page.envelopes {
                    let _ = SignedEnvelope::decode(e, fixture::MAX_ENVELOPE);
                }
            }
        }
    }
});
