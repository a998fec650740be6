//! The API tells the truth (issue 14): a publish is answered only once its alert and
//! envelope are committed, the live stream carries only committed alerts with their real
//! cursors and resumes exactly where a client left off, an oversized body gets 413.

use alertmesh_node::client::Client;
use alertmesh_protocol::bootstrap::simple_plan;
use alertmesh_sim::files::TOKEN;
use alertmesh_sim::harness::Builder;
use alertmesh_tests::WAIT;
use anyhow::{Context, bail, ensure};
use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Alerts published in the burst.
const BURST: usize = 60;
/// Events read before the stream is cut.
const CUT_AFTER: usize = 20;

/// Reads `GET /v1/alerts/stream` (resuming after `last_id` if given) until `stop` says so
/// or the deadline passes, then drops the connection. Returns `(cursor, alert id)` pairs.
fn read_stream(
    api: SocketAddr,
    last_id: Option<i64>,
    mut stop: impl FnMut(&[(i64, String)]) -> bool,
) -> anyhow::Result<Vec<(i64, String)>> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(WAIT))
        .build()
        .into();
    let mut req = agent
        .get(format!("http://{api}/v1/alerts/stream"))
        .header("Authorization", format!("Bearer {TOKEN}"));
    if let Some(id) = last_id {
        req = req.header("Last-Event-ID", id.to_string());
    }
    let resp = req.call()?;
    ensure!(
        resp.status().is_success(),
        "stream refused: {}",
        resp.status()
    );
    let mut reader = BufReader::new(resp.into_body().into_reader());
    let mut seen = Vec::new();
    let mut id: Option<i64> = None;
    let deadline = Instant::now() + WAIT;
    let mut line = String::new();
    while !stop(&seen) {
        ensure!(
            Instant::now() < deadline,
            "stream: timed out after {} events",
            seen.len()
        );
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            bail!("the stream ended");
        }
        let line = line.trim_end();
        if let Some(v) = line.strip_prefix("id:") {
            id = Some(v.trim().parse()?);
        } else if let Some(data) = line.strip_prefix("data:") {
            let alert: serde_json::Value = serde_json::from_str(data.trim())?;
            let cursor = id.take().context("an alert event without an id")?;
            ensure!(
                alert["cursor"].as_i64() == Some(cursor),
                "event id {cursor} is not the alert's cursor {}",
                alert["cursor"]
            );
            let alert_id = alert["id"].as_str().context("no id")?.to_string();
            seen.push((cursor, alert_id));
        }
    }
    Ok(seen)
}

/// A client of the API at `api`.
fn client(api: SocketAddr) -> Client {
    Client::new(api, zeroize::Zeroizing::new(TOKEN.to_string()))
}

/// A live stream is cut in the middle of a burst of alerts (published by this node and
/// arriving from another); the client reconnects with the last event id it saw and gets
/// every alert of the burst exactly once, in cursor order, each event id being the
/// alert's cursor. Every publish was answered only after both its rows were committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_stream_resumes_after_a_cut_with_every_alert_exactly_once() -> anyhow::Result<()> {
    let plan = simple_plan(2, alertmesh_node::clock::now_ms() - 60_000);
    let net = Builder::from_plan(plan).seed(141).start().await?;
    let api = net.nodes()[0].node.api_addr;
    let db = net.nodes()[0].data.join("alertmesh.db");

    // Subscribed before the burst: the stream starts at the current end.
    let (first_tx, first_rx) = tokio::sync::oneshot::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let reader = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let mut signalled = Some(first_tx);
        let mut go = Some(go_rx);
        let first = read_stream(api, None, |seen| {
            // The stream is open once the handshake returned; let the burst start.
            if let (Some(tx), Some(rx)) = (signalled.take(), go.take()) {
                let _ = tx.send(());
                let _ = rx.recv_timeout(WAIT);
            }
            seen.len() >= CUT_AFTER
        })?;
        let last = first.last().map(|(c, _)| *c);
        // Cut: the first connection is dropped here. Resume after the last id seen.
        let rest = read_stream(api, last, |seen| first.len() + seen.len() >= BURST)?;
        Ok((first, rest))
    });
    first_rx.await.context("the stream did not open")?;
    let _ = go_tx.send(());

    let mut published = BTreeSet::new();
    let apis = [net.nodes()[0].node.api_addr, net.nodes()[1].node.api_addr];
    for i in 0..BURST {
        let c = client(apis[i % 2]);
        let receipt = tokio::task::spawn_blocking(move || {
            alertmesh_tests::process::publish_with(&c, &format!("burst {i}"))
        })
        .await??;
        if i % 2 == 0 {
            // Answered 201: the alert and its envelope are both committed.
            let conn = rusqlite::Connection::open_with_flags(
                &db,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )?;
            let id = hex::decode(&receipt.id)?;
            let rows: (i64, i64) = conn.query_row(
                "SELECT (SELECT count(*) FROM envelopes WHERE id = ?1),
                        (SELECT count(*) FROM alerts WHERE envelope_id = ?1)",
                [&id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            ensure!(
                rows == (1, 1),
                "publish answered before commit: rows {rows:?}"
            );
        }
        published.insert(receipt.id);
    }
    let (first, rest) = tokio::time::timeout(WAIT * 2, reader).await???;
    ensure!(
        first.len() >= CUT_AFTER,
        "the cut came after {}",
        first.len()
    );
    let all: Vec<&(i64, String)> = first.iter().chain(&rest).collect();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for (_, id) in &all {
        *counts.entry(id.as_str()).or_default() += 1;
    }
    let dupes: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    ensure!(
        dupes.is_empty(),
        "alerts seen twice across the reconnect: {dupes:?}"
    );
    let got: BTreeSet<String> = counts.keys().map(|s| s.to_string()).collect();
    ensure!(
        got == published,
        "missing after the reconnect: {:?}",
        published.difference(&got)
    );
    ensure!(
        all.windows(2).all(|w| w[0].0 < w[1].0),
        "cursors are not increasing"
    );
    net.shutdown().await;
    Ok(())
}

/// A body over the API's limit gets 413, not a generic 422; a bad `Last-Event-ID` gets 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_body_gets_413_and_a_bad_last_event_id_400() -> anyhow::Result<()> {
    let plan = simple_plan(2, alertmesh_node::clock::now_ms() - 60_000);
    let net = Builder::from_plan(plan).seed(142).start().await?;
    let api = net.nodes()[0].node.api_addr;
    let statuses = tokio::task::spawn_blocking(move || -> anyhow::Result<(u16, u16)> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        let big =
            serde_json::json!({ "topic": "all", "tlp": "GREEN", "alert": "x".repeat(600 * 1024) });
        let post = agent
            .post(format!("http://{api}/v1/alerts"))
            .header("Authorization", format!("Bearer {TOKEN}"))
            .send_json(&big)?
            .status()
            .as_u16();
        let stream = agent
            .get(format!("http://{api}/v1/alerts/stream"))
            .header("Authorization", format!("Bearer {TOKEN}"))
            .header("Last-Event-ID", "yesterday")
            .call()?
            .status()
            .as_u16();
        Ok((post, stream))
    })
    .await??;
    ensure!(statuses == (413, 400), "got {statuses:?}");
    net.shutdown().await;
    Ok(())
}
