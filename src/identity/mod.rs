//! Managed identities and the registry of those attached to the app.
//!
//! An app has at most one system-assigned identity and any number of
//! user-assigned ones. This module names them and finds them; it does not
//! decide who may use them (that is [`crate::policy`]) and knows nothing of
//! HTTP or tokens.

mod selector;

use std::fmt;

use serde::Serialize;
use uuid::Uuid;

use crate::platform::ContainerKind;

pub use selector::{LookupError, Selector};

/// System- or user-assigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentityKind {
    /// The app's own identity.
    System,
    /// A standalone identity resource attached to the app.
    User,
}

/// Which containers may get tokens for an identity, as Container Apps'
/// `identitySettings[].lifecycle`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Lifecycle {
    /// Main containers only (miemu's default: the classic Container Apps rule).
    Main,
    /// Init containers only.
    Init,
    /// Every container.
    All,
    /// No container; the identity is still listed (for registry pulls etc.).
    None,
}

impl Lifecycle {
    /// Parses the configuration spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "main" => Some(Self::Main),
            "init" => Some(Self::Init),
            "all" => Some(Self::All),
            "none" => Some(Self::None),
            _ => None,
        }
    }

    /// Whether a container of this kind may use the identity.
    pub fn allows(self, kind: ContainerKind) -> bool {
        matches!(
            (self, kind),
            (Self::All, _) | (Self::Main, ContainerKind::Main) | (Self::Init, ContainerKind::Init)
        )
    }
}

impl fmt::Display for Lifecycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Main => "main",
            Self::Init => "init",
            Self::All => "all",
            Self::None => "none",
        })
    }
}

/// One managed identity. Serialises as the admin API and `miemu config`
/// show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    /// Name: `system` for the system-assigned identity, else the resource name.
    pub name: String,
    /// System or user.
    pub kind: IdentityKind,
    /// Client (application) id: the token's `appid`.
    pub client_id: Uuid,
    /// Principal (object) id: the token's `oid` and `sub`.
    pub principal_id: Uuid,
    /// ARM id: the app's for the system identity, the identity's own otherwise.
    pub resource_id: String,
    /// Which containers may use it.
    pub lifecycle: Lifecycle,
}

/// The identities attached to the app.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    system: Option<Identity>,
    users: Vec<Identity>,
}

impl Registry {
    /// Builds a registry; the caller (configuration validation) has already
    /// checked that ids are unique.
    pub fn new(system: Option<Identity>, users: Vec<Identity>) -> Self {
        Self { system, users }
    }

    /// The system-assigned identity, if any.
    pub fn system(&self) -> Option<&Identity> {
        self.system.as_ref()
    }

    /// The user-assigned identities.
    pub fn users(&self) -> &[Identity] {
        &self.users
    }

    /// All identities, the system one first.
    pub fn iter(&self) -> impl Iterator<Item = &Identity> {
        self.system.iter().chain(self.users.iter())
    }

    /// Whether any identity is open to containers of this kind.
    pub fn any_open_to(&self, kind: ContainerKind) -> bool {
        self.iter().any(|i| i.lifecycle.allows(kind))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_allows_exactly_the_documented_container_kinds() {
        use ContainerKind::{Init, Main};
        let table = [
            (Lifecycle::Main, Main, true),
            (Lifecycle::Main, Init, false),
            (Lifecycle::Init, Main, false),
            (Lifecycle::Init, Init, true),
            (Lifecycle::All, Main, true),
            (Lifecycle::All, Init, true),
            (Lifecycle::None, Main, false),
            (Lifecycle::None, Init, false),
        ];
        for (lifecycle, kind, expected) in table {
            assert_eq!(lifecycle.allows(kind), expected, "{lifecycle} x {kind}");
        }
    }

    #[test]
    fn lifecycle_parses_case_insensitively() {
        assert_eq!(Lifecycle::parse("Main"), Some(Lifecycle::Main));
        assert_eq!(Lifecycle::parse("ALL"), Some(Lifecycle::All));
        assert_eq!(Lifecycle::parse("sometimes"), None);
    }
}
