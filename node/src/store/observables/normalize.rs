//! Normalized observable keys: the `(type, value)` form the index stores and lookups
//! search, so that `Bad.Example.` and `bad.example` are one value.
//!
//! | type | normalized value |
//! |---|---|
//! | `domain` | lower-case, IDNA to ASCII (punycode), no trailing dot |
//! | `url` | parsed by the `url` crate (scheme and host lower-cased, default port dropped, `http://` assumed when no scheme is given), host without trailing dot, fragment dropped |
//! | `ipv4` | dotted quad |
//! | `ipv6` | canonical text (RFC 5952, as `std::net::Ipv6Addr` prints it) |
//! | `email` | trimmed and lower-cased (local part too: providers treat it case-insensitively), no trailing dot |
//! | `social-account` | `platform:handle`, both case-folded, the handle without a leading `@` |
//! | `hashtag` | without leading `#`, case-folded |
//! | `file-sha256` | lower-case hex |
//! | `phone` | E.164 (`+` and 7–15 digits) when the number is international (`+…` or `00…`) once spaces, dots, dashes, slashes and parentheses are removed; otherwise those removed and nothing else (no country is assumed) |
//! | `ad-id` | `network:id`, the network case-folded, the id as given |
//!
//! Case folding is `str::to_lowercase` (full Unicode lower-casing).

use alertmesh_protocol::alert::Observable;
use std::net::{Ipv4Addr, Ipv6Addr};

/// The type of an observable, as the index stores it (a small integer) and the API names
/// it (the protocol's JSON tag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObsType {
    /// A domain name.
    Domain,
    /// A URL.
    Url,
    /// An IPv4 address.
    Ipv4,
    /// An IPv6 address.
    Ipv6,
    /// An email address.
    Email,
    /// An account on a platform.
    SocialAccount,
    /// A hashtag.
    Hashtag,
    /// SHA-256 of a file.
    FileSha256,
    /// A phone number.
    Phone,
    /// An advertisement identifier.
    AdId,
}

/// Every type, in code order.
pub const TYPES: [ObsType; 10] = [
    ObsType::Domain,
    ObsType::Url,
    ObsType::Ipv4,
    ObsType::Ipv6,
    ObsType::Email,
    ObsType::SocialAccount,
    ObsType::Hashtag,
    ObsType::FileSha256,
    ObsType::Phone,
    ObsType::AdId,
];

impl ObsType {
    /// The API's name (the protocol's JSON tag), e.g. `social-account`.
    pub fn name(self) -> &'static str {
        match self {
            ObsType::Domain => "domain",
            ObsType::Url => "url",
            ObsType::Ipv4 => "ipv4",
            ObsType::Ipv6 => "ipv6",
            ObsType::Email => "email",
            ObsType::SocialAccount => "social-account",
            ObsType::Hashtag => "hashtag",
            ObsType::FileSha256 => "file-sha256",
            ObsType::Phone => "phone",
            ObsType::AdId => "ad-id",
        }
    }

    /// The type named `name`, if any.
    pub fn parse(name: &str) -> Option<Self> {
        TYPES.into_iter().find(|t| t.name() == name)
    }

    /// The code stored in the index (1–10).
    pub fn code(self) -> i64 {
        TYPES
            .iter()
            .position(|t| *t == self)
            .map_or(0, |i| i as i64 + 1)
    }

    /// The type of a stored code.
    pub fn from_code(code: i64) -> Option<Self> {
        usize::try_from(code - 1)
            .ok()
            .and_then(|i| TYPES.get(i).copied())
    }
}

/// A normalized observable: what the index stores and a lookup searches.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct Key {
    /// The type.
    #[serde(rename = "type", serialize_with = "type_name")]
    pub ty: ObsType,
    /// The normalized value.
    pub value: String,
}

fn type_name<S: serde::Serializer>(t: &ObsType, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(t.name())
}

impl Key {
    fn new(ty: ObsType, value: String) -> Self {
        Key { ty, value }
    }
}

/// Why a lookup value cannot be read as the type asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a valid {ty}: {why}")]
pub struct InvalidValue {
    /// The type asked for.
    pub ty: &'static str,
    /// The value given.
    pub value: String,
    /// What is wrong.
    pub why: &'static str,
}

/// The key an alert's observable is indexed under.
pub fn key_of(o: &Observable) -> Key {
    match o {
        Observable::Domain(d) => Key::new(ObsType::Domain, domain(d)),
        Observable::Url(u) => Key::new(ObsType::Url, url(u).0),
        Observable::Ipv4(b) => Key::new(ObsType::Ipv4, Ipv4Addr::from(*b).to_string()),
        Observable::Ipv6(b) => Key::new(ObsType::Ipv6, Ipv6Addr::from(*b).to_string()),
        Observable::Email(e) => Key::new(ObsType::Email, email(e)),
        Observable::SocialAccount { platform, handle } => {
            Key::new(ObsType::SocialAccount, social(platform, handle))
        }
        Observable::Hashtag(h) => Key::new(ObsType::Hashtag, hashtag(h)),
        Observable::FileSha256(b) => Key::new(ObsType::FileSha256, hex::encode(b)),
        Observable::Phone(p) => Key::new(ObsType::Phone, phone(p)),
        Observable::AdId { network, id } => {
            Key::new(ObsType::AdId, format!("{}:{}", fold(network), id.trim()))
        }
    }
}

/// The keys a lookup of `input` as type `ty` searches: one, and for a URL also its
/// host (a domain or an address), so that a URL lookup finds alerts on its domain.
pub fn keys_typed(ty: ObsType, input: &str) -> Result<Vec<Key>, InvalidValue> {
    let input = input.trim();
    let invalid = |why| InvalidValue {
        ty: ty.name(),
        value: input.to_string(),
        why,
    };
    let one = |value| Ok(vec![Key::new(ty, value)]);
    match ty {
        ObsType::Domain => {
            if input.contains(['/', ' ', '@']) {
                return Err(invalid("a domain has no '/', '@' or spaces"));
            }
            one(domain(input))
        }
        ObsType::Url => {
            let (value, host) = url(input);
            Ok(std::iter::once(Key::new(ty, value)).chain(host).collect())
        }
        ObsType::Ipv4 => input
            .parse::<Ipv4Addr>()
            .map(|a| vec![Key::new(ty, a.to_string())])
            .map_err(|_| invalid("expected a dotted quad such as 192.0.2.7")),
        ObsType::Ipv6 => parse_ipv6(input)
            .map(|a| vec![Key::new(ty, a.to_string())])
            .ok_or_else(|| invalid("expected an IPv6 address such as 2001:db8::1")),
        ObsType::Email => {
            if !input.contains('@') {
                return Err(invalid("an email address has an '@'"));
            }
            one(email(input))
        }
        ObsType::SocialAccount => match input.split_once(':') {
            Some((p, h)) if !p.trim().is_empty() && !h.trim().is_empty() => one(social(p, h)),
            _ => Err(invalid(
                "expected platform:handle, e.g. example-social:@fake_news",
            )),
        },
        ObsType::Hashtag => one(hashtag(input)),
        ObsType::FileSha256 => {
            if input.len() == 64 && input.bytes().all(|b| b.is_ascii_hexdigit()) {
                one(input.to_ascii_lowercase())
            } else {
                Err(invalid("expected 64 hex digits"))
            }
        }
        ObsType::Phone => {
            if input.bytes().filter(u8::is_ascii_digit).count() < 3 {
                return Err(invalid("a phone number has digits"));
            }
            one(phone(input))
        }
        ObsType::AdId => match input.split_once(':') {
            Some((n, id)) if !n.trim().is_empty() && !id.trim().is_empty() => {
                one(format!("{}:{}", fold(n), id.trim()))
            }
            _ => Err(invalid("expected network:id")),
        },
    }
}

/// The keys a lookup of `input` without a type searches: every type it reads as (an
/// address, a SHA-256, a URL and its host, a hashtag, a phone number,
/// `platform:handle` / `network:id`, an email address, a domain; a bare word is a hashtag). Empty if it
/// reads as nothing (e.g. `@handle` without its platform).
pub fn keys_untyped(input: &str) -> Vec<Key> {
    let s = input.trim();
    let typed = |ty| keys_typed(ty, s).unwrap_or_default();
    if s.parse::<Ipv4Addr>().is_ok() {
        return typed(ObsType::Ipv4);
    }
    if parse_ipv6(s).is_some() {
        return typed(ObsType::Ipv6);
    }
    if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return typed(ObsType::FileSha256);
    }
    if s.contains("://") {
        return typed(ObsType::Url);
    }
    if let Some(tag) = s.strip_prefix('#') {
        return typed(ObsType::Hashtag)
            .into_iter()
            .filter(|_| !tag.is_empty())
            .collect();
    }
    let phone_chars = s
        .bytes()
        .all(|b| b.is_ascii_digit() || b" +-.()/".contains(&b));
    if phone_chars && s.bytes().filter(u8::is_ascii_digit).count() >= 7 {
        return typed(ObsType::Phone);
    }
    if s.starts_with('@') {
        return vec![];
    }
    if s.contains(':') {
        let mut keys = typed(ObsType::SocialAccount);
        keys.extend(typed(ObsType::AdId));
        return keys;
    }
    if s.contains('@') {
        return typed(ObsType::Email);
    }
    if s.contains('/') {
        return typed(ObsType::Url);
    }
    if s.contains('.') {
        return typed(ObsType::Domain);
    }
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
    {
        return typed(ObsType::Hashtag);
    }
    vec![]
}

fn fold(s: &str) -> String {
    s.trim().to_lowercase()
}

fn domain(d: &str) -> String {
    let d = fold(d);
    let d = d.trim_end_matches('.');
    match url::Host::parse(d) {
        Ok(url::Host::Domain(ascii)) => ascii,
        _ => d.to_string(),
    }
}

/// A URL's normalized text, and the key of its host (a domain or an address), if any.
fn url(u: &str) -> (String, Option<Key>) {
    let u = u.trim();
    let parsed = if u.contains("://") {
        url::Url::parse(u)
    } else {
        url::Url::parse(&format!("http://{u}"))
    };
    let Ok(mut parsed) = parsed else {
        return (u.to_string(), None);
    };
    parsed.set_fragment(None);
    let host = match parsed.host() {
        Some(url::Host::Domain(d)) => {
            let d = domain(d);
            if parsed.set_host(Some(&d)).is_err() {
                return (u.to_string(), None);
            }
            Some(Key::new(ObsType::Domain, d))
        }
        Some(url::Host::Ipv4(a)) => Some(Key::new(ObsType::Ipv4, a.to_string())),
        Some(url::Host::Ipv6(a)) => Some(Key::new(ObsType::Ipv6, a.to_string())),
        None => None,
    };
    (parsed.to_string(), host)
}

fn parse_ipv6(s: &str) -> Option<Ipv6Addr> {
    let s = s
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(s);
    s.parse().ok()
}

fn email(e: &str) -> String {
    fold(e).trim_end_matches('.').to_string()
}

fn social(platform: &str, handle: &str) -> String {
    let handle = fold(handle);
    format!(
        "{}:{}",
        fold(platform),
        handle.strip_prefix('@').unwrap_or(&handle)
    )
}

fn hashtag(h: &str) -> String {
    fold(h.trim().trim_start_matches('#'))
}

fn phone(p: &str) -> String {
    let compact: String = p
        .chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '-' | '.' | '(' | ')' | '/'))
        .collect();
    let international = compact
        .strip_prefix('+')
        .or_else(|| compact.strip_prefix("00"));
    match international {
        Some(digits)
            if (7..=15).contains(&digits.len())
                && digits.bytes().all(|b| b.is_ascii_digit())
                && !digits.starts_with('0') =>
        {
            format!("+{digits}")
        }
        _ => compact,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(ty: ObsType, v: &str) -> Key {
        Key::new(ty, v.into())
    }

    #[test]
    fn observables_normalize() {
        let cases = [
            (
                Observable::Domain("Bad.Example.".into()),
                k(ObsType::Domain, "bad.example"),
            ),
            (
                Observable::Domain("BÜCHER.example".into()),
                k(ObsType::Domain, "xn--bcher-kva.example"),
            ),
            (
                Observable::Url("HTTPS://Bad.Example.:443/Login?x=1#frag".into()),
                k(ObsType::Url, "https://bad.example/Login?x=1"),
            ),
            (
                Observable::Url("bad.example/a".into()),
                k(ObsType::Url, "http://bad.example/a"),
            ),
            (
                Observable::Ipv4([192, 0, 2, 7]),
                k(ObsType::Ipv4, "192.0.2.7"),
            ),
            (
                Observable::Ipv6([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
                k(ObsType::Ipv6, "2001:db8::1"),
            ),
            (
                Observable::Email("Mallory@Bad.Example".into()),
                k(ObsType::Email, "mallory@bad.example"),
            ),
            (
                Observable::SocialAccount {
                    platform: "Example-Social".into(),
                    handle: "@Fake_Poll".into(),
                },
                k(ObsType::SocialAccount, "example-social:fake_poll"),
            ),
            (
                Observable::Hashtag("#StopTheVote".into()),
                k(ObsType::Hashtag, "stopthevote"),
            ),
            (
                Observable::FileSha256([0xab; 32]),
                k(ObsType::FileSha256, &"ab".repeat(32)),
            ),
            (
                Observable::Phone("+1 (202) 555-0123".into()),
                k(ObsType::Phone, "+12025550123"),
            ),
            (
                Observable::Phone("0049 30 1234567".into()),
                k(ObsType::Phone, "+49301234567"),
            ),
            (
                Observable::Phone("030 1234567".into()),
                k(ObsType::Phone, "0301234567"),
            ),
            (
                Observable::AdId {
                    network: "AdNet".into(),
                    id: "Ab12".into(),
                },
                k(ObsType::AdId, "adnet:Ab12"),
            ),
        ];
        for (o, want) in cases {
            assert_eq!(key_of(&o), want, "{o:?}");
        }
    }

    #[test]
    fn lookups_read_what_they_are() {
        let keys = |s| keys_untyped(s);
        assert_eq!(
            keys("BAD.example."),
            vec![k(ObsType::Domain, "bad.example")]
        );
        assert_eq!(
            keys("https://bad.example/login"),
            vec![
                k(ObsType::Url, "https://bad.example/login"),
                k(ObsType::Domain, "bad.example")
            ]
        );
        assert_eq!(
            keys("2001:DB8:0:0::1"),
            vec![k(ObsType::Ipv6, "2001:db8::1")]
        );
        assert_eq!(keys("[2001:db8::1]"), vec![k(ObsType::Ipv6, "2001:db8::1")]);
        assert_eq!(keys("192.0.2.7"), vec![k(ObsType::Ipv4, "192.0.2.7")]);
        assert_eq!(keys("#Vote"), vec![k(ObsType::Hashtag, "vote")]);
        assert_eq!(keys("Vote"), vec![k(ObsType::Hashtag, "vote")]);
        assert_eq!(
            keys("+1 202 555 0123"),
            vec![k(ObsType::Phone, "+12025550123")]
        );
        assert_eq!(keys("a@B.example"), vec![k(ObsType::Email, "a@b.example")]);
        assert_eq!(
            keys("social:@Fake"),
            vec![
                k(ObsType::SocialAccount, "social:fake"),
                k(ObsType::AdId, "social:@Fake")
            ]
        );
        assert!(keys("@fake").is_empty());
        assert!(keys("#").is_empty());
        assert!(keys("two words").is_empty());
        assert!(keys_typed(ObsType::Ipv4, "300.1.1.1").is_err());
        assert!(keys_typed(ObsType::FileSha256, "abc").is_err());
        assert!(keys_typed(ObsType::SocialAccount, "fake").is_err());
    }

    #[test]
    fn type_codes_round_trip() {
        for t in TYPES {
            assert_eq!(ObsType::from_code(t.code()), Some(t));
            assert_eq!(ObsType::parse(t.name()), Some(t));
        }
        assert_eq!(ObsType::from_code(0), None);
        assert_eq!(ObsType::parse("ipv5"), None);
    }
}
