//! Read models over the stored alerts: each alert's lifecycle, and STIX bundles of them.

pub mod bundle;
pub mod lifecycle;
