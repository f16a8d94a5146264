//! Shared server state.
//!
//! The part of the configuration that may change while miemu runs (platform,
//! token settings, and the raw configuration they were built from) sits
//! behind one lock as an `Arc<Live>`: a request clones the `Arc` once and
//! works on that snapshot, so it never sees half of a change. Changes go
//! through [`AppState::update`], which serialises writers so two admin calls
//! cannot lose each other's edits. The locks are std locks held only to clone
//! or swap an `Arc` (or, for writers, to compute the next snapshot), never
//! across an `.await`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use arc_swap::{ArcSwap, Guard};

use crate::clock::Clock;
use crate::config::{Config, Overrides, RawConfig, TokenConfig};
use crate::faults::FaultSet;
use crate::metrics::Metrics;
use crate::platform::Platform;
use crate::requestlog::RequestLog;
use crate::server::Gate;
use crate::token::{KeyError, KeyRing, SigningKey, TokenCache};

/// What may change at run time, swapped whole.
#[derive(Debug)]
pub struct Live {
    /// App, identities and containers.
    pub platform: Platform,
    /// Token settings.
    pub tokens: TokenConfig,
    /// Whether token requests carrying `X-Forwarded-For` are answered.
    pub allow_forwarded: bool,
    /// The configuration this snapshot was built from (admin edits apply to it).
    pub raw: RawConfig,
    /// Tokens minted under this snapshot. A request still working on an old
    /// snapshot can only fill the old cache, which nobody reads any more.
    pub cache: TokenCache,
}

impl Live {
    /// A snapshot of a validated configuration. Cached tokens of identities
    /// that are the same in `previous` (same ids, ARM id and lifecycle, same
    /// token settings) are kept; all others are dropped.
    pub fn new(config: Config, raw: RawConfig, previous: Option<&Self>) -> Self {
        let live = Self {
            platform: config.platform,
            tokens: config.tokens,
            allow_forwarded: config.server.allow_forwarded,
            raw,
            cache: TokenCache::default(),
        };
        if let Some(prev) = previous {
            let same_minting = prev.tokens == live.tokens
                && prev.platform.tenant_id == live.platform.tenant_id
                && prev.platform.app == live.platform.app;
            if same_minting {
                live.cache.carry_over(&prev.cache, |client_id| {
                    let find = |p: &Platform| {
                        p.identities
                            .iter()
                            .find(|i| i.client_id == client_id)
                            .cloned()
                    };
                    find(&prev.platform).is_some_and(|old| find(&live.platform) == Some(old))
                });
            }
        }
        live
    }
}

/// Where a reload re-reads the configuration from.
#[derive(Debug, Clone)]
pub struct Source {
    /// The file; `None` for the built-in default.
    pub path: Option<PathBuf>,
    /// Command-line and environment overrides, applied again on every reload.
    pub overrides: Overrides,
    /// The text the current configuration was read from; the watcher
    /// reloads when the file's text differs from it.
    pub text: Option<String>,
}

/// Where env files go, and the endpoint they name.
#[derive(Debug, Clone)]
pub struct EnvTarget {
    /// The directory.
    pub dir: PathBuf,
    /// The full token URL written as `IDENTITY_ENDPOINT`.
    pub endpoint: String,
}

/// Outcome of the last reload, for the admin API.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ReloadStatus {
    /// Unix time of the last attempt.
    pub at: Option<i64>,
    /// Whether it was applied.
    pub ok: Option<bool>,
    /// Why it was not.
    pub error: Option<String>,
}

/// Cheap-to-clone handle on everything handlers need.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    live: ArcSwap<Live>,
    writer: Mutex<()>,
    keys: RwLock<Arc<KeyRing>>,
    key_dir: Option<PathBuf>,
    key_overlap_secs: i64,
    clock: Arc<dyn Clock>,
    public_url: String,
    faults: FaultSet,
    requests: RequestLog,
    metrics: Metrics,
    gate: Gate,
    source: Source,
    loaded_text: Mutex<Option<String>>,
    env: Option<EnvTarget>,
    reload: Mutex<ReloadStatus>,
}

/// Optional parts of the state; the defaults suit tests.
#[derive(Debug, Default)]
pub struct Extras {
    /// Where reloads read from.
    pub source: Option<Source>,
    /// Where env files go.
    pub env: Option<EnvTarget>,
    /// The key directory, for rotation; `None` for an in-memory key.
    pub key_dir: Option<PathBuf>,
}

impl AppState {
    /// Builds the state from a validated configuration, a loaded key and the
    /// base URL clients use.
    pub fn new(config: Config, key: SigningKey, clock: Arc<dyn Clock>, public_url: String) -> Self {
        let keys = KeyRing::single(key);
        Self::with_extras(
            config,
            RawConfig::default(),
            keys,
            clock,
            public_url,
            Extras::default(),
        )
    }

    /// Like [`AppState::new`], with the raw configuration (for admin edits),
    /// the reload source and the env-file target.
    pub fn with_extras(
        config: Config,
        raw: RawConfig,
        keys: KeyRing,
        clock: Arc<dyn Clock>,
        public_url: String,
        extras: Extras,
    ) -> Self {
        let key_overlap_secs = config.server.key_overlap_secs;
        let requests = RequestLog::with_capacity(config.server.request_log);
        let source = extras.source.unwrap_or(Source {
            path: None,
            overrides: Overrides::default(),
            text: None,
        });
        Self {
            inner: Arc::new(Inner {
                live: ArcSwap::from_pointee(Live::new(config, raw, None)),
                writer: Mutex::new(()),
                keys: RwLock::new(Arc::new(keys)),
                key_dir: extras.key_dir,
                key_overlap_secs,
                clock,
                public_url,
                faults: FaultSet::default(),
                requests,
                metrics: Metrics::default(),
                gate: Gate::default(),
                loaded_text: Mutex::new(source.text.clone()),
                source,
                env: extras.env,
                reload: Mutex::new(ReloadStatus::default()),
            }),
        }
    }

    /// The current snapshot.
    pub fn live(&self) -> Arc<Live> {
        self.inner.live.load_full()
    }

    /// The current snapshot for the span of one request, without taking a
    /// reference count (a shared write per request on a hot path).
    pub fn live_for_request(&self) -> Guard<Arc<Live>> {
        self.inner.live.load()
    }

    /// Computes and installs the next snapshot from the current one. Writers
    /// are serialised; readers keep working on the snapshot they hold.
    pub fn update<E>(&self, next: impl FnOnce(&Live) -> Result<Live, E>) -> Result<Arc<Live>, E> {
        let _writer = self
            .inner
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let current = self.live();
        let next = Arc::new(next(&current)?);
        self.inner.live.store(next.clone());
        Ok(next)
    }

    /// The signing key and the keys still published.
    pub fn keys(&self) -> Arc<KeyRing> {
        self.inner
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Rotates the signing key on disk and starts signing with the new one;
    /// on failure the current key keeps signing.
    pub fn rotate_keys(&self) -> Result<Arc<KeyRing>, KeyError> {
        let dir = self.inner.key_dir.as_deref().ok_or(KeyError::Crypto(
            "this server's key lives only in memory and cannot be rotated",
        ))?;
        let _writer = self
            .inner
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let ring = Arc::new(KeyRing::rotate(
            dir,
            self.now(),
            self.inner.key_overlap_secs,
        )?);
        *self
            .inner
            .keys
            .write()
            .unwrap_or_else(PoisonError::into_inner) = ring.clone();
        Ok(ring)
    }

    /// Re-reads the key directory when its current key is not the one in
    /// use (rotated by `miemu keys rotate` while running). A failure keeps
    /// the key in use.
    pub fn refresh_keys(&self) {
        let Some(dir) = self.inner.key_dir.as_deref() else {
            return;
        };
        let on_disk = crate::token::keyring::current_kid(dir).ok().flatten();
        if on_disk
            .as_deref()
            .is_none_or(|kid| kid == self.keys().signer().kid())
        {
            return;
        }
        let _writer = self
            .inner
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match KeyRing::load_or_create(dir, self.now(), self.inner.key_overlap_secs) {
            Ok((ring, _)) => {
                tracing::info!(
                    token.kid = ring.signer().kid(),
                    "signing key changed on disk; now signing with it"
                );
                *self
                    .inner
                    .keys
                    .write()
                    .unwrap_or_else(PoisonError::into_inner) = Arc::new(ring);
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot load the new signing key; the current one keeps signing")
            }
        }
    }

    /// Current Unix time.
    pub fn now(&self) -> i64 {
        self.inner.clock.now()
    }

    /// Base URL clients use to reach miemu (no trailing slash).
    pub fn public_url(&self) -> &str {
        &self.inner.public_url
    }

    /// Active fault rules.
    pub fn faults(&self) -> &FaultSet {
        &self.inner.faults
    }

    /// The request log.
    pub fn requests(&self) -> &RequestLog {
        &self.inner.requests
    }

    /// Counters for `/metrics`.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The token listener's gate (closing it refuses connections for a while).
    pub fn gate(&self) -> &Gate {
        &self.inner.gate
    }

    /// Where reloads read from.
    pub fn source(&self) -> &Source {
        &self.inner.source
    }

    /// Where env files go, if anywhere.
    pub fn env_target(&self) -> Option<&EnvTarget> {
        self.inner.env.as_ref()
    }

    /// Remembers the text a configuration was (or failed to be) loaded from.
    pub fn set_loaded_text(&self, text: String) {
        *self
            .inner
            .loaded_text
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(text);
    }

    /// Whether `text` differs from what the configuration was last loaded from.
    pub fn is_new_text(&self, text: &str) -> bool {
        self.inner
            .loaded_text
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_deref()
            != Some(text)
    }

    /// Records the outcome of a reload.
    pub fn set_reload_status(&self, status: ReloadStatus) {
        *self
            .inner
            .reload
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = status;
    }

    /// The outcome of the last reload.
    pub fn reload_status(&self) -> ReloadStatus {
        self.inner
            .reload
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}
