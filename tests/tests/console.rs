//! The operator console in a real browser (Debian's `chromium`, driven by Playwright for
//! Python, `tests/python/console_check.py`) against two real daemons, org-0 and org-1:
//! login and logout, live alerts over SSE, publishing through the form, a TLP refused,
//! hostile alert content shown as text with nothing executed or fetched, CSRF and
//! session refusals, error pages. Screenshots of the main screens are written to a
//! temporary directory, or to `docs/console/` with `UPDATE_SCREENSHOTS=1`.
//!
//! Without Playwright or Chromium the test is skipped, except under `CI=true`, where it
//! fails.

use alertmesh_protocol::Tlp;
use alertmesh_protocol::bootstrap::{NetworkPlan, TopicPlan, simple_plan};
use alertmesh_protocol::ids::OrgId;
use alertmesh_tests::process::{Cluster, TestGuard};
use alertmesh_tests::python;
use anyhow::Context;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;

/// A topic name that is HTML and a quote-breaking attribute value.
const HOSTILE_TOPIC: &str = "ops\"'><svg onload=alert('topic')>";
/// Org-1's display name: HTML with an event handler.
const HOSTILE_ORG_NAME: &str = "Org <img src=x onerror=alert('org')> \"One\"";

fn plan() -> NetworkPlan {
    let mut p = simple_plan(2, alertmesh_node::clock::now_ms() - 60_000);
    p.orgs[1].name = HOSTILE_ORG_NAME.into();
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
            readers: both.clone(),
            publishers: both.clone(),
            max_tlp: Tlp::Green,
        },
        TopicPlan {
            name: HOSTILE_TOPIC.into(),
            readers: both.clone(),
            publishers: both,
            max_tlp: Tlp::Amber,
        },
    ];
    p
}

/// An alert whose every field carries a payload: script tags, event handlers,
/// `javascript:` URLs, SVG, attribute-breaking quotes, requests to another origin, and a
/// very long unbroken string.
fn hostile_alert(other_origin: &str) -> Value {
    let long = "A".repeat(8_000);
    json!({
        "kind": "indicator",
        "title": format!("<script>alert('title')</script><img src=\"{other_origin}/t.png\" onerror=alert(1)>\"'><b>x"),
        "description": format!("</p><svg onload=alert('svg')><a href=\"javascript:alert('js')\">click</a>\
            <iframe src=\"{other_origin}/frame\"></iframe><style>body{{display:none}}</style>{long}"),
        "severity": "high",
        "confidence": 90,
        "observables": [
            {"type": "domain", "value": "\"><script>alert('domain')</script>"},
            {"type": "domain", "value": "D".repeat(2000)},
            {"type": "url", "value": "javascript:alert(document.cookie)"},
            {"type": "url", "value": format!("{other_origin}/<img src=x onerror=alert(2)>")},
            {"type": "email", "value": "x@y.example\" onmouseover=\"alert(3)"},
            {"type": "hashtag", "value": "<svg><script>alert('hashtag')</script></svg>"},
            {"type": "social-account", "value": {"platform": "<marquee>", "handle": "'onfocus=alert(4) autofocus='"}},
        ],
        "labels": ["<img src=x onerror=alert(5)>", "L".repeat(2000)],
        "references": [format!("{other_origin}/ref"), "javascript:alert('ref')"],
        "valid_from_ms": 1_600_000_000_000u64,
        "valid_until_ms": null,
        "related": [],
    })
}

fn rich_alert() -> Value {
    json!({
        "kind": "indicator",
        "title": "Phishing kit against county election offices",
        "description": "Lookalike login pages for county election staff, hosted on fresh domains.",
        "severity": "high",
        "confidence": 80,
        "observables": [
            {"type": "domain", "value": "vote-county-example.com"},
            {"type": "url", "value": "https://vote-county-example.com/login"},
            {"type": "ipv4", "value": [198, 51, 100, 7]},
            {"type": "email", "value": "elections@vote-county-example.com"},
            {"type": "file-sha256", "value": vec![0xab; 32]},
            {"type": "social-account", "value": {"platform": "Twitter", "handle": "@fake_poll_news"}},
        ],
        "labels": ["election-2020"],
        "references": ["https://example.org/case/17"],
        "valid_from_ms": 1_600_000_000_000u64,
        "valid_until_ms": null,
        "related": [],
    })
}

#[test]
fn console_in_a_real_browser() -> anyhow::Result<()> {
    if !python::available(
        "Playwright for Python or Debian's chromium",
        "import playwright.sync_api, os\nassert os.access('/usr/bin/chromium', os.X_OK)",
        "apt-get install chromium; python3 -m pip install playwright",
    )? {
        return Ok(());
    }
    let _guard = TestGuard::new("console_in_a_real_browser", Duration::from_secs(300));
    let mut cluster = Cluster::with_plan(&plan(), 1818)?;
    cluster.start_all(&[0, 1])?;
    cluster.wait_mesh(&[0, 1])?;
    let url = |i: usize| format!("http://{}", cluster.daemons[i].api_addr());
    // The other origin the payloads point at: org-1's API (a request there would be seen).
    let other_origin = url(1);
    let c1 = cluster.daemons[1].client();
    let publish = |topic: &str, tlp: &str, content: Value| -> anyhow::Result<String> {
        let mut body = content;
        body["topic"] = json!(topic);
        body["tlp"] = json!(tlp);
        let r: Value = c1.post("/v1/alerts", &body)?;
        Ok(r["id"].as_str().context("receipt without id")?.to_string())
    };
    let rich = publish("all", "AMBER", json!({ "alert": rich_alert() }))?;
    let hostile = publish(
        HOSTILE_TOPIC,
        "GREEN",
        json!({ "alert": hostile_alert(&other_origin) }),
    )?;
    // Both arrived on org-0 before the browser looks.
    let c0 = cluster.daemons[0].client();
    alertmesh_tests::process::wait_until("org-1's alerts on org-0", || {
        c0.get::<Value>("/v1/alerts?limit=1000")
            .map(|v| {
                let ids: Vec<&str> = v["alerts"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|a| a["id"].as_str())
                    .collect();
                ids.contains(&rich.as_str()) && ids.contains(&hostile.as_str())
            })
            .unwrap_or(false)
    })?;
    let dir = tempfile::tempdir()?;
    let shots = if std::env::var("UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/console")
    } else {
        dir.path().join("screenshots")
    };
    std::fs::create_dir_all(&shots)?;
    let cfg = json!({
        "node0": url(0),
        "node1": url(1),
        "token": alertmesh_sim::files::TOKEN,
        "rich_id": rich,
        "hostile_id": hostile,
        "hostile_title": hostile_alert(&other_origin)["title"],
        "hostile_topic": HOSTILE_TOPIC,
        "hostile_org_name": HOSTILE_ORG_NAME,
        "screenshots": shots,
    });
    python::run("console_check.py", &cfg, dir.path())?;
    cluster.check_clean(&[0, 1])?;
    Ok(())
}
