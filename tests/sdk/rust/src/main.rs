//! One managed-identity token request through the official `azure_identity` crate,
//! then verification of that token against the JWKS found through miemu's OIDC discovery.
//!
//! Usage: miemu-sdk-rust <system|client-id|object-id|resource-id> [ID]
//! Environment: IDENTITY_ENDPOINT / IDENTITY_HEADER (read by azure_identity),
//! MIEMU_SCOPE (scope to request), MIEMU_DISCOVERY_URL (only needed for verification).
//!
//! Prints exactly one JSON line on stdout:
//! `{"ok":true,"token":"..","claims":{..},"header":{..},"expires_on":N}` or `{"ok":false,"stage":..,"error":".."}`.

use std::process::ExitCode;
use std::time::Instant;

use azure_core::credentials::TokenCredential;
use azure_identity::{ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId};
use jsonwebtoken::{decode, decode_header, jwk::JwkSet, Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};

fn fail(stage: &str, error: String) -> ExitCode {
    fail_after(stage, error, 0.0)
}

fn fail_after(stage: &str, error: String, elapsed: f64) -> ExitCode {
    println!(
        "{}",
        json!({"ok": false, "stage": stage, "library": "azure_identity",
               "error_type": "azure_core::Error", "error": error, "elapsed": elapsed})
    );
    ExitCode::from(1)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let user_assigned_id = match (args.first().map(String::as_str), args.get(1)) {
        (Some("system"), None) => None,
        (Some("client-id"), Some(id)) => Some(UserAssignedId::ClientId(id.clone())),
        (Some("object-id"), Some(id)) => Some(UserAssignedId::ObjectId(id.clone())),
        (Some("resource-id"), Some(id)) => Some(UserAssignedId::ResourceId(id.clone())),
        _ => return fail("usage", format!("bad arguments: {args:?}")),
    };
    let Ok(scope) = std::env::var("MIEMU_SCOPE") else {
        return fail("usage", "MIEMU_SCOPE is not set".into());
    };

    let options = ManagedIdentityCredentialOptions {
        user_assigned_id,
        ..Default::default()
    };
    let credential = match ManagedIdentityCredential::new(Some(options)) {
        Ok(c) => c,
        Err(e) => return fail("construct", format!("{e:#}")),
    };
    let start = Instant::now();
    let token = match credential.get_token(&[scope.as_str()], None).await {
        Ok(t) => t,
        Err(e) => return fail_after("get_token", error_chain(&e), elapsed(start)),
    };
    let took = elapsed(start);
    let jwt = token.token.secret().to_owned();
    let expires_on = token.expires_on.unix_timestamp();

    let Ok(discovery_url) = std::env::var("MIEMU_DISCOVERY_URL") else {
        return fail("usage", "got a token but MIEMU_DISCOVERY_URL is not set".into());
    };
    match verify(&jwt, &discovery_url, &scope).await {
        Ok((header, claims)) => {
            println!(
                "{}",
                json!({"ok": true, "library": "azure_identity", "token": jwt, "header": header, "claims": claims, "expires_on": expires_on, "elapsed": took})
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail("verify", e),
    }
}

fn elapsed(start: Instant) -> f64 {
    (start.elapsed().as_secs_f64() * 1000.0).round() / 1000.0
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    // azure_core errors repeat their source's message in their own; keep each part once.
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(part.as_str()) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

async fn get_json(client: &reqwest::Client, url: &str) -> Result<Value, String> {
    let resp = client.get(url).send().await.map_err(|e| format!("GET {url}: {e}"))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(format!("GET {url}: HTTP {status}"));
    }
    resp.json().await.map_err(|e| format!("GET {url}: {e}"))
}

/// Discovery -> jwks_uri -> key by kid -> RS256 signature, `iss`, `aud` and `exp` checks.
async fn verify(jwt: &str, discovery_url: &str, scope: &str) -> Result<(Value, Value), String> {
    let client = reqwest::Client::builder()
        .build()
        .map_err(|e| format!("http client: {e}"))?;
    let discovery = get_json(&client, discovery_url).await?;
    let issuer = discovery["issuer"].as_str().ok_or("discovery has no issuer")?.to_owned();
    let jwks_uri = discovery["jwks_uri"].as_str().ok_or("discovery has no jwks_uri")?;
    let jwks: JwkSet = serde_json::from_value(get_json(&client, jwks_uri).await?)
        .map_err(|e| format!("JWKS does not parse: {e}"))?;

    let header = decode_header(jwt).map_err(|e| format!("token header: {e}"))?;
    if header.alg != Algorithm::RS256 {
        return Err(format!("token alg is {:?}, expected RS256", header.alg));
    }
    let kid = header.kid.clone().ok_or("token header has no kid")?;
    let jwk = jwks.find(&kid).ok_or_else(|| format!("kid {kid} not in JWKS"))?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("JWK {kid}: {e}"))?;

    let audience = scope.strip_suffix("/.default").unwrap_or(scope);
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_issuer(&[issuer.as_str()]);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    let data = decode::<Value>(jwt, &key, &validation).map_err(|e| format!("token rejected: {e}"))?;
    let header_json = serde_json::to_value(&header).map_err(|e| e.to_string())?;
    Ok((header_json, data.claims))
}
