//! The admin API: change the emulated platform while miemu runs, read the
//! request log, inject faults. Off by default; it has its own listener
//! (loopback unless told otherwise) and every request needs the bearer token.
//!
//! Identity and container changes are edits of the raw configuration,
//! validated exactly as a file is (every problem reported) and swapped in
//! whole, so the admin API can never produce a configuration a file could
//! not. A reload from file replaces admin edits. JSON in and out; errors are
//! `{"error": "…"}`. The OpenAPI description is `docs/admin-openapi.yaml`.

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::raw::{RawSystemIdentity, RawUserIdentity};
use crate::config::{Config, ConfigError, RawConfig};
use crate::faults::FaultSpec;
use crate::reload;
use crate::requestlog::Filter;
use crate::secret::Secret;
use crate::state::{AppState, Live};

/// An admin API error: a status and a message.
#[derive(Debug)]
pub struct AdminError(StatusCode, String);

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let mut response = (self.0, Json(json!({ "error": self.1 }))).into_response();
        if self.0 == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

impl From<ConfigError> for AdminError {
    fn from(e: ConfigError) -> Self {
        Self(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
    }
}

fn not_found(what: &str) -> AdminError {
    AdminError(StatusCode::NOT_FOUND, format!("no {what}"))
}

type AdminResult = Result<Response, AdminError>;

/// A request body, read as JSON whatever its `Content-Type` (so `curl -d`
/// works) and refused in the admin error shape, not axum's plain text.
type JsonBody = axum::body::Bytes;

fn json_value(body: &[u8]) -> Result<Value, AdminError> {
    serde_json::from_slice(body).map_err(|e| {
        AdminError(
            StatusCode::BAD_REQUEST,
            format!("the body is not JSON: {e}"),
        )
    })
}

fn from_json<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, AdminError> {
    serde_json::from_value(v)
        .map_err(|e| AdminError(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))
}

/// The admin router, with the bearer-token check in front of every route.
pub fn router(state: AppState, token: Secret) -> Router {
    Router::new()
        .route("/status", get(get_status))
        .route("/identities", get(list_identities).post(add_identity))
        .route(
            "/identities/{name}",
            get(get_identity)
                .put(put_identity)
                .patch(patch_identity)
                .delete(delete_identity),
        )
        .route("/containers", get(list_containers))
        .route("/containers/{name}/rotate-secret", post(rotate_secret))
        .route("/reload", post(post_reload))
        .route("/requests", get(list_requests).delete(clear_requests))
        .route(
            "/faults",
            get(list_faults).post(add_fault).delete(clear_faults),
        )
        .route("/faults/{id}", axum::routing::delete(delete_fault))
        .route("/not-ready", post(post_not_ready))
        .route("/keys", get(list_keys))
        .route("/keys/rotate", post(rotate_keys))
        .fallback(|| async {
            AdminError(StatusCode::NOT_FOUND, "no such admin endpoint".to_owned())
        })
        .with_state(state)
        .layer(middleware::from_fn_with_state(token, require_token))
}

async fn require_token(
    State(token): State<Secret>,
    headers: HeaderMap,
    req: Request,
    next: Next,
) -> Response {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
    match presented {
        Some(p) if token.matches(p) => next.run(req).await,
        _ => AdminError(
            StatusCode::UNAUTHORIZED,
            "the admin API needs 'Authorization: Bearer <admin token>'".to_owned(),
        )
        .into_response(),
    }
}

/// Applies an edit to the raw configuration, validates the result as a file
/// would be, swaps it in and rewrites the env files.
fn edit(
    state: &AppState,
    change: impl FnOnce(&mut RawConfig) -> Result<(), AdminError>,
) -> Result<(), AdminError> {
    let live = state.update(|current| {
        let mut raw = current.raw.clone();
        change(&mut raw)?;
        let config = Config::from_raw_with(&raw, "admin API", Some(&current.platform))?;
        Ok::<_, AdminError>(Live::new(config, raw, Some(current)))
    })?;
    reload::write_env_files(state, &live);
    Ok(())
}

fn identity_json(live: &Live, name: &str) -> Option<Value> {
    live.platform
        .identities
        .iter()
        .find(|i| i.name.eq_ignore_ascii_case(name))
        .and_then(|i| serde_json::to_value(i).ok())
}

async fn get_status(State(state): State<AppState>) -> Json<Value> {
    let live = state.live();
    let now = state.now();
    Json(json!({
        "config": state.source().path.as_ref().map(|p| p.display().to_string()),
        "reload": state.reload_status(),
        "tenant_id": live.platform.tenant_id,
        "identities": live.platform.identities.iter().count(),
        "containers": live.platform.containers.len(),
        "faults": state.faults().list(now).len(),
        "kid": state.keys().signer().kid(),
        "accepting_connections": state.gate().closed_until().is_none(),
    }))
}

async fn list_identities(State(state): State<AppState>) -> Json<Value> {
    Json(json!(
        state.live().platform.identities.iter().collect::<Vec<_>>()
    ))
}

async fn get_identity(State(state): State<AppState>, Path(name): Path<String>) -> AdminResult {
    identity_json(&state.live(), &name)
        .map(|v| Json(v).into_response())
        .ok_or_else(|| not_found(&format!("identity '{name}'")))
}

/// A new user-assigned identity; ids left out are derived as in a file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewIdentity {
    name: String,
    client_id: Option<String>,
    principal_id: Option<String>,
    subscription_id: Option<String>,
    resource_group: Option<String>,
    lifecycle: Option<String>,
}

async fn add_identity(State(state): State<AppState>, body: JsonBody) -> AdminResult {
    let new: NewIdentity = from_json(json_value(&body)?)?;
    if new.name.eq_ignore_ascii_case("system") {
        return Err(AdminError(
            StatusCode::BAD_REQUEST,
            "'system' is the system-assigned identity: use PUT /identities/system".to_owned(),
        ));
    }
    let name = new.name.clone();
    edit(&state, |raw| {
        if raw.user_identities.iter().any(|u| {
            u.name
                .as_deref()
                .is_some_and(|n| n.eq_ignore_ascii_case(&name))
        }) {
            return Err(AdminError(
                StatusCode::CONFLICT,
                format!("identity '{name}' exists"),
            ));
        }
        raw.user_identities.push(RawUserIdentity {
            name: Some(new.name),
            client_id: new.client_id,
            principal_id: new.principal_id,
            subscription_id: new.subscription_id,
            resource_group: new.resource_group,
            lifecycle: new.lifecycle,
        });
        Ok(())
    })?;
    let body = identity_json(&state.live(), &name).unwrap_or(Value::Null);
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// Changes to an identity; absent fields stay as they are.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentityPatch {
    client_id: Option<String>,
    principal_id: Option<String>,
    lifecycle: Option<String>,
}

/// `PUT /identities/system` enables (or replaces) the system-assigned
/// identity; user-assigned identities are added with `POST /identities`.
async fn put_identity(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: JsonBody,
) -> AdminResult {
    if !name.eq_ignore_ascii_case("system") {
        return Err(AdminError(
            StatusCode::METHOD_NOT_ALLOWED,
            "PUT only enables the system identity (/identities/system); add user-assigned identities with POST /identities".to_owned(),
        ));
    }
    let patch: IdentityPatch = if body.iter().all(u8::is_ascii_whitespace) {
        IdentityPatch::default()
    } else {
        from_json(json_value(&body)?)?
    };
    edit(&state, |raw| {
        let system = raw
            .system_identity
            .get_or_insert_with(RawSystemIdentity::default);
        system.client_id = patch.client_id.or(system.client_id.take());
        system.principal_id = patch.principal_id.or(system.principal_id.take());
        system.lifecycle = patch.lifecycle.or(system.lifecycle.take());
        Ok(())
    })?;
    let body = identity_json(&state.live(), "system").unwrap_or(Value::Null);
    Ok(Json(body).into_response())
}

async fn patch_identity(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: JsonBody,
) -> AdminResult {
    let patch: IdentityPatch = from_json(json_value(&body)?)?;
    edit(&state, |raw| {
        if name.eq_ignore_ascii_case("system") {
            let system = raw
                .system_identity
                .as_mut()
                .ok_or_else(|| not_found("system-assigned identity"))?;
            system.client_id = patch.client_id.or(system.client_id.take());
            system.principal_id = patch.principal_id.or(system.principal_id.take());
            system.lifecycle = patch.lifecycle.or(system.lifecycle.take());
            return Ok(());
        }
        let user = raw
            .user_identities
            .iter_mut()
            .find(|u| {
                u.name
                    .as_deref()
                    .is_some_and(|n| n.eq_ignore_ascii_case(&name))
            })
            .ok_or_else(|| not_found(&format!("identity '{name}'")))?;
        user.client_id = patch.client_id.or(user.client_id.take());
        user.principal_id = patch.principal_id.or(user.principal_id.take());
        user.lifecycle = patch.lifecycle.or(user.lifecycle.take());
        Ok(())
    })?;
    let body = identity_json(&state.live(), &name).unwrap_or(Value::Null);
    Ok(Json(body).into_response())
}

async fn delete_identity(State(state): State<AppState>, Path(name): Path<String>) -> AdminResult {
    edit(&state, |raw| {
        if name.eq_ignore_ascii_case("system") {
            return raw
                .system_identity
                .take()
                .map(drop)
                .ok_or_else(|| not_found("system-assigned identity"));
        }
        let before = raw.user_identities.len();
        raw.user_identities.retain(|u| {
            !u.name
                .as_deref()
                .is_some_and(|n| n.eq_ignore_ascii_case(&name))
        });
        if raw.user_identities.len() == before {
            return Err(not_found(&format!("identity '{name}'")));
        }
        Ok(())
    })?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_containers(State(state): State<AppState>) -> Json<Value> {
    let live = state.live();
    let env = state.env_target();
    Json(json!(live
        .platform
        .containers
        .iter()
        .map(|c| json!({
            "name": c.name,
            "kind": c.kind,
            "env_file": env.map(|t| t.dir.join(format!("{}.env", c.name)).display().to_string()),
        }))
        .collect::<Vec<_>>()))
}

async fn rotate_secret(State(state): State<AppState>, Path(name): Path<String>) -> AdminResult {
    let secret = Secret::generate();
    edit(&state, |raw| {
        let container = raw
            .containers
            .iter_mut()
            .find(|c| c.name.as_deref() == Some(name.as_str()))
            .ok_or_else(|| not_found(&format!("container '{name}'")))?;
        container.secret = Some(secret.expose().to_owned());
        Ok(())
    })?;
    tracing::info!(caller.container = %name, "container secret rotated");
    let env_file = state
        .env_target()
        .map(|t| t.dir.join(format!("{name}.env")).display().to_string());
    Ok(
        Json(json!({ "name": name, "secret": secret.expose(), "env_file": env_file }))
            .into_response(),
    )
}

async fn post_reload(State(state): State<AppState>) -> AdminResult {
    reload::reload(&state)?;
    Ok(Json(json!({ "reloaded": true, "status": state.reload_status() })).into_response())
}

async fn list_requests(
    State(state): State<AppState>,
    filter: Result<Query<Filter>, axum::extract::rejection::QueryRejection>,
) -> AdminResult {
    let Query(filter) = filter.map_err(|e| AdminError(StatusCode::BAD_REQUEST, e.body_text()))?;
    Ok(Json(json!(state.requests().query(&filter))).into_response())
}

async fn clear_requests(State(state): State<AppState>) -> StatusCode {
    state.requests().clear();
    StatusCode::NO_CONTENT
}

async fn list_faults(State(state): State<AppState>) -> Json<Value> {
    Json(json!(state.faults().list(state.now())))
}

async fn add_fault(State(state): State<AppState>, body: JsonBody) -> AdminResult {
    let body = json_value(&body)?;
    let spec = FaultSpec::from_json(body).map_err(|e| AdminError(StatusCode::BAD_REQUEST, e))?;
    let fault = state
        .faults()
        .add(spec, state.now())
        .map_err(|e| AdminError(StatusCode::BAD_REQUEST, e.to_string()))?;
    tracing::info!(fault.id = fault.id, "fault rule added");
    Ok((StatusCode::CREATED, Json(json!(fault))).into_response())
}

async fn clear_faults(State(state): State<AppState>) -> StatusCode {
    state.faults().clear();
    StatusCode::NO_CONTENT
}

async fn delete_fault(State(state): State<AppState>, Path(id): Path<u64>) -> AdminResult {
    if state.faults().remove(id) {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(not_found(&format!("fault {id}")))
    }
}

async fn list_keys(State(state): State<AppState>) -> Json<Value> {
    let keys = state.keys();
    Json(
        json!({ "signer": keys.signer().kid(), "published": keys.published().collect::<Vec<_>>() }),
    )
}

async fn rotate_keys(State(state): State<AppState>) -> AdminResult {
    let keys = state.rotate_keys().map_err(|e| {
        AdminError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("rotation failed, the current key keeps signing: {e}"),
        )
    })?;
    tracing::info!(token.kid = keys.signer().kid(), "signing key rotated");
    Ok(Json(json!({ "signer": keys.signer().kid(), "published": keys.published().map(|j| &j.kid).collect::<Vec<_>>() })).into_response())
}

/// How long the token port refuses connections.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NotReady {
    for_secs: u64,
}

async fn post_not_ready(State(state): State<AppState>, body: JsonBody) -> AdminResult {
    let body: NotReady = from_json(json_value(&body)?)?;
    if body.for_secs > 3600 {
        return Err(AdminError(
            StatusCode::BAD_REQUEST,
            "for_secs must be at most 3600".to_owned(),
        ));
    }
    state
        .gate()
        .close_for(std::time::Duration::from_secs(body.for_secs));
    Ok(Json(json!({ "refusing_connections_for_secs": body.for_secs })).into_response())
}
