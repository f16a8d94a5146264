//! miemu-loadgen: drives miemu's token endpoint over loopback with many
//! concurrent keep-alive connections and checks every answer.
//!
//! Every request comes from a plan built from the served configuration
//! (`plan`), so its right answer is known: status, error message, and for a
//! token the identity and resource it must be for; each distinct token's
//! RS256 signature and claims are verified against the server's JWKS
//! (`verify`). The run is bounded by a request count and a deadline.
//!
//! `MODE=sigterm` sends SIGTERM to miemu after `SIGTERM_AFTER` answers and
//! then checks the drain: every request written before the signal gets its
//! full, correct answer; afterwards connections may only close cleanly or be
//! refused, never reset.
//!
//! Settings (environment): `ADDR` (host:port, required), `LOAD_CONFIG`,
//! `CONNS` (500), `REQUESTS` (50000), `BAD_PERCENT` (25), `MODE` (load |
//! sigterm), `MIEMU_PID` (for /proc sampling; required for sigterm),
//! `SIGTERM_AFTER` (REQUESTS/3), `MAX_SECS` (900), `CONNECT_PARALLEL` (256),
//! `WORKERS` (2), `RESULT_JSON` (a file for the JSON summary).
//! Exit status: 0 all right, 1 a wrong answer or error, 2 could not run.

mod http;
mod plan;
mod stats;
mod verify;

use std::borrow::Cow;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Deserialize;
use tokio::sync::{Semaphore, watch};

use crate::http::{Conn, Response};
use crate::plan::{Case, Expect, Plan};
use crate::stats::{ProcSampler, Stats};
use crate::verify::Verifier;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// While waiting for the other connections, send a request this often.
const WAIT_KEEPALIVE: Duration = Duration::from_secs(4);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Load,
    Sigterm,
}

struct Settings {
    addr: String,
    config: PathBuf,
    conns: usize,
    requests: u64,
    bad_percent: u64,
    mode: Mode,
    pid: Option<u32>,
    sigterm_after: u64,
    max_secs: u64,
    connect_parallel: usize,
    workers: usize,
    result_json: Option<PathBuf>,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .map_err(|_| anyhow::anyhow!("{name}={v:?} is not valid")),
        Err(_) => Ok(default),
    }
}

impl Settings {
    fn from_env() -> anyhow::Result<Self> {
        let requests = env_or("REQUESTS", 50_000_u64)?;
        let mode = match std::env::var("MODE").as_deref().unwrap_or("load") {
            "load" => Mode::Load,
            "sigterm" => Mode::Sigterm,
            other => anyhow::bail!("MODE={other:?}: expected load or sigterm"),
        };
        let pid = std::env::var("MIEMU_PID")
            .ok()
            .map(|p| p.parse())
            .transpose()
            .context("MIEMU_PID")?;
        if mode == Mode::Sigterm && pid.is_none() {
            anyhow::bail!("MODE=sigterm needs MIEMU_PID");
        }
        Ok(Self {
            addr: std::env::var("ADDR").context("ADDR (host:port of miemu) is required")?,
            config: env_or("LOAD_CONFIG", PathBuf::from("tools/loadgen/load.toml"))?,
            conns: env_or("CONNS", 500)?,
            requests,
            bad_percent: env_or("BAD_PERCENT", 25)?.min(100),
            mode,
            pid,
            sigterm_after: env_or("SIGTERM_AFTER", requests / 3)?,
            max_secs: env_or("MAX_SECS", 900)?,
            connect_parallel: env_or("CONNECT_PARALLEL", 256)?,
            workers: env_or("WORKERS", 2)?,
            result_json: std::env::var("RESULT_JSON").ok().map(PathBuf::from),
        })
    }
}

struct Ctx {
    addr: String,
    plan: Plan,
    verifier: Verifier,
    stats: Stats,
    requests: u64,
    /// When all connections were open and answered once, at the same time.
    all_open: OnceLock<Instant>,
    answered_when_all_open: AtomicU64,
    /// Connections open and answered once (or given up).
    ready: AtomicU64,
    conns: u64,
    all_open_tx: watch::Sender<bool>,
    all_open_rx: watch::Receiver<bool>,
    next: AtomicU64,
    deadline: Instant,
    started: OnceLock<Instant>,
    signal_at: OnceLock<Instant>,
}

impl Ctx {
    /// Counts a connection as ready; the last one starts the load.
    fn ready(&self) {
        if self.ready.fetch_add(1, Relaxed) + 1 == self.conns {
            let _ = self.all_open.set(Instant::now());
            self.answered_when_all_open
                .store(self.stats.responses.load(Relaxed), Relaxed);
            self.all_open_tx.send_replace(true);
        }
    }

    fn signalled(&self) -> bool {
        self.signal_at.get().is_some()
    }

    /// Whether a request written at `sent` was written after SIGTERM.
    fn sent_after_signal(&self, sent: Instant) -> bool {
        self.signal_at.get().is_some_and(|s| sent >= *s)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenBody<'a> {
    access_token: &'a str,
    expires_on: &'a str,
    #[serde(borrow)]
    resource: Cow<'a, str>,
    token_type: &'a str,
    client_id: &'a str,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ErrorBody<'a> {
    status_code: u16,
    #[serde(borrow)]
    message: Cow<'a, str>,
    correlation_id: &'a str,
}

fn is_guid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

/// `None` if the answer is exactly right, else what is wrong.
fn check(ctx: &Ctx, case: &Case, resp: &Response) -> Option<String> {
    match &case.expect {
        Expect::Token {
            client_id,
            principal_id,
            resource,
        } => {
            if resp.status != 200 {
                return Some(format!(
                    "expected 200, got {} {}",
                    resp.status,
                    String::from_utf8_lossy(&resp.body)
                ));
            }
            if !resp.json {
                return Some("200 without application/json".to_owned());
            }
            let body: TokenBody<'_> = match serde_json::from_slice(&resp.body) {
                Ok(b) => b,
                Err(e) => return Some(format!("token body: {e}")),
            };
            if body.client_id != client_id {
                return Some(format!("client_id {} for {client_id}", body.client_id));
            }
            if body.resource != *resource
                || body.token_type != "Bearer"
                || body.expires_on.parse::<i64>().is_err()
            {
                return Some(format!(
                    "resource/token_type/expires_on wrong for {resource}"
                ));
            }
            ctx.verifier
                .check(body.access_token, client_id, principal_id, resource)
                .err()
                .map(|e| format!("token for {client_id} / {resource}: {e}"))
        }
        Expect::Error { status, message } => {
            if resp.status != *status || !resp.json {
                return Some(format!(
                    "expected JSON {status}, got {} {}",
                    resp.status,
                    String::from_utf8_lossy(&resp.body)
                ));
            }
            match serde_json::from_slice::<ErrorBody<'_>>(&resp.body) {
                Ok(b)
                    if b.status_code == *status
                        && b.message == message.as_str()
                        && is_guid(b.correlation_id) =>
                {
                    None
                }
                Ok(b) => Some(format!("error body {} {:?}", b.status_code, b.message)),
                Err(e) => Some(format!("error body: {e}")),
            }
        }
        Expect::Forbidden => {
            if resp.status == 403 && resp.body.is_empty() {
                None
            } else {
                Some(format!(
                    "expected empty 403, got {} {}",
                    resp.status,
                    String::from_utf8_lossy(&resp.body)
                ))
            }
        }
    }
}

/// Opens a connection, counting it; `None` (counted) if refused.
async fn connect(ctx: &Ctx) -> Option<Conn> {
    match Conn::connect(&ctx.addr).await {
        Ok(c) => {
            ctx.stats.opened();
            Some(c)
        }
        Err(_) if ctx.signalled() => {
            ctx.stats.refused_after_signal.fetch_add(1, Relaxed);
            None
        }
        Err(_) => {
            ctx.stats.connect_errors.fetch_add(1, Relaxed);
            None
        }
    }
}

/// One connection's worth of requests.
///
/// Each connection sends its first request as soon as it is open, then waits
/// until all `CONNS` connections are open and answered once, so that they
/// all overlap before the load starts. While it waits it sends another
/// request every few seconds: miemu's header-read timeout (10 s) rightly
/// closes a connection that sends nothing, and opening 10,000 connections
/// can take longer than that.
async fn client(ctx: Arc<Ctx>, connects: Arc<Semaphore>) {
    let mut conn = {
        let _permit = connects.acquire().await;
        connect(&ctx).await
    };
    let _ = ctx.started.set(Instant::now());
    let mut all_open = ctx.all_open_rx.clone();
    let mut counted = false;
    while let Some(c) = conn.as_mut() {
        if Instant::now() >= ctx.deadline {
            break;
        }
        let i = ctx.next.fetch_add(1, Relaxed);
        if i >= ctx.requests {
            break;
        }
        if !one_request(&ctx, c, i).await {
            ctx.stats.closed();
            conn = connect(&ctx).await;
        }
        if !counted {
            counted = true;
            ctx.ready();
        }
        if !*all_open.borrow() {
            let _ = tokio::time::timeout(WAIT_KEEPALIVE, all_open.wait_for(|open| *open)).await;
        }
    }
    if conn.is_some() {
        ctx.stats.closed();
    }
    if !counted {
        // Could not connect, or no request left: do not hold the others back.
        ctx.ready();
    }
}

/// Sends request `i` and checks its answer; `false` if the connection is
/// finished (closed by either side).
async fn one_request(ctx: &Ctx, conn: &mut Conn, i: u64) -> bool {
    let case = ctx.plan.pick(i);
    let started = Instant::now();
    // "Sent" is when the whole request was handed to the kernel: on
    // loopback it is then in miemu's socket buffer.
    let mut sent = None;
    let result = tokio::time::timeout(REQUEST_TIMEOUT, async {
        conn.send(&case.request).await?;
        sent = Some(Instant::now());
        conn.receive().await
    })
    .await;
    let sent = sent.unwrap_or(started);
    let after_signal = ctx.sent_after_signal(sent);
    match result {
        Err(_) => {
            ctx.stats.timeouts.fetch_add(1, Relaxed);
            false
        }
        Ok(Ok(resp)) => {
            ctx.stats.latency(started.elapsed());
            ctx.stats.responses.fetch_add(1, Relaxed);
            match check(ctx, case, &resp) {
                None if matches!(case.expect, Expect::Token { .. }) => {
                    ctx.stats.tokens.fetch_add(1, Relaxed);
                }
                None => {
                    ctx.stats.expected_errors.fetch_add(1, Relaxed);
                }
                Some(what) => ctx.stats.wrong(format!("request {i}: {what}")),
            }
            if resp.close && ctx.signalled() {
                ctx.stats.close_after_signal.fetch_add(1, Relaxed);
            }
            !resp.close
        }
        Ok(Err(f)) => {
            ctx.stats.failure(f, after_signal);
            if let Some(signal) = ctx.signal_at.get().filter(|_| !after_signal) {
                ctx.stats.in_flight_lost.fetch_add(1, Relaxed);
                let age = u64::try_from(signal.saturating_duration_since(sent).as_micros())
                    .unwrap_or(u64::MAX);
                ctx.stats.in_flight_lost_max_age_us.fetch_max(age, Relaxed);
            }
            false
        }
    }
}

/// Sends SIGTERM to `pid` once `after` answers have arrived.
async fn sigterm_when(ctx: Arc<Ctx>, pid: u32, after: u64) {
    loop {
        if ctx.stats.responses.load(Relaxed) >= after {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let _ = ctx.signal_at.set(Instant::now());
    let status = tokio::task::spawn_blocking(move || {
        std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
    })
    .await;
    eprintln!("loadgen: SIGTERM sent to {pid} after {after} answers ({status:?})");
}

async fn run(s: Settings) -> anyhow::Result<bool> {
    let plan = Plan::load(&s.config, &s.addr, s.bad_percent)?;
    let verifier = Verifier::fetch(&s.addr, &plan.tenant_id, plan.lifetime_secs).await?;
    eprintln!(
        "loadgen: {} well-formed and {} wrong request kinds, {} JWKS key(s); {} connections, {} requests, mode {:?}",
        plan.good.len(),
        plan.bad.len(),
        verifier.key_count(),
        s.conns,
        s.requests,
        s.mode
    );
    let wall = Instant::now();
    let (all_open_tx, all_open_rx) = watch::channel(false);
    let ctx = Arc::new(Ctx {
        addr: s.addr.clone(),
        plan,
        verifier,
        stats: Stats::default(),
        requests: s.requests,
        all_open: OnceLock::new(),
        answered_when_all_open: AtomicU64::new(0),
        ready: AtomicU64::new(0),
        conns: s.conns as u64,
        all_open_tx,
        all_open_rx,
        next: AtomicU64::new(0),
        deadline: wall + Duration::from_secs(s.max_secs),
        started: OnceLock::new(),
        signal_at: OnceLock::new(),
    });
    let sampler = Arc::new(ProcSampler::default());
    let sampling = s.pid.map(|pid| {
        let sampler = sampler.clone();
        tokio::spawn(async move { sampler.run(pid).await })
    });
    if let Some(pid) = s.pid {
        // A baseline before any load.
        sampler.sample(pid, true);
    }
    let signaller = (s.mode == Mode::Sigterm).then(|| {
        tokio::spawn(sigterm_when(
            ctx.clone(),
            s.pid.unwrap_or_default(),
            s.sigterm_after,
        ))
    });
    let connects = Arc::new(Semaphore::new(s.connect_parallel));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..s.conns {
        tasks.spawn(client(ctx.clone(), connects.clone()));
    }
    while let Some(r) = tasks.join_next().await {
        r.context("a client task panicked")?;
    }
    let finished = Instant::now();
    if let Some(h) = signaller {
        h.abort();
    }
    sampler.stop.store(true, Relaxed);
    if let Some(h) = sampling {
        let _ = h.await;
    }

    let st = &ctx.stats;
    let started = ctx.started.get().copied().unwrap_or(wall);
    let elapsed = finished.saturating_duration_since(started).as_secs_f64();
    // From the moment all connections were open to the last answer.
    let steady = ctx.all_open.get().map_or(0.0, |t| {
        finished.saturating_duration_since(*t).as_secs_f64()
    });
    let responses = st.responses.load(Relaxed);
    let failures = st.failures();
    let resets: u64 = failures
        .iter()
        .filter(|(k, _)| k.starts_with("Reset"))
        .map(|(_, v)| v)
        .sum();
    let truncated: u64 = failures
        .iter()
        .filter(|(k, _)| k.starts_with("ClosedMid"))
        .map(|(_, v)| v)
        .sum();
    let other_failures: u64 = failures
        .iter()
        .filter(|(k, _)| !(k.starts_with("ClosedBeforeResponse") && k.ends_with("(after SIGTERM)")))
        .map(|(_, v)| v)
        .sum();
    let wrong = st.wrong.load(Relaxed);
    let timeouts = st.timeouts.load(Relaxed);
    let connect_errors = st.connect_errors.load(Relaxed);
    let in_flight_lost = st.in_flight_lost.load(Relaxed);
    let ok = match s.mode {
        Mode::Load => {
            wrong == 0
                && failures.is_empty()
                && timeouts == 0
                && connect_errors == 0
                && responses == s.requests
        }
        Mode::Sigterm => {
            wrong == 0
                && other_failures == 0
                && resets == 0
                && truncated == 0
                && timeouts == 0
                && connect_errors == 0
                && in_flight_lost == 0
                && ctx.signalled()
        }
    };
    let mib = |kib: u64| (kib as f64) / 1024.0;
    let summary = serde_json::json!({
        "mode": format!("{:?}", s.mode).to_lowercase(),
        "ok": ok,
        "connections": s.conns,
        "connections_open_peak": st.open_peak.load(Relaxed),
        "all_open_after_s": ctx.all_open.get().map(|t| (t.saturating_duration_since(wall).as_secs_f64() * 100.0).round() / 100.0),
        "connects": st.connects.load(Relaxed),
        "requests_planned": s.requests,
        "responses": responses,
        "tokens_ok": st.tokens.load(Relaxed),
        "expected_errors_ok": st.expected_errors.load(Relaxed),
        "wrong_answers": wrong,
        "wrong_samples": st.wrong_samples(),
        "failures": failures,
        "timeouts": timeouts,
        "connect_errors": connect_errors,
        "distinct_tokens_verified": ctx.verifier.verified_count(),
        "elapsed_s": (elapsed * 100.0).round() / 100.0,
        "requests_per_s": if elapsed > 0.0 { (responses as f64 / elapsed).round() } else { 0.0 },
        "steady_s": (steady * 100.0).round() / 100.0,
        "steady_requests_per_s": if steady > 0.0 {
            ((responses - ctx.answered_when_all_open.load(Relaxed)) as f64 / steady).round()
        } else {
            0.0
        },
        "latency_ms": {
            "p50": st.percentile_us(0.50) as f64 / 1000.0,
            "p99": st.percentile_us(0.99) as f64 / 1000.0,
            "p999": st.percentile_us(0.999) as f64 / 1000.0,
            "max": st.max_us() as f64 / 1000.0,
        },
        "miemu": {
            "rss_mib_baseline": mib(sampler.rss_kib_baseline.load(Relaxed)),
            "rss_mib_peak": mib(sampler.rss_kib_peak.load(Relaxed)),
            "rss_mib_last": mib(sampler.rss_kib_last.load(Relaxed)),
            "fds_peak": sampler.fds_peak.load(Relaxed),
            "threads_peak": sampler.threads_peak.load(Relaxed),
            "samples": sampler.samples.load(Relaxed),
        },
        "sigterm": (s.mode == Mode::Sigterm).then(|| serde_json::json!({
            "after_answers": s.sigterm_after,
            "in_flight_lost": in_flight_lost,
            "in_flight_lost_max_age_ms": st.in_flight_lost_max_age_us.load(Relaxed) as f64 / 1000.0,
            "resets": resets,
            "truncated": truncated,
            "close_headers_after_signal": st.close_after_signal.load(Relaxed),
            "refused_after_signal": st.refused_after_signal.load(Relaxed),
        })),
    });
    let text = serde_json::to_string_pretty(&summary)?;
    println!("{text}");
    if let Some(path) = &s.result_json {
        std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(ok)
}

fn main() -> ExitCode {
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(settings.workers.max(1))
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("loadgen: starting the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(settings)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            ExitCode::from(2)
        }
    }
}
