//! Assembles the router: protocol routes, the fallback, and the layers every
//! request passes through (request id, trace span, body limit, timeout, panic
//! guard). Holds no logic of its own.

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, State};
use axum::http::{Request, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::protocol;
use crate::protocol::app_service::CallerContainer;
use crate::state::AppState;

/// Longest a request may take end to end.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest request body accepted (every endpoint is a GET).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

const REQUEST_ID: &str = "x-request-id";

/// The complete router with state applied.
pub fn build_router(state: AppState) -> Router {
    let header = axum::http::HeaderName::from_static(REQUEST_ID);
    protocol::routes()
        .route("/metrics", get(get_metrics))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), count))
        .with_state(state)
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(CatchPanicLayer::new())
        .layer(PropagateRequestIdLayer::new(header.clone()))
        .layer(
                        // Failures are logged once, by the handlers, at the level their
            // kind deserves; the trace layer only provides the span.
            TraceLayer::new_for_http().on_failure(()).make_span_with(|req: &Request<_>| {
                let id = req
                    .headers()
                    .get(REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                // The path only: the query may name identities but never
                // secrets; headers are not recorded at all.
                tracing::info_span!("request", request.id = id, http.method = %req.method(), http.path = req.uri().path())
            }),
        )
        .layer(SetRequestIdLayer::new(header, MakeRequestUuid))
}

/// Counts every answered request by endpoint, status and (for token
/// requests) the calling container the handler left in the extensions.
async fn count(State(state): State<AppState>, req: Request<Body>, next: Next) -> Response {
    let endpoint = match req
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str)
    {
        Some(p)
            if p.eq_ignore_ascii_case("/msi/token") || p.eq_ignore_ascii_case("/msi/token/") =>
        {
            "token"
        }
        Some(p) if p.ends_with("openid-configuration") => "discovery",
        Some(p) if p.contains("/discovery/") => "jwks",
        Some("/healthz" | "/readyz") => "health",
        Some("/metrics") => "metrics",
        _ => "other",
    };
    let response = next.run(req).await;
    let container = response
        .extensions()
        .get::<CallerContainer>()
        .map(|c| c.0.as_str());
    state
        .metrics()
        .request(endpoint, response.status().as_u16(), container);
    response
}

async fn get_metrics(State(state): State<AppState>) -> Response {
    let key_age = state.now() - state.keys().signer().created_at();
    let identities = state.live().platform.identities.iter().count();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics().render(key_age, identities),
    )
        .into_response()
}

async fn not_found(uri: axum::http::Uri) -> impl IntoResponse {
    let path: String = uri.path().chars().take(200).collect();
    (
        StatusCode::NOT_FOUND,
        Json(serde_json::json!({
            "statusCode": 404,
            "message": format!("No endpoint at '{path}'. The token endpoint is /msi/token."),
            "correlationId": uuid::Uuid::new_v4().to_string(),
        })),
    )
}
