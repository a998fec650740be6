//! Observable lookup, search and correlation (issue 23) on a real network: org `a`
//! reports `bad.example` on topic `t1`, org `b` reports it (and a URL on it) on `t2`.
//! Org `c` reads both topics, org `d` only `t1`: `c` finds both reports by two orgs, `d`
//! only `a`'s. A retraction removes `b`'s support; bad requests get typed 400s.

use alertmesh_protocol::alert::{Alert, AlertKind, Observable, Retraction, Severity};
use alertmesh_protocol::{Content, Tlp};
use alertmesh_sim::harness::{Builder, Harness, Sent};
use alertmesh_tests::{WAIT, api_get};
use anyhow::{Context, ensure};
use serde_json::Value;
use std::net::SocketAddr;

fn alert(title: &str, observables: Vec<Observable>) -> Content {
    Content::Alert(Alert {
        kind: AlertKind::Indicator,
        title: title.into(),
        description: "seen against county election offices".into(),
        severity: Severity::High,
        confidence: 80,
        observables,
        labels: vec!["election-2026".into()],
        references: vec![],
        valid_from_ms: 0,
        valid_until_ms: None,
        related: vec![],
        stix: None,
    })
}

/// `GET path` on `api`, off the async threads.
async fn get(api: SocketAddr, path: &str) -> anyhow::Result<(u16, Value)> {
    let path = path.to_string();
    tokio::task::spawn_blocking(move || api_get(api, &path)).await?
}

/// A 200 answer's body.
async fn ok(api: SocketAddr, path: &str) -> anyhow::Result<Value> {
    let (status, body) = get(api, path).await?;
    ensure!(status == 200, "{path}: {status} {body}");
    Ok(body)
}

/// (org, topic, state) of every hit of an answer, sorted.
fn hits(page: &Value) -> Vec<(String, String, String)> {
    let mut out: Vec<_> = page["hits"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| {
            let s = |k: &str| h[k].as_str().unwrap_or("").to_string();
            (s("org"), s("topic"), s("state"))
        })
        .collect();
    out.sort();
    out
}

fn row(org: &str, topic: &str, state: &str) -> (String, String, String) {
    (org.into(), topic.into(), state.into())
}

async fn wait_all(net: &Harness, at: &str, sent: &[&Sent]) -> anyhow::Result<()> {
    for s in sent {
        net.wait_alert(at, s, WAIT).await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_reported_by_two_orgs_is_found_by_what_each_reader_may_read() -> anyhow::Result<()>
{
    let net = Builder::new()
        .org("a", 1)
        .org("b", 1)
        .org("c", 1)
        .org("d", 1)
        .topic("t1", &["a", "c", "d"], &["a"])
        .topic("t2", &["b", "c"], &["b"])
        .seed(231)
        .start()
        .await?;
    let from_a = net
        .publish(
            "a",
            "t1",
            Tlp::Green,
            alert(
                "Phishing kit on poll worker portal",
                vec![
                    Observable::Domain("Bad.Example.".into()),
                    Observable::Hashtag("#StopTheCount".into()),
                ],
            ),
        )
        .await?;
    let from_b = net
        .publish(
            "b",
            "t2",
            Tlp::Amber,
            alert(
                "Credential harvesting page",
                vec![
                    Observable::Domain("bad.example".into()),
                    Observable::Url("https://BAD.example/login".into()),
                ],
            ),
        )
        .await?;
    wait_all(&net, "c", &[&from_a, &from_b]).await?;
    wait_all(&net, "d", &[&from_a]).await?;
    let c = net.view("c")?.node.api_addr;
    let d = net.view("d")?.node.api_addr;

    // The reader of both topics: two reports, two orgs, each vouched for by its org.
    let page = ok(c, "/v1/lookup?value=BAD.EXAMPLE").await?;
    ensure!(
        hits(&page) == vec![row("a", "t1", "active"), row("b", "t2", "active")],
        "c: {page}"
    );
    ensure!(page["distinct_orgs"] == 2, "c: {page}");
    // Newest first (in this node's log order), each with its own TLP.
    let list = page["hits"].as_array().context("hits")?;
    let cursors: Vec<i64> = list.iter().filter_map(|h| h["cursor"].as_i64()).collect();
    ensure!(
        cursors.len() == 2 && cursors[0] > cursors[1],
        "order: {cursors:?}"
    );
    let mut tlps: Vec<(&str, &str)> = list
        .iter()
        .filter_map(|h| Some((h["org"].as_str()?, h["tlp"].as_str()?)))
        .collect();
    tlps.sort();
    ensure!(
        tlps == [("a", "TLP:GREEN"), ("b", "TLP:AMBER")],
        "TLPs: {tlps:?}"
    );
    // The reader of t1 only: half of it.
    let page = ok(d, "/v1/lookup?value=bad.example&type=domain").await?;
    ensure!(hits(&page) == vec![row("a", "t1", "active")], "d: {page}");
    ensure!(page["distinct_orgs"] == 1, "d: {page}");
    // A URL lookup finds the URL's alert and the alerts on its domain.
    let page = ok(c, "/v1/lookup?value=https%3A%2F%2Fbad.example%2Flogin").await?;
    ensure!(
        hits(&page).len() == 2 && page["keys"].as_array().map(Vec::len) == Some(2),
        "url: {page}"
    );
    let page = ok(d, "/v1/lookup?value=https%3A%2F%2Fbad.example%2Flogin").await?;
    ensure!(
        hits(&page) == vec![row("a", "t1", "active")],
        "d url: {page}"
    );

    // Correlations: the value two orgs reported, and each alert's shared values.
    let values = ok(c, "/v1/correlations?min_orgs=2").await?;
    ensure!(
        values["values"].as_array().map(Vec::len) == Some(1),
        "c: {values}"
    );
    ensure!(
        values["values"][0]["value"] == "bad.example"
            && values["values"][0]["orgs"] == serde_json::json!(["a", "b"]),
        "c: {values}"
    );
    ensure!(
        ok(d, "/v1/correlations?min_orgs=2").await?["values"] == serde_json::json!([]),
        "d sees one org"
    );
    let shared = ok(c, &format!("/v1/alerts/{}/correlations", from_a.id)).await?;
    ensure!(
        shared["shared"].as_array().map(Vec::len) == Some(1),
        "c: {shared}"
    );
    ensure!(
        shared["shared"][0]["alerts"][0]["id"] == from_b.id.as_str(),
        "c: {shared}"
    );
    let shared = ok(d, &format!("/v1/alerts/{}/correlations", from_a.id)).await?;
    ensure!(shared["shared"] == serde_json::json!([]), "d: {shared}");
    let (status, _) = get(d, &format!("/v1/alerts/{}/correlations", from_b.id)).await?;
    ensure!(status == 404, "d cannot read b's alert, got {status}");

    // Search, with filters.
    let page = ok(c, "/v1/search?q=harvesting").await?;
    ensure!(
        hits(&page) == vec![row("b", "t2", "active")],
        "search: {page}"
    );
    ensure!(
        hits(&ok(c, "/v1/search?q=county&org=a").await?) == vec![row("a", "t1", "active")],
        "org filter"
    );
    ensure!(
        hits(&ok(c, "/v1/search?q=county&tlp=amber").await?) == vec![row("b", "t2", "active")],
        "tlp filter"
    );
    ensure!(
        hits(&ok(d, "/v1/search?q=harvesting").await?).is_empty(),
        "d cannot read t2"
    );

    // b retracts: still shown, as retracted, and no longer support.
    let retraction = net
        .publish(
            "b",
            "t2",
            Tlp::Amber,
            Content::Retraction(Retraction {
                original: alertmesh_protocol::EnvelopeId(
                    hex::decode(&from_b.id)?
                        .try_into()
                        .map_err(|_| anyhow::anyhow!("id"))?,
                ),
                reason: "false positive".into(),
            }),
        )
        .await?;
    net.wait_alert("c", &retraction, WAIT).await?;
    let page = ok(c, "/v1/lookup?value=bad.example").await?;
    ensure!(
        hits(&page) == vec![row("a", "t1", "active"), row("b", "t2", "retracted")],
        "after the retraction: {page}"
    );
    ensure!(
        page["distinct_orgs"] == 1 && page["retracted"] == 1,
        "after the retraction: {page}"
    );
    ensure!(
        ok(c, "/v1/correlations?min_orgs=2").await?["values"] == serde_json::json!([]),
        "no support left"
    );

    // Bad requests: typed 400s, counted.
    for (path, reason) in [
        ("/v1/lookup?value=", "empty_query"),
        ("/v1/lookup?value=x&type=ipv5", "unknown_type"),
        ("/v1/lookup?value=300.1.2.3&type=ipv4", "invalid_value"),
        ("/v1/lookup?value=bad.example&cursor=abc", "invalid_cursor"),
        ("/v1/search?q=%22(%20*", "empty_query"),
        ("/v1/search?q=x&since=yesterday", "invalid_parameter"),
        ("/v1/search?q=x&kind=rumour", "invalid_parameter"),
        ("/v1/correlations?min_orgs=0", "invalid_parameter"),
    ] {
        let (status, body) = get(c, path).await?;
        ensure!(
            status == 400 && body["reason"] == reason,
            "{path}: {status} {body}"
        );
    }
    // FTS5 syntax is quoted, never an error.
    ensure!(
        hits(&ok(c, "/v1/search?q=%22harvest*%20(page").await?).len() == 1,
        "quoted syntax"
    );
    let text = net.view("c")?.node.metrics.encode();
    ensure!(
        text.contains("alertmesh_bad_queries_total{reason=\"empty_query\"} 2"),
        "metrics: {text}"
    );

    // The CLI, through the same API.
    // The harness binds the API to port 0: the CLI reads a copy naming the real port.
    let config = net.config_path("c")?.with_file_name("cli.toml");
    let text = std::fs::read_to_string(net.config_path("c")?)?;
    ensure!(text.contains("\"127.0.0.1:0\""), "config: {text}");
    std::fs::write(
        &config,
        text.replace("\"127.0.0.1:0\"", &format!("\"{c}\"")),
    )?;
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(alertmesh_tests::process::alertmesh_bin()?)
            .arg("lookup")
            .arg("--config")
            .arg(&config)
            .arg("Bad.Example")
            .output()
            .map_err(anyhow::Error::from)
    })
    .await??;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success()
            && stdout.contains("reported by 1 org(s): a (1)")
            && stdout.contains("RETRACTED"),
        "cli: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    net.shutdown().await;
    Ok(())
}
