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
#[command(group(clap::ArgGroup::new("selector").args(["client_id", "object_id", "resource_id"])))]
pub(super) struct TokenArgs {
    /// The resource (audience), e.g. https://vault.azure.net.
    #[arg(long)]
    resource: String,
    /// Ask for the user-assigned identity with this client id.
    #[arg(long)]
    client_id: Option<String>,
    /// Ask for the user-assigned identity with this object (principal) id.
    #[arg(long)]
    object_id: Option<String>,
    /// Ask for the user-assigned identity with this ARM resource id.
    #[arg(long)]
    resource_id: Option<String>,
    /// Endpoint URL [default: $IDENTITY_ENDPOINT].
    #[arg(long)]
    endpoint: Option<String>,
    /// Read IDENTITY_ENDPOINT and IDENTITY_HEADER from this dotenv file (as written by --env-dir).
    #[arg(long)]
    env_file: Option<PathBuf>,
    /// Also print the token's decoded header and claims.
    #[arg(long)]
    decode: bool,
    /// Succeed (exit 0) only if the endpoint refuses; for init containers proving they get nothing.
    #[arg(long)]
    expect_refusal: bool,
    /// Seconds to wait for an answer.
    #[arg(long, default_value_t = 10)]
    timeout: u64,
}

pub(super) fn token(args: &TokenArgs) -> anyhow::Result<ExitCode> {
    let file_vars = match &args.env_file {
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
    let endpoint = args
        .endpoint
        .clone()
        .or_else(|| lookup("IDENTITY_ENDPOINT"))
        .context("no endpoint: set IDENTITY_ENDPOINT, or pass --endpoint or --env-file")?;
    let secret =
        lookup("IDENTITY_HEADER").context("no secret: set IDENTITY_HEADER or pass --env-file")?;

    let mut url = format!(
        "{endpoint}?api-version=2019-08-01&resource={}",
        utf8_percent_encode(&args.resource, NON_ALPHANUMERIC)
    );
    for (name, value) in [
        ("client_id", &args.client_id),
        ("object_id", &args.object_id),
        ("mi_res_id", &args.resource_id),
    ] {
        if let Some(v) = value {
            url.push_str(&format!(
                "&{name}={}",
                utf8_percent_encode(v, NON_ALPHANUMERIC)
            ));
        }
    }
    let (status, body) = get(
        &url,
        &[("X-IDENTITY-HEADER", &secret)],
        Duration::from_secs(args.timeout),
    )?;
    let text = String::from_utf8_lossy(&body);
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
            eprintln!("miemu token: expected a refusal but a token was issued");
            return Ok(ExitCode::FAILURE);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let message = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| {
            if text.is_empty() {
                "(empty body)".to_owned()
            } else {
                text.into_owned()
            }
        });
    if args.expect_refusal {
        println!("refused as expected: HTTP {status}: {message}");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("miemu token: HTTP {status}: {message}");
        Ok(ExitCode::FAILURE)
    }
}

pub(super) fn healthcheck(url: &str) -> anyhow::Result<ExitCode> {
    let (status, _) = get(url, &[], Duration::from_secs(3))?;
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
fn get(url: &str, headers: &[(&str, &str)], timeout: Duration) -> anyhow::Result<(u16, Bytes)> {
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
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
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
    })
}
