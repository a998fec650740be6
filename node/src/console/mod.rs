//! The operator console: server-rendered pages on the node's loopback API address at
//! `/`, safe against hostile alert content.
//!
//! - Pages are [`maud`] templates: every value is HTML-escaped where it is inserted.
//!   The one script (`assets/console.js`) adds live alerts with `textContent` only.
//! - Login with the node's API token opens a server-side session ([`session`]); its
//!   cookie is `HttpOnly`, `SameSite=Strict` and expires. Every state-changing form
//!   carries a single-use CSRF token.
//! - Every console response carries a strict Content-Security-Policy (no inline script,
//!   nothing from other origins), `X-Content-Type-Options`, `Referrer-Policy`, frame
//!   denial and `Cache-Control: no-store`. All assets are built into the binary.
//!
//! The `/v1/*`, TAXII and MISP routes keep their bearer-token authentication; the
//! console's routes use the session cookie instead.
//!
//! Screens, one module each: [`alerts`] (the live list), [`alert`] (one alert, its
//! exports, sightings),
//! [`publish`], [`network`], [`governance`], [`audit`]; [`login`] (login and logout);
//! [`layout`] (the page shell, error pages, badges).

mod alert;
mod alerts;
mod audit;
mod governance;
mod layout;
mod login;
mod network;
mod publish;
pub mod session;
mod util;

use crate::api::ApiState;
use crate::config::Config;
use axum::Router;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use layout::PageError;
use session::{SESSION_COOKIE, SessionError, Sessions};
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub use layout::not_found_page;

/// Largest form body the console accepts.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// The Content-Security-Policy of every console response.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// What the console's handlers share.
#[derive(Clone)]
pub struct Console {
    api: ApiState,
    config: Arc<Config>,
    sessions: Arc<Mutex<Sessions>>,
    last_verify: Arc<Mutex<Option<audit::Verification>>>,
}

impl Console {
    /// The console of a node: its API state and its config (for the audit's keys).
    pub fn new(api: ApiState, config: Config) -> Self {
        Self {
            api,
            config: Arc::new(config),
            sessions: Arc::new(Mutex::new(Sessions::default())),
            last_verify: Arc::new(Mutex::new(None)),
        }
    }

    /// The node's status, or the "node unavailable" page.
    async fn status(&self) -> Result<crate::core::Status, PageError> {
        self.api.core.status().await.map_err(util::unavailable)
    }

    /// The topics with this org's rights, or the "node unavailable" page.
    async fn topics(&self) -> Result<Vec<crate::core::TopicInfo>, PageError> {
        self.api.core.topics().await.map_err(util::unavailable)
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, Sessions> {
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The console's routes, with their own state; merged into the API's router.
pub fn router<S: Clone + Send + Sync + 'static>(console: Console) -> Router<S> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/alerts") }))
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/alerts", get(alerts::list))
        .route("/alerts/events", get(alerts::events))
        .route("/alerts/{id}", get(alert::detail))
        .route("/alerts/{id}/stix", get(alert::stix))
        .route("/alerts/{id}/misp", get(alert::misp))
        .route("/alerts/{id}/taxii", get(alert::taxii))
        .route("/alerts/{id}/sighting", post(alert::sighting))
        .route("/publish", get(publish::form).post(publish::submit))
        .route("/network", get(network::page))
        .route("/governance", get(governance::page))
        .route("/governance/charter", post(governance::submit))
        .route("/audit", get(audit::page))
        .route("/audit/verify", post(audit::verify))
        .route("/audit/export", post(audit::export))
        .route("/assets/console.css", get(layout::css))
        .route("/assets/console.js", get(layout::js))
        .route("/assets/icon.svg", get(layout::icon))
        .route("/favicon.ico", get(layout::icon))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(console)
}

/// Adds the console's security headers to a response.
pub fn with_security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    response
}

async fn security_headers(req: Request, next: Next) -> Response {
    with_security_headers(next.run(req).await)
}

/// Whether a request comes from a browser asking for a page (not an API client).
pub fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

/// A cookie's value from the request's `Cookie` headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A logged-in request: its session id.
pub struct Authed {
    id: String,
}

impl Authed {
    /// A fresh single-use CSRF token for a form on the page being rendered.
    fn csrf(&self, console: &Console) -> String {
        console.sessions().issue_csrf(&self.id).unwrap_or_default()
    }

    /// Whether the session is still logged in (not ended, not expired).
    fn is_valid(&self, console: &Console) -> bool {
        console
            .sessions()
            .check(Some(&self.id), Instant::now())
            .is_ok()
    }

    /// Consumes the CSRF token a form carried; refused if missing, unknown or used.
    fn check_csrf(&self, console: &Console, token: Option<&str>) -> Result<(), PageError> {
        console
            .sessions()
            .take_csrf(&self.id, token)
            .map_err(session_error)
    }
}

impl FromRequestParts<Console> for Authed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Self, Response> {
        let id = cookie(&parts.headers, SESSION_COOKIE);
        match console.sessions().check(id, Instant::now()) {
            Ok(()) => Ok(Authed {
                id: id.unwrap_or_default().to_string(),
            }),
            Err(SessionError::Missing) if parts.method == axum::http::Method::GET => {
                Err(Redirect::to("/login").into_response())
            }
            Err(e) => Err(session_error(e).into_response()),
        }
    }
}

/// The error page of a refused session or CSRF token (the session cookie is cleared
/// when the session itself is not valid).
fn session_error(e: SessionError) -> PageError {
    let csrf = matches!(e, SessionError::CsrfMissing | SessionError::CsrfInvalid);
    let status = if csrf {
        StatusCode::FORBIDDEN
    } else {
        StatusCode::UNAUTHORIZED
    };
    let page = PageError::new(
        status,
        "Request refused",
        format!("{e}. Nothing was changed."),
    );
    if csrf { page } else { page.clearing_session() }
}
