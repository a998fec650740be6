//! Multi-node tests of the daemon over real TCP + Noise on loopback (issue 3).

use alertmesh_protocol::bootstrap::{NetworkPlan, OrgPlan, TopicPlan, new_node};
use alertmesh_protocol::{Draft, KeyPackage, Kind, OrgId, SenderKey, SignedEnvelope, Tlp, TopicId};
use alertmesh_sim::harness::{Builder, Harness};
use alertmesh_sim::harness::{listen_addr, verdict_count};
use alertmesh_sim::hostile::{HostilePeer, Seen};
use alertmesh_sim::samples::sample_alert;
use alertmesh_tests::{WAIT, wait_for};
use libp2p::gossipsub::TopicHash;
use std::time::Duration;

const ALL: &str = "all";
const AGENCY: &str = "agency-only";
const PLAT_TO_AGENCY: &str = "platforms-to-agencies";

fn org(s: &str) -> OrgId {
    OrgId(s.to_string())
}

/// Two platforms and two agencies; topics with different ACLs.
fn plan() -> NetworkPlan {
    let orgs = ["plat-a", "plat-b", "agency-a", "agency-b"];
    let all: Vec<OrgId> = orgs.iter().map(|o| org(o)).collect();
    let agencies = vec![org("agency-a"), org("agency-b")];
    let platforms = vec![org("plat-a"), org("plat-b")];
    NetworkPlan {
        network_name: "test".into(),
        orgs: orgs.iter().map(|o| OrgPlan::new(o, 1)).collect(),
        topics: vec![
            TopicPlan {
                name: ALL.into(),
                readers: all.clone(),
                publishers: all,
                max_tlp: Tlp::Amber,
            },
            TopicPlan {
                name: AGENCY.into(),
                readers: agencies.clone(),
                publishers: agencies.clone(),
                max_tlp: Tlp::Red,
            },
            TopicPlan {
                name: PLAT_TO_AGENCY.into(),
                readers: agencies,
                publishers: platforms,
                max_tlp: Tlp::Amber,
            },
        ],
        threshold: 2,
        limits: Default::default(),
        now_ms: alertmesh_node::clock::now_ms() - 60_000,
        cert_lifetime_ms: 24 * 3600 * 1000,
    }
}

/// Waits until `node`'s stored alerts contain `id`.
async fn wait_alert(net: &Harness, org: &str, id: &str) -> anyhow::Result<()> {
    let n = net.view(org)?;
    wait_for(&format!("{org} to hold alert {id}"), || async {
        alerts_of(net, org).await.iter().any(|a| a.id == id)
    })
    .await?;
    let _ = n;
    Ok(())
}

async fn alerts_of(net: &Harness, org: &str) -> Vec<alertmesh_node::store::StoredAlert> {
    let dir = net.data_dir(org).unwrap_or_default();
    tokio::task::spawn_blocking(move || {
        let conn = alertmesh_node::store::open_reader(&dir).ok()?;
        alertmesh_node::store::list_alerts(&conn, None, 0, 1000).ok()
    })
    .await
    .ok()
    .flatten()
    .unwrap_or_default()
}

async fn publish(
    net: &Harness,
    org: &str,
    topic: &str,
    tlp: Tlp,
    title: &str,
) -> anyhow::Result<String> {
    let receipt = net
        .node(org)?
        .core
        .publish(topic.into(), tlp, sample_alert(title))
        .await??;
    Ok(receipt.id.to_hex())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_reaches_every_reader_org_and_only_them() -> anyhow::Result<()> {
    let net = Builder::from_plan(plan()).seed(1).start().await?;
    let secret = publish(&net, "agency-a", AGENCY, Tlp::Red, "agency lead").await?;
    let notice = publish(
        &net,
        "plat-a",
        PLAT_TO_AGENCY,
        Tlp::Amber,
        "takedown notice",
    )
    .await?;
    for reader in ["agency-a", "agency-b"] {
        wait_alert(&net, reader, &notice).await?;
    }
    wait_alert(&net, "agency-b", &secret).await?;
    // A later alert on the all-member topic reaches everyone; by then the restricted
    // alerts would have reached the platforms too, had they been able to read them.
    let marker = publish(&net, "agency-a", ALL, Tlp::Green, "marker").await?;
    for o in ["plat-a", "plat-b", "agency-a", "agency-b"] {
        wait_alert(&net, o, &marker).await?;
    }
    for platform in ["plat-a", "plat-b"] {
        let held = alerts_of(&net, platform).await;
        assert!(
            !held.iter().any(|a| a.id == secret),
            "{platform} read the agency-only alert"
        );
        let foreign_notice = held.iter().any(|a| a.id == notice) && platform != "plat-a";
        assert!(
            !foreign_notice,
            "{platform} read another platform's notice to agencies"
        );
    }
    net.shutdown().await;
    Ok(())
}

/// A second node of a platform, run by the test as a spy: it has a valid cert, joins,
/// subscribes to the agency-only topic and tries to read what it collects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_reader_node_cannot_decrypt_and_is_scored_down() -> anyhow::Result<()> {
    let net = Builder::from_plan(plan()).seed(2).start().await?;
    let network_id = net.network().genesis.charter().network_id;
    let plat = &net.network().orgs[0];
    let spy = net.member_identity(&plat.member.org_id.0)?;
    let mut peer = HostilePeer::member(&spy)?;
    let agency = net.node("agency-a")?;
    let topic = TopicId::derive(&network_id, AGENCY);
    peer.subscribe(topic.gossip_name(&network_id)).await?;
    peer.dial(listen_addr(agency, WAIT).await?).await?;
    peer.wait_seen("connection", |s| matches!(s, Seen::Connected(_)))
        .await?;
    wait_for("the spy to be admitted and scored down", || async {
        agency.net.peers().await.is_ok_and(|peers| {
            peers.iter().any(|p| {
                p.peer_id == peer.peer_id.to_string() && p.score.is_some_and(|s| s < -80.0)
            })
        })
    })
    .await?;
    let id = publish(&net, "agency-a", AGENCY, Tlp::Red, "for agencies only").await?;
    wait_alert(&net, "agency-b", &id).await?;
    // Whatever the spy collected on the topic, and the stored key packages, stay closed.
    let dir = net.data_dir("agency-b").unwrap_or_default();
    let conn = alertmesh_node::store::open_reader(&dir)?;
    let mut q = conn.prepare("SELECT bytes FROM envelopes WHERE topic = ?1")?;
    let stored: Vec<Vec<u8>> = q
        .query_map([topic.as_bytes()], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut packages = 0;
    let mut alerts = 0;
    for bytes in stored {
        let env = SignedEnvelope::decode(&bytes, 1 << 20)?;
        match env.header().kind {
            Kind::KeyPackage => {
                packages += 1;
                let pkg = KeyPackage::decode(env.payload())?;
                let opened = pkg.open(&network_id, &env.header().author, &spy.agreement);
                assert!(opened.is_err(), "a non-reader opened a sender key");
            }
            Kind::Alert => {
                alerts += 1;
                let guess = SenderKey::from_bytes(env.header().key_epoch, &[0u8; 32]);
                assert!(env.open(&guess).is_err());
            }
            _ => {}
        }
    }
    assert!(
        packages >= 2 && alerts >= 1,
        "expected key packages and the alert on the topic"
    );
    while let Ok(seen) = peer.seen.try_recv() {
        if let Seen::Gossip(t, data) = seen {
            if t == TopicHash::from_raw(topic.gossip_name(&network_id)) {
                let env = SignedEnvelope::decode(&data, 1 << 20)?;
                if env.header().kind == Kind::KeyPackage {
                    let pkg = KeyPackage::decode(env.payload())?;
                    assert!(
                        pkg.open(&network_id, &env.header().author, &spy.agreement)
                            .is_err()
                    );
                }
            }
        }
    }
    net.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_publish_is_refused_locally_and_rejected_on_the_wire() -> anyhow::Result<()> {
    let net = Builder::from_plan(plan()).seed(3).start().await?;
    // Locally: the node refuses.
    let local = net
        .node("plat-a")?
        .core
        .publish(AGENCY.into(), Tlp::Amber, sample_alert("x"))
        .await?;
    assert!(
        matches!(
            local,
            Err(alertmesh_node::core::PublishError::Forbidden { .. })
        ),
        "{local:?}"
    );
    let local = net
        .node("plat-a")?
        .core
        .publish(ALL.into(), Tlp::Red, sample_alert("x"))
        .await?;
    assert!(
        matches!(
            local,
            Err(alertmesh_node::core::PublishError::TlpTooHigh { .. })
        ),
        "{local:?}"
    );

    // On the wire: a modified platform node sends them anyway.
    let network_id = net.network().genesis.charter().network_id;
    let plat = &net.network().orgs[1];
    let mut rng = rand::rngs::OsRng;
    let rogue = net.member_identity(&plat.member.org_id.0)?;
    let mut peer = HostilePeer::member(&rogue)?;
    let everyone: Vec<&str> = net.nodes().iter().map(|n| n.name).collect();
    net.admit(&peer, &everyone).await?;
    let key = SenderKey::generate(1, &mut rng);
    let forge = |topic: &str, seq: u64, tlp: Tlp| -> anyhow::Result<SignedEnvelope> {
        let draft = Draft {
            network_id,
            topic_id: TopicId::derive(&network_id, topic),
            seq,
            prev: Default::default(),
            charter_version: 1,
            timestamp_ms: alertmesh_node::clock::now_ms(),
            kind: Kind::Alert,
            key_epoch: 1,
            tlp,
        };
        Ok(SignedEnvelope::seal_encrypted(
            &rogue.key,
            &draft,
            &key,
            b"forbidden",
            &mut rand::rngs::OsRng,
        )?)
    };
    let not_publisher = forge(AGENCY, 1, Tlp::Amber)?;
    let too_high = forge(ALL, 1, Tlp::Red)?;
    for (topic, env) in [(AGENCY, &not_publisher), (ALL, &too_high)] {
        let hash =
            TopicHash::from_raw(TopicId::derive(&network_id, topic).gossip_name(&network_id));
        // Honest nodes do not forward a rejected envelope: it must reach every reader
        // directly, so wait until the rogue knows all of their subscriptions.
        let readers: Vec<libp2p::PeerId> = net
            .nodes()
            .iter()
            .filter(|n| topic == ALL || n.org.starts_with("agency"))
            .map(|n| n.node.peer_id)
            .collect();
        peer.wait_subscribed(&hash, &readers).await?;
        let bytes = env.as_bytes().to_vec();
        wait_for("the rogue's gossip to go out", || {
            let (hash, bytes) = (hash.clone(), bytes.clone());
            let peer = &peer;
            async move { peer.publish(hash, bytes).await.is_ok() }
        })
        .await?;
    }
    for o in ["agency-a", "agency-b"] {
        let n = net.node(o)?;
        wait_for("agency nodes to reject the non-publisher", || async {
            verdict_count(n, "reject", "not_publisher") >= 1
        })
        .await?;
    }
    for n in net.nodes() {
        wait_for("every node to reject the TLP violation", || async {
            verdict_count(n.node, "reject", "tlp_too_high") >= 1
        })
        .await?;
        let dir = n.data.to_path_buf();
        let conn = alertmesh_node::store::open_reader(&dir)?;
        for forged in [&not_publisher, &too_high] {
            let held: i64 = conn.query_row(
                "SELECT count(*) FROM envelopes WHERE id = ?1",
                [forged.id().as_bytes()],
                |r| r.get(0),
            )?;
            assert_eq!(held, 0, "{} stored a forged envelope", n.org);
        }
    }
    let _ = peer.seen.try_recv();
    net.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_without_a_valid_certificate_is_disconnected() -> anyhow::Result<()> {
    let net = Builder::from_plan(plan()).seed(4).start().await?;
    let target = net.node("agency-a")?;
    let addr = listen_addr(target, WAIT).await?;

    // An outsider that shows nothing is dropped after the admission timeout.
    let mut silent = HostilePeer::start(libp2p::identity::Keypair::generate_ed25519(), None)?;
    silent.dial(addr.clone()).await?;
    silent
        .wait_seen("connection", |s| matches!(s, Seen::Connected(_)))
        .await?;
    silent
        .wait_seen("disconnection", |s| matches!(s, Seen::Disconnected(_)))
        .await?;

    // An outsider with a certificate from an org root that is not a member is refused.
    let mut rng = rand::rngs::OsRng;
    let network_id = net.network().genesis.charter().network_id;
    let stranger_root = alertmesh_protocol::OrgRootKey::generate(&mut rng);
    let now = alertmesh_node::clock::now_ms();
    let fake = new_node(
        &network_id,
        &org("agency-a"),
        &stranger_root,
        1,
        now - 1000,
        now + 3_600_000,
        &mut rng,
    );
    let mut impostor = HostilePeer::member(&fake)?;
    impostor.dial(addr).await?;
    impostor
        .wait_seen("disconnection", |s| matches!(s, Seen::Disconnected(_)))
        .await?;
    assert!(target.metrics.refused_peers.get() >= 2);
    assert_eq!(
        target.core.status().await?.admitted_peers,
        net.nodes().len() - 1
    );
    net.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_requires_the_bearer_token_and_rejects_bad_input() -> anyhow::Result<()> {
    let net = Builder::from_plan(plan()).seed(5).start().await?;
    let n = net.node("plat-a")?;
    let base = format!("http://{}", n.api_addr);
    let result = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        let status = |r: Result<ureq::http::Response<ureq::Body>, ureq::Error>| r.map(|r| r.status().as_u16());
        assert_eq!(status(agent.get(format!("{base}/v1/status")).call())?, 401, "no token");
        assert_eq!(status(agent.get(format!("{base}/v1/status")).header("Authorization", "Bearer wrong-token-0123456789").call())?, 401);
        let auth = format!("Bearer {}", alertmesh_sim::files::TOKEN);
        assert_eq!(status(agent.get(format!("{base}/v1/status")).header("Authorization", &auth).call())?, 200);
        assert_eq!(status(agent.get(format!("{base}/metrics")).call())?, 401);
        // Bad JSON bodies get a 4xx with a JSON reason, never a 500.
        let mut resp = agent.post(format!("{base}/v1/alerts")).header("Authorization", &auth).header("Content-Type", "application/json").send("{not json")?;
        assert_eq!(resp.status().as_u16(), 422);
        let body: serde_json::Value = resp.body_mut().read_json()?;
        assert!(body["error"].is_string());
        let forbidden = serde_json::json!({"topic": AGENCY, "tlp": "GREEN", "alert": serde_json::to_value(sample_alert("x"))?["alert"]});
        let resp = agent.post(format!("{base}/v1/alerts")).header("Authorization", &auth).send_json(&forbidden)?;
        assert_eq!(resp.status().as_u16(), 403);
        Ok(())
    })
    .await?;
    result?;
    let _ = WAIT;
    net.shutdown().await;
    Ok(())
}
