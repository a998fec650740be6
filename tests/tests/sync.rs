//! History sync between in-process nodes (issue 4): a late joiner catches up.

use alertmesh_protocol::Tlp;
use alertmesh_protocol::bootstrap::simple_plan;
use alertmesh_sim::harness::Builder;
use alertmesh_sim::samples::sample_alert;
use alertmesh_tests::wait_for;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_joiner_catches_up_through_sync() -> anyhow::Result<()> {
    let plan = simple_plan(3, alertmesh_node::clock::now_ms() - 60_000);
    let (mut net, later) = Builder::from_plan(plan).seed(11).start_some(2).await?;
    let mut ids = Vec::new();
    for i in 0..60 {
        let r = net.nodes()[i % 2]
            .node
            .core
            .publish(
                "all".into(),
                Tlp::Green,
                sample_alert(&format!("alert {i}")),
            )
            .await??;
        ids.push(r.id);
    }
    net.restart(&later[0]).await?;
    let joiner = net.nodes()[2].node;
    // Every envelope of the others (alerts and key packages) arrives and decrypts.
    let held_by_first = net.nodes()[0].node.core.status().await?.envelopes;
    wait_for("the late joiner to hold every envelope", || async {
        joiner
            .core
            .status()
            .await
            .is_ok_and(|s| s.envelopes >= held_by_first && s.undecryptable == 0)
    })
    .await?;
    let conn = alertmesh_node::store::open_reader(net.nodes()[2].data)?;
    let decrypted = |conn: &rusqlite::Connection| -> usize {
        ids.iter()
            .filter(|id| {
                conn.query_row(
                    "SELECT count(*) FROM alerts WHERE envelope_id = ?1",
                    [id.as_bytes()],
                    |r| r.get::<_, i64>(0),
                )
                .is_ok_and(|n| n == 1)
            })
            .count()
    };
    wait_for("every alert decrypted and stored at the joiner", || async {
        decrypted(&conn) == ids.len()
    })
    .await?;
    net.shutdown().await;
    Ok(())
}
