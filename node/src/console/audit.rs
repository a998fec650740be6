//! The audit screen: evidence and chain gaps, the last verification's result, running
//! `audit verify` on the node's data, and downloading a signed export.

use super::layout::{self, PageError, Tab};
use super::login::CsrfOnly;
use super::util::{FormResult, form_or_page};
use super::{Authed, Console};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;

/// The result of the last `audit verify` run from the console.
#[derive(Debug, Clone)]
pub struct Verification {
    /// When it finished.
    at_ms: u64,
    /// No problem found.
    ok: bool,
    /// Problems found.
    problems: u64,
    /// The report as `alertmesh audit verify` prints it.
    text: String,
}

/// `GET /audit`.
pub async fn page(State(console): State<Console>, authed: Authed) -> Result<Response, PageError> {
    let status = console.status().await?;
    let dir = console.api.data_dir.clone();
    let evidence = super::util::blocking(move || crate::audit::evidence_reports(&dir)).await?;
    let last = console
        .last_verify
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let csrf = authed.csrf(&console);
    let verify_csrf = authed.csrf(&console);
    let export_csrf = authed.csrf(&console);
    let body = html! {
        h1 { "Audit" }
        (super::network::evidence_panel(&evidence))
        p { "Chain gaps (envelopes missing from an author's chain): "
            strong class=[(status.chain_gaps > 0).then_some("bad")] id="chain-gaps" { (status.chain_gaps) } }
        h2 { "Verification" }
        @match &last {
            None => p id="verify-result" { "Not run from this console since the node started." },
            Some(v) => {
                p id="verify-result" class=(if v.ok { "ok" } else { "bad" }) {
                    (if v.ok { "PASSED" } else { "FAILED" }) " at " (layout::time(v.at_ms as i64))
                    " — " (v.problems) " problem(s)"
                }
                pre.report { (v.text) }
            }
        }
        form method="post" action="/audit/verify" {
            input type="hidden" name="csrf" value=(verify_csrf);
            button type="submit" id="run-verify" { "Run audit verify on this node's data" }
        }
        h2 { "Signed export" }
        p { "The node's whole log (charters, certificates, envelopes, evidence), signed with its key, for "
            code { "alertmesh audit verify <file>" } " by an auditor." }
        form method="post" action="/audit/export" {
            input type="hidden" name="csrf" value=(export_csrf);
            button type="submit" id="download-export" { "Download signed export" }
        }
    };
    Ok(layout::respond(
        StatusCode::OK,
        layout::page("Audit", Tab::Audit, Some(&csrf), body),
    ))
}

/// `POST /audit/verify`: runs the verifier over the data directory.
pub async fn verify(
    State(console): State<Console>,
    authed: Authed,
    form: FormResult<CsrfOnly>,
) -> Result<Response, PageError> {
    let form = form_or_page(form)?;
    authed.check_csrf(&console, form.csrf.as_deref())?;
    let config = console.config.clone();
    let v = super::util::blocking(move || -> anyhow::Result<Verification> {
        let source = crate::audit::Source::from_config(&config)?;
        let report = crate::audit::verify_data_dir(&source, false)?;
        Ok(Verification {
            at_ms: crate::clock::now_ms(),
            ok: report.ok,
            problems: report.problems,
            text: crate::audit::render(&config.data_dir.display().to_string(), &report),
        })
    })
    .await?;
    *console
        .last_verify
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(v);
    Ok(Redirect::to("/audit").into_response())
}

/// `POST /audit/export`: a signed export of the node's log, as a download.
pub async fn export(
    State(console): State<Console>,
    authed: Authed,
    form: FormResult<CsrfOnly>,
) -> Result<Response, PageError> {
    let form = form_or_page(form)?;
    authed.check_csrf(&console, form.csrf.as_deref())?;
    let config = console.config.clone();
    let bytes = super::util::blocking(move || -> anyhow::Result<Vec<u8>> {
        let source = crate::audit::Source::from_config(&config)?;
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("export.amx");
        crate::audit::export(&source, &crate::audit::ExportOptions::default(), &path)?;
        Ok(std::fs::read(&path)?)
    })
    .await?;
    let name = format!("alertmesh-export-{}.amx", crate::clock::now_ms());
    Ok(super::util::download(
        &name,
        "application/octet-stream",
        bytes,
    ))
}
