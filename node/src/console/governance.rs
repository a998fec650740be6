//! The governance screen: members, governors and threshold; topics with readers and
//! publishers; the charter history; forks; and handing in a signed proposal.

use super::layout::{self, PageError, Tab, tlp_badge};
use super::util::{FormResult, check_len, form_or_page, read_db};
use super::{Authed, Console};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

/// Largest charter accepted from the form, in hex digits.
const MAX_CHARTER_HEX: usize = 60 * 1024;

/// `GET /governance`.
pub async fn page(State(console): State<Console>, authed: Authed) -> Result<Response, PageError> {
    let status = console.status().await?;
    let charters = read_db(&console.api.data_dir, super::util::charters).await?;
    let current = charters
        .iter()
        .find(|c| c.charter().version == status.charter_version)
        .or(charters.last());
    let csrf = authed.csrf(&console);
    let form_csrf = authed.csrf(&console);
    let body = html! {
        h1 { "Governance" }
        @if !status.charter_forks.is_empty() {
            section.alarm id="forks" {
                h2 { "Fork" }
                p { "Two different charters claim version(s) "
                    (status.charter_forks.iter().map(u64::to_string).collect::<Vec<_>>().join(", "))
                    ". This node keeps the one it adopted first; the governors must resolve it." }
            }
        }
        @if let Some(c) = current {
            @let ch = c.charter();
            p { "Charter version " strong id="charter-version" { (ch.version) } " of network " (ch.network_name)
                ", hash " span.mono { (c.hash().to_hex()) } }
            h2 { "Members" }
            p { "Governors: " (ch.governors.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))
                " · threshold " strong { (ch.threshold) } " signature(s)" }
            table.members id="members" {
                thead { tr { th { "Org" } th { "Name" } th { "Roles" } th { "Governor" } } }
                tbody {
                    @for m in &ch.members {
                        tr {
                            td { (m.org_id) }
                            td { (m.name) }
                            td { (m.roles.join(", ")) }
                            td { (if ch.governors.contains(&m.org_id) { "yes" } else { "" }) }
                        }
                    }
                }
            }
            h2 { "Topics" }
            table.topics id="topics" {
                thead { tr { th { "Topic" } th { "Max TLP" } th { "Readers" } th { "Publishers" } } }
                tbody {
                    @for t in &ch.topics {
                        tr {
                            td { (t.name) }
                            td { (tlp_badge(&t.max_tlp.to_string())) }
                            td { (t.readers.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")) }
                            td { (t.publishers.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")) }
                        }
                    }
                }
            }
            @if !ch.revoked_certs.is_empty() {
                p { (ch.revoked_certs.len()) " node certificate(s) revoked." }
            }
        }
        h2 { "Charter history" }
        table.history id="charter-history" {
            thead { tr { th { "Version" } th { "Created" } th { "Signed by" } th { "Members" } th { "Topics" } th { "Cut-offs" } } }
            tbody {
                @for c in charters.iter().rev() {
                    @let ch = c.charter();
                    tr {
                        td { (ch.version) }
                        td { (layout::time(ch.created_ms as i64)) }
                        td { (c.signatures().iter().map(|s| s.org_id.to_string()).collect::<Vec<_>>().join(", ")) }
                        td { (ch.members.len()) }
                        td { (ch.topics.len()) }
                        td { (ch.cutoffs.len()) }
                    }
                }
            }
        }
        h2 { "Submit a proposal" }
        p { "A proposal is written with " code { "alertmesh charter propose" } " and signed by the governors with "
            code { "alertmesh charter sign" } ". Once it carries " (current.map_or(0, |c| c.charter().threshold))
            " signature(s), paste the file's bytes in hex (" code { "xxd -p charter-v2.bin | tr -d '\\n'" }
            ") to adopt and gossip it." }
        form.charter method="post" action="/governance/charter" {
            input type="hidden" name="csrf" value=(form_csrf);
            label for="charter" { "Signed charter (hex)" }
            textarea id="charter" name="charter" rows="3" required {}
            button type="submit" id="submit-charter" { "Submit charter" }
        }
    };
    Ok(layout::respond(
        StatusCode::OK,
        layout::page("Governance", Tab::Governance, Some(&csrf), body),
    ))
}

/// Body of `POST /governance/charter`.
#[derive(Deserialize)]
pub struct CharterForm {
    csrf: Option<String>,
    charter: String,
}

/// `POST /governance/charter`: hands a signed charter to the node.
pub async fn submit(
    State(console): State<Console>,
    authed: Authed,
    form: FormResult<CharterForm>,
) -> Result<Response, PageError> {
    let form = form_or_page(form)?;
    authed.check_csrf(&console, form.csrf.as_deref())?;
    check_len("charter", &form.charter, MAX_CHARTER_HEX)?;
    let hex_text: String = form
        .charter
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let Ok(bytes) = hex::decode(&hex_text) else {
        return Err(PageError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Charter refused",
            "The charter must be given in hexadecimal.",
        ));
    };
    match console
        .api
        .core
        .submit_charter(bytes)
        .await
        .map_err(super::util::unavailable)?
    {
        Ok(_) => Ok(Redirect::to("/governance").into_response()),
        Err(e) => Err(PageError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Charter refused",
            format!("The node did not adopt the charter: {e}."),
        )),
    }
}
