//! Checks `protocol/testdata/audit-vectors.json` (PROTOCOL.md §18.8): the file is what the
//! generator produces, every finding code of §18.6 is the target of at least one export,
//! and the reference verifier reports exactly the listed findings (code, severity,
//! record) on every export.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../examples/gen-vectors/audit.rs"]
mod generator;

use alertmesh_protocol::ids::CharterHash;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;

const REGENERATE: &str = "cargo run -p alertmesh-protocol --example gen-vectors -- --audit > protocol/testdata/audit-vectors.json";

fn file_text() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/audit-vectors.json");
    std::fs::read_to_string(path).expect("protocol/testdata/audit-vectors.json")
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn file_matches_the_generator() {
    let want = generator::to_json(&generator::build());
    assert!(
        file_text() == want,
        "protocol/testdata/audit-vectors.json is stale; regenerate it with `{REGENERATE}`"
    );
}

#[test]
fn every_code_has_a_vector_and_the_verifier_agrees() {
    let v: Value = serde_json::from_str(&file_text()).unwrap();
    let exports = v["exports"].as_array().unwrap();
    let mut targets = BTreeSet::new();
    for e in exports {
        let name = e["name"].as_str().unwrap();
        let target = e["target"].as_str().unwrap();
        targets.insert(target.to_string());
        let pinned = e["pinned_genesis"]
            .as_str()
            .map(|h| CharterHash(unhex(h).try_into().unwrap()));
        let report = generator::audit(&unhex(e["hex"].as_str().unwrap()), pinned);
        let got: Vec<Value> = generator::findings_of(&report)
            .into_iter()
            .map(|f| serde_json::to_value(f).unwrap())
            .collect();
        assert_eq!(&Value::Array(got.clone()), &e["findings"], "{name}");
        assert_eq!(report.ok, e["ok"].as_bool().unwrap(), "{name}");
        // The verdict is "no problem", and the severities are those of §18.6.
        let problems = got.iter().filter(|f| f["severity"] == "problem").count();
        assert_eq!(report.ok, problems == 0, "{name}");
        for f in &got {
            let code = f["code"].as_str().unwrap();
            let sev = generator::CODES
                .iter()
                .find(|(c, _)| *c == code)
                .unwrap_or_else(|| panic!("{name}: code {code} is not in §18.6"))
                .1;
            assert_eq!(f["severity"], sev, "{name}: {code}");
        }
        if target == "none" {
            assert!(got.is_empty(), "{name}");
        } else {
            assert!(got.iter().any(|f| f["code"] == target), "{name}");
        }
    }
    let missing: Vec<_> = generator::CODES
        .iter()
        .map(|(c, _)| *c)
        .filter(|c| !targets.contains(*c))
        .collect();
    assert!(
        missing.is_empty(),
        "codes without an export vector: {missing:?}"
    );
}
