//! What the node's HTTP routers (the local API, TAXII, MISP) share.

use crate::core::PublishError;
use axum::http::StatusCode;

/// The HTTP status of a refused publish (the API, TAXII and the MISP import).
pub fn publish_status(e: &PublishError) -> StatusCode {
    match e {
        PublishError::UnknownTopic(_) => StatusCode::NOT_FOUND,
        PublishError::Forbidden { .. } | PublishError::NotAuthor(_) | PublishError::CertInvalid => {
            StatusCode::FORBIDDEN
        }
        PublishError::TlpTooHigh { .. } | PublishError::Invalid(_) => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        PublishError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}
