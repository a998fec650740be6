//! Authentication of every API route (not the console's, which use sessions): the API
//! token, compared in constant time.

use super::state::{ApiError, ApiState};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use zeroize::Zeroizing;

/// Constant-time comparison of the presented bearer token.
pub(super) async fn auth(
    State(state): State<ApiState>,
    headers: HeaderMap,
    req: Request,
    next: Next,
) -> Response {
    if !token_ok(&state, &headers) {
        return unauthorized();
    }
    next.run(req).await
}

/// Whether the request presents the API token.
pub(super) fn token_ok(state: &ApiState, headers: &HeaderMap) -> bool {
    let presented = presented_token(headers);
    let presented = presented.as_deref().map_or("", |s| s.as_str());
    let expected = state.token.as_bytes();
    presented.len() == expected.len()
        && presented
            .bytes()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// The answer to a request without the right token.
pub(super) fn unauthorized() -> Response {
    let mut response = ApiError(
        StatusCode::UNAUTHORIZED,
        "missing or wrong API token (Bearer, Basic password or X-Alertmesh-Token)".into(),
    )
    .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer, Basic realm=\"alertmesh\""),
    );
    response
}

/// The token a request presents: `Authorization: Bearer <token>`, HTTP Basic with the token
/// as password (any user name), or `X-Alertmesh-Token: <token>`.
fn presented_token(headers: &HeaderMap) -> Option<Zeroizing<String>> {
    use base64::Engine;
    if let Some(v) = headers
        .get("x-alertmesh-token")
        .and_then(|v| v.to_str().ok())
    {
        return Some(Zeroizing::new(v.trim().to_string()));
    }
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    if let Some(t) = auth.strip_prefix("Bearer ") {
        return Some(Zeroizing::new(t.to_string()));
    }
    let (scheme, rest) = auth.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") || rest.len() > 4096 {
        return None;
    }
    let decoded = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .ok()?,
    );
    let text = std::str::from_utf8(&decoded).ok()?;
    let (_user, password) = text.split_once(':')?;
    Some(Zeroizing::new(password.to_string()))
}
