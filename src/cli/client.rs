//! `miemu token` and `miemu healthcheck`: a minimal HTTP/1.1 client for
//! containers that have no SDK (and no shell or curl, as in a `scratch`
//! image). Only plain `http://` URLs: the endpoint is always local.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

/// Options of `miemu token`.
#[derive(Debug, Args)]
pub(super) struct TokenArgs {
    /// The resource (audience), e.g. https://vault.azure.net.
    #[arg(long)]
    resource: String,
    /// Ask for the system-assigned identity (the default when no selector is given).
    #[arg(long)]
    system: bool,
    /// Ask for the user-assigned identity with this client id (repeatable).
    #[arg(long)]
    client_id: Vec<String>,
    /// Ask for the user-assigned identity with this object (principal) id (repeatable).
    #[arg(long)]
    object_id: Vec<String>,
    /// Ask for the user-assigned identity with this ARM resource id (repeatable).
    #[arg(long)]
    resource_id: Vec<String>,
    /// Endpoint URL [default: $IDENTITY_ENDPOINT].
    #[arg(long)]
    endpoint: Option<String>,
    /// Read IDENTITY_ENDPOINT and IDENTITY_HEADER from this dotenv file (as written by --env-dir).
    #[arg(long)]
    env_file: Option<PathBuf>,
    /// Also print each token's decoded header and claims.
    #[arg(long)]
    decode: bool,
    /// Succeed only if the endpoint refuses with a JSON error (a 4xx with a message);
    /// for init containers proving they get nothing.
    #[arg(long)]
    expect_refusal: bool,
    /// Keep retrying for up to this many seconds while the env file is missing, the
    /// endpoint refuses connections, or it answers 403 with an empty body (a stale secret).
    #[arg(long, default_value_t = 0)]
    wait: u64,
    /// After every request went as expected, stay up until SIGTERM or Ctrl-C (like an app).
    #[arg(long)]
    keep_running: bool,
    /// Seconds to wait for each answer.
    #[arg(long, default_value_t = 10)]
    timeout: u64,
}

impl TokenArgs {
    /// `(parameter, value)` per request, in order: system, client ids,
    /// object ids, resource ids.
    fn selectors(&self) -> Vec<Option<(&'static str, &str)>> {
        let mut out = Vec::new();
        let named = self.client_id.len() + self.object_id.len() + self.resource_id.len();
        if self.system || named == 0 {
            out.push(None);
        }
        for (name, values) in [
            ("client_id", &self.client_id),
            ("object_id", &self.object_id),
            ("mi_res_id", &self.resource_id),
        ] {
            out.extend(values.iter().map(|v| Some((name, v.as_str()))));
        }
        out
    }

    fn target(&self) -> anyhow::Result<(String, String)> {
        let file_vars = match &self.env_file {
            Some(path) => read_env_file(path)?,
            None => Vec::new(),
        };
        let lookup = |name: &str| {
            file_vars
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .or_else(|| std::env::var(name).ok().filter(|v| !v.is_empty()))
        };
        let endpoint = self
            .endpoint
            .clone()
            .or_else(|| lookup("IDENTITY_ENDPOINT"))
            .context("no endpoint: set IDENTITY_ENDPOINT, or pass --endpoint or --env-file")?;
        let secret = lookup("IDENTITY_HEADER")
            .context("no secret: set IDENTITY_HEADER or pass --env-file")?;
        Ok((endpoint, secret))
    }
}

pub(super) fn token(args: &TokenArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        for selector in args.selectors() {
            if !request_one(args, selector).await? {
                return Ok(ExitCode::FAILURE);
            }
        }
        if args.keep_running {
            eprintln!("miemu token: done; staying up until SIGTERM or Ctrl-C");
            crate::server::shutdown_signal().await;
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// One token request, retried within `--wait`; prints the outcome and says
/// whether it went as expected.
async fn request_one(args: &TokenArgs, selector: Option<(&str, &str)>) -> anyhow::Result<bool> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.wait);
    let (status, body) = loop {
        let attempt = async {
            let (endpoint, secret) = args.target()?;
            let mut url = format!(
                "{endpoint}?api-version=2019-08-01&resource={}",
                utf8_percent_encode(&args.resource, NON_ALPHANUMERIC)
            );
            if let Some((name, value)) = selector {
                url.push_str(&format!(
                    "&{name}={}",
                    utf8_percent_encode(value, NON_ALPHANUMERIC)
                ));
            }
            get(
                &url,
                &[("X-IDENTITY-HEADER", &secret)],
                Duration::from_secs(args.timeout),
            )
            .await
        };
        match attempt.await {
            // An empty 403 after a restart means an env file from the
            // previous run: the new one is on its way.
            Ok((403, body)) if body.is_empty() && tokio::time::Instant::now() < deadline => {}
            Ok(answer) => break answer,
            Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let text = String::from_utf8_lossy(&body);
    let what = selector.map_or_else(|| "system".to_owned(), |(n, v)| format!("{n}={v}"));
    if status == 200 {
        println!("{text}");
        if args.decode {
            let parsed: serde_json::Value =
                serde_json::from_slice(&body).context("the response is not JSON")?;
            let jwt = parsed["access_token"]
                .as_str()
                .context("the response has no access_token")?;
            super::decode::print(jwt)?;
        }
        if args.expect_refusal {
            eprintln!("miemu token: expected a refusal for {what} but a token was issued");
            return Ok(false);
        }
        return Ok(true);
    }
    let message = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_owned));
    match message {
        Some(m) if args.expect_refusal && (400..500).contains(&status) => {
            println!("refused as expected: HTTP {status}: {m}");
            Ok(true)
        }
        m => {
            let shown = m.unwrap_or_else(|| {
                if text.is_empty() {
                    "(empty body)".to_owned()
                } else {
                    text.into_owned()
                }
            });
            eprintln!("miemu token: {what}: HTTP {status}: {shown}");
            Ok(false)
        }
    }
}

pub(super) fn healthcheck(url: &str) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let (status, _) = runtime.block_on(get(url, &[], Duration::from_secs(3)))?;
    if status == 200 {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("miemu healthcheck: {url} answered {status}");
        Ok(ExitCode::FAILURE)
    }
}

fn read_env_file(path: &PathBuf) -> anyhow::Result<Vec<(String, String)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.strip_prefix("export ").unwrap_or(l).split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().trim_matches('"').to_owned()))
        .collect())
}

/// One GET over a fresh connection; returns status and body.
async fn get(
    url: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> anyhow::Result<(u16, Bytes)> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("{url:?}: only http:// URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        bail!("{url:?} has no host");
    }
    let work = async {
        let stream = tokio::net::TcpStream::connect(authority)
            .await
            .with_context(|| format!("connecting to {authority}"))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .context("HTTP handshake")?;
        tokio::spawn(conn);
        let mut req = hyper::Request::get(path).header("host", authority);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let req = req
            .body(Empty::<Bytes>::new())
            .context("building the request")?;
        let resp = sender
            .send_request(req)
            .await
            .context("sending the request")?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .context("reading the response")?
            .to_bytes();
        anyhow::Ok((status, body))
    };
    tokio::time::timeout(timeout, work)
        .await
        .with_context(|| format!("no answer from {authority} within {}s", timeout.as_secs()))?
}
