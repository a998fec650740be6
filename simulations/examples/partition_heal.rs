//! Five organizations; two are cut off, one publishes, the network heals, everybody has
//! the alert. Run with `cargo run -p alertmesh-sim --example partition_heal`.

use alertmesh_sim::harness::{Builder, HarnessError};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);

#[tokio::main]
async fn main() -> Result<(), HarnessError> {
    let t0 = Instant::now();
    let net = Builder::new()
        .org("fbi", 1)
        .org("dhs", 1)
        .org("meta", 1)
        .org("google", 1)
        .org("x", 1)
        .topic(
            "election/disinfo",
            &["fbi", "dhs", "meta", "google", "x"],
            &["fbi", "dhs", "meta"],
        )
        .seed(1)
        .memory()
        .start()
        .await?;
    println!("5 orgs ready in {:.2} s", t0.elapsed().as_secs_f64());

    net.partition(&[&["fbi", "dhs"], &["meta", "google", "x"]])
        .await?;
    let sent = net
        .publish_sample("fbi", "election/disinfo", "fake polling-place change")
        .await?;
    net.wait_alert("dhs", &sent, WAIT).await?;
    println!("partitioned: dhs has the alert; meta waits");
    if let Err(e) = net
        .wait_alert("meta", &sent, Duration::from_millis(500))
        .await
    {
        println!("as expected: {e}");
    }

    net.heal().await?;
    for org in ["meta", "google", "x"] {
        let got = net.wait_alert(org, &sent, WAIT).await?;
        println!("healed: {org} got {} from {}", &got.id[..12], got.org);
    }
    net.wait_converged(WAIT).await?;
    let stats = net.stats("meta").await?;
    println!(
        "meta: {} peers, {} envelopes, verdicts {:?}",
        stats.status.admitted_peers, stats.status.envelopes, stats.verdicts
    );
    net.shutdown().await;
    Ok(())
}
