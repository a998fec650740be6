//! Prints the known-answer test vectors of PROTOCOL.md as JSON.
//!
//! ```text
//! cargo run -p alertmesh-protocol --example gen-vectors > protocol/testdata/vectors.json
//! cargo run -p alertmesh-protocol --example gen-vectors -- --worked-example
//! ```
//!
//! The output is deterministic (fixed seed); `protocol/tests/vectors.rs` regenerates it
//! and fails if the checked-in file differs.
#![allow(missing_docs)]

mod vectors;

fn main() {
    let v = vectors::build();
    if std::env::args().any(|a| a == "--worked-example") {
        print!("{}", vectors::worked_example(&v));
    } else {
        print!("{}", vectors::to_json(&v));
    }
}
