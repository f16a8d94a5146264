//! A string that must never be printed: container `IDENTITY_HEADER` values and
//! the admin token.
//!
//! `Debug` and `Display` are redacted, and comparison is constant-time so that
//! the time a refusal takes says nothing about how much of a guess was right.
//! This type does not zeroize on drop: the values are random per run and also
//! live in the env files miemu writes, so wiping memory would buy nothing.

use std::fmt;

use subtle::ConstantTimeEq;

/// A redacted secret string.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// A fresh random secret (a v4 UUID, the shape Container Apps uses).
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    /// The value, for the few places that must hand it out (env files,
    /// the start-up summary a user asked for).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison with a presented value. Lengths are compared
    /// first (that leaks only the length, which is fixed for generated secrets).
    pub fn matches(&self, presented: &[u8]) -> bool {
        self.0.as_bytes().ct_eq(presented).into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_is_redacted_in_debug_and_display() {
        let s = Secret::new("hunter2-very-secret");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!format!("{s}").contains("hunter2"));
    }

    #[test]
    fn secret_matches_only_the_exact_value() {
        let s = Secret::new("abc");
        assert!(s.matches(b"abc"));
        assert!(!s.matches(b"abd"));
        assert!(!s.matches(b"ab"));
        assert!(!s.matches(b"abcd"));
        assert!(!s.matches(b""));
    }
}
