//! [`CoreState::new`]: the state rebuilt from what the database holds: chain heads, key
//! packages and undecrypted envelopes, never every envelope (see `store::Loaded`).

use super::chains::ChainIndex;
use super::state::{CoreState, Now, OwnTopic, StateParts};
use alertmesh_protocol::{
    CertDirectory, SenderKey, SignedCharter, SignedEnvelope, SignedNodeCert, TopicId, Validator,
};
use rand::Rng;
use rand::rngs::StdRng;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

impl CoreState {
    /// Builds the state from what was loaded; returns it with the outputs of the start
    /// (subscriptions, alert rows of envelopes decryptable now).
    pub fn new(
        parts: StateParts,
        now: Now,
        rng: StdRng,
    ) -> anyhow::Result<(Self, Vec<super::state::Output>)> {
        let StateParts {
            me,
            mut charters,
            loaded,
            history,
            metrics,
            sync_period,
            max_peers,
            request_limits,
        } = parts;
        for bytes in &loaded.charters {
            let signed = SignedCharter::decode(bytes)
                .map_err(|e| anyhow::anyhow!("stored charter does not decode: {e}"))?;
            if let Err(e) = charters.offer(signed) {
                tracing::warn!(error = %e, "stored charter not adopted");
            }
        }
        let org = me.cert.cert().org_id.clone();
        let t = now.instant;
        let mut rng = rng;
        // Nodes started together do not all sign at once: the first checkpoint is due
        // after a random half to whole period.
        let period = super::transparency::checkpoint_period(&charters.current().charter().limits);
        let first_due = t + period.mul_f64(rng.gen_range(0.5..1.0));
        let tlog = super::transparency::Transparency::load(
            loaded.tlog,
            &charters.current().charter().network_id,
            t,
            first_due,
        );
        let mut state = Self {
            org,
            charters,
            certs: CertDirectory::default(),
            chains: ChainIndex::new(history, &loaded.heads, loaded.evidence),
            validator: Validator::new(),
            keys: HashMap::new(),
            own: HashMap::new(),
            pending: HashMap::new(),
            pending_len: 0,
            pending_bytes: 0,
            peers: HashMap::new(),
            outstanding: HashMap::new(),
            next_tag: 0,
            request_limits,
            sync_retries: Vec::new(),
            topic_by_hash: HashMap::new(),
            tlog,
            sync_rounds: HashMap::new(),
            next_sync: t + sync_period,
            sync_period,
            max_peers,
            next_peer_check: t + super::peers::PEER_CHECK_PERIOD,
            subscribed: HashSet::new(),
            evictions: Vec::new(),
            metrics,
            next_cert_announce: t + Duration::from_secs(2),
            directory_refresh: Default::default(),
            next_penalty_decay: t + super::penalty::PENALTY_HALF_LIFE,
            me,
            now,
            rng,
            out: Vec::new(),
        };
        let charter = state.charters.current().charter().clone();
        state
            .certs
            .insert(state.me.cert.clone(), &charter)
            .map_err(|e| {
                anyhow::anyhow!("this node's certificate is not valid for the network: {e}")
            })?;
        for bytes in &loaded.certs {
            if let Ok(cert) = SignedNodeCert::decode(bytes) {
                let _ = state.certs.insert(cert, &charter);
            }
        }
        // Learn sender keys; queue what is not decrypted yet.
        let mut own_epochs: HashMap<TopicId, u64> = HashMap::new();
        let max = charter.limits.max_envelope_bytes as usize;
        for bytes in &loaded.key_packages {
            let Ok(env) = SignedEnvelope::decode(bytes, max.max(bytes.len())) else {
                continue;
            };
            let h = env.header();
            if h.author == state.me.key.public() {
                let e = own_epochs.entry(h.topic_id).or_default();
                *e = (*e).max(h.key_epoch);
            }
            state.learn_key_package(&env);
        }
        for bytes in &loaded.undecrypted {
            if let Ok(env) = SignedEnvelope::decode(bytes, max.max(bytes.len())) {
                state.queue_pending(env);
            }
        }
        // A fresh sender-key epoch on every start: a key is never reused after a crash.
        for rule in &charter.topics {
            let topic = TopicId::derive(&charter.network_id, &rule.name);
            if rule.publishers.contains(&state.org) {
                let epoch = own_epochs.get(&topic).map_or(1, |e| e + 1);
                let key = SenderKey::generate(epoch, &mut state.rng);
                state.own.insert(
                    topic,
                    OwnTopic {
                        key,
                        sealed_to: BTreeSet::new(),
                        due: Some(t),
                    },
                );
            }
        }
        state.update_topic_map();
        // Evidence held from earlier runs counts in status and metrics.
        state.metrics.evidence.inc_by(loaded.evidence);
        state.retry_all_pending();
        state.sync_subscriptions();
        let out = std::mem::take(&mut state.out);
        Ok((state, out))
    }
}
