//! Four organizations; the governors remove one mid-run by a charter change signed by k of
//! them. Alerts published before reach it; alerts published after do not, while the
//! others still get them. Run with `cargo run -p alertmesh-sim --example member_removed`.

use alertmesh_node::proposal::Proposal;
use alertmesh_protocol::OrgId;
use alertmesh_sim::harness::{Builder, HarnessError};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

#[tokio::main]
async fn main() -> Result<(), HarnessError> {
    let net = Builder::new()
        .org("fbi", 1)
        .org("dhs", 1)
        .org("meta", 1)
        .org("shady", 1)
        .topic(
            "phishing",
            &["fbi", "dhs", "meta", "shady"],
            &["fbi", "meta"],
        )
        .threshold(2)
        .seed(2)
        .memory()
        .start()
        .await?;

    let before = net
        .publish_sample("fbi", "phishing", "vote-by-text scam")
        .await?;
    net.wait_alert("shady", &before, WAIT).await?;
    println!("before the removal: shady got {}", &before.id[..12]);

    let remove = Proposal {
        remove_orgs: vec![OrgId("shady".into())],
        ..Default::default()
    };
    // One signature is not enough (threshold 2) ...
    match net.change_charter("fbi", &remove, &["fbi"]).await {
        Err(e) => println!("refused as expected: {e}"),
        Ok(v) => println!("unexpectedly adopted version {v}"),
    }
    // ... two governors are.
    let version = net.change_charter("fbi", &remove, &["fbi", "dhs"]).await?;
    println!("charter version {version} adopted: shady removed");

    let after = net
        .publish_sample("meta", "phishing", "new lookalike domain")
        .await?;
    net.wait_alert("dhs", &after, WAIT).await?;
    match net.wait_alert("shady", &after, WAIT).await {
        Err(HarnessError::Impossible(why)) => println!("shady cannot get it: {why}"),
        other => println!("unexpected: {other:?}"),
    }
    net.shutdown().await;
    Ok(())
}
