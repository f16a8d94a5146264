//! `spawn_app`: a real miemu server on 127.0.0.1:0 with a manual clock, and a
//! `TestApp` with typed request helpers and token verification through the
//! server's own discovery document and JWKS.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use miemu::clock::ManualClock;
use miemu::config::{self, Config};
use miemu::token::{Claims, SigningKey};
use serde_json::Value;

/// 2025-06-15T12:00:00Z: tests run on a fixed clock.
pub(crate) const NOW: i64 = 1_750_000_000;

pub(crate) const VAULT: &str = "https://vault.azure.net";

pub(crate) fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// One key for the whole test binary: RSA generation is the slowest part of
/// start-up and every test would otherwise pay for it.
fn shared_key_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        SigningKey::load_or_create(dir.path(), NOW).unwrap();
        dir
    })
    .path()
}

pub(crate) const ADMIN_TOKEN: &str = "admin-token-for-tests-only";

pub(crate) struct TestApp {
    pub(crate) base: String,
    pub(crate) admin_base: String,
    pub(crate) state: miemu::AppState,
    admin: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    pub(crate) clock: Arc<ManualClock>,
    pub(crate) config: Config,
    pub(crate) http: reqwest::Client,
    secrets: HashMap<String, String>,
    shutdown: Option<tokio::sync::watch::Sender<bool>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// Starts a server from a fixture configuration (`config/<name>.toml`),
/// optionally edited as TOML text first.
pub(crate) async fn spawn_app(config_name: &str) -> TestApp {
    spawn_app_with(config_name, |t| t).await
}

pub(crate) async fn spawn_app_with(
    config_name: &str,
    edit: impl FnOnce(String) -> String,
) -> TestApp {
    let path = fixture(&format!("config/{config_name}.toml"));
    let text = edit(std::fs::read_to_string(&path).unwrap());
    let raw = config::parse_str(&text, "test").unwrap();
    let config = Config::from_raw(&raw, "test").unwrap();
    spawn_config(config, raw, miemu::state::Extras::default()).await
}

/// Starts a server that reads (and watches) a configuration file.
pub(crate) async fn spawn_app_from_file(path: &Path) -> TestApp {
    let (text, origin) = config::read(Some(path)).unwrap();
    let raw = config::parse_str(&text, &origin).unwrap();
    let config = Config::from_raw(&raw, &origin).unwrap();
    let extras = miemu::state::Extras {
        source: Some(miemu::state::Source {
            path: Some(path.to_owned()),
            overrides: config::Overrides::default(),
            text: Some(text),
        }),
        env: None,
        key_dir: None,
    };
    spawn_config(config, raw, extras).await
}

/// Starts a server for an already validated configuration.
pub(crate) async fn spawn_config(
    config: Config,
    raw: config::RawConfig,
    extras: miemu::state::Extras,
) -> TestApp {
    let watch = extras.source.is_some();
    let (key, _) = SigningKey::load_or_create(shared_key_dir(), NOW).unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Requests go to the bound address; the configured public URL (which
    // may name a host that does not resolve here) is only advertised.
    let base = format!("http://{addr}");
    let public_url = config.public_url(addr);
    let clock = ManualClock::new(NOW);
    let secrets = config
        .platform
        .containers
        .iter()
        .map(|c| (c.name.clone(), c.secret.expose().to_owned()))
        .collect();
    let state = miemu::AppState::with_extras(
        config.clone(),
        raw,
        miemu::token::KeyRing::single(key),
        clock.clone(),
        public_url,
        extras,
    );
    let (tx, rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };
    let admin_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin_base = format!("http://{}", admin_listener.local_addr().unwrap());
    let admin_router = miemu::admin::router(state.clone(), miemu::secret::Secret::new(ADMIN_TOKEN));
    let admin = tokio::spawn(miemu::run(
        admin_listener,
        admin_router,
        64,
        miemu::server::Gate::default(),
        stopped(),
    ));
    if watch {
        tokio::spawn(miemu::reload::watch(state.clone(), stopped()));
    }
    let gate = state.gate().clone();
    let server = tokio::spawn(miemu::run(
        listener,
        miemu::build(state.clone()),
        1024,
        gate,
        stopped(),
    ));
    TestApp {
        base,
        admin_base,
        state,
        admin: Some(admin),
        clock,
        config,
        http: reqwest::Client::new(),
        secrets,
        shutdown: Some(tx),
        server: Some(server),
    }
}

impl TestApp {
    pub(crate) fn secret(&self, container: &str) -> &str {
        &self.secrets[container]
    }

    pub(crate) fn identity(&self, name: &str) -> miemu::identity::Identity {
        self.config
            .platform
            .identities
            .iter()
            .find(|i| i.name == name)
            .unwrap_or_else(|| panic!("no identity {name}"))
            .clone()
    }

    /// GET /msi/token with a raw query string and an optional secret.
    pub(crate) async fn token_raw(&self, query: &str, secret: Option<&str>) -> reqwest::Response {
        let mut req = self.http.get(format!("{}/msi/token?{query}", self.base));
        if let Some(s) = secret {
            req = req.header("X-IDENTITY-HEADER", s);
        }
        req.send().await.unwrap()
    }

    /// A well-formed token request from `container` with extra query pairs.
    pub(crate) async fn token(
        &self,
        container: &str,
        resource: &str,
        extra: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut query = vec![("api-version", "2019-08-01"), ("resource", resource)];
        query.extend_from_slice(extra);
        self.http
            .get(format!("{}/msi/token", self.base))
            .query(&query)
            .header("X-IDENTITY-HEADER", self.secret(container))
            .send()
            .await
            .unwrap()
    }

    /// The `/metrics` text.
    pub(crate) async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub(crate) async fn get_json(&self, path: &str) -> (u16, Value) {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }

    /// Verifies a token's signature with the key found through the server's
    /// discovery document and JWKS (fetched over HTTP), and checks `aud`,
    /// `iss` and the time claims against the test clock.
    pub(crate) async fn verify(&self, token: &str, audience: &str) -> Claims {
        let tenant = self.config.platform.tenant_id;
        let (status, discovery) = self
            .get_json(&format!("/{tenant}/.well-known/openid-configuration"))
            .await;
        assert_eq!(status, 200);
        let jwks_uri = discovery["jwks_uri"].as_str().unwrap();
        let jwks_path = &jwks_uri[jwks_uri.find(&format!("/{tenant}/")).unwrap()..];
        let (status, jwks) = self.get_json(jwks_path).await;
        assert_eq!(status, 200);
        let (_, key) = published_key(token, jwks["keys"].as_array().unwrap());
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.set_audience(&[audience]);
        validation.set_issuer(&[discovery["issuer"].as_str().unwrap()]);
        // The signature and claims are checked here; expiry against the
        // test's manual clock below (jsonwebtoken reads the wall clock).
        validation.validate_exp = false;
        let claims = jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .unwrap()
            .claims;
        let now = miemu::clock::Clock::now(self.clock.as_ref());
        assert!(
            claims.nbf <= now && now < claims.exp,
            "token not valid at the test clock"
        );
        claims
    }

    /// A request to the admin API with the admin token.
    pub(crate) fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.admin_base))
            .bearer_auth(ADMIN_TOKEN)
    }

    /// The current secret of a container (it may have been rotated).
    pub(crate) fn live_secret(&self, container: &str) -> String {
        self.state
            .live()
            .platform
            .container(container)
            .unwrap()
            .secret
            .expose()
            .to_owned()
    }

    /// Stops the server gracefully and waits for it.
    pub(crate) async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(true);
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
        if let Some(admin) = self.admin.take() {
            admin.await.unwrap().unwrap();
        }
    }
}

pub(crate) fn assert_guid(v: &Value) {
    let s = v.as_str().unwrap_or_else(|| panic!("{v} is not a string"));
    assert!(
        uuid::Uuid::try_parse(s).is_ok() && s.len() == 36,
        "{s} is not a GUID"
    );
}

/// The exact error body shape of the platform.
pub(crate) async fn assert_error(
    resp: reqwest::Response,
    status: u16,
    message_contains: &str,
) -> Value {
    assert_eq!(resp.status().as_u16(), status);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body: Value = resp.json().await.unwrap();
    let obj = body.as_object().unwrap();
    let mut keys: Vec<_> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["correlationId", "message", "statusCode"], "{body}");
    assert_eq!(body["statusCode"], status);
    assert_guid(&body["correlationId"]);
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains(message_contains),
        "{message:?} lacks {message_contains:?}"
    );
    body
}

/// The published key (from a JWKS `keys` array) that a token's `kid` names,
/// with that kid.
pub(crate) fn published_key(token: &str, keys: &[Value]) -> (String, jsonwebtoken::DecodingKey) {
    let kid = jsonwebtoken::decode_header(token).unwrap().kid.unwrap();
    let jwk = keys
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .unwrap_or_else(|| panic!("kid {kid} is not published"));
    let key = jsonwebtoken::DecodingKey::from_rsa_components(
        jwk["n"].as_str().unwrap(),
        jwk["e"].as_str().unwrap(),
    )
    .unwrap();
    (kid, key)
}

/// A free loopback port (bound, read, released) for a listener the binary
/// opens itself.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
