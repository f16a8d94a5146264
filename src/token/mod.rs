//! Minting: claims for an identity and resource, signed with the key.
//!
//! [`mint`] takes a [`policy::Admitted`](crate::policy::Admitted), which only
//! the policy can produce, so no code path can sign a token without having
//! asked the policy first. This module knows nothing about HTTP.

mod cache;
pub mod claims;
pub mod keyring;
pub mod keys;
mod resource;

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use thiserror::Error;

use crate::identity::{Identity, IdentityKind};
use crate::platform::App;
use crate::policy::Admitted;

pub use cache::{REFRESH_MARGIN_SECS, TokenCache};
pub use claims::Claims;
pub use keyring::KeyRing;
pub use keys::{Jwk, KeyError, KeyOrigin, SigningKey};
pub use resource::{MAX_LEN as MAX_RESOURCE_LEN, Resource, ResourceError};

/// Why a token could not be minted.
#[derive(Debug, Error)]
pub enum MintError {
    /// Signing failed.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The claims could not be encoded (a bug).
    #[error("claims encoding failed: {0}")]
    Encode(#[from] serde_json::Error),
}

/// A signed token and the claims it carries.
#[derive(Debug, Clone)]
pub struct MintedToken {
    /// The compact JWT. Never log this.
    pub jwt: String,
    /// Its claims.
    pub claims: Claims,
    /// The response body the serving protocol renders for this token, kept
    /// so that a cached token is not serialised again for every request.
    /// Filled by the protocol on first use.
    pub rendered: OnceLock<Bytes>,
}

/// What a token is minted from.
#[derive(Debug, Clone, Copy)]
pub struct MintInput<'a> {
    /// Tenant id.
    pub tenant_id: uuid::Uuid,
    /// `iss` (and `idp`).
    pub issuer: &'a str,
    /// The hosting app.
    pub app: &'a App,
    /// The identity the token is for.
    pub identity: &'a Identity,
    /// The audience.
    pub resource: &'a Resource,
    /// `iat`/`nbf`, Unix seconds.
    pub now: i64,
    /// Seconds until `exp`; may be zero or negative to mint expired tokens.
    pub lifetime_secs: i64,
}

/// Builds the claims for a token.
pub fn claims(input: &MintInput<'_>) -> Claims {
    let identity = input.identity;
    let app_arm = input.app.resource_id();
    let rh = format!(
        "0.{}",
        URL_SAFE_NO_PAD.encode(
            [
                input.tenant_id.as_bytes().as_slice(),
                identity.client_id.as_bytes().as_slice()
            ]
            .concat()
        )
    );
    Claims {
        aud: input.resource.as_str().to_owned(),
        iss: input.issuer.to_owned(),
        iat: input.now,
        nbf: input.now,
        exp: input.now + input.lifetime_secs,
        aio: format!("E2R{}", random_b64(36)),
        appid: identity.client_id.to_string(),
        appidacr: "2".to_owned(),
        idp: input.issuer.to_owned(),
        idtyp: "app".to_owned(),
        oid: identity.principal_id.to_string(),
        rh,
        sub: identity.principal_id.to_string(),
        tid: input.tenant_id.to_string(),
        uti: random_b64(16),
        ver: "1.0".to_owned(),
        xms_az_rid: (identity.kind == IdentityKind::User).then(|| app_arm.clone()),
        xms_mirid: match identity.kind {
            IdentityKind::System => app_arm,
            IdentityKind::User => identity.resource_id.clone(),
        },
    }
}

/// Mints a signed token. Requires proof that the policy admitted the caller.
pub fn mint(
    _admitted: &Admitted,
    key: &SigningKey,
    input: &MintInput<'_>,
) -> Result<MintedToken, MintError> {
    let claims = claims(input);
    let jwt = sign(key, &claims)?;
    Ok(MintedToken {
        jwt,
        claims,
        rendered: OnceLock::new(),
    })
}

/// Encodes and signs claims as a compact RS256 JWT.
pub fn sign(key: &SigningKey, claims: &Claims) -> Result<String, MintError> {
    let payload = serde_json::to_vec(claims)?;
    let header = key.header_b64();
    let mut jwt = String::with_capacity(header.len() + payload.len() * 4 / 3 + 350);
    jwt.push_str(header);
    jwt.push('.');
    URL_SAFE_NO_PAD.encode_string(&payload, &mut jwt);
    let signature = key.sign(jwt.as_bytes())?;
    jwt.push('.');
    URL_SAFE_NO_PAD.encode_string(&signature, &mut jwt);
    Ok(jwt)
}

/// `n` random bytes, base64url: the shape of Entra's opaque `uti`/`aio`.
fn random_b64(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    // The system RNG does not fail on Linux; if it ever did, a zero-filled
    // value would only make `uti` less unique, never leak anything.
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests;
