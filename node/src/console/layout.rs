//! The page shell (navigation, logout), error pages, TLP badges and the built-in assets.

use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

/// The screens in the navigation bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    /// The live alert list.
    Alerts,
    /// The publish form.
    Publish,
    /// Peers and sync.
    Network,
    /// Charter, members, topics.
    Governance,
    /// Evidence, gaps, verification.
    Audit,
    /// No tab (login, errors).
    None,
}

const TABS: [(Tab, &str, &str); 5] = [
    (Tab::Alerts, "/alerts", "Alerts"),
    (Tab::Publish, "/publish", "Publish"),
    (Tab::Network, "/network", "Network"),
    (Tab::Governance, "/governance", "Governance"),
    (Tab::Audit, "/audit", "Audit"),
];

/// A whole page. `logout_csrf` is the CSRF token of the logout form (logged in only).
pub fn page(title: &str, tab: Tab, logout_csrf: Option<&str>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                title { (title) " — alertmesh console" }
                link rel="icon" href="/assets/icon.svg" type="image/svg+xml";
                link rel="stylesheet" href="/assets/console.css";
                script src="/assets/console.js" defer {}
            }
            body {
                header.top {
                    span.brand { "alertmesh" }
                    @if let Some(csrf) = logout_csrf {
                        nav {
                            @for (t, href, label) in TABS {
                                a href=(href) class=[(t == tab).then_some("active")] { (label) }
                            }
                        }
                        form.logout method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(csrf);
                            button type="submit" id="logout" { "Log out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// A page response with a status.
pub fn respond(status: StatusCode, markup: Markup) -> Response {
    (status, Html(markup.into_string())).into_response()
}

/// A refused or failed request, shown as a clear error page.
#[derive(Debug)]
pub struct PageError {
    status: StatusCode,
    title: &'static str,
    message: String,
    clear_session: bool,
}

impl PageError {
    /// An error page with a status, a title and the reason.
    pub fn new(status: StatusCode, title: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            title,
            message: message.into(),
            clear_session: false,
        }
    }

    /// The same, also deleting the session cookie.
    pub fn clearing_session(mut self) -> Self {
        self.clear_session = true;
        self
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let mut response = error_page(self.status, self.title, &self.message);
        if self.clear_session {
            response.headers_mut().insert(
                header::SET_COOKIE,
                super::login::clear_cookie(super::session::SESSION_COOKIE),
            );
        }
        response
    }
}

/// A clear error page.
pub fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    let body = html! {
        section.error {
            h1 { (status.as_u16()) " " (title) }
            p.reason { (message) }
            p { a href="/alerts" { "Back to the console" } " · " a href="/login" { "Log in" } }
        }
    };
    respond(status, page(title, Tab::None, None, body))
}

/// The page of an unknown route, with the console's security headers.
pub fn not_found_page() -> Response {
    super::with_security_headers(error_page(
        StatusCode::NOT_FOUND,
        "Not found",
        "There is no such page on this console.",
    ))
}

/// The CSS class of a TLP label (`TLP:AMBER+STRICT` → `tlp-amber-strict`).
pub fn tlp_class(label: &str) -> &'static str {
    match label.trim_start_matches("TLP:") {
        "RED" => "tlp tlp-red",
        "AMBER+STRICT" => "tlp tlp-amber-strict",
        "AMBER" => "tlp tlp-amber",
        "GREEN" => "tlp tlp-green",
        "CLEAR" | "WHITE" => "tlp tlp-clear",
        _ => "tlp",
    }
}

/// A TLP badge in the FIRST TLP 2.0 colours.
pub fn tlp_badge(label: &str) -> Markup {
    html! { span class=(tlp_class(label)) { (label) } }
}

/// A time in milliseconds since the epoch, as UTC text.
pub fn time(ms: i64) -> String {
    let t = crate::clock::rfc3339(ms.max(0) as u64);
    t.get(..19).unwrap_or(&t).replace('T', " ") + " UTC"
}

/// `GET /assets/console.css`.
pub async fn css() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("assets/console.css"),
    )
}

/// `GET /assets/console.js`.
pub async fn js() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("assets/console.js"),
    )
}

/// `GET /assets/icon.svg` (also `/favicon.ico`).
pub async fn icon() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "image/svg+xml")],
        include_str!("assets/icon.svg"),
    )
}
