//! The streaming verifier of a signed log.

use super::certs::HeldCerts;
use super::format::ExportedKey;
use super::report::{
    ChainSummary, EnvelopeRef, EvidenceSummary, Finding, Location, Report, Severity,
};
use crate::alert::{Content, check_amendment};
use crate::cert::SignedNodeCert;
use crate::charter::{
    CharterChain, CharterError, CharterUpdate, MAX_ENVELOPE_BYTES, SignedCharter,
};
use crate::envelope::{Kind, SignedEnvelope, decode_content};
use crate::evidence::{Evidence, Misbehaviour};
use crate::ids::{CharterHash, EnvelopeId, NetworkId, NodePublicKey, OrgId, TopicId, sha256};
use crate::policy::{self, Refusal};
use crate::sender_key::{KeyPackage, SenderKey};
use crate::topic::CONTROL_TOPIC_NAME;
use std::collections::{BTreeMap, HashMap, HashSet};

/// How to audit.
#[derive(Debug, Clone, Default)]
pub struct AuditOptions {
    /// The genesis hash to pin. `None`: the log's only version-1 charter (or the hash an
    /// export's meta record names), with a note saying so.
    pub pinned_genesis: Option<CharterHash>,
    /// Check plaintexts against ciphertexts (needs sender keys).
    pub check_plaintext: bool,
    /// Every encrypted envelope whose sender key is known must come with its plaintext
    /// (an export with plaintext).
    pub require_plaintext: bool,
    /// Chains may start above seq 1 (a time-filtered export).
    pub allow_leading_gaps: bool,
}

/// A checkpoint of the log, with the orgs that cosigned it.
struct HeldCheckpoint {
    checkpoint: crate::tlog::Checkpoint,
    orgs: usize,
    witnessed: bool,
    loc: Location,
}

struct Pos {
    id: EnvelopeId,
    prev: EnvelopeId,
    loc: Location,
}

struct Amendment {
    env: EnvelopeRef,
    org: Option<OrgId>,
    original: EnvelopeId,
    loc: Location,
}

/// The streaming verifier; see the module docs for the call order.
pub struct Auditor {
    opts: AuditOptions,
    charters: Vec<(SignedCharter, Location)>,
    /// The adopted charters, once settled (`Some(None)`: no valid genesis).
    setup: Option<Option<CharterChain>>,
    network: Option<NetworkId>,
    genesis_hash: Option<CharterHash>,
    topic_names: HashMap<TopicId, String>,
    certs: HeldCerts,
    cert_bytes: HashSet<[u8; 32]>,
    chains: HashMap<(NodePublicKey, TopicId), BTreeMap<u64, Pos>>,
    keys: HashMap<(NodePublicKey, TopicId, u64), SenderKey>,
    awaiting: Option<(SignedEnvelope, Location)>,
    origins: HashMap<EnvelopeId, (Option<OrgId>, TopicId)>,
    amendments: Vec<Amendment>,
    evidence_seen: HashSet<[u8; 32]>,
    checkpoints: Vec<HeldCheckpoint>,
    /// Author of every envelope read, for the inclusion records after them.
    envelope_authors: HashMap<EnvelopeId, NodePublicKey>,
    /// Envelopes proven in their author's log.
    in_log: HashSet<EnvelopeId>,
    authors: HashSet<NodePublicKey>,
    report: Report,
}

fn charter_code(e: &CharterError) -> &'static str {
    match e {
        CharterError::Decode(_) | CharterError::Malformed(_) => "charter_malformed",
        CharterError::TooFewSignatures { .. } => "charter_threshold",
        CharterError::NotGovernor(_)
        | CharterError::DuplicateSignature(_)
        | CharterError::BadSignature(..) => "charter_bad_signature",
        CharterError::GenesisMismatch { .. } => "genesis_mismatch",
        CharterError::WrongNetwork => "charter_wrong_network",
        CharterError::WrongPrevHash(_) => "charter_prev_hash",
        CharterError::VersionNotIncreasing { .. } => "charter_version",
        CharterError::MissingPredecessor { .. } => "charter_missing_predecessor",
        CharterError::Halted(_) => "charter_after_fork",
    }
}

impl Auditor {
    /// A verifier with `opts`.
    pub fn new(opts: AuditOptions) -> Self {
        Self {
            opts,
            charters: Vec::new(),
            setup: None,
            network: None,
            genesis_hash: None,
            topic_names: HashMap::new(),
            certs: HeldCerts::default(),
            cert_bytes: HashSet::new(),
            chains: HashMap::new(),
            keys: HashMap::new(),
            awaiting: None,
            origins: HashMap::new(),
            amendments: Vec::new(),
            evidence_seen: HashSet::new(),
            checkpoints: Vec::new(),
            envelope_authors: HashMap::new(),
            in_log: HashSet::new(),
            authors: HashSet::new(),
            report: Report::default(),
        }
    }

    /// Sets the genesis hash to pin (before the first certificate or envelope).
    pub fn pin_genesis(&mut self, hash: CharterHash) {
        if self.opts.pinned_genesis.is_none() {
            self.opts.pinned_genesis = Some(hash);
        }
    }

    /// Allows chains that start above seq 1 (a time-filtered export).
    pub fn allow_leading_gaps(&mut self) {
        self.opts.allow_leading_gaps = true;
    }

    /// Requires a plaintext after every envelope whose sender key is known.
    pub fn require_plaintext(&mut self) {
        self.opts.require_plaintext = true;
        self.opts.check_plaintext = true;
    }

    /// Records a finding.
    pub fn finding(
        &mut self,
        severity: Severity,
        code: &'static str,
        location: Location,
        message: impl Into<String>,
    ) {
        self.report.push(Finding {
            severity,
            code,
            location,
            envelope: None,
            message: message.into(),
        });
    }

    fn env_finding(
        &mut self,
        severity: Severity,
        code: &'static str,
        location: &Location,
        env: &EnvelopeRef,
        message: impl Into<String>,
    ) {
        self.report.push(Finding {
            severity,
            code,
            location: location.clone(),
            envelope: Some(env.clone()),
            message: message.into(),
        });
    }

    /// A signed charter's exact bytes. All charters come before anything else.
    pub fn charter(&mut self, bytes: &[u8], loc: Location) {
        self.report.stats.charters += 1;
        if self.setup.is_some() {
            self.finding(
                Severity::Problem,
                "out_of_order",
                loc,
                "a charter after certificates or envelopes; ignored",
            );
            return;
        }
        match SignedCharter::decode(bytes) {
            Ok(c) => self.charters.push((c, loc)),
            Err(e) => self.finding(
                Severity::Problem,
                "charter_malformed",
                loc,
                format!("charter does not decode: {e}"),
            ),
        }
    }

    fn setup(&mut self) -> Option<&CharterChain> {
        if self.setup.is_none() {
            let s = self.build_setup();
            self.setup = Some(s);
        }
        self.setup.as_ref().and_then(Option::as_ref)
    }

    fn build_setup(&mut self) -> Option<CharterChain> {
        let mut charters = std::mem::take(&mut self.charters);
        charters.sort_by_key(|(c, _)| c.charter().version);
        let pinned = self.opts.pinned_genesis;
        let geneses: Vec<usize> = (0..charters.len())
            .filter(|i| charters[*i].0.charter().version == 1)
            .collect();
        let genesis = match pinned {
            Some(p) => geneses.iter().copied().find(|i| charters[*i].0.hash() == p),
            None if geneses.len() == 1 => {
                let hash = charters[geneses[0]].0.hash();
                self.finding(
                    Severity::Note,
                    "genesis_not_pinned",
                    Location::default(),
                    format!(
                        "no genesis hash was pinned; the log's only genesis {hash} is used (pass --genesis-hash to pin it independently)"
                    ),
                );
                Some(geneses[0])
            }
            None => None,
        };
        for i in &geneses {
            if Some(*i) != genesis {
                let (c, loc) = &charters[*i];
                let msg = match pinned {
                    Some(p) => format!("a genesis charter {} other than the pinned {p}", c.hash()),
                    None => format!("one of several genesis charters ({})", c.hash()),
                };
                let loc = loc.clone();
                self.finding(Severity::Problem, "genesis_mismatch", loc, msg);
            }
        }
        let Some(g) = genesis else {
            let msg = match pinned {
                Some(p) => format!("the log holds no genesis charter with the pinned hash {p}"),
                None if geneses.is_empty() => "the log holds no genesis charter".to_string(),
                None => "the log holds several genesis charters; pin one with --genesis-hash"
                    .to_string(),
            };
            self.finding(Severity::Problem, "no_genesis", Location::default(), msg);
            self.report_skipped_authorization();
            return None;
        };
        let (genesis_charter, genesis_loc) = charters[g].clone();
        let hash = genesis_charter.hash();
        let mut chain = match CharterChain::from_genesis(genesis_charter, &hash) {
            Ok(chain) => chain,
            Err(e) => {
                self.finding(
                    Severity::Problem,
                    charter_code(&e),
                    genesis_loc,
                    format!("genesis charter is not valid: {e}"),
                );
                self.report_skipped_authorization();
                return None;
            }
        };
        self.genesis_hash = Some(hash);
        self.network = Some(chain.current().charter().network_id);
        for (i, (c, loc)) in charters.into_iter().enumerate() {
            if i == g || c.charter().version == 1 {
                continue;
            }
            let version = c.charter().version;
            let hash = c.hash();
            match chain.offer(c) {
                Ok(CharterUpdate::Adopted(_)) => {}
                Ok(CharterUpdate::AlreadyKnown) => self.finding(
                    Severity::Note,
                    "charter_duplicate",
                    loc,
                    format!("charter version {version} ({hash}) appears twice"),
                ),
                Ok(CharterUpdate::Fork(fork)) => self.finding(
                    Severity::Problem,
                    "charter_fork",
                    loc,
                    format!(
                        "governance fork: two valid charters of version {} ({} and {}); versions from {} on are not adopted",
                        fork.version,
                        fork.first.hash(),
                        fork.second.hash(),
                        fork.version
                    ),
                ),
                Err(e) => self.finding(
                    Severity::Problem,
                    charter_code(&e),
                    loc,
                    format!("charter version {version} ({hash}) is not a valid transition: {e}"),
                ),
            }
        }
        let network = chain.current().charter().network_id;
        for signed in chain.history() {
            for t in &signed.charter().topics {
                let id = TopicId::derive(&network, &t.name);
                self.topic_names.insert(id, t.name.clone());
            }
        }
        let control = TopicId::control(&network);
        self.topic_names
            .insert(control, CONTROL_TOPIC_NAME.to_string());
        self.report.stats.charter_version = chain.current().charter().version;
        Some(chain)
    }

    fn report_skipped_authorization(&mut self) {
        self.finding(
            Severity::Problem,
            "authorization_unchecked",
            Location::default(),
            "without a valid genesis charter no certificate or publishing right can be checked; signatures and chains still are",
        );
    }

    /// A signed node certificate's exact bytes.
    pub fn cert(&mut self, bytes: &[u8], loc: Location) {
        self.setup();
        let cert = match SignedNodeCert::decode(bytes) {
            Ok(c) => c,
            Err(e) => {
                self.finding(
                    Severity::Problem,
                    "cert_malformed",
                    loc,
                    format!("certificate does not decode: {e}"),
                );
                return;
            }
        };
        if !self.cert_bytes.insert(sha256(bytes)) {
            return;
        }
        let Some(Some(chain)) = &self.setup else {
            return;
        };
        let network = chain.current().charter().network_id;
        let mut last_err = None;
        let mut verified = None;
        for signed in chain.history() {
            let Some(member) = signed.charter().member(&cert.cert().org_id) else {
                continue;
            };
            match cert.verify(&network, &member.root_pub) {
                Ok(()) => {
                    verified = Some(member.root_pub);
                    break;
                }
                Err(e) => last_err = Some(e),
            }
        }
        let c = cert.cert();
        match verified {
            Some(root) => {
                self.report.stats.certs += 1;
                self.certs.insert(cert, root);
            }
            None => {
                let why = match last_err {
                    Some(e) => format!("{} ({e})", e.label()),
                    None => format!("org {} is not a member of any charter version", c.org_id),
                };
                let msg = format!(
                    "certificate of node {} for org {} (serial {}) does not verify: {why}",
                    c.node_sign_pub.short(),
                    c.org_id,
                    c.serial
                );
                self.finding(Severity::Problem, "cert_invalid", loc, msg);
            }
        }
    }

    /// A sender key (exports with plaintext).
    pub fn sender_key(&mut self, key: &ExportedKey, _loc: Location) {
        self.report.stats.sender_keys += 1;
        self.keys.insert(
            (key.author, key.topic, key.epoch),
            SenderKey::from_bytes(key.epoch, &key.key),
        );
    }

    fn env_ref(&self, env: &SignedEnvelope) -> EnvelopeRef {
        let h = env.header();
        EnvelopeRef {
            id: env.id(),
            author: h.author,
            org: self.certs.org_of(&h.author).map(|o| o.to_string()),
            topic: h.topic_id,
            topic_name: self.topic_names.get(&h.topic_id).cloned(),
            seq: h.seq,
        }
    }

    /// A signed envelope's exact bytes, with the time the node received it if known.
    pub fn envelope(&mut self, bytes: &[u8], received_ms: Option<u64>, loc: Location) {
        self.setup();
        self.close_awaiting();
        self.report.stats.envelopes += 1;
        let env = match SignedEnvelope::decode(bytes, MAX_ENVELOPE_BYTES as usize) {
            Ok(env) => env,
            Err(e) => {
                self.finding(
                    Severity::Problem,
                    "envelope_malformed",
                    loc,
                    format!("envelope does not decode: {e}"),
                );
                return;
            }
        };
        let r = self.env_ref(&env);
        let h = env.header().clone();
        self.envelope_authors.insert(env.id(), h.author);
        let stats = &mut self.report.stats;
        *stats.by_kind.entry(h.kind.as_str()).or_default() += 1;
        let topic_label = r.topic_name.clone().unwrap_or_else(|| h.topic_id.to_hex());
        *stats.by_topic.entry(topic_label).or_default() += 1;
        stats.first_timestamp_ms = Some(
            stats
                .first_timestamp_ms
                .map_or(h.timestamp_ms, |t| t.min(h.timestamp_ms)),
        );
        stats.last_timestamp_ms = Some(
            stats
                .last_timestamp_ms
                .map_or(h.timestamp_ms, |t| t.max(h.timestamp_ms)),
        );
        self.authors.insert(h.author);

        // Signature over the exact bytes.
        match env.verify_signature() {
            Ok(()) => self.report.stats.signatures_verified += 1,
            Err(e) => self.env_finding(
                Severity::Problem,
                "bad_signature",
                &loc,
                &r,
                format!("the author's signature does not verify ({e})"),
            ),
        }
        self.authorize(&env, &r, received_ms, &loc);
        self.check_clear_payload(&env, &r, &loc);

        // Chain position.
        let chain = self.chains.entry((h.author, h.topic_id)).or_default();
        match chain.get(&h.seq) {
            Some(held) if held.id == env.id() => {
                let msg = format!("the same envelope appears twice (first at {})", held.loc);
                self.env_finding(Severity::Note, "duplicate_envelope", &loc, &r, msg);
            }
            Some(held) => {
                let msg = format!(
                    "two different envelopes at seq {}: {} (at {}) and this one: equivocation",
                    h.seq, held.id, held.loc
                );
                self.env_finding(Severity::Problem, "equivocation_in_log", &loc, &r, msg);
            }
            None => {
                chain.insert(
                    h.seq,
                    Pos {
                        id: env.id(),
                        prev: h.prev,
                        loc: loc.clone(),
                    },
                );
            }
        }
        if h.kind.is_encrypted() {
            if self.opts.check_plaintext
                && self.keys.contains_key(&(h.author, h.topic_id, h.key_epoch))
            {
                self.awaiting = Some((env, loc));
            } else {
                self.report.stats.plaintexts_unchecked += 1;
            }
        }
    }

    /// Rules of PROTOCOL.md §18.5: the rights of [`crate::policy::review`] and the
    /// timestamp against the time the node received the envelope (validation rule 9).
    fn authorize(
        &mut self,
        env: &SignedEnvelope,
        r: &EnvelopeRef,
        received_ms: Option<u64>,
        loc: &Location,
    ) {
        let h = env.header();
        let Some(Some(chain)) = &self.setup else {
            return;
        };
        let review = policy::review(chain, &self.certs, h, env.as_bytes().len());
        let max_skew = chain.current().charter().limits.max_clock_skew_ms;
        let mut problems: Vec<(&'static str, String)> = review
            .refusals
            .iter()
            .map(|refusal| (refusal.code(), refusal.to_string()))
            .collect();
        // An envelope naming a version the log does not establish is checked no further.
        let unknown_version = review
            .refusals
            .iter()
            .any(|r| matches!(r, Refusal::UnknownCharterVersion { .. }));
        if let Some(received) = received_ms.filter(|_| !unknown_version) {
            if h.timestamp_ms > received.saturating_add(max_skew) {
                problems.push((
                    "from_future",
                    format!(
                        "timestamp {} is more than {max_skew} ms after the node received it ({received})",
                        h.timestamp_ms
                    ),
                ));
            }
        }
        for (code, msg) in problems {
            self.env_finding(Severity::Problem, code, loc, r, msg);
        }
        if let Some(note) = review.withdrawn {
            self.env_finding(Severity::Note, note.code(), loc, r, note.to_string());
        }
    }

    fn max_envelope(&self) -> usize {
        match &self.setup {
            Some(Some(s)) => s.current().charter().limits.max_envelope_bytes as usize,
            _ => MAX_ENVELOPE_BYTES as usize,
        }
    }

    fn check_clear_payload(&mut self, env: &SignedEnvelope, r: &EnvelopeRef, loc: &Location) {
        let h = env.header();
        match h.kind {
            Kind::KeyPackage => match KeyPackage::decode(env.payload()) {
                Ok(pkg) if pkg.topic_id == h.topic_id && pkg.epoch == h.key_epoch => {}
                Ok(_) => self.env_finding(
                    Severity::Problem,
                    "bad_payload",
                    loc,
                    r,
                    "key package topic or epoch differs from the header",
                ),
                Err(e) => self.env_finding(
                    Severity::Problem,
                    "bad_payload",
                    loc,
                    r,
                    format!("key package does not decode: {e}"),
                ),
            },
            Kind::Evidence => {
                let max = self.max_envelope();
                match Evidence::decode(env.payload(), max) {
                    Ok(ev) => self.evidence_object(&ev, env.payload(), loc),
                    Err(e) => self.env_finding(
                        Severity::Problem,
                        "bad_payload",
                        loc,
                        r,
                        format!("evidence does not decode: {e}"),
                    ),
                }
            }
            Kind::Alert | Kind::Update | Kind::Retraction => {}
        }
    }

    fn evidence_object(&mut self, ev: &Evidence, encoded: &[u8], loc: &Location) {
        let max = self.max_envelope();
        let proven = match ev.verify(max) {
            Ok(p) => p,
            Err(e) => {
                self.finding(
                    Severity::Problem,
                    "bad_evidence",
                    loc.clone(),
                    format!("evidence does not prove misbehaviour: {e}"),
                );
                return;
            }
        };
        if !self.evidence_seen.insert(sha256(encoded)) {
            return;
        }
        self.report.stats.evidence += 1;
        let org = self.certs.org_of(&proven.author).map(|o| o.to_string());
        let topic_name = self.topic_names.get(&proven.topic).cloned();
        let (misbehaviour, code, what) = match proven.misbehaviour {
            Misbehaviour::Equivocation => (
                "equivocation",
                "equivocation",
                "signed two different envelopes with the same seq",
            ),
            Misbehaviour::ChainConflict => (
                "chain_conflict",
                "chain_conflict_evidence",
                "signed an envelope whose prev is not its envelope of the seq before",
            ),
        };
        let msg = format!(
            "node {} ({}) {what} on {} at seq {}: {} and {}",
            proven.author.short(),
            org.as_deref().unwrap_or("unknown org"),
            topic_name.as_deref().unwrap_or("an unknown topic"),
            proven.seq,
            proven.ids.0,
            proven.ids.1
        );
        self.report.push(Finding {
            severity: Severity::Problem,
            code,
            location: loc.clone(),
            envelope: None,
            message: msg,
        });
        self.report.evidence.push(EvidenceSummary {
            misbehaviour,
            author: proven.author,
            org,
            topic: proven.topic,
            topic_name,
            seq: proven.seq,
            ids: [proven.ids.0, proven.ids.1],
            location: loc.clone(),
        });
    }

    /// An encrypted envelope whose sender key is known got no plaintext: it is reported
    /// (exports with plaintext) and decrypted anyway, so that a tampered ciphertext or
    /// invalid content is still found (PROTOCOL.md §18.5.5).
    fn close_awaiting(&mut self) {
        if let Some((env, loc)) = self.awaiting.take() {
            let r = self.env_ref(&env);
            if self.opts.require_plaintext {
                self.env_finding(
                    Severity::Problem,
                    "plaintext_missing",
                    &loc,
                    &r,
                    "the sender key is in the export but the envelope's plaintext is not",
                );
            }
            let h = env.header();
            let Some(key) = self.keys.get(&(h.author, h.topic_id, h.key_epoch)) else {
                return;
            };
            match env.decrypt(key) {
                Err(e) => self.env_finding(
                    Severity::Problem,
                    "plaintext_undecryptable",
                    &loc,
                    &r,
                    format!("the sender key does not open the ciphertext ({e})"),
                ),
                Ok(p) => {
                    self.report.stats.plaintexts_checked += 1;
                    self.check_content(&env, r, &p, loc);
                }
            }
        }
    }

    /// The plaintext of the envelope given just before.
    pub fn plaintext(&mut self, id: &EnvelopeId, plaintext: &[u8], loc: Location) {
        let Some((env, env_loc)) = self.awaiting.take() else {
            self.finding(
                Severity::Problem,
                "plaintext_misplaced",
                loc,
                format!(
                    "a plaintext for {id} does not follow an encrypted envelope whose key is known"
                ),
            );
            return;
        };
        if env.id() != *id {
            self.awaiting = Some((env, env_loc));
            self.finding(
                Severity::Problem,
                "plaintext_misplaced",
                loc,
                format!("a plaintext for {id} follows another envelope"),
            );
            return;
        }
        let r = self.env_ref(&env);
        let h = env.header();
        let Some(key) = self.keys.get(&(h.author, h.topic_id, h.key_epoch)) else {
            return;
        };
        self.report.stats.plaintexts_checked += 1;
        match env.decrypt(key) {
            Err(e) => {
                self.env_finding(
                    Severity::Problem,
                    "plaintext_undecryptable",
                    &loc,
                    &r,
                    format!("the sender key does not open the ciphertext ({e})"),
                );
                return;
            }
            Ok(p) if p != plaintext => {
                self.env_finding(
                    Severity::Problem,
                    "plaintext_mismatch",
                    &loc,
                    &r,
                    "the plaintext differs from the decrypted ciphertext",
                );
                return;
            }
            Ok(_) => {}
        }
        self.check_content(&env, r, plaintext, loc);
    }

    /// Content rules of a decrypted (and matching) plaintext.
    fn check_content(
        &mut self,
        env: &SignedEnvelope,
        r: EnvelopeRef,
        plaintext: &[u8],
        loc: Location,
    ) {
        let h = env.header();
        let org = self.certs.org_of(&h.author).cloned();
        match decode_content(h.kind, plaintext) {
            Err(e) => self.env_finding(
                Severity::Problem,
                "content_invalid",
                &loc,
                &r,
                format!("the decrypted content is not valid: {e}"),
            ),
            Ok(Content::Alert(_)) => {
                self.origins.insert(env.id(), (org, h.topic_id));
            }
            Ok(Content::Update(u)) => self.amendments.push(Amendment {
                env: r,
                org,
                original: u.original,
                loc,
            }),
            Ok(Content::Retraction(x)) => self.amendments.push(Amendment {
                env: r,
                org,
                original: x.original,
                loc,
            }),
        }
    }

    /// An encoded [`Evidence`] object as stored by the node.
    pub fn evidence(&mut self, encoded: &[u8], loc: Location) {
        self.setup();
        self.close_awaiting();
        let max = self.max_envelope();
        match Evidence::decode(encoded, max) {
            Ok(ev) => self.evidence_object(&ev, encoded, &loc),
            Err(e) => self.finding(
                Severity::Problem,
                "bad_evidence",
                loc,
                format!("evidence does not decode: {e}"),
            ),
        }
    }

    /// A log checkpoint (PROTOCOL.md §19): its author's signature and each cosignature
    /// by a member org's node are checked; a witnessed one is held against the chains at
    /// the end ([`Auditor::finish`]).
    pub fn checkpoint(&mut self, note: &[u8], loc: Location) {
        use crate::tlog::{Checkpoint, Note, note as n};
        self.setup();
        self.close_awaiting();
        let Some(network) = self.network else {
            return;
        };
        let parsed =
            Note::parse(note).and_then(|nt| Checkpoint::verify(&nt, &network).map(|c| (nt, c)));
        let (nt, cp) = match parsed {
            Ok(x) => x,
            Err(e) => {
                self.finding(
                    Severity::Problem,
                    "bad_checkpoint",
                    loc,
                    format!("checkpoint refused: {e}"),
                );
                return;
            }
        };
        let Some(Some(chain)) = &self.setup else {
            return;
        };
        let charter = chain.current().charter();
        let author_org = self.certs.org_of(&cp.author).cloned();
        let mut orgs = HashSet::new();
        for sig in &nt.sigs {
            let Some(w) = n::cosigner_of(sig, &network) else {
                continue;
            };
            let Some(org) = self.certs.org_of(&w) else {
                continue;
            };
            if charter.member(org).is_none()
                || Some(org) == author_org.as_ref()
                || charter.is_revoked(&w)
                || n::verify_cosignature(sig, &nt.text, &network, &w).is_err()
            {
                continue;
            }
            orgs.insert(org.clone());
        }
        let k = charter.witness_threshold();
        self.checkpoints.push(HeldCheckpoint {
            witnessed: orgs.len() >= k,
            orgs: orgs.len(),
            checkpoint: cp,
            loc,
        });
    }

    /// Split-view evidence (PROTOCOL.md §19.5): reported when it verifies.
    pub fn split_view(&mut self, encoded: &[u8], loc: Location) {
        self.setup();
        self.close_awaiting();
        let Some(network) = self.network else {
            return;
        };
        let proven = crate::tlog::SplitView::decode(encoded)
            .map_err(crate::tlog::SplitViewError::from)
            .and_then(|ev| ev.verify(&network));
        match proven {
            Ok(p) => {
                let org = self
                    .org_name(&p.author)
                    .unwrap_or_else(|| "an unknown org".into());
                self.finding(
                    Severity::Note,
                    "split_view",
                    loc,
                    format!(
                        "node {} of {org} signed two checkpoints of size {} with different roots: it showed two histories",
                        p.author.short(),
                        p.size
                    ),
                );
            }
            Err(e) => self.finding(
                Severity::Problem,
                "bad_split_view",
                loc,
                format!("split-view evidence does not prove anything: {e}"),
            ),
        }
    }

    /// An inclusion record (PROTOCOL.md §19.6): the proof must lead an envelope of the
    /// export, by the log's author, to the root of a checkpoint of that size the export
    /// carries.
    pub fn inclusion(&mut self, body: &[u8], loc: Location) {
        use crate::tlog::ProvenInclusion;
        self.close_awaiting();
        let p =
            match crate::codec::decode_exact::<ProvenInclusion>(body, ProvenInclusion::MAX_BYTES) {
                Ok(p) => p,
                Err(e) => {
                    let msg = format!("inclusion record does not decode: {e}");
                    return self.finding(Severity::Problem, "bad_inclusion", loc, msg);
                }
            };
        let id = p.inclusion.id;
        let root = self
            .checkpoints
            .iter()
            .find(|h| h.checkpoint.author == p.author && h.checkpoint.size == p.size)
            .map(|h| h.checkpoint.root);
        let problem = if self.envelope_authors.get(&id) != Some(&p.author) {
            Some(format!(
                "an inclusion proof of {id}, which is not an envelope of {} in this export",
                p.author.short()
            ))
        } else if let Some(root) = root {
            p.inclusion.verify(p.size, &root).err().map(|e| {
                format!(
                    "the inclusion proof of {id} in {}'s checkpoint of size {} does not verify: {e}",
                    p.author.short(),
                    p.size
                )
            })
        } else {
            Some(format!(
                "an inclusion proof of {id} names {}'s checkpoint of size {}, which the export does not carry",
                p.author.short(),
                p.size
            ))
        };
        match problem {
            Some(msg) => self.finding(Severity::Problem, "bad_inclusion", loc, msg),
            None => {
                if self.in_log.insert(id) {
                    self.report.stats.envelopes_in_log += 1;
                }
            }
        }
    }

    /// Each witnessed checkpoint's chain heads against the chains of the log: on a topic
    /// the log holds, an author's chain must reach the head its witnessed checkpoint
    /// claims (skipped for time-filtered exports).
    fn check_checkpoint_heads(&mut self) {
        if self.opts.allow_leading_gaps {
            return;
        }
        let topics: HashSet<TopicId> = self.chains.keys().map(|(_, t)| *t).collect();
        let mut found = Vec::new();
        for held in self.checkpoints.iter().filter(|h| h.witnessed) {
            let cp = &held.checkpoint;
            for (topic, head) in &cp.heads {
                if !topics.contains(topic) {
                    continue;
                }
                let have = self
                    .chains
                    .get(&(cp.author, *topic))
                    .and_then(|c| c.last_key_value())
                    .map_or(0, |(s, _)| *s);
                if have < *head {
                    found.push((
                        held.loc.clone(),
                        format!(
                            "the log holds {}'s chain on {} up to seq {have}, but a checkpoint of size {} cosigned by {} orgs shows seq {head}: {} envelopes withheld",
                            cp.author.short(),
                            self.topic_names.get(topic).map_or_else(|| topic.short(), Clone::clone),
                            cp.size,
                            held.orgs,
                            head - have
                        ),
                    ));
                }
            }
        }
        for (loc, msg) in found {
            self.finding(Severity::Problem, "withheld_below_checkpoint", loc, msg);
        }
    }

    /// The network of the adopted genesis (settles the charters first: call it only once
    /// every charter has been given). `None` without a valid genesis.
    pub fn network(&mut self) -> Option<NetworkId> {
        self.setup();
        self.network
    }

    /// Stops the audit at a framing error: the report holds the findings made so far and
    /// none of the end-of-log checks (genesis, chains, amendments).
    pub fn abort(mut self) -> Report {
        self.report.stats.authors = self.authors.len() as u64;
        self.report.ok = self.report.problems == 0;
        self.report.network_id = self.network;
        self.report.genesis_hash = self.genesis_hash;
        self.report
    }

    /// Checks chains and amendments and returns the report.
    pub fn finish(mut self) -> Report {
        self.setup();
        self.close_awaiting();
        // Without a valid genesis no org is known (authorization_unchecked): amendments
        // cannot be attributed and are not checked.
        if !matches!(self.setup, Some(Some(_))) {
            self.amendments.clear();
        }
        for a in std::mem::take(&mut self.amendments) {
            match self.origins.get(&a.original) {
                None => self.env_finding(
                    Severity::Note,
                    "amendment_original_missing",
                    &a.loc,
                    &a.env,
                    format!(
                        "an update or retraction of {}, which is not a readable alert of this log",
                        a.original
                    ),
                ),
                Some((orig_org, orig_topic)) => {
                    let ok = match (orig_org, &a.org) {
                        (Some(o), Some(n)) => {
                            check_amendment(o, orig_topic, n, &a.env.topic).is_ok()
                        }
                        _ => false,
                    };
                    if !ok {
                        let msg = format!(
                            "an update or retraction of {} by {} on {}, but the alert is by {} on {}: only its author may amend it",
                            a.original,
                            a.org.as_ref().map_or("an unknown org", |o| o.as_str()),
                            a.env.topic_name.as_deref().unwrap_or("?"),
                            orig_org.as_ref().map_or("an unknown org", |o| o.as_str()),
                            self.topic_names.get(orig_topic).map_or("?", String::as_str),
                        );
                        self.env_finding(
                            Severity::Problem,
                            "amendment_not_by_author",
                            &a.loc,
                            &a.env,
                            msg,
                        );
                    }
                }
            }
        }
        self.check_checkpoint_heads();
        let mut chains: Vec<_> = std::mem::take(&mut self.chains).into_iter().collect();
        chains.sort_by_key(|(key, _)| *key);
        for ((author, topic), chain) in chains {
            self.check_chain(author, topic, &chain);
        }
        self.report.stats.authors = self.authors.len() as u64;
        self.report.ok = self.report.problems == 0;
        self.report.network_id = self.network;
        self.report.genesis_hash = self.genesis_hash;
        self.report
    }

    fn check_chain(&mut self, author: NodePublicKey, topic: TopicId, chain: &BTreeMap<u64, Pos>) {
        let (Some((&first, _)), Some((&last, _))) =
            (chain.first_key_value(), chain.last_key_value())
        else {
            return;
        };
        self.report.stats.chains += 1;
        let org = self.certs.org_of(&author).map(|o| o.to_string());
        let topic_name = self.topic_names.get(&topic).cloned();
        let mk_ref = |seq: u64, id: EnvelopeId| EnvelopeRef {
            id,
            author,
            org: org.clone(),
            topic,
            topic_name: topic_name.clone(),
            seq,
        };
        let mut missing = 0u64;
        let mut expected = if self.opts.allow_leading_gaps {
            first
        } else {
            1
        };
        let mut prev: Option<(u64, &Pos)> = None;
        for (&seq, pos) in chain {
            if seq > expected {
                missing += seq - expected;
                let range = if seq - expected == 1 {
                    format!("seq {expected} is")
                } else {
                    format!("seqs {expected}–{} are", seq - 1)
                };
                let msg = format!(
                    "gap in the chain of node {} on {}: {range} missing before this envelope",
                    author.short(),
                    topic_name.as_deref().unwrap_or("?")
                );
                let r = mk_ref(seq, pos.id);
                self.env_finding(Severity::Problem, "chain_gap", &pos.loc, &r, msg);
            }
            if let Some((pseq, p)) = prev {
                if pseq + 1 == seq && pos.prev != p.id {
                    let msg = format!(
                        "seq {seq} names prev {}, but the log's seq {pseq} is {} (at {}): the author signed two histories",
                        pos.prev, p.id, p.loc
                    );
                    let r = mk_ref(seq, pos.id);
                    self.env_finding(Severity::Problem, "chain_fork", &pos.loc, &r, msg);
                }
            }
            prev = Some((seq, pos));
            expected = seq.saturating_add(1);
        }
        self.report.chains.push(ChainSummary {
            author,
            org,
            topic,
            topic_name,
            first_seq: first,
            last_seq: last,
            envelopes: chain.len() as u64,
            missing,
        });
    }

    /// The org the log's certificates attribute a node key to (for reports).
    pub fn org_name(&self, node: &NodePublicKey) -> Option<String> {
        self.certs.org_of(node).map(|o| o.to_string())
    }
}
