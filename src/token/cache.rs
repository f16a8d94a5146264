//! The platform's token cache: the same token for the same identity and
//! resource until shortly before it expires.
//!
//! App Service and Container Apps document that the back end caches tokens
//! per resource; miemu mirrors that (switchable) so client-side caching bugs
//! can be reproduced. A std `Mutex` is enough: the critical section is a hash
//! lookup and never spans an `.await`. The map is bounded so a client cycling
//! through endless resources cannot grow it without limit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use uuid::Uuid;

use super::MintedToken;

/// Tokens stop being handed out this many seconds before they expire.
pub const REFRESH_MARGIN_SECS: i64 = 300;

/// Most entries kept; beyond this, expired ones are dropped, then all.
const MAX_ENTRIES: usize = 4096;

/// Cached tokens by identity client id, then resource (nested so a lookup
/// needs no allocation).
#[derive(Debug, Default)]
pub struct TokenCache {
    entries: Mutex<HashMap<Uuid, HashMap<String, Arc<MintedToken>>>>,
}

impl TokenCache {
    /// Applies `read` to a still-fresh token for this identity and resource,
    /// in place (under the lock, so keep `read` short).
    pub fn get_with<R>(
        &self,
        client_id: Uuid,
        resource: &str,
        now: i64,
        read: impl FnOnce(&MintedToken) -> R,
    ) -> Option<R> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(&client_id)?
            .get(resource)
            .filter(|t| now < t.claims.exp - REFRESH_MARGIN_SECS)
            .map(|t| read(t))
    }

    /// Remembers a token.
    pub fn insert(&self, client_id: Uuid, resource: &str, token: Arc<MintedToken>, now: i64) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let count =
            |e: &HashMap<Uuid, HashMap<String, _>>| e.values().map(HashMap::len).sum::<usize>();
        if count(&entries) >= MAX_ENTRIES {
            for tokens in entries.values_mut() {
                tokens.retain(|_, t| now < t.claims.exp - REFRESH_MARGIN_SECS);
            }
            if count(&entries) >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries
            .entry(client_id)
            .or_default()
            .insert(resource.to_owned(), token);
    }

    /// Copies the tokens of the identities `keep` accepts from `old`: a
    /// configuration change keeps the cached tokens of identities it did not
    /// touch, and drops the others at once.
    pub fn carry_over(&self, old: &Self, keep: impl Fn(Uuid) -> bool) {
        let old = old.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let mut new = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        for (id, tokens) in old.iter().filter(|(id, _)| keep(**id)) {
            new.insert(*id, tokens.clone());
        }
    }
}
