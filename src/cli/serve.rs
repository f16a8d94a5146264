//! `miemu serve`: validate, load the key, bind, tell the user what to export,
//! serve until SIGTERM or Ctrl-C.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;

use super::ServeArgs;
use crate::clock::{Clock, SystemClock};
use crate::config::{self, Config};
use crate::token::{KeyOrigin, SigningKey};
use crate::{envfile, server, telemetry};

pub(super) fn serve(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let (mut raw, origin) = config::load(args.config.as_deref())?;
    args.overrides().apply(&mut raw);
    let config = Config::from_raw(&raw, &origin)?;
    telemetry::init(args.log_format);

    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let key_dir = config.server.key_dir.clone();
    let (key, key_origin) = SigningKey::load_or_create(&key_dir, clock.now())
        .with_context(|| format!("loading the signing key from {}", key_dir.display()))?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.server.listen)
            .await
            .with_context(|| format!("binding {}", config.server.listen))?;
        let bound = listener.local_addr().context("reading the bound address")?;
        if !bound.ip().is_loopback() {
            tracing::warn!(listen = %bound, "listening on a non-loopback address: anything that can reach it may ask for tokens");
        }
        let public_url = config.public_url(bound);
        let endpoint = format!("{public_url}/msi/token");
        let env_files = match &config.server.env_dir {
            Some(dir) => Some(
                envfile::write_all(dir, &config.platform, &endpoint)
                    .with_context(|| format!("writing env files into {}", dir.display()))?,
            ),
            None => None,
        };
        print!("{}", summary(&config, &key, key_origin, &public_url, env_files.is_some()));
        tracing::info!(listen = %bound, token.kid = key.kid(), identities = config.platform.identities.iter().count(), containers = config.platform.containers.len(), "listening");

        let state = crate::AppState::new(config, key, clock, public_url);
        let router = crate::build_router(state);
        server::run(listener, router, server::DEFAULT_MAX_CONNECTIONS, server::shutdown_signal())
            .await
            .context("serving")?;
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// The start-up summary on stdout: where miemu listens, what it knows, and
/// the exact environment each container needs. Secrets appear here only
/// when no env directory was given (the user has no other way to learn
/// them); they never go to the log.
fn summary(
    config: &Config,
    key: &SigningKey,
    origin: KeyOrigin,
    public_url: &str,
    env_dir: bool,
) -> String {
    let p = &config.platform;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "miemu {} listening on {public_url}",
        env!("CARGO_PKG_VERSION")
    );
    let _ = writeln!(
        s,
        "  token endpoint  {public_url}/msi/token (api-version 2019-08-01)"
    );
    let _ = writeln!(
        s,
        "  discovery       {public_url}/{}/.well-known/openid-configuration",
        p.tenant_id
    );
    let _ = writeln!(s, "  tenant          {}", p.tenant_id);
    let _ = writeln!(s, "  issuer          {}", config.tokens.issuer);
    let _ = writeln!(s, "  app             {}", p.app.resource_id());
    let how = match origin {
        KeyOrigin::Loaded => "loaded from",
        KeyOrigin::Created => "created in",
    };
    let _ = writeln!(
        s,
        "  signing key     kid {} ({how} {})",
        key.kid(),
        config.server.key_dir.display()
    );
    let _ = writeln!(s, "identities:");
    for i in p.identities.iter() {
        let _ = writeln!(
            s,
            "  {:<16} {:<6}  client_id {}  principal_id {}  lifecycle {}",
            i.name,
            match i.kind {
                crate::identity::IdentityKind::System => "system",
                crate::identity::IdentityKind::User => "user",
            },
            i.client_id,
            i.principal_id,
            i.lifecycle
        );
    }
    let _ = writeln!(s, "containers:");
    for c in &p.containers {
        let _ = writeln!(s, "  {} ({})", c.name, c.kind);
        match (&config.server.env_dir, env_dir) {
            (Some(dir), true) => {
                let _ = writeln!(
                    s,
                    "    env file {}",
                    dir.join(format!("{}.env", c.name)).display()
                );
            }
            _ => {
                for (name, value) in envfile::variables(c, &format!("{public_url}/msi/token")) {
                    let _ = writeln!(s, "    export {name}={value}");
                }
            }
        }
    }
    s
}
