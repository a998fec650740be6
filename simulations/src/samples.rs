//! Sample content for tests, examples and scenarios.

use alertmesh_protocol::Content;
use alertmesh_protocol::alert::{Alert, Observable};

/// A valid alert titled `title` (an indicator, severity high, one domain observable).
pub fn sample_alert(title: &str) -> Content {
    Content::Alert(Alert {
        title: title.to_string(),
        description: "test alert".into(),
        confidence: 90,
        observables: vec![Observable::Domain("vote-example.com".into())],
        labels: vec![],
        ..Alert::example(0)
    })
}
