//! Query-string parsing that reports what is wrong instead of guessing.
//!
//! axum's `Query` extractor answers malformed input with a plain-text 400,
//! which SDKs that parse JSON error bodies cannot read; and it cannot tell a
//! repeated parameter from a single one. This parser keeps every pair, decodes
//! `+` and percent-escapes as HTML forms do (Rust's `azure_identity` sends
//! form encoding), refuses bytes that do not decode to UTF-8, and matches
//! names case-insensitively, as ASP.NET model binding does on the real
//! endpoint.

use std::borrow::Cow;

use thiserror::Error;

/// Longest query string accepted, in bytes.
pub const MAX_QUERY_LEN: usize = 8 * 1024;

/// Why a query string could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum QueryError {
    /// Longer than [`MAX_QUERY_LEN`].
    #[error("the query string is longer than {MAX_QUERY_LEN} bytes")]
    TooLong,
    /// A name or value does not decode to UTF-8.
    #[error("query parameter {0:?} is not valid UTF-8 after percent-decoding")]
    NotUtf8(String),
    /// A parameter that may appear once appeared several times.
    #[error("query parameter '{0}' is given more than once")]
    Repeated(&'static str),
}

/// Decoded query parameters, in order. Borrowed from the query string
/// unless decoding changed them.
#[derive(Debug, Default)]
pub struct Params<'q>(Vec<(Cow<'q, str>, Cow<'q, str>)>);

impl<'q> Params<'q> {
    /// Parses a raw (still encoded) query string.
    pub fn parse(raw: Option<&'q str>) -> Result<Self, QueryError> {
        let Some(raw) = raw else {
            return Ok(Self::default());
        };
        if raw.len() > MAX_QUERY_LEN {
            return Err(QueryError::TooLong);
        }
        let mut pairs = Vec::with_capacity(raw.bytes().filter(|b| *b == b'&').count() + 1);
        for part in raw.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = part.split_once('=').unwrap_or((part, ""));
            let name = decode(name)?;
            let value = decode(value).map_err(|_| QueryError::NotUtf8(name.to_string()))?;
            pairs.push((name, value));
        }
        Ok(Self(pairs))
    }

    /// The value of a parameter that may appear at most once; `None` when
    /// absent. Names compare case-insensitively.
    pub fn single(&self, name: &'static str) -> Result<Option<&str>, QueryError> {
        let mut found = self
            .0
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref());
        let first = found.next();
        if found.next().is_some() {
            return Err(QueryError::Repeated(name));
        }
        Ok(first)
    }
}

fn decode(s: &str) -> Result<Cow<'_, str>, QueryError> {
    if !s.contains(['%', '+']) {
        return Ok(Cow::Borrowed(s));
    }
    // Decoding only shrinks: one allocation of the input's size.
    let mut bytes = Vec::with_capacity(s.len());
    for (i, part) in s.split('+').enumerate() {
        if i > 0 {
            bytes.push(b' ');
        }
        bytes.extend(percent_encoding::percent_decode_str(part));
    }
    String::from_utf8(bytes)
        .map(Cow::Owned)
        .map_err(|_| QueryError::NotUtf8(s.chars().take(40).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_and_plus_encodings_are_decoded() {
        let p = Params::parse(Some(
            "resource=https%3A%2F%2Fvault.azure.net&a=b+c&b=%2B+%20+",
        ))
        .unwrap();
        assert_eq!(
            p.single("resource").unwrap(),
            Some("https://vault.azure.net")
        );
        assert_eq!(p.single("a").unwrap(), Some("b c"));
        assert_eq!(p.single("b").unwrap(), Some("+   "));
    }

    #[test]
    fn names_match_case_insensitively() {
        let p = Params::parse(Some("Resource=x&API-VERSION=2019-08-01")).unwrap();
        assert_eq!(p.single("resource").unwrap(), Some("x"));
        assert_eq!(p.single("api-version").unwrap(), Some("2019-08-01"));
    }

    #[test]
    fn repeated_parameters_are_refused() {
        let p = Params::parse(Some("resource=a&RESOURCE=b")).unwrap();
        assert_eq!(p.single("resource"), Err(QueryError::Repeated("resource")));
    }

    #[test]
    fn undecodable_bytes_are_refused() {
        assert!(matches!(
            Params::parse(Some("resource=%FF%FE")),
            Err(QueryError::NotUtf8(_))
        ));
    }

    #[test]
    fn broken_escapes_are_kept_literally_and_empty_pairs_ignored() {
        let p = Params::parse(Some("&&resource=a%zzb&flag")).unwrap();
        assert_eq!(p.single("resource").unwrap(), Some("a%zzb"));
        assert_eq!(p.single("flag").unwrap(), Some(""));
        assert_eq!(p.single("missing").unwrap(), None);
    }

    #[test]
    fn oversized_queries_are_refused() {
        let long = format!("resource={}", "a".repeat(MAX_QUERY_LEN));
        assert_eq!(Params::parse(Some(&long)).unwrap_err(), QueryError::TooLong);
    }
}
