//! Configuration: read the TOML file (or the built-in default), layer the
//! overrides on top, then validate everything at once into a [`Config`].
//!
//! Precedence is command-line flag, then `MIEMU_*` environment variable (both
//! handled by clap in `cli`), then the file, then the built-in defaults
//! documented on each [`raw`] field. Validation never stops at the first
//! problem: it collects every one with the key path it concerns, so a user
//! fixes a file in one pass. This module does no network I/O and starts
//! nothing.

pub mod raw;

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use thiserror::Error;
use uuid::Uuid;

use crate::identity::{Identity, IdentityKind, Lifecycle, Registry};
use crate::platform::{App, AppKind, Container, ContainerKind, Platform};
use crate::secret::Secret;

pub use raw::RawConfig;

/// The built-in default configuration, used when no file is given.
pub const DEFAULT_CONFIG: &str = include_str!("../../fixtures/config/default.toml");

/// Tenant used when a file names none (the built-in default's).
pub const DEFAULT_TENANT: Uuid = Uuid::from_u128(0x55e9_bb3b_35a9_4773_888e_6edf_b924_dd85);

/// Subscription used when a file names none (the built-in default's).
pub const DEFAULT_SUBSCRIPTION: Uuid = Uuid::from_u128(0xbd50_bda9_0dd4_4e3f_8171_df81_4c17_5a67);

/// Default listen address: loopback, the port Container Apps uses.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:42356";

/// Default token lifetime: 24 h 5 min, as real managed-identity tokens.
pub const DEFAULT_LIFETIME_SECS: i64 = 86_700;

/// Longest accepted token lifetime (a year); longer is surely a typo.
const MAX_LIFETIME_SECS: i64 = 366 * 24 * 3600;

/// Namespace for the UUID v5 ids derived for identities left without ids.
const ID_NAMESPACE: Uuid = Uuid::from_u128(0x6d69_656d_752d_5e1d_8e00_0000_0000_0001);

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The emulated app, identities and containers.
    pub platform: Platform,
    /// Listener and file locations.
    pub server: ServerConfig,
    /// Token settings.
    pub tokens: TokenConfig,
    /// The admin API.
    pub admin: AdminConfig,
}

/// Listener and file locations.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to bind.
    pub listen: SocketAddr,
    /// Base URL clients use (no trailing slash); derived from the bound
    /// address when absent.
    pub public_url: Option<String>,
    /// Signing key directory.
    pub key_dir: PathBuf,
    /// Where to write `<container>.env` files.
    pub env_dir: Option<PathBuf>,
    /// Whether token requests with `X-Forwarded-For` are answered.
    pub allow_forwarded: bool,
    /// Request-log capacity.
    pub request_log: usize,
    /// Seconds a rotated-out key stays published.
    pub key_overlap_secs: i64,
}

/// The admin API.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    /// Where it listens; `None` = off.
    pub listen: Option<SocketAddr>,
    /// The bearer token it requires.
    pub token: Secret,
}

/// Token settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenConfig {
    /// Lifetime in seconds.
    pub lifetime_secs: i64,
    /// `iss` claim and discovery `issuer`.
    pub issuer: String,
    /// Whether repeated requests get the same token until it nears expiry.
    pub cache: bool,
}

/// Values from the command line or environment that win over the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--listen` / `MIEMU_LISTEN`.
    pub listen: Option<String>,
    /// `--public-url` / `MIEMU_PUBLIC_URL`.
    pub public_url: Option<String>,
    /// `--key-dir` / `MIEMU_KEY_DIR`.
    pub key_dir: Option<PathBuf>,
    /// `--env-dir` / `MIEMU_ENV_DIR`.
    pub env_dir: Option<PathBuf>,
    /// `--admin-listen` / `MIEMU_ADMIN_LISTEN`.
    pub admin_listen: Option<String>,
    /// `--admin-token` / `MIEMU_ADMIN_TOKEN`.
    pub admin_token: Option<String>,
}

impl Overrides {
    /// Writes the overrides into a raw configuration.
    pub fn apply(self, raw: &mut RawConfig) {
        if let Some(v) = self.listen {
            raw.server.listen = Some(v);
        }
        if let Some(v) = self.public_url {
            raw.server.public_url = Some(v);
        }
        if let Some(v) = self.key_dir {
            raw.server.key_dir = Some(v.display().to_string());
        }
        if let Some(v) = self.env_dir {
            raw.server.env_dir = Some(v.display().to_string());
        }
        if let Some(v) = self.admin_listen {
            raw.admin.listen = Some(v);
        }
        if let Some(v) = self.admin_token {
            raw.admin.token = Some(v);
        }
    }
}

/// One thing wrong with a configuration, at a key path such as
/// `user_identities[1].client_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where.
    pub path: String,
    /// What.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Why a configuration could not be used.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {origin}: {source}")]
    Read {
        /// The file.
        origin: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or a value has the wrong type.
    #[error("{origin}: {message}")]
    Parse {
        /// The file.
        origin: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// The file parsed but its values are wrong; every problem is listed.
    #[error("{origin}: {} problem(s):\n{}", problems.len(), list(problems))]
    Invalid {
        /// The file.
        origin: String,
        /// Every problem found.
        problems: Vec<Problem>,
    },
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads and parses a configuration file, or the built-in default when
/// `path` is `None`. Returns the raw configuration and its origin.
pub fn load(path: Option<&Path>) -> Result<(RawConfig, String), ConfigError> {
    let (text, origin) = read(path)?;
    Ok((parse_str(&text, &origin)?, origin))
}

/// Reads a configuration file's text (or the built-in default's) and names
/// its origin, without parsing it.
pub fn read(path: Option<&Path>) -> Result<(String, String), ConfigError> {
    match path {
        None => Ok((DEFAULT_CONFIG.to_owned(), "built-in default".to_owned())),
        Some(path) => {
            let origin = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                origin: origin.clone(),
                source,
            })?;
            Ok((text, origin))
        }
    }
}

/// Parses TOML text, reporting every unknown key at once.
pub fn parse_str(text: &str, origin: &str) -> Result<RawConfig, ConfigError> {
    let parse_error = |e: &dyn fmt::Display| ConfigError::Parse {
        origin: origin.to_owned(),
        message: e.to_string().trim_end().to_owned(),
    };
    let mut unknown = Vec::new();
    let de = toml::de::Deserializer::parse(text).map_err(|e| parse_error(&e))?;
    let raw: RawConfig = serde_ignored::deserialize(de, |path| {
        unknown.push(Problem {
            path: path.to_string(),
            message: "unknown key".to_owned(),
        });
    })
    .map_err(|e| parse_error(&e))?;
    if unknown.is_empty() {
        Ok(raw)
    } else {
        Err(ConfigError::Invalid {
            origin: origin.to_owned(),
            problems: unknown,
        })
    }
}

impl Config {
    /// Validates a raw configuration. Container secrets left out are generated
    /// here, so two calls give different secrets for them.
    pub fn from_raw(raw: &RawConfig, origin: &str) -> Result<Self, ConfigError> {
        Self::from_raw_with(raw, origin, None)
    }

    /// Like [`Config::from_raw`], but a container left without a configured
    /// secret keeps the one it has in `previous` (a reload must not
    /// invalidate the env files containers already read).
    pub fn from_raw_with(
        raw: &RawConfig,
        origin: &str,
        previous: Option<&Platform>,
    ) -> Result<Self, ConfigError> {
        let mut v = Validator {
            previous,
            ..Validator::default()
        };
        let config = v.config(raw);
        match config {
            Some(c) if v.problems.is_empty() => Ok(c),
            _ => Err(ConfigError::Invalid {
                origin: origin.to_owned(),
                problems: v.problems,
            }),
        }
    }

    /// The base URL clients should use for a server bound at `bound`.
    pub fn public_url(&self, bound: SocketAddr) -> String {
        match &self.server.public_url {
            Some(url) => url.clone(),
            None => {
                let ip = if bound.ip().is_unspecified() {
                    match bound {
                        SocketAddr::V4(_) => "127.0.0.1".to_owned(),
                        SocketAddr::V6(_) => "[::1]".to_owned(),
                    }
                } else {
                    match bound {
                        SocketAddr::V4(a) => a.ip().to_string(),
                        SocketAddr::V6(a) => format!("[{}]", a.ip()),
                    }
                };
                format!("http://{ip}:{}", bound.port())
            }
        }
    }
}

/// The default key directory: `$XDG_STATE_HOME/miemu/keys`, else
/// `$HOME/.local/state/miemu/keys`, else `.miemu/keys`.
pub fn default_key_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir).join("miemu").join("keys");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(home).join(".local/state/miemu/keys");
    }
    PathBuf::from(".miemu/keys")
}

#[derive(Default)]
struct Validator<'a> {
    previous: Option<&'a Platform>,
    problems: Vec<Problem>,
    client_ids: HashSet<Uuid>,
    principal_ids: HashSet<Uuid>,
}

impl Validator<'_> {
    fn problem(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }

    fn guid(&mut self, path: &str, value: Option<&str>) -> Option<Uuid> {
        let value = value?;
        match Uuid::try_parse(value.trim()) {
            Ok(id) if value.trim().len() == 36 => Some(id),
            _ => {
                self.problem(path, format!("{value:?} is not a GUID"));
                None
            }
        }
    }

    fn name(&mut self, path: &str, value: Option<&str>, required: bool) -> Option<String> {
        let Some(value) = value else {
            if required {
                self.problem(path, "is required");
            }
            return None;
        };
        let ok = !value.is_empty()
            && value.len() <= 128
            && !value.starts_with(['.', '-'])
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if ok {
            Some(value.to_owned())
        } else {
            self.problem(
                path,
                format!("{value:?} must be 1-128 letters, digits, '-', '_' or '.'"),
            );
            None
        }
    }

    fn lifecycle(&mut self, path: &str, value: Option<&str>) -> Lifecycle {
        match value {
            None => Lifecycle::Main,
            Some(v) => Lifecycle::parse(v).unwrap_or_else(|| {
                self.problem(path, format!("{v:?} is not one of main, init, all, none"));
                Lifecycle::Main
            }),
        }
    }

    fn unique_ids(&mut self, path: &str, client_id: Uuid, principal_id: Uuid) {
        if !self.client_ids.insert(client_id) {
            self.problem(
                format!("{path}.client_id"),
                format!("{client_id} is used twice"),
            );
        }
        if !self.principal_ids.insert(principal_id) {
            self.problem(
                format!("{path}.principal_id"),
                format!("{principal_id} is used twice"),
            );
        }
    }

    fn config(&mut self, raw: &RawConfig) -> Option<Config> {
        let tenant = match raw.tenant_id.as_deref() {
            None => Some(DEFAULT_TENANT),
            some => self.guid("tenant_id", some),
        };
        let app = self.app(raw);
        // Go on with stand-ins when the tenant or app is wrong, so problems
        // further down are reported in the same pass.
        let tenant_or_nil = tenant.unwrap_or_default();
        let app_or_stand_in = app.clone().unwrap_or_else(|| App {
            subscription_id: Uuid::nil(),
            resource_group: "invalid".to_owned(),
            name: "invalid".to_owned(),
            kind: AppKind::ContainerApp,
        });
        let registry = self.identities(raw, tenant_or_nil, &app_or_stand_in);
        let containers = self.containers(raw);
        let server = self.server(raw);
        let tokens = self.tokens(raw, tenant_or_nil);
        let admin = self.admin(raw);
        Some(Config {
            platform: Platform {
                tenant_id: tenant?,
                app: app?,
                identities: registry,
                containers,
            },
            server: server?,
            tokens: tokens?,
            admin: admin?,
        })
    }

    fn app(&mut self, raw: &RawConfig) -> Option<App> {
        let subscription = match raw.app.subscription_id.as_deref() {
            None => Some(DEFAULT_SUBSCRIPTION),
            some => self.guid("app.subscription_id", some),
        };
        let rg = raw.app.resource_group.as_deref().unwrap_or("miemu-rg");
        let rg = self.name("app.resource_group", Some(rg), true);
        let name = self.name(
            "app.name",
            Some(raw.app.name.as_deref().unwrap_or("miemu-app")),
            true,
        );
        let kind = match raw.app.kind.as_deref() {
            None => Some(AppKind::ContainerApp),
            Some(k) => AppKind::parse(k).or_else(|| {
                self.problem(
                    "app.kind",
                    format!("{k:?} is not one of containerapp, webapp"),
                );
                None
            }),
        };
        Some(App {
            subscription_id: subscription?,
            resource_group: rg?,
            name: name?,
            kind: kind?,
        })
    }

    fn identities(&mut self, raw: &RawConfig, tenant: Uuid, app: &App) -> Registry {
        let system = raw.system_identity.as_ref().map(|s| {
            let arm = app.resource_id();
            let client_id = self
                .guid("system_identity.client_id", s.client_id.as_deref())
                .unwrap_or_else(|| derive(tenant, "system-client", &arm));
            let principal_id = self
                .guid("system_identity.principal_id", s.principal_id.as_deref())
                .unwrap_or_else(|| derive(tenant, "system-principal", &arm));
            self.unique_ids("system_identity", client_id, principal_id);
            Identity {
                name: "system".to_owned(),
                kind: IdentityKind::System,
                client_id,
                principal_id,
                resource_id: arm,
                lifecycle: self.lifecycle("system_identity.lifecycle", s.lifecycle.as_deref()),
            }
        });
        let mut names = HashSet::new();
        let mut users = Vec::new();
        for (i, u) in raw.user_identities.iter().enumerate() {
            let path = format!("user_identities[{i}]");
            let name = self.name(&format!("{path}.name"), u.name.as_deref(), true);
            let sub = match u.subscription_id.as_deref() {
                Some(s) => self.guid(&format!("{path}.subscription_id"), Some(s)),
                None => Some(app.subscription_id),
            };
            let rg = match u.resource_group.as_deref() {
                Some(rg) => self.name(&format!("{path}.resource_group"), Some(rg), true),
                None => Some(app.resource_group.clone()),
            };
            let lifecycle = self.lifecycle(&format!("{path}.lifecycle"), u.lifecycle.as_deref());
            let explicit_client = self.guid(&format!("{path}.client_id"), u.client_id.as_deref());
            let explicit_principal =
                self.guid(&format!("{path}.principal_id"), u.principal_id.as_deref());
            let (Some(name), Some(sub), Some(rg)) = (name, sub, rg) else {
                continue;
            };
            if !names.insert(name.to_ascii_lowercase()) {
                self.problem(format!("{path}.name"), format!("{name:?} is used twice"));
            }
            let arm = format!(
                "/subscriptions/{sub}/resourcegroups/{rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}"
            );
            let client_id = explicit_client.unwrap_or_else(|| derive(tenant, "client", &arm));
            let principal_id =
                explicit_principal.unwrap_or_else(|| derive(tenant, "principal", &arm));
            self.unique_ids(&path, client_id, principal_id);
            users.push(Identity {
                name,
                kind: IdentityKind::User,
                client_id,
                principal_id,
                resource_id: arm,
                lifecycle,
            });
        }
        Registry::new(system, users)
    }

    fn containers(&mut self, raw: &RawConfig) -> Vec<Container> {
        if raw.containers.is_empty() {
            self.problem("containers", "at least one container is required");
        }
        let mut names = HashSet::new();
        let mut secrets = HashSet::new();
        let mut out = Vec::new();
        for (i, c) in raw.containers.iter().enumerate() {
            let path = format!("containers[{i}]");
            let name = self.name(&format!("{path}.name"), c.name.as_deref(), true);
            let kind = match c.kind.as_deref() {
                None => Some(ContainerKind::Main),
                Some(k) => ContainerKind::parse(k).or_else(|| {
                    self.problem(
                        format!("{path}.kind"),
                        format!("{k:?} is not one of main, init"),
                    );
                    None
                }),
            };
            let secret = match c.secret.as_deref() {
                Some(s)
                    if s.len() < 8 || s.len() > 256 || s.chars().any(|c| !c.is_ascii_graphic()) =>
                {
                    self.problem(
                        format!("{path}.secret"),
                        "must be 8-256 printable ASCII characters without spaces",
                    );
                    None
                }
                Some(s) => Some(Secret::new(s)),
                None => Some(
                    self.previous
                        .zip(c.name.as_deref())
                        .and_then(|(p, name)| p.container(name))
                        .map_or_else(Secret::generate, |old| old.secret.clone()),
                ),
            };
            let (Some(name), Some(kind), Some(secret)) = (name, kind, secret) else {
                continue;
            };
            if !names.insert(name.clone()) {
                self.problem(format!("{path}.name"), format!("{name:?} is used twice"));
            }
            if !secrets.insert(secret.expose().to_owned()) {
                self.problem(
                    format!("{path}.secret"),
                    "is the same as another container's; each container needs its own",
                );
            }
            out.push(Container { name, kind, secret });
        }
        out
    }

    fn server(&mut self, raw: &RawConfig) -> Option<ServerConfig> {
        let listen_text = raw.server.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
        let listen = listen_text.parse::<SocketAddr>().map_err(|_| {
            self.problem(
                "server.listen",
                format!("{listen_text:?} is not an IP address and port, e.g. 127.0.0.1:42356"),
            );
        });
        let public_url = match raw.server.public_url.as_deref() {
            None => None,
            Some(u) if is_http_url(u) => Some(u.trim_end_matches('/').to_owned()),
            Some(u) => {
                self.problem("server.public_url", format!("{u:?} is not an http(s) URL"));
                None
            }
        };
        let key_dir = raw
            .server
            .key_dir
            .as_deref()
            .map_or_else(default_key_dir, PathBuf::from);
        let request_log = raw
            .server
            .request_log
            .unwrap_or(crate::requestlog::DEFAULT_CAPACITY);
        if !(1..=1_000_000).contains(&request_log) {
            self.problem(
                "server.request_log",
                format!("{request_log} is not between 1 and 1000000"),
            );
        }
        let key_overlap_secs = raw
            .server
            .key_overlap_secs
            .unwrap_or(crate::token::keyring::DEFAULT_OVERLAP_SECS);
        if !(0..=MAX_LIFETIME_SECS * 2).contains(&key_overlap_secs) {
            self.problem(
                "server.key_overlap_secs",
                format!(
                    "{key_overlap_secs} is not between 0 and {}",
                    MAX_LIFETIME_SECS * 2
                ),
            );
        }
        Some(ServerConfig {
            listen: listen.ok()?,
            public_url,
            key_dir,
            env_dir: raw.server.env_dir.as_deref().map(PathBuf::from),
            allow_forwarded: raw.server.dangerously_allow_forwarded.unwrap_or(false),
            request_log,
            key_overlap_secs,
        })
    }

    fn admin(&mut self, raw: &RawConfig) -> Option<AdminConfig> {
        let listen = match raw.admin.listen.as_deref() {
            None => None,
            Some(text) => match text.parse::<SocketAddr>() {
                Ok(a) => Some(a),
                Err(_) => {
                    self.problem(
                        "admin.listen",
                        format!("{text:?} is not an IP address and port"),
                    );
                    return None;
                }
            },
        };
        let token = match raw.admin.token.as_deref() {
            Some(t) if t.len() < 16 || t.chars().any(|c| !c.is_ascii_graphic()) => {
                self.problem(
                    "admin.token",
                    "must be at least 16 printable ASCII characters without spaces",
                );
                return None;
            }
            Some(t) => Secret::new(t),
            None => Secret::generate(),
        };
        Some(AdminConfig { listen, token })
    }

    fn tokens(&mut self, raw: &RawConfig, tenant: Uuid) -> Option<TokenConfig> {
        let lifetime_secs = raw.tokens.lifetime_secs.unwrap_or(DEFAULT_LIFETIME_SECS);
        if !(1..=MAX_LIFETIME_SECS).contains(&lifetime_secs) {
            self.problem(
                "tokens.lifetime_secs",
                format!("{lifetime_secs} is not between 1 and {MAX_LIFETIME_SECS}"),
            );
            return None;
        }
        let issuer = match raw.tokens.issuer.as_deref() {
            None => format!("https://sts.windows.net/{tenant}/"),
            Some(i) if is_http_url(i) => i.to_owned(),
            Some(i) => {
                self.problem("tokens.issuer", format!("{i:?} is not an http(s) URL"));
                return None;
            }
        };
        Some(TokenConfig {
            lifetime_secs,
            issuer,
            cache: raw.tokens.cache.unwrap_or(true),
        })
    }
}

fn is_http_url(s: &str) -> bool {
    let rest = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"));
    rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/') && !r.contains(char::is_whitespace))
}

/// A stable id for an identity left without one: UUID v5 of what it is and
/// where it lives, so it never changes between runs.
fn derive(tenant: Uuid, what: &str, arm_id: &str) -> Uuid {
    let name = format!("{what}:{tenant}:{}", arm_id.to_ascii_lowercase());
    Uuid::new_v5(&ID_NAMESPACE, name.as_bytes())
}

#[cfg(test)]
mod tests;
