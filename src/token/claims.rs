//! The claims of a v1 managed-identity access token, as Entra issues them.
//!
//! Field order follows real tokens (`aud, iss, iat, nbf, exp, aio, appid,
//! appidacr, idp, idtyp, oid, rh, sub, tid, uti, ver, xms_az_rid, xms_mirid`)
//! so a decoded miemu token reads like one from Azure. `sub` equals `oid`:
//! for app-only tokens Entra sets the subject to the service principal's
//! object id (real samples are redacted; see docs/decisions.md).

use serde::{Deserialize, Serialize};

/// v1 managed-identity access-token claims.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// Audience: the requested resource, verbatim.
    pub aud: String,
    /// Issuer: `https://sts.windows.net/{tenant}/` unless configured.
    pub iss: String,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Not before; equals `iat`.
    pub nbf: i64,
    /// Expiry; equals the response's `expires_on`.
    pub exp: i64,
    /// Opaque Entra-internal value.
    pub aio: String,
    /// The identity's client id.
    pub appid: String,
    /// `"2"`: the client authenticated with a certificate.
    pub appidacr: String,
    /// Identity provider; equals `iss`.
    pub idp: String,
    /// `"app"`: an app-only token.
    pub idtyp: String,
    /// The identity's principal (object) id.
    pub oid: String,
    /// Opaque Entra-internal value.
    pub rh: String,
    /// Subject; equals `oid`.
    pub sub: String,
    /// Tenant id.
    pub tid: String,
    /// Unique token id.
    pub uti: String,
    /// `"1.0"`.
    pub ver: String,
    /// User-assigned identities only: the hosting app's ARM id.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub xms_az_rid: Option<String>,
    /// The identity's ARM id (the app's for the system identity).
    pub xms_mirid: String,
}
