//! STIX 2.1 bundles of the alerts a node holds: every alert's current state with its
//! versions, sightings and relationships, authored by its org's identity.

use crate::clock::rfc3339;
use crate::stix::{
    OrgInfo, namespace, native_type, pattern, stix_id, str_field, tlp_extension_definition,
    tlp_marking, tlp_marking_id,
};
use crate::views::lifecycle::{AlertState, is_sighting};
use alertmesh_protocol::{Alert, AlertKind, Content, NetworkId, SignedCharter, Tlp};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

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
    alert: &'v Alert,
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

    /// Properties every SDO and SRO of this alert carries.
    fn common(&self, s: &AlertState, ty: &str, id: &str, v: &Version<'_>, author: &str) -> Value {
        let tlp = s.tlp;
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
        obj["confidence"] = json!(v.alert.confidence.min(100));
        obj["x_alertmesh_severity"] = json!(v.alert.severity);
        if !v.alert.labels.is_empty() {
            obj["labels"] = json!(v.alert.labels);
        }
        let mut refs = vec![json!({
            "source_name": "alertmesh",
            "external_id": s.id,
            "description": format!("alertmesh envelope on topic {}", s.topic),
        })];
        for r in &v.alert.references {
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
        let mut push = |alert: &'s Alert, ts: i64, revoked: bool, out: &mut Vec<Version<'s>>| {
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
            match &h.content {
                Content::Alert(a) => push(a, h.timestamp_ms, false, &mut out),
                Content::Update(u) => push(&u.alert, h.timestamp_ms, false, &mut out),
                Content::Retraction(_) => {
                    if let Some(prev) = out.last().map(|v| v.alert) {
                        push(prev, h.timestamp_ms, true, &mut out);
                    }
                    retracted = true;
                }
            }
        }
        out
    }

    fn alert(&mut self, s: &AlertState) {
        let versions = Self::versions(s);
        let Some(first) = versions.first() else {
            return;
        };
        let ty = native_type(first.alert);
        if ty == "sighting" {
            return self.sighting(s, &versions);
        }
        let author = self.identity(&s.org);
        let tlp = s.tlp;
        self.tlps.insert(tlp);
        let primary = stix_id(&self.ns, ty, &format!("alert:{}", s.id));
        let has_pattern = versions.iter().any(|v| pattern(v.alert).is_some());
        let indicator = (ty != "indicator" && has_pattern)
            .then(|| stix_id(&self.ns, "indicator", &format!("indicator-of:{}", s.id)));
        for v in &versions {
            let mut obj = self.common(s, ty, &primary, v, &author);
            let title = &v.alert.title;
            let description = &v.alert.description;
            let from = v.alert.valid_from_ms;
            let until = v.alert.valid_until_ms;
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
                    let report_type = if v.alert.kind == AlertKind::AccountNetwork {
                        "threat-actor"
                    } else {
                        "threat-report"
                    };
                    obj["report_types"] = json!([report_type]);
                    obj["published"] = json!(rfc3339(s.created_ms.max(0) as u64));
                    obj["object_refs"] =
                        json!([indicator.clone().unwrap_or_else(|| author.clone())]);
                    obj["x_alertmesh_kind"] = json!(v.alert.kind);
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
        self.tlps.insert(s.tlp);
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
                let from = v.alert.valid_from_ms;
                let until = v
                    .alert
                    .valid_until_ms
                    .filter(|u| *u >= from)
                    .unwrap_or(from);
                obj["sighting_of_ref"] = json!(target);
                obj["where_sighted_refs"] = json!([author.clone()]);
                obj["first_seen"] = json!(rfc3339(from));
                obj["last_seen"] = json!(rfc3339(until));
                obj["count"] = json!(1);
                let text = format!("{}: {}", v.alert.title, v.alert.description);
                obj["description"] = json!(text.trim_end_matches(": "));
                self.objects.push(obj);
            }
        }
        if !any {
            // The sighted alert is not in this bundle: a note keeps the sighting.
            let id = stix_id(&self.ns, "note", &format!("sighting-note:{}", s.id));
            for v in versions {
                let mut obj = self.common(s, "note", &id, v, &author);
                obj["abstract"] = json!(v.alert.title);
                obj["content"] = json!(format!(
                    "{}\nSighting of alertmesh envelope(s) not in this bundle: {}",
                    v.alert.description,
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
            .map(|v| v.alert.related.clone())
            .unwrap_or_default();
        let author = self.identity(&s.org);
        let mut seen = HashSet::new();
        for r in related.iter().map(|id| id.to_hex()) {
            if let Some(target) = self.primary.get(&r).cloned() {
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
    for s in alerts.iter().filter(|s| !is_sighting(&s.current)) {
        b.alert(s);
    }
    for s in alerts.iter().filter(|s| is_sighting(&s.current)) {
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
    let mut orgs: HashMap<String, OrgInfo> = HashMap::new();
    let mut genesis_ms = 0;
    for (_, bytes) in crate::store::charters(&conn)? {
        if let Ok(c) = SignedCharter::decode(&bytes) {
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
    let network = crate::store::network_id(&conn)?;
    let states = crate::views::lifecycle::all_states(&conn, topic)?;
    let orgs: Vec<OrgInfo> = orgs.into_values().collect();
    Ok(bundle(&network, genesis_ms, &orgs, &states))
}
