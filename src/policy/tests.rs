//! Every combination of container kind × lifecycle × selector, end to end
//! through the two policy checks and the registry.

use uuid::Uuid;

use super::*;
use crate::identity::{IdentityKind, LookupError, Selector};
use crate::secret::Secret;

fn container(kind: ContainerKind) -> Container {
    Container {
        name: format!("{kind}-container"),
        kind,
        secret: Secret::new("x".repeat(10)),
    }
}

fn identity(kind: IdentityKind, lifecycle: Lifecycle) -> Identity {
    let n = match kind {
        IdentityKind::System => 1,
        IdentityKind::User => 2,
    };
    Identity {
        name: format!("{kind:?}"),
        kind,
        client_id: Uuid::from_u128(n),
        principal_id: Uuid::from_u128(n + 100),
        resource_id: format!("/subscriptions/s/resourcegroups/rg/providers/p/{n}"),
        lifecycle,
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Token,
    InitRefused,
    NotFound,
}

/// The whole decision a request gets, in the order the handler applies it.
fn decide(caller: &Container, registry: &Registry, selector: &Selector) -> Outcome {
    if check_caller(caller, registry).is_err() {
        return Outcome::InitRefused;
    }
    match registry.resolve(selector) {
        Err(LookupError::NotFound(_) | LookupError::NoSystemIdentity) => Outcome::NotFound,
        Ok(identity) => match admit(caller, identity) {
            Ok(_) => Outcome::Token,
            Err(_) => Outcome::NotFound,
        },
    }
}

const LIFECYCLES: [Lifecycle; 4] = [
    Lifecycle::Main,
    Lifecycle::Init,
    Lifecycle::All,
    Lifecycle::None,
];

#[test]
fn every_kind_lifecycle_and_selector_gets_the_documented_outcome() {
    for kind in [ContainerKind::Main, ContainerKind::Init] {
        for system_lc in LIFECYCLES {
            for user_lc in LIFECYCLES {
                let system = identity(IdentityKind::System, system_lc);
                let user = identity(IdentityKind::User, user_lc);
                let registry = Registry::new(Some(system.clone()), vec![user.clone()]);
                let caller = container(kind);
                let init_open =
                    system_lc.allows(ContainerKind::Init) || user_lc.allows(ContainerKind::Init);
                let selectors = [
                    (Selector::System, Some(system_lc)),
                    (
                        Selector::ClientId(user.client_id.to_string()),
                        Some(user_lc),
                    ),
                    (
                        Selector::PrincipalId(user.principal_id.to_string()),
                        Some(user_lc),
                    ),
                    (
                        Selector::ResourceId(user.resource_id.to_uppercase()),
                        Some(user_lc),
                    ),
                    (Selector::ClientId(Uuid::from_u128(999).to_string()), None),
                ];
                for (selector, target) in selectors {
                    let expected = if kind == ContainerKind::Init && !init_open {
                        Outcome::InitRefused
                    } else {
                        match target {
                            Some(lc) if lc.allows(kind) => Outcome::Token,
                            _ => Outcome::NotFound,
                        }
                    };
                    assert_eq!(
                        decide(&caller, &registry, &selector),
                        expected,
                        "caller {kind}, system {system_lc}, user {user_lc}, {selector}"
                    );
                }
            }
        }
    }
}

#[test]
fn init_container_refusal_names_the_container() {
    let registry = Registry::new(
        Some(identity(IdentityKind::System, Lifecycle::Main)),
        vec![],
    );
    let refusal = check_caller(&container(ContainerKind::Init), &registry).unwrap_err();
    assert_eq!(refusal.reason, RefusalReason::InitContainer);
    assert_eq!(refusal.container, "init-container");
}

#[test]
fn an_app_without_identities_refuses_init_containers_outright() {
    let registry = Registry::new(None, vec![]);
    assert!(check_caller(&container(ContainerKind::Init), &registry).is_err());
    assert!(check_caller(&container(ContainerKind::Main), &registry).is_ok());
}
