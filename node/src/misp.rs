//! MISP.
use crate::core::CoreHandle;
use axum::Router;
use std::path::PathBuf;

/// The MISP feed routes.
pub fn router<S: Clone + Send + Sync + 'static>(
    _core: CoreHandle,
    _data_dir: PathBuf,
) -> Router<S> {
    Router::new()
}
