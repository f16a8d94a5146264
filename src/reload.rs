//! Changing the configuration while miemu runs: re-reading the file (on a
//! change, on SIGHUP, or when the admin API asks) and rewriting env files.
//!
//! A valid new configuration is swapped in whole ([`AppState::update`]); an
//! invalid one is rejected, logged and reported through the admin API while
//! the old one keeps serving. Containers without a configured secret keep
//! the one they have, so env files already read stay valid. Listener, key
//! and admin settings need a restart; a reload that changes them says so.

use std::time::Duration;

use crate::config::{self, Config, ConfigError};
use crate::envfile;
use crate::state::{AppState, Live, ReloadStatus};

/// How often the watcher looks at the file.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Re-reads the configuration source and swaps it in; on failure the old
/// configuration stays and the error is recorded.
pub fn reload(state: &AppState) -> Result<(), ConfigError> {
    let result = try_reload(state);
    let status = ReloadStatus {
        at: Some(state.now()),
        ok: Some(result.is_ok()),
        error: result.as_ref().err().map(ToString::to_string),
    };
    state.set_reload_status(status);
    match &result {
        Ok(()) => tracing::info!("configuration reloaded"),
        Err(e) => {
            tracing::error!(error = %e, "configuration rejected; the previous one keeps serving")
        }
    }
    result
}

fn try_reload(state: &AppState) -> Result<(), ConfigError> {
    let source = state.source();
    let (text, origin) = config::read(source.path.as_deref())?;
    // Remembered even if it turns out invalid, so the watcher does not retry
    // the same broken text every second.
    state.set_loaded_text(text.clone());
    let mut raw = config::parse_str(&text, &origin)?;
    source.overrides.clone().apply(&mut raw);
    let live = state.update(|current| {
        let config = Config::from_raw_with(&raw, &origin, Some(&current.platform))?;
        let (old, new) = (&current.raw, &raw);
        if old.server.listen != new.server.listen
            || old.server.key_dir != new.server.key_dir
            || old.server.public_url != new.server.public_url
            || old.server.env_dir != new.server.env_dir
            || old.admin.listen != new.admin.listen
        {
            tracing::warn!(
                "server, key or admin settings changed: they take effect at the next restart"
            );
        }
        Ok::<_, ConfigError>(Live::new(config, raw.clone(), Some(current)))
    })?;
    write_env_files(state, &live);
    Ok(())
}

/// Rewrites every container's env file, if an env directory is configured.
/// A failure is logged, not fatal: the endpoint keeps serving.
pub fn write_env_files(state: &AppState, live: &Live) {
    if let Some(target) = state.env_target()
        && let Err(e) = envfile::write_all(&target.dir, &live.platform, &target.endpoint)
    {
        tracing::error!(error = %e, "cannot write env files");
    }
}

/// Watches the configuration file (polling its content), the key
/// directory's current key, and SIGHUP until `stop` completes, reloading on
/// any of them.
pub async fn watch(state: AppState, stop: impl std::future::Future<Output = ()>) {
    let path = state.source().path.clone();
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut tick = tokio::time::interval(POLL_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(stop);
    loop {
        let hangup = async {
            match hup.as_mut() {
                Some(h) => {
                    h.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = &mut stop => return,
            () = hangup => {
                tracing::info!("SIGHUP: reloading the configuration");
                let _ = reload(&state);
            }
            _ = tick.tick() => {
                state.refresh_keys();
                let Some(p) = path.as_deref() else { continue };
                // An unreadable file (mid-replace by an editor) is skipped.
                if let Ok(text) = std::fs::read_to_string(p)
                    && state.is_new_text(&text)
                {
                    tracing::info!(config = %p.display(), "configuration file changed");
                    let _ = reload(&state);
                }
            }
        }
    }
}
