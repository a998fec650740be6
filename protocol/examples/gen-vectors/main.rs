//! Prints the known-answer test vectors of PROTOCOL.md as JSON.
//!
//! ```text
//! cargo run -p alertmesh-protocol --example gen-vectors > protocol/testdata/vectors.json
//! cargo run -p alertmesh-protocol --example gen-vectors -- --worked-example
//! cargo run -p alertmesh-protocol --example gen-vectors -- --audit > protocol/testdata/audit-vectors.json
//! ```
//!
//! The output is deterministic (fixed seed); `protocol/tests/vectors.rs` regenerates it
//! and fails if the checked-in file differs.
#![allow(missing_docs)]

mod audit;
mod vectors;

fn main() {
    if std::env::args().any(|a| a == "--audit") {
        print!("{}", audit::to_json(&audit::build()));
        return;
    }
    let v = vectors::build();
    if std::env::args().any(|a| a == "--worked-example") {
        print!("{}", vectors::worked_example(&v));
    } else {
        print!("{}", vectors::to_json(&v));
    }
}
