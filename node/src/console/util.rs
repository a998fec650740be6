//! What the console's handlers share: form rejections and database reads as error pages,
//! field limits, org names.

use super::layout;
use alertmesh_protocol::SignedCharter;
use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::http::StatusCode;
use axum::response::Response;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// A form body, or why it could not be read.
pub type FormResult<T> = Result<Form<T>, FormRejection>;

/// The form, or a clear error page (413 for a body over the console's limit).
pub fn form_or_page<T>(form: FormResult<T>) -> Result<T, Response> {
    match form {
        Ok(Form(f)) => Ok(f),
        Err(e) => {
            let status = match e.status() {
                StatusCode::PAYLOAD_TOO_LARGE => StatusCode::PAYLOAD_TOO_LARGE,
                StatusCode::UNSUPPORTED_MEDIA_TYPE => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            };
            let why = if status == StatusCode::PAYLOAD_TOO_LARGE {
                "The form is larger than this console accepts (64 KiB).".to_string()
            } else {
                format!("The form could not be read: {}", e.body_text())
            };
            Err(layout::error_page(status, "Form refused", &why))
        }
    }
}

/// Refuses a form field longer than `max` characters.
pub fn check_len(field: &str, value: &str, max: usize) -> Result<(), Response> {
    let n = value.chars().count();
    if n > max {
        return Err(layout::error_page(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Form refused",
            &format!("The field {field} has {n} characters; at most {max} are accepted."),
        ));
    }
    Ok(())
}

/// Runs a database read off the async runtime; a failure becomes a 500 page.
pub async fn read_db<T: Send + 'static>(
    data_dir: &std::path::Path,
    f: impl FnOnce(&rusqlite::Connection) -> anyhow::Result<T> + Send + 'static,
) -> Result<T, Response> {
    let dir: PathBuf = data_dir.to_owned();
    let result = tokio::task::spawn_blocking(move || -> anyhow::Result<T> {
        let conn = crate::store::open_reader(&dir)?;
        f(&conn)
    })
    .await;
    match result {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(internal(&format!("{e:#}"))),
        Err(e) => Err(internal(&e.to_string())),
    }
}

/// A 500 page.
pub fn internal(why: &str) -> Response {
    tracing::warn!(error = %why, "console page failed");
    layout::error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Internal error",
        &format!("The node could not answer: {why}"),
    )
}

/// A 503 page for a node that is shutting down.
pub fn unavailable(e: anyhow::Error) -> Response {
    layout::error_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Node unavailable",
        &format!("{e:#}"),
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
