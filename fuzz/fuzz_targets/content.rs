//! `envelope::decode_content` for each encrypted kind (the plaintext after decryption).
#![no_main]

use alertmesh_protocol::envelope::decode_content;
use alertmesh_protocol::Kind;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for kind in [Kind::Alert, Kind::Update, Kind::Retraction] {
        if let Ok(content) = decode_content(kind, data) {
            // Strict decoding: exactly one encoding per value.
            assert_eq!(content.encode(), data);
        }
    }
});
