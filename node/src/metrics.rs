//! Prometheus metrics (prometheus-client), served at `GET /metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::Arc;

/// Labels of a validation outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerdictLabels {
    /// `accept`, `ignore` or `reject`.
    pub verdict: &'static str,
    /// The typed reason's label (`ok` for accept).
    pub reason: &'static str,
}

/// Labels of a refused lookup or search request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueryLabels {
    /// The typed reason (`store::observables::QueryError::reason`).
    pub reason: &'static str,
}

/// The node's metrics; cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    /// Gossip/sync envelopes by verdict and reason.
    pub verdicts: Family<VerdictLabels, Counter>,
    /// Envelopes this node published.
    pub published: Counter,
    /// Alerts decrypted and delivered to local consumers.
    pub delivered: Counter,
    /// Envelopes stored that this node cannot decrypt (yet).
    pub undecryptable: Gauge,
    /// Peers admitted (valid member certificate).
    pub admitted_peers: Gauge,
    /// Peers disconnected for not showing a valid certificate.
    pub refused_peers: Counter,
    /// Gossip messages shed (reported `Ignore`) because the core was saturated; no other
    /// network event is ever dropped.
    pub dropped_events: Counter,
    /// Requests of peers answered `Busy` (over their per-peer request or sync byte rate).
    pub throttled_requests: Counter,
    /// Equivocation evidence objects held.
    pub evidence: Counter,
    /// Split-view evidence objects held (two checkpoints of one log, one size, two roots).
    pub split_views: Counter,
    /// Governance forks seen (two valid charters with one version).
    pub charter_forks: Counter,
    /// Publish-to-receive latency of alerts from other nodes (author timestamp to local
    /// decryption), in seconds.
    pub delivery_latency: Histogram,
    /// Lookup, search and correlation requests refused (400), by reason.
    pub bad_queries: Family<QueryLabels, Counter>,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("alertmesh");
        let verdicts = Family::<VerdictLabels, Counter>::default();
        registry.register(
            "envelopes",
            "Received envelopes by verdict and reason",
            verdicts.clone(),
        );
        let published = Counter::default();
        registry.register(
            "published",
            "Envelopes published by this node",
            published.clone(),
        );
        let delivered = Counter::default();
        registry.register(
            "delivered",
            "Alerts decrypted and delivered locally",
            delivered.clone(),
        );
        let undecryptable = Gauge::default();
        registry.register(
            "undecryptable",
            "Stored envelopes awaiting a sender key",
            undecryptable.clone(),
        );
        let admitted_peers = Gauge::default();
        registry.register(
            "admitted_peers",
            "Connected peers with a valid member certificate",
            admitted_peers.clone(),
        );
        let refused_peers = Counter::default();
        registry.register(
            "refused_peers",
            "Peers disconnected without a valid certificate",
            refused_peers.clone(),
        );
        let dropped_events = Counter::default();
        registry.register(
            "dropped_events",
            "Gossip messages shed under overload (no other network event is dropped)",
            dropped_events.clone(),
        );
        let throttled_requests = Counter::default();
        registry.register(
            "throttled_requests",
            "Peer requests answered Busy for exceeding the per-peer request or sync byte rate",
            throttled_requests.clone(),
        );
        let evidence = Counter::default();
        registry.register(
            "evidence",
            "Equivocation evidence recorded",
            evidence.clone(),
        );
        let split_views = Counter::default();
        registry.register(
            "split_views",
            "Split-view evidence recorded (a log showed two histories)",
            split_views.clone(),
        );
        let charter_forks = Counter::default();
        registry.register(
            "charter_forks",
            "Governance forks seen",
            charter_forks.clone(),
        );
        let delivery_latency = Histogram::new([
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ]);
        registry.register(
            "delivery_latency_seconds",
            "Author timestamp to local delivery",
            delivery_latency.clone(),
        );
        let bad_queries = Family::<QueryLabels, Counter>::default();
        registry.register(
            "bad_queries",
            "Lookup, search and correlation requests refused, by reason",
            bad_queries.clone(),
        );
        Self {
            registry: Arc::new(registry),
            verdicts,
            published,
            delivered,
            undecryptable,
            admitted_peers,
            refused_peers,
            dropped_events,
            throttled_requests,
            evidence,
            split_views,
            charter_forks,
            delivery_latency,
            bad_queries,
        }
    }

    /// Counts one validation outcome.
    pub fn verdict(&self, verdict: &'static str, reason: &'static str) {
        self.verdicts
            .get_or_create(&VerdictLabels { verdict, reason })
            .inc();
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
