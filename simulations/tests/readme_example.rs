//! The example of the README's "Simulating a network in your tests", run as a test. The
//! README shows this file from `use` to the end; `readme_shows_this_file` keeps them equal.

use alertmesh_sim::harness::{Builder, HarnessError};
use alertmesh_sim::link::{LinkProfile, LinkSpec};
use std::time::Duration;

#[tokio::test]
async fn five_orgs_cut_one_off_publish_heal() -> Result<(), HarnessError> {
    let wait = Duration::from_secs(30);
    let net = Builder::new()
        .org("fbi", 1)
        .org("dhs", 1)
        .org("meta", 2) // two nodes: "meta/0" and "meta/1"
        .org("google", 1)
        .org("x", 1)
        .topic(
            "election/disinfo",
            &["fbi", "dhs", "meta", "google", "x"], // readers
            &["fbi", "meta"],                       // publishers
        )
        .seed(42) // keys, certificates and link draws
        .memory() // in-process transport; leave out for loopback TCP
        .links(LinkProfile::Uniform(LinkSpec::latency(
            Duration::from_millis(5),
        )))
        .start() // returns once every node is connected and holds its keys
        .await?;

    // Cut x off from everybody, publish as the FBI.
    net.partition(&[&["x"], &["fbi", "dhs", "meta", "google"]])
        .await?;
    let sent = net
        .publish_sample("fbi", "election/disinfo", "fake polling-place change")
        .await?;
    net.wait_alert("meta/1", &sent, wait).await?;
    assert!(matches!(
        net.wait_alert("x", &sent, Duration::from_millis(200)).await,
        Err(HarnessError::Timeout { .. })
    ));

    // Heal: x catches up by history sync, and all nodes hold the same alerts.
    net.heal().await?;
    let got = net.wait_alert("x", &sent, wait).await?;
    assert_eq!(got.org, "fbi");
    net.wait_converged(wait).await?;
    assert_eq!(
        net.stats("x").await?.verdicts.get("reject/bad_signature"),
        None
    );
    net.shutdown().await;
    Ok(())
}

#[test]
fn readme_shows_this_file() {
    let this = include_str!("readme_example.rs");
    let start = this.find("use alertmesh_sim").unwrap_or(0);
    let end = this
        .find("\n#[test]\nfn readme_shows_this_file")
        .unwrap_or(this.len());
    let readme = include_str!("../../README.md");
    assert!(
        readme.contains(&this[start..end]),
        "README.md's example differs from simulations/tests/readme_example.rs"
    );
}
