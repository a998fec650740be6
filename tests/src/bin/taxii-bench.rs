//! `taxii-bench`: the cost of a TAXII objects page at depth k in a collection of N alerts.
//!
//! ```text
//! taxii-bench [--alerts 100000] [--limit 100] [--runs 21]
//! ```
//!
//! Builds a node database (the node's own schema and migrations, in a temporary
//! directory) holding `--alerts` decrypted indicator alerts on one topic, then times
//! `alertmesh_node::taxii::pages::page` (what `GET /taxii2/api/collections/{id}/objects/`
//! runs: the key-set query, the latest-version filter and the rendering of each STIX
//! object) for pages 1, 10, 100, … up to the last, each `--runs` times, and prints the
//! median, min and max. For comparison it times the same page fetched with `OFFSET`.

use alertmesh_node::stix::served_id;
use alertmesh_node::store::taxii::{Query, Versions};
use alertmesh_node::taxii::pages;
use alertmesh_protocol::{Alert, Content, EnvelopeId, NetworkId, Observable};
use anyhow::Context;
use std::time::Instant;

fn arg(args: &[String], name: &str, default: usize) -> anyhow::Result<usize> {
    match args.iter().position(|a| a == name) {
        Some(i) => args
            .get(i + 1)
            .context("missing value")?
            .parse()
            .with_context(|| format!("{name} takes a number")),
        None => Ok(default),
    }
}

fn median(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n = arg(&args, "--alerts", 100_000)?;
    let limit = arg(&args, "--limit", 100)?;
    let runs = arg(&args, "--runs", 21)?.max(1);
    let dir = tempfile::tempdir()?;
    let network = NetworkId([7; 32]);
    let mut conn = alertmesh_node::store::open(dir.path(), &network)?;
    let t = Instant::now();
    {
        let tx = conn.transaction()?;
        {
            let mut env = tx.prepare(
                "INSERT INTO envelopes (id, author, topic, seq, prev, kind, charter_version,
                 timestamp_ms, key_epoch, received_ms, bytes)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'alert', 1, ?6, 1, ?6, x'00')",
            )?;
            let mut al = tx.prepare(
                "INSERT INTO alerts (envelope_id, cursor, topic_name, org, kind, original, tlp,
                 timestamp_ms, content_json, stix_id, added_us)
                 VALUES (?1, last_insert_rowid(), 'bench', 'org-0', 'alert', NULL, 'TLP:GREEN', ?2, ?3, ?4, ?5)",
            )?;
            for i in 0..n as u64 {
                let mut id = [0u8; 32];
                id[..8].copy_from_slice(&i.to_be_bytes());
                id[8] = 1;
                let mut alert = Alert::example(1_600_000_000_000);
                alert.title = format!("Phishing domain {i}");
                alert.observables = vec![Observable::Domain(format!("vote-{i}.example"))];
                let content = Content::Alert(alert);
                let ts = 1_600_000_000_000i64 + i as i64;
                env.execute(rusqlite::params![
                    id.as_slice(),
                    [1u8; 32].as_slice(),
                    [2u8; 32].as_slice(),
                    i as i64 + 1,
                    [0u8; 32].as_slice(),
                    ts
                ])?;
                let stix_id = served_id(&EnvelopeId(id), &content);
                al.execute(rusqlite::params![
                    id.as_slice(),
                    ts,
                    serde_json::to_string(&content)?,
                    stix_id,
                    ts * 1000
                ])?;
            }
        }
        tx.commit()?;
    }
    eprintln!("built {n} alerts in {:.1} s", t.elapsed().as_secs_f64());
    let reader = alertmesh_node::store::open_reader(dir.path())?;
    let pages = n.div_ceil(limit);
    let mut ks = vec![1usize];
    let mut k = 10;
    while k < pages {
        ks.push(k);
        k *= 10;
    }
    ks.push(pages);
    println!("alerts={n} limit={limit} runs={runs} (median [min-max] ms per page)");
    println!(
        "{:>8} {:>24} {:>24}",
        "page", "key-set (TAXII)", "OFFSET (comparison)"
    );
    for k in ks {
        let key: i64 = if k == 1 {
            0
        } else {
            reader.query_row(
                "SELECT added_us FROM alerts ORDER BY added_us LIMIT 1 OFFSET ?1",
                [((k - 1) * limit - 1) as i64],
                |r| r.get(0),
            )?
        };
        let q = Query {
            topic: "bench".into(),
            after_us: key,
            ids: vec![],
            types: vec![],
            versions: Versions::last(),
            limit,
        };
        let mut keyset = Vec::new();
        let mut offset = Vec::new();
        for _ in 0..runs {
            let t = Instant::now();
            let page = pages::page(&reader, &network, &q)?;
            keyset.push(t.elapsed().as_secs_f64() * 1e3);
            anyhow::ensure!(
                page.items.len() == limit.min(n - (k - 1) * limit),
                "page {k} holds {} objects",
                page.items.len()
            );
            let t = Instant::now();
            let mut stmt = reader.prepare_cached(
                "SELECT content_json FROM alerts WHERE topic_name = 'bench'
                 ORDER BY added_us LIMIT ?1 OFFSET ?2",
            )?;
            let rows: Vec<String> = stmt
                .query_map([limit as i64, ((k - 1) * limit) as i64], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            for r in &rows {
                let _: serde_json::Value = serde_json::from_str(r)?;
            }
            offset.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let (m, lo, hi) = median(keyset);
        let (om, olo, ohi) = median(offset);
        println!(
            "{k:>8} {:>24} {:>24}",
            format!("{m:.2} [{lo:.2}-{hi:.2}]"),
            format!("{om:.2} [{olo:.2}-{ohi:.2}]")
        );
    }
    Ok(())
}
