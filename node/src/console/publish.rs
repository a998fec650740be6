//! The publish form: only the topics this org may publish on and the TLP levels the
//! charter allows there; one field per observable type. The core checks the charter
//! again, and a refusal is shown with its reason.

use super::alerts::{KINDS, TLPS};
use super::layout::{self, PageError, Tab};
use super::util::{FormResult, check_len, form_or_page};
use super::{Authed, Console};
use alertmesh_protocol::{Content, Tlp};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;
use serde_json::{Value, json};

/// Longest title accepted.
const MAX_TITLE: usize = 256;
/// Longest text field accepted (description, observables, references).
const MAX_TEXT: usize = 16 * 1024;

/// The observable fields: form name, protocol type, label, placeholder.
const OBSERVABLES: [(&str, &str, &str); 10] = [
    ("domain", "Domains", "vote-county-example.com"),
    ("url", "URLs", "https://vote-county-example.com/login"),
    ("ipv4", "IPv4 addresses", "198.51.100.7"),
    ("ipv6", "IPv6 addresses", "2001:db8::7"),
    (
        "email",
        "Email addresses",
        "elections@vote-county-example.com",
    ),
    ("file-sha256", "File SHA-256 hashes", "64 hex digits"),
    ("phone", "Phone numbers (E.164)", "+15555550100"),
    ("hashtag", "Hashtags (without #)", "stopthecount"),
    (
        "social-account",
        "Social accounts (platform:handle)",
        "Twitter:@fake_poll_news",
    ),
    ("ad-id", "Ad ids (network:id)", "example-ads:12345"),
];

/// `GET /publish`.
pub async fn form(State(console): State<Console>, authed: Authed) -> Result<Response, PageError> {
    let topics = console.topics().await?;
    let publishable: Vec<_> = topics.iter().filter(|t| t.can_publish).collect();
    let max = publishable.iter().map(|t| t.max_tlp).max();
    let tlps: Vec<&str> = TLPS
        .iter()
        .zip([
            Tlp::Clear,
            Tlp::Green,
            Tlp::Amber,
            Tlp::AmberStrict,
            Tlp::Red,
        ])
        .filter(|(_, t)| max.is_some_and(|m| *t <= m))
        .map(|(l, _)| *l)
        .collect();
    let csrf = authed.csrf(&console);
    let form_csrf = authed.csrf(&console);
    let body = html! {
        h1 { "Publish an alert" }
        @if publishable.is_empty() {
            p.empty { "The charter lets this org publish on no topic." }
        } @else {
            form.publish method="post" action="/publish" {
                input type="hidden" name="csrf" value=(form_csrf);
                fieldset {
                    legend { "Where and how" }
                    label for="topic" { "Topic" }
                    select id="topic" name="topic" {
                        @for t in &publishable { option value=(t.name) { (t.name) " (max " (t.max_tlp) ")" } }
                    }
                    label for="tlp" { "TLP" }
                    select id="tlp" name="tlp" {
                        @for t in &tlps { option value=(t) { (t) } }
                    }
                    label for="kind" { "Kind" }
                    select id="kind" name="kind" { @for k in KINDS { option value=(k) { (k) } } }
                    label for="severity" { "Severity" }
                    select id="severity" name="severity" {
                        @for s in ["low", "medium", "high", "critical"] { option value=(s) selected[s == "medium"] { (s) } }
                    }
                    label for="confidence" { "Confidence (0–100)" }
                    input type="number" id="confidence" name="confidence" min="0" max="100" value="50";
                }
                fieldset {
                    legend { "What" }
                    label for="title" { "Title" }
                    input type="text" id="title" name="title" required maxlength=(MAX_TITLE);
                    label for="description" { "Description" }
                    textarea id="description" name="description" rows="4" {}
                    label for="labels" { "Labels (comma-separated)" }
                    input type="text" id="labels" name="labels";
                    label for="references" { "References (one per line)" }
                    textarea id="references" name="references" rows="2" {}
                }
                fieldset {
                    legend { "Observables (one per line)" }
                    @for (name, label, example) in OBSERVABLES {
                        label for={ "obs-" (name) } { (label) }
                        textarea id={ "obs-" (name) } name=(name) rows="1" placeholder=(example) {}
                    }
                }
                button type="submit" id="publish" { "Publish" }
            }
        }
    };
    Ok(layout::respond(
        StatusCode::OK,
        layout::page("Publish", Tab::Publish, Some(&csrf), body),
    ))
}

/// Body of `POST /publish`.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct PublishForm {
    csrf: Option<String>,
    topic: String,
    tlp: String,
    kind: String,
    severity: String,
    confidence: String,
    title: String,
    description: String,
    labels: String,
    references: String,
    domain: String,
    url: String,
    ipv4: String,
    ipv6: String,
    email: String,
    #[serde(rename = "file-sha256")]
    file_sha256: String,
    phone: String,
    hashtag: String,
    #[serde(rename = "social-account")]
    social_account: String,
    #[serde(rename = "ad-id")]
    ad_id: String,
}

fn lines(s: &str) -> impl Iterator<Item = &str> {
    s.lines().map(str::trim).filter(|l| !l.is_empty())
}

fn refused(why: String) -> PageError {
    PageError::new(StatusCode::UNPROCESSABLE_ENTITY, "Not published", why)
}

/// The observables of the form's fields, in the protocol's JSON.
fn observables(f: &PublishForm) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for (ty, field) in [
        ("domain", &f.domain),
        ("url", &f.url),
        ("email", &f.email),
        ("phone", &f.phone),
        ("hashtag", &f.hashtag),
    ] {
        out.extend(lines(field).map(|v| json!({"type": ty, "value": v})));
    }
    for v in lines(&f.ipv4) {
        let ip: std::net::Ipv4Addr = v
            .parse()
            .map_err(|_| format!("{v:?} is not an IPv4 address"))?;
        out.push(json!({"type": "ipv4", "value": ip.octets()}));
    }
    for v in lines(&f.ipv6) {
        let ip: std::net::Ipv6Addr = v
            .parse()
            .map_err(|_| format!("{v:?} is not an IPv6 address"))?;
        out.push(json!({"type": "ipv6", "value": ip.octets()}));
    }
    for v in lines(&f.file_sha256) {
        let bytes = hex::decode(v)
            .ok()
            .filter(|b| b.len() == 32)
            .ok_or_else(|| format!("{v:?} is not a SHA-256 hash (64 hex digits)"))?;
        out.push(json!({"type": "file-sha256", "value": bytes}));
    }
    for v in lines(&f.social_account) {
        let (platform, handle) = v
            .split_once(':')
            .ok_or_else(|| format!("{v:?}: write a social account as platform:handle"))?;
        out.push(json!({"type": "social-account", "value": {"platform": platform.trim(), "handle": handle.trim()}}));
    }
    for v in lines(&f.ad_id) {
        let (network, id) = v
            .split_once(':')
            .ok_or_else(|| format!("{v:?}: write an ad id as network:id"))?;
        out.push(json!({"type": "ad-id", "value": {"network": network.trim(), "id": id.trim()}}));
    }
    Ok(out)
}

/// `POST /publish`.
pub async fn submit(
    State(console): State<Console>,
    authed: Authed,
    form: FormResult<PublishForm>,
) -> Result<Response, PageError> {
    let f = form_or_page(form)?;
    authed.check_csrf(&console, f.csrf.as_deref())?;
    let short = [
        ("topic", &f.topic),
        ("tlp", &f.tlp),
        ("kind", &f.kind),
        ("severity", &f.severity),
        ("confidence", &f.confidence),
        ("title", &f.title),
    ];
    let long = [
        ("description", &f.description),
        ("labels", &f.labels),
        ("references", &f.references),
        ("domain", &f.domain),
        ("url", &f.url),
        ("ipv4", &f.ipv4),
        ("ipv6", &f.ipv6),
        ("email", &f.email),
        ("file-sha256", &f.file_sha256),
        ("phone", &f.phone),
        ("hashtag", &f.hashtag),
        ("social-account", &f.social_account),
        ("ad-id", &f.ad_id),
    ];
    for (name, value) in short {
        check_len(name, value, MAX_TITLE)?;
    }
    for (name, value) in long {
        check_len(name, value, MAX_TEXT)?;
    }
    if f.title.trim().is_empty() {
        return Err(refused("An alert needs a title.".into()));
    }
    let Ok(confidence) = f.confidence.trim().parse::<u8>() else {
        return Err(refused(format!(
            "Confidence {:?} is not a number from 0 to 100.",
            f.confidence
        )));
    };
    let observables = observables(&f).map_err(refused)?;
    let content = json!({"alert": {
        "kind": f.kind,
        "title": f.title.trim(),
        "description": f.description,
        "severity": f.severity,
        "confidence": confidence,
        "observables": observables,
        "labels": f.labels.split(',').map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>(),
        "references": lines(&f.references).collect::<Vec<_>>(),
        "valid_from_ms": crate::clock::now_ms(),
        "valid_until_ms": null,
        "related": [],
    }});
    publish_json(&console, &f.topic, &f.tlp, content).await
}

/// Publishes content given as the API's JSON; on success shows the new alert, else the
/// refusal with its reason.
pub async fn publish_json(
    console: &Console,
    topic: &str,
    tlp: &str,
    content: Value,
) -> Result<Response, PageError> {
    let Ok(tlp) = serde_json::from_value::<Tlp>(json!(tlp.trim_start_matches("TLP:"))) else {
        return Err(refused(format!("{tlp:?} is not a TLP level.")));
    };
    let content: Content = serde_json::from_value(content)
        .map_err(|e| refused(format!("The alert is not valid: {e}.")))?;
    let answer = console
        .api
        .core
        .publish(topic.to_string(), tlp, content)
        .await
        .map_err(super::util::unavailable)?;
    match answer {
        Ok(receipt) => {
            Ok(Redirect::to(&format!("/alerts/{}", hex::encode(receipt.id.0))).into_response())
        }
        Err(e) => Err(PageError::new(
            crate::http::publish_status(&e),
            "Not published",
            format!("The node refused to publish: {e}."),
        )),
    }
}
