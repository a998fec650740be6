//! The local HTTP API (axum), bound to a loopback address, every route behind a bearer
//! token read from a 0600 file.
//!
//! | route | what |
//! |---|---|
//! | `POST /v1/alerts` | publish `{"topic", "tlp", "alert": {...}}` (or `"update"`, `"retraction"`) |
//! | `GET /v1/alerts?topic=&after=&limit=` | decrypted alerts after a cursor |
//! | `GET /v1/alerts?view=current&topic=&after=&limit=` | each alert's current state with its history and sightings |
//! | `GET /v1/alerts/stream` | committed alerts as server-sent events (`id` = cursor; resumes after `Last-Event-ID`) |
//! | `GET /v1/lookup?value=&type=&cursor=&limit=` | every alert carrying an observable value, with the orgs that reported it ([`crate::store::observables`]) |
//! | `GET /v1/search?q=&topic=&tlp=&kind=&org=&since=&until=&cursor=&limit=` | full-text search over titles, descriptions and labels |
//! | `GET /v1/alerts/{id}/correlations` | the values an alert shares with other alerts, by value, with the orgs involved |
//! | `GET /v1/correlations?min_orgs=2&since=&limit=` | values reported by at least `min_orgs` distinct orgs |
//! | `GET /v1/peers` | connected peers |
//! | `GET /v1/topics` | topics and this org's rights |
//! | `GET /v1/status` | node status, with the evidence held |
//! | `GET /v1/stix/bundle?topic=` | the alerts as a STIX 2.1 bundle |
//! | `POST /v1/charters` | hand in a signed charter `{"charter": hex}`: adopted and gossiped |
//! | `GET /metrics` | Prometheus text |
//! | `/taxii2/…` | TAXII 2.1 server: discovery, API root, collections (one per topic), objects, manifest, versions, status ([`crate::taxii`]) |
//! | `GET /misp/manifest.json`, `/misp/{uuid}.json`, `/misp/hashes.csv` | MISP feed, with `ETag`/`If-None-Match` ([`crate::misp`]) |
//! | `POST /v1/misp/events?topic=` | import a MISP event as an alert ([`crate::misp`]) |
//!
//! The operator console ([`crate::console`]) is served at `/` on the same address, with
//! its own session cookies; browsers asking for an unknown route get its error page.
//!
//! Authentication, on every API route: the API token as `Authorization: Bearer <token>`, as the
//! password of HTTP Basic (`Authorization: Basic`, any user name; TAXII clients), or in the
//! header `X-Alertmesh-Token` (MISP feeds). Compared in constant time.

mod alerts;
mod auth;
mod lookup;
mod router;
mod state;
mod status;

pub use router::router;
pub use state::{ApiError, ApiState};

/// The live stream of committed alerts (`GET /v1/alerts/stream`), for the console.
pub(crate) async fn stream_alerts(
    state: ApiState,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    alerts::stream(axum::extract::State(state), headers)
        .await
        .into_response()
}
