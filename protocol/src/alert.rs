//! The alert model: what is inside an encrypted envelope.
//!
//! It maps onto STIX 2.1: an [`Alert`] becomes an `indicator`, `campaign`, `report`
//! (advisory / account-network takedown notice) or `sighting`; observables become pattern
//! comparisons; [`Tlp`] becomes a TLP 2.0 marking definition. Updates and retractions
//! reference the original alert's envelope id and are valid only from the original
//! author's organization (see [`check_amendment`]).

use crate::codec::{self, DecodeError};
use crate::ids::{EnvelopeId, OrgId};
use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Largest plaintext alert accepted.
pub const MAX_ALERT_BYTES: usize = 256 * 1024;

/// Traffic Light Protocol 2.0 marking, ordered from least to most restrictive.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode, Serialize, Deserialize,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Tlp {
    /// TLP:CLEAR — may be shared publicly.
    Clear,
    /// TLP:GREEN — within the community.
    Green,
    /// TLP:AMBER — within the recipient organizations, need to know.
    Amber,
    /// TLP:AMBER+STRICT — within the recipient organization only.
    #[serde(rename = "AMBER+STRICT", alias = "AMBER_STRICT")]
    AmberStrict,
    /// TLP:RED — named recipients only.
    Red,
}

impl Tlp {
    /// Every level, least restrictive first.
    pub const ALL: [Tlp; 5] = [
        Tlp::Clear,
        Tlp::Green,
        Tlp::Amber,
        Tlp::AmberStrict,
        Tlp::Red,
    ];
}

impl fmt::Display for Tlp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Tlp::Clear => "TLP:CLEAR",
            Tlp::Green => "TLP:GREEN",
            Tlp::Amber => "TLP:AMBER",
            Tlp::AmberStrict => "TLP:AMBER+STRICT",
            Tlp::Red => "TLP:RED",
        })
    }
}

/// A label that is not one of the five TLP 2.0 labels.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a TLP 2.0 label (TLP:CLEAR, TLP:GREEN, TLP:AMBER, TLP:AMBER+STRICT, TLP:RED)")]
pub struct UnknownTlp;

impl std::str::FromStr for Tlp {
    type Err = UnknownTlp;

    /// Parses a label as [`Tlp`]'s `Display` writes it, e.g. `TLP:AMBER+STRICT`.
    fn from_str(label: &str) -> Result<Self, UnknownTlp> {
        Tlp::ALL
            .into_iter()
            .find(|t| t.to_string() == label)
            .ok_or(UnknownTlp)
    }
}

/// Serde as the TLP label (`"TLP:GREEN"`), for `#[serde(with = "tlp_label")]` where JSON
/// shows labels rather than [`Tlp`]'s own names (`"GREEN"`).
pub mod tlp_label {
    use super::Tlp;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    /// Writes the label.
    pub fn serialize<S: Serializer>(tlp: &Tlp, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(tlp)
    }

    /// Reads a label.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Tlp, D::Error> {
        let label = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        label.parse().map_err(D::Error::custom)
    }
}

/// What an alert reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlertKind {
    /// Indicators of a threat (STIX `indicator`).
    Indicator,
    /// A coordinated campaign (STIX `campaign`).
    Campaign,
    /// A network of fake or coordinated accounts, or a takedown notice for one.
    AccountNetwork,
    /// A general advisory (STIX `report`).
    Advisory,
    /// Confirmation that the reporter saw indicators of another alert (STIX `sighting`).
    Sighting,
}

impl AlertKind {
    /// Its name, as in JSON (`account-network`).
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Indicator => "indicator",
            AlertKind::Campaign => "campaign",
            AlertKind::AccountNetwork => "account-network",
            AlertKind::Advisory => "advisory",
            AlertKind::Sighting => "sighting",
        }
    }
}

/// How severe the threat is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}

/// A typed observable.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Encode, Decode, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "kebab-case")]
pub enum Observable {
    /// A domain name.
    Domain(String),
    /// A URL.
    Url(String),
    /// An IPv4 address.
    Ipv4([u8; 4]),
    /// An IPv6 address.
    Ipv6([u8; 16]),
    /// An email address.
    Email(String),
    /// An account on a platform.
    SocialAccount {
        /// The platform, e.g. `example-social`.
        platform: String,
        /// The account handle.
        handle: String,
    },
    /// A hashtag, without `#`.
    Hashtag(String),
    /// SHA-256 of a file.
    FileSha256([u8; 32]),
    /// A phone number in E.164 form.
    Phone(String),
    /// An advertisement identifier.
    AdId {
        /// The ad network.
        network: String,
        /// The ad's id there.
        id: String,
    },
}

impl Observable {
    fn strings(&self) -> Vec<&str> {
        match self {
            Observable::Domain(s)
            | Observable::Url(s)
            | Observable::Email(s)
            | Observable::Hashtag(s)
            | Observable::Phone(s) => vec![s],
            Observable::SocialAccount { platform, handle } => vec![platform, handle],
            Observable::AdId { network, id } => vec![network, id],
            Observable::Ipv4(_) | Observable::Ipv6(_) | Observable::FileSha256(_) => vec![],
        }
    }
}

/// Largest STIX object an alert may carry ([`Alert::stix`]), in bytes of JSON text.
pub const MAX_STIX_BYTES: usize = 64 * 1024;

/// A threat alert.
///
/// Its wire form (`encode(Alert)`) is the eleven fields from `kind` to `related`;
/// [`Alert::stix`] is not part of it but travels as an optional trailer after the whole
/// plaintext (see [`Content::encode`] and PROTOCOL.md §10.2), so alerts without a STIX
/// object encode exactly as before the field existed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// What the alert reports.
    pub kind: AlertKind,
    /// One-line summary.
    pub title: String,
    /// Full description.
    pub description: String,
    /// Severity.
    pub severity: Severity,
    /// Confidence, 0–100 (STIX confidence scale).
    pub confidence: u8,
    /// Observables.
    pub observables: Vec<Observable>,
    /// Free labels, e.g. `election-2020`.
    pub labels: Vec<String>,
    /// External references (URLs, case numbers).
    pub references: Vec<String>,
    /// Start of validity, ms since the Unix epoch.
    pub valid_from_ms: u64,
    /// End of validity, if any.
    pub valid_until_ms: Option<u64>,
    /// Envelope ids of related alerts (e.g. the alert a sighting confirms).
    pub related: Vec<EnvelopeId>,
    /// The STIX 2.1 object this alert was made from (for example pushed through TAXII),
    /// as JSON text, carried verbatim so every reader serves the same object. `None` for
    /// alerts written natively.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stix: Option<String>,
}

impl Encode for Alert {
    fn encode<E: bincode::enc::Encoder>(
        &self,
        e: &mut E,
    ) -> Result<(), bincode::error::EncodeError> {
        self.kind.encode(e)?;
        self.title.encode(e)?;
        self.description.encode(e)?;
        self.severity.encode(e)?;
        self.confidence.encode(e)?;
        self.observables.encode(e)?;
        self.labels.encode(e)?;
        self.references.encode(e)?;
        self.valid_from_ms.encode(e)?;
        self.valid_until_ms.encode(e)?;
        self.related.encode(e)
    }
}

impl<Ctx> Decode<Ctx> for Alert {
    fn decode<D: bincode::de::Decoder<Context = Ctx>>(
        d: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        Ok(Alert {
            kind: Decode::decode(d)?,
            title: Decode::decode(d)?,
            description: Decode::decode(d)?,
            severity: Decode::decode(d)?,
            confidence: Decode::decode(d)?,
            observables: Decode::decode(d)?,
            labels: Decode::decode(d)?,
            references: Decode::decode(d)?,
            valid_from_ms: Decode::decode(d)?,
            valid_until_ms: Decode::decode(d)?,
            related: Decode::decode(d)?,
            stix: None,
        })
    }
}
bincode::impl_borrow_decode!(Alert);

/// The optional trailer of an `Alert` or `AlertUpdate` plaintext (PROTOCOL.md §10.2).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum Trailer {
    /// A STIX 2.1 object as JSON text ([`Alert::stix`]).
    Stix(String),
}

/// A newer version of an alert, by the original author's organization.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct AlertUpdate {
    /// Envelope id of the original alert.
    pub original: EnvelopeId,
    /// The alert's new content.
    pub alert: Alert,
}

/// Withdrawal of an alert by the original author's organization.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct Retraction {
    /// Envelope id of the original alert.
    pub original: EnvelopeId,
    /// Why it is withdrawn.
    pub reason: String,
}

/// Why alert content is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlertError {
    /// The plaintext does not decode.
    #[error("alert does not decode: {0}")]
    Decode(#[from] DecodeError),
    /// A field is out of bounds.
    #[error("alert field {field}: {reason}")]
    Field {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
}

const MAX_TITLE: usize = 256;
const MAX_DESCRIPTION: usize = 16 * 1024;
const MAX_LIST: usize = 1000;
const MAX_STRING: usize = 2048;

impl Alert {
    /// An example alert (a phishing domain aimed at an election office, with a domain, an
    /// IPv4 address and a social account), valid from `valid_from_ms`: one value for the
    /// documentation, tests, benchmarks and fuzz seeds to start from.
    pub fn example(valid_from_ms: u64) -> Self {
        Alert {
            kind: AlertKind::Indicator,
            title: "Phishing domain impersonating county election office".into(),
            description: "Credential phishing targeting poll workers.".into(),
            severity: Severity::High,
            confidence: 80,
            observables: vec![
                Observable::Domain("vote-county-example.com".into()),
                Observable::Ipv4([192, 0, 2, 7]),
                Observable::SocialAccount {
                    platform: "example-social".into(),
                    handle: "@fake_poll_news".into(),
                },
            ],
            labels: vec!["election-2020".into()],
            references: vec![],
            valid_from_ms,
            valid_until_ms: None,
            related: vec![],
            stix: None,
        }
    }

    /// Checks bounds: title 1–256 bytes, description ≤ 16 KiB, confidence ≤ 100, at most
    /// 1000 entries per list, strings ≤ 2 KiB, validity interval not inverted.
    pub fn check(&self) -> Result<(), AlertError> {
        let field = |field, reason| Err(AlertError::Field { field, reason });
        if self.title.trim().is_empty() || self.title.len() > MAX_TITLE {
            return field("title", "must be 1-256 bytes");
        }
        if self.description.len() > MAX_DESCRIPTION {
            return field("description", "must be at most 16 KiB");
        }
        if self.confidence > 100 {
            return field("confidence", "must be 0-100");
        }
        if self.observables.len() > MAX_LIST
            || self.labels.len() > MAX_LIST
            || self.references.len() > MAX_LIST
            || self.related.len() > MAX_LIST
        {
            return field("lists", "at most 1000 entries each");
        }
        let too_long = self
            .observables
            .iter()
            .flat_map(Observable::strings)
            .chain(self.labels.iter().map(String::as_str))
            .chain(self.references.iter().map(String::as_str))
            .any(|s| s.is_empty() || s.len() > MAX_STRING);
        if too_long {
            return field(
                "strings",
                "observables, labels and references must be 1-2048 bytes",
            );
        }
        if matches!(self.valid_until_ms, Some(until) if until < self.valid_from_ms) {
            return field("valid_until_ms", "ends before valid_from_ms");
        }
        if let Some(stix) = &self.stix {
            if stix.trim().is_empty() || stix.len() > MAX_STIX_BYTES {
                return field("stix", "must be 1-65536 bytes");
            }
        }
        Ok(())
    }
}

/// The decrypted content of an alert-bearing envelope. In JSON: `{"alert": {...}}`,
/// `{"update": {"original": ..., "alert": {...}}}` or `{"retraction": {...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Content {
    /// A new alert.
    Alert(Alert),
    /// An update of an earlier alert.
    Update(AlertUpdate),
    /// A retraction of an earlier alert.
    Retraction(Retraction),
}

impl Content {
    /// Encodes the content's plaintext: `encode(Alert)`, `encode(AlertUpdate)` or
    /// `encode(Retraction)`, followed for an alert that carries a STIX object by
    /// `encode(Trailer::Stix(json))`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = match self {
            Content::Alert(a) => codec::encode(a),
            Content::Update(u) => codec::encode(u),
            Content::Retraction(r) => codec::encode(r),
        };
        if let Some(stix) = self.alert().and_then(|a| a.stix.as_ref()) {
            out.extend_from_slice(&codec::encode(&Trailer::Stix(stix.clone())));
        }
        out
    }

    /// The alert carried, if any.
    pub fn alert(&self) -> Option<&Alert> {
        match self {
            Content::Alert(a) => Some(a),
            Content::Update(u) => Some(&u.alert),
            Content::Retraction(_) => None,
        }
    }

    /// The original alert an update or retraction refers to.
    pub fn original(&self) -> Option<EnvelopeId> {
        match self {
            Content::Alert(_) => None,
            Content::Update(u) => Some(u.original),
            Content::Retraction(r) => Some(r.original),
        }
    }

    /// Checks the content's bounds.
    pub fn check(&self) -> Result<(), AlertError> {
        match self {
            Content::Retraction(r) if r.reason.len() > MAX_DESCRIPTION => Err(AlertError::Field {
                field: "reason",
                reason: "must be at most 16 KiB",
            }),
            Content::Retraction(_) => Ok(()),
            other => other.alert().map_or(Ok(()), Alert::check),
        }
    }
}

/// Why an update or retraction is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmendmentError {
    /// The original alert is from another organization.
    #[error("only {original_org} may amend this alert, not {amending_org}")]
    NotAuthor {
        /// The original author's org.
        original_org: OrgId,
        /// The org that tried to amend it.
        amending_org: OrgId,
    },
    /// The amendment is on another topic than the original.
    #[error("an amendment must be published on the original alert's topic")]
    WrongTopic,
}

/// An update or retraction is valid only from the original author's organization, on
/// the original alert's topic.
pub fn check_amendment(
    original_org: &OrgId,
    original_topic: &crate::ids::TopicId,
    amending_org: &OrgId,
    amending_topic: &crate::ids::TopicId,
) -> Result<(), AmendmentError> {
    if original_org != amending_org {
        return Err(AmendmentError::NotAuthor {
            original_org: original_org.clone(),
            amending_org: amending_org.clone(),
        });
    }
    if original_topic != amending_topic {
        return Err(AmendmentError::WrongTopic);
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample_alert() -> Alert {
        Alert::example(1_600_000_000_000)
    }

    #[test]
    fn bounds() {
        let mut a = sample_alert();
        assert_eq!(a.check(), Ok(()));
        a.confidence = 101;
        assert!(a.check().is_err());
        a.confidence = 100;
        a.title = String::new();
        assert!(a.check().is_err());
        a.title = "x".into();
        a.valid_until_ms = Some(1);
        assert!(a.check().is_err());
    }

    #[test]
    fn stix_trailer_round_trip_and_old_bytes_unchanged() {
        use crate::envelope::{Kind, decode_content};
        let plain = Content::Alert(sample_alert());
        // Without a STIX object the plaintext is exactly `encode(Alert)`.
        assert_eq!(plain.encode(), codec::encode(&sample_alert()));
        let mut a = sample_alert();
        a.stix = Some(r#"{"type":"indicator","id":"indicator--1"}"#.into());
        for content in [
            Content::Alert(a.clone()),
            Content::Update(AlertUpdate {
                original: EnvelopeId([3; 32]),
                alert: a.clone(),
            }),
        ] {
            let bytes = content.encode();
            assert_eq!(decode_content(content.kind(), &bytes).unwrap(), content);
            // A trailer that is not a valid `Trailer` is refused.
            let mut bad = bytes.clone();
            bad.push(0);
            assert!(decode_content(content.kind(), &bad).is_err());
        }
        let mut bytes = codec::encode(&sample_alert());
        bytes.extend_from_slice(&[9, 0, 0, 0]);
        assert!(decode_content(Kind::Alert, &bytes).is_err());
        a.stix = Some(String::new());
        assert!(a.check().is_err());
    }

    #[test]
    fn tlp_order_and_json() {
        assert!(
            Tlp::Clear < Tlp::Green && Tlp::Amber < Tlp::AmberStrict && Tlp::AmberStrict < Tlp::Red
        );
        assert_eq!(
            serde_json::to_string(&Tlp::AmberStrict).unwrap(),
            "\"AMBER+STRICT\""
        );
    }

    #[test]
    fn tlp_labels_round_trip_and_unknown_ones_are_refused() {
        for t in Tlp::ALL {
            assert_eq!(t.to_string().parse::<Tlp>(), Ok(t));
        }
        assert_eq!("TLP:WHITE".parse::<Tlp>(), Err(UnknownTlp));
        assert_eq!("GREEN".parse::<Tlp>(), Err(UnknownTlp));
    }

    #[test]
    fn amendment_only_by_author_org() {
        let t = crate::ids::TopicId([1; 32]);
        let a = OrgId::new("fbi").unwrap();
        let b = OrgId::new("dhs").unwrap();
        assert_eq!(check_amendment(&a, &t, &a, &t), Ok(()));
        assert!(matches!(
            check_amendment(&a, &t, &b, &t),
            Err(AmendmentError::NotAuthor { .. })
        ));
        assert_eq!(
            check_amendment(&a, &t, &a, &crate::ids::TopicId([2; 32])),
            Err(AmendmentError::WrongTopic)
        );
    }
}
