//! Serving connections: an HTTP/1.1 accept loop with the limits a sidecar in
//! a shared environment needs, and graceful shutdown.
//!
//! axum's `serve` does not expose hyper's buffer size or the connection
//! task, so the loop is written out here: each connection gets a bounded
//! read buffer (which caps header size), a permit from a semaphore that caps
//! concurrent connections, and a watchdog that closes it once it has sent no
//! complete request for [`HEADER_READ_TIMEOUT`] (a slowloris client cannot
//! hold a connection forever). On shutdown the listener closes, a lame duck
//! answers what is already on its way, in-flight requests finish (bounded by
//! [`DRAIN_TIMEOUT`]), then `run` returns.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::body::{Bytes, HttpBody};
use axum::http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::time::Instant;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower::{BoxError, ServiceExt as _};

/// Time a connection may go without a request in progress or a new
/// request head (see `Connection::stalled`; enforced within 1.25 × this).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest graceful shutdown waits for in-flight requests.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Read buffer cap per connection. hyper checks it before each read and its
/// reads grow, so the largest head accepted in one write is somewhat larger
/// (about 112 KiB, pinned by `tests/api/hostile`); beyond it, 431.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// How long, at shutdown, open connections get to deliver a request already
/// on its way before idle ones are closed.
pub const LAME_DUCK: Duration = Duration::from_secs(5);

/// The lame duck ends early once no request has started for this long:
/// every connection with a request on its way has been answered by then.
pub const LAME_DUCK_QUIET: Duration = Duration::from_millis(200);

/// Default cap on concurrent connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_240;

/// Closes the listening socket for a while, so new connections are refused
/// (the real endpoint refuses connections while a replica starts). Existing
/// connections are not touched.
#[derive(Debug, Clone)]
pub struct Gate(Arc<watch::Sender<Option<Instant>>>);

impl Default for Gate {
    fn default() -> Self {
        Self(Arc::new(watch::channel(None).0))
    }
}

impl Gate {
    /// Refuse new connections until `duration` from now.
    pub fn close_for(&self, duration: Duration) {
        self.0.send_replace(Some(Instant::now() + duration));
    }

    /// When the gate reopens, if it is closed now.
    pub fn closed_until(&self) -> Option<Instant> {
        (*self.0.borrow()).filter(|t| *t > Instant::now())
    }
}

/// What [`run`] serves: cloned once per connection and called through
/// `&self`, so that answering a request writes to no memory shared with the
/// other connections (no reference count, no lock).
pub trait Handler: Clone + Send + Sync + 'static {
    /// The response body.
    type Body: HttpBody<Data = Bytes, Error = Self::BodyError> + Send + 'static;
    /// The body's error.
    type BodyError: Into<BoxError>;
    /// The response future.
    type Future: Future<Output = Result<Response<Self::Body>, Infallible>> + Send + 'static;

    /// Answers one request.
    fn handle(&self, req: Request<Incoming>) -> Self::Future;
}

/// A plain router (the admin API): cloned per request, as axum does.
impl Handler for axum::Router {
    type Body = axum::body::Body;
    type BodyError = axum::Error;
    type Future = tower::util::Oneshot<Self, Request<Incoming>>;

    fn handle(&self, req: Request<Incoming>) -> Self::Future {
        self.clone().oneshot(req)
    }
}

/// Serves `handler` (the public endpoint of [`crate::app::build`], or the
/// admin router) on `listener` until `shutdown` completes, then drains.
/// While `gate` is closed the listening socket is dropped and re-bound on
/// the same address when it reopens.
pub async fn run<H: Handler>(
    listener: TcpListener,
    handler: H,
    max_connections: usize,
    gate: Gate,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    let mut listener = Some(listener);
    let mut gate_rx = gate.0.subscribe();
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let activity = Arc::new(Activity::default());
    let permits = Arc::new(Semaphore::new(max_connections));
    let mut builder = hyper::server::conn::http1::Builder::new();
    // No hyper header-read timeout: it re-arms a timer for every request
    // (a fifth of a token request's own cost); `Connection::stalled`
    // enforces the same bound with one timer per connection.
    builder.max_buf_size(MAX_HEAD_BYTES).keep_alive(true);
    tokio::pin!(shutdown);
    let mut cap_logged = false;
    loop {
        let closed_until = *gate_rx.borrow_and_update();
        if let Some(until) = closed_until.filter(|t| *t > Instant::now()) {
            if listener.take().is_some() {
                tracing::warn!(listen = %addr, "not ready: refusing connections");
            }
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep_until(until.into()) => {}
                _ = gate_rx.changed() => {}
            }
            continue;
        }
        let Some(current) = listener.as_ref() else {
            match TcpListener::bind(addr).await {
                Ok(l) => {
                    tracing::info!(listen = %addr, "ready: accepting connections again");
                    listener = Some(l);
                }
                Err(e) => {
                    tracing::error!(listen = %addr, error = %e, "cannot re-bind; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            continue;
        };
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = permits.clone().acquire_owned() => permit,
        };
        let Ok(permit) = permit else { break };
        let (stream, _peer) = tokio::select! {
            () = &mut shutdown => break,
            _ = gate_rx.changed() => continue,
            accepted = current.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if permits.available_permits() == 0 && !cap_logged {
            tracing::warn!(
                limit = max_connections,
                "connection limit reached; new connections wait until one closes"
            );
            cap_logged = true;
        } else if permits.available_permits() > max_connections / 2 {
            cap_logged = false;
        }
        let _ = stream.set_nodelay(true);
        let watch = Arc::new(Connection::new(activity.clone()));
        let service = connection_service(handler.clone(), watch.clone());
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        let mut serving = tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
        // The watchdog is a task of its own: polled with the connection, it
        // would be polled again at every wake-up of every request.
        tokio::spawn(async move {
            tokio::select! {
                _ = &mut serving => {}
                () = watch.stalled() => {
                    tracing::debug!("closing a connection that sent no complete request in time");
                    serving.abort();
                }
            }
        });
    }
    drop(listener);
    // Lame duck: every answer from now on says `Connection: close`, so a
    // request already on its way over a keep-alive connection is answered
    // and that connection then closes. hyper's graceful shutdown alone would
    // close "idle" connections at once, dropping such requests
    // (hyperium/hyper#3792). Connections still idle afterwards are closed.
    activity.draining.store(true, Ordering::SeqCst);
    let lame_duck_end = tokio::time::Instant::now() + LAME_DUCK;
    activity.recent_request.store(false, Ordering::SeqCst);
    let mut quiet_since = Instant::now();
    while permits.available_permits() < max_connections
        && tokio::time::Instant::now() < lame_duck_end
    {
        if activity.recent_request.swap(false, Ordering::SeqCst) {
            quiet_since = Instant::now();
        }
        if quiet_since.elapsed() >= LAME_DUCK_QUIET {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(DRAIN_TIMEOUT) => {
            tracing::warn!("shutdown drain timed out; closing remaining connections");
        }
    }
    Ok(())
}

/// What connections tell the shutdown sequence, and learn from it.
#[derive(Debug, Default)]
struct Activity {
    /// Set when the lame duck starts: answers then say `Connection: close`.
    draining: AtomicBool,
    /// Set by every request that starts; the lame duck clears it as it
    /// polls, to see when requests stop arriving.
    recent_request: AtomicBool,
}

/// One connection's request counts, shared by its service (which counts)
/// and its watchdog (which reads them); only that connection's task touches
/// them, so counting is cheap.
#[derive(Debug)]
struct Connection {
    activity: Arc<Activity>,
    started: AtomicU64,
    finished: AtomicU64,
}

impl Connection {
    fn new(activity: Arc<Activity>) -> Self {
        Self {
            activity,
            started: AtomicU64::new(0),
            finished: AtomicU64::new(0),
        }
    }

    /// Notes that a request head arrived. The server-wide flag is written
    /// only when the lame duck has cleared it, so outside shutdown
    /// connections on different threads only ever read its cache line (and
    /// no request reads the clock for it).
    fn request_started(&self) {
        self.started.fetch_add(1, Ordering::Relaxed);
        let recent = &self.activity.recent_request;
        if !recent.load(Ordering::Relaxed) {
            recent.store(true, Ordering::SeqCst);
        }
    }

    fn request_finished(&self) {
        self.finished.fetch_add(1, Ordering::Relaxed);
    }

    /// Completes once the connection has had no request in progress and no
    /// new request head for [`HEADER_READ_TIMEOUT`] (checked every quarter
    /// of it, so within 1.25 × the timeout): a client that trickles its
    /// headers (slowloris) or sits idle is cut off. One timer per
    /// connection, instead of hyper re-arming one for every request.
    async fn stalled(&self) {
        let mut ticks = tokio::time::interval(HEADER_READ_TIMEOUT / 4);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut seen = None;
        let mut idle = 0;
        loop {
            ticks.tick().await;
            let started = self.started.load(Ordering::Relaxed);
            let busy = started != self.finished.load(Ordering::Relaxed);
            if busy || seen != Some(started) {
                seen = Some(started);
                idle = 0;
            } else {
                idle += 1;
                if idle >= 4 {
                    return;
                }
            }
        }
    }
}

fn connection_service<H: Handler>(
    handler: H,
    connection: Arc<Connection>,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<H::Body>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<H::Body>, Infallible>> + Send,
> {
    hyper::service::service_fn(move |req: Request<Incoming>| {
        connection.request_started();
        let answer = handler.handle(req);
        // Cloned per request, but this reference count is only ever touched
        // by this connection's task.
        let connection = connection.clone();
        async move {
            let mut response = answer.await?;
            connection.request_finished();
            if connection.activity.draining.load(Ordering::SeqCst) {
                response.headers_mut().insert(
                    hyper::header::CONNECTION,
                    hyper::header::HeaderValue::from_static("close"),
                );
            }
            Ok(response)
        }
    })
}

/// Completes on SIGTERM or Ctrl-C: containers stop their processes with
/// SIGTERM, people with Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutdown signal received; draining");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection() -> Connection {
        Connection::new(Arc::new(Activity::default()))
    }

    /// Whether `stalled` completes within `within` of (paused) time.
    async fn stalls_within(conn: &Connection, within: Duration) -> bool {
        tokio::time::timeout(within, conn.stalled()).await.is_ok()
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_without_a_request_is_cut_off_after_the_timeout() {
        let conn = connection();
        let started = tokio::time::Instant::now();
        conn.stalled().await;
        assert_eq!(started.elapsed(), HEADER_READ_TIMEOUT);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_progress_keeps_its_connection() {
        let conn = connection();
        conn.request_started();
        assert!(!stalls_within(&conn, HEADER_READ_TIMEOUT * 3).await);
        // Once answered, the idle clock starts over: cut off after at most
        // 1.25 x the timeout, never before the timeout.
        conn.request_finished();
        assert!(!stalls_within(&conn, HEADER_READ_TIMEOUT - Duration::from_millis(1)).await);
        assert!(
            stalls_within(
                &conn,
                HEADER_READ_TIMEOUT * 5 / 4 + Duration::from_millis(1)
            )
            .await
        );
    }

    #[tokio::test(start_paused = true)]
    async fn steady_requests_keep_a_connection_open() {
        let conn = connection();
        let watchdog = conn.stalled();
        tokio::pin!(watchdog);
        for _ in 0..20 {
            conn.request_started();
            conn.request_finished();
            let tick = tokio::time::sleep(HEADER_READ_TIMEOUT / 2);
            tokio::select! {
                () = &mut watchdog => panic!("cut off a connection in use"),
                () = tick => {}
            }
        }
    }
}
