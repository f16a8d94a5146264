//! The App Service / Container Apps managed-identity endpoint
//! (`IDENTITY_ENDPOINT`, api-version 2019-08-01).
//!
//! `GET /msi/token?resource=R&api-version=2019-08-01` with `X-IDENTITY-HEADER`.
//! The handler extracts, asks the core (platform → policy → registry → token)
//! and maps the result to the platform's exact wire shapes:
//!
//! - missing or unknown header: 403 with an empty body (observed on ACA);
//! - init container: 403 `{"statusCode","message","correlationId"}`;
//! - bad request or unknown identity: 400 with the same JSON shape;
//! - success: 200 `{access_token, expires_on, resource, token_type, client_id}`
//!   with `expires_on` a string of integer seconds (the only form every SDK
//!   accepts; Rust's needs a string).
//!
//! Every request is logged once, here, with the caller and outcome but never
//! the header value or the token.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

use super::query::{Params, QueryError};
use crate::faults::FaultAction;
use crate::identity::{LookupError, Selector};
use crate::platform::Container;
use crate::policy::{self, Refusal, RefusalReason};
use crate::requestlog::Entry;
use crate::state::{AppState, Live};
use crate::token::{self, MintError, MintInput, MintedToken, Resource, ResourceError};

/// The only api-version this endpoint speaks.
pub const API_VERSION: &str = "2019-08-01";

/// The header carrying the container's secret (matched case-insensitively).
pub const SECRET_HEADER: &str = "x-identity-header";

/// [`SECRET_HEADER`], parsed once.
const SECRET: HeaderName = HeaderName::from_static(SECRET_HEADER);

/// The header a proxy adds (see [`AppServiceError::Forwarded`]).
const FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The platform's text for an unknown or unavailable identity.
pub const NOT_FOUND_MESSAGE: &str = "No User Assigned or Delegated Managed Identity found for specified ClientId/ResourceId/PrincipalId.";

/// Routes of this protocol: the path Container Apps uses, with and without a
/// trailing slash, and the upper-case spelling App Service uses.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/msi/token", get(get_token))
        .route("/msi/token/", get(get_token))
        .route("/MSI/token", get(get_token))
        .route("/MSI/token/", get(get_token))
}

/// A refusal or failure, in the shape the platform answers with.
#[derive(Debug)]
pub enum AppServiceError {
    /// Missing or unknown `X-IDENTITY-HEADER`.
    Unauthenticated,
    /// The caller is an init container and no identity is open to those.
    InitContainer {
        /// The container.
        container: String,
    },
    /// Malformed request.
    BadRequest(String),
    /// No such identity, or not open to the caller.
    IdentityNotFound,
    /// The request was relayed by a proxy (`X-Forwarded-For`).
    Forwarded,
    /// A fault rule asked for this status.
    Injected {
        /// The status.
        status: u16,
        /// `Retry-After` seconds.
        retry_after: Option<u32>,
    },
    /// A bug or a crypto failure; details go to the log only.
    Internal,
}

impl AppServiceError {
    fn status(&self) -> StatusCode {
        match self {
            Self::Unauthenticated | Self::InitContainer { .. } | Self::Forwarded => {
                StatusCode::FORBIDDEN
            }
            Self::BadRequest(_) | Self::IdentityNotFound => StatusCode::BAD_REQUEST,
            Self::Injected { status, .. } => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn message(&self) -> String {
        match self {
            Self::Unauthenticated => String::new(),
            Self::InitContainer { container } => format!(
                "Managed identities are not available to init containers: container '{container}' is an init container and no managed identity of this app is open to init containers."
            ),
            Self::BadRequest(m) => m.clone(),
            Self::IdentityNotFound => NOT_FOUND_MESSAGE.to_owned(),
            Self::Forwarded => "Requests relayed by a proxy (X-Forwarded-For) are not answered by the managed identity endpoint.".to_owned(),
            Self::Injected { status, .. } => format!(
                "Injected fault: the managed identity endpoint answered {status} (miemu fault rule)."
            ),
            Self::Internal => "An unexpected error occurred while acquiring the token.".to_owned(),
        }
    }

    fn outcome(&self) -> &'static str {
        match self {
            Self::Unauthenticated => "unauthenticated",
            Self::InitContainer { .. } => "init_container",
            Self::BadRequest(_) => "bad_request",
            Self::IdentityNotFound => "identity_not_found",
            Self::Forwarded => "forwarded",
            Self::Injected { .. } => "fault",
            Self::Internal => "internal_error",
        }
    }
}

/// The JSON error body of App Service and Container Apps.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody {
    status_code: u16,
    message: String,
    correlation_id: String,
}

impl IntoResponse for AppServiceError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let Self::Unauthenticated = self {
            // Container Apps answers 403 with `Content-Length: 0`.
            return status.into_response();
        }
        let body = ErrorBody {
            status_code: status.as_u16(),
            message: self.message(),
            correlation_id: uuid::Uuid::new_v4().to_string(),
        };
        let retry_after = match self {
            Self::Injected {
                retry_after,
                status: 429 | 503,
            } => Some(retry_after.unwrap_or(1)),
            Self::Injected { retry_after, .. } => retry_after,
            _ => None,
        };
        let mut response = (status, Json(body)).into_response();
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
        }
        response
    }
}

impl From<QueryError> for AppServiceError {
    fn from(e: QueryError) -> Self {
        Self::BadRequest(e.to_string())
    }
}

/// The success body, fields in the platform's order.
#[derive(Debug, Serialize)]
struct TokenBody<'a> {
    access_token: &'a str,
    expires_on: String,
    resource: &'a str,
    token_type: &'static str,
    client_id: String,
}

/// What the log line of a request records (never the token or the secret).
/// Names borrow from the configuration snapshot the request was served from.
#[derive(Debug, Default)]
struct Facts<'a> {
    container: Option<&'a str>,
    selector: Option<Selector>,
    identity: Option<&'a str>,
    resource: Option<String>,
    cached: bool,
    fault: Option<u64>,
    delay: Option<Duration>,
}

/// Whether `path` is one of the token endpoint's spellings (see [`routes`]).
pub fn is_token_path(path: &str) -> bool {
    matches!(
        path,
        "/msi/token" | "/msi/token/" | "/MSI/token" | "/MSI/token/"
    )
}

/// Answers a token request. Everything is decided and accounted for before
/// this returns; the reply only waits out an injected delay, if any.
pub fn answer(state: &AppState, headers: &HeaderMap, query: Option<&str>) -> TokenReply {
    let live = state.live_for_request();
    let mut facts = Facts::default();
    let now = state.now();
    let result = issue(state, &live, headers, query, now, &mut facts);
    let delay = facts.delay;
    record(state, facts, &result, now);
    let response = match result {
        Ok(granted) => {
            let mut response = Response::new(Body::from(granted.body));
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(e) => e.into_response(),
    };
    TokenReply {
        delay: delay.map(|d| Box::pin(tokio::time::sleep(d))),
        response: Some(response),
    }
}

/// The answer to a token request, sent once an injected delay (if any) has
/// passed.
#[derive(Debug)]
pub struct TokenReply {
    delay: Option<Pin<Box<tokio::time::Sleep>>>,
    response: Option<Response>,
}

impl Future for TokenReply {
    type Output = Response;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response> {
        let this = self.get_mut();
        if let Some(delay) = this.delay.as_mut() {
            std::task::ready!(delay.as_mut().poll(cx));
            this.delay = None;
        }
        // `None` only if polled again after completion, which callers never do.
        Poll::Ready(
            this.response
                .take()
                .unwrap_or_else(|| AppServiceError::Internal.into_response()),
        )
    }
}

/// The reply when the handler panicked (a bug): the platform's 500.
pub fn panicked() -> TokenReply {
    tracing::error!("token handler panicked");
    TokenReply {
        delay: None,
        response: Some(AppServiceError::Internal.into_response()),
    }
}

/// The token handler for requests that come through the router (`HEAD`).
async fn get_token(State(state): State<AppState>, req: Request) -> Response {
    answer(&state, req.headers(), req.uri().query()).await
}

/// A granted token: what the answer and the log need of it.
#[derive(Debug)]
struct Granted {
    /// The success body.
    body: Bytes,
    /// The token's `uti`.
    uti: String,
}

impl Granted {
    fn of(token: &MintedToken) -> Result<Self, AppServiceError> {
        let body = rendered(token).map_err(|e| {
            tracing::error!(error = %e, "token response encoding failed");
            AppServiceError::Internal
        })?;
        Ok(Self {
            body,
            uti: token.claims.uti.clone(),
        })
    }
}

/// The success body of `token`, rendered on first use and then shared.
fn rendered(token: &MintedToken) -> Result<Bytes, serde_json::Error> {
    if let Some(body) = token.rendered.get() {
        return Ok(body.clone());
    }
    let body = TokenBody {
        access_token: &token.jwt,
        expires_on: token.claims.exp.to_string(),
        resource: &token.claims.aud,
        token_type: "Bearer",
        client_id: token.claims.appid.clone(),
    };
    let body = Bytes::from(serde_json::to_vec(&body)?);
    Ok(token.rendered.get_or_init(|| body).clone())
}

fn issue<'a>(
    state: &AppState,
    live: &'a Live,
    headers: &HeaderMap,
    query: Option<&str>,
    now: i64,
    facts: &mut Facts<'a>,
) -> Result<Granted, AppServiceError> {
    let platform = &live.platform;
    if !live.allow_forwarded && headers.contains_key(&FORWARDED_FOR) {
        return Err(AppServiceError::Forwarded);
    }

    let mut presented = headers.get_all(&SECRET).iter();
    let (Some(secret), None) = (presented.next(), presented.next()) else {
        return Err(AppServiceError::Unauthenticated);
    };
    let caller = platform
        .caller(secret.as_bytes())
        .ok_or(AppServiceError::Unauthenticated)?;
    facts.container = Some(&caller.name);

    policy::check_caller(caller, &platform.identities).map_err(refused)?;

    let params = Params::parse(query)?;
    match params.single("api-version")? {
        Some(API_VERSION) => {}
        None | Some("") => {
            return Err(AppServiceError::BadRequest(format!(
                "The api-version query parameter is required; this endpoint supports {API_VERSION}."
            )));
        }
        Some(other) => {
            return Err(AppServiceError::BadRequest(format!(
                "The api-version '{}' is not supported; this endpoint supports {API_VERSION}.",
                other.chars().take(40).collect::<String>()
            )));
        }
    }
    let resource = match params.single("resource")? {
        None | Some("") => {
            return Err(AppServiceError::BadRequest(
                "The resource query parameter is required.".to_owned(),
            ));
        }
        Some(raw) => Resource::parse(raw).map_err(|e| match e {
            ResourceError::Empty => {
                AppServiceError::BadRequest("The resource query parameter is required.".to_owned())
            }
            other => AppServiceError::BadRequest(format!("Invalid resource: {other}.")),
        })?,
    };
    let result = grant(state, live, caller, &params, &resource, now, facts);
    facts.resource = Some(resource.into_string());
    result
}

/// The rest of [`issue`], once the caller and resource are known.
fn grant<'a>(
    state: &AppState,
    live: &'a Live,
    caller: &'a Container,
    params: &Params<'_>,
    resource: &Resource,
    now: i64,
    facts: &mut Facts<'a>,
) -> Result<Granted, AppServiceError> {
    let platform = &live.platform;
    let selector = selector(params)?;
    let found = platform.identities.resolve(&selector);
    facts.selector = Some(selector);
    let mut lifetime = live.tokens.lifetime_secs;
    let mut use_cache = live.tokens.cache;
    let name = found.as_ref().ok().map(|i| i.name.as_str());
    facts.identity = name;
    if let Some((id, action)) =
        state
            .faults()
            .take(&caller.name, name, Some(resource.as_str()), now)
    {
        facts.fault = Some(id);
        match action {
            FaultAction::Status {
                status,
                retry_after_secs,
            } => {
                return Err(AppServiceError::Injected {
                    status,
                    retry_after: retry_after_secs,
                });
            }
            FaultAction::Delay { ms } => facts.delay = Some(Duration::from_millis(ms)),
            FaultAction::Lifetime { secs } => {
                lifetime = secs;
                use_cache = false;
            }
        }
    }
    let identity = found.map_err(|e| match e {
        LookupError::NoSystemIdentity | LookupError::NotFound(_) => {
            AppServiceError::IdentityNotFound
        }
    })?;
    let admitted = policy::admit(caller, identity).map_err(refused)?;
    if use_cache {
        // Read in place: taking a reference to the shared token would be
        // two writes to memory every worker thread touches.
        let cached = live
            .cache
            .get_with(identity.client_id, resource.as_str(), now, Granted::of);
        if let Some(granted) = cached {
            facts.cached = true;
            return granted;
        }
    }
    let input = MintInput {
        tenant_id: platform.tenant_id,
        issuer: &live.tokens.issuer,
        app: &platform.app,
        identity,
        resource,
        now,
        lifetime_secs: lifetime,
    };
    let keys = state.keys();
    let token = token::mint(&admitted, keys.signer(), &input).map_err(|e: MintError| {
        tracing::error!(error = %e, "token minting failed");
        AppServiceError::Internal
    })?;
    let granted = Granted::of(&token)?;
    if use_cache {
        live.cache
            .insert(identity.client_id, resource.as_str(), Arc::new(token), now);
    }
    Ok(granted)
}

fn refused(r: Refusal) -> AppServiceError {
    match r.reason {
        RefusalReason::InitContainer => AppServiceError::InitContainer {
            container: r.container,
        },
        // The platform hides identities a container may not use: same answer
        // as for an identity that does not exist.
        RefusalReason::Lifecycle { .. } => AppServiceError::IdentityNotFound,
    }
}

/// At most one of the selector parameters; empty values count as absent.
fn selector(params: &Params<'_>) -> Result<Selector, AppServiceError> {
    let mut found: Vec<(&'static str, Selector)> = Vec::new();
    for (name, make) in [
        ("client_id", Selector::ClientId as fn(String) -> Selector),
        ("object_id", Selector::PrincipalId),
        ("principal_id", Selector::PrincipalId),
        ("mi_res_id", Selector::ResourceId),
        ("msi_res_id", Selector::ResourceId),
    ] {
        if let Some(v) = params.single(name)?.filter(|v| !v.is_empty()) {
            found.push((name, make(v.to_owned())));
        }
    }
    match found.len() {
        0 => Ok(Selector::System),
        1 => Ok(found.swap_remove(0).1),
        _ => Err(AppServiceError::BadRequest(format!(
            "Only one of client_id, object_id/principal_id or mi_res_id may be given; got {}.",
            found.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// The one place a token request is accounted for: metrics, a log line and
/// the request log. Never the token or the secret.
fn record(state: &AppState, facts: Facts<'_>, result: &Result<Granted, AppServiceError>, now: i64) {
    let (outcome, status) = match result {
        Ok(_) => ("issued", 200),
        Err(e) => (e.outcome(), e.status().as_u16()),
    };
    let uti = result.as_ref().ok().map(|g| g.uti.as_str());
    let metrics = state.metrics();
    metrics.request("token", status, facts.container);
    match result {
        Ok(_) if facts.cached => metrics.cache_hit(),
        Ok(_) => metrics.minted(),
        Err(_) => metrics.refusal(outcome),
    }
    // Rendered only if the line is logged.
    let selector = OrDash(facts.selector.as_ref());
    let container = facts.container.unwrap_or("-");
    let identity = facts.identity.unwrap_or("-");
    let resource = facts.resource.as_deref().unwrap_or("-");
    match result {
        Ok(_) => tracing::info!(
            caller.container = container,
            identity.selector = %selector,
            identity.name = identity,
            token.resource = resource,
            token.uti = uti.unwrap_or("-"),
            token.cached = facts.cached,
            fault.id = facts.fault,
            outcome,
            "token request"
        ),
        Err(AppServiceError::Internal) => tracing::error!(
            caller.container = container,
            token.resource = resource,
            outcome,
            "token request"
        ),
        Err(
            AppServiceError::Unauthenticated
            | AppServiceError::InitContainer { .. }
            | AppServiceError::Forwarded,
        ) => {
            tracing::warn!(
                caller.container = container,
                policy.reason = outcome,
                status,
                "token request refused"
            );
        }
        Err(_) => tracing::info!(
            caller.container = container,
            identity.selector = %selector,
            token.resource = resource,
            fault.id = facts.fault,
            status,
            outcome,
            "token request refused"
        ),
    }
    state.requests().push(Entry {
        time: now,
        container: facts.container,
        selector: facts.selector,
        identity: facts.identity,
        resource: facts.resource.as_deref(),
        outcome,
        status,
        uti,
        cached: facts.cached,
        fault: facts.fault,
    });
}

/// Shows a value, or `-` when there is none.
struct OrDash<'a, T>(Option<&'a T>);

impl<T: fmt::Display> fmt::Display for OrDash<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(v) => v.fmt(f),
            None => f.write_str("-"),
        }
    }
}
