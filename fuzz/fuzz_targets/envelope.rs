//! `SignedEnvelope::decode` then `verify_signature` (and decryption with the fixture's
//! sender key), and `Validator::validate` against the fixed network.
#![no_main]

#[path = "../fixture.rs"]
mod fixture;

use alertmesh_protocol::ids::sha256;
use alertmesh_protocol::{Context, SignedEnvelope, Source, Validator, Verdict};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let f = fixture::fixture();
    let decoded = SignedEnvelope::decode(data, fixture::MAX_ENVELOPE);
    if let Ok(env) = &decoded {
        assert_eq!(env.as_bytes(), data);
        assert_eq!(env.id().0, sha256(data));
        let _ = env.verify_signature();
        let _ = env.open(&f.sender_key);
    }
    let ctx = Context {
        charters: &f.charters,
        certs: &f.certs,
        chains: &f.chains,
        now_ms: fixture::VALIDATE_AT_MS,
    };
    for source in [Source::Gossip, Source::Sync] {
        let mut validator = Validator::new();
        if let Verdict::Accept(accepted) = validator.validate(&ctx, data, source) {
            // Accept implies a strictly decoded envelope with a valid signature.
            let env = decoded.as_ref().expect("accepted envelope decodes");
            assert_eq!(&accepted.envelope, env);
            assert!(env.verify_signature().is_ok());
        }
    }
});
