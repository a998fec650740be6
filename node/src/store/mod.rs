//! The node's SQLite database: signed envelopes as raw bytes, decrypted alerts, charters,
//! certificates and evidence.
//!
//! WAL mode with `synchronous=FULL`. All writes go through one [`Writer`] thread that
//! groups queued writes into one transaction and acknowledges each write only after the
//! commit, so an acknowledged write survives `kill -9`. Readers use their own
//! connections. A database that is not ours, or is damaged, is refused, never overwritten.
//!
//! Each decrypted alert gets a cursor when its row is inserted: one more than the largest
//! held, so cursors grow in commit order (an alert decrypted late, once its key arrived,
//! comes after those already delivered). Committed alerts are announced to
//! [`Writer::subscribe`] with their cursor, after the commit and never before.
//!
//! - `migrate`: [`open()`] a database, its schema and migrations.
//! - `writer`: the [`Writer`] thread.
//! - `queries`: the reads of the core, the API, the views and the governance tools.
//! - `history`: the core's point lookups into committed history ([`History`]).
//! - [`audit`]: the whole-table reads of `alertmesh audit export|verify`.
//! - [`taxii`]: the key-set page reads of the TAXII collections.
//! - [`observables`]: the observable index, full-text search and correlations.

mod audit_queries;
mod history;
mod migrate;
pub mod observables;
mod queries;
pub mod taxii;
pub mod tlog;
mod writer;

pub use history::{History, SqliteHistory};
pub use migrate::{db_path, open, open_reader};
pub use queries::*;
pub use writer::{ALERT_BUFFER, Committed, Writer, spawn_writer, spawn_writer_unindexed};

/// Audit queries (`alertmesh audit export|verify`).
pub mod audit {
    pub use super::audit_queries::*;
}

use alertmesh_protocol::alert::tlp_label;
use alertmesh_protocol::{
    Alert, Content, EnvelopeId, Kind, NodePublicKey, SignedEnvelope, Tlp, TopicId,
};
use std::path::PathBuf;

/// Why the database could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("database {path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// The error.
        source: rusqlite::Error,
    },
    /// The file is not an alertmesh database, or belongs to another network.
    #[error(
        "database {path} {problem}; it was left untouched: point `data_dir` elsewhere or move the file away"
    )]
    Foreign {
        /// The database file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The writer thread has stopped.
    #[error("the database writer has stopped")]
    WriterGone,
}

/// An envelope row to insert.
#[derive(Debug, Clone)]
pub struct EnvelopeRow {
    /// The envelope.
    pub envelope: SignedEnvelope,
    /// When we received (or published) it.
    pub received_ms: u64,
}

/// A decrypted alert row to insert.
#[derive(Debug, Clone)]
pub struct AlertRow {
    /// The envelope it came in.
    pub envelope_id: EnvelopeId,
    /// The topic's name.
    pub topic_name: String,
    /// The author's org.
    pub org: String,
    /// The envelope's TLP.
    pub tlp: Tlp,
    /// The envelope's timestamp.
    pub timestamp_ms: u64,
    /// The decrypted content (its kind and original follow from it).
    pub content: Content,
}

/// One write for the writer thread.
#[derive(Debug)]
pub enum Write {
    /// A validated envelope (ignored if the id or position is already stored).
    Envelope(EnvelopeRow),
    /// A decrypted alert.
    Alert(AlertRow),
    /// An adopted charter.
    Charter {
        /// Version.
        version: u64,
        /// Hash.
        hash: [u8; 32],
        /// Exact bytes.
        bytes: Vec<u8>,
    },
    /// A verified certificate.
    Cert {
        /// Node key.
        node: NodePublicKey,
        /// Exact bytes.
        bytes: Vec<u8>,
    },
    /// Nothing: acknowledged once everything queued before it is committed.
    Barrier,
    /// Equivocation evidence.
    Evidence {
        /// Evidence id (SHA-256 of its bytes).
        id: [u8; 32],
        /// The author.
        author: NodePublicKey,
        /// The topic.
        topic: TopicId,
        /// The seq.
        seq: u64,
        /// Encoded evidence.
        bytes: Vec<u8>,
        /// When we learned of it.
        received_ms: u64,
    },
    /// A leaf of our own transparency log and the subtrees it completes.
    TlogLeaf(tlog::LeafRow),
    /// The newest checkpoint held of a log (replaces the previous one).
    Checkpoint {
        /// The log's author.
        author: NodePublicKey,
        /// Its tree size.
        size: u64,
        /// The signed note, with cosignatures.
        note: Vec<u8>,
        /// Whether it carries enough cosignatures.
        witnessed: bool,
        /// When we got it.
        received_ms: u64,
    },
    /// Our witness state for a log: the newest checkpoint we cosigned.
    Witnessed {
        /// The log's author.
        author: NodePublicKey,
        /// Tree size.
        size: u64,
        /// Root hash.
        root: [u8; 32],
        /// The signed note.
        note: Vec<u8>,
    },
    /// Proofs an author gave of its envelopes in one of its checkpoints.
    Inclusions {
        /// The log's author.
        author: NodePublicKey,
        /// The checkpoint's tree size.
        size: u64,
        /// The signed checkpoint note the proofs lead to.
        note: Vec<u8>,
        /// Verified proofs.
        proofs: Vec<alertmesh_protocol::tlog::Inclusion>,
        /// Asked ids the author left out.
        missing: Vec<EnvelopeId>,
    },
    /// Split-view evidence.
    SplitView {
        /// Evidence id (SHA-256 of its bytes).
        id: [u8; 32],
        /// The author.
        author: NodePublicKey,
        /// The tree size both checkpoints claim.
        size: u64,
        /// Encoded evidence.
        bytes: Vec<u8>,
        /// When we learned of it.
        received_ms: u64,
    },
}

/// Everything the node loads at start: what grows with the network (charters,
/// certificates, key packages, one head per chain), never with the number of alerts.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Charters after genesis, by version.
    pub charters: Vec<Vec<u8>>,
    /// Certificates.
    pub certs: Vec<Vec<u8>>,
    /// Key-package envelopes, in insertion order.
    pub key_packages: Vec<Vec<u8>>,
    /// The head of every chain held.
    pub heads: Vec<ChainHead>,
    /// Encrypted envelopes without an alert row, oldest first, at most
    /// [`UNDECRYPTED_LOADED_BYTES`] of them (the rest wait for the next start).
    pub undecrypted: Vec<Vec<u8>>,
    /// Evidence objects held.
    pub evidence: u64,
    /// Transparency-log state.
    pub tlog: tlog::LoadedTlog,
}

/// Bytes of undecrypted envelopes [`load`] reads at most.
pub const UNDECRYPTED_LOADED_BYTES: usize = 8 * 1024 * 1024;

/// One chain held: its highest position and how many positions are held.
#[derive(Debug, Clone, Copy)]
pub struct ChainHead {
    /// The author.
    pub author: NodePublicKey,
    /// The topic.
    pub topic: TopicId,
    /// The highest seq held.
    pub seq: u64,
    /// The entry at that seq.
    pub entry: alertmesh_protocol::chain::ChainEntry,
    /// Positions held (equal to `seq` when there is no gap).
    pub held: u64,
}

/// A stored alert as the API shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StoredAlert {
    /// Position in this node's log (the pagination cursor).
    pub cursor: i64,
    /// Envelope id (hex).
    pub id: String,
    /// Topic name.
    pub topic: String,
    /// Author org.
    pub org: String,
    /// `alert`, `update` or `retraction`.
    pub kind: Kind,
    /// The original alert (hex id), for updates and retractions.
    pub original: Option<String>,
    /// TLP, as its label (`"TLP:GREEN"`).
    #[serde(with = "tlp_label")]
    pub tlp: Tlp,
    /// Author's timestamp.
    pub timestamp_ms: i64,
    /// When this node received (or published) it.
    pub received_ms: i64,
    /// Decrypted content.
    pub content: Content,
}

impl StoredAlert {
    /// The alert carried (the original's, or an update's new version).
    pub fn alert(&self) -> Option<&Alert> {
        self.content.alert()
    }

    /// The alert's title (empty for a retraction).
    pub fn title(&self) -> &str {
        self.alert().map_or("", |a| a.title.as_str())
    }
}

/// Counts of what is stored.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Counts {
    /// Envelopes.
    pub envelopes: i64,
    /// Decrypted alerts.
    pub alerts: i64,
    /// Evidence objects.
    pub evidence: i64,
}

#[cfg(test)]
mod tests {
    use super::migrate::{APPLICATION_ID, MIGRATIONS};
    use super::*;
    use alertmesh_protocol::NetworkId;
    use rusqlite::{Connection, params};

    #[test]
    fn refuses_foreign_files_without_touching_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = db_path(dir.path());
        std::fs::write(&path, b"this is not a database, it is a text file of some length ........................................................").unwrap();
        let before = std::fs::read(&path).unwrap();
        let err = open(dir.path(), &NetworkId([1; 32])).unwrap_err();
        assert!(err.to_string().contains("left untouched"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), before);

        let dir = tempfile::tempdir().unwrap();
        {
            let c = Connection::open(db_path(dir.path())).unwrap();
            c.execute_batch("CREATE TABLE other (x INTEGER); INSERT INTO other VALUES (1);")
                .unwrap();
        }
        let err = open(dir.path(), &NetworkId([1; 32])).unwrap_err();
        assert!(
            err.to_string().contains("not an alertmesh database"),
            "{err}"
        );
    }

    #[test]
    fn write_all_resolves_once_every_write_is_committed() {
        let dir = tempfile::tempdir().unwrap();
        let writer = spawn_writer(open(dir.path(), &NetworkId([1; 32])).unwrap());
        let writes = vec![
            Write::Cert {
                node: NodePublicKey([7; 32]),
                bytes: b"cert".to_vec(),
            },
            Write::Charter {
                version: 3,
                hash: [9; 32],
                bytes: b"charter".to_vec(),
            },
        ];
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let result = runtime.block_on(async {
            let committed = writer.write_all(writes).await.unwrap();
            committed.await.unwrap()
        });
        assert_eq!(result, Ok(()));
        // Both rows are readable once it resolved.
        let reader = open_reader(dir.path()).unwrap();
        let count = |table: &str| -> i64 {
            reader
                .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!((count("certs"), count("charters")), (1, 1));
    }

    #[test]
    fn migration_3_fills_taxii_columns_of_an_old_database() {
        let dir = tempfile::tempdir().unwrap();
        let network = NetworkId([1; 32]);
        {
            // A database as version 1 left it, with an alert and its update.
            let c = Connection::open(db_path(dir.path())).unwrap();
            c.execute_batch(&format!(
                "{}; PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = 1;",
                MIGRATIONS[0]
            ))
            .unwrap();
            c.execute(
                "INSERT INTO meta (key, value) VALUES ('network_id', ?1)",
                [network.as_bytes()],
            )
            .unwrap();
            let alert = r#"{"kind":"indicator","title":"t","description":"","severity":"low","confidence":1,"observables":[{"type":"domain","value":"x.example"}],"labels":[],"references":[],"valid_from_ms":0,"valid_until_ms":null,"related":[]}"#;
            for (i, original) in [(1u8, None), (2u8, Some([1u8; 32]))] {
                c.execute(
                    "INSERT INTO envelopes (id, author, topic, seq, prev, kind, charter_version,
                     timestamp_ms, key_epoch, received_ms, bytes)
                     VALUES (?1, x'00', x'00', ?2, x'00', 'alert', 1, 5, 1, 1000, x'00')",
                    params![[i; 32].as_slice(), i as i64],
                )
                .unwrap();
                let content = match original {
                    None => format!(r#"{{"alert":{alert}}}"#),
                    Some(o) => format!(
                        r#"{{"update":{{"original":"{}","alert":{alert}}}}}"#,
                        hex::encode(o)
                    ),
                };
                c.execute(
                    "INSERT INTO alerts (envelope_id, cursor, topic_name, org, kind, original, tlp,
                     timestamp_ms, content_json) VALUES (?1, ?2, 't', 'o', ?3, ?4, 'TLP:GREEN', 5, ?5)",
                    params![
                        [i; 32].as_slice(),
                        i as i64,
                        if original.is_some() { "update" } else { "alert" },
                        original.map(|o| o.to_vec()),
                        content
                    ],
                )
                .unwrap();
            }
        }
        let conn = open(dir.path(), &network).unwrap();
        let rows: Vec<(Option<String>, Option<i64>)> = conn
            .prepare("SELECT stix_id, added_us FROM alerts ORDER BY cursor")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let expected = crate::stix::deterministic_id(
            "indicator",
            &format!("alert:{}", hex::encode([1u8; 32])),
        );
        assert_eq!(rows[0].0.as_deref(), Some(expected.as_str()));
        // The update is served under its original's id, one µs later.
        assert_eq!(rows[1].0, rows[0].0);
        assert_eq!(rows[0].1, Some(1_000_000));
        assert_eq!(rows[1].1, Some(1_000_001));
    }

    /// Envelopes at seqs 1, 2 and 4 of one chain; the first has an alert row.
    fn chain_with_a_gap(writer: &Writer) -> Vec<SignedEnvelope> {
        use alertmesh_protocol::{Draft, NodeKey, SenderKey};
        let mut rng = rand::rngs::OsRng;
        let author = NodeKey::generate(&mut rng);
        let key = SenderKey::generate(1, &mut rng);
        let content = Content::Alert(Alert::example(0));
        let envs: Vec<SignedEnvelope> = [1u64, 2, 4]
            .iter()
            .map(|&seq| {
                let draft = Draft {
                    network_id: NetworkId([1; 32]),
                    topic_id: TopicId([3; 32]),
                    seq,
                    prev: EnvelopeId([seq as u8; 32]),
                    charter_version: 1,
                    timestamp_ms: 5,
                    kind: Kind::Alert,
                    key_epoch: 1,
                    tlp: Tlp::Green,
                };
                SignedEnvelope::seal_encrypted(&author, &draft, &key, &content.encode(), &mut rng)
                    .unwrap()
            })
            .collect();
        let mut writes: Vec<Write> = envs
            .iter()
            .map(|e| {
                Write::Envelope(EnvelopeRow {
                    envelope: e.clone(),
                    received_ms: 1,
                })
            })
            .collect();
        writes.push(Write::Alert(AlertRow {
            envelope_id: envs[0].id(),
            topic_name: "t".into(),
            org: "o".into(),
            tlp: Tlp::Green,
            timestamp_ms: 5,
            content,
        }));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let done = writer.write_all(writes).await.unwrap();
            assert_eq!(done.await.unwrap(), Ok(()));
        });
        envs
    }

    /// What `load` reads of [`chain_with_a_gap`]: its head and the undecrypted bytes.
    fn check_loaded(dir: &std::path::Path, envs: &[SignedEnvelope]) {
        let loaded = load(&open_reader(dir).unwrap(), dir).unwrap();
        assert_eq!(loaded.heads.len(), 1);
        let head = loaded.heads[0];
        assert_eq!((head.seq, head.held), (4, 3));
        assert_eq!(
            (head.entry.id, head.entry.prev),
            (envs[2].id(), envs[2].header().prev)
        );
        let undecrypted: Vec<&[u8]> = loaded.undecrypted.iter().map(Vec::as_slice).collect();
        assert_eq!(undecrypted, vec![envs[1].as_bytes(), envs[2].as_bytes()]);
        assert!(loaded.key_packages.is_empty());
    }

    #[test]
    fn load_reads_chain_heads_and_undecrypted_envelopes_kept_in_the_writes() {
        let dir = tempfile::tempdir().unwrap();
        let writer = spawn_writer(open(dir.path(), &NetworkId([1; 32])).unwrap());
        let envs = chain_with_a_gap(&writer);
        check_loaded(dir.path(), &envs);
        // The history reads of the core see the same rows.
        let history = SqliteHistory::open(dir.path()).unwrap();
        let h = envs[1].header();
        let entry = history.chain_entry(&h.author, &h.topic_id, 2).unwrap();
        assert_eq!(entry.id, envs[1].id());
        assert!(history.chain_entry(&h.author, &h.topic_id, 3).is_none());
        assert_eq!(
            history.held_seqs(&h.author, &h.topic_id, 2, 9, 10),
            vec![2, 4]
        );
        let origin = history.alert_origin(&envs[0].id()).unwrap();
        assert_eq!(origin, (alertmesh_protocol::OrgId("o".into()), h.topic_id));
        assert!(history.alert_origin(&envs[1].id()).is_none());
    }

    #[test]
    fn migration_5_fills_chain_heads_and_undecrypted_of_an_old_database() {
        let dir = tempfile::tempdir().unwrap();
        let network = NetworkId([1; 32]);
        let writer = spawn_writer(open(dir.path(), &network).unwrap());
        let envs = chain_with_a_gap(&writer);
        drop(writer);
        {
            // Back to version 4: without the tables, triggers and index of migrations 5
            // to 7.
            let c = Connection::open(db_path(dir.path())).unwrap();
            c.execute_batch(
                "DROP TRIGGER undecrypted_insert; DROP TABLE chain_heads;
                 DROP TABLE undecrypted; DROP INDEX envelopes_key_packages;
                 DROP TABLE tlog_leaves; DROP TABLE tlog_nodes; DROP TABLE tlog_checkpoints;
                 DROP TABLE tlog_witnessed; DROP TABLE split_views;
                 DROP TRIGGER tlog_unproven_insert; DROP TABLE tlog_unproven;
                 DROP TABLE tlog_inclusions; DROP TABLE tlog_proof_checkpoints;
                 PRAGMA user_version = 4;",
            )
            .unwrap();
        }
        drop(open(dir.path(), &network).unwrap());
        check_loaded(dir.path(), &envs);
    }

    #[test]
    fn the_writer_checks_the_whole_file_and_writes_nothing_to_a_damaged_one() {
        let dir = tempfile::tempdir().unwrap();
        let network = NetworkId([1; 32]);
        let path = db_path(dir.path());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let cert = |i: u8| Write::Cert {
            node: NodePublicKey([i; 32]),
            bytes: vec![i; 2000],
        };
        let writer = spawn_writer(open(dir.path(), &network).unwrap());
        runtime.block_on(async {
            assert_eq!(writer.checked().await, Ok(()));
            let committed = writer.write_all((0..100).map(cert).collect()).await;
            assert_eq!(committed.unwrap().await.unwrap(), Ok(()));
        });
        drop(writer);
        // Everything into the main file, then a page that opening does not read damaged:
        // the last one, a page of `certs`.
        Connection::open(&path)
            .unwrap()
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
            .unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 4096;
        bytes[last..last + 200].fill(0xA5);
        std::fs::write(&path, &bytes).unwrap();

        let writer = spawn_writer(open(dir.path(), &network).unwrap());
        let (checked, write) = runtime.block_on(async {
            let checked = writer.checked().await;
            let committed = writer.write_all(vec![cert(200)]).await.unwrap();
            (checked, committed.await.unwrap())
        });
        let reason = checked.unwrap_err();
        assert!(reason.contains("damaged"), "{reason}");
        assert!(reason.contains("left untouched"), "{reason}");
        assert!(reason.contains(&path.display().to_string()), "{reason}");
        assert_eq!(write, Err(reason));
        drop(writer);
        assert!(
            std::fs::read(&path).unwrap() == bytes,
            "the file was modified"
        );
    }

    #[test]
    fn refuses_another_networks_database() {
        let dir = tempfile::tempdir().unwrap();
        drop(open(dir.path(), &NetworkId([1; 32])).unwrap());
        drop(open(dir.path(), &NetworkId([1; 32])).unwrap());
        let err = open(dir.path(), &NetworkId([2; 32])).unwrap_err();
        assert!(err.to_string().contains("another network"), "{err}");
    }
}
