//! `ControlMessage::decode` (and the strict decode of what it carries).
#![no_main]

#[path = "../fixture.rs"]
mod fixture;

use alertmesh_protocol::{ControlMessage, SignedCharter, SignedEnvelope, SignedNodeCert};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = ControlMessage::decode(data) {
        assert_eq!(msg.encode(), data);
        match &msg {
            ControlMessage::Charter(b) => drop(SignedCharter::decode(b)),
            ControlMessage::Cert(b) => drop(SignedNodeCert::decode(b)),
            ControlMessage::Envelope(b) => drop(SignedEnvelope::decode(b, fixture::MAX_ENVELOPE)),
            ControlMessage::Checkpoint(b) => drop(alertmesh_protocol::tlog::Note::parse(b)),
            ControlMessage::SplitView(b) => drop(alertmesh_protocol::tlog::SplitView::decode(b)),
        }
    }
});
