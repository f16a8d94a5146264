//! Assembles the public endpoint: `GET` on the token path is answered
//! inline; everything else (discovery, probes, metrics, 405s, 404s) goes
//! through the axum router inside one stack of layers (request id, trace
//! span, panic guard). Holds no logic of its own.
//!
//! The token path bypasses router and layers because it is what a test
//! suite calls thousands of times: routing, boxed per-route layers and
//! extractor copies cost more than the answer itself
//! (`docs/performance.md`). It gets the same request id, span and panic
//! guard, inline, and the router serves the token path too (for `HEAD`), so
//! behaviour does not depend on the way a request takes.

use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{MatchedPath, State};
use axum::http::{HeaderName, HeaderValue, Method, Request, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower::util::BoxCloneSyncService;
use tower::{BoxError, Service, ServiceBuilder};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::protocol;
use crate::protocol::app_service::{self, TokenReply};
use crate::state::AppState;

/// Longest a request to a routed endpoint may take end to end. (The token
/// handler awaits nothing but an injected delay, itself capped below this.)
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest request body accepted (every endpoint is a GET).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The public endpoint, for [`crate::server::run`].
pub fn build(state: AppState) -> Endpoint {
    let ids = SequentialId::new();
    let routed = ServiceBuilder::new()
        .map_response(|r: Response<_>| r.map(Body::new))
        .layer(SetRequestIdLayer::new(REQUEST_ID, ids.clone()))
        // Failures are logged once, by the handlers, at the level their kind
        // deserves; the trace layer only provides the span.
        .layer(
            TraceLayer::new_for_http()
                .on_failure(())
                .make_span_with(span as fn(&Request<Body>) -> tracing::Span),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(CatchPanicLayer::new())
        .service(build_router(state.clone()));
    Endpoint {
        state,
        ids,
        routed: BoxCloneSyncService::new(routed),
    }
}

/// The public endpoint as a service. Generic over the request body, so
/// tests and benchmarks can call it without a socket.
#[derive(Clone)]
pub struct Endpoint {
    state: AppState,
    ids: SequentialId,
    routed: BoxCloneSyncService<Request<Body>, Response, Infallible>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint").finish_non_exhaustive()
    }
}

impl<B> Service<Request<B>> for Endpoint
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Answer;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Neither the token handler nor axum's router applies back-pressure.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Answer {
        self.answer(req)
    }
}

impl crate::server::Handler for Endpoint {
    type Body = Body;
    type BodyError = axum::Error;
    type Future = Answer;

    fn handle(&self, req: Request<hyper::body::Incoming>) -> Answer {
        self.answer(req)
    }
}

impl Endpoint {
    fn answer<B>(&self, req: Request<B>) -> Answer
    where
        B: HttpBody<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        if req.method() != Method::GET || !app_service::is_token_path(req.uri().path()) {
            let mut routed = self.routed.clone();
            return Answer(Inner::Routed(routed.call(req.map(Body::new))));
        }
        let id = match req.headers().get(&REQUEST_ID) {
            Some(id) => id.clone(),
            None => self.ids.next(),
        };
        let span = span_with_id(&req, &id);
        let entered = span.enter();
        // The same debug lines tower-http's trace layer writes for routed
        // requests; the clock is read only when they are wanted.
        let started = tracing::enabled!(tracing::Level::DEBUG).then(|| {
            tracing::debug!("started processing request");
            Instant::now()
        });
        let state = &self.state;
        // The handler decides synchronously, so a panic surfaces here.
        let reply = std::panic::catch_unwind(AssertUnwindSafe(|| {
            app_service::answer(state, req.headers(), req.uri().query())
        }))
        .unwrap_or_else(|_| app_service::panicked());
        drop(entered);
        Answer(Inner::Token {
            reply,
            id: Some(id),
            span,
            started,
        })
    }
}

/// The response future of [`Endpoint`].
pub struct Answer(Inner);

#[expect(
    clippy::large_enum_variant,
    reason = "the token variant is the hot path: boxing it would allocate for every request"
)]
enum Inner {
    Token {
        reply: TokenReply,
        id: Option<HeaderValue>,
        span: tracing::Span,
        started: Option<Instant>,
    },
    Routed(Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send + 'static>>),
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            Inner::Token { .. } => "Answer::Token",
            Inner::Routed(_) => "Answer::Routed",
        })
    }
}

impl Future for Answer {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().0 {
            Inner::Token {
                reply,
                id,
                span,
                started,
            } => {
                let mut response = std::task::ready!(Pin::new(reply).poll(cx));
                if let Some(id) = id.take() {
                    response.headers_mut().insert(REQUEST_ID, id);
                }
                if let Some(started) = started.take() {
                    let _entered = span.enter();
                    tracing::debug!(
                        latency = ?started.elapsed(),
                        status = response.status().as_u16(),
                        "finished processing request"
                    );
                }
                Poll::Ready(Ok(response))
            }
            Inner::Routed(future) => future.as_mut().poll(cx),
        }
    }
}

/// The request span: method, path and request id. The path only: the query
/// may name identities but never secrets; headers are not recorded at all.
fn span(req: &Request<Body>) -> tracing::Span {
    match req.headers().get(&REQUEST_ID) {
        Some(id) => span_with_id(req, id),
        None => span_with_id(req, &HeaderValue::from_static("-")),
    }
}

fn span_with_id<B>(req: &Request<B>, id: &HeaderValue) -> tracing::Span {
    let id = id.to_str().unwrap_or("-");
    tracing::info_span!("request", request.id = id, http.method = %req.method(), http.path = req.uri().path())
}

/// Request ids `<8 hex digits fixed per process>-<sequence>`: unique within a
/// run and, in practice, across restarts, without a random-number system
/// call per request. A client's own `x-request-id` is kept as sent.
#[derive(Debug, Clone)]
struct SequentialId {
    prefix: [u8; 8],
    next: Arc<AtomicU64>,
}

impl SequentialId {
    fn new() -> Self {
        let random = uuid::Uuid::new_v4().simple().to_string();
        let mut prefix = [b'0'; 8];
        prefix.copy_from_slice(&random.as_bytes()[..8]);
        Self {
            prefix,
            next: Arc::new(AtomicU64::new(1)),
        }
    }

    fn next(&self) -> HeaderValue {
        let mut n = self.next.fetch_add(1, Ordering::Relaxed);
        // `prefix-n`, formatted by hand: this runs for every request.
        let mut text = [0u8; 29];
        text[..8].copy_from_slice(&self.prefix);
        text[8] = b'-';
        let mut digits = [0u8; 20];
        let mut start = digits.len();
        loop {
            start -= 1;
            digits[start] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        let len = 9 + digits.len() - start;
        text[9..len].copy_from_slice(&digits[start..]);
        HeaderValue::from_bytes(&text[..len]).unwrap_or(HeaderValue::from_static("-"))
    }
}

impl MakeRequestId for SequentialId {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        Some(RequestId::new(self.next()))
    }
}

/// The router for everything but `GET` on the token path (which it also
/// serves, so it is complete on its own), with the layers only its routes
/// need.
pub fn build_router(state: AppState) -> Router {
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
}

/// Counts every routed request by endpoint and status. Token requests that
/// reach the handler (`GET`, `HEAD`) are counted there, with their caller.
async fn count(State(state): State<AppState>, req: Request<Body>, next: Next) -> Response {
    let method = req.method().clone();
    let endpoint = match req
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str)
    {
        Some(p) if app_service::is_token_path(p) => "token",
        Some(p) if p.ends_with("openid-configuration") => "discovery",
        Some(p) if p.contains("/discovery/") => "jwks",
        Some("/healthz" | "/readyz") => "health",
        Some("/metrics") => "metrics",
        _ => "other",
    };
    let response = next.run(req).await;
    if endpoint != "token" || !(method == Method::GET || method == Method::HEAD) {
        state
            .metrics()
            .request(endpoint, response.status().as_u16(), None);
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_a_fixed_prefix_and_a_sequence() {
        let ids = SequentialId::new();
        let first = ids.next();
        let second = ids.next();
        let first = first.to_str().unwrap();
        let (prefix, n) = first.split_once('-').unwrap();
        assert_eq!(prefix.len(), 8);
        assert!(prefix.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(n, "1");
        assert_eq!(second.to_str().unwrap(), format!("{prefix}-2"));
        ids.next.store(u64::MAX, Ordering::Relaxed);
        assert_eq!(
            ids.next().to_str().unwrap(),
            format!("{prefix}-{}", u64::MAX)
        );
    }
}
