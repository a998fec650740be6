//! Auditing signed logs on real multi-node runs (issue 6): export → verify round trips,
//! tampering, equivocation evidence end to end, the alert lifecycle, STIX 2.1.

use alertmesh_node::audit::{self, ExportOptions, Source};
use alertmesh_node::client::Client;
use alertmesh_node::config::Config;
use alertmesh_node::views::lifecycle::{AlertState, Status};
use alertmesh_protocol::alert::{Alert, AlertKind, AlertUpdate, Observable, Retraction, Severity};
use alertmesh_protocol::audit::{MAGIC, RecordReader, RecordType, RecordWriter, Report};
use alertmesh_protocol::bootstrap::{NetworkPlan, OrgPlan, TopicPlan};
use alertmesh_protocol::{
    Content, Draft, EnvelopeId, KeyPackage, Kind, NodePublicKey, OrgId, SenderKey, SignedCharter,
    SignedEnvelope, Tlp, TopicId,
};
use alertmesh_sim::files::TOKEN;
use alertmesh_sim::harness::verdict_count;
use alertmesh_sim::harness::{Builder, Harness};
use alertmesh_sim::hostile::HostilePeer;
use alertmesh_tests::wait_for;
use libp2p::gossipsub::TopicHash;
use std::path::{Path, PathBuf};

const ALL: &str = "all";
const AGENCY: &str = "agency-only";

fn org(s: &str) -> OrgId {
    OrgId(s.to_string())
}

/// A platform, two agencies; one topic for all, one for the agencies.
fn plan() -> NetworkPlan {
    let orgs = ["plat-a", "agency-a", "agency-b"];
    let all: Vec<OrgId> = orgs.iter().map(|o| org(o)).collect();
    let agencies = vec![org("agency-a"), org("agency-b")];
    NetworkPlan {
        network_name: "audit-test".into(),
        orgs: orgs
            .iter()
            .map(|o| OrgPlan {
                name: format!("Org {o}"),
                roles: vec!["test".into()],
                ..OrgPlan::new(o, 1)
            })
            .collect(),
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
                publishers: agencies,
                max_tlp: Tlp::Red,
            },
        ],
        threshold: 2,
        limits: Default::default(),
        now_ms: alertmesh_node::clock::now_ms() - 60_000,
        cert_lifetime_ms: 24 * 3600 * 1000,
    }
}

fn data_dir(net: &Harness, org: &str) -> PathBuf {
    net.data_dir(org).unwrap_or_default()
}

fn alert(
    kind: AlertKind,
    title: &str,
    observables: Vec<Observable>,
    related: Vec<EnvelopeId>,
) -> Alert {
    Alert {
        kind,
        title: title.into(),
        description: format!("{title}: details"),
        severity: Severity::High,
        confidence: 80,
        observables,
        labels: vec!["election-2020".into()],
        references: vec![
            "https://example.invalid/case/1".into(),
            "CASE-2020-17".into(),
        ],
        valid_from_ms: 1_600_000_000_000,
        valid_until_ms: Some(1_700_000_000_000),
        related,
        stix: None,
    }
}

async fn publish(
    net: &Harness,
    org: &str,
    topic: &str,
    tlp: Tlp,
    content: Content,
) -> anyhow::Result<EnvelopeId> {
    Ok(net
        .node(org)?
        .core
        .publish(topic.into(), tlp, content)
        .await??
        .id)
}

/// The current view as `org`'s database shows it.
fn view(net: &Harness, org: &str) -> Vec<AlertState> {
    let dir = data_dir(net, org);
    alertmesh_node::store::open_reader(&dir)
        .ok()
        .and_then(|c| alertmesh_node::views::lifecycle::all_states(&c, None).ok())
        .unwrap_or_default()
}

fn rows(net: &Harness, org: &str) -> i64 {
    alertmesh_node::store::open_reader(&data_dir(net, org))
        .ok()
        .and_then(|c| {
            c.query_row("SELECT count(*) FROM alerts", [], |r| r.get(0))
                .ok()
        })
        .unwrap_or(0)
}

/// Envelopes of `author` committed on an org's node.
fn envelopes_by(net: &Harness, org: &str, author: &NodePublicKey) -> i64 {
    alertmesh_node::store::open_reader(&data_dir(net, org))
        .ok()
        .and_then(|c| {
            c.query_row(
                "SELECT count(*) FROM envelopes WHERE author = ?1",
                [author.as_bytes()],
                |r| r.get(0),
            )
            .ok()
        })
        .unwrap_or(0)
}

fn client(net: &Harness, org: &str) -> anyhow::Result<Client> {
    Ok(Client::new(
        net.node(org)?.api_addr,
        zeroize::Zeroizing::new(TOKEN.to_string()),
    ))
}

async fn api_get(net: &Harness, org: &str, path: &str) -> anyhow::Result<serde_json::Value> {
    let c = client(net, org)?;
    let path = path.to_string();
    tokio::task::spawn_blocking(move || c.get(&path)).await?
}

fn problems(r: &Report) -> Vec<String> {
    r.findings
        .iter()
        .filter(|f| f.severity == alertmesh_protocol::audit::Severity::Problem)
        .map(|f| format!("{} at {}: {}", f.code, f.location, f.message))
        .collect()
}

/// Rebuilds an export from (type, body) records with fresh digests: what someone who
/// edits a file and recomputes its digests produces.
fn rebuild(records: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let mut w = RecordWriter::new();
    let mut out = MAGIC.to_vec();
    for (ty, body) in records {
        let ty = RecordType::from_u8(*ty).unwrap_or(RecordType::Envelope);
        if ty == RecordType::End {
            continue;
        }
        out.extend(w.record(ty, body).unwrap_or_default());
    }
    out.extend(w.end(None));
    out
}

fn records_of(file: &[u8]) -> Vec<(u8, Vec<u8>)> {
    RecordReader::new(file)
        .filter_map(Result::ok)
        .map(|r| (r.ty, r.body.to_vec()))
        .collect()
}

/// Validates a bundle with the OASIS `stix2-validator` (Python) if it is installed;
/// otherwise says so and returns Ok.
fn python_validate(bundle: &serde_json::Value, dir: &Path) -> anyhow::Result<()> {
    let file = dir.join("bundle.json");
    std::fs::write(&file, serde_json::to_vec_pretty(bundle)?)?;
    let script = "import sys\ntry:\n    import stix2validator as v\nexcept ImportError:\n    sys.exit(77)\n\
                  r = v.validate_file(sys.argv[1], v.ValidationOptions(strict=False))\n\
                  v.print_results(r)\nsys.exit(0 if r.is_valid else 1)\n";
    match std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&file)
        .output()
    {
        Err(e) => {
            eprintln!("SKIPPED: stix2-validator check (python3 not available: {e})");
            Ok(())
        }
        Ok(out) if out.status.code() == Some(77) => {
            eprintln!("SKIPPED: stix2-validator check (`pip install stix2-validator` to run it)");
            Ok(())
        }
        Ok(out) if out.status.success() => {
            eprintln!(
                "stix2-validator: valid{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            Ok(())
        }
        Ok(out) => anyhow::bail!(
            "stix2-validator rejects the bundle:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_verify_round_trip_lifecycle_and_stix_on_a_real_network() -> anyhow::Result<()> {
    let net = Builder::from_plan(plan()).seed(61).start().await?;
    // An indicator, a campaign, an agencies-only advisory; a sighting by another org;
    // an update and a retraction by the author.
    let indicator = publish(
        &net,
        "plat-a",
        ALL,
        Tlp::Amber,
        Content::Alert(alert(
            AlertKind::Indicator,
            "Phishing domain impersonating a county election office",
            vec![
                Observable::Domain("vote-county-example.com".into()),
                Observable::Url("https://vote-county-example.com/login".into()),
                Observable::Ipv4([192, 0, 2, 7]),
                Observable::Email("it-support@vote-county-example.com".into()),
                Observable::FileSha256([0xab; 32]),
                Observable::SocialAccount {
                    platform: "example-social".into(),
                    handle: "@fake_poll_news".into(),
                },
                Observable::Hashtag("stopthecount".into()),
            ],
            vec![],
        )),
    )
    .await?;
    let campaign = publish(
        &net,
        "plat-a",
        ALL,
        Tlp::Green,
        Content::Alert(alert(
            AlertKind::Campaign,
            "Coordinated fake-account network",
            vec![Observable::Domain("fake-news-example.net".into())],
            vec![indicator],
        )),
    )
    .await?;
    publish(
        &net,
        "agency-a",
        AGENCY,
        Tlp::Red,
        Content::Alert(alert(
            AlertKind::Advisory,
            "Agency-only advisory",
            vec![],
            vec![],
        )),
    )
    .await?;
    wait_for("every reader to hold the first alerts", || async {
        rows(&net, "agency-a") >= 3 && rows(&net, "agency-b") >= 3 && rows(&net, "plat-a") >= 2
    })
    .await?;
    let sighting = publish(
        &net,
        "agency-b",
        ALL,
        Tlp::Amber,
        Content::Alert(alert(
            AlertKind::Sighting,
            "Seen in our logs",
            vec![Observable::Domain("vote-county-example.com".into())],
            vec![indicator],
        )),
    )
    .await?;
    let mut updated = alert(
        AlertKind::Indicator,
        "Phishing domain impersonating a county election office (v2)",
        vec![Observable::Domain("vote-county-example.com".into())],
        vec![],
    );
    updated.severity = Severity::Critical;
    publish(
        &net,
        "plat-a",
        ALL,
        Tlp::Amber,
        Content::Update(AlertUpdate {
            original: indicator,
            alert: updated,
        }),
    )
    .await?;
    publish(
        &net,
        "plat-a",
        ALL,
        Tlp::Green,
        Content::Retraction(Retraction {
            original: campaign,
            reason: "false positive".into(),
        }),
    )
    .await?;
    // An update by another org is refused locally.
    let refused = net
        .node("agency-a")?
        .core
        .publish(
            ALL.into(),
            Tlp::Amber,
            Content::Retraction(Retraction {
                original: indicator,
                reason: "not mine".into(),
            }),
        )
        .await?;
    assert!(
        matches!(
            refused,
            Err(alertmesh_node::core::PublishError::NotAuthor(_))
        ),
        "{refused:?}"
    );
    wait_for("every reader to hold every alert", || async {
        rows(&net, "plat-a") >= 5 && rows(&net, "agency-a") >= 6 && rows(&net, "agency-b") >= 6
    })
    .await?;

    // Lifecycle: the same current state everywhere.
    for o in ["plat-a", "agency-a", "agency-b"] {
        let states = view(&net, o);
        let ind = states
            .iter()
            .find(|s| s.id == indicator.to_hex())
            .ok_or_else(|| anyhow::anyhow!("{o}: no indicator"))?;
        assert_eq!(ind.state, Status::Updated, "{o}");
        assert_eq!(ind.version, 2);
        assert_eq!(ind.current.severity, Severity::Critical);
        assert_eq!(ind.history.len(), 2);
        assert_eq!(ind.sightings.len(), 1);
        assert_eq!(ind.sightings[0].org, "agency-b");
        let camp = states
            .iter()
            .find(|s| s.id == campaign.to_hex())
            .ok_or_else(|| anyhow::anyhow!("no campaign"))?;
        assert_eq!(camp.state, Status::Retracted);
        assert_eq!(
            camp.retraction.as_ref().map(|r| r.reason.as_str()),
            Some("false positive")
        );
        let s = states
            .iter()
            .find(|s| s.id == sighting.to_hex())
            .ok_or_else(|| anyhow::anyhow!("no sighting"))?;
        assert_eq!(s.sighting_of, vec![indicator.to_hex()]);
    }
    // The same through the API.
    let page = api_get(&net, "agency-a", "/v1/alerts?view=current&topic=all").await?;
    let states: Vec<AlertState> = serde_json::from_value(page["alerts"].clone())?;
    assert_eq!(states.len(), 3, "indicator, campaign, sighting on `all`");
    assert!(states.iter().any(|s| s.state == Status::Retracted));
    let bad = client(&net, "agency-a")?;
    let err = tokio::task::spawn_blocking(move || {
        bad.get::<serde_json::Value>("/v1/alerts?view=nonsense")
    })
    .await?;
    assert!(err.is_err());

    // Audit: every node's data directory and every node's export verify clean.
    let out = tempfile::tempdir()?;
    for n in net.nodes() {
        let config = Config::load(n.config)?;
        let source = Source::from_config(&config)?;
        let report = audit::verify_data_dir(&source, true)?;
        assert!(report.ok, "{}: {:#?}", n.org, problems(&report));
        assert!(
            report.stats.plaintexts_checked >= 5,
            "{}: {:?}",
            n.org,
            report.stats
        );
        assert_eq!(report.stats.signatures_verified, report.stats.envelopes);
        let file = out.path().join(format!("{}.audit", n.org));
        let summary = audit::export(
            &source,
            &ExportOptions {
                with_plaintext: true,
                ..ExportOptions::default()
            },
            &file,
        )?;
        assert!(summary.signed && summary.plaintexts >= 5);
        assert!(
            audit::export(&source, &ExportOptions::default(), &file).is_err(),
            "never overwrites"
        );
        let report = audit::verify_file(&file, Some(net.network().genesis_hash()))?;
        assert!(report.ok, "{}: {:#?}", n.org, problems(&report));
        let export = report
            .export
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("no export info"))?;
        assert!(export.signature_valid);
        assert_eq!(export.exporter_org.as_deref(), Some(n.org));
        assert!(report.stats.plaintexts_checked >= 5);
        let text = audit::render("test", &report);
        assert!(text.contains("result: OK"), "{text}");
    }
    // A bare data directory (no keys): an unsigned export, filtered to one topic.
    let bare = Source::from_data_dir(&data_dir(&net, "agency-b"), None, None)?;
    let file = out.path().join("agency-only.audit");
    audit::export(
        &bare,
        &ExportOptions {
            topics: vec![AGENCY.into()],
            ..ExportOptions::default()
        },
        &file,
    )?;
    let report = audit::verify_file(&file, Some(net.network().genesis_hash()))?;
    assert!(report.ok, "{:#?}", problems(&report));
    assert!(report.has("unsigned_export"));
    assert!(
        report
            .stats
            .by_topic
            .keys()
            .all(|t| t == AGENCY || t == "_control"),
        "{:?}",
        report.stats.by_topic
    );
    // A time filter: chains may start above seq 1.
    let since = view(&net, "agency-b")
        .iter()
        .find(|s| s.id == sighting.to_hex())
        .map(|s| s.created_ms as u64)
        .unwrap_or(0);
    let file = out.path().join("since.audit");
    audit::export(
        &bare,
        &ExportOptions {
            since_ms: Some(since),
            ..ExportOptions::default()
        },
        &file,
    )?;
    let report = audit::verify_file(&file, Some(net.network().genesis_hash()))?;
    assert!(report.ok, "{:#?}", problems(&report));

    // Tampering with a real export, each with the right finding.
    let genuine = std::fs::read(out.path().join("agency-a.audit"))?;
    let recs = records_of(&genuine);
    let parsed: Vec<_> = RecordReader::new(&genuine).filter_map(Result::ok).collect();
    let alert_rec = parsed
        .iter()
        .find(|r| {
            r.ty == RecordType::Envelope as u8
                && SignedEnvelope::decode(&r.body[8..], 1 << 20).is_ok_and(|e| e.id() == indicator)
        })
        .ok_or_else(|| anyhow::anyhow!("indicator not in the export"))?;
    // (1) A bit flipped inside the envelope (its ciphertext): the record's digest and the
    // envelope's signature both fail, located at that record.
    let mut flipped = genuine.clone();
    let pos = alert_rec.offset as usize + 5 + 8 + 200;
    flipped[pos] ^= 0x10;
    let report = audit::verify_export_bytes(&flipped, net.network().genesis_hash());
    let digest: Vec<_> = report.with_code("record_digest_mismatch").collect();
    assert_eq!(digest.len(), 1);
    assert_eq!(digest[0].location.record, Some(alert_rec.index));
    let sig: Vec<_> = report.with_code("bad_signature").collect();
    assert_eq!(sig.len(), 1);
    assert_eq!(sig[0].location.record, Some(alert_rec.index));
    // (2) The same flip with digests recomputed: the signature still catches it.
    let mut edited = recs.clone();
    edited[alert_rec.index as usize].1[8 + 200] ^= 0x10;
    let report = audit::verify_export_bytes(&rebuild(&edited), net.network().genesis_hash());
    assert!(report.has("bad_signature") && !report.has("record_digest_mismatch"));
    // (3) An envelope removed from the middle of a chain, digests recomputed: a gap.
    let mut removed = recs.clone();
    removed.remove(alert_rec.index as usize);
    if removed
        .get(alert_rec.index as usize)
        .is_some_and(|(ty, _)| *ty == RecordType::Plaintext as u8)
    {
        removed.remove(alert_rec.index as usize);
    }
    let report = audit::verify_export_bytes(&rebuild(&removed), net.network().genesis_hash());
    let gaps: Vec<_> = report.with_code("chain_gap").collect();
    assert_eq!(gaps.len(), 1, "{:#?}", problems(&report));
    assert!(
        gaps[0].message.contains(&format!("seq {} is missing", {
            SignedEnvelope::decode(&alert_rec.body[8..], 1 << 20)?
                .header()
                .seq
        })),
        "{}",
        gaps[0].message
    );
    // (4) A forged charter transition: version 2 signed by a key that is not a governor's.
    let mut c2 = net.network().genesis.charter().clone();
    c2.version = 2;
    c2.prev_hash = net.network().genesis_hash();
    c2.members.retain(|m| m.org_id.as_str() != "agency-b");
    c2.governors.retain(|g| g.as_str() != "agency-b");
    c2.topics.iter_mut().for_each(|t| {
        t.readers.retain(|r| r.as_str() != "agency-b");
        t.publishers.retain(|r| r.as_str() != "agency-b");
    });
    let mut forged = SignedCharter::unsigned(c2);
    forged.sign(&org("plat-a"), &net.network().orgs[0].root);
    forged.sign(
        &org("agency-a"),
        &alertmesh_protocol::OrgRootKey::from_secret_bytes(&[7; 32]),
    );
    let mut with_charter = recs.clone();
    let after_genesis = with_charter
        .iter()
        .position(|(ty, _)| *ty == RecordType::Charter as u8)
        .map_or(1, |i| i + 1);
    with_charter.insert(
        after_genesis,
        (RecordType::Charter as u8, forged.as_bytes().to_vec()),
    );
    let report = audit::verify_export_bytes(&rebuild(&with_charter), net.network().genesis_hash());
    let f: Vec<_> = report.with_code("charter_bad_signature").collect();
    assert_eq!(f.len(), 1, "{:#?}", problems(&report));
    assert_eq!(f[0].location.record, Some(after_genesis as u64));
    assert_eq!(
        report.stats.charter_version, 1,
        "the forged version is not adopted"
    );
    // (5) An envelope re-signed by another node's key (author field unchanged).
    let env = SignedEnvelope::decode(&alert_rec.body[8..], 1 << 20)?;
    let other = &net.network().orgs[1].nodes[0].key;
    let mut resigned = env.signed_bytes().to_vec();
    resigned.extend_from_slice(
        &other.sign(alertmesh_protocol::ids::tags::ENVELOPE, env.signed_bytes()),
    );
    let mut body = alert_rec.body[..8].to_vec();
    body.extend_from_slice(&resigned);
    let mut swapped = recs.clone();
    swapped[alert_rec.index as usize].1 = body;
    let report = audit::verify_export_bytes(&rebuild(&swapped), net.network().genesis_hash());
    let sig: Vec<_> = report.with_code("bad_signature").collect();
    assert_eq!(sig.len(), 1);
    assert_eq!(sig[0].location.record, Some(alert_rec.index));
    // (6) Truncated: reported.
    let report =
        audit::verify_export_bytes(&genuine[..genuine.len() - 50], net.network().genesis_hash());
    assert!(report.has("truncated"));

    // STIX 2.1: structurally valid, with the expected objects; stix2-validator if present.
    let bundle = api_get(&net, "agency-a", "/v1/stix/bundle").await?;
    let errors = alertmesh_node::stix::check_bundle(&bundle);
    assert!(errors.is_empty(), "{errors:#?}");
    let objects = bundle["objects"].as_array().cloned().unwrap_or_default();
    let of_type = |t: &str| {
        objects
            .iter()
            .filter(|o| o["type"] == t)
            .cloned()
            .collect::<Vec<_>>()
    };
    let indicators = of_type("indicator");
    let versions: Vec<_> = indicators
        .iter()
        .filter(|o| o["external_references"][0]["external_id"] == indicator.to_hex().as_str())
        .collect();
    assert_eq!(versions.len(), 2, "original and update");
    assert_eq!(versions[0]["id"], versions[1]["id"]);
    assert!(versions[1]["modified"].as_str() > versions[0]["modified"].as_str());
    assert!(versions[0]["pattern"].as_str().is_some_and(|p| {
        p.contains("[domain-name:value = 'vote-county-example.com']")
            && p.contains("[file:hashes.'SHA-256' = '")
            && p.contains("[email-addr:value = ")
    }));
    let campaigns = of_type("campaign");
    assert_eq!(campaigns.last().map(|c| c["revoked"] == true), Some(true));
    let sightings = of_type("sighting");
    assert_eq!(sightings.len(), 1);
    assert_eq!(sightings[0]["sighting_of_ref"], versions[0]["id"]);
    assert_eq!(of_type("identity").len(), 3);
    let rels = of_type("relationship");
    assert!(rels.iter().any(|r| r["relationship_type"] == "indicates"));
    assert!(rels.iter().any(|r| r["relationship_type"] == "related-to"));
    assert!(of_type("report").len() == 1, "the agencies-only advisory");
    assert!(
        objects
            .iter()
            .any(|o| o["id"] == "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1")
    );
    // Deterministic: the same bundle on every reader, byte for byte (topic `all`).
    let a = api_get(&net, "agency-a", "/v1/stix/bundle?topic=all").await?;
    let b = api_get(&net, "agency-b", "/v1/stix/bundle?topic=all").await?;
    assert_eq!(a, b);
    python_validate(&bundle, out.path())?;
    net.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equivocating_peer_is_caught_by_every_honest_node() -> anyhow::Result<()> {
    let net = Builder::from_plan(plan()).seed(62).start().await?;
    let network_id = net.network().genesis.charter().network_id;
    let plat = &net.network().orgs[0];
    let mut rng = rand::rngs::OsRng;
    let rogue = net.member_identity(&plat.member.org_id.0)?;
    let peer = HostilePeer::member(&rogue)?;
    // Connected to one honest node only, which sees both versions of seq 1.
    let first = net.nodes()[0].node;
    net.admit(&peer, &[net.nodes()[0].name]).await?;
    let topic = TopicId::derive(&network_id, ALL);
    let key = SenderKey::generate(1, &mut rng);
    let twin = |text: &[u8]| -> anyhow::Result<SignedEnvelope> {
        let draft = Draft {
            network_id,
            topic_id: topic,
            seq: 1,
            prev: EnvelopeId::default(),
            charter_version: 1,
            timestamp_ms: alertmesh_node::clock::now_ms(),
            kind: Kind::Alert,
            key_epoch: 1,
            tlp: Tlp::Green,
        };
        Ok(SignedEnvelope::seal_encrypted(
            &rogue.key,
            &draft,
            &key,
            text,
            &mut rand::rngs::OsRng,
        )?)
    };
    let (a, b) = (twin(b"one story")?, twin(b"another story")?);
    let hash = TopicHash::from_raw(topic.gossip_name(&network_id));
    for env in [&a, &b] {
        let bytes = env.as_bytes().to_vec();
        wait_for("the rogue's gossip to go out", || {
            let (hash, bytes) = (hash.clone(), bytes.clone());
            let peer = &peer;
            async move { peer.publish(hash, bytes).await.is_ok() }
        })
        .await?;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    // Every honest node learns of it (the first one directly, the others from the
    // evidence it gossips), shows it in status and metrics, and its audit reports it.
    for n in net.nodes() {
        // `status` counts evidence when it is judged; the row is committed just after.
        wait_for(
            &format!("{} to hold the evidence on disk", n.org),
            || async {
                n.node.core.status().await.is_ok_and(|s| s.evidence == 1)
                    && api_get(&net, n.org, "/v1/status").await.is_ok_and(|s| {
                        s["evidence_reports"]
                            .as_array()
                            .is_some_and(|r| !r.is_empty())
                    })
            },
        )
        .await?;
        assert!(
            n.node
                .metrics
                .encode()
                .contains("alertmesh_evidence_total 1"),
            "{}",
            n.org
        );
        let status = api_get(&net, n.org, "/v1/status").await?;
        let reports = status["evidence_reports"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(reports.len(), 1, "{status}");
        assert_eq!(reports[0]["misbehaviour"], "equivocation");
        assert_eq!(reports[0]["author"], rogue.key.public().to_hex().as_str());
        let source = Source::from_config(&Config::load(n.config)?)?;
        let report = audit::verify_data_dir(&source, false)?;
        assert_eq!(report.evidence.len(), 1, "{}", n.org);
        assert_eq!(report.evidence[0].author, rogue.key.public());
        assert_eq!(report.evidence[0].seq, 1);
        let mut ids = [a.id(), b.id()];
        ids.sort();
        assert_eq!(report.evidence[0].ids, ids);
        assert!(report.has("equivocation") && !report.ok);
        // The evidence survives export → verify.
        let file = n.config.with_file_name("evidence.audit");
        audit::export(&source, &ExportOptions::default(), &file)?;
        let report = audit::verify_file(&file, None)?;
        assert_eq!(report.evidence.len(), 1);
        assert!(report.has("equivocation"));
    }
    assert!(verdict_count(first, "reject", "equivocation") >= 1);
    drop(peer);
    net.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amendment_by_another_org_is_rejected_and_counted() -> anyhow::Result<()> {
    let net = Builder::from_plan(plan()).seed(63).start().await?;
    let original = publish(
        &net,
        "plat-a",
        ALL,
        Tlp::Amber,
        Content::Alert(alert(
            AlertKind::Indicator,
            "Original",
            vec![Observable::Domain("x.example".into())],
            vec![],
        )),
    )
    .await?;
    wait_for("every node to hold the original", || async {
        ["plat-a", "agency-a", "agency-b"]
            .iter()
            .all(|o| rows(&net, o) >= 1)
    })
    .await?;
    // A modified agency-a node tries to update and retract plat-a's alert.
    let network_id = net.network().genesis.charter().network_id;
    let agency = &net.network().orgs[1];
    let mut rng = rand::rngs::OsRng;
    let rogue = net.member_identity(&agency.member.org_id.0)?;
    let peer = HostilePeer::member(&rogue)?;
    let everyone: Vec<&str> = net.nodes().iter().map(|n| n.name).collect();
    net.admit(&peer, &everyone).await?;
    let topic = TopicId::derive(&network_id, ALL);
    let key = SenderKey::generate(1, &mut rng);
    let readers: Vec<_> = net
        .network()
        .nodes()
        .map(|(_, n)| n.agreement.public())
        .collect();
    let (pkg, _) = KeyPackage::seal(
        &network_id,
        &topic,
        &rogue.key.public(),
        &key,
        &readers,
        &mut rng,
    );
    let mut draft = Draft {
        network_id,
        topic_id: topic,
        seq: 1,
        prev: EnvelopeId::default(),
        charter_version: 1,
        timestamp_ms: alertmesh_node::clock::now_ms(),
        kind: Kind::KeyPackage,
        key_epoch: 1,
        tlp: Tlp::Clear,
    };
    let kp = SignedEnvelope::seal_clear(&rogue.key, &draft, &pkg.encode())?;
    let mut envs = vec![kp];
    for content in [
        Content::Update(AlertUpdate {
            original,
            alert: alert(AlertKind::Indicator, "Hijacked", vec![], vec![]),
        }),
        Content::Retraction(Retraction {
            original,
            reason: "hijacked".into(),
        }),
    ] {
        draft.seq += 1;
        draft.prev = envs.last().map(|e| e.id()).unwrap_or_default();
        draft.kind = content.kind();
        draft.tlp = Tlp::Amber;
        envs.push(SignedEnvelope::seal_encrypted(
            &rogue.key,
            &draft,
            &key,
            &content.encode(),
            &mut rng,
        )?);
    }
    let hash = TopicHash::from_raw(topic.gossip_name(&network_id));
    for env in &envs {
        let bytes = env.as_bytes().to_vec();
        wait_for("the rogue's gossip to go out", || {
            let (hash, bytes) = (hash.clone(), bytes.clone());
            let peer = &peer;
            async move { peer.publish(hash, bytes).await.is_ok() }
        })
        .await?;
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    for n in net.nodes() {
        wait_for(&format!("{} to refuse both amendments", n.org), || async {
            verdict_count(n.node, "reject", "amendment_not_by_author") >= 2
        })
        .await?;
        // Counted when judged; the export reads what is committed.
        wait_for(
            &format!("{} to commit the rogue's envelopes", n.org),
            || async { envelopes_by(&net, n.org, &rogue.key.public()) == 3 },
        )
        .await?;
        let state = view(&net, n.org)
            .into_iter()
            .find(|s| s.id == original.to_hex())
            .ok_or_else(|| anyhow::anyhow!("no original"))?;
        assert_eq!(state.state, Status::Active, "{}", n.org);
        assert_eq!(state.version, 1);
        assert_eq!(state.current.title, "Original");
        // The signed attempts are in the log; an export with plaintext shows them.
        let source = Source::from_config(&Config::load(n.config)?)?;
        let file = n.config.with_file_name("amend.audit");
        audit::export(
            &source,
            &ExportOptions {
                with_plaintext: true,
                ..ExportOptions::default()
            },
            &file,
        )?;
        let report = audit::verify_file(&file, None)?;
        let found: Vec<_> = report.with_code("amendment_not_by_author").collect();
        assert_eq!(found.len(), 2, "{}: {:#?}", n.org, problems(&report));
        assert!(found.iter().all(|f| {
            f.envelope
                .as_ref()
                .is_some_and(|e| e.author == rogue.key.public())
        }));
    }
    drop(peer);
    net.shutdown().await;
    Ok(())
}
