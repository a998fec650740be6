//! Fault tests with real `alertmesh run` processes on loopback (issue 4): SIGKILL during a
//! publish burst, a partition healed, a late joiner after 1,000 alerts, rolling restarts,
//! and databases that must be refused untouched.
//!
//! Daemons run anti-entropy every 500 ms (config `sync_interval_ms`); every wait has a
//! deadline and every test a hard limit; the tests run one at a time.

use alertmesh_tests::process::{Cluster, Publisher, Receipt, TestGuard, alertmesh_bin, wait_until};
use anyhow::{Context, bail, ensure};
use std::collections::HashSet;
use std::time::{Duration, Instant};

fn ids(receipts: &[Receipt]) -> HashSet<String> {
    receipts.iter().map(|r| r.id.clone()).collect()
}

/// A daemon killed with SIGKILL in the middle of a publish burst and restarted: every
/// alert it acknowledged and every alert the others published meanwhile reaches every
/// reader; its seqs continue without reuse and it picks a fresh sender-key epoch.
#[test]
fn sigkill_during_publish_burst_loses_nothing_acknowledged() -> anyhow::Result<()> {
    let _guard = TestGuard::new("sigkill", Duration::from_secs(120));
    let started = Instant::now();
    let mut c = Cluster::new(4, 41)?;
    let all = [0, 1, 2, 3];
    c.start_all(&all)?;
    c.wait_mesh(&all)?;

    // A burst at daemon 0 (four concurrent publishers), steady traffic at 1 and 2.
    let burst: Vec<Publisher> = (0..4)
        .map(|k| Publisher::start(&c.daemons[0], &format!("burst {k}")))
        .collect();
    let others = [
        Publisher::start(&c.daemons[1], "org-1"),
        Publisher::start(&c.daemons[2], "org-2"),
    ];
    wait_until("100 acknowledged publishes at daemon 0", || {
        burst.iter().map(Publisher::count).sum::<usize>() >= 100
    })?;
    c.kill(0)?;
    let before: Vec<Receipt> = burst.into_iter().flat_map(Publisher::finish).collect();
    let max_seq_before = before.iter().map(|r| r.seq).max().context("no receipts")?;

    // The others keep publishing while daemon 0 is down.
    let at_kill: usize = others.iter().map(Publisher::count).sum();
    wait_until("40 more publishes at daemons 1 and 2", || {
        others.iter().map(Publisher::count).sum::<usize>() >= at_kill + 40
    })?;
    c.start(0)?;
    c.wait("daemon 0 to be admitted by all three others", |c| {
        c.status(0)
            .is_ok_and(|s| s["admitted_peers"].as_u64() == Some(3))
    })?;
    let after_restart = Publisher::start(&c.daemons[0], "after restart");
    wait_until("20 publishes at daemon 0 after its restart", || {
        after_restart.count() >= 20
    })?;
    let after = after_restart.finish();
    let mut acked: HashSet<String> = ids(&before);
    acked.extend(ids(&after));
    for p in others {
        acked.extend(ids(&p.finish()));
    }

    c.wait_alerts_everywhere(&all, &acked)?;
    let converged = c.wait_converged(&all)?;
    for i in all {
        let listed = c.api_alert_ids(i)?;
        let missing = acked.difference(&listed).count();
        ensure!(
            missing == 0,
            "daemon {i}'s API lacks {missing} acknowledged alerts"
        );
    }
    c.check_clean(&all)?;

    // Seqs continue after the restart; nothing acknowledged shares a seq.
    let seqs: HashSet<u64> = before.iter().chain(&after).map(|r| r.seq).collect();
    ensure!(
        seqs.len() == before.len() + after.len(),
        "a seq was acknowledged twice"
    );
    ensure!(
        after.iter().all(|r| r.seq > max_seq_before),
        "a seq from before the crash was reused"
    );
    // The stored chain is gap-free, identical on every reader, and the restart opened a
    // fresh sender-key epoch: everything sealed after it uses a higher epoch than anything
    // before it.
    let chain = c.chain(0, 0)?;
    ensure!(
        chain.iter().enumerate().all(|(k, r)| r.seq == k as u64 + 1),
        "daemon 0's own chain has gaps"
    );
    for i in 1..4 {
        ensure!(
            c.chain(i, 0)? == chain,
            "daemon {i} holds another chain of daemon 0"
        );
    }
    let epoch_of = |id: &str| chain.iter().find(|r| r.id == id).map(|r| r.key_epoch);
    let old_epochs: HashSet<u64> = before.iter().filter_map(|r| epoch_of(&r.id)).collect();
    let new_epochs: HashSet<u64> = after.iter().filter_map(|r| epoch_of(&r.id)).collect();
    ensure!(
        old_epochs.len() == 1 && new_epochs.len() == 1,
        "epochs before {old_epochs:?}, after {new_epochs:?}"
    );
    let (old, new) = (
        *old_epochs.iter().next().unwrap_or(&0),
        *new_epochs.iter().next().unwrap_or(&0),
    );
    ensure!(
        new > old,
        "epoch {new} after the restart is not above {old}"
    );
    ensure!(
        chain
            .iter()
            .any(|r| r.kind == "key_package" && r.key_epoch == new),
        "no key package for epoch {new}"
    );
    eprintln!(
        "sigkill: {} acknowledged alerts ({} at daemon 0 before the kill, {} after), {} envelopes on every daemon, {:.1} s",
        acked.len(),
        before.len(),
        after.len(),
        converged.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A network split in two halves (every daemon restarted with a bootstrap list of its own
/// half only) while both halves publish, then healed by restarting one daemon with the full
/// list: every daemon converges to the identical set of envelope ids per topic.
#[test]
fn partition_then_heal_converges() -> anyhow::Result<()> {
    let _guard = TestGuard::new("partition", Duration::from_secs(120));
    let started = Instant::now();
    let mut c = Cluster::new(4, 43)?;
    let all = [0, 1, 2, 3];
    let (a, b) = ([0, 1], [2, 3]);
    c.start_all(&all)?;
    c.wait_mesh(&all)?;
    let mut acked = HashSet::new();
    for i in all {
        acked.insert(c.publish(i, &format!("before the split from {i}"))?.id);
    }

    // Split: every daemon restarts knowing only its own half.
    for i in all {
        c.stop(i)?;
    }
    for (half, other) in [(a, b), (b, a)] {
        for i in half {
            c.set_bootstrap(i, &half)?;
        }
        let _ = other;
    }
    c.start_all(&all)?;
    c.wait_mesh(&a)?;
    c.wait_mesh(&b)?;

    // Both halves publish.
    let publishers: Vec<Publisher> = all
        .iter()
        .map(|i| Publisher::start(&c.daemons[*i], &format!("split {i}")))
        .collect();
    wait_until("30 publishes on every daemon during the split", || {
        publishers.iter().all(|p| p.count() >= 30)
    })?;
    let split: Vec<Vec<Receipt>> = publishers.into_iter().map(Publisher::finish).collect();
    let side_a: HashSet<String> = split[0]
        .iter()
        .chain(&split[1])
        .map(|r| r.id.clone())
        .collect();
    let side_b: HashSet<String> = split[2]
        .iter()
        .chain(&split[3])
        .map(|r| r.id.clone())
        .collect();
    c.wait_alerts_everywhere(&a, &side_a)?;
    c.wait_alerts_everywhere(&b, &side_b)?;
    // The halves really were apart: nothing crossed.
    for i in a {
        ensure!(
            c.stored_alert_ids(i)?.is_disjoint(&side_b),
            "daemon {i} received alerts from the other half during the split"
        );
    }
    for i in b {
        ensure!(
            c.stored_alert_ids(i)?.is_disjoint(&side_a),
            "daemon {i} received alerts from the other half during the split"
        );
    }
    for i in all {
        ensure!(
            c.status(i)?["admitted_peers"].as_u64() == Some(1),
            "daemon {i} saw the other half"
        );
    }

    // Heal: daemon 0 restarts with everyone in its bootstrap list; the rest find each
    // other through it (sync, Kademlia) while traffic continues on both sides.
    c.set_bootstrap(0, &all)?;
    c.stop(0)?;
    let healed_at = Instant::now();
    c.start(0)?;
    let more = [
        Publisher::start(&c.daemons[1], "after heal 1"),
        Publisher::start(&c.daemons[3], "after heal 3"),
    ];
    wait_until("10 publishes on daemons 1 and 3 after the heal", || {
        more.iter().all(|p| p.count() >= 10)
    })?;
    acked.extend(side_a);
    acked.extend(side_b);
    for p in more {
        acked.extend(ids(&p.finish()));
    }
    c.wait_alerts_everywhere(&all, &acked)?;
    let converged = c.wait_converged(&all)?;
    let heal_time = healed_at.elapsed();
    c.check_clean(&all)?;
    eprintln!(
        "partition: {} alerts, {} envelopes identical on all daemons {:.1} s after the heal; {:.1} s in all",
        acked.len(),
        converged.len(),
        heal_time.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A daemon that joins after 1,000 alerts were published catches up on all of them
/// (envelopes and decrypted alerts).
#[test]
fn late_joiner_catches_up_on_1000_alerts() -> anyhow::Result<()> {
    let _guard = TestGuard::new("late-join", Duration::from_secs(150));
    let started = Instant::now();
    let mut c = Cluster::new(3, 44)?;
    c.set_bootstrap(0, &[1])?;
    c.set_bootstrap(1, &[0])?;
    c.start_all(&[0, 1])?;
    c.wait_mesh(&[0, 1])?;
    let publishers: Vec<Publisher> = (0..6)
        .map(|k| Publisher::start(&c.daemons[k % 2], &format!("history {k}")))
        .collect();
    wait_until("1,000 acknowledged publishes", || {
        publishers.iter().map(Publisher::count).sum::<usize>() >= 1000
    })?;
    let acked: HashSet<String> = publishers
        .into_iter()
        .flat_map(Publisher::finish)
        .map(|r| r.id)
        .collect();
    ensure!(acked.len() >= 1000, "only {} distinct alerts", acked.len());
    let published = started.elapsed();
    c.wait_alerts_everywhere(&[0, 1], &acked)?;
    c.wait_converged(&[0, 1])?;

    let joined_at = Instant::now();
    c.start(2)?;
    c.wait_alerts_everywhere(&[2], &acked)?;
    let converged = c.wait_converged(&[0, 1, 2])?;
    let catch_up = joined_at.elapsed();
    let listed = c.api_alert_ids(2)?;
    ensure!(
        acked.is_subset(&listed),
        "the joiner's API lists {} of {} alerts",
        acked.intersection(&listed).count(),
        acked.len()
    );
    c.check_clean(&[0, 1, 2])?;
    eprintln!(
        "late join: {} alerts published in {:.1} s; the joiner held all {} envelopes {:.1} s after it started",
        acked.len(),
        published.as_secs_f64(),
        converged.len(),
        catch_up.as_secs_f64()
    );
    Ok(())
}

/// One daemon in five (20%) down at a time, in rotation (SIGKILL and SIGTERM alternately),
/// while every daemon that is up keeps publishing: no acknowledged alert is lost and all
/// daemons converge.
#[test]
fn rolling_restarts_lose_no_alert() -> anyhow::Result<()> {
    let _guard = TestGuard::new("rolling", Duration::from_secs(150));
    let started = Instant::now();
    let mut c = Cluster::new(5, 45)?;
    let all = [0, 1, 2, 3, 4];
    c.start_all(&all)?;
    c.wait_mesh(&all)?;
    let publishers: Vec<Publisher> = all
        .iter()
        .map(|i| Publisher::start(&c.daemons[*i], &format!("rolling {i}")))
        .collect();
    for round in 0..all.len() {
        let i = round;
        let others: Vec<usize> = all.iter().copied().filter(|j| *j != i).collect();
        let counts: Vec<usize> = publishers.iter().map(Publisher::count).collect();
        if round % 2 == 0 {
            c.kill(i)?;
        } else {
            c.stop(i)?;
        }
        wait_until(
            "5 publishes on every other daemon while one is down",
            || {
                others
                    .iter()
                    .all(|j| publishers[*j].count() >= counts[*j] + 5)
            },
        )?;
        c.start(i)?;
        c.wait(
            &format!("daemon {i} to be admitted again by all others"),
            |c| {
                others.iter().all(|j| {
                    c.status(*j)
                        .is_ok_and(|s| s["admitted_peers"].as_u64() == Some(4))
                }) && c
                    .status(i)
                    .is_ok_and(|s| s["admitted_peers"].as_u64() == Some(4))
            },
        )?;
    }
    let acked: HashSet<String> = publishers
        .into_iter()
        .flat_map(Publisher::finish)
        .map(|r| r.id)
        .collect();
    c.wait_alerts_everywhere(&all, &acked)?;
    let converged = c.wait_converged(&all)?;
    c.check_clean(&all)?;
    eprintln!(
        "rolling restarts: {} acknowledged alerts, {} envelopes identical on all daemons, {:.1} s",
        acked.len(),
        converged.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A damaged or foreign database file makes `alertmesh run` exit non-zero with a clear
/// message and leaves the file byte for byte as it was.
#[test]
fn foreign_or_damaged_database_is_refused_untouched() -> anyhow::Result<()> {
    let _guard = TestGuard::new("refuse", Duration::from_secs(60));
    let c = Cluster::new(1, 42)?;
    let d = &c.daemons[0];
    let bin = alertmesh_bin()?;
    std::fs::create_dir_all(d.data_dir())?;
    let db = d.db_path();

    // A healthy alertmesh database of this network (made the way the daemon makes it).
    let network = c.network.genesis.charter().network_id;
    drop(alertmesh_node::store::open(&d.data_dir(), &network)?);
    let healthy = std::fs::read(&db)?;
    ensure!(healthy.len() >= 8192, "unexpectedly small database");

    let mut damaged = healthy.clone();
    for b in &mut damaged[4096 + 8..4096 + 200] {
        *b = 0xA5;
    }
    let other_network = {
        let dir = tempfile::tempdir()?;
        drop(alertmesh_node::store::open(
            dir.path(),
            &alertmesh_protocol::NetworkId([7; 32]),
        )?);
        std::fs::read(alertmesh_node::store::db_path(dir.path()))?
    };
    let foreign_sqlite = {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("x.db");
        let conn = rusqlite::Connection::open(&path)?;
        conn.execute_batch("CREATE TABLE notes (t TEXT); INSERT INTO notes VALUES ('mine');")?;
        drop(conn);
        std::fs::read(&path)?
    };
    // A damaged page that no read at start touches (the first leaf of `alerts`, filled by
    // hand): the node starts, its writer finds the damage before its first write.
    let damaged_deep = {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("deep.db");
        std::fs::write(&path, &healthy)?;
        let conn = rusqlite::Connection::open(&path)?;
        conn.execute_batch("PRAGMA foreign_keys = OFF;")?;
        for i in 0..300i64 {
            conn.execute(
                "INSERT INTO alerts (envelope_id, cursor, topic_name, org, kind, tlp,
                 timestamp_ms, content_json) VALUES (?1, ?2, 't', 'o', 'indicator', 'TLP:GREEN', 0, ?3)",
                rusqlite::params![i.to_be_bytes().to_vec(), i, "x".repeat(1000)],
            )?;
        }
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
        let (page, size): (i64, i64) = conn.query_row(
            "SELECT pageno, (SELECT page_size FROM pragma_page_size) FROM dbstat
             WHERE name = 'alerts' AND pagetype = 'leaf' ORDER BY path LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        drop(conn);
        let mut bytes = std::fs::read(&path)?;
        let at = (page - 1) as usize * size as usize;
        bytes[at..at + 200].fill(0xA5);
        bytes
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "text file",
            b"not a database at all, just some text that happens to sit here\n".repeat(100),
            "not a SQLite database",
        ),
        (
            "another program's SQLite file",
            foreign_sqlite,
            "not an alertmesh database",
        ),
        (
            "another network's database",
            other_network,
            "another network",
        ),
        ("damaged database", damaged, "damaged"),
        (
            "database damaged where start-up does not read",
            damaged_deep,
            "damaged",
        ),
        (
            "truncated database",
            healthy[..healthy.len() / 2].to_vec(),
            "damaged",
        ),
    ];
    for (what, bytes, expect) in cases {
        for f in ["alertmesh.db-wal", "alertmesh.db-shm"] {
            let _ = std::fs::remove_file(d.data_dir().join(f));
        }
        std::fs::write(&db, &bytes)?;
        let mut child = std::process::Command::new(&bin)
            .arg("run")
            .arg("--config")
            .arg(&d.config_path)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()?;
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(s) = child.try_wait()? {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("{what}: `alertmesh run` did not exit within 20 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let out = child.wait_with_output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        ensure!(!status.success(), "{what}: `alertmesh run` exited 0");
        ensure!(
            stderr.contains(expect) && stderr.contains("left untouched"),
            "{what}: unclear message: {stderr}"
        );
        ensure!(
            stderr.contains(&db.display().to_string()),
            "{what}: the message does not name the file: {stderr}"
        );
        ensure!(
            std::fs::read(&db)? == bytes,
            "{what}: the file was modified"
        );
    }
    Ok(())
}

/// A daemon that lists no bootstrap peers itself (a "seed" the others list) is killed and
/// restarted: the others dial it again within a redial period (before the fix they found
/// it only at their next Kademlia refresh, up to 30 s later) and everything converges.
#[test]
fn restarted_seed_is_redialed() -> anyhow::Result<()> {
    let _guard = TestGuard::new("seed", Duration::from_secs(120));
    let started = Instant::now();
    let mut c = Cluster::new(3, 46)?;
    let all = [0, 1, 2];
    c.set_bootstrap(0, &[])?;
    c.set_bootstrap(1, &[0])?;
    c.set_bootstrap(2, &[0])?;
    c.start_all(&all)?;
    c.wait_mesh(&all)?;
    c.kill(0)?;
    let mut acked = HashSet::new();
    for i in [1, 2] {
        acked.insert(
            c.publish(i, &format!("while the seed is down, from {i}"))?
                .id,
        );
    }
    c.start(0)?;
    let restarted = Instant::now();
    c.wait("the seed to be admitted by both others again", |c| {
        c.status(0)
            .is_ok_and(|s| s["admitted_peers"].as_u64() == Some(2))
    })?;
    let rejoined = restarted.elapsed();
    // Redialled by the others within their longest redial wait (plus slack for a loaded
    // machine), not only when Kademlia next refreshes (every 30 s).
    let bound = alertmesh_node::node::REDIAL_BACKOFF.1 + Duration::from_secs(5);
    ensure!(
        rejoined <= bound,
        "the restarted seed was redialled only after {rejoined:?} (bound {bound:?})"
    );
    acked.insert(c.publish(0, "after the restart")?.id);
    c.wait_alerts_everywhere(&all, &acked)?;
    c.wait_converged(&all)?;
    eprintln!(
        "seed: redialed {:.1} s after its restart; {:.1} s in all",
        rejoined.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
