//! Logging set-up: `tracing` to stderr, human-readable or JSON.
//!
//! The filter is `RUST_LOG` when set, else `miemu=info,tower_http=warn`.
//!
//! **What is never logged:** access tokens, private keys, and the values of
//! `X-IDENTITY-HEADER` or any container secret. Request spans record the
//! method, path and a request id, never headers or query strings; the token
//! handler logs the caller's container name, the selector, the resource and
//! the token's `uti` (its unique id, useless to an attacker). Types holding
//! secrets have redacted `Debug` output, so `?value` cannot leak them either.

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

/// Log output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber. Safe to call once per process.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("miemu=info,tower_http=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match format {
        LogFormat::Pretty => builder.with_target(false).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}
