//! Transparency logs (issue 19) across real nodes: witnesses cosign only consistent
//! checkpoints, a split view becomes evidence on every node once the halves meet, and a
//! witnessed checkpoint shows a reader the envelopes that did not reach it.

use alertmesh_protocol::tlog::{AddCheckpoint, Checkpoint, Note, note};
use alertmesh_protocol::wire::{Request, Response};
use alertmesh_protocol::{Limits, NodePublicKey, Tlp};
use alertmesh_sim::harness::{Builder, Harness};
use alertmesh_sim::hostile::{HostilePeer, Seen};
use alertmesh_sim::samples::sample_alert;
use alertmesh_tests::wait_for;

/// A checkpoint of `author`'s log on the harness's network.
fn checkpoint(net: &Harness, author: NodePublicKey, size: u64, root: [u8; 32]) -> Checkpoint {
    Checkpoint {
        network: net.network().genesis.charter().network_id,
        author,
        size,
        root,
        heads: vec![],
    }
}

/// Charter limits with checkpoints every half second, so a test need not wait a minute.
fn checkpoints_every_half_second() -> Limits {
    Limits {
        checkpoint_period_ms: 500,
        ..Limits::default()
    }
}

/// The node key of the first node of org `org`.
fn node_key(net: &Harness, org: &str) -> NodePublicKey {
    let o = net.network().orgs.iter().find(|o| o.member.org_id.0 == org);
    o.map(|o| o.nodes[0].key.public()).unwrap_or_default()
}

/// Sends an add-checkpoint from the hostile author to `to` and waits for its answer.
async fn offer(
    net: &Harness,
    author: &mut HostilePeer,
    to: &str,
    old_size: u64,
    consistency: Vec<[u8; 32]>,
    checkpoint: Vec<u8>,
) -> anyhow::Result<Response> {
    let peer = net.node(to)?.peer_id;
    let req = Request::AddCheckpoint(AddCheckpoint {
        old_size,
        consistency,
        checkpoint,
        inclusions: vec![],
    });
    // A witness serves one log's add-checkpoint at most twice a second: on `Busy`, ask
    // again after the wait it names (bounded).
    for _ in 0..10 {
        author.drain();
        author.request(peer, req.encode()).await?;
        let seen = author
            .wait_seen("the witness's answer", |s| {
                matches!(s, Seen::Response(p, data) if *p == peer
                    && !matches!(Response::decode(data), Ok(Response::Hello(_) | Response::Directory(_))))
            })
            .await?;
        let Seen::Response(_, data) = seen else {
            anyhow::bail!("not a response")
        };
        match Response::decode(&data)? {
            Response::Busy { retry_after_ms } => {
                tokio::time::sleep(std::time::Duration::from_millis(retry_after_ms.into())).await;
            }
            other => return Ok(other),
        }
    }
    anyhow::bail!("the witness stayed busy")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_witness_cosigns_a_consistent_checkpoint_and_refuses_an_inconsistent_one()
-> anyhow::Result<()> {
    let net = Builder::new()
        .org("a", 1)
        .org("b", 1)
        .org("c", 1)
        .topic("all", &["a", "b", "c"], &["a", "b", "c"])
        .seed(191)
        .start()
        .await?;
    let rogue = net.member_identity("c")?;
    let mut author = HostilePeer::member(&rogue)?;
    net.admit(&author, &["a/0"]).await?;
    let me = rogue.key.public();
    let net_id = net.network().genesis.charter().network_id;
    // A first checkpoint: nothing to be consistent with; cosigned by a's node.
    let first = checkpoint(&net, me, 4, [1; 32]).sign(&rogue.key).to_bytes();
    let answer = offer(&net, &mut author, "a/0", 0, vec![], first.clone()).await?;
    let Response::Cosigned(line) = answer else {
        anyhow::bail!("not cosigned: {answer:?}")
    };
    let line = String::from_utf8(line)?;
    let sig = note::NoteSignature::parse_line(line.trim_end_matches('\n'))?;
    let text = Note::parse(&first)?.text;
    note::verify_cosignature(&sig, &text, &net_id, &node_key(&net, "a"))?;
    // A bigger checkpoint with a proof that leads nowhere: refused, counted.
    let next = checkpoint(&net, me, 6, [2; 32]).sign(&rogue.key).to_bytes();
    let answer = offer(&net, &mut author, "a/0", 4, vec![[7; 32], [8; 32]], next).await?;
    assert!(
        matches!(&answer, Response::Refused(r) if r.contains("consistency")),
        "{answer:?}"
    );
    assert_eq!(net.verdict("a/0", "reject", "checkpoint_inconsistent")?, 1);
    // Same size, another root: refused, and proof of the split view reaches every node.
    let other = checkpoint(&net, me, 4, [9; 32]).sign(&rogue.key).to_bytes();
    let answer = offer(&net, &mut author, "a/0", 4, vec![], other).await?;
    assert!(
        matches!(&answer, Response::Refused(r) if r.contains("split view")),
        "{answer:?}"
    );
    for n in net.nodes() {
        wait_for(
            &format!("{} to hold the split-view evidence", n.name),
            || async { n.node.core.status().await.is_ok_and(|s| s.split_views == 1) },
        )
        .await?;
    }
    net.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_histories_shown_to_two_halves_are_proven_on_every_node_once_they_meet()
-> anyhow::Result<()> {
    let net = Builder::new()
        .org("a", 1)
        .org("b", 1)
        .org("c", 1)
        .org("d", 1)
        .org("e", 1)
        .topic(
            "all",
            &["a", "b", "c", "d", "e"],
            &["a", "b", "c", "d", "e"],
        )
        .seed(192)
        .start()
        .await?;
    net.partition(&[&["a", "b"], &["c", "d"]]).await?;
    let rogue = net.member_identity("e")?;
    let mut author = HostilePeer::member(&rogue)?;
    // The author talks to both halves; each half cosigns its own history of 5 leaves.
    net.admit(&author, &["a/0", "b/0", "c/0", "d/0"]).await?;
    let me = rogue.key.public();
    let one = checkpoint(&net, me, 5, [1; 32]).sign(&rogue.key).to_bytes();
    let two = checkpoint(&net, me, 5, [2; 32]).sign(&rogue.key).to_bytes();
    for (to, note) in [("a/0", &one), ("b/0", &one), ("c/0", &two), ("d/0", &two)] {
        let answer = offer(&net, &mut author, to, 0, vec![], note.clone()).await?;
        assert!(matches!(answer, Response::Cosigned(_)), "{to}: {answer:?}");
    }
    // Apart, nobody can tell.
    for n in net.nodes() {
        assert_eq!(n.node.core.status().await?.split_views, 0, "{}", n.name);
    }
    drop(author);
    net.heal().await?;
    for n in net.nodes() {
        wait_for(
            &format!("{} to hold the split-view evidence", n.name),
            || async { n.node.core.status().await.is_ok_and(|s| s.split_views == 1) },
        )
        .await?;
        assert!(
            n.node
                .metrics
                .encode()
                .contains("alertmesh_split_views_total 1"),
            "{}",
            n.name
        );
    }
    // `audit verify` of any node's export reports it (README shows this report), once
    // the row is committed (status counts it when judged).
    let conn = alertmesh_node::store::open_reader(&net.data_dir("c/0")?)?;
    wait_for("c to commit the evidence", || async {
        alertmesh_node::store::tlog::split_views(&conn).is_ok_and(|v| v.len() == 1)
    })
    .await?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("c.alertmesh-audit");
    let source = alertmesh_node::audit::Source::from_data_dir(&net.data_dir("c/0")?, None, None)?;
    alertmesh_node::audit::export(&source, &Default::default(), &file)?;
    let report = alertmesh_node::audit::verify_export_bytes(
        &std::fs::read(&file)?,
        net.network().genesis_hash(),
    );
    assert_eq!(
        report.by_code.get("split_view"),
        Some(&1),
        "{:?}",
        report.findings
    );
    println!(
        "{}",
        alertmesh_node::audit::render("export file c.audit", &report)
    );
    net.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_cut_off_from_an_author_sees_its_withheld_tail_until_it_arrives()
-> anyhow::Result<()> {
    let net = Builder::new()
        .org("a", 1)
        .org("r", 1)
        .org("w", 1)
        .org("v", 1)
        .topic("all", &["a", "r", "w", "v"], &["a", "r", "w", "v"])
        .topic("secret", &["a", "r"], &["a"])
        .seed(193)
        .limits(checkpoints_every_half_second())
        .start()
        .await?;
    net.partition(&[&["a"], &["r"]]).await?;
    let mut ids = Vec::new();
    for i in 0..3 {
        let alert = sample_alert(&format!("secret {i}"));
        let a = net.node("a/0")?;
        ids.push(
            a.core
                .publish("secret".into(), Tlp::Amber, alert)
                .await??
                .id,
        );
    }
    // a's checkpoint is cosigned by w and v; its head line for `secret` reaches r
    // through them, though the envelopes cannot (w and v do not read `secret`).
    let r = net.node("r/0")?;
    wait_for("r to see the withheld envelopes", || async {
        r.core.status().await.is_ok_and(|s| s.withheld >= 3)
    })
    .await?;
    let a = net.node("a/0")?;
    let s = a.core.status().await?;
    let cp = s.checkpoint.expect("a signed a checkpoint");
    assert!(cp.witnessed && cp.cosigning_orgs >= 2, "{cp:?}");
    net.heal().await?;
    let r = net.node("r/0")?;
    wait_for("the withheld envelopes to arrive at r", || async {
        r.core.status().await.is_ok_and(|s| s.withheld == 0)
    })
    .await?;
    // The core counts an envelope once judged; its row is committed just after.
    let conn = alertmesh_node::store::open_reader(net.data_dir("r/0")?.as_path())?;
    let stored = |id: &alertmesh_protocol::EnvelopeId| {
        conn.query_row(
            "SELECT count(*) FROM envelopes WHERE id = ?1",
            [id.as_bytes()],
            |row| row.get::<_, i64>(0),
        )
        .is_ok_and(|n| n == 1)
    };
    wait_for("the withheld envelopes to be stored at r", || async {
        ids.iter().all(stored)
    })
    .await?;
    net.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_that_omits_a_witnessed_envelope_fails_audit_verify() -> anyhow::Result<()> {
    use alertmesh_node::audit::{self, ExportOptions, Source};
    use alertmesh_protocol::SignedEnvelope;
    use alertmesh_protocol::audit::{MAGIC, RecordReader, RecordType, RecordWriter, Severity};
    let net = Builder::new()
        .org("a", 1)
        .org("b", 1)
        .org("c", 1)
        .topic("all", &["a", "b", "c"], &["a", "b", "c"])
        .seed(194)
        .limits(checkpoints_every_half_second())
        .start()
        .await?;
    let mut ids = Vec::new();
    for i in 0..3 {
        let a = net.node("a/0")?;
        let alert = sample_alert(&format!("witnessed {i}"));
        ids.push(a.core.publish("all".into(), Tlp::Green, alert).await??.id);
    }
    // b holds a checkpoint of a's log cosigned by b and c that covers the three alerts.
    let a_size = net.node("a/0")?.core.status().await?.log_size;
    let a_key = node_key(&net, "a");
    let conn = alertmesh_node::store::open_reader(net.data_dir("b/0")?.as_path())?;
    wait_for(
        "b to hold a witnessed checkpoint of a's whole log",
        || async {
            alertmesh_node::store::tlog::checkpoints(&conn).is_ok_and(|list| {
                list.iter().any(|(author, note, witnessed)| {
                    *author == a_key
                        && *witnessed
                        && Note::parse(note)
                            .ok()
                            .and_then(|n| {
                                Checkpoint::verify(&n, &net.network().genesis.charter().network_id)
                                    .ok()
                            })
                            .is_some_and(|c| c.size >= a_size)
                })
            }) && ids.iter().all(|id| {
                conn.query_row(
                    "SELECT count(*) FROM envelopes WHERE id = ?1",
                    [id.as_bytes()],
                    |r| r.get::<_, i64>(0),
                )
                .is_ok_and(|n| n == 1)
            })
        },
    )
    .await?;
    // README shows such a checkpoint.
    if let Ok(list) = alertmesh_node::store::tlog::checkpoints(&conn) {
        for (author, note, witnessed) in list {
            if author == a_key && witnessed {
                println!("{}", String::from_utf8_lossy(&note));
            }
        }
    }
    // b asks a to prove where the alerts are in its log, and keeps the proofs.
    wait_for("b to hold a's proofs of the three alerts", || async {
        ids.iter().all(|id| {
            alertmesh_node::store::tlog::inclusion_of(&conn, id).is_ok_and(|p| p.is_some())
        })
    })
    .await?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("b.alertmesh-audit");
    let source = Source::from_data_dir(net.data_dir("b/0")?.as_path(), None, None)?;
    let summary = audit::export(&source, &ExportOptions::default(), &file)?;
    assert!(summary.inclusions >= 3, "{summary:?}");
    let bytes = std::fs::read(&file)?;
    let genesis = net.network().genesis_hash();
    let report = audit::verify_export_bytes(&bytes, genesis);
    assert!(
        report.ok,
        "the whole export verifies: {:?}",
        report.findings
    );
    assert!(!report.by_code.contains_key("withheld_below_checkpoint"));
    assert_eq!(report.stats.envelopes_in_log, summary.inclusions);
    // An inclusion proof altered in the file (digests recomputed) proves nothing.
    let mut w = RecordWriter::new();
    let mut forged = MAGIC.to_vec();
    let mut altered = false;
    for rec in RecordReader::new(&bytes).filter_map(Result::ok) {
        let ty = RecordType::from_u8(rec.ty).unwrap_or(RecordType::End);
        if ty == RecordType::End {
            continue;
        }
        let mut body = rec.body.to_vec();
        if ty == RecordType::Inclusion && !altered {
            let last = body.len() - 1;
            body[last] ^= 1;
            altered = true;
        }
        forged.extend(w.record(ty, &body)?);
    }
    forged.extend(w.end(None));
    let report = audit::verify_export_bytes(&forged, genesis);
    assert_eq!(
        report.by_code.get("bad_inclusion"),
        Some(&1),
        "{:?}",
        report.findings
    );
    // The same export without a's last alert (digests recomputed): the witnessed
    // checkpoint shows it is missing.
    let last = ids[2];
    let mut w = RecordWriter::new();
    let mut edited = MAGIC.to_vec();
    for rec in RecordReader::new(&bytes).filter_map(Result::ok) {
        let ty = RecordType::from_u8(rec.ty).unwrap_or(RecordType::End);
        let omitted = ty == RecordType::Envelope
            && rec
                .body
                .get(8..)
                .and_then(|b| SignedEnvelope::decode(b, b.len()).ok())
                .is_some_and(|e| e.id() == last);
        if ty == RecordType::End || omitted {
            continue;
        }
        edited.extend(w.record(ty, rec.body)?);
    }
    edited.extend(w.end(None));
    let report = audit::verify_export_bytes(&edited, genesis);
    assert!(!report.ok);
    let withheld: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.code == "withheld_below_checkpoint" && f.severity == Severity::Problem)
        .collect();
    assert_eq!(withheld.len(), 1, "{:?}", report.findings);
    net.shutdown().await;
    Ok(())
}
