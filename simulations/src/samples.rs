//! Sample content for tests, examples and scenarios.

use alertmesh_protocol::Content;
use alertmesh_protocol::alert::{Alert, AlertKind, Observable, Severity};

/// A valid alert titled `title` (an indicator, severity high, one domain observable).
pub fn sample_alert(title: &str) -> Content {
    Content::Alert(Alert {
        kind: AlertKind::Indicator,
        title: title.to_string(),
        description: "test alert".into(),
        severity: Severity::High,
        confidence: 90,
        observables: vec![Observable::Domain("vote-example.com".into())],
        labels: vec![],
        references: vec![],
        valid_from_ms: 0,
        valid_until_ms: None,
        related: vec![],
        stix: None,
    })
}
