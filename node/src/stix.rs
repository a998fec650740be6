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
//! [`NAMESPACE`] of a name derived from the envelope id, so the same alert has the same
//! STIX id on every node and in every export.

use crate::lifecycle::AlertState;
use alertmesh_protocol::{NetworkId, SignedCharter, Tlp};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

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

/// The TLP of a stored label (`TLP:GREEN` …); unknown labels give `TLP:RED`.
pub fn parse_tlp(label: &str) -> Tlp {
    match label {
        "TLP:CLEAR" => Tlp::Clear,
        "TLP:GREEN" => Tlp::Green,
        "TLP:AMBER" => Tlp::Amber,
        "TLP:AMBER+STRICT" => Tlp::AmberStrict,
        // Unknown labels get the most restrictive marking.
        _ => Tlp::Red,
    }
}

use crate::clock::rfc3339;

/// UUIDv5 of `name` in `namespace`, as lower-case text.
pub fn uuid_v5(namespace: &[u8; 16], name: &[u8]) -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::from_bytes(*namespace), name).to_string()
}

/// The namespace of alertmesh's STIX ids: UUIDv5 of the URL `urn:alertmesh:stix` in the
/// RFC 4122 URL namespace.
pub fn namespace() -> [u8; 16] {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, b"urn:alertmesh:stix").into_bytes()
}

fn stix_id(ns: &[u8; 16], ty: &str, name: &str) -> String {
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

/// The STIX object type alertmesh derives from a native alert (JSON of an `Alert`).
pub fn native_type(alert: &Value) -> &'static str {
    Builder::kind_type(alert)
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

/// The STIX comparison expression of one observable (JSON as in `Observable`'s serde
/// form: `{"type": "domain", "value": …}`).
pub fn observation(obs: &Value) -> Option<String> {
    let ty = obs.get("type")?.as_str()?;
    let value = obs.get("value")?;
    let s = |v: &Value| v.as_str().map(pattern_literal);
    Some(match ty {
        "domain" => format!("[domain-name:value = {}]", s(value)?),
        "url" => format!("[url:value = {}]", s(value)?),
        "email" => format!("[email-addr:value = {}]", s(value)?),
        "ipv4" => {
            let b: Vec<u8> = serde_json::from_value(value.clone()).ok()?;
            let a: [u8; 4] = b.try_into().ok()?;
            format!("[ipv4-addr:value = '{}']", std::net::Ipv4Addr::from(a))
        }
        "ipv6" => {
            let b: Vec<u8> = serde_json::from_value(value.clone()).ok()?;
            let a: [u8; 16] = b.try_into().ok()?;
            format!("[ipv6-addr:value = '{}']", std::net::Ipv6Addr::from(a))
        }
        "file-sha256" => {
            let b: Vec<u8> = serde_json::from_value(value.clone()).ok()?;
            if b.len() != 32 {
                return None;
            }
            format!("[file:hashes.'SHA-256' = '{}']", hex::encode(b))
        }
        "social-account" => format!(
            "[user-account:account_login = {} AND user-account:account_type = {}]",
            s(value.get("handle")?)?,
            s(value.get("platform")?)?
        ),
        "hashtag" => format!("[x-alertmesh-hashtag:value = {}]", s(value)?),
        "phone" => format!("[x-alertmesh-phone:value = {}]", s(value)?),
        "ad-id" => format!(
            "[x-alertmesh-ad:ad_id = {} AND x-alertmesh-ad:network = {}]",
            s(value.get("id")?)?,
            s(value.get("network")?)?
        ),
        _ => return None,
    })
}

/// The pattern of an alert's observables (`None` if it has none).
pub fn pattern(alert: &Value) -> Option<String> {
    let parts: Vec<String> = alert
        .get("observables")?
        .as_array()?
        .iter()
        .filter_map(observation)
        .collect();
    (!parts.is_empty()).then(|| parts.join(" OR "))
}

fn str_field<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

struct Builder<'a> {
    ns: [u8; 16],
    network: NetworkId,
    orgs: &'a HashMap<String, OrgInfo>,
    objects: Vec<Value>,
    tlps: std::collections::BTreeSet<Tlp>,
    identities: BTreeMap<String, Value>,
    identity_time: String,
    /// envelope id → (primary object id) of every alert in the bundle.
    primary: HashMap<String, String>,
}

/// One version of an alert: its content, time, and whether it revokes the object.
struct Version<'v> {
    alert: &'v Value,
    modified_ms: u64,
    revoked: bool,
}

impl Builder<'_> {
    fn identity(&mut self, org: &str) -> String {
        let id = stix_id(
            &self.ns,
            "identity",
            &format!("org:{}:{org}", self.network.to_hex()),
        );
        if !self.identities.contains_key(org) {
            let info = self.orgs.get(org);
            let mut obj = json!({
                "type": "identity",
                "spec_version": "2.1",
                "id": id,
                "created": self.identity_time,
                "modified": self.identity_time,
                "name": info.map_or(org, |i| i.name.as_str()),
                "identity_class": "organization",
                "description": format!("alertmesh member org {org}"),
            });
            if let Some(i) = info.filter(|i| !i.roles.is_empty()) {
                obj["roles"] = json!(i.roles);
            }
            self.identities.insert(org.to_string(), obj);
        }
        id
    }

    fn kind_type(alert: &Value) -> &'static str {
        match str_field(alert, "kind") {
            "campaign" => "campaign",
            "sighting" => "sighting",
            "indicator" if pattern(alert).is_some() => "indicator",
            _ => "report",
        }
    }

    /// Properties every SDO and SRO of this alert carries.
    fn common(&self, s: &AlertState, ty: &str, id: &str, v: &Version<'_>, author: &str) -> Value {
        let tlp = parse_tlp(&s.tlp);
        let mut obj = json!({
            "type": ty,
            "spec_version": "2.1",
            "id": id,
            "created": rfc3339(s.created_ms.max(0) as u64),
            "modified": rfc3339(v.modified_ms),
            "created_by_ref": author,
            "object_marking_refs": [tlp_marking_id(tlp)],
            "x_alertmesh_topic": s.topic,
        });
        if let Some(c) = v.alert.get("confidence").and_then(Value::as_u64) {
            obj["confidence"] = json!(c.min(100));
        }
        if let Some(sev) = v.alert.get("severity").and_then(Value::as_str) {
            obj["x_alertmesh_severity"] = json!(sev);
        }
        let labels: Vec<&str> = v
            .alert
            .get("labels")
            .and_then(Value::as_array)
            .map(|l| l.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if !labels.is_empty() {
            obj["labels"] = json!(labels);
        }
        let mut refs = vec![json!({
            "source_name": "alertmesh",
            "external_id": s.id,
            "description": format!("alertmesh envelope on topic {}", s.topic),
        })];
        for r in v
            .alert
            .get("references")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if r.starts_with("https://") || r.starts_with("http://") {
                refs.push(json!({"source_name": "reference", "url": r}));
            } else {
                refs.push(json!({"source_name": "reference", "external_id": r}));
            }
        }
        obj["external_references"] = json!(refs);
        if v.revoked {
            obj["revoked"] = json!(true);
        }
        obj
    }

    fn versions<'s>(s: &'s AlertState) -> Vec<Version<'s>> {
        let mut out: Vec<Version<'s>> = Vec::new();
        let mut last = 0u64;
        let mut push = |alert: &'s Value, ts: i64, revoked: bool, out: &mut Vec<Version<'s>>| {
            // `modified` must increase from version to version.
            let ms = (ts.max(0) as u64).max(if out.is_empty() { 0 } else { last + 1 });
            last = ms;
            out.push(Version {
                alert,
                modified_ms: ms,
                revoked,
            });
        };
        let mut retracted = false;
        for h in &s.history {
            if retracted {
                break;
            }
            match h.kind.as_str() {
                "alert" => {
                    if let Some(a) = h.content.get("alert") {
                        push(a, h.timestamp_ms, false, &mut out);
                    }
                }
                "update" => {
                    if let Some(a) = h.content.get("update").and_then(|u| u.get("alert")) {
                        push(a, h.timestamp_ms, false, &mut out);
                    }
                }
                "retraction" => {
                    if let Some(prev) = out.last().map(|v| v.alert) {
                        push(prev, h.timestamp_ms, true, &mut out);
                    }
                    retracted = true;
                }
                _ => {}
            }
        }
        out
    }

    fn alert(&mut self, s: &AlertState) {
        let versions = Self::versions(s);
        let Some(first) = versions.first() else {
            return;
        };
        let ty = Self::kind_type(first.alert);
        if ty == "sighting" {
            return self.sighting(s, &versions);
        }
        let author = self.identity(&s.org);
        let tlp = parse_tlp(&s.tlp);
        self.tlps.insert(tlp);
        let primary = stix_id(&self.ns, ty, &format!("alert:{}", s.id));
        let has_pattern = versions.iter().any(|v| pattern(v.alert).is_some());
        let indicator = (ty != "indicator" && has_pattern)
            .then(|| stix_id(&self.ns, "indicator", &format!("indicator-of:{}", s.id)));
        for v in &versions {
            let mut obj = self.common(s, ty, &primary, v, &author);
            let title = str_field(v.alert, "title");
            let description = str_field(v.alert, "description");
            let from = v
                .alert
                .get("valid_from_ms")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            let until = v.alert.get("valid_until_ms").and_then(Value::as_u64);
            obj["name"] = json!(title);
            if !description.is_empty() {
                obj["description"] = json!(description);
            }
            match ty {
                "indicator" => {
                    obj["indicator_types"] = json!(["malicious-activity"]);
                    // A version without observables keeps the last pattern.
                    let p = pattern(v.alert)
                        .or_else(|| versions.iter().find_map(|x| pattern(x.alert)))
                        .unwrap_or_default();
                    obj["pattern"] = json!(p);
                    obj["pattern_type"] = json!("stix");
                    obj["pattern_version"] = json!("2.1");
                    obj["valid_from"] = json!(rfc3339(from));
                    if let Some(u) = until.filter(|u| *u > from) {
                        obj["valid_until"] = json!(rfc3339(u));
                    }
                }
                "campaign" => {
                    obj["first_seen"] = json!(rfc3339(from));
                    if let Some(u) = until.filter(|u| *u >= from) {
                        obj["last_seen"] = json!(rfc3339(u));
                    }
                }
                _ => {
                    let report_type = if str_field(v.alert, "kind") == "account-network" {
                        "threat-actor"
                    } else {
                        "threat-report"
                    };
                    obj["report_types"] = json!([report_type]);
                    obj["published"] = json!(rfc3339(s.created_ms.max(0) as u64));
                    obj["object_refs"] =
                        json!([indicator.clone().unwrap_or_else(|| author.clone())]);
                    obj["x_alertmesh_kind"] = json!(str_field(v.alert, "kind"));
                }
            }
            self.objects.push(obj);
            if let Some(ind) = &indicator {
                let mut io = self.common(s, "indicator", ind, v, &author);
                let p = pattern(v.alert)
                    .or_else(|| versions.iter().find_map(|x| pattern(x.alert)))
                    .unwrap_or_default();
                io["name"] = json!(format!("Indicators: {title}"));
                io["indicator_types"] = json!(["malicious-activity"]);
                io["pattern"] = json!(p);
                io["pattern_type"] = json!("stix");
                io["pattern_version"] = json!("2.1");
                io["valid_from"] = json!(rfc3339(from));
                if let Some(u) = until.filter(|u| *u > from) {
                    io["valid_until"] = json!(rfc3339(u));
                }
                self.objects.push(io);
            }
        }
        self.primary.insert(s.id.clone(), primary.clone());
        if let (Some(ind), "campaign") = (&indicator, ty) {
            self.relationship(s, &versions, "indicates", ind, &primary, &author);
        }
    }

    fn relationship(
        &mut self,
        s: &AlertState,
        versions: &[Version<'_>],
        kind: &str,
        source: &str,
        target: &str,
        author: &str,
    ) {
        let id = stix_id(
            &self.ns,
            "relationship",
            &format!("rel:{kind}:{source}:{target}"),
        );
        let first = &versions[0];
        let mut objs = vec![(first.modified_ms, false)];
        if let Some(last) = versions.last().filter(|v| v.revoked) {
            objs.push((last.modified_ms, true));
        }
        for (ms, revoked) in objs {
            let v = Version {
                alert: first.alert,
                modified_ms: ms,
                revoked,
            };
            let mut obj = self.common(s, "relationship", &id, &v, author);
            obj["relationship_type"] = json!(kind);
            obj["source_ref"] = json!(source);
            obj["target_ref"] = json!(target);
            if let Some(o) = obj.as_object_mut() {
                o.remove("labels");
                o.remove("x_alertmesh_severity");
            }
            self.objects.push(obj);
        }
    }

    fn sighting(&mut self, s: &AlertState, versions: &[Version<'_>]) {
        let author = self.identity(&s.org);
        self.tlps.insert(parse_tlp(&s.tlp));
        let mut any = false;
        for related in &s.sighting_of {
            let Some(target) = self.primary.get(related).cloned() else {
                continue;
            };
            any = true;
            let id = stix_id(
                &self.ns,
                "sighting",
                &format!("sighting:{}:{related}", s.id),
            );
            for v in versions {
                let mut obj = self.common(s, "sighting", &id, v, &author);
                let from = v
                    .alert
                    .get("valid_from_ms")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                let until = v
                    .alert
                    .get("valid_until_ms")
                    .and_then(Value::as_u64)
                    .filter(|u| *u >= from)
                    .unwrap_or(from);
                obj["sighting_of_ref"] = json!(target);
                obj["where_sighted_refs"] = json!([author.clone()]);
                obj["first_seen"] = json!(rfc3339(from));
                obj["last_seen"] = json!(rfc3339(until));
                obj["count"] = json!(1);
                let text = format!(
                    "{}: {}",
                    str_field(v.alert, "title"),
                    str_field(v.alert, "description")
                );
                obj["description"] = json!(text.trim_end_matches(": "));
                self.objects.push(obj);
            }
        }
        if !any {
            // The sighted alert is not in this bundle: a note keeps the sighting.
            let id = stix_id(&self.ns, "note", &format!("sighting-note:{}", s.id));
            for v in versions {
                let mut obj = self.common(s, "note", &id, v, &author);
                obj["abstract"] = json!(str_field(v.alert, "title"));
                obj["content"] = json!(format!(
                    "{}\nSighting of alertmesh envelope(s) not in this bundle: {}",
                    str_field(v.alert, "description"),
                    s.sighting_of.join(", ")
                ));
                obj["object_refs"] = json!([author.clone()]);
                self.objects.push(obj);
            }
        }
    }

    fn related(&mut self, s: &AlertState) {
        let Some(source) = self.primary.get(&s.id).cloned() else {
            return;
        };
        let versions = Self::versions(s);
        if versions.is_empty() {
            return;
        }
        let related = versions
            .last()
            .map(|v| v.alert)
            .and_then(|a| a.get("related"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let author = self.identity(&s.org);
        let mut seen = HashSet::new();
        for r in related.iter().filter_map(Value::as_str) {
            if let Some(target) = self.primary.get(r).cloned() {
                if target != source && seen.insert(target.clone()) {
                    self.relationship(s, &versions, "related-to", &source, &target, &author);
                }
            }
        }
    }
}

/// Builds a STIX 2.1 bundle of `alerts` (each with its versions and retraction).
/// `genesis_ms` dates the identity objects; `orgs` names the orgs.
pub fn bundle(
    network: &NetworkId,
    genesis_ms: u64,
    orgs: &[OrgInfo],
    alerts: &[AlertState],
) -> Value {
    // The same alerts give the same bundle on every node, whatever order they arrived in.
    let mut sorted: Vec<&AlertState> = alerts.iter().collect();
    sorted.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
    let alerts = sorted;
    let orgs: HashMap<String, OrgInfo> =
        orgs.iter().map(|o| (o.org_id.clone(), o.clone())).collect();
    let mut b = Builder {
        ns: namespace(),
        network: *network,
        orgs: &orgs,
        objects: Vec::new(),
        tlps: Default::default(),
        identities: BTreeMap::new(),
        identity_time: rfc3339(genesis_ms),
        primary: HashMap::new(),
    };
    // Non-sightings first, so sightings and relationships can point at them.
    for s in alerts
        .iter()
        .filter(|s| !s.current.get("kind").is_some_and(|k| k == "sighting"))
    {
        b.alert(s);
    }
    for s in alerts
        .iter()
        .filter(|s| s.current.get("kind").is_some_and(|k| k == "sighting"))
    {
        b.alert(s);
    }
    for s in &alerts {
        b.related(s);
    }
    let mut objects = Vec::new();
    if !b.tlps.is_empty() {
        objects.push(tlp_extension_definition());
        objects.extend(b.tlps.iter().map(|t| tlp_marking(*t)));
    }
    objects.extend(b.identities.into_values());
    objects.extend(b.objects);
    let mut names = String::new();
    for o in &objects {
        names.push_str(str_field(o, "id"));
        names.push_str(str_field(o, "modified"));
    }
    let digest = alertmesh_protocol::ids::sha256(names.as_bytes());
    json!({
        "type": "bundle",
        "id": stix_id(&b.ns, "bundle", &hex::encode(digest)),
        "objects": objects,
    })
}

/// The bundle of everything a node's database holds (optionally one topic).
pub fn bundle_for_data_dir(data_dir: &Path, topic: Option<&str>) -> anyhow::Result<Value> {
    let conn = crate::store::open_reader(data_dir)?;
    let mut q = conn.prepare("SELECT bytes FROM charters ORDER BY version")?;
    let charters: Vec<Vec<u8>> = q.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
    let mut orgs: HashMap<String, OrgInfo> = HashMap::new();
    let mut genesis_ms = 0;
    for bytes in &charters {
        if let Ok(c) = SignedCharter::decode(bytes) {
            if c.charter().version == 1 {
                genesis_ms = c.charter().created_ms;
            }
            for m in &c.charter().members {
                orgs.insert(
                    m.org_id.to_string(),
                    OrgInfo {
                        org_id: m.org_id.to_string(),
                        name: m.name.clone(),
                        roles: m.roles.clone(),
                    },
                );
            }
        }
    }
    let network: Vec<u8> =
        conn.query_row("SELECT value FROM meta WHERE key = 'network_id'", [], |r| {
            r.get(0)
        })?;
    let network = NetworkId(
        network
            .as_slice()
            .try_into()
            .map_err(|_| anyhow::anyhow!("the database's network id is not 32 bytes"))?,
    );
    let states = crate::lifecycle::all_states(&conn, topic)?;
    let orgs: Vec<OrgInfo> = orgs.into_values().collect();
    Ok(bundle(&network, genesis_ms, &orgs, &states))
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
            if !c.as_u64().is_some_and(|c| c <= 100) {
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
                if !o["object_refs"].as_array().is_some_and(|a| !a.is_empty()) {
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
                let official = [
                    Tlp::Clear,
                    Tlp::Green,
                    Tlp::Amber,
                    Tlp::AmberStrict,
                    Tlp::Red,
                ]
                .iter()
                .find(|t| tlp_marking_id(**t) == id);
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
    fn timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_600_000_000_123), "2020-09-13T12:26:40.123Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn patterns() {
        let alert = json!({"observables": [
            {"type": "domain", "value": "vote-example.com"},
            {"type": "url", "value": "https://x.example/a'b"},
            {"type": "ipv4", "value": [192, 0, 2, 7]},
            {"type": "file-sha256", "value": vec![0xab; 32]},
            {"type": "social-account", "value": {"platform": "example-social", "handle": "@x"}},
        ]});
        let p = pattern(&alert).unwrap();
        assert!(p.starts_with("[domain-name:value = 'vote-example.com'] OR [url:value = 'https://x.example/a\\'b']"), "{p}");
        assert!(p.contains("[ipv4-addr:value = '192.0.2.7']"));
        assert!(p.contains(&format!("[file:hashes.'SHA-256' = '{}']", "ab".repeat(32))));
        assert!(p.contains(
            "[user-account:account_login = '@x' AND user-account:account_type = 'example-social']"
        ));
        assert_eq!(pattern(&json!({"observables": []})), None);
    }

    #[test]
    fn official_markings_pass_the_checker() {
        let objects: Vec<Value> = std::iter::once(tlp_extension_definition())
            .chain(
                [
                    Tlp::Clear,
                    Tlp::Green,
                    Tlp::Amber,
                    Tlp::AmberStrict,
                    Tlp::Red,
                ]
                .into_iter()
                .map(tlp_marking),
            )
            .collect();
        let b = json!({"type": "bundle", "id": "bundle--886313e1-3b8a-5372-9b90-0c9aee199e5d", "objects": objects});
        assert_eq!(check_bundle(&b), Vec::<String>::new());
    }
}
