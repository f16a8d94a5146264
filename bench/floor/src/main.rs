//! The physical floor for miemu's cached token path: an axum 0.8 server that
//! answers `GET /msi/token` with a fixed JSON body the size of miemu's cached
//! response, and does nothing else (no header check, no query parsing, no
//! logging, no middleware).
//!
//! Usage: `floor ADDR [BODY_BYTES]`, e.g. `floor 127.0.0.1:18081 1610`.
//! BODY_BYTES defaults to 1610; `bench/run.sh` passes the length of the body
//! miemu actually returned so the two answers carry the same number of bytes.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::get;

fn body(len: usize) -> String {
    let head = r#"{"access_token":""#;
    let tail = r#"","expires_on":"1767312000","resource":"https://management.azure.com/","token_type":"Bearer","client_id":"5c2b0b0e-1d8f-4a39-9a5e-0c1a2b3c4d5e"}"#;
    let fill = len.saturating_sub(head.len() + tail.len());
    let mut s = String::with_capacity(len);
    s.push_str(head);
    s.extend(std::iter::repeat_n('x', fill));
    s.push_str(tail);
    s
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:18081".to_owned());
    let len = args.next().map_or(1610, |n| n.parse().expect("BODY_BYTES must be a number"));
    let body: &'static str = Box::leak(body(len).into_boxed_str());
    let app = Router::new().route(
        "/msi/token",
        get(move || async move {
            (
                [
                    (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
                    (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
                ],
                body,
            )
                .into_response()
        }),
    );
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    // miemu sets TCP_NODELAY on every accepted connection; so does the floor.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await.expect("serve");
}
