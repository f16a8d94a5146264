//! HTTP protocols miemu speaks. Each module owns its routes and its exact wire
//! shapes (status codes, error bodies) and calls into the core for decisions;
//! none of them holds logic a unit test would need HTTP for.

pub mod app_service;
pub mod oidc;
pub mod query;

use axum::Router;
use axum::routing::get;

use crate::state::AppState;

/// All protocol routes plus the liveness probe.
pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(app_service::routes())
        .merge(oidc::routes())
        .route("/healthz", get(|| async { "ok" }))
        // Keys are loaded before the listener binds and the listener is
        // closed while "not ready", so any request that arrives is ready.
        .route("/readyz", get(|| async { "ready" }))
}
