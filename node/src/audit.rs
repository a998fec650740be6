//! `alertmesh audit export` and `alertmesh audit verify`: the node's side of auditing.
//!
//! The export format and the verifier are in [`alertmesh_protocol::audit`] (sans-IO, so an
//! auditor's own tool can reuse them); this module reads a node's SQLite database
//! (read-only, safe while the node runs), writes export files, feeds a data directory to
//! the verifier, and renders reports for people.

use crate::config::Config;
use crate::store::audit as queries;
use crate::store::tlog;
use alertmesh_protocol::audit::{
    AuditOptions, Auditor, ExportMeta, ExportedKey, FORMAT_VERSION, Location, MAGIC, RecordType,
    RecordWriter, Report, Severity, verify_export,
};
use alertmesh_protocol::evidence::Evidence;
use alertmesh_protocol::{
    AgreementKey, CharterHash, Content, EnvelopeId, KeyPackage, NetworkId, NodeKey, NodePublicKey,
    SenderKey, SignedCharter, SignedEnvelope, SignedNodeCert, TopicId,
};
use anyhow::{Context, bail};
use rusqlite::Connection;
use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Largest envelope read from a database (the protocol's hard cap).
const MAX_ENVELOPE: usize = alertmesh_protocol::charter::MAX_ENVELOPE_BYTES as usize;

/// Where a log comes from: a node's data directory, with what else is known about it.
pub struct Source {
    /// The data directory (holding `alertmesh.db`).
    pub data_dir: PathBuf,
    /// The genesis charter, if known from a config or `--genesis` (databases written by
    /// this version hold it too).
    pub genesis: Option<SignedCharter>,
    /// The genesis hash to pin (from the config or `--genesis-hash`).
    pub pinned: Option<CharterHash>,
    /// The node's own certificate (from the config).
    pub cert: Option<SignedNodeCert>,
    /// The node's signing key: signs exports (from the config).
    pub key: Option<NodeKey>,
    /// The node's agreement key: opens key packages for plaintext (from the config).
    pub agreement: Option<AgreementKey>,
}

impl Source {
    /// Everything a node's config gives: data dir, genesis, pinned hash, keys.
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let key = crate::files::load_node_key(&config.keys.node_key)?;
        let agreement = crate::files::load_agreement_key(&config.keys.agreement_key)?;
        let cert = crate::files::load_cert(&config.keys.cert)?;
        let genesis = crate::files::load_charter(&config.genesis)?;
        Ok(Self {
            data_dir: config.data_dir.clone(),
            genesis: Some(genesis),
            pinned: Some(config.genesis_hash),
            cert: Some(cert),
            key: Some(key),
            agreement: Some(agreement),
        })
    }

    /// A bare data directory, optionally with a genesis charter file and a pinned hash.
    pub fn from_data_dir(
        data_dir: &Path,
        genesis: Option<&Path>,
        pinned: Option<CharterHash>,
    ) -> anyhow::Result<Self> {
        let genesis = genesis.map(crate::files::load_charter).transpose()?;
        Ok(Self {
            data_dir: data_dir.to_owned(),
            genesis,
            pinned,
            cert: None,
            key: None,
            agreement: None,
        })
    }

    fn open(&self) -> anyhow::Result<Connection> {
        let path = crate::store::db_path(&self.data_dir);
        if !path.exists() {
            bail!(
                "{} holds no alertmesh database (alertmesh.db); point at a node's data_dir",
                self.data_dir.display()
            );
        }
        Ok(crate::store::open_reader(&self.data_dir)?)
    }
}

/// The evidence a node holds, verified and described (for `GET /v1/status`).
pub fn evidence_reports(data_dir: &Path) -> anyhow::Result<Vec<serde_json::Value>> {
    let conn = crate::store::open_reader(data_dir)?;
    let orgs: HashMap<NodePublicKey, String> = crate::store::certs(&conn)?
        .into_iter()
        .filter_map(|(_, b)| SignedNodeCert::decode(&b).ok())
        .map(|c| (c.cert().node_sign_pub, c.cert().org_id.to_string()))
        .collect();
    let names = topic_names(&conn)?;
    let mut out = Vec::new();
    queries::for_each_evidence(&conn, |(_, received, bytes, _)| {
        let Ok(ev) = Evidence::decode(&bytes, MAX_ENVELOPE) else {
            return Ok(());
        };
        let Ok(p) = ev.verify(MAX_ENVELOPE) else {
            return Ok(());
        };
        out.push(serde_json::json!({
            "misbehaviour": match p.misbehaviour {
                alertmesh_protocol::evidence::Misbehaviour::Equivocation => "equivocation",
                alertmesh_protocol::evidence::Misbehaviour::ChainConflict => "chain_conflict",
            },
            "author": p.author,
            "org": orgs.get(&p.author),
            "topic": names.get(&p.topic).cloned().unwrap_or_else(|| p.topic.to_hex()),
            "seq": p.seq,
            "envelopes": [p.ids.0, p.ids.1],
            "received_ms": received,
        }));
        Ok(())
    })?;
    Ok(out)
}

/// Topic id → name over every stored charter version, and the control topic.
pub fn topic_names(conn: &Connection) -> anyhow::Result<HashMap<TopicId, String>> {
    let mut names = HashMap::new();
    for (_, bytes) in crate::store::charters(conn)? {
        if let Ok(c) = SignedCharter::decode(&bytes) {
            let net = c.charter().network_id;
            names.insert(TopicId::control(&net), "_control".to_string());
            for t in &c.charter().topics {
                names.insert(TopicId::derive(&net, &t.name), t.name.clone());
            }
        }
    }
    Ok(names)
}

/// The charters to feed: the database's, plus the source's genesis if the database has
/// none (older data dirs). Returns (bytes, location).
fn charter_inputs(source: &Source, conn: &Connection) -> anyhow::Result<Vec<(Vec<u8>, Location)>> {
    let stored = crate::store::charters(conn)?;
    let mut out: Vec<(Vec<u8>, Location)> = Vec::new();
    let has_genesis = stored.iter().any(|(v, _)| *v == 1);
    if let (false, Some(g)) = (has_genesis, &source.genesis) {
        out.push((
            g.as_bytes().to_vec(),
            Location {
                table: Some("genesis file"),
                ..Location::default()
            },
        ));
    }
    for (version, bytes) in stored {
        out.push((bytes, Location::row("charters", version)));
    }
    Ok(out)
}

/// The sender keys this node can open from the key packages it holds.
fn sender_keys(
    conn: &Connection,
    network: &NetworkId,
    agreement: &AgreementKey,
) -> anyhow::Result<Vec<ExportedKey>> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for bytes in queries::key_packages(conn)? {
        let Ok(env) = SignedEnvelope::decode(&bytes, MAX_ENVELOPE) else {
            continue;
        };
        let h = env.header();
        let Ok(pkg) = KeyPackage::decode(env.payload()) else {
            continue;
        };
        if pkg.topic_id != h.topic_id || pkg.epoch != h.key_epoch {
            continue;
        }
        // An epoch's first package may be addressed to other readers only (a delta for
        // readers added later): look on until one opens.
        if seen.contains(&(h.author, h.topic_id, h.key_epoch)) {
            continue;
        }
        if let Ok(key) = pkg.open(network, &h.author, agreement) {
            seen.insert((h.author, h.topic_id, h.key_epoch));
            out.push(ExportedKey {
                author: h.author,
                topic: h.topic_id,
                epoch: h.key_epoch,
                key: *key.secret_bytes(),
            });
        }
    }
    Ok(out)
}

/// Which envelopes an export holds.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// Data topics by name (empty: all). The control topic is always included.
    pub topics: Vec<String>,
    /// Only envelopes with `timestamp_ms ≥ since_ms`.
    pub since_ms: Option<u64>,
    /// Only envelopes with `timestamp_ms ≤ until_ms`.
    pub until_ms: Option<u64>,
    /// Include sender keys and plaintexts of the topics this node can read.
    pub with_plaintext: bool,
}

/// What an export wrote.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ExportSummary {
    /// The file.
    pub path: PathBuf,
    /// Records written (meta and end included).
    pub records: u64,
    /// Charters.
    pub charters: u64,
    /// Certificates.
    pub certs: u64,
    /// Envelopes.
    pub envelopes: u64,
    /// Plaintexts.
    pub plaintexts: u64,
    /// Evidence objects.
    pub evidence: u64,
    /// Envelopes with a proof of their place in their author's log.
    pub inclusions: u64,
    /// File size.
    pub bytes: u64,
    /// Signed by the node.
    pub signed: bool,
}

struct FileOut {
    file: std::io::BufWriter<std::fs::File>,
    writer: RecordWriter,
    bytes: u64,
    records: u64,
}

impl FileOut {
    fn put(&mut self, data: &[u8]) -> anyhow::Result<()> {
        self.file.write_all(data)?;
        self.bytes += data.len() as u64;
        Ok(())
    }

    fn record(&mut self, ty: RecordType, body: &[u8]) -> anyhow::Result<()> {
        let rec = self.writer.record(ty, body)?;
        self.records += 1;
        self.put(&rec)
    }
}

/// Writes the node's log to `out` (refused if it exists). Written to a temporary file
/// first and renamed, so a failed export never leaves a partial file under `out`.
pub fn export(source: &Source, opts: &ExportOptions, out: &Path) -> anyhow::Result<ExportSummary> {
    if out.exists() {
        bail!("{} exists; choose another path", out.display());
    }
    let conn = source.open()?;
    let network = crate::store::network_id(&conn)?;
    let charter_rows = charter_inputs(source, &conn)?;
    let names = topic_names(&conn)?;
    let mut topics = Vec::new();
    for name in &opts.topics {
        let id = TopicId::derive(&network, name);
        if !names.contains_key(&id)
            && source
                .genesis
                .as_ref()
                .is_none_or(|g| g.charter().topic_by_name(name).is_none())
        {
            bail!("no charter of this node names a topic {name:?}");
        }
        topics.push(id);
    }
    let control = TopicId::control(&network);
    let selected = |topic: &TopicId, ts: u64| {
        (topics.is_empty() || *topic == control || topics.contains(topic))
            && opts.since_ms.is_none_or(|s| ts >= s)
            && opts.until_ms.is_none_or(|u| ts <= u)
    };
    let keys = if opts.with_plaintext {
        let agreement = source.agreement.as_ref().context(
            "--with-plaintext needs the node's keys: export with --config instead of --data-dir",
        )?;
        sender_keys(&conn, &network, agreement)?
            .into_iter()
            .filter(|k| topics.is_empty() || topics.contains(&k.topic))
            .collect()
    } else {
        Vec::new()
    };
    let genesis_hash = match (&source.pinned, &source.genesis) {
        (Some(p), _) => *p,
        (None, Some(g)) => g.hash(),
        (None, None) => charter_rows
            .iter()
            .filter_map(|(b, _)| SignedCharter::decode(b).ok())
            .find(|c| c.charter().version == 1)
            .map(|c| c.hash())
            .context("the database holds no genesis charter: pass --genesis FILE")?,
    };
    let meta = ExportMeta {
        format_version: FORMAT_VERSION,
        network_id: network,
        genesis_hash,
        exporter: source.key.as_ref().map(NodeKey::public).unwrap_or_default(),
        exported_ms: crate::clock::now_ms(),
        topics: topics.clone(),
        since_ms: opts.since_ms,
        until_ms: opts.until_ms,
        with_plaintext: opts.with_plaintext,
    };

    let tmp = out.with_extension("partial");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    let mut w = FileOut {
        file: std::io::BufWriter::new(file),
        writer: RecordWriter::new(),
        bytes: 0,
        records: 0,
    };
    let mut summary = ExportSummary {
        path: out.to_owned(),
        ..ExportSummary::default()
    };
    let result = (|| -> anyhow::Result<()> {
        w.put(MAGIC)?;
        w.record(RecordType::Meta, &alertmesh_protocol::codec::encode(&meta))?;
        for (bytes, _) in &charter_rows {
            w.record(RecordType::Charter, bytes)?;
            summary.charters += 1;
        }
        for (_, bytes) in crate::store::certs(&conn)? {
            w.record(RecordType::Cert, &bytes)?;
            summary.certs += 1;
        }
        let own_log = crate::store::tlog::own_log(&conn)?;
        // Checkpoints the inclusion proofs lead to, written with the held ones.
        let mut proof_checkpoints = HashSet::new();
        let mut key_map = HashMap::new();
        for k in &keys {
            w.record(RecordType::SenderKey, &alertmesh_protocol::codec::encode(k))?;
            key_map.insert(
                (k.author, k.topic, k.epoch),
                SenderKey::from_bytes(k.epoch, &k.key),
            );
        }
        queries::for_each_envelope(&conn, false, |(_, received, bytes, _)| {
            // An envelope that does not decode is exported as it is: the verifier reports it.
            let env = SignedEnvelope::decode(&bytes, MAX_ENVELOPE.max(bytes.len())).ok();
            if let Some(env) = &env {
                if !selected(&env.header().topic_id, env.header().timestamp_ms) {
                    return Ok(());
                }
            }
            let rec = w.writer.envelope(received.max(0) as u64, &bytes)?;
            w.records += 1;
            w.put(&rec)?;
            summary.envelopes += 1;
            if let Some(env) = &env {
                let proof =
                    tlog::export_proof(&conn, own_log.as_ref(), &env.id(), &env.header().author)?;
                if let Some(p) = proof {
                    proof_checkpoints.insert((p.author, p.size));
                }
            }
            if let Some(env) = env.filter(|e| e.header().kind.is_encrypted()) {
                let h = env.header();
                if let Some(key) = key_map.get(&(h.author, h.topic_id, h.key_epoch)) {
                    if let Ok(pt) = env.decrypt(key) {
                        let rec = w.writer.plaintext(&env.id(), &pt)?;
                        w.records += 1;
                        w.put(&rec)?;
                        summary.plaintexts += 1;
                    }
                }
            }
            Ok(())
        })?;
        queries::for_each_evidence(&conn, |(_, received, bytes, topic)| {
            let topic = <[u8; 32]>::try_from(topic.as_slice()).map(TopicId).ok();
            if !topics.is_empty() && topic.is_some_and(|t| !topics.contains(&t)) {
                return Ok(());
            }
            let rec = w.writer.evidence(received.max(0) as u64, &bytes)?;
            w.records += 1;
            w.put(&rec)?;
            summary.evidence += 1;
            Ok(())
        })?;
        let mut notes: Vec<Vec<u8>> = held_checkpoints(&conn, source)?
            .into_iter()
            .map(|(note, _)| note)
            .collect();
        for (author, size) in &proof_checkpoints {
            let note = match &own_log {
                Some((me, own_size, note)) if me == author && own_size == size => {
                    Some(note.clone())
                }
                _ => tlog::proof_checkpoint(&conn, author, *size)?,
            };
            notes.extend(note.filter(|n| !notes.contains(n)));
        }
        for note in &notes {
            w.record(RecordType::Checkpoint, note)?;
        }
        for (_, _, bytes) in tlog::split_views(&conn)? {
            w.record(RecordType::SplitView, &bytes)?;
        }
        // Second pass: the proofs of the exported envelopes, after the checkpoints they
        // lead to.
        queries::for_each_envelope(&conn, false, |(_, _, bytes, _)| {
            let Ok(env) = SignedEnvelope::decode(&bytes, MAX_ENVELOPE.max(bytes.len())) else {
                return Ok(());
            };
            let h = env.header();
            if !selected(&h.topic_id, h.timestamp_ms) {
                return Ok(());
            }
            if let Some(p) = tlog::export_proof(&conn, own_log.as_ref(), &env.id(), &h.author)? {
                w.record(
                    RecordType::Inclusion,
                    &alertmesh_protocol::codec::encode(&p),
                )?;
                summary.inclusions += 1;
            }
            Ok(())
        })?;
        let end = std::mem::take(&mut w.writer).end(source.key.as_ref());
        w.records += 1;
        w.put(&end)?;
        w.file.flush()?;
        w.file.get_ref().sync_all()?;
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e.context(format!("export to {} failed", out.display())));
    }
    std::fs::rename(&tmp, out)
        .with_context(|| format!("cannot move the export to {}", out.display()))?;
    summary.records = w.records;
    summary.bytes = w.bytes;
    summary.signed = source.key.is_some();
    Ok(summary)
}

/// The checkpoints an export carries: the newest witnessed one held of each log, and
/// this node's own newest (witnessed or not), with their authors.
fn held_checkpoints(
    conn: &Connection,
    source: &Source,
) -> anyhow::Result<Vec<(Vec<u8>, alertmesh_protocol::NodePublicKey)>> {
    let me = source.key.as_ref().map(NodeKey::public);
    Ok(crate::store::tlog::checkpoints(conn)?
        .into_iter()
        .filter(|(author, _, witnessed)| *witnessed || Some(*author) == me)
        .map(|(author, note, _)| (note, author))
        .collect())
}

/// Audits a node's data directory directly (every charter, certificate, envelope and
/// evidence object in its database). With `with_plaintext` (needs the node's agreement
/// key, i.e. a config), the decrypted alerts the node stored are checked against the
/// ciphertexts.
pub fn verify_data_dir(source: &Source, with_plaintext: bool) -> anyhow::Result<Report> {
    let conn = source.open()?;
    let network = crate::store::network_id(&conn)?;
    let mut auditor = Auditor::new(AuditOptions {
        pinned_genesis: source.pinned,
        check_plaintext: with_plaintext,
        ..AuditOptions::default()
    });
    for (bytes, loc) in charter_inputs(source, &conn)? {
        auditor.charter(&bytes, loc);
    }
    if let Some(cert) = &source.cert {
        auditor.cert(
            cert.as_bytes(),
            Location {
                table: Some("node certificate file"),
                ..Location::default()
            },
        );
    }
    for (rowid, bytes) in crate::store::certs(&conn)? {
        auditor.cert(&bytes, Location::row("certs", rowid));
    }
    if with_plaintext {
        let agreement = source
            .agreement
            .as_ref()
            .context("--with-plaintext needs the node's keys: pass --config")?;
        for k in sender_keys(&conn, &network, agreement)? {
            auditor.sender_key(&k, Location::default());
        }
    }
    queries::for_each_envelope(
        &conn,
        with_plaintext,
        |(cursor, received, bytes, content)| {
            let loc = Location::row("envelopes", cursor);
            auditor.envelope(&bytes, Some(received.max(0) as u64), loc);
            if let Some(json) = content {
                let id = EnvelopeId(alertmesh_protocol::ids::sha256(&bytes));
                match serde_json::from_str::<Content>(&json) {
                    Ok(c) => auditor.plaintext(&id, &c.encode(), Location::row("alerts", cursor)),
                    Err(e) => auditor.finding(
                        Severity::Problem,
                        "content_invalid",
                        Location::row("alerts", cursor),
                        format!("the stored decrypted alert is not valid content: {e}"),
                    ),
                }
            }
            Ok(())
        },
    )?;
    queries::for_each_evidence(&conn, |(rowid, _, bytes, _)| {
        auditor.evidence(&bytes, Location::row("evidence", rowid));
        Ok(())
    })?;
    for (note, _) in held_checkpoints(&conn, source)? {
        auditor.checkpoint(&note, Location::row("tlog_checkpoints", 0));
    }
    for (_, _, bytes) in crate::store::tlog::split_views(&conn)? {
        auditor.split_view(&bytes, Location::row("split_views", 0));
    }
    Ok(auditor.finish())
}

/// Audits an export file.
pub fn verify_file(path: &Path, pinned: Option<CharterHash>) -> anyhow::Result<Report> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(verify_export(
        &bytes,
        AuditOptions {
            pinned_genesis: pinned,
            check_plaintext: true,
            ..AuditOptions::default()
        },
    ))
}

/// Audits an export already in memory, pinning `pinned` as the genesis.
pub fn verify_export_bytes(bytes: &[u8], pinned: CharterHash) -> Report {
    verify_export(
        bytes,
        AuditOptions {
            pinned_genesis: Some(pinned),
            check_plaintext: true,
            ..AuditOptions::default()
        },
    )
}

/// Audits `path`: an export file, a data directory, or (`None`) the data directory of
/// `config`.
pub fn verify_path(
    path: Option<&Path>,
    config: Option<&Config>,
    genesis: Option<&Path>,
    pinned: Option<CharterHash>,
    with_plaintext: bool,
) -> anyhow::Result<(String, Report)> {
    match (path, config) {
        (Some(p), _) if p.is_file() => {
            let report = verify_file(p, pinned.or(config.map(|c| c.genesis_hash)))?;
            if with_plaintext && report.export.as_ref().is_some_and(|e| !e.with_plaintext) {
                bail!(
                    "{} holds no plaintext; export it with --with-plaintext to check plaintexts",
                    p.display()
                );
            }
            Ok((format!("export file {}", p.display()), report))
        }
        (Some(p), Some(c)) if p == c.data_dir => {
            let mut source = Source::from_config(c)?;
            if pinned.is_some() {
                source.pinned = pinned;
            }
            Ok((
                format!("data directory {}", p.display()),
                verify_data_dir(&source, with_plaintext)?,
            ))
        }
        (Some(p), _) => {
            if !p.is_dir() {
                bail!(
                    "{} is neither an export file nor a data directory",
                    p.display()
                );
            }
            let source = Source::from_data_dir(p, genesis, pinned)?;
            Ok((
                format!("data directory {}", p.display()),
                verify_data_dir(&source, with_plaintext)?,
            ))
        }
        (None, Some(c)) => {
            let mut source = Source::from_config(c)?;
            if pinned.is_some() {
                source.pinned = pinned;
            }
            Ok((
                format!(
                    "data directory {} (config {})",
                    c.data_dir.display(),
                    c.source.display()
                ),
                verify_data_dir(&source, with_plaintext)?,
            ))
        }
        (None, None) => bail!("name an export file or data directory, or pass --config"),
    }
}

fn short(hex: &str) -> &str {
    hex.get(..8).unwrap_or(hex)
}

/// A human-readable report.
pub fn render(what: &str, report: &Report) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(s, "alertmesh audit of {what}");
    if let Some(e) = &report.export {
        let by = match (&e.exporter, &e.exporter_org) {
            (Some(k), org) => format!(
                "signed by node {} ({}), signature {}",
                k.short(),
                org.as_deref().unwrap_or("unknown org"),
                if e.signature_valid {
                    "valid"
                } else {
                    "INVALID"
                }
            ),
            (None, _) => "unsigned".to_string(),
        };
        let _ = writeln!(
            s,
            "  export: {} records, {} bytes, written {}; {by}",
            e.records,
            e.bytes,
            crate::clock::rfc3339(e.exported_ms)
        );
        if !e.topics.is_empty() || e.since_ms.is_some() || e.until_ms.is_some() {
            let _ = writeln!(
                s,
                "  filter: {} topic(s) selected{}{}",
                if e.topics.is_empty() {
                    "all".to_string()
                } else {
                    e.topics.len().to_string()
                },
                e.since_ms
                    .map(|t| format!(", since {}", crate::clock::rfc3339(t)))
                    .unwrap_or_default(),
                e.until_ms
                    .map(|t| format!(", until {}", crate::clock::rfc3339(t)))
                    .unwrap_or_default()
            );
        }
    }
    if let (Some(n), Some(g)) = (&report.network_id, &report.genesis_hash) {
        let _ = writeln!(s, "  network {}  genesis {}", n.short(), g);
    }
    let st = &report.stats;
    let _ = writeln!(
        s,
        "  charters: {} records, versions 1..{} adopted; certificates: {} valid",
        st.charters, st.charter_version, st.certs
    );
    let kinds: Vec<String> = st.by_kind.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let _ = writeln!(
        s,
        "  envelopes: {} ({}); signatures verified (verify_strict): {}",
        st.envelopes,
        kinds.join(", "),
        st.signatures_verified
    );
    let topics: Vec<String> = st
        .by_topic
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    let _ = writeln!(
        s,
        "  authors: {}, chains: {}; topics: {}",
        st.authors,
        st.chains,
        topics.join(", ")
    );
    if let (Some(a), Some(b)) = (st.first_timestamp_ms, st.last_timestamp_ms) {
        let _ = writeln!(
            s,
            "  claimed times: {} .. {}",
            crate::clock::rfc3339(a),
            crate::clock::rfc3339(b)
        );
    }
    if st.envelopes_in_log > 0 {
        let _ = writeln!(
            s,
            "  transparency: {} of {} envelopes proven in a checkpoint of their author's log",
            st.envelopes_in_log, st.envelopes
        );
    }
    if st.sender_keys > 0 || st.plaintexts_checked > 0 {
        let _ = writeln!(
            s,
            "  plaintexts: {} checked against their ciphertexts ({} sender keys), {} not readable",
            st.plaintexts_checked, st.sender_keys, st.plaintexts_unchecked
        );
    }
    if !report.evidence.is_empty() {
        let _ = writeln!(
            s,
            "  misbehaviour proven by evidence: {}",
            report.evidence.len()
        );
        for e in &report.evidence {
            let _ = writeln!(
                s,
                "    {} by node {} ({}) on {} at seq {}: {} / {}",
                e.misbehaviour.to_uppercase(),
                e.author.short(),
                e.org.as_deref().unwrap_or("unknown org"),
                e.topic_name.as_deref().unwrap_or("?"),
                e.seq,
                short(&e.ids[0].to_hex()),
                short(&e.ids[1].to_hex())
            );
        }
    }
    let gaps: Vec<_> = report.chains.iter().filter(|c| c.missing > 0).collect();
    if !gaps.is_empty() {
        let _ = writeln!(s, "  chains with gaps: {}", gaps.len());
    }
    if !report.findings.is_empty() {
        let _ = writeln!(
            s,
            "findings ({} problems, {} notes):",
            report.problems, report.notes
        );
        for f in &report.findings {
            let sev = match f.severity {
                Severity::Problem => "PROBLEM",
                Severity::Note => "note",
            };
            let env = f
                .envelope
                .as_ref()
                .map(|e| {
                    format!(
                        " envelope {} by node {} ({}) on {} seq {}:",
                        short(&e.id.to_hex()),
                        e.author.short(),
                        e.org.as_deref().unwrap_or("?"),
                        e.topic_name.as_deref().unwrap_or("?"),
                        e.seq
                    )
                })
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "  {sev} {} at {}:{env} {}",
                f.code, f.location, f.message
            );
        }
        let shown = report.findings.len() as u64;
        if shown < report.problems + report.notes {
            let _ = writeln!(
                s,
                "  ... {} more (see --json for counts by code)",
                report.problems + report.notes - shown
            );
        }
    }
    if report.ok {
        let _ = writeln!(s, "result: OK, no problems found");
    } else {
        let codes: Vec<String> = report
            .by_code
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(
            s,
            "result: FAILED, {} problem(s) [{}]",
            report.problems,
            codes.join(", ")
        );
    }
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn render_says_ok_or_failed() {
        let mut report = Report {
            ok: true,
            ..Report::default()
        };
        assert!(render("x", &report).contains("result: OK"));
        report.ok = false;
        report.problems = 1;
        report.by_code.insert("chain_gap", 1);
        let text = render("x", &report);
        assert!(
            text.contains("FAILED") && text.contains("chain_gap 1"),
            "{text}"
        );
    }
}
