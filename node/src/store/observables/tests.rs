//! The index on real SQLite: written by the real writer in the alert's transaction,
//! following updates and retractions, and built for an older database by migration 4.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::store::migrate::{APPLICATION_ID, MIGRATIONS};
use crate::store::{AlertRow, Write, db_path, open, open_reader, spawn_writer};
use alertmesh_protocol::alert::{Alert, AlertUpdate, Observable, Retraction};
use alertmesh_protocol::{Content, EnvelopeId, NetworkId};
use rusqlite::{Connection, params};

const NET: NetworkId = NetworkId([1; 32]);

fn alert(title: &str, observables: Vec<Observable>) -> Alert {
    let mut a = Alert::example(1_000);
    a.title = title.into();
    a.description = String::new();
    a.observables = observables;
    a
}

/// A stored row: an envelope row `[i; 32]` (written on the side, as the core's
/// `Write::Envelope` would) and the alert row of `content`.
struct Row {
    i: u8,
    org: &'static str,
    topic: &'static str,
    ts: i64,
    content: Content,
}

fn envelope_sql(conn: &Connection, r: &Row) {
    conn.execute(
        "INSERT INTO envelopes (id, author, topic, seq, prev, kind, charter_version,
         timestamp_ms, key_epoch, received_ms, bytes)
         VALUES (?1, ?2, x'00', ?3, x'00', 'alert', 1, ?4, 1, ?4, x'00')",
        params![
            [r.i; 32].as_slice(),
            [r.i + 100; 32].as_slice(),
            r.i as i64,
            r.ts
        ],
    )
    .unwrap();
}

fn alert_row(r: &Row) -> AlertRow {
    AlertRow {
        envelope_id: EnvelopeId([r.i; 32]),
        topic_name: r.topic.into(),
        org: r.org.into(),
        tlp: alertmesh_protocol::Tlp::Green,
        timestamp_ms: r.ts as u64,
        content: r.content.clone(),
    }
}

/// Stores rows through the real writer, each committed before the next.
fn store(dir: &std::path::Path, rows: &[Row]) {
    let side = Connection::open(db_path(dir)).unwrap();
    side.busy_timeout(std::time::Duration::from_secs(5))
        .unwrap();
    let writer = spawn_writer(open(dir, &NET).unwrap());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for r in rows {
        envelope_sql(&side, r);
        rt.block_on(async {
            let committed = writer
                .write_all(vec![Write::Alert(alert_row(r))])
                .await
                .unwrap();
            committed.await.unwrap().unwrap();
        });
    }
}

fn look(conn: &Connection, value: &str) -> LookupPage {
    lookup(conn, &lookup_keys(value, None).unwrap(), None, 100).unwrap()
}

fn ids(hits: &[Hit]) -> Vec<String> {
    hits.iter().map(|h| h.id[..2].to_string()).collect()
}

fn search_ids(conn: &Connection, q: &str) -> Vec<String> {
    let page = search(
        conn,
        &fts_query(q).unwrap(),
        &SearchFilter::default(),
        None,
        100,
    )
    .unwrap();
    ids(&page.hits)
}

#[test]
fn lookup_search_and_correlations_follow_the_current_state() {
    let dir = tempfile::tempdir().unwrap();
    let a1 = Content::Alert(alert(
        "Phishing wave against poll workers",
        vec![
            Observable::Domain("Bad.Example.".into()),
            Observable::Hashtag("#Vote".into()),
            Observable::Domain("bad.example".into()),
        ],
    ));
    let b1 = Content::Alert(alert(
        "Credential harvesting page",
        vec![
            Observable::Url("https://BAD.example/login#x".into()),
            Observable::Hashtag("vote".into()),
        ],
    ));
    let c1 = Content::Alert(alert(
        "Unrelated",
        vec![Observable::Domain("other.example".into())],
    ));
    store(
        dir.path(),
        &[
            Row {
                i: 1,
                org: "org-a",
                topic: "t1",
                ts: 10,
                content: a1,
            },
            Row {
                i: 2,
                org: "org-b",
                topic: "t2",
                ts: 20,
                content: b1,
            },
            Row {
                i: 3,
                org: "org-a",
                topic: "t1",
                ts: 30,
                content: c1,
            },
        ],
    );
    let conn = open_reader(dir.path()).unwrap();

    // A domain: only the alert that carries it (once, though listed twice).
    let page = look(&conn, "BAD.EXAMPLE.");
    assert_eq!(
        (ids(&page.hits), page.distinct_orgs),
        (vec!["01".into()], 1)
    );
    assert_eq!(page.hits[0].org, "org-a");
    assert_eq!(page.hits[0].author, hex::encode([101u8; 32]));
    assert_eq!(
        (page.hits[0].state.as_str(), page.hits[0].kind.as_str()),
        ("active", "indicator")
    );
    // A URL: the URL's alert and the alert on its domain, two orgs.
    let page = look(&conn, "https://bad.example/login");
    assert_eq!(ids(&page.hits), vec!["02", "01"]);
    assert_eq!(page.distinct_orgs, 2);
    assert_eq!(page.hits[1].matched[0].ty, ObsType::Domain);
    // Paging: one at a time, newest first.
    let keys = lookup_keys("https://bad.example/login", None).unwrap();
    let first = lookup(&conn, &keys, None, 1).unwrap();
    let second = lookup(&conn, &keys, first.next, 1).unwrap();
    assert_eq!(
        (ids(&first.hits), ids(&second.hits), second.next),
        (vec!["02".into()], vec!["01".into()], None)
    );
    assert_eq!(first.alerts, 2);
    // Search over titles, every word, quoted; a prefix.
    assert_eq!(search_ids(&conn, "phishing POLL"), vec!["01"]);
    assert_eq!(search_ids(&conn, "harvest*"), vec!["02"]);
    assert!(search_ids(&conn, "phishing harvesting").is_empty());
    // Correlations: the hashtag is shared by 01 and 02 (two orgs).
    let cor = correlations_of(&conn, 1).unwrap().unwrap();
    assert_eq!(cor.shared.len(), 1);
    assert_eq!(cor.shared[0].key.value, "vote");
    assert_eq!(cor.shared[0].orgs, vec!["org-a", "org-b"]);
    assert_eq!(ids(&cor.shared[0].alerts), vec!["02"]);
    let values = correlated(&conn, 2, 0, 10).unwrap().values;
    assert_eq!(values.len(), 1);
    assert_eq!(
        (values[0].key.value.as_str(), values[0].distinct_orgs),
        ("vote", 2)
    );
    drop(conn);

    // org-a updates 01 (new domain and title), then org-b retracts 02.
    let mut new = alert(
        "Phishing wave moved",
        vec![Observable::Domain("new.example".into())],
    );
    new.kind = alertmesh_protocol::alert::AlertKind::Campaign;
    let update = Content::Update(AlertUpdate {
        original: EnvelopeId([1; 32]),
        alert: new,
    });
    let retraction = Content::Retraction(Retraction {
        original: EnvelopeId([2; 32]),
        reason: "false positive".into(),
    });
    // An older update arriving last does not replace the newer one.
    let stale = Content::Update(AlertUpdate {
        original: EnvelopeId([1; 32]),
        alert: alert("stale", vec![Observable::Domain("stale.example".into())]),
    });
    store(
        dir.path(),
        &[
            Row {
                i: 4,
                org: "org-a",
                topic: "t1",
                ts: 40,
                content: update,
            },
            Row {
                i: 5,
                org: "org-b",
                topic: "t2",
                ts: 50,
                content: retraction,
            },
            Row {
                i: 6,
                org: "org-a",
                topic: "t1",
                ts: 35,
                content: stale,
            },
        ],
    );
    let conn = open_reader(dir.path()).unwrap();
    assert!(look(&conn, "bad.example").hits.is_empty());
    assert!(look(&conn, "stale.example").hits.is_empty());
    let page = look(&conn, "new.example");
    assert_eq!(ids(&page.hits), vec!["01"]);
    assert_eq!(
        (page.hits[0].state.as_str(), page.hits[0].kind.as_str()),
        ("updated", "campaign")
    );
    assert_eq!(page.hits[0].title, "Phishing wave moved");
    assert_eq!(search_ids(&conn, "moved"), vec!["01"]);
    assert!(search_ids(&conn, "poll").is_empty());
    // Retracted: still found, shown as retracted, no support.
    let page = look(&conn, "https://bad.example/login");
    assert_eq!(ids(&page.hits), vec!["02"]);
    assert_eq!(page.hits[0].state, "retracted");
    assert_eq!((page.distinct_orgs, page.retracted), (0, 1));
    assert!(correlated(&conn, 2, 0, 10).unwrap().values.is_empty());
    // Filters of search.
    let filter = SearchFilter {
        org: Some("org-b".into()),
        ..Default::default()
    };
    let page = search(&conn, &fts_query("page").unwrap(), &filter, None, 10).unwrap();
    assert_eq!(ids(&page.hits), vec!["02"]);
    let filter = SearchFilter {
        topic: Some("t1".into()),
        ..Default::default()
    };
    assert!(
        search(&conn, &fts_query("page").unwrap(), &filter, None, 10)
            .unwrap()
            .hits
            .is_empty()
    );
    // An amendment's id resolves to its alert.
    assert_eq!(alert_cursor(&conn, &[4; 32]).unwrap(), Some(1));
}

#[test]
fn migration_4_indexes_an_older_database() {
    let dir = tempfile::tempdir().unwrap();
    {
        let c = Connection::open(db_path(dir.path())).unwrap();
        c.execute_batch(&format!(
            "{}; {}; {}; PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = 3;",
            MIGRATIONS[0], MIGRATIONS[1], MIGRATIONS[2]
        ))
        .unwrap();
        c.execute(
            "INSERT INTO meta (key, value) VALUES ('network_id', ?1)",
            [NET.as_bytes()],
        )
        .unwrap();
        let rows = [
            Row {
                i: 1,
                org: "org-a",
                topic: "t1",
                ts: 10,
                content: Content::Alert(alert(
                    "old one",
                    vec![Observable::Domain("old.example".into())],
                )),
            },
            Row {
                i: 2,
                org: "org-b",
                topic: "t1",
                ts: 20,
                content: Content::Alert(alert(
                    "old two",
                    vec![Observable::Domain("OLD.example".into())],
                )),
            },
        ];
        for (cursor, r) in rows.iter().enumerate() {
            envelope_sql(&c, r);
            c.execute(
                "INSERT INTO alerts (envelope_id, cursor, topic_name, org, kind, original, tlp,
                 timestamp_ms, content_json) VALUES (?1, ?2, ?3, ?4, 'alert', NULL, 'TLP:GREEN', ?5, ?6)",
                params![
                    [r.i; 32].as_slice(),
                    cursor as i64 + 1,
                    r.topic,
                    r.org,
                    r.ts,
                    serde_json::to_string(&r.content).unwrap()
                ],
            )
            .unwrap();
        }
    }
    drop(open(dir.path(), &NET).unwrap());
    let conn = open_reader(dir.path()).unwrap();
    let page = look(&conn, "old.example");
    assert_eq!(
        (ids(&page.hits), page.distinct_orgs),
        (vec!["02".into(), "01".into()], 2)
    );
    assert_eq!(search_ids(&conn, "old"), vec!["02", "01"]);
}

#[test]
fn requests_are_checked_with_typed_reasons() {
    fn reason<T: std::fmt::Debug>(r: Result<T, QueryError>) -> &'static str {
        r.unwrap_err().reason()
    }
    assert_eq!(reason(lookup_keys("  ", None)), "empty_query");
    assert_eq!(
        reason(lookup_keys(&"a".repeat(3000), None)),
        "query_too_long"
    );
    assert_eq!(reason(lookup_keys("x", Some("ipv5"))), "unknown_type");
    assert_eq!(reason(lookup_keys("x", Some("ipv4"))), "invalid_value");
    assert_eq!(reason(lookup_keys("@handle", None)), "unrecognized_value");
    assert_eq!(reason(fts_query("\"* ( )")), "empty_query");
    assert_eq!(reason(fts_query(&"w ".repeat(20))), "too_many_words");
    assert_eq!(reason(parse_cursor(Some("abc"))), "invalid_cursor");
    assert_eq!(reason(parse_cursor(Some("-3"))), "invalid_cursor");
    assert_eq!(parse_cursor(Some("7")), Ok(Some(7)));
    // FTS5 syntax in the input is quoted, never passed through.
    assert_eq!(
        fts_query("NEAR(a b) OR x\"y").unwrap(),
        r#""NEAR" AND "a" AND "b" AND "OR" AND "x" AND "y""#
    );
}
