//! `KeyPackage::decode`, then `open` with a fixed node's agreement key.
#![no_main]

#[path = "../fixture.rs"]
mod fixture;

use alertmesh_protocol::KeyPackage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let f = fixture::fixture();
    if let Ok(pkg) = KeyPackage::decode(data) {
        assert_eq!(pkg.encode(), data);
        let me = &f.network.orgs[1].nodes[0].agreement;
        let _ = pkg.open(&f.network_id, &f.author(), me);
    }
});
