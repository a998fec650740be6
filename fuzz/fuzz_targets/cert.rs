//! `SignedNodeCert::decode`, then `verify` against org 0's root key of the fixture; and
//! the same bytes as a `CertRequest` (decode, proof of possession, issue by org 0's root).
#![no_main]

#[path = "../fixture.rs"]
mod fixture;

use alertmesh_protocol::{CertRequest, SignedNodeCert};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let f = fixture::fixture();
    if let Ok(cert) = SignedNodeCert::decode(data) {
        assert_eq!(cert.as_bytes(), data);
        let _ = cert.verify(&f.network_id, &f.org0_root());
        let _ = cert.valid_at(fixture::VALIDATE_AT_MS);
    }
    if let Ok(request) = CertRequest::decode(data) {
        assert_eq!(request.as_bytes(), data);
        if request.verify_pop().is_ok() {
            // The org root signs any request with a valid proof of possession; the result
            // verifies whenever its network and validity interval are acceptable.
            let body = request.cert().clone();
            let issued = SignedNodeCert::issue(&f.network.orgs[0].root, request)
                .expect("a request with a valid proof of possession is issued");
            let verdict = issued.verify(&f.network_id, &f.org0_root());
            if body.network_id == f.network_id && body.not_before_ms <= body.not_after_ms {
                assert!(verdict.is_ok(), "{verdict:?}");
            }
            let again = SignedNodeCert::decode(issued.as_bytes()).expect("issued cert decodes");
            assert_eq!(again.cert(), &body);
        }
    }
});
