//! `lookup`: the observable index at scale (issue 23). Fills a real store through the
//! real writer (`alertmesh_node::store::spawn_writer`) with `--alerts` real sealed
//! envelopes and their alert rows, exactly the rows the core writes (10 orgs, 5 topics,
//! 5 observables each: a domain, a URL on it, an IPv4 address, an account and a hashtag,
//! drawn from pools so that values recur), then times lookups and searches as the API
//! runs them (a fresh reader connection per request, the same query functions). Before
//! the fill, ingest throughput with and without the index is measured on `--ingest`
//! alerts into fresh databases, alternating indexed and unindexed runs.

use crate::Opts;
use crate::common::{bench_dir, fmt_num, machine_note, median, percentile};
use alertmesh_node::store::observables::{self as obs, SearchFilter};
use alertmesh_node::store::{self, AlertRow, EnvelopeRow, Write, Writer};
use alertmesh_protocol::alert::{Alert, AlertKind, Observable, Severity};
use alertmesh_protocol::{
    Content, Draft, EnvelopeId, Kind, NetworkId, NodeKey, SenderKey, SignedEnvelope, Tlp, TopicId,
};
use anyhow::Context;
use rand::Rng;
use rand_chacha03::ChaCha20Rng;
use rand_chacha03::rand_core::SeedableRng;
use std::path::Path;
use std::time::Instant;

const ORGS: usize = 10;
const TOPICS: usize = 5;
/// Distinct domains (each in ~`alerts / DOMAINS` alerts).
const DOMAINS: u64 = 300_000;
/// Distinct accounts.
const ACCOUNTS: u64 = 500_000;
/// Distinct hashtags (popular values: ~`alerts / HASHTAGS` alerts each).
const HASHTAGS: u64 = 5_000;
/// Title words (each in ~3 `alerts / TITLE_WORDS` titles); every title also has
/// "phishing".
const TITLE_WORDS: u64 = 1_000;
/// Description words.
const DESCRIPTION_WORDS: u64 = 20_000;
const NET: NetworkId = NetworkId([0x23; 32]);

/// Makes alert `i`'s rows.
struct Generator {
    orgs: Vec<NodeKey>,
    key: SenderKey,
    topics: Vec<(String, TopicId)>,
    seqs: Vec<u64>,
    rng: ChaCha20Rng,
    now: u64,
}

impl Generator {
    fn new(seed: u64) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let topics = (0..TOPICS)
            .map(|t| {
                let name = format!("bench/topic-{t}");
                let id = TopicId::derive(&NET, &name);
                (name, id)
            })
            .collect();
        Generator {
            orgs: (0..ORGS).map(|_| NodeKey::generate(&mut rng)).collect(),
            key: SenderKey::generate(1, &mut rng),
            topics,
            seqs: vec![0; ORGS * TOPICS],
            rng,
            now: alertmesh_node::clock::now_ms(),
        }
    }

    /// The writes of alert `i` (its envelope, then its alert row), as the core makes them.
    fn alert(&mut self, i: u64) -> anyhow::Result<(EnvelopeRow, AlertRow)> {
        let r = &mut self.rng;
        let (org, topic) = (i as usize % ORGS, (i as usize / ORGS) % TOPICS);
        let domain = format!("host{}.example", r.gen_range(0..DOMAINS));
        let words: Vec<String> = (0..3)
            .map(|_| format!("kw{}", r.gen_range(0..TITLE_WORDS)))
            .collect();
        let description: Vec<String> = (0..20)
            .map(|_| format!("dw{}", r.gen_range(0..DESCRIPTION_WORDS)))
            .collect();
        let alert = Alert {
            kind: if i % 7 == 0 {
                AlertKind::Campaign
            } else {
                AlertKind::Indicator
            },
            title: format!(
                "Phishing campaign {} {} against {}",
                words[0], words[1], words[2]
            ),
            description: description.join(" "),
            severity: Severity::Medium,
            confidence: 60,
            observables: vec![
                Observable::Domain(domain.clone()),
                Observable::Url(format!("https://{domain}/login/{i}")),
                Observable::Ipv4(r.r#gen::<[u8; 4]>()),
                Observable::SocialAccount {
                    platform: "example-social".into(),
                    handle: format!("@acct{}", r.gen_range(0..ACCOUNTS)),
                },
                Observable::Hashtag(format!("tag{}", r.gen_range(0..HASHTAGS))),
            ],
            labels: vec![format!("campaign-{}", r.gen_range(0..100))],
            references: vec![],
            valid_from_ms: 0,
            valid_until_ms: None,
            related: vec![],
            stix: None,
        };
        let content = Content::Alert(alert);
        let seq = &mut self.seqs[org * TOPICS + topic];
        *seq += 1;
        let timestamp_ms = self.now - 1_000_000 + i;
        let draft = Draft {
            network_id: NET,
            topic_id: self.topics[topic].1,
            seq: *seq,
            prev: EnvelopeId::default(),
            charter_version: 1,
            timestamp_ms,
            kind: Kind::Alert,
            key_epoch: 1,
            tlp: Tlp::Green,
        };
        let env = SignedEnvelope::seal_encrypted(
            &self.orgs[org],
            &draft,
            &self.key,
            &content.encode(),
            &mut self.rng,
        )?;
        let row = AlertRow {
            envelope_id: env.id(),
            topic_name: self.topics[topic].0.clone(),
            org: format!("org-{org}"),
            tlp: Tlp::Green,
            timestamp_ms,
            content,
        };
        Ok((
            EnvelopeRow {
                envelope: env,
                received_ms: timestamp_ms,
            },
            row,
        ))
    }
}

fn writes(rows: &[(EnvelopeRow, AlertRow)]) -> Vec<Vec<Write>> {
    rows.iter()
        .map(|(e, a)| vec![Write::Envelope(e.clone()), Write::Alert(a.clone())])
        .collect()
}

/// Queues every job (one alert: its envelope and alert row, as the core queues them)
/// and waits until all are committed.
async fn ingest(writer: &Writer, jobs: Vec<Vec<Write>>) -> anyhow::Result<()> {
    let mut pending = Vec::new();
    for job in jobs {
        pending.push(writer.write_all(job).await?);
    }
    for p in pending {
        p.await
            .context("writer stopped")?
            .map_err(|e| anyhow::anyhow!(e))?;
    }
    Ok(())
}

/// Alerts/s of one ingest run into a fresh database.
fn ingest_run(
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    rows: &[(EnvelopeRow, AlertRow)],
    indexed: bool,
) -> anyhow::Result<f64> {
    let d = dir.join(if indexed {
        "ingest-indexed"
    } else {
        "ingest-plain"
    });
    if d.exists() {
        std::fs::remove_dir_all(&d)?;
    }
    std::fs::create_dir_all(&d)?;
    let conn = store::open(&d, &NET)?;
    let writer = if indexed {
        store::spawn_writer(conn)
    } else {
        store::spawn_writer_unindexed(conn)
    };
    let jobs = writes(rows);
    let start = Instant::now();
    rt.block_on(ingest(&writer, jobs))?;
    let rate = rows.len() as f64 / start.elapsed().as_secs_f64();
    drop(writer);
    std::fs::remove_dir_all(&d)?;
    Ok(rate)
}

/// Fills `dir`'s database with `count` alerts through the indexed writer; returns the
/// seconds spent (sealing included) and the generator's last alert.
fn fill(rt: &tokio::runtime::Runtime, dir: &Path, count: u64) -> anyhow::Result<f64> {
    let writer = store::spawn_writer(store::open(dir, &NET)?);
    let mut g = Generator::new(1);
    let start = Instant::now();
    const CHUNK: u64 = 4096;
    let mut previous: Vec<store::Committed> = Vec::new();
    let mut i = 0;
    while i < count {
        let n = CHUNK.min(count - i);
        let rows = (i..i + n)
            .map(|k| g.alert(k))
            .collect::<anyhow::Result<Vec<_>>>()?;
        // Sealing the next chunk overlaps with committing this one.
        previous = rt.block_on(async {
            for p in previous {
                p.await
                    .context("writer stopped")?
                    .map_err(|e| anyhow::anyhow!(e))?;
            }
            let mut queued = Vec::new();
            for job in writes(&rows) {
                queued.push(writer.write_all(job).await?);
            }
            anyhow::Ok(queued)
        })?;
        i += n;
        if i % 100_000 < CHUNK {
            eprintln!(
                "  filled {i} alerts in {:.0} s",
                start.elapsed().as_secs_f64()
            );
        }
    }
    rt.block_on(async {
        for p in previous {
            p.await
                .context("writer stopped")?
                .map_err(|e| anyhow::anyhow!(e))?;
        }
        anyhow::Ok(())
    })?;
    Ok(start.elapsed().as_secs_f64())
}

/// One kind of request timed.
struct Timed {
    name: &'static str,
    micros: Vec<u64>,
    results: usize,
}

impl Timed {
    fn new(name: &'static str) -> Self {
        Timed {
            name,
            micros: vec![],
            results: 0,
        }
    }
}

/// Times `f` on a fresh reader connection, as one API request.
fn time_one(
    dir: &Path,
    t: &mut Timed,
    f: impl FnOnce(&rusqlite::Connection) -> anyhow::Result<usize>,
) -> anyhow::Result<()> {
    let start = Instant::now();
    let conn = store::open_reader(dir)?;
    let n = f(&conn)?;
    t.micros.push(start.elapsed().as_micros() as u64);
    t.results += n;
    Ok(())
}

fn lookup_value(conn: &rusqlite::Connection, value: &str) -> anyhow::Result<usize> {
    let keys = obs::lookup_keys(value, None).map_err(|e| anyhow::anyhow!(e))?;
    Ok(obs::lookup(conn, &keys, None, 50)?.hits.len())
}

fn search_words(
    conn: &rusqlite::Connection,
    q: &str,
    filter: &SearchFilter,
) -> anyhow::Result<usize> {
    let fts = obs::fts_query(q).map_err(|e| anyhow::anyhow!(e))?;
    Ok(obs::search(conn, &fts, filter, None, 50)?.hits.len())
}

/// Bytes of the index's tables and indexes, and of the whole database (`dbstat`).
fn sizes(dir: &Path) -> anyhow::Result<(i64, i64)> {
    let conn = store::open_reader(dir)?;
    let index: i64 = conn.query_row(
        "SELECT coalesce(sum(pgsize), 0) FROM dbstat
         WHERE name IN ('observed', 'observed_created')
            OR name LIKE 'alert_text%' OR name LIKE 'observable_keys%'",
        [],
        |r| r.get(0),
    )?;
    let total: i64 = conn.query_row("SELECT sum(pgsize) FROM dbstat", [], |r| r.get(0))?;
    Ok((index, total))
}

/// `node-bench lookup`.
pub fn run(opts: &Opts) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let (_guard, dir) = bench_dir(&opts.keep, "lookup", 0)?;
    println!(
        "## node-bench lookup: {} alerts × 5 observables, {} queries per kind; ingest {} alerts × {} runs each way",
        opts.alerts, opts.queries, opts.ingest, opts.runs
    );
    println!("machine: {}", machine_note());

    // Ingest with and without the index, alternating, on the same rows.
    let mut g = Generator::new(2);
    let rows = (0..opts.ingest as u64)
        .map(|i| g.alert(i))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for run in 1..=opts.runs {
        let w = ingest_run(&rt, &dir, &rows, true)?;
        let wo = ingest_run(&rt, &dir, &rows, false)?;
        println!(
            "run {run}: indexed {w:.0} alerts/s, without the index {wo:.0} alerts/s, ratio {:.3}",
            w / wo
        );
        with.push(w);
        without.push(wo);
    }
    drop(rows);
    let ratios: Vec<f64> = with.iter().zip(&without).map(|(a, b)| a / b).collect();

    // The big store.
    let data = dir.join("store");
    std::fs::create_dir_all(&data)?;
    let fill_secs = fill(&rt, &data, opts.alerts as u64)?;
    let (index_bytes, db_bytes) = sizes(&data)?;

    // Requests, interleaved so that noise hits every kind alike.
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let mut kinds = [
        Timed::new("lookup domain"),
        Timed::new("lookup URL (+ its domain)"),
        Timed::new("lookup account"),
        Timed::new("lookup hashtag (popular)"),
        Timed::new("lookup absent value"),
        Timed::new("search 1 word"),
        Timed::new("search 2 words"),
        Timed::new("search common word + topic filter"),
        Timed::new("search word + org + since filters"),
    ];
    let alerts = opts.alerts as u64;
    let since = alertmesh_node::clock::now_ms() as i64 - 1_000_000 + (alerts as i64 / 2);
    for _ in 0..opts.queries {
        let domain = format!("host{}.example", rng.gen_range(0..DOMAINS));
        let url = format!(
            "https://HOST{}.example/login/{}",
            rng.gen_range(0..DOMAINS),
            rng.gen_range(0..alerts)
        );
        let account = format!("example-social:@Acct{}", rng.gen_range(0..ACCOUNTS));
        let tag = format!("#tag{}", rng.gen_range(0..HASHTAGS));
        let absent = format!("absent{}.example", rng.r#gen::<u32>());
        let w1 = format!("kw{}", rng.gen_range(0..TITLE_WORDS));
        let w2 = format!(
            "kw{} dw{}",
            rng.gen_range(0..TITLE_WORDS),
            rng.gen_range(0..DESCRIPTION_WORDS)
        );
        let topic = SearchFilter {
            topic: Some(format!("bench/topic-{}", rng.gen_range(0..TOPICS))),
            ..Default::default()
        };
        let org = SearchFilter {
            org: Some(format!("org-{}", rng.gen_range(0..ORGS))),
            since: Some(since),
            ..Default::default()
        };
        let none = SearchFilter::default();
        let [a, b, c, d, e, f, g2, h, i] = &mut kinds;
        time_one(&data, a, |c| lookup_value(c, &domain))?;
        time_one(&data, b, |c| lookup_value(c, &url))?;
        time_one(&data, c, |cn| lookup_value(cn, &account))?;
        time_one(&data, d, |c| lookup_value(c, &tag))?;
        time_one(&data, e, |c| lookup_value(c, &absent))?;
        time_one(&data, f, |c| search_words(c, &w1, &none))?;
        time_one(&data, g2, |c| search_words(c, &w2, &none))?;
        time_one(&data, h, |c| search_words(c, "phishing", &topic))?;
        time_one(&data, i, |c| search_words(c, &w1, &org))?;
    }
    // Correlations (no target; listed for completeness).
    let mut cor = Timed::new("correlations of one alert");
    for _ in 0..opts.queries.min(200) {
        let alert = rng.gen_range(1..=alerts as i64);
        time_one(&data, &mut cor, |c| {
            Ok(obs::correlations_of(c, alert)?.map_or(0, |c| c.shared.len()))
        })?;
    }
    let mut recent = Timed::new("values of ≥ 2 orgs, last 1 % of alerts");
    let last_percent =
        alertmesh_node::clock::now_ms() as i64 - 1_000_000 + (alerts as i64 * 99 / 100);
    for _ in 0..5 {
        time_one(&data, &mut recent, |c| {
            Ok(obs::correlated(c, 2, last_percent, 100)?.values.len())
        })?;
    }

    println!(
        "\n| {} alerts | median | p99 | max | results per request |",
        opts.alerts
    );
    println!("|---|---|---|---|---|");
    for t in kinds.iter_mut().chain([&mut cor, &mut recent]) {
        t.micros.sort_unstable();
        let ms = |us: u64| format!("{:.2} ms", us as f64 / 1000.0);
        println!(
            "| {} | {} | {} | {} | {:.1} |",
            t.name,
            ms(percentile(&t.micros, 0.5)),
            ms(percentile(&t.micros, 0.99)),
            ms(*t.micros.last().unwrap_or(&0)),
            t.results as f64 / t.micros.len().max(1) as f64
        );
    }
    println!(
        "\n| ingest, {} alerts into a fresh database | median of {} runs | each run |",
        opts.ingest, opts.runs
    );
    println!("|---|---|---|");
    let each = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "| with the index (alerts/s) | {} | {} |",
        fmt_num(median(&with)),
        each(&with)
    );
    println!(
        "| without the index (alerts/s) | {} | {} |",
        fmt_num(median(&without)),
        each(&without)
    );
    let ratio_each = ratios
        .iter()
        .map(|x| format!("{x:.3}"))
        .collect::<Vec<_>>()
        .join(", ");
    println!(
        "| ratio with / without | {:.3} | {ratio_each} |",
        median(&ratios)
    );
    println!(
        "\nfill: {} alerts in {fill_secs:.0} s ({:.0} alerts/s, sealing included); database {:.1} MiB, of which the index {:.1} MiB ({index_bytes} bytes)",
        opts.alerts,
        opts.alerts as f64 / fill_secs,
        db_bytes as f64 / 1_048_576.0,
        index_bytes as f64 / 1_048_576.0
    );
    Ok(())
}
