//! One alert: its detail (author, signature, chain position, observables, history,
//! sightings), its STIX and MISP exports, and recording a sighting of it.

use super::alerts::{TLPS, alert_json, text};
use super::layout::{self, PageError, Tab, tlp_badge};
use super::util::{FormResult, check_len, form_or_page, read_db};
use super::{Authed, Console};
use alertmesh_protocol::{EnvelopeId, SignedEnvelope};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;
use serde_json::{Value, json};

/// A valid alert id (64 hex digits) or a 404 page.
fn parse_id(id: &str) -> Result<[u8; 32], PageError> {
    let bytes = hex::decode(id).ok().filter(|b| b.len() == 32);
    bytes.and_then(|b| b.try_into().ok()).ok_or_else(|| {
        PageError::new(
            StatusCode::NOT_FOUND,
            "No such alert",
            "An alert id is 64 hexadecimal digits.",
        )
    })
}

/// What the detail page needs from the database.
struct Detail {
    /// The state as the API serves it.
    state: Value,
    /// The same, typed (for the exporters).
    typed: crate::views::lifecycle::AlertState,
    /// Author node, seq, charter version, signature verified.
    envelope: Option<(String, u64, u64, bool)>,
    orgs: std::collections::BTreeMap<String, String>,
    network: alertmesh_protocol::NetworkId,
}

/// Where an id stands: its state (an original), its original (an amendment), or nothing.
enum Found {
    State(Box<Detail>),
    Amendment(String),
    Missing,
}

async fn find(console: &Console, id: [u8; 32]) -> Result<Found, PageError> {
    read_db(&console.api.data_dir, move |conn| {
        let row: Option<(i64, String, Option<Vec<u8>>)> = conn
            .query_row(
                "SELECT cursor, kind, original FROM alerts WHERE envelope_id = ?1",
                [id.as_slice()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .ok();
        let Some((cursor, kind, original)) = row else {
            return Ok(Found::Missing);
        };
        if kind != "alert" {
            return Ok(match original {
                Some(o) => Found::Amendment(hex::encode(o)),
                None => Found::Missing,
            });
        }
        let (page, _) = crate::views::lifecycle::current_view(conn, None, cursor - 1, 1)?;
        let Some(state) = page.into_iter().next() else {
            return Ok(Found::Missing);
        };
        let envelope = crate::store::envelope_bytes(conn, &EnvelopeId(id))?
            .and_then(|b| SignedEnvelope::decode(&b, b.len()).ok())
            .map(|e| {
                let h = e.header();
                (
                    h.author.to_string(),
                    h.seq,
                    h.charter_version,
                    e.verify_signature().is_ok(),
                )
            });
        Ok(Found::State(Box::new(Detail {
            state: serde_json::to_value(&state)?,
            typed: state,
            envelope,
            orgs: super::util::org_names(conn)?,
            network: crate::store::network_id(conn)?,
        })))
    })
    .await
}

/// An observable as its type and printable value.
fn observable(o: &Value) -> (String, String) {
    let ty = text(o, "type").to_string();
    let v = &o["value"];
    let bytes = |v: &Value| -> Vec<u8> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|b| b.as_u64())
                    .map(|b| b as u8)
                    .collect()
            })
            .unwrap_or_default()
    };
    let value = match ty.as_str() {
        "ipv4" => bytes(v)
            .iter()
            .map(u8::to_string)
            .collect::<Vec<_>>()
            .join("."),
        "ipv6" => {
            let b = bytes(v);
            let mut a = [0u8; 16];
            if b.len() == 16 {
                a.copy_from_slice(&b);
            }
            std::net::Ipv6Addr::from(a).to_string()
        }
        "file-sha256" => hex::encode(bytes(v)),
        "social-account" => format!("{}: {}", text(v, "platform"), text(v, "handle")),
        "ad-id" => format!("{}: {}", text(v, "network"), text(v, "id")),
        _ => v
            .as_str()
            .map_or_else(|| v.to_string(), ToString::to_string),
    };
    (ty, value)
}

/// `GET /alerts/{id}`: one alert, its history and sightings.
pub async fn detail(
    State(console): State<Console>,
    authed: Authed,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let d = match find(&console, parse_id(&id)?).await? {
        Found::State(d) => d,
        Found::Amendment(original) => {
            return Ok(Redirect::to(&format!("/alerts/{original}")).into_response());
        }
        Found::Missing => return Err(no_such_alert()),
    };
    let topics = console.topics().await?;
    let s = &d.state;
    let current = &s["current"];
    let org = text(s, "org");
    let org_name = d.orgs.get(org).map_or("", String::as_str);
    let topic = text(s, "topic");
    let publishable: Vec<&crate::core::TopicInfo> =
        topics.iter().filter(|t| t.can_publish).collect();
    let csrf = authed.csrf(&console);
    let sighting_csrf = authed.csrf(&console);
    let list = |key: &str| -> Vec<String> {
        current[key]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| {
                v.as_str()
                    .map_or_else(|| v.to_string(), ToString::to_string)
            })
            .collect()
    };
    let body = html! {
        p { a href="/alerts" { "← all alerts" } }
        h1.alert-title id="alert-title" { (text(current, "title")) }
        p.badges {
            (tlp_badge(text(s, "tlp")))
            " " span.kind { (text(current, "kind")) }
            " " span class={ "state state-" (text(s, "state")) } { (text(s, "state")) }
            " " span.severity { "severity " (text(current, "severity")) }
            " " span.confidence { "confidence " (current["confidence"].as_u64().unwrap_or(0)) }
        }
        dl.facts {
            dt { "Author org" } dd id="author-org" { (org) @if !org_name.is_empty() { " (" (org_name) ")" } }
            @match &d.envelope {
                Some((node, seq, charter, verified)) => {
                    dt { "Author node" } dd.mono { (node) }
                    dt { "Signature" } dd id="signature" {
                        @if *verified { span.ok { "verified (Ed25519, checked again now)" } }
                        @else { span.bad { "NOT valid" } }
                    }
                    dt { "Chain position" } dd { "seq " (seq) " on topic " (topic) }
                    dt { "Charter version" } dd { (charter) }
                }
                None => { dt { "Envelope" } dd.bad { "not held" } }
            }
            dt { "Topic" } dd { (topic) }
            dt { "Created" } dd { (layout::time(s["created_ms"].as_i64().unwrap_or(0))) }
            dt { "Modified" } dd { (layout::time(s["modified_ms"].as_i64().unwrap_or(0))) }
            dt { "Id" } dd.mono { (text(s, "id")) }
        }
        h2 { "Description" }
        p.description id="description" { (text(current, "description")) }
        h2 { "Observables" }
        @let observables = current["observables"].as_array().cloned().unwrap_or_default();
        @if observables.is_empty() { p.empty { "None." } }
        @else {
            table.observables id="observables" {
                thead { tr { th { "Type" } th { "Value" } } }
                tbody {
                    @for o in &observables {
                        @let (ty, value) = observable(o);
                        tr { td { (ty) } td.mono { (value) } }
                    }
                }
            }
        }
        @let labels = list("labels");
        @let references = list("references");
        @if !labels.is_empty() { p { "Labels: " @for l in &labels { span.label { (l) } " " } } }
        @if !references.is_empty() {
            h2 { "References" }
            ul.references { @for r in &references { li.mono { (r) } } }
        }
        h2 { "History" }
        table.history id="history" {
            thead { tr { th { "Time" } th { "Kind" } th { "TLP" } th { "Title or reason" } th { "Envelope" } } }
            tbody {
                @for h in s["history"].as_array().into_iter().flatten() {
                    tr {
                        td { (layout::time(h["timestamp_ms"].as_i64().unwrap_or(0))) }
                        td { (text(h, "kind")) }
                        td { (tlp_badge(text(h, "tlp"))) }
                        td {
                            @if text(h, "kind") == "retraction" {
                                "retracted: " (text(&h["content"]["retraction"], "reason"))
                            } @else { (text(alert_json(&h["content"]), "title")) }
                        }
                        td.mono { (text(h, "id").get(..16).unwrap_or("")) "…" }
                    }
                }
            }
        }
        h2 { "Sightings by other orgs" }
        @let sightings = s["sightings"].as_array().cloned().unwrap_or_default();
        @if sightings.is_empty() { p.empty id="no-sightings" { "None yet." } }
        @else {
            ul.sightings id="sightings" {
                @for g in &sightings {
                    li {
                        span.org { (text(g, "org")) } " · "
                        (layout::time(g["timestamp_ms"].as_i64().unwrap_or(0))) " · "
                        a href={ "/alerts/" (text(g, "id")) } { (text(g, "title")) }
                    }
                }
            }
        }
        h2 { "Export" }
        p.exports {
            a.button href={ "/alerts/" (text(s, "id")) "/stix" } download id="export-stix" { "STIX 2.1 bundle" }
            " "
            a.button href={ "/alerts/" (text(s, "id")) "/misp" } download id="export-misp" { "MISP event" }
            " "
            a.button href={ "/alerts/" (text(s, "id")) "/taxii" } download id="export-taxii" { "TAXII 2.1 object" }
        }
        h2 { "Record a sighting" }
        @if publishable.is_empty() {
            p.empty { "This org may publish on no topic." }
        } @else {
            form.sighting method="post" action={ "/alerts/" (text(s, "id")) "/sighting" } {
                input type="hidden" name="csrf" value=(sighting_csrf);
                label for="s-topic" { "Topic" }
                select id="s-topic" name="topic" {
                    @for t in &publishable {
                        option value=(t.name) selected[t.name == topic] { (t.name) " (max " (t.max_tlp) ")" }
                    }
                }
                label for="s-tlp" { "TLP" }
                select id="s-tlp" name="tlp" {
                    @for t in TLPS { option value=(t) selected[t == text(s, "tlp")] { (t) } }
                }
                label for="s-title" { "What you saw" }
                input type="text" id="s-title" name="title" maxlength="256" required value="Seen on our systems";
                button type="submit" id="record-sighting" { "Record sighting" }
            }
        }
    };
    Ok(layout::respond(
        StatusCode::OK,
        layout::page(text(current, "title"), Tab::Alerts, Some(&csrf), body),
    ))
}

fn no_such_alert() -> PageError {
    PageError::new(
        StatusCode::NOT_FOUND,
        "No such alert",
        "This node holds no readable alert with that id.",
    )
}

/// One alert's state (typed, for the exporters), with the network and org directory.
async fn state_for_export(
    console: &Console,
    id: &str,
) -> Result<
    (
        crate::views::lifecycle::AlertState,
        alertmesh_protocol::NetworkId,
        Vec<crate::stix::OrgInfo>,
        u64,
    ),
    PageError,
> {
    let Found::State(d) = find(console, parse_id(id)?).await? else {
        return Err(no_such_alert());
    };
    let (orgs, genesis_ms) = read_db(&console.api.data_dir, |conn| {
        let charters = super::util::charters(conn)?;
        let genesis_ms = charters.first().map_or(0, |c| c.charter().created_ms);
        let mut orgs = std::collections::BTreeMap::new();
        for c in &charters {
            for m in &c.charter().members {
                orgs.insert(
                    m.org_id.to_string(),
                    crate::stix::OrgInfo {
                        org_id: m.org_id.to_string(),
                        name: m.name.clone(),
                        roles: m.roles.clone(),
                    },
                );
            }
        }
        Ok((orgs.into_values().collect(), genesis_ms))
    })
    .await?;
    Ok((d.typed, d.network, orgs, genesis_ms))
}

/// `GET /alerts/{id}/stix`: the alert as a STIX 2.1 bundle.
pub async fn stix(
    State(console): State<Console>,
    _authed: Authed,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let (state, network, orgs, genesis_ms) = state_for_export(&console, &id).await?;
    let bundle = crate::views::bundle::bundle(&network, genesis_ms, &orgs, &[state]);
    Ok(super::util::download(
        &format!("alert-{}.stix.json", &id[..16]),
        "application/stix+json;version=2.1",
        serde_json::to_vec_pretty(&bundle).unwrap_or_default(),
    ))
}

/// `GET /alerts/{id}/misp`: the alert as a MISP event.
pub async fn misp(
    State(console): State<Console>,
    _authed: Authed,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let (state, network, orgs, _) = state_for_export(&console, &id).await?;
    let names = orgs.into_iter().map(|o| (o.org_id, o.name)).collect();
    let event = crate::misp::event(&network, &names, &state);
    Ok(super::util::download(
        &format!("alert-{}.misp.json", &id[..16]),
        "application/json",
        serde_json::to_vec_pretty(&event).unwrap_or_default(),
    ))
}

/// `GET /alerts/{id}/taxii`: every version of the alert's STIX object as its topic's TAXII
/// collection serves it, in a TAXII envelope.
pub async fn taxii(
    State(console): State<Console>,
    _authed: Authed,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let (state, network, _, _) = state_for_export(&console, &id).await?;
    let envelope = EnvelopeId(parse_id(&id)?);
    let objects = read_db(&console.api.data_dir, move |conn| {
        let Some(served) = crate::store::taxii::served_id_of(conn, &envelope)? else {
            return Ok(Vec::new());
        };
        let query = crate::store::taxii::Query {
            topic: state.topic,
            after_us: 0,
            ids: vec![served],
            types: vec![],
            versions: crate::store::taxii::Versions {
                all: true,
                ..Default::default()
            },
            limit: crate::taxii::pages::MAX_MATCH_VALUES,
        };
        let page = crate::taxii::pages::page(conn, &network, &query)?;
        Ok(page.items.into_iter().map(|i| i.object).collect::<Vec<_>>())
    })
    .await?;
    Ok(super::util::download(
        &format!("alert-{}.taxii.json", &id[..16]),
        "application/taxii+json;version=2.1",
        serde_json::to_vec_pretty(&json!({ "objects": objects })).unwrap_or_default(),
    ))
}

/// Body of `POST /alerts/{id}/sighting`.
#[derive(Deserialize)]
pub struct SightingForm {
    csrf: Option<String>,
    topic: String,
    tlp: String,
    title: String,
}

/// `POST /alerts/{id}/sighting`: publishes a sighting of the alert.
pub async fn sighting(
    State(console): State<Console>,
    authed: Authed,
    Path(id): Path<String>,
    form: FormResult<SightingForm>,
) -> Result<Response, PageError> {
    let form = form_or_page(form)?;
    authed.check_csrf(&console, form.csrf.as_deref())?;
    parse_id(&id)?;
    for (name, value) in [
        ("topic", &form.topic),
        ("tlp", &form.tlp),
        ("title", &form.title),
    ] {
        check_len(name, value, 256)?;
    }
    let content = json!({"alert": {
        "kind": "sighting",
        "title": form.title,
        "description": "",
        "severity": "medium",
        "confidence": 80,
        "observables": [],
        "labels": [],
        "references": [],
        "valid_from_ms": crate::clock::now_ms(),
        "valid_until_ms": null,
        "related": [id],
    }});
    super::publish::publish_json(&console, &form.topic, &form.tlp, content).await
}
