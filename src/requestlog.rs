//! The request log: what token requests asked for and what they got, kept in
//! a bounded ring buffer so a test can assert exactly what its code did.
//!
//! Records hold the container, selector, identity, resource, outcome, status
//! and the token's `uti`, never the token or the header value. Oldest records
//! are dropped first. This module knows nothing about HTTP.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize, Serializer};

use crate::identity::Selector;

/// Records kept by default.
pub const DEFAULT_CAPACITY: usize = 1000;

/// One token request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Record {
    /// Increasing sequence number (survives clearing).
    pub seq: u64,
    /// Unix time (seconds).
    pub time: i64,
    /// Calling container, when the secret matched one.
    pub container: Option<String>,
    /// Selector as sent, shown as `client_id=…` or `system`.
    #[serde(serialize_with = "shown")]
    pub selector: Option<Selector>,
    /// Identity name it resolved to.
    pub identity: Option<String>,
    /// Resource (after `/.default` stripping).
    pub resource: Option<String>,
    /// `issued`, `unauthenticated`, `init_container`, `bad_request`,
    /// `identity_not_found`, `fault`, `internal_error`.
    pub outcome: &'static str,
    /// HTTP status.
    pub status: u16,
    /// The token's unique id, for issued tokens.
    pub uti: Option<String>,
    /// Whether the token came from the cache.
    pub cached: bool,
    /// The fault rule that applied, if any.
    pub fault: Option<u64>,
}

fn shown<S: Serializer>(selector: &Option<Selector>, s: S) -> Result<S::Ok, S::Error> {
    match selector {
        Some(selector) => s.collect_str(selector),
        None => s.serialize_none(),
    }
}

/// A token request as the handler knows it, with borrowed strings: what
/// [`RequestLog::push`] records.
#[derive(Debug)]
pub struct Entry<'a> {
    /// Unix time (seconds).
    pub time: i64,
    /// Calling container, when the secret matched one.
    pub container: Option<&'a str>,
    /// Selector as sent.
    pub selector: Option<Selector>,
    /// Identity name it resolved to.
    pub identity: Option<&'a str>,
    /// Resource (after `/.default` stripping).
    pub resource: Option<&'a str>,
    /// See [`Record::outcome`].
    pub outcome: &'static str,
    /// HTTP status.
    pub status: u16,
    /// The token's unique id, for issued tokens.
    pub uti: Option<&'a str>,
    /// Whether the token came from the cache.
    pub cached: bool,
    /// The fault rule that applied, if any.
    pub fault: Option<u64>,
}

impl Record {
    fn new(seq: u64, entry: Entry<'_>) -> Self {
        Self {
            seq,
            time: entry.time,
            container: entry.container.map(str::to_owned),
            selector: entry.selector,
            identity: entry.identity.map(str::to_owned),
            resource: entry.resource.map(str::to_owned),
            outcome: entry.outcome,
            status: entry.status,
            uti: entry.uti.map(str::to_owned),
            cached: entry.cached,
            fault: entry.fault,
        }
    }

    /// Overwrites this record, reusing its strings' buffers.
    fn fill(&mut self, seq: u64, entry: Entry<'_>) {
        fn set(slot: &mut Option<String>, value: Option<&str>) {
            match (slot.as_mut(), value) {
                (Some(kept), Some(value)) => {
                    kept.clear();
                    kept.push_str(value);
                }
                (_, value) => *slot = value.map(str::to_owned),
            }
        }
        self.seq = seq;
        self.time = entry.time;
        set(&mut self.container, entry.container);
        self.selector = entry.selector;
        set(&mut self.identity, entry.identity);
        set(&mut self.resource, entry.resource);
        self.outcome = entry.outcome;
        self.status = entry.status;
        set(&mut self.uti, entry.uti);
        self.cached = entry.cached;
        self.fault = entry.fault;
    }
}

/// Filters for reading the log; absent fields match everything.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// Container name.
    pub container: Option<String>,
    /// Identity name.
    pub identity: Option<String>,
    /// Outcome.
    pub outcome: Option<String>,
    /// Records at or after this Unix time.
    pub since: Option<i64>,
    /// Records with a sequence number greater than this.
    pub after_seq: Option<u64>,
}

impl Filter {
    fn matches(&self, r: &Record) -> bool {
        let eq = |want: &Option<String>, got: Option<&str>| {
            want.as_deref().is_none_or(|w| Some(w) == got)
        };
        eq(&self.container, r.container.as_deref())
            && eq(&self.identity, r.identity.as_deref())
            && eq(&self.outcome, Some(r.outcome))
            && self.since.is_none_or(|t| r.time >= t)
            && self.after_seq.is_none_or(|s| r.seq > s)
    }
}

/// The ring buffer. A std `Mutex`: pushes and reads are short and never
/// span an `.await`.
#[derive(Debug)]
pub struct RequestLog {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    capacity: usize,
    next_seq: u64,
    records: VecDeque<Record>,
}

impl Default for RequestLog {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }
}

impl RequestLog {
    /// A log keeping at most `capacity` records (at least one).
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                capacity: capacity.max(1),
                next_seq: 0,
                records: VecDeque::new(),
            }),
        }
    }

    /// Appends a record, assigning its sequence number; drops the oldest when
    /// full. Once full, the oldest record's strings are reused for the new
    /// one, so a steady stream of requests allocates nothing here.
    pub fn push(&self, entry: Entry<'_>) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.next_seq += 1;
        let seq = inner.next_seq;
        if inner.records.len() >= inner.capacity
            && let Some(oldest) = inner.records.front_mut()
        {
            oldest.fill(seq, entry);
            // The filled record becomes the newest: with no spare capacity
            // this moves one record, where pop and push would move two.
            inner.records.rotate_left(1);
        } else {
            inner.records.push_back(Record::new(seq, entry));
        }
    }

    /// Matching records, oldest first.
    pub fn query(&self, filter: &Filter) -> Vec<Record> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner
            .records
            .iter()
            .filter(|r| filter.matches(r))
            .cloned()
            .collect()
    }

    /// Drops every record.
    pub fn clear(&self) {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .records
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record<'a>(
        time: i64,
        container: &'a str,
        identity: &'a str,
        outcome: &'static str,
    ) -> Entry<'a> {
        Entry {
            time,
            container: Some(container),
            selector: None,
            identity: Some(identity),
            resource: None,
            outcome,
            status: 200,
            uti: None,
            cached: false,
            fault: None,
        }
    }

    #[test]
    fn the_oldest_records_are_dropped_when_full() {
        let log = RequestLog::with_capacity(2);
        for t in 0..3 {
            log.push(record(t, "app", "system", "issued"));
        }
        let all = log.query(&Filter::default());
        assert_eq!(
            all.iter().map(|r| (r.seq, r.time)).collect::<Vec<_>>(),
            [(2, 1), (3, 2)]
        );
    }

    #[test]
    fn a_reused_record_keeps_nothing_of_the_one_it_replaces() {
        let log = RequestLog::with_capacity(1);
        log.push(Entry {
            resource: Some("https://vault.azure.net"),
            uti: Some("a-long-token-identifier"),
            selector: Some(Selector::ClientId("x".to_owned())),
            cached: true,
            fault: Some(7),
            ..record(1, "a-container-with-a-long-name", "identity-one", "issued")
        });
        log.push(Entry {
            container: None,
            status: 403,
            ..record(2, "", "b", "unauthenticated")
        });
        let all = log.query(&Filter::default());
        assert_eq!(
            all,
            [Record {
                seq: 2,
                time: 2,
                container: None,
                selector: None,
                identity: Some("b".to_owned()),
                resource: None,
                outcome: "unauthenticated",
                status: 403,
                uti: None,
                cached: false,
                fault: None,
            }]
        );
    }

    #[test]
    fn filters_combine() {
        let log = RequestLog::default();
        log.push(record(10, "app", "system", "issued"));
        log.push(record(20, "app", "reader", "identity_not_found"));
        log.push(record(30, "init", "system", "init_container"));
        let q = |f: Filter| log.query(&f).iter().map(|r| r.time).collect::<Vec<_>>();
        assert_eq!(
            q(Filter {
                container: Some("app".into()),
                ..Filter::default()
            }),
            [10, 20]
        );
        assert_eq!(
            q(Filter {
                identity: Some("system".into()),
                ..Filter::default()
            }),
            [10, 30]
        );
        assert_eq!(
            q(Filter {
                outcome: Some("init_container".into()),
                ..Filter::default()
            }),
            [30]
        );
        assert_eq!(
            q(Filter {
                since: Some(20),
                ..Filter::default()
            }),
            [20, 30]
        );
        assert_eq!(
            q(Filter {
                after_seq: Some(2),
                ..Filter::default()
            }),
            [30]
        );
        log.clear();
        assert!(log.query(&Filter::default()).is_empty());
        log.push(record(40, "app", "system", "issued"));
        assert_eq!(
            log.query(&Filter::default())[0].seq,
            4,
            "sequence numbers survive clearing"
        );
    }
}
