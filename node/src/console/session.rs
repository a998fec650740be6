//! Console sessions and CSRF tokens, held in memory on the server.
//!
//! A session id and every CSRF token are 32 bytes from the operating system's CSPRNG.
//! The store keys sessions by the SHA-256 of their id (a lookup never compares secrets
//! byte by byte), holds at most [`MAX_SESSIONS`] (the oldest is dropped first), and
//! forgets a session after [`SESSION_TTL`]. CSRF tokens are single use: each form gets a
//! fresh one, and a token is gone once presented, so a replayed form is refused.

use rand::RngCore;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// How long a session lasts after login.
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
/// Most sessions held at once; logging in beyond it ends the oldest session.
pub const MAX_SESSIONS: usize = 32;
/// Most unused CSRF tokens one session holds (one per form rendered); older ones expire.
const MAX_CSRF: usize = 128;
/// Failed logins accepted per [`LOGIN_WINDOW`]; beyond them logins are refused until
/// the window has passed (the token is long, but guessing is not free).
pub const MAX_FAILED_LOGINS: usize = 10;
/// The window of [`MAX_FAILED_LOGINS`].
pub const LOGIN_WINDOW: Duration = Duration::from_secs(60);
/// The session cookie's name.
pub const SESSION_COOKIE: &str = "alertmesh_session";
/// The cookie pairing the login form with its CSRF token.
pub const LOGIN_COOKIE: &str = "alertmesh_login";

/// A random 32-byte secret, hex-encoded.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Whether two secrets are equal, in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

fn key_of(id: &str) -> [u8; 32] {
    alertmesh_protocol::ids::sha256(id.as_bytes())
}

struct Session {
    created: Instant,
    expires: Instant,
    /// SHA-256 of the unused CSRF tokens, oldest first.
    csrf: VecDeque<[u8; 32]>,
}

/// Why a request's session or CSRF token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// No session cookie.
    #[error("you are not logged in")]
    Missing,
    /// A cookie that names no live session: forged, from before a restart, or logged out.
    #[error("your session is not valid (forged, ended by logout or by a node restart)")]
    Unknown,
    /// The session has expired.
    #[error("your session has expired")]
    Expired,
    /// The form carried no CSRF token.
    #[error("the form carried no CSRF token")]
    CsrfMissing,
    /// The CSRF token is unknown or was used already.
    #[error("the form's CSRF token is not valid or was already used (a replayed form)")]
    CsrfInvalid,
}

/// The server-side session store.
#[derive(Default)]
pub struct Sessions {
    by_key: HashMap<[u8; 32], Session>,
    /// When the recent failed logins happened, oldest first.
    failed_logins: VecDeque<Instant>,
}

impl Sessions {
    /// Whether a login may be tried now (not too many failures in the last minute).
    pub fn login_allowed(&mut self, now: Instant) -> bool {
        while self
            .failed_logins
            .front()
            .is_some_and(|t| now.duration_since(*t) >= LOGIN_WINDOW)
        {
            self.failed_logins.pop_front();
        }
        self.failed_logins.len() < MAX_FAILED_LOGINS
    }

    /// Records a failed login.
    pub fn login_failed(&mut self, now: Instant) {
        self.failed_logins.push_back(now);
        while self.failed_logins.len() > MAX_FAILED_LOGINS {
            self.failed_logins.pop_front();
        }
    }

    /// Starts a session; returns its id (the cookie value).
    pub fn create(&mut self, now: Instant) -> String {
        self.by_key.retain(|_, s| s.expires > now);
        while self.by_key.len() >= MAX_SESSIONS {
            let Some(oldest) = self
                .by_key
                .iter()
                .min_by_key(|(_, s)| s.created)
                .map(|(k, _)| *k)
            else {
                break;
            };
            self.by_key.remove(&oldest);
        }
        let id = random_token();
        self.by_key.insert(
            key_of(&id),
            Session {
                created: now,
                expires: now + SESSION_TTL,
                csrf: VecDeque::new(),
            },
        );
        id
    }

    /// Checks a session id.
    pub fn check(&mut self, id: Option<&str>, now: Instant) -> Result<(), SessionError> {
        let id = id.ok_or(SessionError::Missing)?;
        let key = key_of(id);
        let session = self.by_key.get(&key).ok_or(SessionError::Unknown)?;
        if session.expires <= now {
            self.by_key.remove(&key);
            return Err(SessionError::Expired);
        }
        Ok(())
    }

    /// A fresh single-use CSRF token for a form of session `id`.
    pub fn issue_csrf(&mut self, id: &str) -> Result<String, SessionError> {
        let session = self
            .by_key
            .get_mut(&key_of(id))
            .ok_or(SessionError::Unknown)?;
        let token = random_token();
        session.csrf.push_back(key_of(&token));
        while session.csrf.len() > MAX_CSRF {
            session.csrf.pop_front();
        }
        Ok(token)
    }

    /// Consumes a CSRF token of session `id`: valid once.
    pub fn take_csrf(&mut self, id: &str, token: Option<&str>) -> Result<(), SessionError> {
        let token = token
            .filter(|t| !t.is_empty())
            .ok_or(SessionError::CsrfMissing)?;
        let session = self
            .by_key
            .get_mut(&key_of(id))
            .ok_or(SessionError::Unknown)?;
        let presented = key_of(token);
        let found = session
            .csrf
            .iter()
            .position(|t| bool::from(t.ct_eq(&presented)));
        match found {
            Some(i) => {
                session.csrf.remove(i);
                Ok(())
            }
            None => Err(SessionError::CsrfInvalid),
        }
    }

    /// Ends a session.
    pub fn end(&mut self, id: &str) {
        self.by_key.remove(&key_of(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tokens_are_single_use_and_per_session() {
        let mut s = Sessions::default();
        let now = Instant::now();
        let a = s.create(now);
        let b = s.create(now);
        let t = s.issue_csrf(&a).unwrap();
        assert_eq!(s.take_csrf(&b, Some(&t)), Err(SessionError::CsrfInvalid));
        assert_eq!(s.take_csrf(&a, None), Err(SessionError::CsrfMissing));
        assert_eq!(s.take_csrf(&a, Some(&t)), Ok(()));
        assert_eq!(s.take_csrf(&a, Some(&t)), Err(SessionError::CsrfInvalid));
    }

    #[test]
    fn failed_logins_are_throttled_for_a_minute() {
        let mut s = Sessions::default();
        let now = Instant::now();
        for _ in 0..MAX_FAILED_LOGINS {
            assert!(s.login_allowed(now));
            s.login_failed(now);
        }
        assert!(!s.login_allowed(now + Duration::from_secs(59)));
        assert!(s.login_allowed(now + LOGIN_WINDOW));
    }

    #[test]
    fn sessions_expire_end_and_are_bounded() {
        let mut s = Sessions::default();
        let now = Instant::now();
        let a = s.create(now);
        assert_eq!(s.check(Some(&a), now), Ok(()));
        assert_eq!(
            s.check(Some(&a), now + SESSION_TTL),
            Err(SessionError::Expired)
        );
        assert_eq!(s.check(Some("forged"), now), Err(SessionError::Unknown));
        assert_eq!(s.check(None, now), Err(SessionError::Missing));
        let first = s.create(now);
        for _ in 0..MAX_SESSIONS {
            s.create(now + Duration::from_secs(1));
        }
        assert_eq!(s.by_key.len(), MAX_SESSIONS);
        assert_eq!(s.check(Some(&first), now), Err(SessionError::Unknown));
        let c = s.create(now);
        s.end(&c);
        assert_eq!(s.check(Some(&c), now), Err(SessionError::Unknown));
    }
}
