//! Who may get a token for which identity: pure functions from facts to a
//! decision.
//!
//! Container Apps gives managed identities to containers according to each
//! identity's lifecycle (`main`, `init`, `all`, `none`); the classic rule is
//! that init containers get none. Two refusals follow:
//!
//! - an init container calls while *no* identity is open to init containers:
//!   it is refused outright (403), with a message that says so;
//! - a container asks for an identity whose lifecycle excludes its kind: the
//!   platform answers as if the identity did not exist (400 "No User Assigned
//!   or Delegated Managed Identity found…").
//!
//! [`Admitted`] can only be built here and [`crate::token::mint`] requires
//! one, so a handler cannot mint without asking. This module knows nothing
//! of HTTP.

use std::fmt;

use crate::identity::{Identity, Lifecycle, Registry};
use crate::platform::{Container, ContainerKind};

/// Proof that the policy admitted a caller for an identity. Zero-sized; its
/// private field keeps it from being built outside this module.
#[derive(Debug)]
pub struct Admitted(());

/// Why a caller was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The machine-readable reason.
    pub reason: RefusalReason,
    /// The calling container.
    pub container: String,
}

/// The reasons for a refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefusalReason {
    /// An init container called and no identity is open to init containers.
    InitContainer,
    /// The identity exists but its lifecycle excludes the caller's kind.
    Lifecycle {
        /// The identity's lifecycle.
        lifecycle: Lifecycle,
        /// The caller's kind.
        kind: ContainerKind,
    },
}

impl fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InitContainer => f.write_str("init_container"),
            Self::Lifecycle { .. } => f.write_str("lifecycle"),
        }
    }
}

/// Checks the caller before anything else: an init container with no
/// identity open to init containers is refused whatever it asks for.
pub fn check_caller(caller: &Container, identities: &Registry) -> Result<(), Refusal> {
    if caller.kind == ContainerKind::Init && !identities.any_open_to(ContainerKind::Init) {
        return Err(Refusal {
            reason: RefusalReason::InitContainer,
            container: caller.name.clone(),
        });
    }
    Ok(())
}

/// Decides whether `caller` may get a token for `identity`.
pub fn admit(caller: &Container, identity: &Identity) -> Result<Admitted, Refusal> {
    if identity.lifecycle.allows(caller.kind) {
        Ok(Admitted(()))
    } else {
        Err(Refusal {
            reason: RefusalReason::Lifecycle {
                lifecycle: identity.lifecycle,
                kind: caller.kind,
            },
            container: caller.name.clone(),
        })
    }
}

/// Admission for miemu's own tooling paths that mint outside a request
/// (benchmarks, tests). Named to stand out in review.
#[doc(hidden)]
pub fn dangerously_admit_without_caller() -> Admitted {
    Admitted(())
}

#[cfg(test)]
mod tests;
