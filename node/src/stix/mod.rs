//! STIX 2.1 export: the alerts a node can read as one STIX bundle.
//!
//! | alertmesh | STIX 2.1 |
//! |---|---|
//! | org (charter member) | `identity` (`identity_class` organization); every object's `created_by_ref` |
//! | TLP of the envelope | TLP 2.0 `marking-definition` with the official ids (extension `extension-definition--60a3c5c5-…`) in `object_marking_refs` |
//! | alert of kind `indicator` | `indicator` with a STIX pattern of its observables |
//! | `campaign` | `campaign`, plus an `indicator` of its observables and an `indicates` relationship |
//! | `advisory`, `account-network` | `report` (`object_refs`: the indicator of its observables, or the author) |
//! | `sighting` | `sighting` with `sighting_of_ref` the sighted alert's object and `where_sighted_refs` the sighting org |
//! | `related` ids | `related-to` relationships |
//! | update | a new version of the same object (same id, later `modified`) |
//! | retraction | a last version with `revoked: true` |
//!
//! Ids are deterministic: UUIDv5 (RFC 4122, SHA-1) in the namespace
//! [`namespace()`] of a name derived from the envelope id, so the same alert has the same
//! STIX id on every node and in every export.

pub mod ingest;

use alertmesh_protocol::{Alert, AlertKind, Content, EnvelopeId, NetworkId, Observable, Tlp};
use serde_json::{Value, json};
use std::collections::HashSet;

/// The TLP 2.0 extension definition (OASIS cti-stix-common-objects).
pub const TLP_EXTENSION_ID: &str = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d";

/// The official STIX 2.1 marking-definition id of a TLP 2.0 level.
pub fn tlp_marking_id(tlp: Tlp) -> &'static str {
    match tlp {
        Tlp::Clear => "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
        Tlp::Green => "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
        Tlp::Amber => "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
        Tlp::AmberStrict => "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
        Tlp::Red => "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
    }
}

/// The TLP 2.0 extension's value of a level (`clear`, `green`, …).
pub fn tlp_value(tlp: Tlp) -> &'static str {
    match tlp {
        Tlp::Clear => "clear",
        Tlp::Green => "green",
        Tlp::Amber => "amber",
        Tlp::AmberStrict => "amber+strict",
        Tlp::Red => "red",
    }
}

/// The official marking-definition object of a TLP 2.0 level.
pub fn tlp_marking(tlp: Tlp) -> Value {
    json!({
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": tlp_marking_id(tlp),
        "created": "2022-10-01T00:00:00.000Z",
        "name": tlp.to_string(),
        "extensions": {
            TLP_EXTENSION_ID: {
                "extension_type": "property-extension",
                "tlp_2_0": tlp_value(tlp),
            }
        }
    })
}

/// The TLP 2.0 extension-definition object, as OASIS publishes it.
pub fn tlp_extension_definition() -> Value {
    json!({
        "type": "extension-definition",
        "spec_version": "2.1",
        "id": TLP_EXTENSION_ID,
        "created_by_ref": "identity--b3bca3c2-1f3d-4b54-b44f-dac42c3a8f01",
        "created": "2022-10-01T00:00:00.000Z",
        "modified": "2022-10-01T00:00:00.000Z",
        "name": "TLP 2.0",
        "description": "This defines TLP 2.0 as a STIX extension",
        "schema": "https://github.com/oasis-open/cti-stix-common-objects/tree/master/extension-definition-specifications/tlp-2.0",
        "version": "1.0.0",
        "extension_types": ["property-extension"]
    })
}

/// UUIDv5 of `name` in `namespace`, as lower-case text.
pub fn uuid_v5(namespace: &[u8; 16], name: &[u8]) -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::from_bytes(*namespace), name).to_string()
}

/// The namespace of alertmesh's STIX ids: UUIDv5 of the URL `urn:alertmesh:stix` in the
/// RFC 4122 URL namespace.
pub fn namespace() -> [u8; 16] {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, b"urn:alertmesh:stix").into_bytes()
}

pub(crate) fn stix_id(ns: &[u8; 16], ty: &str, name: &str) -> String {
    format!("{ty}--{}", uuid_v5(ns, name.as_bytes()))
}

/// The deterministic STIX id of type `ty` for `name` in alertmesh's namespace.
pub fn deterministic_id(ty: &str, name: &str) -> String {
    stix_id(&namespace(), ty, name)
}

/// The STIX `identity` id of a member org (the `created_by_ref` of everything it
/// authors), the same in every export and on every node.
pub fn org_identity_id(network: &NetworkId, org: &str) -> String {
    deterministic_id("identity", &format!("org:{}:{org}", network.to_hex()))
}

/// The STIX object type alertmesh derives from a native alert.
pub fn native_type(alert: &Alert) -> &'static str {
    match alert.kind {
        AlertKind::Campaign => "campaign",
        AlertKind::Sighting => "sighting",
        AlertKind::Indicator if pattern(alert).is_some() => "indicator",
        _ => "report",
    }
}

/// The STIX id an alert row is served under by TAXII: for an alert carrying a STIX object
/// ([`Alert::stix`]) that passes the checks of a POSTed one, that object's id; otherwise
/// the deterministic id of the native object of the original (`envelope`, or for an
/// update the alert it amends). `None` for a retraction.
pub fn served_id(envelope: &EnvelopeId, content: &Content) -> Option<String> {
    let alert = content.alert()?;
    if let Some(id) = attached(alert).and_then(|o| o.get("id")?.as_str().map(str::to_string)) {
        return Some(id);
    }
    let original = content.original().unwrap_or(*envelope).to_hex();
    Some(match native_type(alert) {
        "sighting" => deterministic_id("note", &format!("sighting-note:{original}")),
        ty => deterministic_id(ty, &format!("alert:{original}")),
    })
}

/// The STIX object an alert carries, if it passes the checks of a POSTed object.
pub fn attached(alert: &Alert) -> Option<Value> {
    alert
        .stix
        .as_deref()
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
        .filter(ingest::acceptable_received)
}

/// A string field of a JSON object (empty if absent).
pub(crate) fn str_field<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

/// An org as the bundle describes it.
#[derive(Debug, Clone)]
pub struct OrgInfo {
    /// Charter org id.
    pub org_id: String,
    /// Display name.
    pub name: String,
    /// Roles.
    pub roles: Vec<String>,
}

/// Escapes a string literal of a STIX pattern (backslash and single quote).
pub fn pattern_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\\' || c == '\'' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// The STIX comparison expression of one observable.
pub fn observation(obs: &Observable) -> String {
    let s = |v: &str| pattern_literal(v);
    match obs {
        Observable::Domain(v) => format!("[domain-name:value = {}]", s(v)),
        Observable::Url(v) => format!("[url:value = {}]", s(v)),
        Observable::Email(v) => format!("[email-addr:value = {}]", s(v)),
        Observable::Ipv4(a) => {
            format!("[ipv4-addr:value = '{}']", std::net::Ipv4Addr::from(*a))
        }
        Observable::Ipv6(a) => {
            format!("[ipv6-addr:value = '{}']", std::net::Ipv6Addr::from(*a))
        }
        Observable::FileSha256(h) => format!("[file:hashes.'SHA-256' = '{}']", hex::encode(h)),
        Observable::SocialAccount { platform, handle } => format!(
            "[user-account:account_login = {} AND user-account:account_type = {}]",
            s(handle),
            s(platform)
        ),
        Observable::Hashtag(v) => format!("[x-alertmesh-hashtag:value = {}]", s(v)),
        Observable::Phone(v) => format!("[x-alertmesh-phone:value = {}]", s(v)),
        Observable::AdId { network, id } => format!(
            "[x-alertmesh-ad:ad_id = {} AND x-alertmesh-ad:network = {}]",
            s(id),
            s(network)
        ),
    }
}

/// The pattern of an alert's observables (`None` if it has none).
pub fn pattern(alert: &Alert) -> Option<String> {
    let parts: Vec<String> = alert.observables.iter().map(observation).collect();
    (!parts.is_empty()).then(|| parts.join(" OR "))
}

fn is_timestamp(v: &Value) -> bool {
    // YYYY-MM-DDTHH:MM:SS(.fff)Z
    let Some(s) = v.as_str() else { return false };
    let b = s.as_bytes();
    b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && s.ends_with('Z')
        && [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18]
            .iter()
            .all(|i| b[*i].is_ascii_digit())
}

fn is_id(v: &Value, ty: Option<&str>) -> bool {
    let Some(s) = v.as_str() else { return false };
    let Some((t, uuid)) = s.split_once("--") else {
        return false;
    };
    let groups: Vec<&str> = uuid.split('-').collect();
    ty.is_none_or(|ty| ty == t)
        && !t.is_empty()
        && groups.iter().map(|g| g.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && uuid
            .chars()
            .all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c))
}

/// Structural checks of a bundle against the STIX 2.1 specification: the required
/// properties of every object type emitted here, id and timestamp formats, reference
/// types, `modified ≥ created`, and no two objects with the same id and `modified`.
/// Returns the violations (empty: valid).
pub fn check_bundle(bundle: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    if bundle["type"] != "bundle" {
        errors.push("bundle: type must be \"bundle\"".to_string());
    }
    if !is_id(&bundle["id"], Some("bundle")) {
        errors.push("bundle: id must be bundle--<uuid>".to_string());
    }
    let Some(objects) = bundle["objects"].as_array() else {
        errors.push("bundle: objects must be a list".to_string());
        return errors;
    };
    let mut seen = HashSet::new();
    for o in objects {
        let ty = str_field(o, "type");
        let id = str_field(o, "id");
        let mut err = |m: &str| errors.push(format!("{id}: {m}"));
        if !is_id(&o["id"], Some(ty)) {
            err("id must be <type>--<uuid>");
        }
        if o["spec_version"] != "2.1" {
            err("spec_version must be 2.1");
        }
        if !is_timestamp(&o["created"]) {
            err("created must be a timestamp");
        }
        if ty != "marking-definition" {
            if !is_timestamp(&o["modified"]) {
                err("modified must be a timestamp");
            } else if str_field(o, "modified") < str_field(o, "created") {
                err("modified is before created");
            }
        }
        if !seen.insert((id.to_string(), str_field(o, "modified").to_string())) {
            err("two objects with the same id and modified");
        }
        if let Some(r) = o.get("created_by_ref") {
            if !is_id(r, Some("identity")) {
                err("created_by_ref must be an identity id");
            }
        }
        if let Some(m) = o.get("object_marking_refs") {
            if !m.as_array().is_some_and(|a| {
                !a.is_empty() && a.iter().all(|x| is_id(x, Some("marking-definition")))
            }) {
                err("object_marking_refs must list marking-definition ids");
            }
        }
        if let Some(c) = o.get("confidence") {
            if c.as_u64().is_none_or(|c| c > 100) {
                err("confidence must be 0-100");
            }
        }
        if let Some(refs) = o.get("external_references") {
            let ok = refs.as_array().is_some_and(|a| {
                a.iter().all(|r| {
                    r.get("source_name")
                        .and_then(Value::as_str)
                        .is_some_and(|s| !s.is_empty())
                        && (r.get("url").is_some()
                            || r.get("external_id").is_some()
                            || r.get("description").is_some())
                })
            });
            if !ok {
                err(
                    "external_references need source_name and one of url, external_id, description",
                );
            }
        }
        let need = |k: &str| o.get(k).is_some_and(|v| !v.is_null() && v != "");
        match ty {
            "indicator" => {
                for k in ["name", "pattern", "pattern_type", "valid_from"] {
                    if !need(k) {
                        err(&format!("indicator needs {k}"));
                    }
                }
                let p = str_field(o, "pattern");
                if !(p.starts_with('[') && p.ends_with(']')) {
                    err("pattern must be a bracketed observation expression");
                }
                if !is_timestamp(&o["valid_from"]) {
                    err("valid_from must be a timestamp");
                }
                if o.get("valid_until").is_some()
                    && str_field(o, "valid_until") <= str_field(o, "valid_from")
                {
                    err("valid_until must be after valid_from");
                }
            }
            "campaign" => {
                if !need("name") {
                    err("campaign needs name");
                }
                if o.get("last_seen").is_some()
                    && str_field(o, "last_seen") < str_field(o, "first_seen")
                {
                    err("last_seen before first_seen");
                }
            }
            "report" => {
                for k in ["name", "published"] {
                    if !need(k) {
                        err(&format!("report needs {k}"));
                    }
                }
                if !o["object_refs"]
                    .as_array()
                    .is_some_and(|a| !a.is_empty() && a.iter().all(|x| is_id(x, None)))
                {
                    err("report needs object_refs");
                }
            }
            "note" => {
                if !need("content") {
                    err("note needs content");
                }
                if o["object_refs"].as_array().is_none_or(|a| a.is_empty()) {
                    err("note needs object_refs");
                }
            }
            "sighting" => {
                let r = &o["sighting_of_ref"];
                if !is_id(r, None)
                    || ["relationship", "sighting"]
                        .iter()
                        .any(|t| is_id(r, Some(t)))
                {
                    err("sighting_of_ref must reference an SDO");
                }
                if let Some(w) = o.get("where_sighted_refs") {
                    if !w.as_array().is_some_and(|a| {
                        a.iter()
                            .all(|x| is_id(x, Some("identity")) || is_id(x, Some("location")))
                    }) {
                        err("where_sighted_refs must reference identities or locations");
                    }
                }
                if o.get("last_seen").is_some()
                    && str_field(o, "last_seen") < str_field(o, "first_seen")
                {
                    err("last_seen before first_seen");
                }
            }
            "relationship" => {
                if !need("relationship_type")
                    || !is_id(&o["source_ref"], None)
                    || !is_id(&o["target_ref"], None)
                {
                    err("relationship needs relationship_type, source_ref and target_ref");
                }
            }
            "identity" => {
                if !need("name") {
                    err("identity needs name");
                }
            }
            "marking-definition" => {
                let ext = o.get("extensions").and_then(|e| e.get(TLP_EXTENSION_ID));
                let official = Tlp::ALL.iter().find(|t| tlp_marking_id(**t) == id);
                match (official, ext) {
                    (Some(t), Some(ext)) => {
                        if o["name"] != t.to_string().as_str()
                            || ext["extension_type"] != "property-extension"
                            || ext["tlp_2_0"] != tlp_value(*t)
                        {
                            err("TLP 2.0 marking differs from the official object");
                        }
                    }
                    _ => err("marking-definition is not an official TLP 2.0 marking"),
                }
            }
            "extension-definition" => {
                for k in [
                    "name",
                    "schema",
                    "version",
                    "extension_types",
                    "created_by_ref",
                ] {
                    if !need(k) {
                        err(&format!("extension-definition needs {k}"));
                    }
                }
            }
            other => err(&format!("unexpected object type {other}")),
        }
    }
    errors
}

/// `<type>--<uuid>` with a lower-case type of letters, digits and `-`.
pub fn is_stix_id(s: &str) -> bool {
    let Some((ty, uuid)) = s.split_once("--") else {
        return false;
    };
    let groups: Vec<usize> = uuid.split('-').map(str::len).collect();
    !ty.is_empty()
        && ty.len() <= 250
        && ty
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && groups == [8, 4, 4, 4, 12]
        && uuid.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit())
}

/// Parses a STIX/TAXII timestamp (`YYYY-MM-DDTHH:MM:SS[.fraction]Z`) to µs since the
/// epoch (the fraction truncated to µs).
pub fn parse_us(s: &str) -> Option<i64> {
    if !s.ends_with('Z') || s.len() > 40 || s.as_bytes().get(10) != Some(&b'T') {
        return None;
    }
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    let ns = t.unix_timestamp_nanos();
    i64::try_from(ns.div_euclid(1000)).ok()
}

/// Parses a STIX timestamp to ms since the epoch (non-negative only).
pub fn parse_ms(s: &str) -> Option<u64> {
    parse_us(s).and_then(|us| u64::try_from(us.div_euclid(1000)).ok())
}

/// µs since the epoch as a TAXII timestamp with microseconds.
pub fn format_us(us: i64) -> String {
    let ms = us.div_euclid(1000).max(0) as u64;
    let base = crate::clock::rfc3339(ms);
    // `…SS.mmmZ` → `…SS.mmmuuuZ`
    format!("{}{:03}Z", base.trim_end_matches('Z'), us.rem_euclid(1000))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn uuid_v5_known_answer() {
        // RFC 4122 DNS namespace, "python.org" (as Python's uuid.uuid5 gives it).
        let dns = [
            0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4,
            0x30, 0xc8,
        ];
        assert_eq!(
            uuid_v5(&dns, b"python.org"),
            "886313e1-3b8a-5372-9b90-0c9aee199e5d"
        );
    }

    #[test]
    fn patterns() {
        let mut alert = Alert::example(0);
        alert.observables = vec![
            Observable::Domain("vote-example.com".into()),
            Observable::Url("https://x.example/a'b".into()),
            Observable::Ipv4([192, 0, 2, 7]),
            Observable::FileSha256([0xab; 32]),
            Observable::SocialAccount {
                platform: "example-social".into(),
                handle: "@x".into(),
            },
        ];
        let p = pattern(&alert).unwrap();
        assert!(p.starts_with("[domain-name:value = 'vote-example.com'] OR [url:value = 'https://x.example/a\\'b']"), "{p}");
        assert!(p.contains("[ipv4-addr:value = '192.0.2.7']"));
        assert!(p.contains(&format!("[file:hashes.'SHA-256' = '{}']", "ab".repeat(32))));
        assert!(p.contains(
            "[user-account:account_login = '@x' AND user-account:account_type = 'example-social']"
        ));
        alert.observables.clear();
        assert_eq!(pattern(&alert), None);
    }

    #[test]
    fn official_markings_pass_the_checker() {
        let objects: Vec<Value> = std::iter::once(tlp_extension_definition())
            .chain(Tlp::ALL.into_iter().map(tlp_marking))
            .collect();
        let b = json!({"type": "bundle", "id": "bundle--886313e1-3b8a-5372-9b90-0c9aee199e5d", "objects": objects});
        assert_eq!(check_bundle(&b), Vec::<String>::new());
    }

    #[test]
    fn timestamps_round_trip() {
        let us = parse_us("2020-09-13T12:26:40.123456Z").unwrap();
        assert_eq!(us, 1_600_000_000_123_456);
        assert_eq!(format_us(us), "2020-09-13T12:26:40.123456Z");
        assert_eq!(
            parse_us("2020-09-13T12:26:40Z"),
            Some(1_600_000_000_000_000)
        );
        assert_eq!(
            parse_us("2020-09-13T12:26:40.1234569Z"),
            Some(1_600_000_000_123_456)
        );
        assert_eq!(parse_us("2020-09-13 12:26:40Z"), None);
        assert_eq!(parse_us("yesterday"), None);
        assert_eq!(parse_us("2020-09-13T12:26:40+01:00"), None);
    }

    #[test]
    fn stix_ids() {
        assert!(is_stix_id(
            "indicator--886313e1-3b8a-5372-9b90-0c9aee199e5d"
        ));
        assert!(!is_stix_id("indicator--886313e1"));
        assert!(!is_stix_id(
            "Indicator--886313e1-3b8a-5372-9b90-0c9aee199e5d"
        ));
    }
}
