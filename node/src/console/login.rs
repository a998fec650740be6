//! Login with the node's API token, and logout.
//!
//! The login form is protected against CSRF by a double submit: `GET /login` sets a
//! short-lived `HttpOnly`, `SameSite=Strict` cookie and puts the same random value in the
//! form; `POST /login` needs both to match.

use super::layout::{self, PageError, Tab};
use super::session::{LOGIN_COOKIE, SESSION_COOKIE, SESSION_TTL, random_token, same_secret};
use super::util::{FormResult, form_or_page};
use super::{Authed, Console, cookie};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;
use std::time::Instant;
use zeroize::Zeroizing;

/// How long a login form stays valid.
const LOGIN_FORM_SECS: u64 = 600;

fn set_cookie(name: &str, value: &str, max_age: u64) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A `Set-Cookie` that deletes cookie `name`.
pub fn clear_cookie(name: &str) -> HeaderValue {
    set_cookie(name, "", 0)
}

/// Query of `GET /login`.
#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    /// Set after a logout.
    bye: Option<String>,
}

/// `GET /login`.
pub async fn form(
    query: Result<Query<LoginQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let bye = query.is_ok_and(|q| q.bye.is_some());
    login_page(StatusCode::OK, bye.then_some("You are logged out."))
}

fn login_page(status: StatusCode, message: Option<&str>) -> Response {
    let csrf = random_token();
    let body = html! {
        section.login {
            h1 { "Log in to this node" }
            @if let Some(m) = message { p.notice id="message" { (m) } }
            form method="post" action="/login" {
                input type="hidden" name="csrf" value=(csrf);
                label for="token" { "API token (the node's token file)" }
                input type="password" id="token" name="token" autocomplete="current-password" required;
                button type="submit" id="login" { "Log in" }
            }
        }
    };
    let mut response = layout::respond(status, layout::page("Log in", Tab::None, None, body));
    response.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(LOGIN_COOKIE, &csrf, LOGIN_FORM_SECS),
    );
    response
}

/// Body of `POST /login`.
#[derive(Deserialize)]
pub struct LoginForm {
    csrf: Option<String>,
    token: String,
}

/// `POST /login`: the token opens a session.
pub async fn submit(
    State(console): State<Console>,
    headers: HeaderMap,
    form: FormResult<LoginForm>,
) -> Result<Response, PageError> {
    let form = form_or_page(form)?;
    let token = Zeroizing::new(form.token);
    let paired = match (cookie(&headers, LOGIN_COOKIE), form.csrf.as_deref()) {
        (Some(c), Some(f)) => same_secret(c, f),
        _ => false,
    };
    if !paired {
        return Err(PageError::new(
            StatusCode::FORBIDDEN,
            "Request refused",
            "The login form's CSRF token is missing or does not match (open the login page again).",
        ));
    }
    if !console.sessions().login_allowed(Instant::now()) {
        return Err(PageError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many failed logins",
            "Logins are paused for a minute after repeated wrong tokens.",
        ));
    }
    if !same_secret(token.trim(), console.api.token.as_str()) {
        console.sessions().login_failed(Instant::now());
        return Ok(login_page(
            StatusCode::UNAUTHORIZED,
            Some("Wrong token. It is in the file named by api.token_file in the node's config."),
        ));
    }
    let id = console.sessions().create(Instant::now());
    let mut response = Redirect::to("/alerts").into_response();
    let h = response.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, &id, SESSION_TTL.as_secs()),
    );
    h.append(header::SET_COOKIE, clear_cookie(LOGIN_COOKIE));
    Ok(response)
}

/// Body of forms that carry nothing but their CSRF token.
#[derive(Deserialize)]
pub struct CsrfOnly {
    /// The form's CSRF token.
    pub csrf: Option<String>,
}

/// `POST /logout`: ends the session.
pub async fn logout(
    State(console): State<Console>,
    authed: Authed,
    form: FormResult<CsrfOnly>,
) -> Result<Response, PageError> {
    let form = form_or_page(form)?;
    authed.check_csrf(&console, form.csrf.as_deref())?;
    console.sessions().end(&authed.id);
    let mut response = Redirect::to("/login?bye=1").into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, clear_cookie(SESSION_COOKIE));
    Ok(response)
}
