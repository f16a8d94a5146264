//! Fault injection: rules that make the token endpoint misbehave on purpose,
//! so a test can watch its client cope.
//!
//! A rule matches token requests (optionally only for one container,
//! identity or resource) and then answers with a chosen status, delays the
//! answer, or mints tokens with a chosen lifetime (zero or negative for an
//! already-expired token). Every rule clears itself after its count or its
//! time, and can be cleared explicitly. This module decides which rule
//! applies; the protocol layer turns the action into a response. It knows
//! nothing about HTTP.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// What a matching request gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultAction {
    /// Answer with this status in the platform's JSON error shape.
    Status {
        /// 404, 410, 429, 500, 502, 503 or 504.
        status: u16,
        /// `Retry-After` seconds (sent with 429 and 503; default 1 for those).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_secs: Option<u32>,
    },
    /// Answer normally, but only after this many milliseconds.
    Delay {
        /// Milliseconds.
        ms: u64,
    },
    /// Mint tokens with this lifetime in seconds (may be zero or negative),
    /// bypassing the token cache.
    Lifetime {
        /// Seconds from now until `exp`.
        secs: i64,
    },
}

/// Which requests a rule applies to; absent fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultMatch {
    /// Container name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Identity name (`system` for the system-assigned one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// Resource, as echoed (after `/.default` stripping).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
}

/// A rule as requested by a user. Read it with [`FaultSpec::from_json`],
/// which also refuses unknown keys (serde cannot do that through `flatten`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultSpec {
    /// What to do.
    #[serde(flatten)]
    pub action: FaultAction,
    /// Which requests.
    #[serde(default, rename = "match")]
    pub matcher: FaultMatch,
    /// Apply to this many requests, then clear. Absent: until `for_secs` or cleared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// Clear after this many seconds. Absent: until `count` or cleared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_secs: Option<u64>,
}

const SPEC_KEYS: [&str; 8] = [
    "kind",
    "status",
    "retry_after_secs",
    "ms",
    "secs",
    "match",
    "count",
    "for_secs",
];
const MATCH_KEYS: [&str; 3] = ["container", "identity", "resource"];

impl FaultSpec {
    /// Reads a rule from JSON, refusing unknown keys.
    pub fn from_json(value: serde_json::Value) -> Result<Self, String> {
        let unknown = |obj: Option<&serde_json::Map<String, serde_json::Value>>,
                       allowed: &[&str]| {
            obj.into_iter()
                .flat_map(|o| o.keys())
                .find(|k| !allowed.contains(&k.as_str()))
                .cloned()
        };
        if let Some(k) = unknown(value.as_object(), &SPEC_KEYS) {
            return Err(format!("unknown key '{k}'"));
        }
        if let Some(k) = unknown(value.get("match").and_then(|m| m.as_object()), &MATCH_KEYS) {
            return Err(format!("unknown key 'match.{k}'"));
        }
        serde_json::from_value(value).map_err(|e| e.to_string())
    }
}

/// An active rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fault {
    /// Id, for clearing one rule.
    pub id: u64,
    /// The rule.
    #[serde(flatten)]
    pub spec: FaultSpec,
    /// Requests it still applies to, if counted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remaining: Option<u32>,
    /// Unix time at which it clears, if timed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

/// Why a rule was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FaultError {
    /// Status not in the supported list.
    #[error("status {0} is not one of 404, 410, 429, 500, 502, 503, 504")]
    Status(u16),
    /// A count of zero would never apply.
    #[error("count must be at least 1")]
    ZeroCount,
    /// A delay longer than the request timeout would only time out.
    #[error("delay must be at most {MAX_DELAY_MS} ms")]
    Delay,
}

/// Longest injectable delay: below the request timeout.
pub const MAX_DELAY_MS: u64 = 9_000;

const STATUSES: [u16; 7] = [404, 410, 429, 500, 502, 503, 504];

/// The active rules, in the order they were added; the first match wins.
/// A std `Mutex`: held for a scan of a short list, never across `.await`.
#[derive(Debug, Default)]
pub struct FaultSet {
    inner: Mutex<Inner>,
    /// How many rules `inner` holds, readable without the lock: token
    /// requests check it first, so with no rule they never touch the lock.
    active: AtomicUsize,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    faults: Vec<Fault>,
}

impl FaultSet {
    /// Adds a rule; returns it with its id.
    pub fn add(&self, spec: FaultSpec, now: i64) -> Result<Fault, FaultError> {
        match &spec.action {
            FaultAction::Status { status, .. } if !STATUSES.contains(status) => {
                return Err(FaultError::Status(*status));
            }
            FaultAction::Delay { ms } if *ms > MAX_DELAY_MS => return Err(FaultError::Delay),
            _ => {}
        }
        if spec.count == Some(0) {
            return Err(FaultError::ZeroCount);
        }
        let mut inner = self.lock();
        inner.next_id += 1;
        let fault = Fault {
            id: inner.next_id,
            remaining: spec.count,
            expires_at: spec
                .for_secs
                .map(|s| now.saturating_add(i64::try_from(s).unwrap_or(i64::MAX))),
            spec,
        };
        inner.faults.push(fault.clone());
        self.publish(&inner);
        Ok(fault)
    }

    /// The active rules.
    pub fn list(&self, now: i64) -> Vec<Fault> {
        let mut inner = self.lock();
        inner
            .faults
            .retain(|f| f.expires_at.is_none_or(|t| now < t));
        self.publish(&inner);
        inner.faults.clone()
    }

    /// Clears one rule; false when there was none with that id.
    pub fn remove(&self, id: u64) -> bool {
        let mut inner = self.lock();
        let before = inner.faults.len();
        inner.faults.retain(|f| f.id != id);
        self.publish(&inner);
        inner.faults.len() != before
    }

    /// Clears every rule.
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.faults.clear();
        self.publish(&inner);
    }

    /// The first rule matching a request, used up by one count. Cheap when
    /// no rule is active (one atomic load, no lock).
    pub fn take(
        &self,
        container: &str,
        identity: Option<&str>,
        resource: Option<&str>,
        now: i64,
    ) -> Option<(u64, FaultAction)> {
        if self.active.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut inner = self.lock();
        inner
            .faults
            .retain(|f| f.expires_at.is_none_or(|t| now < t));
        let m = |want: &Option<String>, got: Option<&str>| {
            want.as_deref().is_none_or(|w| Some(w) == got)
        };
        let index = inner.faults.iter().position(|f| {
            let fm = &f.spec.matcher;
            m(&fm.container, Some(container))
                && m(&fm.identity, identity)
                && m(&fm.resource, resource)
        });
        let taken = index.map(|index| {
            let fault = &mut inner.faults[index];
            let taken = (fault.id, fault.spec.action.clone());
            if let Some(remaining) = fault.remaining.as_mut() {
                *remaining -= 1;
                if *remaining == 0 {
                    inner.faults.remove(index);
                }
            }
            taken
        });
        self.publish(&inner);
        taken
    }

    fn publish(&self, inner: &Inner) {
        self.active.store(inner.faults.len(), Ordering::Release);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(
        code: u16,
        count: Option<u32>,
        for_secs: Option<u64>,
        matcher: FaultMatch,
    ) -> FaultSpec {
        FaultSpec {
            action: FaultAction::Status {
                status: code,
                retry_after_secs: None,
            },
            matcher,
            count,
            for_secs,
        }
    }

    #[test]
    fn a_counted_rule_applies_that_many_times_then_clears() {
        let set = FaultSet::default();
        set.add(status(503, Some(2), None, FaultMatch::default()), 0)
            .unwrap();
        assert!(set.take("app", None, None, 0).is_some());
        assert!(set.take("app", None, None, 0).is_some());
        assert!(set.take("app", None, None, 0).is_none());
        assert!(set.list(0).is_empty());
    }

    #[test]
    fn a_timed_rule_clears_when_its_time_is_up() {
        let set = FaultSet::default();
        set.add(status(500, None, Some(10), FaultMatch::default()), 100)
            .unwrap();
        assert!(set.take("app", None, None, 109).is_some());
        assert!(set.take("app", None, None, 110).is_none());
    }

    #[test]
    fn rules_match_only_their_container_identity_and_resource() {
        let set = FaultSet::default();
        let matcher = FaultMatch {
            container: Some("app".into()),
            identity: Some("reader".into()),
            resource: Some("api://x".into()),
        };
        set.add(status(429, None, None, matcher), 0).unwrap();
        assert!(
            set.take("worker", Some("reader"), Some("api://x"), 0)
                .is_none()
        );
        assert!(
            set.take("app", Some("writer"), Some("api://x"), 0)
                .is_none()
        );
        assert!(
            set.take("app", Some("reader"), Some("api://y"), 0)
                .is_none()
        );
        assert!(set.take("app", None, Some("api://x"), 0).is_none());
        assert!(
            set.take("app", Some("reader"), Some("api://x"), 0)
                .is_some()
        );
    }

    #[test]
    fn rules_can_be_cleared_one_by_one_or_all() {
        let set = FaultSet::default();
        let a = set
            .add(status(500, None, None, FaultMatch::default()), 0)
            .unwrap();
        set.add(status(503, None, None, FaultMatch::default()), 0)
            .unwrap();
        assert!(set.remove(a.id));
        assert!(!set.remove(a.id));
        assert_eq!(set.list(0).len(), 1);
        set.clear();
        assert!(set.take("app", None, None, 0).is_none());
    }

    #[test]
    fn unsupported_statuses_zero_counts_and_long_delays_are_refused() {
        let set = FaultSet::default();
        assert_eq!(
            set.add(status(418, None, None, FaultMatch::default()), 0),
            Err(FaultError::Status(418))
        );
        assert_eq!(
            set.add(status(500, Some(0), None, FaultMatch::default()), 0),
            Err(FaultError::ZeroCount)
        );
        let delay = FaultSpec {
            action: FaultAction::Delay {
                ms: MAX_DELAY_MS + 1,
            },
            matcher: FaultMatch::default(),
            count: None,
            for_secs: None,
        };
        assert_eq!(set.add(delay, 0), Err(FaultError::Delay));
    }

    #[test]
    fn specs_read_the_documented_json() {
        let parse = |s: &str| FaultSpec::from_json(serde_json::from_str(s).unwrap());
        let spec = parse(r#"{"kind":"status","status":429,"retry_after_secs":3,"count":5,"match":{"identity":"system"}}"#)
            .unwrap();
        assert_eq!(spec.count, Some(5));
        assert_eq!(spec.matcher.identity.as_deref(), Some("system"));
        assert_eq!(
            spec.action,
            FaultAction::Status {
                status: 429,
                retry_after_secs: Some(3)
            }
        );
        let lifetime =
            parse(r#"{"kind":"lifetime","secs":-60,"match":{"identity":"reader"},"for_secs":30}"#)
                .unwrap();
        assert_eq!(lifetime.action, FaultAction::Lifetime { secs: -60 });
        assert_eq!(
            parse(r#"{"kind":"status","status":500,"bogus":1}"#),
            Err("unknown key 'bogus'".to_owned())
        );
        assert!(parse(r#"{"kind":"status","status":500,"match":{"pod":"x"}}"#).is_err());
        assert!(parse(r#"{"kind":"explode"}"#).is_err());
    }
}
