//! Which identity a token request names, and finding it.
//!
//! The App Service protocol names a user-assigned identity by `client_id`,
//! `principal_id`/`object_id` or `mi_res_id` (`msi_res_id` is the IMDS
//! spelling, accepted as a courtesy); no selector means the system-assigned
//! identity. GUIDs and ARM ids compare case-insensitively, since ARM casing
//! varies (`resourceGroups` vs `resourcegroups`). This module does not parse
//! query strings: the protocol layer turns parameters into a [`Selector`].

use std::fmt;

use thiserror::Error;
use uuid::Uuid;

use super::{Identity, Registry};

/// How a request names an identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// No selector: the system-assigned identity.
    System,
    /// `client_id`.
    ClientId(String),
    /// `object_id` or `principal_id`.
    PrincipalId(String),
    /// `mi_res_id` or `msi_res_id`: an ARM resource id.
    ResourceId(String),
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::System => f.write_str("system"),
            Self::ClientId(v) => write!(f, "client_id={v}"),
            Self::PrincipalId(v) => write!(f, "principal_id={v}"),
            Self::ResourceId(v) => write!(f, "mi_res_id={v}"),
        }
    }
}

/// Why no identity was found.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LookupError {
    /// No selector was given and the app has no system-assigned identity.
    #[error("the app has no system-assigned identity")]
    NoSystemIdentity,
    /// The selector names no identity attached to the app.
    #[error("no identity matches {0}")]
    NotFound(Selector),
}

impl Registry {
    /// Finds the identity a selector names.
    ///
    /// `client_id` and `principal_id` also match the system-assigned identity:
    /// naming it explicitly is harmless and some clients pass the id they were
    /// configured with whatever its kind.
    pub fn resolve(&self, selector: &Selector) -> Result<&Identity, LookupError> {
        let found = match selector {
            Selector::System => return self.system().ok_or(LookupError::NoSystemIdentity),
            Selector::ClientId(v) => {
                let id = parse_guid(v);
                self.iter().find(|i| Some(i.client_id) == id)
            }
            Selector::PrincipalId(v) => {
                let id = parse_guid(v);
                self.iter().find(|i| Some(i.principal_id) == id)
            }
            Selector::ResourceId(v) => {
                let wanted = v.trim_end_matches('/');
                self.users()
                    .iter()
                    .find(|i| i.resource_id.eq_ignore_ascii_case(wanted))
            }
        };
        found.ok_or_else(|| LookupError::NotFound(selector.clone()))
    }
}

/// Parses a GUID in any casing, with or without braces; anything else matches
/// nothing.
fn parse_guid(s: &str) -> Option<Uuid> {
    let s = s.trim();
    let s = s
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .unwrap_or(s);
    if s.len() != 36 {
        return None;
    }
    Uuid::try_parse(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{IdentityKind, Lifecycle};

    fn identity(name: &str, kind: IdentityKind, n: u128) -> Identity {
        Identity {
            name: name.to_owned(),
            kind,
            client_id: Uuid::from_u128(n),
            principal_id: Uuid::from_u128(n + 1000),
            resource_id: format!(
                "/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}"
            ),
            lifecycle: Lifecycle::Main,
        }
    }

    fn registry(with_system: bool) -> Registry {
        let system = with_system.then(|| identity("system", IdentityKind::System, 1));
        Registry::new(
            system,
            vec![
                identity("reader", IdentityKind::User, 0xabcdef),
                identity("writer", IdentityKind::User, 3),
            ],
        )
    }

    #[test]
    fn no_selector_resolves_the_system_identity() {
        let r = registry(true);
        assert_eq!(
            r.resolve(&Selector::System).map(|i| i.name.as_str()),
            Ok("system")
        );
    }

    #[test]
    fn no_selector_without_system_identity_is_an_error() {
        let r = registry(false);
        assert_eq!(
            r.resolve(&Selector::System),
            Err(LookupError::NoSystemIdentity)
        );
    }

    #[test]
    fn client_id_matches_case_insensitively_and_with_braces() {
        let r = registry(true);
        let upper = Uuid::from_u128(0xabcdef).to_string().to_uppercase();
        for v in [upper.clone(), format!("{{{upper}}}")] {
            let found = r.resolve(&Selector::ClientId(v)).map(|i| i.name.as_str());
            assert_eq!(found, Ok("reader"));
        }
    }

    #[test]
    fn principal_id_matches_the_object_id() {
        let r = registry(true);
        let v = Uuid::from_u128(3 + 1000).to_string();
        assert_eq!(
            r.resolve(&Selector::PrincipalId(v))
                .map(|i| i.name.as_str()),
            Ok("writer")
        );
    }

    #[test]
    fn resource_id_matches_whatever_the_casing() {
        let r = registry(true);
        let v = "/SUBSCRIPTIONS/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/WRITER";
        assert_eq!(
            r.resolve(&Selector::ResourceId(v.to_owned()))
                .map(|i| i.name.as_str()),
            Ok("writer")
        );
    }

    #[test]
    fn unknown_or_malformed_ids_are_not_found() {
        let r = registry(true);
        for sel in [
            Selector::ClientId(Uuid::from_u128(99).to_string()),
            Selector::ClientId("not-a-guid".to_owned()),
            Selector::PrincipalId(String::new()),
            Selector::ResourceId("/subscriptions/x".to_owned()),
        ] {
            assert_eq!(r.resolve(&sel), Err(LookupError::NotFound(sel.clone())));
        }
    }
}
