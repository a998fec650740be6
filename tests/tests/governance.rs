//! Governance while the network runs (issue 5): charter changes signed by k governors,
//! their effects on reading, publishing and connections.

use alertmesh_node::proposal::{self, History, Proposal, TopicEdit};
use alertmesh_protocol::bootstrap::simple_plan;
use alertmesh_protocol::{KeyPackage, Kind, OrgId, SignedCharter, SignedEnvelope, Tlp, TopicId};
use alertmesh_sim::harness::{Builder, Harness};
use alertmesh_sim::samples::sample_alert;
use alertmesh_tests::wait_for;

fn org(s: &str) -> OrgId {
    OrgId(s.to_string())
}

fn data_dir(net: &Harness, i: usize) -> std::path::PathBuf {
    net.nodes()[i].data.to_path_buf()
}

/// Builds the next charter from node 0's view, signed by the given org indexes.
fn next_charter(
    net: &Harness,
    current: &SignedCharter,
    p: &Proposal,
    signers: &[usize],
) -> anyhow::Result<SignedCharter> {
    let history = History::from_data_dir(&data_dir(net, 0))?;
    let next = proposal::propose(current, &history, p, alertmesh_node::clock::now_ms())?;
    let mut signed = SignedCharter::unsigned(next);
    for i in signers {
        let o = &net.network().orgs[*i];
        signed.sign(&o.member.org_id, &o.root);
    }
    Ok(signed)
}

async fn adopt_everywhere(
    net: &Harness,
    charter: &SignedCharter,
    on: &[usize],
) -> anyhow::Result<()> {
    let version = net.nodes()[0]
        .node
        .core
        .submit_charter(charter.as_bytes().to_vec())
        .await??;
    assert_eq!(version, charter.charter().version);
    for i in on {
        let n = net.nodes()[*i].node;
        wait_for("the charter to be adopted", || async {
            n.core
                .status()
                .await
                .is_ok_and(|s| s.charter_version == version)
        })
        .await?;
    }
    Ok(())
}

fn has_alert(net: &Harness, i: usize, id: &alertmesh_protocol::EnvelopeId) -> bool {
    alertmesh_node::store::open_reader(&data_dir(net, i)).is_ok_and(|c| {
        c.query_row(
            "SELECT count(*) FROM alerts WHERE envelope_id = ?1",
            [id.as_bytes()],
            |r| r.get::<_, i64>(0),
        )
        .is_ok_and(|n| n == 1)
    })
}

async fn wait_alert(
    net: &Harness,
    i: usize,
    id: &alertmesh_protocol::EnvelopeId,
) -> anyhow::Result<()> {
    wait_for("the alert to be stored", || async { has_alert(net, i, id) }).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn org_removed_from_a_topic_keeps_older_alerts_but_cannot_decrypt_later_ones()
-> anyhow::Result<()> {
    let plan = simple_plan(3, alertmesh_node::clock::now_ms() - 60_000);
    let net = Builder::from_plan(plan).seed(21).start().await?;
    let before = net.nodes()[0]
        .node
        .core
        .publish("all".into(), Tlp::Green, sample_alert("before"))
        .await??;
    wait_alert(&net, 2, &before.id).await?;

    let p = Proposal {
        topics: vec![TopicEdit {
            name: "all".into(),
            readers: Some(vec![org("org-0"), org("org-1")]),
            ..Default::default()
        }],
        ..Default::default()
    };
    let v2 = next_charter(&net, &net.network().genesis, &p, &[0, 1])?;
    adopt_everywhere(&net, &v2, &[0, 1, 2]).await?;
    let after = net.nodes()[0]
        .node
        .core
        .publish("all".into(), Tlp::Green, sample_alert("after"))
        .await??;
    wait_alert(&net, 1, &after.id).await?;

    assert!(
        has_alert(&net, 2, &before.id),
        "org-2 keeps what it could read before"
    );
    assert!(
        !has_alert(&net, 2, &after.id),
        "org-2 read an alert published after its removal"
    );
    // Cryptographically: the key package for the new epoch does not open for org-2.
    let network_id = net.network().genesis.charter().network_id;
    let topic = TopicId::derive(&network_id, "all");
    let author = net.network().orgs[0].nodes[0].key.public();
    let conn = alertmesh_node::store::open_reader(&data_dir(&net, 1))?;
    let bytes: Vec<u8> = conn.query_row(
        "SELECT bytes FROM envelopes WHERE author = ?1 AND topic = ?2 AND kind = 'key_package' ORDER BY key_epoch DESC, seq DESC LIMIT 1",
        rusqlite::params![author.as_bytes(), topic.as_bytes()],
        |r| r.get(0),
    )?;
    let env = SignedEnvelope::decode(&bytes, 1 << 20)?;
    assert_eq!(env.header().kind, Kind::KeyPackage);
    let alert_bytes: Vec<u8> = conn.query_row(
        "SELECT bytes FROM envelopes WHERE id = ?1",
        [after.id.as_bytes()],
        |r| r.get(0),
    )?;
    let alert = SignedEnvelope::decode(&alert_bytes, 1 << 20)?;
    assert_eq!(
        env.header().key_epoch,
        alert.header().key_epoch,
        "the alert uses the rotated key"
    );
    let pkg = KeyPackage::decode(env.payload())?;
    assert!(
        pkg.open(
            &network_id,
            &author,
            &net.network().orgs[2].nodes[0].agreement
        )
        .is_err()
    );
    assert!(
        pkg.open(
            &network_id,
            &author,
            &net.network().orgs[1].nodes[0].agreement
        )
        .is_ok()
    );
    net.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newly_added_reader_reads_what_is_published_after_it_joins() -> anyhow::Result<()> {
    let mut plan = simple_plan(3, alertmesh_node::clock::now_ms() - 60_000);
    plan.topics[0].readers = vec![org("org-0"), org("org-1")];
    let net = Builder::from_plan(plan).seed(22).start().await?;
    let p = Proposal {
        topics: vec![TopicEdit {
            name: "all".into(),
            readers: Some(vec![org("org-0"), org("org-1"), org("org-2")]),
            ..Default::default()
        }],
        ..Default::default()
    };
    let v2 = next_charter(&net, &net.network().genesis, &p, &[1, 2])?;
    adopt_everywhere(&net, &v2, &[0, 1, 2]).await?;
    let newcomer = net.nodes()[2].node;
    wait_for("the new reader to hold every publisher's key", || async {
        newcomer
            .core
            .status()
            .await
            .is_ok_and(|s| s.sender_keys.get("all") == Some(&3))
    })
    .await?;
    let id = net.nodes()[0]
        .node
        .core
        .publish("all".into(), Tlp::Green, sample_alert("welcome"))
        .await??
        .id;
    wait_alert(&net, 2, &id).await?;
    net.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proposal_signed_by_fewer_than_k_governors_is_never_adopted() -> anyhow::Result<()> {
    let plan = simple_plan(3, alertmesh_node::clock::now_ms() - 60_000); // threshold 2
    let net = Builder::from_plan(plan).seed(23).start().await?;
    let p = Proposal {
        remove_orgs: vec![org("org-2")],
        ..Default::default()
    };
    let weak = next_charter(&net, &net.network().genesis, &p, &[0])?;
    let answer = net.nodes()[0]
        .node
        .core
        .submit_charter(weak.as_bytes().to_vec())
        .await?;
    let err = answer.expect_err("a charter with one signature was adopted");
    assert!(
        err.to_string()
            .contains("1 valid governor signatures, 2 needed"),
        "{err}"
    );
    // Offered to the others directly, it fails the same way; nobody moves past version 1.
    for n in &net.nodes()[1..] {
        assert!(
            n.node
                .core
                .submit_charter(weak.as_bytes().to_vec())
                .await?
                .is_err()
        );
    }
    for n in net.nodes() {
        assert_eq!(n.node.core.status().await?.charter_version, 1);
    }
    net.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_node_is_disconnected_everywhere_and_stops_publishing() -> anyhow::Result<()> {
    let plan = simple_plan(3, alertmesh_node::clock::now_ms() - 60_000);
    let net = Builder::from_plan(plan).seed(24).start().await?;
    let revoked = net.network().orgs[2].nodes[0].key.public();
    let p = Proposal {
        revoke: vec![revoked],
        ..Default::default()
    };
    let v2 = next_charter(&net, &net.network().genesis, &p, &[0, 1])?;
    adopt_everywhere(&net, &v2, &[0, 1]).await?;
    for n in &net.nodes()[..2] {
        wait_for("the revoked node to be disconnected", || async {
            n.node
                .core
                .status()
                .await
                .is_ok_and(|s| s.admitted_peers == 1)
        })
        .await?;
    }
    let target = net.nodes()[2].node;
    wait_for("the revoked node to learn it is revoked", || async {
        target
            .core
            .status()
            .await
            .is_ok_and(|s| s.charter_version == 2 && !s.publishing_allowed)
    })
    .await?;
    let refused = target
        .core
        .publish("all".into(), Tlp::Green, sample_alert("still here"))
        .await?;
    assert!(
        matches!(
            refused,
            Err(alertmesh_node::core::PublishError::CertInvalid)
        ),
        "{refused:?}"
    );
    net.shutdown().await;
    Ok(())
}

/// The demo's example network (seven orgs, 4-of-7 governors) hands governance to three
/// orgs, which then change it on their own; alerts keep flowing throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_network_survives_a_governor_set_change() -> anyhow::Result<()> {
    let mut plan = alertmesh_node::example::plan();
    plan.now_ms = alertmesh_node::clock::now_ms() - 60_000;
    let net = Builder::from_plan(plan).seed(25).start().await?;
    let all: Vec<usize> = (0..net.nodes().len()).collect();
    let (chirper, fbi, dhs, odni, vidtube) = (0, 4, 5, 6, 2);
    let p = Proposal {
        governors: Some(vec![org("chirper"), org("fbi"), org("dhs")]),
        threshold: Some(2),
        ..Default::default()
    };
    let v2 = next_charter(&net, &net.network().genesis, &p, &[1, 2, 3, 6])?;
    adopt_everywhere(&net, &v2, &all).await?;
    // The former governors alone can no longer change anything.
    let p3 = Proposal {
        topics: vec![TopicEdit {
            name: "voting-infra".into(),
            create: true,
            readers: Some(vec![org("fbi"), org("dhs"), org("chirper")]),
            publishers: Some(vec![org("dhs")]),
            max_tlp: Some(Tlp::Amber),
        }],
        ..Default::default()
    };
    let by_old = next_charter(&net, &v2, &p3, &[1, 2, 3, 6])?;
    let err = net.nodes()[0]
        .node
        .core
        .submit_charter(by_old.as_bytes().to_vec())
        .await?
        .expect_err("former governors changed the charter");
    assert!(err.to_string().contains("not a governor"), "{err}");
    let v3 = next_charter(&net, &v2, &p3, &[fbi, chirper])?;
    adopt_everywhere(&net, &v3, &all).await?;
    // Alerts keep flowing, on old and new topics.
    let id = net.nodes()[odni]
        .node
        .core
        .publish(
            "election-2020/disinfo".into(),
            Tlp::Green,
            sample_alert("after the change"),
        )
        .await??
        .id;
    for i in all.iter().filter(|i| **i != odni) {
        wait_alert(&net, *i, &id).await?;
    }
    let reader = net.nodes()[chirper].node;
    wait_for("chirper to hold dhs's key for the new topic", || async {
        reader
            .core
            .status()
            .await
            .is_ok_and(|s| s.sender_keys.get("voting-infra") == Some(&1))
    })
    .await?;
    let infra = net.nodes()[dhs]
        .node
        .core
        .publish(
            "voting-infra".into(),
            Tlp::Amber,
            sample_alert("scan of voter-registration portals"),
        )
        .await??
        .id;
    wait_alert(&net, chirper, &infra).await?;
    wait_alert(&net, fbi, &infra).await?;
    assert!(!has_alert(&net, vidtube, &infra));
    net.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_valid_charters_of_one_version_halt_governance_everywhere() -> anyhow::Result<()> {
    let plan = simple_plan(3, alertmesh_node::clock::now_ms() - 60_000);
    let net = Builder::from_plan(plan).seed(26).start().await?;
    let a = Proposal {
        remove_orgs: vec![org("org-2")],
        ..Default::default()
    };
    let b = Proposal {
        threshold: Some(3),
        ..Default::default()
    };
    let v2a = next_charter(&net, &net.network().genesis, &a, &[0, 1])?;
    let v2b = next_charter(&net, &net.network().genesis, &b, &[1, 2])?;
    adopt_everywhere(&net, &v2a, &[0, 1, 2]).await?;
    let err = net.nodes()[1]
        .node
        .core
        .submit_charter(v2b.as_bytes().to_vec())
        .await?
        .expect_err("a fork was adopted");
    assert!(err.to_string().contains("fork"), "{err}");
    for (i, n) in net.nodes().iter().enumerate() {
        wait_for(
            "every node to see the fork and fall back to version 1",
            || async {
                n.node
                    .core
                    .status()
                    .await
                    .is_ok_and(|s| s.charter_forks == vec![2] && s.charter_version == 1)
            },
        )
        .await?;
        assert!(n.node.metrics.charter_forks.get() >= 1);
        let kept = std::fs::read_dir(data_dir(&net, i).join("charter-forks"))?.count();
        assert_eq!(kept, 2, "both charters are kept as evidence");
    }
    net.shutdown().await;
    Ok(())
}
