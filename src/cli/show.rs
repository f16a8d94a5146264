//! `miemu config` and `miemu check-config`.

use std::path::Path;
use std::process::ExitCode;

use serde_json::json;

use super::Format;
use crate::config::raw::{
    RawAdmin, RawApp, RawContainer, RawServer, RawSystemIdentity, RawTokens, RawUserIdentity,
};
use crate::config::{self, Config, RawConfig};
use crate::identity::IdentityKind;

pub(super) fn config(file: Option<&Path>, format: Format) -> anyhow::Result<ExitCode> {
    let (raw, origin) = config::load(file)?;
    let config = Config::from_raw(&raw, &origin)?;
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&as_json(&config))?),
        Format::Toml => print!("{}", toml::to_string(&as_raw(&config))?),
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn check(file: &Path) -> anyhow::Result<ExitCode> {
    let result = config::load(Some(file)).and_then(|(raw, origin)| Config::from_raw(&raw, &origin));
    match result {
        Ok(c) => {
            println!(
                "{}: ok ({} identities, {} containers)",
                file.display(),
                c.platform.identities.iter().count(),
                c.platform.containers.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The effective configuration as JSON, secrets redacted.
fn as_json(c: &Config) -> serde_json::Value {
    let p = &c.platform;
    json!({
        "tenant_id": p.tenant_id,
        "issuer": c.tokens.issuer,
        "app": {
            "subscription_id": p.app.subscription_id,
            "resource_group": p.app.resource_group,
            "name": p.app.name,
            "kind": p.app.kind,
            "resource_id": p.app.resource_id(),
        },
        "identities": p.identities.iter().collect::<Vec<_>>(),
        "containers": p.containers.iter().map(|c| json!({
            "name": c.name,
            "kind": c.kind,
            "secret": "<redacted>",
        })).collect::<Vec<_>>(),
        "server": {
            "listen": c.server.listen.to_string(),
            "public_url": c.server.public_url,
            "key_dir": c.server.key_dir.display().to_string(),
            "env_dir": c.server.env_dir.as_ref().map(|d| d.display().to_string()),
        },
        "tokens": {
            "lifetime_secs": c.tokens.lifetime_secs,
            "cache": c.tokens.cache,
        },
    })
}

/// The effective configuration as a file miemu would accept, with derived
/// ids written out and secrets left out.
fn as_raw(c: &Config) -> RawConfig {
    let p = &c.platform;
    let system = p.identities.system().map(|i| RawSystemIdentity {
        client_id: Some(i.client_id.to_string()),
        principal_id: Some(i.principal_id.to_string()),
        lifecycle: Some(i.lifecycle.to_string()),
    });
    let users = p
        .identities
        .iter()
        .filter(|i| i.kind == IdentityKind::User)
        .map(|i| {
            let mut parts = i.resource_id.split('/');
            let sub = parts.nth(2).map(str::to_owned);
            let rg = parts.nth(1).map(str::to_owned);
            RawUserIdentity {
                name: Some(i.name.clone()),
                client_id: Some(i.client_id.to_string()),
                principal_id: Some(i.principal_id.to_string()),
                subscription_id: sub,
                resource_group: rg,
                lifecycle: Some(i.lifecycle.to_string()),
            }
        })
        .collect();
    RawConfig {
        tenant_id: Some(p.tenant_id.to_string()),
        app: RawApp {
            subscription_id: Some(p.app.subscription_id.to_string()),
            resource_group: Some(p.app.resource_group.clone()),
            name: Some(p.app.name.clone()),
            kind: Some(p.app.kind.as_str().to_owned()),
        },
        system_identity: system,
        user_identities: users,
        containers: p
            .containers
            .iter()
            .map(|c| RawContainer {
                name: Some(c.name.clone()),
                kind: Some(c.kind.to_string()),
                secret: None,
            })
            .collect(),
        server: RawServer {
            listen: Some(c.server.listen.to_string()),
            public_url: c.server.public_url.clone(),
            key_dir: Some(c.server.key_dir.display().to_string()),
            env_dir: c.server.env_dir.as_ref().map(|d| d.display().to_string()),
            dangerously_allow_forwarded: Some(c.server.allow_forwarded),
            request_log: Some(c.server.request_log),
            key_overlap_secs: Some(c.server.key_overlap_secs),
        },
        admin: RawAdmin {
            listen: c.admin.listen.map(|a| a.to_string()),
            token: None,
        },
        tokens: RawTokens {
            lifetime_secs: Some(c.tokens.lifetime_secs),
            issuer: Some(c.tokens.issuer.clone()),
            cache: Some(c.tokens.cache),
        },
    }
}
