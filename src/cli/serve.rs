//! `miemu serve`: validate, load the key, bind, tell the user what to export,
//! serve until SIGTERM or Ctrl-C.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;

use super::ServeArgs;
use crate::clock::{Clock, SystemClock};
use crate::config::{self, Config};
use crate::faults::FaultSpec;
use crate::state::{EnvTarget, Extras, Source};
use crate::token::{KeyOrigin, KeyRing};
use crate::{envfile, reload, server, telemetry};

pub(super) fn serve(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let (text, origin) = config::read(args.config.as_deref())?;
    let mut raw = config::parse_str(&text, &origin)?;
    args.overrides().apply(&mut raw);
    let config = Config::from_raw(&raw, &origin)?;
    let raw = raw.clone();
    telemetry::init(args.log_format);

    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let key_dir = config.server.key_dir.clone();
    let (keys, key_origin) =
        KeyRing::load_or_create(&key_dir, clock.now(), config.server.key_overlap_secs)
            .with_context(|| format!("loading the signing key from {}", key_dir.display()))?;

    let faults = args
        .fault
        .iter()
        .map(|text| {
            serde_json::from_str(text)
                .map_err(|e| e.to_string())
                .and_then(FaultSpec::from_json)
                .map_err(|e| anyhow::anyhow!("--fault {text}: {e}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;

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
        if config.server.allow_forwarded {
            tracing::warn!("dangerously_allow_forwarded: token requests relayed by proxies (X-Forwarded-For) are answered");
        }
        let admin_listener = match config.admin.listen {
            Some(addr) => {
                let l = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding the admin API on {addr}"))?;
                if !addr.ip().is_loopback() {
                    tracing::warn!(admin.listen = %addr, "the admin API listens on a non-loopback address");
                }
                Some(l)
            }
            None => None,
        };
        let public_url = config.public_url(bound);
        let endpoint = format!("{public_url}/msi/token");
        let env = config.server.env_dir.clone().map(|dir| EnvTarget { dir, endpoint: endpoint.clone() });
        if let Some(target) = &env {
            envfile::write_all(&target.dir, &config.platform, &endpoint)
                .with_context(|| format!("writing env files into {}", target.dir.display()))?;
        }
        let admin_url = match &admin_listener {
            Some(l) => Some(format!("http://{}", l.local_addr().context("reading the admin address")?)),
            None => None,
        };
        print!("{}", summary(&config, &keys, key_origin, &public_url, env.is_some(), admin_url.as_deref()));
        tracing::info!(listen = %bound, token.kid = keys.signer().kid(), identities = config.platform.identities.iter().count(), containers = config.platform.containers.len(), "listening");

        let admin_token = config.admin.token.clone();
        let extras = Extras {
                        source: Some(Source {
                path: args.config.clone(),
                overrides: args.overrides(),
                text: Some(text),
            }),
            env,
            key_dir: Some(key_dir),
        };
        let state = crate::AppState::with_extras(config, raw, keys, clock, public_url, extras);
        for spec in faults {
            let now = state.now();
            state.faults().add(spec, now).context("--fault")?;
        }
        if let Some(secs) = args.not_ready_for {
            state.gate().close_for(std::time::Duration::from_secs(secs));
        }

        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = move || {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|stop| *stop).await;
            }
        };
        tokio::spawn(async move {
            server::shutdown_signal().await;
            let _ = stop_tx.send(true);
        });
        tokio::spawn(reload::watch(state.clone(), stopped()));
        let admin = admin_listener.map(|l| {
            let router = crate::admin::router(state.clone(), admin_token);
            tokio::spawn(server::run(l, router, 64, server::Gate::default(), stopped()))
        });
        let gate = state.gate().clone();
        let endpoint = crate::app::build(state);
        server::run(listener, endpoint, server::DEFAULT_MAX_CONNECTIONS, gate, stopped())
            .await
            .context("serving")?;
        if let Some(admin) = admin {
            let _ = admin.await;
        }
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// The start-up summary on stdout: where miemu listens, what it knows, and
/// the exact environment each container needs. Secrets appear here only
/// when no env directory was given (the user has no other way to learn
/// them), and the admin token when the admin API is on; they never go to
/// the log.
fn summary(
    config: &Config,
    keys: &KeyRing,
    origin: KeyOrigin,
    public_url: &str,
    env_dir: bool,
    admin_url: Option<&str>,
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
        keys.signer().kid(),
        config.server.key_dir.display()
    );
    if let Some(url) = admin_url {
        let _ = writeln!(
            s,
            "  admin API       {url} (Authorization: Bearer {})",
            config.admin.token.expose()
        );
    }
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
