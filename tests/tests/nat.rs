//! Through a real NAT: five `alertmesh run` daemons in network namespaces. Two public relay
//! orgs and one public org share a bridge; two orgs sit each behind its own router that
//! masquerades (nftables source NAT) and has no route in, so nobody can dial them.
//!
//! Asserted: the NATed orgs find themselves unreachable (AutoNAT v2) and reserve on both
//! relays; every org admits every other (the NATed pair through a relay circuit, which
//! passes the same admission as a direct connection); every reader's API lists every
//! alert; when a relay is killed, the NATed orgs reach each other again (through the second
//! relay or directly) and every remaining reader gets the alerts published after; so do
//! they after nat-a's router changes its outside address (every NAT mapping changes). Both
//! routers drop what arrives unsolicited, as an organization's edge router does, so DCUtR
//! can punch a direct QUIC path between the NATed pair: the punch must succeed and the
//! direct connection must show. The paths used are printed.
//!
//! Skips with the reason where namespaces are not permitted (not root, no `ip` or `nft`),
//! except under `CI=true`, where it must run.

use alertmesh_tests::netns::{self, Lab};
use alertmesh_tests::process::{Cluster, TestGuard, wait_until_ok};
use anyhow::{Context, bail};
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// Hard limit of the whole test (namespaces, five daemons, failover).
const LIMIT: Duration = Duration::from_secs(170);
/// How long the NATed orgs may take to reserve on both relays (AutoNAT probes every 5 s).
const RESERVE_WAIT: Duration = Duration::from_secs(40);
/// How long a hole punch may take to report an outcome.
const PUNCH_WAIT: Duration = Duration::from_secs(15);

const RELAY1: usize = 0;
const RELAY2: usize = 1;
const PUBLIC: usize = 2;
const NAT_A: usize = 3;
const NAT_B: usize = 4;
const NAMES: [&str; 5] = ["relay1", "relay2", "public", "nat-a", "nat-b"];

/// The lab, each daemon's (namespace, address), and the routers' namespaces.
type Topology = (Lab, Vec<(String, String)>, Vec<String>);

/// Each daemon's namespace and address: the public three on 10.99.0.0/24, the NATed two
/// on their own private LANs behind routers at 10.99.0.11 and 10.99.0.12 (the routers'
/// namespaces come last).
fn topology() -> anyhow::Result<Topology> {
    let mut lab = Lab::new()?;
    let hub = lab.namespace("hub")?;
    lab.bridge(&hub, "br0")?;
    let (mut hosts, mut routers) = (Vec::new(), Vec::new());
    for (i, name) in NAMES[..3].iter().enumerate() {
        let ns = lab.namespace(name)?;
        let ip = format!("10.99.0.{}", i + 1);
        let port = format!("p{i}");
        lab.link(
            (&ns, "eth0", Some(&format!("{ip}/24"))),
            (&hub, &port, None),
        )?;
        lab.enslave(&hub, &port, "br0")?;
        hosts.push((ns, ip));
    }
    for (k, name) in NAMES[3..].iter().enumerate() {
        let lan = k + 1;
        let router = lab.namespace(&format!("router-{name}"))?;
        let port = format!("r{k}");
        let wan = format!("10.99.0.{}/24", 11 + k);
        lab.link((&router, "wan", Some(&wan)), (&hub, &port, None))?;
        lab.enslave(&hub, &port, "br0")?;
        let ns = lab.namespace(name)?;
        let ip = format!("192.168.{lan}.2");
        lab.link(
            (&router, "lan", Some(&format!("192.168.{lan}.1/24"))),
            (&ns, "eth0", Some(&format!("{ip}/24"))),
        )?;
        lab.exec(
            &ns,
            &[
                "ip",
                "route",
                "add",
                "default",
                "via",
                &format!("192.168.{lan}.1"),
            ],
        )?;
        lab.masquerade(&router, "wan")?;
        hosts.push((ns, ip));
        routers.push(router);
    }
    Ok((lab, hosts, routers))
}

/// The connections daemon `i`'s peers API shows to daemon `j`, as (address, relayed),
/// and whether `j` is admitted.
fn paths(c: &Cluster, i: usize, j: usize) -> anyhow::Result<(Vec<(String, bool)>, bool)> {
    let peer = &c.daemons[j].peer_id;
    for p in c.peers(i)? {
        if p["peer_id"].as_str() == Some(peer) {
            let conns = p["connections"]
                .as_array()
                .context("peer without connections")?
                .iter()
                .map(|c| {
                    (
                        c["address"].as_str().unwrap_or_default().to_string(),
                        c["relayed"].as_bool().unwrap_or(false),
                    )
                })
                .collect();
            return Ok((conns, p["admitted"].as_bool() == Some(true)));
        }
    }
    Ok((Vec::new(), false))
}

/// One line per connection daemon `i` has to daemon `j`.
fn describe(c: &Cluster, i: usize, j: usize) -> String {
    match paths(c, i, j) {
        Ok((conns, _)) if conns.is_empty() => {
            format!("{} -> {}: not connected", NAMES[i], NAMES[j])
        }
        Ok((conns, admitted)) => conns
            .iter()
            .map(|(addr, relayed)| {
                let kind = if *relayed { "relayed" } else { "direct" };
                format!(
                    "{} -> {}: {kind} via {addr} (admitted: {admitted})",
                    NAMES[i], NAMES[j]
                )
            })
            .collect::<Vec<_>>()
            .join("\n"),
        Err(e) => format!("{} -> {}: peers API failed: {e:#}", NAMES[i], NAMES[j]),
    }
}

/// `network` of daemon `i`'s status.
fn network(c: &Cluster, i: usize) -> anyhow::Result<serde_json::Value> {
    Ok(c.status(i)?["network"].clone())
}

/// Publishes one alert through each of `from`; returns the ids.
fn publish_round(c: &Cluster, from: &[usize], round: &str) -> anyhow::Result<HashSet<String>> {
    from.iter()
        .map(|&i| Ok(c.publish(i, &format!("{round} from {}", NAMES[i]))?.id))
        .collect()
}

/// Waits until every daemon in `readers` lists every id of `ids` through its API.
fn wait_delivered(c: &mut Cluster, readers: &[usize], ids: &HashSet<String>) -> anyhow::Result<()> {
    for &i in readers {
        c.wait(
            &format!("{} to list all {} alerts", NAMES[i], ids.len()),
            |c| c.api_alert_ids(i).is_ok_and(|have| ids.is_subset(&have)),
        )?;
    }
    Ok(())
}

#[test]
fn nated_orgs_meet_through_relays_punch_holes_and_survive_a_relay_loss() -> anyhow::Result<()> {
    if let Some(why) = netns::unavailable() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            bail!("the NAT test must run under CI=true, but: {why}");
        }
        eprintln!("SKIPPED: the NAT test needs network namespaces with nftables: {why}");
        return Ok(());
    }
    let _guard = TestGuard::new("nat", LIMIT);
    // Declared before the cluster: its daemons are killed before the namespaces go.
    let (lab, hosts, routers) = topology()?;
    let mut c = Cluster::new(5, 0x4e41_5401)?;
    for (d, (ns, ip)) in c.daemons.iter_mut().zip(&hosts) {
        d.netns = Some(ns.clone());
        d.host = ip.clone();
    }
    let addr = |i: usize| c.daemons[i].multiaddr();
    let via = |relay: usize, to: usize| {
        format!("{}/p2p-circuit/p2p/{}", addr(relay), c.daemons[to].peer_id)
    };
    let relays = format!("relays = [{:?}, {:?}]\n", addr(RELAY1), addr(RELAY2));
    let publics = [addr(RELAY1), addr(RELAY2), addr(PUBLIC)];
    c.write_config(RELAY1, &[addr(RELAY2), addr(PUBLIC)], "relay = true\n")?;
    c.write_config(RELAY2, &[addr(RELAY1), addr(PUBLIC)], "relay = true\n")?;
    c.write_config(PUBLIC, &[addr(RELAY1), addr(RELAY2)], "")?;
    // Org A dials org B through either relay; org B only dials the public orgs.
    let mut a_boot = publics.to_vec();
    a_boot.extend([via(RELAY1, NAT_B), via(RELAY2, NAT_B)]);
    c.write_config(NAT_A, &a_boot, &relays)?;
    c.write_config(NAT_B, &publics, &relays)?;
    c.start_all(&[RELAY1, RELAY2, PUBLIC, NAT_A, NAT_B])?;
    let started = Instant::now();

    // Unreachable behind their NATs, both reserve a slot on both relays.
    for i in [NAT_A, NAT_B] {
        wait_until_ok(
            &format!("{} to reserve on both relays", NAMES[i]),
            RESERVE_WAIT,
            || {
                let n = network(&c, i)?;
                Ok(n["reachability"] == "private"
                    && n["relay_reservations"].as_array().map_or(0, Vec::len) == 2)
            },
        )
        .with_context(|| c.logs())?;
    }
    println!(
        "both NATed orgs reserved on both relays {:.1?} after start",
        started.elapsed()
    );
    for i in [RELAY1, RELAY2, PUBLIC] {
        let n = network(&c, i)?;
        if !n["relay_reservations"]
            .as_array()
            .is_some_and(Vec::is_empty)
        {
            bail!("{} is public but reserved on a relay: {n}", NAMES[i]);
        }
    }
    // Every org admits every other one; the NATed pair can only have met through a relay.
    c.wait_mesh(&[RELAY1, RELAY2, PUBLIC, NAT_A, NAT_B])?;
    let (first, admitted) = paths(&c, NAT_A, NAT_B)?;
    if !admitted || first.is_empty() {
        bail!("nat-a has not admitted nat-b: {first:?}");
    }
    println!(
        "every org admitted every other {:.1?} after start; first paths between the NATed orgs:\n{}",
        started.elapsed(),
        describe(&c, NAT_A, NAT_B)
    );

    // A hole punch runs over the relayed connection; report how it ended.
    let punches = |c: &Cluster| -> anyhow::Result<(u64, u64)> {
        let (mut ok, mut failed) = (0, 0);
        for i in [NAT_A, NAT_B] {
            let n = network(c, i)?;
            ok += n["hole_punches_succeeded"].as_u64().unwrap_or(0);
            failed += n["hole_punches_failed"].as_u64().unwrap_or(0);
        }
        Ok((ok, failed))
    };
    let direct_now = |c: &Cluster| -> anyhow::Result<bool> {
        Ok(paths(c, NAT_A, NAT_B)?
            .0
            .iter()
            .any(|(_, relayed)| !relayed))
    };
    // Both routers map an inside socket to the same outside port whatever the destination,
    // and drop what arrives unsolicited: a QUIC punch goes through.
    wait_until_ok("a hole punch outcome", PUNCH_WAIT, || {
        Ok(punches(&c)? != (0, 0))
    })
    .with_context(|| c.logs())?;
    let (ok, failed) = punches(&c)?;
    println!("hole punching between nat-a and nat-b: {ok} succeeded, {failed} failed");
    if ok == 0 {
        bail!(
            "hole punching between the NATed orgs failed ({failed} attempts)\n{}",
            c.logs()
        );
    }
    wait_until_ok(
        "the punched direct path to show",
        Duration::from_secs(5),
        || direct_now(&c),
    )
    .context("a hole punch was reported successful, but no direct connection shows")?;
    println!("paths after hole punching:\n{}", describe(&c, NAT_A, NAT_B));

    // Every reader gets every alert.
    let all = [RELAY1, RELAY2, PUBLIC, NAT_A, NAT_B];
    let round = Instant::now();
    let mut ids = publish_round(&c, &all, "round 1")?;
    wait_delivered(&mut c, &all, &ids)?;
    println!(
        "round 1: 5 alerts listed by all 5 APIs {:.1?} after the first publish",
        round.elapsed()
    );

    // Relay 1 goes down: the NATed orgs reach each other again (relay 2 or direct) and
    // every remaining reader gets what is published after.
    c.kill(RELAY1)?;
    let killed = Instant::now();
    let relay1 = c.daemons[RELAY1].peer_id.clone();
    c.wait("nat-a and nat-b connected without relay1", |c| {
        paths(c, NAT_A, NAT_B).is_ok_and(|(conns, admitted)| {
            admitted && conns.iter().any(|(addr, _)| !addr.contains(&relay1))
        })
    })?;
    println!(
        "nat-a and nat-b connected again {:.1?} after relay1 was killed; paths:\n{}",
        killed.elapsed(),
        describe(&c, NAT_A, NAT_B)
    );
    let left = [RELAY2, PUBLIC, NAT_A, NAT_B];
    let round2 = publish_round(&c, &[PUBLIC, NAT_A, NAT_B], "round 2")?;
    ids.extend(round2);
    wait_delivered(&mut c, &left, &ids)?;
    println!(
        "round 2: all 8 alerts listed by the 4 remaining APIs {:.1?} after relay1 was killed",
        killed.elapsed()
    );
    let report: Vec<String> = [
        (NAT_A, RELAY2),
        (NAT_A, PUBLIC),
        (NAT_B, RELAY2),
        (NAT_B, PUBLIC),
    ]
    .iter()
    .map(|&(i, j)| describe(&c, i, j))
    .collect();
    println!("other paths of the NATed orgs:\n{}", report.join("\n"));

    // nat-a's router gets another outside address, as after a new lease from its provider:
    // every mapping it held is gone (masquerade forgets them with the address), and what
    // nat-a sends now comes from elsewhere. Nothing published after is lost.
    let router_a = &routers[0];
    lab.exec(
        router_a,
        &["ip", "addr", "del", "10.99.0.11/24", "dev", "wan"],
    )?;
    lab.exec(
        router_a,
        &["ip", "addr", "add", "10.99.0.21/24", "dev", "wan"],
    )?;
    let remapped = Instant::now();
    ids.extend(publish_round(&c, &[PUBLIC, NAT_A, NAT_B], "round 3")?);
    wait_delivered(&mut c, &left, &ids)?;
    println!(
        "round 3: all 11 alerts listed by the 4 remaining APIs {:.1?} after nat-a's NAT changed its address; paths:\n{}",
        remapped.elapsed(),
        describe(&c, NAT_A, NAT_B)
    );
    c.check_clean(&left)?;
    Ok(())
}
