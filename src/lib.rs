//! miemu: an emulator of the Azure managed-identity token endpoint that
//! Container Apps and App Service expose inside a running app.
//!
//! # Layout
//!
//! ```text
//! config ──┐
//!          ├─> identity ─┐
//! clock ───┤             ├─> token (claims, keys, mint, cache) ─┐
//!          └─> policy ───┘                                      ├─> protocol::{app_service, oidc} ─> app (router) ─> server
//! platform, secret, telemetry (shared vocabulary) ──────────────┘
//! ```
//!
//! `config`, `platform`, `identity`, `policy` and `token` know nothing about
//! HTTP; `protocol` modules know HTTP and the Azure wire formats and call into
//! them; `app` and `server` only assemble.
//!
//! # Request lifecycle (`GET /msi/token`)
//!
//! 1. `server` accepts the connection (header timeout, size and connection caps).
//! 2. `app` gives it a request id and a trace span.
//! 3. `protocol::app_service` takes a snapshot of the live configuration,
//!    finds the calling container by its `X-IDENTITY-HEADER` secret
//!    (constant-time), asks `policy::check_caller` (init containers), parses
//!    the query, resolves the identity in the `identity::Registry`, and asks
//!    `policy::admit`, which returns the `Admitted` proof minting requires.
//! 4. `token` serves a cached token or mints one (claims + RS256 with the key
//!    held in memory), and the handler answers in the platform's JSON shape.
//! 5. One log line records the outcome, never the token or the secret.

pub mod admin;
pub mod app;
pub mod atomicfile;
pub mod cli;
pub mod clock;
pub mod config;
pub mod envfile;
pub mod faults;
pub mod identity;
pub mod metrics;
pub mod platform;
pub mod policy;
pub mod protocol;
pub mod reload;
pub mod requestlog;
pub mod secret;
pub mod server;
pub mod state;
pub mod telemetry;
pub mod token;

pub use app::{Endpoint, build, build_router};
pub use server::{run, shutdown_signal};
pub use state::AppState;
