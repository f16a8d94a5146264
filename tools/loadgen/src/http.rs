//! A minimal HTTP/1.1 client over one keep-alive TCP connection: write a
//! request, read exactly one `Content-Length`-framed response. Written out
//! rather than using hyper's client so every way a connection can end (clean
//! close, reset, truncation) is seen and classified, not retried away.

use std::io::ErrorKind;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// One response.
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) json: bool,
    /// The server announced `Connection: close`.
    pub(crate) close: bool,
    pub(crate) body: Vec<u8>,
}

/// How a round trip failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Failure {
    /// FIN before any byte of the response: a clean close.
    ClosedBeforeResponse,
    /// RST before any byte of the response.
    ResetBeforeResponse,
    /// FIN after part of the response.
    ClosedMidResponse,
    /// RST after part of the response.
    ResetMidResponse,
    /// The request could not be written.
    WriteFailed,
    /// Bytes that are not a well-formed response.
    Malformed,
    /// Any other I/O error.
    Io,
}

pub(crate) struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Requests answered on this connection so far.
    pub(crate) answered: u64,
}

fn is_reset(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe
    )
}

impl Conn {
    pub(crate) async fn connect(addr: &str) -> std::io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buf: Vec::with_capacity(4096),
            answered: 0,
        })
    }

    /// Writes a request and reads its response.
    pub(crate) async fn roundtrip(&mut self, request: &[u8]) -> Result<Response, Failure> {
        self.send(request).await?;
        self.receive().await
    }

    /// Writes a request completely.
    pub(crate) async fn send(&mut self, request: &[u8]) -> Result<(), Failure> {
        self.stream.write_all(request).await.map_err(|e| {
            if is_reset(e.kind()) {
                Failure::ResetBeforeResponse
            } else {
                Failure::WriteFailed
            }
        })
    }

    /// Reads exactly one response.
    pub(crate) async fn receive(&mut self) -> Result<Response, Failure> {
        self.buf.clear();
        loop {
            if let Some(r) = self.parse()? {
                self.answered += 1;
                return Ok(r);
            }
            match self.stream.read_buf(&mut self.buf).await {
                Ok(0) if self.buf.is_empty() => return Err(Failure::ClosedBeforeResponse),
                Ok(0) => return Err(Failure::ClosedMidResponse),
                Ok(_) => {}
                Err(e) if is_reset(e.kind()) => {
                    return Err(if self.buf.is_empty() {
                        Failure::ResetBeforeResponse
                    } else {
                        Failure::ResetMidResponse
                    });
                }
                Err(_) => return Err(Failure::Io),
            }
        }
    }

    /// A complete response at the start of the buffer, if there is one.
    fn parse(&self) -> Result<Option<Response>, Failure> {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut resp = httparse::Response::new(&mut headers);
        let head_len = match resp.parse(&self.buf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err(Failure::Malformed),
        };
        let mut len = None;
        let mut close = false;
        let mut json = false;
        for h in resp.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                len = std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.parse::<usize>().ok());
            } else if h.name.eq_ignore_ascii_case("connection") {
                close = h.value.eq_ignore_ascii_case(b"close");
            } else if h.name.eq_ignore_ascii_case("content-type") {
                json = h.value == b"application/json";
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                return Err(Failure::Malformed);
            }
        }
        let len = len.ok_or(Failure::Malformed)?;
        let status = resp.code.ok_or(Failure::Malformed)?;
        if self.buf.len() < head_len + len {
            return Ok(None);
        }
        if self.buf.len() > head_len + len {
            // One request in flight: nothing may follow the response.
            return Err(Failure::Malformed);
        }
        Ok(Some(Response {
            status,
            json,
            close,
            body: self.buf[head_len..].to_vec(),
        }))
    }
}
