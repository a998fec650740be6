//! `SignedCharter::decode`; if it decodes, `CharterChain::verify_genesis`,
//! `Charter::check_well_formed`, and an offer to the fixture's charter chain.
#![no_main]

#[path = "../fixture.rs"]
mod fixture;

use alertmesh_protocol::{CharterChain, SignedCharter};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let f = fixture::fixture();
    if let Ok(charter) = SignedCharter::decode(data) {
        assert_eq!(charter.as_bytes(), data);
        let _ = charter.hash();
        let _ = CharterChain::verify_genesis(&charter);
        let _ = charter.charter().check_well_formed();
        let mut chain = f.charters.clone();
        let _ = chain.offer(charter);
        let _ = chain.current();
    }
});
