//! Counters for `/metrics`, rendered in the Prometheus text format.
//!
//! Requests by endpoint, status and container; tokens minted; cache hits;
//! refusals by reason; the signing key's age. Std `Mutex`es around small
//! maps (one per thread shard for request counts, so that workers do not
//! contend): updates are a hash lookup and never span an `.await`, and the label
//! sets are bounded (endpoints and statuses are fixed lists, containers come
//! from the configuration, unknown callers are counted as `-`).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

/// Request counts of one (endpoint, status) pair, by container.
type ByContainer = HashMap<String, u64>;

/// Request-count shards: each thread counts into its own map, so worker
/// threads never wait for one another's lock; rendering adds them up.
const SHARDS: usize = 4;

/// The counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// By (endpoint, status), then container: nested so that counting
    /// needs no allocation once a container has been seen. One map per
    /// shard (see [`shard`]).
    requests: [Mutex<HashMap<(&'static str, u16), ByContainer>>; SHARDS],
    refusals: Mutex<BTreeMap<&'static str, u64>>,
    minted: AtomicU64,
    cache_hits: AtomicU64,
}

impl Metrics {
    /// Counts one answered request.
    pub fn request(&self, endpoint: &'static str, status: u16, container: Option<&str>) {
        let container = container.unwrap_or("-");
        let mut map = self.requests[shard()]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let by_container = map.entry((endpoint, status)).or_default();
        match by_container.get_mut(container) {
            Some(n) => *n += 1,
            None => {
                by_container.insert(container.to_owned(), 1);
            }
        }
    }

    /// Counts a refused token request by reason (the log's outcome).
    pub fn refusal(&self, reason: &'static str) {
        *self
            .refusals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(reason)
            .or_default() += 1;
    }

    /// Counts a newly signed token.
    pub fn minted(&self) {
        self.minted.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a token served from the cache.
    pub fn cache_hit(&self) {
        self.cache_hits.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition.
    pub fn render(&self, key_age_secs: i64, identities: usize) -> String {
        let mut out = String::new();
        out.push_str("# HELP miemu_requests_total HTTP requests answered, by endpoint, status and calling container.\n");
        out.push_str("# TYPE miemu_requests_total counter\n");
        let mut rows: BTreeMap<(&'static str, u16, String), u64> = BTreeMap::new();
        for shard in &self.requests {
            let map = shard.lock().unwrap_or_else(PoisonError::into_inner);
            for ((endpoint, status), by) in map.iter() {
                for (container, n) in by {
                    *rows
                        .entry((endpoint, *status, container.clone()))
                        .or_default() += n;
                }
            }
        }
        for ((endpoint, status, container), n) in &rows {
            let _ = writeln!(
                out,
                "miemu_requests_total{{endpoint=\"{endpoint}\",status=\"{status}\",container=\"{}\"}} {n}",
                escape(container)
            );
        }
        out.push_str("# HELP miemu_refusals_total Token requests refused, by reason.\n");
        out.push_str("# TYPE miemu_refusals_total counter\n");
        for (reason, n) in self
            .refusals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            let _ = writeln!(out, "miemu_refusals_total{{reason=\"{reason}\"}} {n}");
        }
        let _ = write!(
            out,
            "# HELP miemu_tokens_minted_total Tokens signed.\n# TYPE miemu_tokens_minted_total counter\nmiemu_tokens_minted_total {}\n\
             # HELP miemu_token_cache_hits_total Tokens served from the cache.\n# TYPE miemu_token_cache_hits_total counter\nmiemu_token_cache_hits_total {}\n\
             # HELP miemu_signing_key_age_seconds Age of the current signing key.\n# TYPE miemu_signing_key_age_seconds gauge\nmiemu_signing_key_age_seconds {key_age_secs}\n\
             # HELP miemu_identities Identities configured.\n# TYPE miemu_identities gauge\nmiemu_identities {identities}\n",
            self.minted.load(Ordering::Relaxed),
            self.cache_hits.load(Ordering::Relaxed),
        );
        out
    }
}

/// This thread's shard: threads are dealt shards in turn as they first
/// count, so tokio's worker threads (started together) get distinct ones.
fn shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    SHARD.with(|shard| *shard)
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_as_prometheus_text() {
        let m = Metrics::default();
        m.request("token", 200, Some("app"));
        m.request("token", 200, Some("app"));
        m.request("token", 403, None);
        m.refusal("init_container");
        m.minted();
        m.cache_hit();
        let text = m.render(42, 3);
        assert!(
            text.contains(
                "miemu_requests_total{endpoint=\"token\",status=\"200\",container=\"app\"} 2\n"
            ),
            "{text}"
        );
        assert!(text.contains(
            "miemu_requests_total{endpoint=\"token\",status=\"403\",container=\"-\"} 1\n"
        ));
        assert!(text.contains("miemu_refusals_total{reason=\"init_container\"} 1\n"));
        assert!(text.contains("miemu_tokens_minted_total 1\n"));
        assert!(text.contains("miemu_token_cache_hits_total 1\n"));
        assert!(text.contains("miemu_signing_key_age_seconds 42\n"));
    }
}
