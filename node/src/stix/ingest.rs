//! STIX 2.1 objects pushed through TAXII → alerts.
//!
//! Accepted types: `indicator`, `campaign`, `sighting`, `note`, `relationship`. Each is
//! checked (common properties, id and timestamp formats, the type's required properties,
//! references, markings, size) and turned into an [`Alert`] that carries the object itself
//! in [`Alert::stix`], with `created_by_ref` set to the publishing org's identity and a TLP
//! marking added when the object has none. Every failure is a sentence naming the
//! property, returned per object; nothing that fails reaches the mesh.

use crate::stix::{is_stix_id, parse_ms};
use alertmesh_protocol::alert::MAX_STIX_BYTES;
use alertmesh_protocol::{Alert, AlertKind, EnvelopeId, Observable, Severity, Tlp};
use serde_json::{Value, json};

/// The object types a writable collection accepts.
pub const ACCEPTED_TYPES: [&str; 5] = ["indicator", "campaign", "sighting", "note", "relationship"];

/// TLP 1.0 marking-definition ids (STIX 2.1 §7.2.1.4) and their TLP 2.0 levels.
const TLP1: [(&str, Tlp); 4] = [
    (
        "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9",
        Tlp::Clear,
    ),
    (
        "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da",
        Tlp::Green,
    ),
    (
        "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82",
        Tlp::Amber,
    ),
    (
        "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed",
        Tlp::Red,
    ),
];

/// What a checked object becomes.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The object's id.
    pub id: String,
    /// Its `modified`.
    pub version: String,
    /// `modified` in ms.
    pub modified_ms: u64,
    /// The alert (with the object in `stix`).
    pub alert: Alert,
    /// The envelope TLP.
    pub tlp: Tlp,
}

/// Where the object goes.
pub struct Target<'a> {
    /// The topic's name.
    pub topic: &'a str,
    /// The topic's maximum TLP.
    pub max_tlp: Tlp,
    /// The publishing org's STIX identity id.
    pub identity: &'a str,
}

fn timestamp(obj: &Value, key: &str) -> Result<Option<u64>, String> {
    match obj.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_str()
            .and_then(parse_ms)
            .map(Some)
            .ok_or_else(|| format!("{key} must be a timestamp like 2020-09-13T12:26:40.000Z")),
    }
}

fn required_str<'o>(obj: &'o Value, key: &str, ty: &str) -> Result<&'o str, String> {
    obj.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| format!("{ty} needs the property {key} (a non-empty string)"))
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

fn check_ref(obj: &Value, key: &str, types: Option<&[&str]>) -> Result<Option<String>, String> {
    let Some(v) = obj.get(key) else {
        return Ok(None);
    };
    let s = v
        .as_str()
        .filter(|s| is_stix_id(s))
        .ok_or_else(|| format!("{key} must be a STIX id (<type>--<uuid>)"))?;
    if let Some(types) = types {
        let ty = s.split_once("--").map_or("", |(t, _)| t);
        if !types.contains(&ty) {
            return Err(format!("{key} must reference one of: {}", types.join(", ")));
        }
    }
    Ok(Some(s.to_string()))
}

fn check_refs(obj: &Value, key: &str) -> Result<Vec<String>, String> {
    let Some(v) = obj.get(key) else {
        return Ok(vec![]);
    };
    let a = v
        .as_array()
        .filter(|a| !a.is_empty() && a.len() <= 1000)
        .ok_or_else(|| format!("{key} must be a non-empty list of STIX ids"))?;
    a.iter()
        .map(|x| {
            x.as_str()
                .filter(|s| is_stix_id(s))
                .map(str::to_string)
                .ok_or_else(|| format!("{key} must list STIX ids (<type>--<uuid>)"))
        })
        .collect()
}

/// Checks one object and turns it into an alert for `target`. `envelope_of` finds the
/// envelope id of an object this node already holds (for `related`).
pub fn prepare(
    raw: &Value,
    target: &Target<'_>,
    envelope_of: &dyn Fn(&str) -> Option<EnvelopeId>,
) -> Result<Prepared, String> {
    let Some(map) = raw.as_object() else {
        return Err("each object must be a JSON object".into());
    };
    let mut obj = Value::Object(map.clone());
    let ty = obj
        .get("type")
        .and_then(Value::as_str)
        .ok_or("the property type is missing")?
        .to_string();
    if !ACCEPTED_TYPES.contains(&ty.as_str()) {
        return Err(format!(
            "object type {ty:?} is not accepted; this collection accepts {}",
            ACCEPTED_TYPES.join(", ")
        ));
    }
    if obj.get("spec_version").and_then(Value::as_str) != Some("2.1") {
        return Err("spec_version must be \"2.1\"".into());
    }
    let id = obj
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| is_stix_id(s) && s.starts_with(&format!("{ty}--")))
        .ok_or_else(|| format!("id must be {ty}--<uuid>"))?
        .to_string();
    let created = timestamp(&obj, "created")?.ok_or("the property created is missing")?;
    let modified = timestamp(&obj, "modified")?.ok_or("the property modified is missing")?;
    if modified < created {
        return Err("modified is before created".into());
    }
    let version = obj
        .get("modified")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if let Some(c) = obj.get("confidence") {
        if c.as_u64().is_none_or(|c| c > 100) {
            return Err("confidence must be an integer 0-100".into());
        }
    }
    if obj.get("revoked").is_some_and(|r| !r.is_boolean()) {
        return Err("revoked must be a boolean".into());
    }
    if let Some(l) = obj.get("labels") {
        if !l.as_array().is_some_and(|a| {
            a.len() <= 1000
                && a.iter()
                    .all(|x| x.as_str().is_some_and(|s| !s.is_empty() && s.len() <= 2048))
        }) {
            return Err("labels must be a list of 1-2048 byte strings".into());
        }
    }
    if let Some(r) = obj.get("external_references") {
        let ok = r.as_array().is_some_and(|a| {
            a.len() <= 1000
                && a.iter().all(|x| {
                    x.get("source_name")
                        .and_then(Value::as_str)
                        .is_some_and(|s| !s.is_empty())
                })
        });
        if !ok {
            return Err("external_references must be a list of objects with source_name".into());
        }
    }
    // Markings: the TLP is the most restrictive TLP marking; none means the lesser of
    // TLP:AMBER and the topic's maximum, added to the object.
    let markings = check_refs(&obj, "object_marking_refs")?;
    if markings
        .iter()
        .any(|m| !m.starts_with("marking-definition--"))
    {
        return Err("object_marking_refs must list marking-definition ids".into());
    }
    let tlp = markings
        .iter()
        .filter_map(|m| {
            Tlp::ALL
                .iter()
                .find(|t| crate::stix::tlp_marking_id(**t) == m)
                .copied()
                .or_else(|| TLP1.iter().find(|(id, _)| id == m).map(|(_, t)| *t))
        })
        .max();
    let tlp = match tlp {
        Some(t) => t,
        None => {
            let t = Tlp::Amber.min(target.max_tlp);
            let mut refs = markings.clone();
            refs.push(crate::stix::tlp_marking_id(t).to_string());
            obj["object_marking_refs"] = json!(refs);
            t
        }
    };
    if tlp > target.max_tlp {
        return Err(format!(
            "{tlp} is above the maximum {} of topic {:?}",
            target.max_tlp, target.topic
        ));
    }
    // Authorship is the publishing org's, whatever the object claimed.
    check_ref(&obj, "created_by_ref", Some(&["identity"]))?;
    obj["created_by_ref"] = json!(target.identity);

    let mut related_ids: Vec<String> = Vec::new();
    let str_of = |k: &str| obj.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let (kind, title, description, from_ms, until_ms, observables) = match ty.as_str() {
        "indicator" => {
            let pattern = required_str(&obj, "pattern", "indicator")?.to_string();
            let pattern_type = required_str(&obj, "pattern_type", "indicator")?;
            let from = timestamp(&obj, "valid_from")?.ok_or("indicator needs valid_from")?;
            let until = timestamp(&obj, "valid_until")?;
            if until.is_some_and(|u| u <= from) {
                return Err("valid_until must be after valid_from".into());
            }
            let observables = if pattern_type == "stix" {
                check_stix_pattern(&pattern)?;
                observables_of(&pattern)
            } else {
                vec![]
            };
            let name = obj
                .get("name")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| format!("Indicator {}", truncate(&pattern, 200)));
            (
                AlertKind::Indicator,
                name,
                str_of("description"),
                from,
                until,
                observables,
            )
        }
        "campaign" => {
            let name = required_str(&obj, "name", "campaign")?.to_string();
            let first = timestamp(&obj, "first_seen")?;
            let last = timestamp(&obj, "last_seen")?;
            if let (Some(f), Some(l)) = (first, last) {
                if l < f {
                    return Err("last_seen is before first_seen".into());
                }
            }
            (
                AlertKind::Campaign,
                name,
                str_of("description"),
                first.unwrap_or(created),
                last,
                vec![],
            )
        }
        "sighting" => {
            let of = check_ref(&obj, "sighting_of_ref", None)?
                .ok_or("sighting needs sighting_of_ref")?;
            if of.starts_with("relationship--") || of.starts_with("sighting--") {
                return Err("sighting_of_ref must reference an SDO".into());
            }
            let first = timestamp(&obj, "first_seen")?;
            let last = timestamp(&obj, "last_seen")?;
            if let (Some(f), Some(l)) = (first, last) {
                if l < f {
                    return Err("last_seen is before first_seen".into());
                }
            }
            if let Some(c) = obj.get("count") {
                if c.as_u64().is_none_or(|c| c > 999_999_999) {
                    return Err("count must be an integer 0-999999999".into());
                }
            }
            check_refs(&obj, "observed_data_refs")?;
            check_refs(&obj, "where_sighted_refs")?;
            related_ids.push(of.clone());
            (
                AlertKind::Sighting,
                format!("Sighting of {of}"),
                str_of("description"),
                first.unwrap_or(created),
                last,
                vec![],
            )
        }
        "note" => {
            let content = required_str(&obj, "content", "note")?.to_string();
            let refs = check_refs(&obj, "object_refs")?;
            if refs.is_empty() {
                return Err("note needs object_refs".into());
            }
            related_ids.extend(refs);
            let title = obj
                .get("abstract")
                .and_then(Value::as_str)
                .filter(|s| !s.trim().is_empty())
                .map(str::to_string)
                .unwrap_or_else(|| content.lines().next().unwrap_or("Note").to_string());
            (AlertKind::Advisory, title, content, created, None, vec![])
        }
        _ => {
            let rel = required_str(&obj, "relationship_type", "relationship")?.to_string();
            let source =
                check_ref(&obj, "source_ref", None)?.ok_or("relationship needs source_ref")?;
            let target_ref =
                check_ref(&obj, "target_ref", None)?.ok_or("relationship needs target_ref")?;
            related_ids.push(source.clone());
            related_ids.push(target_ref.clone());
            (
                AlertKind::Advisory,
                format!("{source} {rel} {target_ref}"),
                str_of("description"),
                created,
                None,
                vec![],
            )
        }
    };
    let title = truncate(title.trim(), 256);
    let title = if title.is_empty() { ty.clone() } else { title };
    let labels: Vec<String> = obj
        .get("labels")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let references: Vec<String> = obj
        .get("external_references")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|r| {
                    r.get("url")
                        .or_else(|| r.get("external_id"))
                        .and_then(Value::as_str)
                })
                .filter(|s| !s.is_empty() && s.len() <= 2048)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let mut related: Vec<EnvelopeId> = Vec::new();
    for r in &related_ids {
        if let Some(e) = envelope_of(r) {
            if !related.contains(&e) {
                related.push(e);
            }
        }
    }
    let text = serde_json::to_string(&obj).map_err(|e| e.to_string())?;
    if text.len() > MAX_STIX_BYTES {
        return Err(format!(
            "the object is {} bytes; at most {MAX_STIX_BYTES} are accepted",
            text.len()
        ));
    }
    let alert = Alert {
        kind,
        title,
        description: truncate(&description, 16 * 1024),
        severity: Severity::Medium,
        confidence: obj
            .get("confidence")
            .and_then(Value::as_u64)
            .map_or(50, |c| c.min(100) as u8),
        observables,
        labels,
        references,
        valid_from_ms: from_ms,
        valid_until_ms: until_ms.filter(|u| *u >= from_ms),
        related,
        stix: Some(text),
    };
    alert.check().map_err(|e| e.to_string())?;
    Ok(Prepared {
        id,
        version,
        modified_ms: modified,
        alert,
        tlp,
    })
}

/// Whether an object received inside an alert (`Alert::stix`, from any member) passes the
/// same checks as a POSTed one; a reader serves it only then (else the alert's native
/// object).
pub fn acceptable_received(obj: &Value) -> bool {
    let target = Target {
        topic: "",
        max_tlp: Tlp::Red,
        identity: "identity--00000000-0000-4000-8000-000000000000",
    };
    prepare(obj, &target, &|_| None).is_ok()
}

/// Replaces an object's TLP markings by `tlp` (other markings are kept): what a reader
/// serves must carry the TLP its envelope was published under.
pub fn set_tlp(obj: &mut Value, tlp: Tlp) {
    let is_tlp = |m: &str| {
        Tlp::ALL
            .iter()
            .any(|t| crate::stix::tlp_marking_id(*t) == m)
            || TLP1.iter().any(|(id, _)| *id == m)
    };
    let mut refs: Vec<Value> = obj
        .get("object_marking_refs")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter(|m| !m.as_str().is_some_and(is_tlp))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let current = obj
        .get("object_marking_refs")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .filter_map(|m| {
                    Tlp::ALL
                        .iter()
                        .find(|t| crate::stix::tlp_marking_id(**t) == m)
                        .copied()
                        .or_else(|| TLP1.iter().find(|(id, _)| *id == m).map(|(_, t)| *t))
                })
                .max()
        })
        .unwrap_or_default();
    if current == Some(tlp) {
        return;
    }
    refs.push(json!(crate::stix::tlp_marking_id(tlp)));
    obj["object_marking_refs"] = Value::Array(refs);
}

/// Structural check of a STIX pattern: bracketed, quotes closed, brackets balanced.
fn check_stix_pattern(p: &str) -> Result<(), String> {
    let bad = || Err("pattern is not a valid STIX pattern (unbalanced brackets or quotes)".into());
    let t = p.trim();
    if !t.starts_with('[') && !t.starts_with('(') {
        return bad();
    }
    let mut depth = 0i32;
    let mut in_str = false;
    let mut chars = t.chars();
    while let Some(c) = chars.next() {
        match (in_str, c) {
            (true, '\\') => {
                chars.next();
            }
            (true, '\'') => in_str = false,
            (true, _) => {}
            (false, '\'') => in_str = true,
            (false, '[' | '(') => depth += 1,
            (false, ']' | ')') => {
                depth -= 1;
                if depth < 0 {
                    return bad();
                }
            }
            _ => {}
        }
    }
    if in_str || depth != 0 {
        return bad();
    }
    Ok(())
}

/// The observables of simple `path = 'literal'` comparisons in a STIX pattern.
pub fn observables_of(pattern: &str) -> Vec<Observable> {
    let mut out = Vec::new();
    let mut rest = pattern;
    while let Some(eq) = rest.find('=') {
        let (before, after) = rest.split_at(eq);
        let path = before
            .rsplit(['[', '(', ' '])
            .find(|s| !s.trim().is_empty())
            .unwrap_or("")
            .trim();
        let after = after[1..].trim_start();
        let Some(lit) = after.strip_prefix('\'') else {
            rest = after;
            continue;
        };
        let mut value = String::new();
        let mut end = lit.len();
        let mut chars = lit.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        value.push(n);
                    }
                }
                '\'' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        rest = &lit[end.min(lit.len())..];
        if value.is_empty() || value.len() > 2048 {
            continue;
        }
        let obs = match path {
            "domain-name:value" => Some(Observable::Domain(value)),
            "url:value" => Some(Observable::Url(value)),
            "email-addr:value" => Some(Observable::Email(value)),
            "ipv4-addr:value" => value
                .parse::<std::net::Ipv4Addr>()
                .ok()
                .map(|a| Observable::Ipv4(a.octets())),
            "ipv6-addr:value" => value
                .parse::<std::net::Ipv6Addr>()
                .ok()
                .map(|a| Observable::Ipv6(a.octets())),
            "file:hashes.'SHA-256'" | "file:hashes.SHA256" | "file:hashes.'SHA256'" => {
                let mut b = [0u8; 32];
                hex::decode_to_slice(&value, &mut b)
                    .ok()
                    .map(|()| Observable::FileSha256(b))
            }
            "x-alertmesh-hashtag:value" => Some(Observable::Hashtag(value)),
            "x-alertmesh-phone:value" => Some(Observable::Phone(value)),
            _ => None,
        };
        if out.len() < 1000 {
            out.extend(obs);
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn target() -> Target<'static> {
        Target {
            topic: "t",
            max_tlp: Tlp::Amber,
            identity: "identity--886313e1-3b8a-5372-9b90-0c9aee199e5d",
        }
    }

    fn indicator() -> Value {
        json!({
            "type": "indicator", "spec_version": "2.1",
            "id": "indicator--11111111-2222-4333-8444-555555555555",
            "created": "2020-09-13T12:26:40.000Z", "modified": "2020-09-13T12:26:40.000Z",
            "name": "phish", "pattern": "[domain-name:value = 'vote.example'] OR [ipv4-addr:value = '192.0.2.7']",
            "pattern_type": "stix", "valid_from": "2020-09-13T12:26:40Z",
            "object_marking_refs": ["marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"],
            "created_by_ref": "identity--99999999-2222-4333-8444-555555555555"
        })
    }

    #[test]
    fn indicator_becomes_an_alert_carrying_the_object() {
        let p = prepare(&indicator(), &target(), &|_| None).unwrap();
        assert_eq!(p.tlp, Tlp::Green);
        assert_eq!(p.alert.kind, AlertKind::Indicator);
        assert_eq!(
            p.alert.observables,
            vec![
                Observable::Domain("vote.example".into()),
                Observable::Ipv4([192, 0, 2, 7])
            ]
        );
        let kept: Value = serde_json::from_str(p.alert.stix.as_deref().unwrap()).unwrap();
        assert_eq!(kept["id"], indicator()["id"]);
        assert_eq!(kept["created_by_ref"], target().identity);
    }

    #[test]
    fn bad_objects_are_refused_with_a_reason() {
        let cases: Vec<(Value, &str)> = vec![
            (json!({"type": "malware"}), "not accepted"),
            (json!([1]), "JSON object"),
            (
                {
                    let mut o = indicator();
                    o["spec_version"] = json!("2.0");
                    o
                },
                "spec_version",
            ),
            (
                {
                    let mut o = indicator();
                    o["id"] = json!("indicator--x");
                    o
                },
                "id must be",
            ),
            (
                {
                    let mut o = indicator();
                    o["pattern"] = json!("[domain-name:value = 'x'");
                    o
                },
                "pattern",
            ),
            (
                {
                    let mut o = indicator();
                    o["modified"] = json!("2019-01-01T00:00:00Z");
                    o
                },
                "before created",
            ),
            (
                {
                    let mut o = indicator();
                    o["object_marking_refs"] =
                        json!(["marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1"]);
                    o
                },
                "above the maximum",
            ),
            (
                {
                    let mut o = indicator();
                    o.as_object_mut().unwrap().remove("valid_from");
                    o
                },
                "valid_from",
            ),
        ];
        for (obj, want) in cases {
            let err = prepare(&obj, &target(), &|_| None).unwrap_err();
            assert!(err.contains(want), "{err} (wanted {want})");
        }
    }

    #[test]
    fn a_received_object_is_served_with_its_envelopes_tlp() {
        let clear = crate::stix::tlp_marking_id(Tlp::Clear);
        let red = crate::stix::tlp_marking_id(Tlp::Red);
        let other = "marking-definition--11111111-2222-4333-8444-555555555555";
        let mut o = indicator();
        o["object_marking_refs"] = json!([clear, other]);
        assert!(acceptable_received(&o));
        set_tlp(&mut o, Tlp::Red);
        assert_eq!(o["object_marking_refs"], json!([other, red]));
        // Already right: unchanged.
        let before = o.clone();
        set_tlp(&mut o, Tlp::Red);
        assert_eq!(o, before);
        o["type"] = json!("malware");
        assert!(!acceptable_received(&o));
    }

    #[test]
    fn unmarked_objects_get_a_tlp_marking() {
        let mut o = indicator();
        o.as_object_mut().unwrap().remove("object_marking_refs");
        let p = prepare(&o, &target(), &|_| None).unwrap();
        assert_eq!(p.tlp, Tlp::Amber);
        let kept: Value = serde_json::from_str(p.alert.stix.as_deref().unwrap()).unwrap();
        assert_eq!(
            kept["object_marking_refs"],
            json!([crate::stix::tlp_marking_id(Tlp::Amber)])
        );
    }
}
