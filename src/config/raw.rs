//! The configuration file as written: plain serde data, no validation.
//!
//! Unknown keys are not rejected by serde here (`deny_unknown_fields` stops at
//! the first one); [`super::parse_str`] collects *all* of them with
//! `serde_ignored` and reports them together. Nothing in this module checks
//! that the values make sense together; [`super::Config::from_raw`] does that
//! and also reports every problem at once.

use serde::{Deserialize, Serialize};

/// The whole file. Every field is optional so that defaults and command-line
/// overrides can be layered on top before validation.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct RawConfig {
    /// Entra tenant id (a GUID). Defaults to the built-in configuration's
    /// made-up tenant, `55e9bb3b-35a9-4773-888e-6edfb924dd85`.
    pub tenant_id: Option<String>,
    /// The emulated app that hosts the identities.
    #[serde(default)]
    pub app: RawApp,
    /// The system-assigned identity; absent means the app has none.
    pub system_identity: Option<RawSystemIdentity>,
    /// User-assigned identities attached to the app.
    #[serde(default)]
    pub user_identities: Vec<RawUserIdentity>,
    /// The containers of the app; each gets its own `IDENTITY_HEADER` secret.
    #[serde(default)]
    pub containers: Vec<RawContainer>,
    /// Listener and file locations.
    #[serde(default)]
    pub server: RawServer,
    /// Token minting settings.
    #[serde(default)]
    pub tokens: RawTokens,
    /// The admin API.
    #[serde(default)]
    pub admin: RawAdmin,
}

/// The admin API: off unless `listen` is set.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct RawAdmin {
    /// Listen address of the admin API, e.g. `127.0.0.1:42357`. Off by default.
    pub listen: Option<String>,
    /// Bearer token the admin API requires; generated at start when left out.
    pub token: Option<String>,
}

/// The hosting app (a container app or an App Service site).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct RawApp {
    /// Subscription id (a GUID). Defaults to the built-in configuration's,
    /// `bd50bda9-0dd4-4e3f-8171-df814c175a67`.
    pub subscription_id: Option<String>,
    /// Resource group name. Defaults to `miemu-rg`.
    pub resource_group: Option<String>,
    /// App name. Defaults to `miemu-app`.
    pub name: Option<String>,
    /// `containerapp` (default) or `webapp`.
    pub kind: Option<String>,
}

/// The system-assigned identity; its ids are derived when left out.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct RawSystemIdentity {
    /// Client (application) id.
    pub client_id: Option<String>,
    /// Principal (object) id.
    pub principal_id: Option<String>,
    /// Which containers may use it: `main` (default), `init`, `all`, `none`.
    pub lifecycle: Option<String>,
}

/// A user-assigned identity.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct RawUserIdentity {
    /// Resource name of the identity (last segment of its ARM id).
    pub name: Option<String>,
    /// Client (application) id; derived when left out.
    pub client_id: Option<String>,
    /// Principal (object) id; derived when left out.
    pub principal_id: Option<String>,
    /// Subscription holding the identity; defaults to the app's.
    pub subscription_id: Option<String>,
    /// Resource group holding the identity; defaults to the app's.
    pub resource_group: Option<String>,
    /// Which containers may use it: `main` (default), `init`, `all`, `none`.
    pub lifecycle: Option<String>,
}

/// A container of the app.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct RawContainer {
    /// Container name.
    pub name: Option<String>,
    /// `main` (default) or `init`.
    pub kind: Option<String>,
    /// The container's `IDENTITY_HEADER` value; generated at start when left out.
    pub secret: Option<String>,
}

/// Listener and file locations.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct RawServer {
    /// Listen address. Defaults to `127.0.0.1:42356`.
    pub listen: Option<String>,
    /// Base URL clients use to reach miemu; defaults to `http://<listen address>`.
    pub public_url: Option<String>,
    /// Directory of the signing key; defaults to the user's state directory.
    pub key_dir: Option<String>,
    /// Directory where `<container>.env` files are written; none by default.
    pub env_dir: Option<String>,
    /// Answer token requests that carry `X-Forwarded-For` (a request relayed
    /// by a proxy, the classic SSRF symptom). Defaults to `false`: refused.
    pub dangerously_allow_forwarded: Option<bool>,
    /// Request-log capacity (records). Defaults to 1000.
    pub request_log: Option<usize>,
    /// Seconds a rotated-out key stays in the JWKS. Defaults to 90 000
    /// (longer than the default token lifetime).
    pub key_overlap_secs: Option<i64>,
}

/// Token minting settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct RawTokens {
    /// Token lifetime in seconds. Defaults to 86 700 (24 h 5 min), as real MI tokens.
    pub lifetime_secs: Option<i64>,
    /// Token issuer. Defaults to `https://sts.windows.net/{tenant}/`.
    pub issuer: Option<String>,
    /// Serve the same token until 5 minutes before it expires. Defaults to `true`.
    pub cache: Option<bool>,
}
