//! TAXII 2.1 and MISP with the real clients against real daemons: the Python
//! `taxii2-client` (2.3.0), the OASIS `stix2-validator` and PyMISP's `MISPEvent`
//! (scripts in `tests/python/`). Two daemons, org-0 and org-1; topic `all` (both read and
//! publish, maximum TLP:AMBER) and `bulletin` (both read, only org-0 publishes).
//!
//! Without the Python clients the test is skipped, except under `CI=true`, where it fails.

use alertmesh_protocol::Tlp;
use alertmesh_protocol::bootstrap::{NetworkPlan, TopicPlan, simple_plan};
use alertmesh_protocol::ids::OrgId;
use alertmesh_tests::process::{Cluster, TestGuard};
use alertmesh_tests::python;
use anyhow::{Context, ensure};
use serde_json::{Value, json};
use std::process::Command;
use std::time::Duration;

const RICH_TITLE: &str = "Phishing kit against county election offices";
const UPDATED_TITLE: &str = "Fake results site (confirmed by registrar)";

fn plan() -> NetworkPlan {
    let mut p = simple_plan(2, alertmesh_node::clock::now_ms() - 60_000);
    let both = vec![OrgId("org-0".into()), OrgId("org-1".into())];
    p.topics = vec![
        TopicPlan {
            name: "all".into(),
            readers: both.clone(),
            publishers: both.clone(),
            max_tlp: Tlp::Amber,
        },
        TopicPlan {
            name: "bulletin".into(),
            readers: both,
            publishers: vec![OrgId("org-0".into())],
            max_tlp: Tlp::Green,
        },
    ];
    p
}

/// Whether the Python clients are importable; under `CI=true` their absence is an error.
fn python_clients() -> anyhow::Result<bool> {
    python::available(
        "the Python TAXII/MISP clients",
        "import taxii2client, stix2validator, pymisp, requests\n\
         from importlib.metadata import version\n\
         assert version('taxii2-client') == '2.3.0', version('taxii2-client')",
        "python3 -m pip install taxii2-client==2.3.0 pymisp stix2-validator",
    )
}

fn alert(kind: &str, title: &str, observables: Value, related: Vec<String>) -> Value {
    json!({
        "kind": kind,
        "title": title,
        "description": format!("{title}: test data"),
        "severity": "high",
        "confidence": 80,
        "observables": observables,
        "labels": ["election-2020"],
        "references": ["https://example.org/case/17"],
        "valid_from_ms": 1_600_000_000_000u64,
        "valid_until_ms": null,
        "related": related,
    })
}

#[test]
fn taxii_and_misp_with_the_real_clients() -> anyhow::Result<()> {
    if !python_clients()? {
        return Ok(());
    }
    let _guard = TestGuard::new(
        "taxii_and_misp_with_the_real_clients",
        Duration::from_secs(300),
    );
    let mut cluster = Cluster::with_plan(&plan(), 1717)?;
    cluster.start_all(&[0, 1])?;
    cluster.wait_mesh(&[0, 1])?;
    let c0 = cluster.daemons[0].client();
    let publish = |tlp: &str, content: Value| -> anyhow::Result<String> {
        let mut body = content;
        body["topic"] = json!("all");
        body["tlp"] = json!(tlp);
        let r: Value = c0.post("/v1/alerts", &body)?;
        Ok(r["id"].as_str().context("receipt without id")?.to_string())
    };
    // Seven native alerts on `all`: every observable type, every kind, an update, a
    // retraction.
    let rich = publish(
        "AMBER",
        json!({"alert": alert("indicator", RICH_TITLE, json!([
            {"type": "domain", "value": "vote-county-example.com"},
            {"type": "url", "value": "https://vote-county-example.com/login"},
            {"type": "ipv4", "value": [198, 51, 100, 7]},
            {"type": "email", "value": "elections@vote-county-example.com"},
            {"type": "file-sha256", "value": vec![0xab; 32]},
            {"type": "phone", "value": "+15555550100"},
            {"type": "hashtag", "value": "stopthecount"},
            {"type": "social-account", "value": {"platform": "Twitter", "handle": "@fake_poll_news"}},
        ]), vec![])}),
    )?;
    publish(
        "GREEN",
        json!({"alert": alert("campaign", "Coordinated lookalike campaign", json!([]), vec![])}),
    )?;
    publish(
        "GREEN",
        json!({"alert": alert("advisory", "Advisory: registrar abuse contacts", json!([]), vec![])}),
    )?;
    publish(
        "GREEN",
        json!({"alert": alert("account-network", "Network of 40 fake local-news accounts", json!([]), vec![])}),
    )?;
    publish(
        "GREEN",
        json!({"alert": alert("sighting", "Seen on our platform", json!([]), vec![rich.clone()])}),
    )?;
    let to_update = publish(
        "GREEN",
        json!({"alert": alert("indicator", "Fake results site", json!([{"type": "domain", "value": "results-example.net"}]), vec![])}),
    )?;
    publish(
        "GREEN",
        json!({"update": {"original": to_update, "alert": alert("indicator", UPDATED_TITLE, json!([{"type": "domain", "value": "results-example.net"}]), vec![])}}),
    )?;
    let to_retract = publish(
        "GREEN",
        json!({"alert": alert("indicator", "Mistaken indicator", json!([{"type": "domain", "value": "innocent.example"}]), vec![])}),
    )?;
    publish(
        "GREEN",
        json!({"retraction": {"original": to_retract, "reason": "false positive"}}),
    )?;
    let network = cluster.network.genesis.charter().network_id;
    let url = |i: usize| format!("http://{}", cluster.daemons[i].api_addr());
    let common = json!({
        "node0": url(0),
        "node1": url(1),
        "token": alertmesh_sim::files::TOKEN,
    });
    let dir = tempfile::tempdir()?;
    let mut misp = common.clone();
    misp["events"] = json!(7);
    misp["org0_name"] = json!("Organization 0");
    misp["rich_title"] = json!(RICH_TITLE);
    misp["updated_title"] = json!(UPDATED_TITLE);
    python::run("misp_check.py", &misp, dir.path())?;
    // The MISP check imported two events: nine objects on `all`.
    let mut taxii = common;
    taxii["collection_all"] = json!(alertmesh_node::taxii::collection_id(&network, "all"));
    taxii["collection_bulletin"] =
        json!(alertmesh_node::taxii::collection_id(&network, "bulletin"));
    taxii["identity0"] = json!(alertmesh_node::stix::org_identity_id(&network, "org-0"));
    taxii["native_objects"] = json!(9);
    taxii["max_content_length"] = json!(alertmesh_node::taxii::MAX_CONTENT_LENGTH);
    python::run("taxii_check.py", &taxii, dir.path())?;

    // The CLI: `export misp --out` writes the feed the API serves; `import misp` lists
    // what does not map.
    let bin = alertmesh_tests::process::alertmesh_bin()?;
    let feed_dir = dir.path().join("feed");
    let out = Command::new(&bin)
        .args(["export", "misp", "--data-dir"])
        .arg(cluster.daemons[0].data_dir())
        .arg("--out")
        .arg(&feed_dir)
        .output()?;
    ensure!(
        out.status.success(),
        "export misp: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written: Value = serde_json::from_slice(&std::fs::read(feed_dir.join("manifest.json"))?)?;
    let served: Value = c0.get("/misp/manifest.json")?;
    ensure!(
        written == served,
        "export misp --out differs from the served feed"
    );
    for uuid in written.as_object().context("manifest is an object")?.keys() {
        ensure!(
            feed_dir.join(format!("{uuid}.json")).is_file(),
            "no {uuid}.json"
        );
    }
    let event_file = dir.path().join("event.json");
    std::fs::write(
        &event_file,
        json!({"Event": {"info": "Imported with the CLI", "Tag": [{"name": "tlp:green"}],
            "Attribute": [{"type": "domain", "value": "cli.example"},
                          {"type": "regkey", "value": "HKLM\\Software\\x"}]}})
        .to_string(),
    )?;
    let out = Command::new(&bin)
        .args(["import", "misp"])
        .arg(&event_file)
        .args(["--topic", "all", "--config"])
        .arg(&cluster.daemons[0].config_path)
        .output()?;
    ensure!(
        out.status.success(),
        "import misp: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: Value = serde_json::from_slice(&out.stdout)?;
    ensure!(
        answer["unmapped"][0]["type"] == "regkey" && answer["mapped"] == 1,
        "import misp answer {answer}"
    );
    cluster.check_clean(&[0, 1])?;
    Ok(())
}
