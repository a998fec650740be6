//! `Evidence::decode`, then `verify`.
#![no_main]

#[path = "../fixture.rs"]
mod fixture;

use alertmesh_protocol::Evidence;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(evidence) = Evidence::decode(data, fixture::MAX_ENVELOPE) {
        assert_eq!(evidence.encode(), data);
        if let Ok(proven) = evidence.verify(fixture::MAX_ENVELOPE) {
            assert_ne!(proven.ids.0, proven.ids.1);
        }
    }
});
