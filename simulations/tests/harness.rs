//! The public harness: a network in a test, bad input, partitions, restarts.

use alertmesh_sim::harness::{Builder, HarnessError};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

fn five_orgs() -> Builder {
    Builder::new()
        .org("fbi", 1)
        .org("dhs", 1)
        .org("meta", 1)
        .org("google", 1)
        .org("x", 1)
        .topic(
            "disinfo",
            &["fbi", "dhs", "meta", "google", "x"],
            &["fbi", "meta"],
        )
}

#[tokio::test]
async fn invalid_topologies_are_named() {
    let cases = [
        (Builder::new(), "no orgs"),
        (Builder::new().org("a", 0), "org a has zero nodes"),
        (
            Builder::new().org("a", 1).topic("t", &["a", "b"], &["a"]),
            "topic t names unknown org b",
        ),
        (Builder::new().org("a", 1).threshold(2), "threshold 2"),
    ];
    for (builder, want) in cases {
        match builder.start().await {
            Err(HarnessError::Topology(msg)) => assert!(msg.contains(want), "{msg}"),
            other => panic!("{want}: got {other:?}"),
        }
    }
}

#[tokio::test]
async fn partition_then_heal_on_memory_transport() -> anyhow::Result<()> {
    let mut net = five_orgs().seed(3).memory().start().await?;
    // Names that do not exist, and waits that cannot succeed, fail at once.
    assert!(matches!(
        net.partition(&[&["fbi"], &["nsa"]]).await,
        Err(HarnessError::UnknownNode { .. })
    ));
    net.partition(&[&["fbi", "dhs"], &["meta", "google", "x"]])
        .await?;
    let sent = net.publish_sample("fbi", "disinfo", "cut off").await?;
    net.wait_alert("dhs", &sent, WAIT).await?;
    // Across the cut nothing arrives; the wait ends with a typed timeout.
    match net
        .wait_alert("meta", &sent, Duration::from_millis(300))
        .await
    {
        Err(HarnessError::Timeout { what, .. }) => assert!(what.contains("meta/0"), "{what}"),
        other => panic!("expected a timeout, got {other:?}"),
    }
    net.heal().await?;
    for org in ["meta", "google", "x"] {
        net.wait_alert(org, &sent, WAIT).await?;
    }
    net.wait_converged(WAIT).await?;
    let stats = net.stats("x").await?;
    assert_eq!(stats.status.admitted_peers, 4);
    // A stopped node is named as such; a restart on its database catches up.
    net.kill("google").await?;
    assert!(matches!(
        net.publish_sample("google", "disinfo", "x").await,
        Err(HarnessError::NotRunning(_))
    ));
    let second = net
        .publish_sample("meta", "disinfo", "while google is down")
        .await?;
    net.restart("google").await?;
    net.wait_alert("google", &second, WAIT).await?;
    net.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn refused_publish_and_impossible_wait() -> anyhow::Result<()> {
    let net = Builder::new()
        .org("a", 1)
        .org("b", 1)
        .org("c", 1)
        .topic("ab", &["a", "b"], &["a"])
        .seed(4)
        .memory()
        .start()
        .await?;
    assert!(matches!(
        net.publish_sample("b", "ab", "not a publisher").await,
        Err(HarnessError::Node { .. })
    ));
    let sent = net.publish_sample("a", "ab", "for a and b").await?;
    assert!(matches!(
        net.wait_alert("c", &sent, WAIT).await,
        Err(HarnessError::Impossible(_))
    ));
    net.wait_alert("b", &sent, WAIT).await?;
    net.shutdown().await;
    Ok(())
}

/// A hostile member (valid certificate, no node) is admitted; the garbage it gossips is
/// rejected as malformed by every node and honest alerts still get through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_member_garbage_is_rejected_everywhere() -> anyhow::Result<()> {
    let net = Builder::new()
        .org("fbi", 1)
        .org("meta", 1)
        .org("x", 1)
        .topic("disinfo", &["fbi", "meta", "x"], &["fbi", "x"])
        .seed(5)
        .start()
        .await?;
    let hostile = net.add_hostile("x").await?;
    let topic = net.gossip_topic("disinfo");
    let nodes: Vec<_> = net.nodes().iter().map(|n| n.node.peer_id).collect();
    hostile.wait_subscribed(&topic, &nodes).await?;
    hostile.publish(topic, b"not an envelope".to_vec()).await?;
    for name in net.node_names() {
        let what = format!("{name} to reject the hostile member's garbage");
        alertmesh_sim::harness::wait_for(&what, WAIT, async || {
            net.verdict(&name, "reject", "malformed")
                .is_ok_and(|n| n >= 1)
        })
        .await?;
    }
    let sent = net
        .publish_sample("fbi", "disinfo", "still delivered")
        .await?;
    net.wait_alert("meta", &sent, WAIT).await?;
    net.wait_alert("x", &sent, WAIT).await?;
    // The memory transport has no TCP for the hostile peer: a typed refusal.
    let mem = Builder::new().org("a", 1).seed(1).memory().start().await?;
    assert!(matches!(
        mem.add_hostile("a").await,
        Err(HarnessError::Topology(_))
    ));
    mem.shutdown().await;
    net.shutdown().await;
    Ok(())
}
