//! Shared server state.
//!
//! The part of the configuration that may change while miemu runs (the
//! platform and the token settings) sits behind one lock as an `Arc<Live>`:
//! a request clones the `Arc` once and works on that snapshot, so it never
//! sees half of a change. The lock is a std `RwLock` because it is held only
//! to clone or swap the `Arc`, never across an `.await`.

use std::sync::{Arc, PoisonError, RwLock};

use crate::clock::Clock;
use crate::config::{Config, TokenConfig};
use crate::platform::Platform;
use crate::token::{SigningKey, TokenCache};

/// What may change at run time, swapped whole.
#[derive(Debug)]
pub struct Live {
    /// App, identities and containers.
    pub platform: Platform,
    /// Token settings.
    pub tokens: TokenConfig,
    /// Tokens minted under this snapshot. It lives and dies with the
    /// snapshot: a request still working on an old one can only fill the old
    /// cache, which nobody reads any more.
    pub cache: TokenCache,
}

impl Live {
    /// A snapshot with an empty cache.
    pub fn new(platform: Platform, tokens: TokenConfig) -> Self {
        Self {
            platform,
            tokens,
            cache: TokenCache::default(),
        }
    }
}

/// Cheap-to-clone handle on everything handlers need.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    live: RwLock<Arc<Live>>,
    key: SigningKey,
    clock: Arc<dyn Clock>,
    public_url: String,
}

impl AppState {
    /// Builds the state from a validated configuration, a loaded key and the
    /// base URL clients use.
    pub fn new(config: Config, key: SigningKey, clock: Arc<dyn Clock>, public_url: String) -> Self {
        Self {
            inner: Arc::new(Inner {
                live: RwLock::new(Arc::new(Live::new(config.platform, config.tokens))),
                key,
                clock,
                public_url,
            }),
        }
    }

    /// The current snapshot.
    pub fn live(&self) -> Arc<Live> {
        self.inner
            .live
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the snapshot (and with it every cached token, so no token
    /// minted under the old configuration is handed out under the new one).
    pub fn replace(&self, live: Live) {
        let mut slot = self
            .inner
            .live
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        *slot = Arc::new(live);
    }

    /// The signing key.
    pub fn key(&self) -> &SigningKey {
        &self.inner.key
    }

    /// Current Unix time.
    pub fn now(&self) -> i64 {
        self.inner.clock.now()
    }

    /// Base URL clients use to reach miemu (no trailing slash).
    pub fn public_url(&self) -> &str {
        &self.inner.public_url
    }
}
