//! Counters, a latency histogram and a sampler of miemu's resident memory,
//! descriptors and threads from /proc.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::http::Failure;

/// Log-linear buckets: 8 per power of two, ~12 % resolution.
const BUCKETS: usize = 8 * 40;

/// Keep this many wrong answers verbatim for the report.
const KEEP_WRONG: usize = 20;

#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) responses: AtomicU64,
    pub(crate) tokens: AtomicU64,
    pub(crate) expected_errors: AtomicU64,
    pub(crate) wrong: AtomicU64,
    pub(crate) connects: AtomicU64,
    pub(crate) connect_errors: AtomicU64,
    pub(crate) timeouts: AtomicU64,
    pub(crate) open: AtomicI64,
    pub(crate) open_peak: AtomicI64,
    /// Requests written before SIGTERM that did not get their full answer.
    pub(crate) in_flight_lost: AtomicU64,
    /// How long before SIGTERM the earliest lost request was written (µs).
    pub(crate) in_flight_lost_max_age_us: AtomicU64,
    /// New connections refused once miemu stopped listening.
    pub(crate) refused_after_signal: AtomicU64,
    /// Answers after SIGTERM that said `Connection: close`.
    pub(crate) close_after_signal: AtomicU64,
    failures: Mutex<BTreeMap<String, u64>>,
    wrong_samples: Mutex<Vec<String>>,
    latency: Latency,
}

impl Stats {
    pub(crate) fn failure(&self, f: Failure, after_signal: bool) {
        let key = format!(
            "{f:?}{}",
            if after_signal { " (after SIGTERM)" } else { "" }
        );
        if let Ok(mut m) = self.failures.lock() {
            *m.entry(key).or_default() += 1;
        }
    }

    pub(crate) fn failures(&self) -> BTreeMap<String, u64> {
        self.failures.lock().map(|m| m.clone()).unwrap_or_default()
    }

    pub(crate) fn wrong(&self, what: String) {
        self.wrong.fetch_add(1, Relaxed);
        if let Ok(mut v) = self.wrong_samples.lock()
            && v.len() < KEEP_WRONG
        {
            v.push(what);
        }
    }

    pub(crate) fn wrong_samples(&self) -> Vec<String> {
        self.wrong_samples
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default()
    }

    pub(crate) fn opened(&self) {
        self.connects.fetch_add(1, Relaxed);
        let now = self.open.fetch_add(1, Relaxed) + 1;
        self.open_peak.fetch_max(now, Relaxed);
    }

    pub(crate) fn closed(&self) {
        self.open.fetch_sub(1, Relaxed);
    }

    pub(crate) fn latency(&self, d: Duration) {
        self.latency.record(d);
    }

    pub(crate) fn percentile_us(&self, p: f64) -> u64 {
        self.latency.percentile_us(p)
    }

    pub(crate) fn max_us(&self) -> u64 {
        self.latency.max.load(Relaxed)
    }
}

struct Latency {
    buckets: Vec<AtomicU64>,
    max: AtomicU64,
}

impl Default for Latency {
    fn default() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            max: AtomicU64::new(0),
        }
    }
}

fn bucket(us: u64) -> usize {
    let v = us.max(1);
    let e = 63 - v.leading_zeros() as usize;
    let b = if e < 3 {
        v as usize
    } else {
        e * 8 + ((v >> (e - 3)) & 7) as usize
    };
    b.min(BUCKETS - 1)
}

/// Upper bound of a bucket, in microseconds.
fn bucket_upper(b: usize) -> u64 {
    if b < 24 {
        return b as u64;
    }
    let (e, sub) = (b / 8, (b % 8) as u64);
    ((8 + sub + 1) << (e - 3)) - 1
}

impl Latency {
    fn record(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.buckets[bucket(us)].fetch_add(1, Relaxed);
        self.max.fetch_max(us, Relaxed);
    }

    fn percentile_us(&self, p: f64) -> u64 {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return 0;
        }
        let rank = ((total as f64) * p).ceil() as u64;
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank.max(1) {
                return bucket_upper(i).min(self.max.load(Relaxed));
            }
        }
        self.max.load(Relaxed)
    }
}

/// Peak and last values of miemu's process figures.
#[derive(Default)]
pub(crate) struct ProcSampler {
    pub(crate) rss_kib_baseline: AtomicU64,
    pub(crate) rss_kib_peak: AtomicU64,
    pub(crate) rss_kib_last: AtomicU64,
    pub(crate) fds_peak: AtomicU64,
    pub(crate) threads_peak: AtomicU64,
    pub(crate) samples: AtomicU64,
    pub(crate) stop: AtomicBool,
}

fn status_field(status: &str, name: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
}

impl ProcSampler {
    /// One sample; `false` once the process is gone.
    pub(crate) fn sample(&self, pid: u32, with_fds: bool) -> bool {
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            return false;
        };
        if let Some(rss) = status_field(&status, "VmRSS:") {
            self.rss_kib_peak.fetch_max(rss, Relaxed);
            self.rss_kib_last.store(rss, Relaxed);
            if self.samples.fetch_add(1, Relaxed) == 0 {
                self.rss_kib_baseline.store(rss, Relaxed);
            }
        }
        if let Some(threads) = status_field(&status, "Threads:") {
            self.threads_peak.fetch_max(threads, Relaxed);
        }
        if with_fds && let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
            self.fds_peak.fetch_max(dir.count() as u64, Relaxed);
        }
        true
    }

    /// Samples every 100 ms (descriptors every second) until stopped.
    pub(crate) async fn run(&self, pid: u32) {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let mut n = 0_u64;
        while !self.stop.load(Relaxed) {
            tick.tick().await;
            if !self.sample(pid, n.is_multiple_of(10)) {
                break;
            }
            n += 1;
        }
    }
}
