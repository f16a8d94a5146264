//! The `resource` a token is for: checked and normalised, never rewritten.
//!
//! Clients send an Entra v1 resource (an absolute URI such as
//! `https://vault.azure.net` or an application id GUID). Every SDK strips a
//! trailing `/.default` scope suffix before sending; miemu strips it too if a
//! client forgets, and otherwise keeps the value exactly as sent: it is echoed
//! in the response and becomes the token's `aud`, and msal-node keys its cache
//! on that echo. This module does not decode percent-encoding (the protocol
//! layer does).

use std::fmt;

use thiserror::Error;

/// Longest accepted resource, in bytes. Real audiences are far shorter.
pub const MAX_LEN: usize = 2048;

/// A validated resource.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Resource(String);

/// Why a `resource` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ResourceError {
    /// Empty (or only `/.default`).
    #[error("the resource is empty")]
    Empty,
    /// Longer than [`MAX_LEN`].
    #[error("the resource is longer than {MAX_LEN} bytes")]
    TooLong,
    /// Neither an absolute URI nor a GUID.
    #[error("the resource {0:?} is not an absolute URI or an application id (GUID)")]
    Malformed(String),
}

impl Resource {
    /// Checks and normalises a decoded `resource` value.
    pub fn parse(raw: &str) -> Result<Self, ResourceError> {
        let value = raw.strip_suffix("/.default").unwrap_or(raw);
        if value.is_empty() {
            return Err(ResourceError::Empty);
        }
        if value.len() > MAX_LEN {
            return Err(ResourceError::TooLong);
        }
        let shown = || value.chars().take(80).collect::<String>();
        let unprintable = if value.is_ascii() {
            value.bytes().any(|b| b <= b' ' || b == 0x7f)
        } else {
            value.chars().any(|c| c.is_control() || c.is_whitespace())
        };
        if unprintable {
            return Err(ResourceError::Malformed(shown()));
        }
        if is_absolute_uri(value) || is_guid(value) {
            Ok(Self(value.to_owned()))
        } else {
            Err(ResourceError::Malformed(shown()))
        }
    }

    /// The value, as echoed and used as `aud`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The value, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// RFC 3986 scheme followed by a non-empty remainder.
fn is_absolute_uri(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !rest.is_empty()
}

fn is_guid(s: &str) -> bool {
    s.len() == 36 && uuid::Uuid::try_parse(s).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_and_guids_are_kept_verbatim() {
        for v in [
            "https://vault.azure.net",
            "https://management.azure.com/",
            "api://my-api",
            "https://storage.azure.com/",
            "00000002-0000-0000-c000-000000000000",
        ] {
            assert_eq!(Resource::parse(v).unwrap().as_str(), v);
        }
    }

    #[test]
    fn a_trailing_default_scope_is_stripped_once() {
        let r = Resource::parse("https://management.azure.com//.default").unwrap();
        assert_eq!(r.as_str(), "https://management.azure.com/");
        let r = Resource::parse("https://vault.azure.net/.default").unwrap();
        assert_eq!(r.as_str(), "https://vault.azure.net");
    }

    #[test]
    fn bad_resources_are_refused_with_a_reason() {
        assert_eq!(Resource::parse(""), Err(ResourceError::Empty));
        assert_eq!(Resource::parse("/.default"), Err(ResourceError::Empty));
        assert_eq!(
            Resource::parse(&"h".repeat(MAX_LEN + 1)),
            Err(ResourceError::TooLong)
        );
        for v in [
            "vault",
            "https://vault azure",
            "1abc:x",
            ":x",
            "https:",
            "a\u{0}b:c",
        ] {
            assert!(
                matches!(Resource::parse(v), Err(ResourceError::Malformed(_))),
                "{v}"
            );
        }
    }
}
