//! The observable index (issue 23): who reported a value, when, on which topics; which
//! alerts share observables; how many orgs independently sighted a value.
//!
//! Only decrypted alerts are stored, so only what this node can read is indexed and
//! found. The writer indexes each alert row in the row's own transaction
//! ([`index_alert`]); migration 4 builds the index of an older database.
//!
//! - `normalize`: the normalized `(type, value)` keys ([`Key`]).
//! - `index`: the tables and their writes; what counts is each alert's current state.
//! - `queries`: lookup, full-text search, correlations.
//!
//! This file checks what a client asks for ([`lookup_keys`], [`fts_query`]) and says
//! why a request is refused ([`QueryError`], with a stable reason label).

mod index;
mod normalize;
mod queries;

pub use index::{AlertMeta, PendingTerms, index_alert};
pub(crate) use index::{SCHEMA, backfill};
pub use normalize::{InvalidValue, Key, ObsType, TYPES, key_of, keys_typed, keys_untyped};
pub use queries::*;

/// Longest lookup value or search query accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 2048;
/// Most words of a search query.
pub const MAX_WORDS: usize = 16;

/// Why a lookup or search request is refused (HTTP 400), with a stable reason label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// No value or query given.
    #[error("empty {0}: give something to look for")]
    Empty(&'static str),
    /// Longer than [`MAX_QUERY_BYTES`].
    #[error("{0} longer than {MAX_QUERY_BYTES} bytes")]
    TooLong(&'static str),
    /// More than [`MAX_WORDS`] words.
    #[error("more than {MAX_WORDS} words in the query")]
    TooManyWords,
    /// An observable type that does not exist.
    #[error("unknown observable type {0:?}; one of: {types}", types = type_names())]
    UnknownType(String),
    /// The value is not of the type asked for.
    #[error(transparent)]
    InvalidValue(#[from] InvalidValue),
    /// The value reads as no observable type.
    #[error("{0:?} reads as no observable type; pass `type` (for an account: platform:handle)")]
    Unrecognized(String),
    /// A paging cursor that is not one this API returned.
    #[error("invalid cursor {0:?}: pass the `next` of the previous page")]
    InvalidCursor(String),
    /// Another parameter out of range.
    #[error("invalid {0}: {1}")]
    InvalidParam(&'static str, String),
}

impl QueryError {
    /// The reason label (JSON `reason`, metric label).
    pub fn reason(&self) -> &'static str {
        match self {
            QueryError::Empty(_) => "empty_query",
            QueryError::TooLong(_) => "query_too_long",
            QueryError::TooManyWords => "too_many_words",
            QueryError::UnknownType(_) => "unknown_type",
            QueryError::InvalidValue(_) => "invalid_value",
            QueryError::Unrecognized(_) => "unrecognized_value",
            QueryError::InvalidCursor(_) => "invalid_cursor",
            QueryError::InvalidParam(..) => "invalid_parameter",
        }
    }
}

fn type_names() -> String {
    TYPES.map(ObsType::name).join(", ")
}

/// The keys a lookup of `value` (of type `ty`, if given) searches.
pub fn lookup_keys(value: &str, ty: Option<&str>) -> Result<Vec<Key>, QueryError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(QueryError::Empty("value"));
    }
    if value.len() > MAX_QUERY_BYTES {
        return Err(QueryError::TooLong("value"));
    }
    let keys = match ty.map(str::trim).filter(|t| !t.is_empty()) {
        Some(t) => {
            let ty = ObsType::parse(t).ok_or_else(|| QueryError::UnknownType(t.to_string()))?;
            keys_typed(ty, value)?
        }
        None => keys_untyped(value),
    };
    if keys.is_empty() || keys.iter().any(|k| k.value.is_empty()) {
        return Err(QueryError::Unrecognized(value.to_string()));
    }
    Ok(keys)
}

/// The FTS5 expression of a user's search words: every word (a run of letters and
/// digits, as FTS5's `unicode61` tokenizer splits text) must appear, each quoted, so no
/// input is FTS5 syntax; a word ending in `*` matches as a prefix.
pub fn fts_query(q: &str) -> Result<String, QueryError> {
    if q.len() > MAX_QUERY_BYTES {
        return Err(QueryError::TooLong("query"));
    }
    let mut words = Vec::new();
    for piece in q.split_whitespace() {
        let prefix = piece.ends_with('*');
        let parts: Vec<&str> = piece
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect();
        let last = parts.len().saturating_sub(1);
        for (i, w) in parts.into_iter().enumerate() {
            let star = if prefix && i == last { "*" } else { "" };
            words.push(format!("\"{w}\"{star}"));
        }
    }
    if words.is_empty() {
        return Err(QueryError::Empty("query"));
    }
    if words.len() > MAX_WORDS {
        return Err(QueryError::TooManyWords);
    }
    Ok(words.join(" AND "))
}

/// A paging cursor given by a client (the `next` of a previous page).
pub fn parse_cursor(cursor: Option<&str>) -> Result<Option<i64>, QueryError> {
    match cursor.map(str::trim) {
        None | Some("") => Ok(None),
        Some(c) => c
            .parse::<i64>()
            .ok()
            .filter(|c| *c > 0)
            .map(Some)
            .ok_or_else(|| QueryError::InvalidCursor(c.chars().take(64).collect())),
    }
}

#[cfg(test)]
mod tests;
