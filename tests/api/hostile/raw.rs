//! A raw HTTP/1.1 exchange over TCP and the assertions on its answers.
//! Nothing here tidies the bytes: requests go out exactly as written and
//! responses are parsed strictly (`Content-Length` framing only).

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::helpers::{TestApp, assert_guid};

/// Bound on one exchange, so a hung server fails the test instead of hanging it.
const IO_TIMEOUT: Duration = Duration::from_secs(15);

pub(super) const QUERY: &str = "api-version=2019-08-01&resource=api%3A%2F%2Fx";

/// The header-read timeout in `server.rs` plus slack.
pub(super) const HEADER_TIMEOUT_BOUND: Duration = Duration::from_secs(13);

/// One parsed response.
pub(super) struct Answer {
    pub(super) version: String,
    pub(super) status: u16,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: Vec<u8>,
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answer")
            .field("version", &self.version)
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body", &String::from_utf8_lossy(&self.body))
            .finish()
    }
}

impl Answer {
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(super) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("{e}: {:?}", String::from_utf8_lossy(&self.body));
        })
    }
}

/// Everything the server sent on one connection, and how it ended.
pub(super) struct Transcript {
    pub(super) bytes: Vec<u8>,
    /// `true` for a clean close (FIN), `false` for a reset.
    pub(super) clean_close: bool,
}

pub(super) fn addr(app: &TestApp) -> &str {
    app.base.strip_prefix("http://").unwrap()
}

/// Writes `request`, then reads until the server closes the connection.
pub(super) async fn exchange(app: &TestApp, request: &[u8]) -> Transcript {
    let mut stream = TcpStream::connect(addr(app)).await.unwrap();
    tokio::time::timeout(IO_TIMEOUT, async {
        // A server that answers before reading everything may close while we
        // still write; that is fine, what it sent is what we assert on.
        let _ = stream.write_all(request).await;
        read_to_close(&mut stream).await
    })
    .await
    .expect("the server neither answered nor closed the connection")
}

pub(super) async fn read_to_close(stream: &mut TcpStream) -> Transcript {
    let mut bytes = Vec::new();
    let mut buf = [0_u8; 16 * 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) => {
                return Transcript {
                    bytes,
                    clean_close: true,
                };
            }
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Transcript {
                    bytes,
                    clean_close: false,
                };
            }
            Err(e) => panic!("read failed: {e}"),
        }
    }
}

/// Splits a transcript into responses; panics on anything that is not a
/// sequence of complete, `Content-Length`-framed HTTP/1.x responses.
pub(super) fn parse_answers(mut bytes: &[u8]) -> Vec<Answer> {
    let mut answers = Vec::new();
    while !bytes.is_empty() {
        let end = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("incomplete head: {:?}", String::from_utf8_lossy(bytes)));
        let head = std::str::from_utf8(&bytes[..end]).expect("response head is not UTF-8");
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap().to_owned();
        assert!(version.starts_with("HTTP/1."), "{status_line}");
        let status: u16 = parts.next().unwrap().parse().unwrap();
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (n, v) = l
                    .split_once(':')
                    .unwrap_or_else(|| panic!("bad header {l:?}"));
                (n.trim().to_ascii_lowercase(), v.trim().to_owned())
            })
            .collect();
        assert!(
            !headers.iter().any(|(n, _)| n == "transfer-encoding"),
            "every answer here is expected to carry Content-Length: {headers:?}"
        );
        let len: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .unwrap_or_else(|| panic!("no content-length in {headers:?}"))
            .1
            .parse()
            .unwrap();
        let body_start = end + 4;
        assert!(bytes.len() >= body_start + len, "truncated body");
        answers.push(Answer {
            version,
            status,
            headers,
            body: bytes[body_start..body_start + len].to_vec(),
        });
        bytes = &bytes[body_start + len..];
    }
    answers
}

/// The single answer on a connection the server then closed cleanly.
pub(super) async fn answer(app: &TestApp, request: &[u8]) -> Answer {
    let t = exchange(app, request).await;
    assert!(t.clean_close, "connection reset");
    let mut answers = parse_answers(&t.bytes);
    assert_eq!(answers.len(), 1, "{answers:?}");
    answers.remove(0)
}

/// `GET <target>` with the given extra header lines, closing after the answer.
pub(super) fn get(target: &str, headers: &[&[u8]]) -> Vec<u8> {
    let mut req = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n").into_bytes();
    for h in headers {
        req.extend_from_slice(h);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"Connection: close\r\n\r\n");
    req
}

pub(super) fn secret_header(app: &TestApp, container: &str) -> Vec<u8> {
    format!("X-IDENTITY-HEADER: {}", app.secret(container)).into_bytes()
}

/// A token request from `container` with a raw (already encoded) query.
pub(super) async fn token_query(app: &TestApp, container: &str, query: &str) -> Answer {
    let secret = secret_header(app, container);
    answer(app, &get(&format!("/msi/token?{query}"), &[&secret])).await
}

/// The platform's JSON 400, with exactly this message.
pub(super) fn assert_bad_request(a: &Answer, message: &str) {
    assert_eq!(a.status, 400, "{a:?}");
    assert_eq!(a.header("content-type"), Some("application/json"));
    let body = a.json();
    let mut keys: Vec<_> = body.as_object().unwrap().keys().cloned().collect();
    keys.sort_unstable();
    assert_eq!(keys, ["correlationId", "message", "statusCode"], "{body}");
    assert_eq!(body["statusCode"], 400);
    assert_eq!(body["message"], message);
    assert_guid(&body["correlationId"]);
}

/// The platform's empty 403 for a missing or unknown secret.
pub(super) fn assert_unauthenticated(a: &Answer) {
    assert_eq!(a.status, 403, "{a:?}");
    assert_eq!(a.header("content-length"), Some("0"));
    assert!(a.body.is_empty());
}

/// A verified token for `identity` and `resource`.
pub(super) async fn assert_token(app: &TestApp, a: &Answer, identity: &str, resource: &str) {
    assert_eq!(a.status, 200, "{:?}", String::from_utf8_lossy(&a.body));
    let body = a.json();
    assert_eq!(body["resource"], resource);
    let expected = app.identity(identity).client_id.to_string();
    assert_eq!(body["client_id"], expected.as_str());
    let claims = app
        .verify(body["access_token"].as_str().unwrap(), resource)
        .await;
    assert_eq!(claims.appid, expected);
}

/// hyper's own refusal: empty body, connection closed.
pub(super) fn assert_hyper_refusal(a: &Answer, status: u16) {
    assert_eq!(a.status, status, "{a:?}");
    assert_eq!(a.header("content-length"), Some("0"));
    assert_eq!(a.header("connection"), Some("close"));
    assert!(a.body.is_empty());
}

/// A normal request on a fresh connection still gets its token.
pub(super) async fn assert_still_serving(app: &TestApp) {
    let a = token_query(app, "app", QUERY).await;
    assert_token(app, &a, "system", "api://x").await;
}
