//! The validation side: OpenID discovery documents and the JWKS, so a
//! resource server under test validates miemu's tokens the way it validates
//! Entra's.
//!
//! Paths mirror `login.microsoftonline.com`: `/{tenant}/.well-known/openid-configuration`,
//! its `/v2.0/` twin, and `/{tenant}/discovery/keys` (plus `/common/…`).
//! Discovery's `issuer` is the tokens' `iss` in both documents, because miemu
//! mints only v1 tokens: a validator pointed at the v2 document must still
//! accept them. Only public key material is ever served.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::state::{AppState, Live};

/// Routes of the discovery endpoints.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/{tenant}/.well-known/openid-configuration",
            get(get_configuration),
        )
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(get_configuration),
        )
        .route("/{tenant}/discovery/keys", get(get_keys))
        .route("/{tenant}/discovery/v2.0/keys", get(get_keys))
}

/// Entra's answer for a tenant it does not know (AADSTS90002), shortened.
fn unknown_tenant(tenant: &str) -> Response {
    let shown: String = tenant.chars().take(64).collect();
    (
        StatusCode::BAD_REQUEST,
        Json(json!({
            "error": "invalid_tenant",
            "error_description": format!("AADSTS90002: Tenant '{shown}' not found. miemu serves only its configured tenant."),
        })),
    )
        .into_response()
}

fn is_our_tenant(live: &Live, tenant: &str) -> bool {
    uuid::Uuid::try_parse(tenant).is_ok_and(|t| t == live.platform.tenant_id)
}

async fn get_configuration(State(state): State<AppState>, Path(tenant): Path<String>) -> Response {
    let live = state.live();
    if !is_our_tenant(&live, &tenant) {
        return unknown_tenant(&tenant);
    }
    let tid = live.platform.tenant_id;
    let base = state.public_url();
    let doc = json!({
        "issuer": live.tokens.issuer,
        "jwks_uri": format!("{base}/{tid}/discovery/keys"),
        "authorization_endpoint": format!("{base}/{tid}/oauth2/authorize"),
        "token_endpoint": format!("{base}/{tid}/oauth2/token"),
        "response_types_supported": ["code", "id_token", "code id_token", "token id_token", "token"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "claims_supported": ["aud", "iss", "iat", "nbf", "exp", "appid", "oid", "sub", "tid", "ver", "idtyp", "xms_mirid"],
        "tenant_region_scope": "WW",
        "cloud_instance_name": "microsoftonline.com",
    });
    (
        [(header::CACHE_CONTROL, "max-age=86400, private")],
        Json(doc),
    )
        .into_response()
}

async fn get_keys(State(state): State<AppState>, Path(tenant): Path<String>) -> Response {
    if tenant != "common" && tenant != "organizations" && !is_our_tenant(&state.live(), &tenant) {
        return unknown_tenant(&tenant);
    }
    (
        [(header::CACHE_CONTROL, "max-age=86400, private")],
        Json(json!({ "keys": state.keys().published().collect::<Vec<_>>() })),
    )
        .into_response()
}
