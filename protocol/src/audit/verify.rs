//! Reading an export file and driving an [`Auditor`] over it.

use super::auditor::{AuditOptions, Auditor};
use super::format::{
    EXPORT_TAG, ExportEnd, ExportMeta, ExportedKey, FORMAT_VERSION, FrameError, MAGIC,
    MAX_RECORD_BODY, RecordReader, RecordType, export_message,
};
use super::report::{ExportInfo, Location, Report, Severity};
use crate::codec::{self, DecodeError};
use crate::ids::{EnvelopeId, NodePublicKey};
use std::fmt;

fn export_info(m: &ExportMeta, records: u64, bytes: usize) -> ExportInfo {
    ExportInfo {
        records,
        bytes: bytes as u64,
        exporter: None,
        exporter_org: None,
        signature_valid: false,
        exported_ms: m.exported_ms,
        topics: m.topics.clone(),
        since_ms: m.since_ms,
        until_ms: m.until_ms,
        with_plaintext: m.with_plaintext,
    }
}

/// `network_mismatch` when the meta record names another network than the genesis.
fn check_network(auditor: &mut Auditor, meta: Option<&ExportMeta>) {
    let Some(m) = meta else { return };
    if let Some(network) = auditor.network() {
        if network != m.network_id {
            auditor.finding(
                Severity::Problem,
                "network_mismatch",
                Location::record(0, MAGIC.len() as u64),
                format!(
                    "the meta record names network {}, the genesis charter's is {}",
                    m.network_id.to_hex(),
                    network.to_hex()
                ),
            );
        }
    }
}

/// `bad_record`: a record's body is not what its type requires.
fn bad_record(auditor: &mut Auditor, ty: RecordType, loc: Location, e: impl fmt::Display) {
    let msg = format!("{} record does not decode: {e}", ty.as_str());
    auditor.finding(Severity::Problem, "bad_record", loc, msg);
}

/// Reads an export file and audits it. `opts.pinned_genesis` overrides the genesis hash
/// the file's meta record names.
pub fn verify_export(bytes: &[u8], opts: AuditOptions) -> Report {
    let explicitly_pinned = opts.pinned_genesis;
    let mut auditor = Auditor::new(opts);
    let mut reader = RecordReader::new(bytes);
    let mut last: Option<RecordType> = None;
    let mut end: Option<(ExportEnd, [u8; 32], Location, u64)> = None;
    let mut prev_digest = [0u8; 32];
    let mut meta: Option<ExportMeta> = None;
    let mut records = 0u64;
    let mut broken = false;
    let mut network_checked = false;
    for item in reader.by_ref() {
        let rec = match item {
            Ok(rec) => rec,
            Err(e) => {
                broken = true;
                let (code, loc, msg) = match e {
                    FrameError::BadMagic => (
                        "bad_magic",
                        Location {
                            offset: Some(0),
                            ..Location::default()
                        },
                        "the file does not start with the alertmesh audit magic".to_string(),
                    ),
                    FrameError::Truncated { index, offset } => (
                        "truncated",
                        Location::record(index, offset),
                        format!(
                            "the file ends inside record {index} ({} bytes in all)",
                            bytes.len()
                        ),
                    ),
                    FrameError::TooLong { index, offset, len } => (
                        "bad_framing",
                        Location::record(index, offset),
                        format!(
                            "record length {len} exceeds the limit; the file cannot be read further"
                        ),
                    ),
                };
                auditor.finding(Severity::Problem, code, loc, msg);
                break;
            }
        };
        // The meta record's network must be the genesis' (checked once the charter
        // section is over).
        if !network_checked && RecordType::from_u8(rec.ty).is_some_and(|t| t > RecordType::Charter)
        {
            network_checked = true;
            check_network(&mut auditor, meta.as_ref());
        }
        records += 1;
        let loc = Location::record(rec.index, rec.offset);
        if !rec.digest_ok {
            auditor.finding(
                Severity::Problem,
                "record_digest_mismatch",
                loc.clone(),
                format!(
                    "record {} ({}, {} bytes) does not match its digest: it, its digest or the record before it was changed, removed or moved",
                    rec.index,
                    RecordType::from_u8(rec.ty).map_or("unknown type", RecordType::as_str),
                    rec.body.len()
                ),
            );
        }
        if end.is_some() {
            auditor.finding(
                Severity::Problem,
                "after_end",
                loc,
                "a record after the end record",
            );
            prev_digest = rec.digest;
            continue;
        }
        let Some(ty) = RecordType::from_u8(rec.ty) else {
            auditor.finding(
                Severity::Problem,
                "unknown_record",
                loc,
                format!("unknown record type {}", rec.ty),
            );
            prev_digest = rec.digest;
            continue;
        };
        // Section order: meta first; types never go back, except a plaintext after its
        // envelope and the envelope after it.
        let in_order = match (last, ty) {
            (None, RecordType::Meta) => true,
            // No meta record: reported once, here; the rest is ordered as if it were there.
            (None, _) => {
                auditor.finding(
                    Severity::Problem,
                    "missing_meta",
                    loc.clone(),
                    "the file does not start with a meta record",
                );
                true
            }
            (Some(_), RecordType::Meta) => false,
            (Some(RecordType::Plaintext), RecordType::Envelope) => true,
            (Some(RecordType::Envelope), RecordType::Plaintext) => true,
            (Some(_), RecordType::Plaintext) => false,
            // The transparency sections (types 9 to 11) come before the end record.
            (Some(_), RecordType::End) => true,
            (Some(prev), ty) => ty >= prev,
        };
        if !in_order {
            auditor.finding(
                Severity::Problem,
                "out_of_order",
                loc.clone(),
                format!(
                    "a {} record after a {} record: sections are out of order",
                    ty.as_str(),
                    last.map_or("(start of file)", RecordType::as_str)
                ),
            );
        }
        let after_charters = last.is_some_and(|l| l > RecordType::Charter);
        last = Some(ty);
        match ty {
            RecordType::Meta => {
                match codec::decode_exact::<ExportMeta>(rec.body, MAX_RECORD_BODY) {
                    // A meta record elsewhere than first is out of order and ignored.
                    Ok(_) if rec.index != 0 => {}
                    Ok(m) => {
                        if m.format_version != FORMAT_VERSION {
                            auditor.finding(
                                Severity::Problem,
                                "unsupported_format",
                                loc.clone(),
                                format!(
                                    "format version {} (this verifier reads {FORMAT_VERSION})",
                                    m.format_version
                                ),
                            );
                        }
                        if rec.index == 0 {
                            match explicitly_pinned {
                                Some(p) if p != m.genesis_hash => auditor.finding(
                                    Severity::Problem,
                                    "genesis_mismatch",
                                    loc.clone(),
                                    format!(
                                        "the export names genesis {}, not the pinned {p}",
                                        m.genesis_hash
                                    ),
                                ),
                                Some(_) => {}
                                None => {
                                    auditor.pin_genesis(m.genesis_hash);
                                    auditor.finding(
                                    Severity::Note,
                                    "genesis_pinned_by_export",
                                    loc,
                                    format!(
                                        "the genesis hash {} is the one the export names; pass --genesis-hash to pin it independently",
                                        m.genesis_hash
                                    ),
                                );
                                }
                            }
                            if m.since_ms.is_some() {
                                auditor.allow_leading_gaps();
                            }
                            if m.with_plaintext {
                                auditor.require_plaintext();
                            }
                            meta = Some(m);
                        }
                    }
                    Err(e) => {
                        bad_record(&mut auditor, ty, loc, e)
                    }
                }
            }
            // A charter after the charter section can no longer be adopted: reported
            // (out_of_order) and otherwise ignored.
            RecordType::Charter if after_charters => {}
            RecordType::Charter => auditor.charter(rec.body, loc),
            RecordType::Cert => auditor.cert(rec.body, loc),
            RecordType::SenderKey | RecordType::Plaintext
                if !meta.as_ref().is_some_and(|m| m.with_plaintext) =>
            {
                auditor.finding(
                    Severity::Problem,
                    "plaintext_undeclared",
                    loc,
                    format!(
                        "a {} record in an export whose meta record does not declare plaintexts; ignored",
                        ty.as_str()
                    ),
                )
            }
            RecordType::SenderKey => match codec::decode_exact::<ExportedKey>(rec.body, 1024) {
                Ok(k) => auditor.sender_key(&k, loc),
                Err(e) => bad_record(&mut auditor, ty, loc, e),
            },
            RecordType::Envelope => match rec.body.split_first_chunk::<8>() {
                Some((received, env)) => {
                    auditor.envelope(env, Some(u64::from_le_bytes(*received)), loc)
                }
                None => bad_record(&mut auditor, ty, loc, DecodeError::Truncated),
            },
            RecordType::Plaintext => match rec.body.split_first_chunk::<32>() {
                Some((id, pt)) => auditor.plaintext(&EnvelopeId(*id), pt, loc),
                None => bad_record(&mut auditor, ty, loc, DecodeError::Truncated),
            },
            RecordType::Evidence => match rec.body.split_first_chunk::<8>() {
                Some((_received, ev)) => auditor.evidence(ev, loc),
                None => bad_record(&mut auditor, ty, loc, DecodeError::Truncated),
            },
            RecordType::Checkpoint => auditor.checkpoint(rec.body, loc),
            RecordType::SplitView => auditor.split_view(rec.body, loc),
            RecordType::Inclusion => auditor.inclusion(rec.body, loc),
            RecordType::End => match codec::decode_exact::<ExportEnd>(rec.body, 1024) {
                Ok(e) => end = Some((e, prev_digest, loc, rec.index)),
                Err(e) => {
                    bad_record(&mut auditor, ty, loc.clone(), e);
                    end = Some((
                        ExportEnd {
                            records: u64::MAX,
                            exporter: NodePublicKey::default(),
                            signature: [0; 64],
                        },
                        prev_digest,
                        loc,
                        rec.index,
                    ))
                }
            },
        }
        prev_digest = rec.digest;
    }
    if broken {
        let mut report = auditor.abort();
        report.export = meta.as_ref().map(|m| export_info(m, records, bytes.len()));
        return report;
    }
    if !network_checked {
        check_network(&mut auditor, meta.as_ref());
    }
    if last.is_none() {
        auditor.finding(
            Severity::Problem,
            "missing_meta",
            Location::default(),
            "the file has no records",
        );
    }
    let mut info = meta.as_ref().map(|m| export_info(m, records, bytes.len()));
    match end {
        None => auditor.finding(
            Severity::Problem,
            "truncated",
            Location::record(records, reader.position() as u64),
            format!(
                "the file ends after {records} records without an end record: it was cut short"
            ),
        ),
        Some((e, last_digest, loc, index)) => {
            // The exporter the meta record names and the key that signs the end record
            // must be the same node (all zero in both: an unsigned export).
            let named = meta
                .as_ref()
                .map_or(NodePublicKey::default(), |m| m.exporter);
            if named != e.exporter {
                let who = |k: &NodePublicKey| {
                    if *k == NodePublicKey::default() {
                        "nobody (unsigned)".to_string()
                    } else {
                        format!("node {}", k.short())
                    }
                };
                auditor.finding(
                    Severity::Problem,
                    "exporter_mismatch",
                    loc.clone(),
                    format!(
                        "the meta record names {} as the exporter, the end record is signed by {}",
                        who(&named),
                        who(&e.exporter)
                    ),
                );
            }
            if e.records != index {
                auditor.finding(
                    Severity::Problem,
                    "record_count_mismatch",
                    loc.clone(),
                    format!(
                        "the end record counts {} records, the file has {index} before it",
                        e.records
                    ),
                );
            }
            if e.exporter == NodePublicKey::default() {
                auditor.finding(
                    Severity::Note,
                    "unsigned_export",
                    loc,
                    "the export is not signed by a node (exported from a data directory without its keys)",
                );
            } else {
                let ok = e
                    .exporter
                    .verify(
                        EXPORT_TAG,
                        &export_message(&last_digest, e.records),
                        &e.signature,
                    )
                    .is_ok();
                if let Some(info) = &mut info {
                    info.exporter = Some(e.exporter);
                    info.exporter_org = auditor.org_name(&e.exporter);
                    info.signature_valid = ok;
                }
                if !ok {
                    auditor.finding(
                        Severity::Problem,
                        "bad_export_signature",
                        loc,
                        format!(
                            "the exporter signature by node {} does not verify",
                            e.exporter.short()
                        ),
                    );
                }
            }
        }
    }
    let mut report = auditor.finish();
    report.export = info;
    report
}
