//! Configuration parsing: `config::parse_str` on any text, then
//! `Config::from_raw` on whatever parses.
//!
//! Invariants besides "never panics": validation either succeeds or lists at
//! least one problem (and its message renders); a valid configuration has at
//! least one container, unique container names and secrets, each secret found
//! by `Platform::caller`, unique identity ids, and every identity resolvable
//! by its client id, principal id and (for user identities) ARM id.

#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use miemu::config::{self, Config, ConfigError};
use miemu::identity::{IdentityKind, Selector};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let raw = match config::parse_str(text, "fuzz") {
        Ok(raw) => raw,
        Err(e @ (ConfigError::Parse { .. } | ConfigError::Invalid { .. })) => {
            let _ = e.to_string();
            return;
        }
        Err(e) => panic!("parse_str returned {e:?}"),
    };
    let config = match Config::from_raw(&raw, "fuzz") {
        Ok(config) => config,
        Err(ConfigError::Invalid { problems, .. }) => {
            assert!(!problems.is_empty(), "invalid without a problem");
            for p in &problems {
                let _ = p.to_string();
            }
            return;
        }
        Err(e) => panic!("from_raw returned {e:?}"),
    };
    let platform = &config.platform;
    assert!(!platform.containers.is_empty());
    let mut names = HashSet::new();
    let mut secrets = HashSet::new();
    for c in &platform.containers {
        assert!(names.insert(c.name.as_str()), "container {} twice", c.name);
        let secret = c.secret.expose();
        assert!(secrets.insert(secret), "secret shared");
        assert!((8..=256).contains(&secret.len()));
        let caller = platform
            .caller(secret.as_bytes())
            .expect("own secret unknown");
        assert_eq!(caller.name, c.name);
    }
    assert!(platform.caller(b"").is_none());
    assert!((1..=366 * 24 * 3600).contains(&config.tokens.lifetime_secs));
    let mut client_ids = HashSet::new();
    let mut principal_ids = HashSet::new();
    for id in platform.identities.iter() {
        assert!(client_ids.insert(id.client_id));
        assert!(principal_ids.insert(id.principal_id));
        let by_client = platform
            .identities
            .resolve(&Selector::ClientId(id.client_id.to_string().to_uppercase()))
            .expect("identity not found by client id");
        assert_eq!(by_client, id);
        let by_principal = platform
            .identities
            .resolve(&Selector::PrincipalId(id.principal_id.to_string()))
            .expect("identity not found by principal id");
        assert_eq!(by_principal, id);
        if id.kind == IdentityKind::User {
            let by_arm = platform
                .identities
                .resolve(&Selector::ResourceId(id.resource_id.to_uppercase()))
                .expect("identity not found by ARM id");
            assert_eq!(by_arm, id);
        }
    }
    match platform.identities.system() {
        Some(system) => assert_eq!(
            platform.identities.resolve(&Selector::System).ok(),
            Some(system)
        ),
        None => assert!(platform.identities.resolve(&Selector::System).is_err()),
    }
});
