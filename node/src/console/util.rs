//! What the console's handlers share: form rejections and database reads as error pages,
//! field limits, org names.

use super::layout::PageError;
use alertmesh_protocol::SignedCharter;
use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// A form body, or why it could not be read.
pub type FormResult<T> = Result<Form<T>, FormRejection>;

/// The form, or why it was refused (413 for a body over the console's limit).
pub fn form_or_page<T>(form: FormResult<T>) -> Result<T, PageError> {
    match form {
        Ok(Form(f)) => Ok(f),
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(PageError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Form refused",
            "The form is larger than this console accepts (64 KiB).",
        )),
        Err(e) => Err(PageError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Form refused",
            format!("The form could not be read: {}", e.body_text()),
        )),
    }
}

/// Refuses a form field longer than `max` characters.
pub fn check_len(field: &str, value: &str, max: usize) -> Result<(), PageError> {
    let n = value.chars().count();
    if n > max {
        return Err(PageError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Form refused",
            format!("The field {field} has {n} characters; at most {max} are accepted."),
        ));
    }
    Ok(())
}

/// Runs a database read off the async runtime; a failure becomes a 500 page.
pub async fn read_db<T: Send + 'static>(
    data_dir: &std::path::Path,
    f: impl FnOnce(&rusqlite::Connection) -> anyhow::Result<T> + Send + 'static,
) -> Result<T, PageError> {
    let dir: PathBuf = data_dir.to_owned();
    blocking(move || f(&crate::store::open_reader(&dir)?)).await
}

/// Runs blocking work off the async runtime; a failure becomes a 500 page.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> Result<T, PageError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(internal(&format!("{e:#}"))),
        Err(e) => Err(internal(&e.to_string())),
    }
}

/// A 500 page.
pub fn internal(why: &str) -> PageError {
    tracing::warn!(error = %why, "console page failed");
    PageError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Internal error",
        format!("The node could not answer: {why}"),
    )
}

/// A 503 page for a node that is shutting down.
pub fn unavailable(e: anyhow::Error) -> PageError {
    PageError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "Node unavailable",
        format!("{e:#}"),
    )
}

/// Every charter version stored, oldest first, decoded.
pub fn charters(conn: &rusqlite::Connection) -> anyhow::Result<Vec<SignedCharter>> {
    let mut out: Vec<SignedCharter> = crate::store::charters(conn)?
        .into_iter()
        .filter_map(|(_, b)| SignedCharter::decode(&b).ok())
        .collect();
    out.sort_by_key(|c| c.charter().version);
    out.dedup_by_key(|c| c.charter().version);
    Ok(out)
}

/// Org id → display name, over every stored charter version.
pub fn org_names(conn: &rusqlite::Connection) -> anyhow::Result<BTreeMap<String, String>> {
    let mut names = BTreeMap::new();
    for c in charters(conn)? {
        for m in &c.charter().members {
            names.insert(m.org_id.to_string(), m.name.clone());
        }
    }
    Ok(names)
}

/// A file download.
pub fn download(name: &str, mime: &'static str, body: Vec<u8>) -> Response {
    let disposition = format!("attachment; filename=\"{name}\"");
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(mime)),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&disposition)
                    .unwrap_or_else(|_| HeaderValue::from_static("attachment")),
            ),
        ],
        body,
    )
        .into_response()
}
