//! A lean HTTP/1.1 client for plain-http engine replicas, the proxy's hot path.
//!
//! Why not hyper's client: each of its connections holds a dispatch channel (tokio allocates
//! its queue 32 requests at a time, about 9 kB), an 8 kB write buffer and an 8 kB read buffer
//! for as long as the connection lives, and hands every request to a separate connection task.
//! With 10,000 open streams that was about 27 kB per stream (valgrind massif), and the hand-off
//! costs CPU on every request. Here a request is written and its answer read by the task that
//! relays it; a connection holds no buffer between reads (each read goes to a buffer on the
//! stack and only its bytes are kept), and an idle connection is a socket in a list.
//!
//! What it does: keep-alive connections per replica (LIFO, so the warm ones are reused, and
//! checked for a close by the engine before reuse), one retry on a fresh connection when a
//! reused one turns out to be dead before any answer byte arrives, `content-length`, chunked
//! and close-delimited bodies. TLS replicas and anything else go through hyper's client.

use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::http::header::{
    CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER, TRANSFER_ENCODING,
};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode, Version};
use bytes::{Buf, Bytes, BytesMut};
use http_body::{Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::upstream::client::DataHeaders;
use crate::wire::{decimal, eq_lower, has_token};

/// The kept header a name is, if any: the answer headers read are the framing and what the
/// proxy relays or acts on. A name of another length is told apart before any byte is compared,
/// and the bytes a word at a time.
fn kept(name: &str) -> Option<HeaderName> {
    let (lower, header) = match name.len() {
        12 => ("content-type", CONTENT_TYPE),
        14 => ("content-length", CONTENT_LENGTH),
        17 => ("transfer-encoding", TRANSFER_ENCODING),
        10 => ("connection", CONNECTION),
        11 => ("retry-after", RETRY_AFTER),
        _ => return None,
    };
    eq_lower(name.as_bytes(), lower.as_bytes()).then_some(header)
}

const JSON: HeaderValue = HeaderValue::from_static("application/json");
const EVENT_STREAM: HeaderValue = HeaderValue::from_static("text/event-stream");

/// Largest response head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Most response headers accepted.
const MAX_HEADERS: usize = 128;
/// Bytes read from the socket at a time (on the stack; only what arrives is kept).
const READ_SIZE: usize = 32 * 1024;
/// Most bytes taken in one read of an answer's head (and what follows it).
const HEAD_READ: usize = 16 * 1024;
/// Bodies up to this size are sent in the same write as the head.
const COALESCE: usize = 16 * 1024;

/// Why an exchange failed.
#[derive(Debug)]
pub enum H1Error {
    /// No connection could be made.
    Connect(io::Error),
    /// Connecting took longer than the connect timeout.
    ConnectTimeout,
    /// The connection failed while sending or before the answer's head was complete.
    Io(io::Error),
    /// The engine's answer is not valid HTTP/1.
    Invalid(String),
}

impl std::fmt::Display for H1Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            H1Error::Connect(e) => write!(f, "tcp connect error: {e}"),
            H1Error::ConnectTimeout => f.write_str("connecting timed out"),
            H1Error::Io(e) => write!(f, "connection error: {e}"),
            H1Error::Invalid(m) => write!(f, "invalid HTTP answer: {m}"),
        }
    }
}

impl std::error::Error for H1Error {}

/// Keep-alive connections to one replica.
#[derive(Debug)]
pub struct H1Pool {
    /// `host:port` to connect to.
    addr: String,
    /// The `host` header.
    host: HeaderValue,
    idle: Mutex<Vec<(TcpStream, Instant)>>,
    max_idle: usize,
    idle_timeout: Duration,
    connect_timeout: Duration,
}

impl H1Pool {
    /// A pool for `http://{authority}`; `None` when the authority is not a valid `host`
    /// header.
    pub fn new(
        authority: &str,
        max_idle: usize,
        idle_timeout: Duration,
        connect_timeout: Duration,
    ) -> Option<Self> {
        let addr = if authority.rsplit_once(':').is_some_and(|(_, p)| {
            !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && !authority.ends_with(']')
        }) {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        Some(H1Pool {
            addr,
            host: HeaderValue::from_str(authority).ok()?,
            idle: Mutex::new(Vec::new()),
            max_idle,
            idle_timeout,
            connect_timeout,
        })
    }

    /// Sends `POST path` with `headers` and `body`, and returns the answer once its head has
    /// arrived; the body streams from the connection.
    pub async fn post(
        self: &Arc<Self>,
        path: &str,
        headers: &DataHeaders<'_>,
        body: &Bytes,
    ) -> Result<Response<H1Body>, H1Error> {
        let head = self.request_head(path, headers, body);
        let mut fresh_only = false;
        loop {
            let pooled = if fresh_only { None } else { self.checkout() };
            let reused = pooled.is_some();
            let mut stream = match pooled {
                Some(s) => s,
                None => self.connect().await?,
            };
            match exchange(&mut stream, &head, body).await {
                Ok((response, leftover)) => return Ok(self.answer(stream, response, leftover)),
                // A kept-alive connection the engine closed meanwhile: nothing of the answer
                // arrived, so the request goes again on a new connection, once.
                Err(Exchange::Dead(_)) if reused => fresh_only = true,
                Err(Exchange::Dead(e)) => return Err(H1Error::Io(e)),
                Err(Exchange::Failed(e)) => return Err(e),
            }
        }
    }

    /// The request's head, followed by its body when the body is small (one write, one
    /// allocation).
    fn request_head(&self, path: &str, headers: &DataHeaders<'_>, body: &Bytes) -> Vec<u8> {
        let inline = body.len() <= COALESCE;
        let mut head = Vec::with_capacity(256 + if inline { body.len() } else { 0 });
        head.extend_from_slice(b"POST ");
        head.extend_from_slice(path.as_bytes());
        head.extend_from_slice(b" HTTP/1.1\r\nhost: ");
        head.extend_from_slice(self.host.as_bytes());
        for (name, value) in headers.iter() {
            head.extend_from_slice(b"\r\n");
            head.extend_from_slice(name.as_str().as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(value.as_bytes());
        }
        head.extend_from_slice(b"\r\ncontent-length: ");
        let mut digits = [0u8; 20];
        head.extend_from_slice(decimal(body.len() as u64, &mut digits));
        head.extend_from_slice(b"\r\n\r\n");
        if inline {
            head.extend_from_slice(body);
        }
        head
    }

    /// The most recently used idle connection the engine has not closed.
    fn checkout(&self) -> Option<TcpStream> {
        let mut idle = self.idle.lock().ok()?;
        while let Some((stream, since)) = idle.pop() {
            if since.elapsed() >= self.idle_timeout {
                continue;
            }
            // An idle connection has nothing to read: a close (0) or stray bytes retire it.
            let mut probe = [0u8; 1];
            if let Err(e) = stream.try_read(&mut probe) {
                if e.kind() == io::ErrorKind::WouldBlock {
                    return Some(stream);
                }
            }
        }
        None
    }

    fn checkin(&self, stream: TcpStream) {
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < self.max_idle {
                idle.push((stream, Instant::now()));
            }
        }
    }

    /// Closes idle connections that have outlived the idle timeout (called by the health
    /// checks, so that sockets the engine closed do not linger).
    pub fn sweep(&self) {
        if let Ok(mut idle) = self.idle.lock() {
            let timeout = self.idle_timeout;
            idle.retain(|(_, since)| since.elapsed() < timeout);
        }
    }

    async fn connect(&self) -> Result<TcpStream, H1Error> {
        match tokio::time::timeout(self.connect_timeout, TcpStream::connect(&self.addr)).await {
            Err(_) => Err(H1Error::ConnectTimeout),
            Ok(Err(e)) => Err(H1Error::Connect(e)),
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                Ok(stream)
            }
        }
    }

    fn answer(
        self: &Arc<Self>,
        stream: TcpStream,
        head: Head,
        leftover: Bytes,
    ) -> Response<H1Body> {
        let Head {
            status,
            version,
            headers,
            framing,
            keep_alive,
        } = head;
        let done = matches!(framing, Framing::Done);
        let mut body = H1Body {
            stream: Some(stream),
            pool: Arc::clone(self),
            framing,
            pending: (!leftover.is_empty()).then_some(leftover),
            keep_alive,
        };
        if done {
            body.release();
        }
        let mut response = Response::new(body);
        *response.status_mut() = status;
        *response.version_mut() = version;
        *response.headers_mut() = headers;
        response
    }
}

/// How an exchange failed: `Dead` when nothing of the answer arrived (safe to send again on
/// a new connection if this one was reused), `Failed` otherwise.
enum Exchange {
    Dead(io::Error),
    Failed(H1Error),
}

/// A parsed response head.
struct Head {
    status: StatusCode,
    version: Version,
    headers: HeaderMap,
    framing: Framing,
    keep_alive: bool,
}

async fn exchange(
    stream: &mut TcpStream,
    head: &[u8],
    body: &Bytes,
) -> Result<(Head, Bytes), Exchange> {
    let sent = if body.len() <= COALESCE {
        // The body is in `head` already.
        stream.write_all(head).await
    } else {
        match stream.write_all(head).await {
            Ok(()) => stream.write_all(body).await,
            Err(e) => Err(e),
        }
    };
    sent.map_err(Exchange::Dead)?;
    let mut buf = BytesMut::new();
    loop {
        match ReadAppend(stream, &mut buf).await {
            Ok(0) if buf.is_empty() => {
                return Err(Exchange::Dead(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the engine closed the connection before answering",
                )))
            }
            Ok(0) => {
                return Err(Exchange::Failed(H1Error::Invalid(
                    "the connection closed in the middle of the answer's head".into(),
                )))
            }
            Ok(_) => {}
            Err(e) if buf.is_empty() => return Err(Exchange::Dead(e)),
            Err(e) => return Err(Exchange::Failed(H1Error::Io(e))),
        }
        match parse_head(&buf).map_err(Exchange::Failed)? {
            Some((parsed, used)) => {
                // Advanced, then frozen: slicing a frozen buffer would allocate its shared
                // header.
                buf.advance(used);
                let leftover = buf.freeze();
                return Ok((parsed, leftover));
            }
            None if buf.len() > MAX_HEAD => {
                return Err(Exchange::Failed(H1Error::Invalid(format!(
                    "the answer's head is larger than {MAX_HEAD} bytes"
                ))))
            }
            None => {}
        }
    }
}

/// One read into `buf`.
/// One read, appended to the buffer. The scratch space lives on the stack of `poll`, not in
/// the future: a buffer held across the `.await` would make every request future 16 KiB larger
/// (copied at each move), and reading into the buffer's own spare room would cost a large
/// allocation per answer; this way the buffer is allocated at the size of what arrived.
struct ReadAppend<'a>(&'a mut TcpStream, &'a mut BytesMut);

impl Future for ReadAppend<'_> {
    type Output = io::Result<usize>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let mut scratch = [MaybeUninit::<u8>::uninit(); HEAD_READ];
        let mut rb = ReadBuf::uninit(&mut scratch);
        match Pin::new(&mut *this.0).poll_read(cx, &mut rb) {
            Poll::Ready(Ok(())) => {
                this.1.extend_from_slice(rb.filled());
                Poll::Ready(Ok(rb.filled().len()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Parses a complete head (skipping `1xx` interim answers); `None` while incomplete.
fn parse_head(buf: &[u8]) -> Result<Option<(Head, usize)>, H1Error> {
    let mut start = 0;
    loop {
        // Uninitialised slots: zeroing 128 of them (4 kB) cost more than parsing the head.
        let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut []);
        let used = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut parsed,
            &buf[start..],
            &mut slots,
        ) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(H1Error::Invalid(e.to_string())),
        };
        let code = parsed.code.unwrap_or(0);
        let status =
            StatusCode::from_u16(code).map_err(|_| H1Error::Invalid(format!("status {code}")))?;
        if status.is_informational() {
            start += used;
            continue;
        }
        let version = if parsed.version == Some(0) {
            Version::HTTP_10
        } else {
            Version::HTTP_11
        };
        // Only the headers the proxy uses are kept (an answer's other headers are not relayed):
        // building every name and value cost allocations on each request.
        let mut headers = HeaderMap::new();
        let mut length: Option<u64> = None;
        let mut chunked = false;
        let mut close = version == Version::HTTP_10;
        for h in parsed.headers.iter() {
            let Some(name) = kept(h.name) else {
                continue;
            };
            if name == CONTENT_TYPE {
                let value = match h.value {
                    b"application/json" => JSON,
                    b"text/event-stream" => EVENT_STREAM,
                    other => HeaderValue::from_bytes(other)
                        .map_err(|_| H1Error::Invalid("value of header content-type".into()))?,
                };
                headers.insert(name, value);
            } else if name == RETRY_AFTER {
                if let Ok(value) = HeaderValue::from_bytes(h.value) {
                    headers.insert(name, value);
                }
            } else if name == CONTENT_LENGTH {
                let n = crate::wire::parse_u64(h.value.trim_ascii())
                    .ok_or_else(|| H1Error::Invalid("content-length".into()))?;
                if length.is_some_and(|l| l != n) {
                    return Err(H1Error::Invalid("conflicting content-length".into()));
                }
                length = Some(n);
            } else if name == TRANSFER_ENCODING {
                chunked = has_token(h.value, b"chunked");
            } else if name == CONNECTION {
                if has_token(h.value, b"close") {
                    close = true;
                } else if has_token(h.value, b"keep-alive") {
                    close = false;
                }
            }
        }
        let bodiless = status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED;
        let framing = if bodiless {
            Framing::Done
        } else if chunked {
            Framing::Chunked(Chunk::Size {
                value: 0,
                digits: 0,
                ext: false,
            })
        } else if let Some(n) = length {
            if n == 0 {
                Framing::Done
            } else {
                Framing::Length(n)
            }
        } else {
            close = true;
            Framing::UntilClose
        };
        let head = Head {
            status,
            version,
            headers,
            framing,
            keep_alive: !close,
        };
        return Ok(Some((head, start + used)));
    }
}

/// How the body's end is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// This many bytes are left.
    Length(u64),
    /// Chunked transfer encoding, in this state.
    Chunked(Chunk),
    /// The body ends when the engine closes the connection.
    UntilClose,
    /// The body has ended.
    Done,
}

/// Where the chunked decoder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Reading a chunk-size line (hex digits, then an optional `;extension`).
    Size {
        value: u64,
        digits: u8,
        ext: bool,
    },
    /// Expecting the size line's `\n`.
    SizeLf {
        value: u64,
    },
    /// Inside a chunk's data: this many bytes are left.
    Data(u64),
    /// Expecting the `\r\n` after a chunk's data.
    DataCr,
    DataLf,
    /// At the start of a trailer line (or of the final empty line).
    TrailerStart,
    /// Inside a trailer line.
    Trailer,
    /// Expecting the final `\n`.
    FinalLf,
}

/// Decodes chunked data from `input`, appending the data's ranges to `out`. Returns the new
/// state, `None` when the body ended (bytes after the end are ignored).
fn decode_chunked(
    mut state: Chunk,
    input: &[u8],
    out: &mut Vec<(usize, usize)>,
) -> Result<Option<Chunk>, H1Error> {
    let bad = |what: &str| Err(H1Error::Invalid(format!("chunked encoding: {what}")));
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        state = match state {
            Chunk::Size { digits: 0, .. } if b == b'\r' || b == b'\n' => {
                return bad("a chunk size is missing");
            }
            Chunk::Size { value, digits, ext } => match b {
                b'\r' => Chunk::SizeLf { value },
                b'\n' => after_size(value),
                _ if ext => Chunk::Size { value, digits, ext },
                b';' | b' ' | b'\t' if digits > 0 => Chunk::Size {
                    value,
                    digits,
                    ext: true,
                },
                _ => {
                    let Some(d) = (b as char).to_digit(16) else {
                        return bad("a chunk size is not hexadecimal");
                    };
                    if digits >= 15 {
                        return bad("a chunk size is too large");
                    }
                    Chunk::Size {
                        value: value * 16 + u64::from(d),
                        digits: digits + 1,
                        ext,
                    }
                }
            },
            Chunk::SizeLf { value } if b == b'\n' => after_size(value),
            Chunk::SizeLf { .. } => return bad("a chunk size line does not end in CRLF"),
            Chunk::Data(left) => {
                let take = (input.len() - i).min(usize::try_from(left).unwrap_or(usize::MAX));
                out.push((i, i + take));
                i += take;
                let left = left - take as u64;
                state = if left == 0 {
                    Chunk::DataCr
                } else {
                    Chunk::Data(left)
                };
                continue;
            }
            Chunk::DataCr if b == b'\r' => Chunk::DataLf,
            Chunk::DataCr | Chunk::DataLf if b == b'\n' => Chunk::Size {
                value: 0,
                digits: 0,
                ext: false,
            },
            Chunk::DataCr | Chunk::DataLf => return bad("chunk data is not followed by CRLF"),
            Chunk::TrailerStart if b == b'\r' => Chunk::FinalLf,
            Chunk::TrailerStart if b == b'\n' => return Ok(None),
            Chunk::TrailerStart | Chunk::Trailer if b == b'\n' => Chunk::TrailerStart,
            Chunk::TrailerStart | Chunk::Trailer => Chunk::Trailer,
            Chunk::FinalLf if b == b'\n' => return Ok(None),
            Chunk::FinalLf => return bad("the last chunk does not end in CRLF"),
        };
        i += 1;
    }
    Ok(Some(state))
}

fn after_size(value: u64) -> Chunk {
    if value == 0 {
        Chunk::TrailerStart
    } else {
        Chunk::Data(value)
    }
}

/// An answer's body, read from its connection as the client's side asks for it. At its end
/// the connection goes back to the pool (when the engine keeps it alive); dropped before, it
/// closes the connection, which tells the engine to stop generating.
#[derive(Debug)]
pub struct H1Body {
    stream: Option<TcpStream>,
    pool: Arc<H1Pool>,
    framing: Framing,
    /// Bytes read but not decoded yet (what came with the head).
    pending: Option<Bytes>,
    keep_alive: bool,
}

impl H1Body {
    fn release(&mut self) {
        if let Some(stream) = self.stream.take() {
            if self.keep_alive && self.pending.is_none() {
                self.pool.checkin(stream);
            }
        }
    }

    /// The whole body at once when it came with the head (a `Content-Length` body all read):
    /// what two polls of the body would give, without them. `None` when more is to be read.
    pub fn take_whole(&mut self) -> Option<Bytes> {
        let Framing::Length(left) = self.framing else {
            return None;
        };
        if (self.pending.as_ref().map_or(0, Bytes::len) as u64) < left {
            return None;
        }
        let input = self.pending.take()?;
        let data = self.take_length(input, left);
        self.release();
        Some(data)
    }

    /// The part of `input` that belongs to a body with `left` bytes to go.
    fn take_length(&mut self, input: Bytes, left: u64) -> Bytes {
        let take = input.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let left = left - take as u64;
        if take < input.len() {
            // More than content-length said: do not reuse the connection.
            self.keep_alive = false;
        }
        self.framing = if left == 0 {
            Framing::Done
        } else {
            Framing::Length(left)
        };
        if take == input.len() {
            // All of it (the usual case): moved, since even a whole-range slice is a clone,
            // and a clone of a buffer read from the socket allocates its shared header.
            return input;
        }
        input.slice(..take)
    }

    /// Decodes `input` by the framing; returns the data it holds.
    fn decode(&mut self, input: Bytes) -> Result<Bytes, H1Error> {
        match self.framing {
            Framing::Length(left) => Ok(self.take_length(input, left)),
            Framing::UntilClose => Ok(input),
            Framing::Done => {
                self.keep_alive = false;
                Ok(Bytes::new())
            }
            Framing::Chunked(state) => {
                let mut ranges = Vec::new();
                let next = decode_chunked(state, &input, &mut ranges)?;
                self.framing = match next {
                    Some(s) => Framing::Chunked(s),
                    None => Framing::Done,
                };
                Ok(match ranges.as_slice() {
                    [] => Bytes::new(),
                    [(a, b)] => input.slice(*a..*b),
                    many => {
                        let mut joined =
                            BytesMut::with_capacity(many.iter().map(|(a, b)| b - a).sum::<usize>());
                        for (a, b) in many {
                            joined.extend_from_slice(&input[*a..*b]);
                        }
                        joined.freeze()
                    }
                })
            }
        }
    }
}

impl http_body::Body for H1Body {
    type Data = Bytes;
    type Error = H1Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, H1Error>>> {
        let this = &mut *self;
        loop {
            if let Some(input) = this.pending.take() {
                let data = match this.decode(input) {
                    Ok(d) => d,
                    Err(e) => {
                        this.stream = None;
                        this.framing = Framing::Done;
                        return Poll::Ready(Some(Err(e)));
                    }
                };
                if this.framing == Framing::Done {
                    this.release();
                }
                if !data.is_empty() {
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                continue;
            }
            if this.framing == Framing::Done {
                this.release();
                return Poll::Ready(None);
            }
            let Some(stream) = this.stream.as_mut() else {
                return Poll::Ready(None);
            };
            // Uninitialised: zeroing 32 KiB on every read would cost more than the read.
            let mut buf = [MaybeUninit::<u8>::uninit(); READ_SIZE];
            let mut rb = ReadBuf::uninit(&mut buf);
            match Pin::new(stream).poll_read(cx, &mut rb) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => {
                    this.stream = None;
                    this.framing = Framing::Done;
                    return Poll::Ready(Some(Err(H1Error::Io(e))));
                }
                Poll::Ready(Ok(())) if rb.filled().is_empty() => {
                    this.stream = None;
                    if this.framing == Framing::UntilClose {
                        this.framing = Framing::Done;
                        return Poll::Ready(None);
                    }
                    this.framing = Framing::Done;
                    return Poll::Ready(Some(Err(H1Error::Io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the engine closed the connection before the answer's end",
                    )))));
                }
                Poll::Ready(Ok(())) => {
                    this.pending = Some(Bytes::copy_from_slice(rb.filled()));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.framing == Framing::Done && self.pending.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Length(n) if self.pending.is_none() => SizeHint::with_exact(n),
            Framing::Done if self.pending.is_none() => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8], split: usize) -> Result<(Vec<u8>, bool), H1Error> {
        let mut state = Chunk::Size {
            value: 0,
            digits: 0,
            ext: false,
        };
        let mut data = Vec::new();
        for part in [&input[..split], &input[split..]] {
            let mut ranges = Vec::new();
            match decode_chunked(state, part, &mut ranges)? {
                Some(s) => state = s,
                None => {
                    for (a, b) in ranges {
                        data.extend_from_slice(&part[a..b]);
                    }
                    return Ok((data, true));
                }
            }
            for (a, b) in ranges {
                data.extend_from_slice(&part[a..b]);
            }
        }
        Ok((data, false))
    }

    #[test]
    fn chunked_bodies_decode_whatever_the_read_boundaries() {
        let body = b"6\r\ndata: \r\n10;name=x\r\n{\"a\":1}\n\n0123456\r\n0\r\ntrailer: y\r\n\r\n";
        for split in 0..=body.len() {
            let (data, ended) = decode_all(body, split).unwrap();
            assert_eq!(data, b"data: {\"a\":1}\n\n0123456", "split at {split}");
            assert!(ended, "split at {split}");
        }
        let (data, ended) = decode_all(b"3\r\nabc\r\n", 2).unwrap();
        assert_eq!((data.as_slice(), ended), (&b"abc"[..], false));
    }

    #[test]
    fn broken_chunked_bodies_are_errors() {
        assert!(decode_all(b"zz\r\nabc", 1).is_err());
        assert!(decode_all(b"3\r\nabcX\r\n", 1).is_err());
        assert!(decode_all(b"fffffffffffffffff\r\n", 3).is_err());
        assert!(decode_all(b"\r\nabc", 1).is_err());
    }

    #[test]
    fn heads_set_the_framing() {
        let (head, used) = parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello")
            .unwrap()
            .unwrap();
        assert_eq!(
            (head.framing, head.keep_alive, used),
            (Framing::Length(5), true, 38)
        );
        let (head, _) = parse_head(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(head.status, StatusCode::OK);
        assert!(matches!(head.framing, Framing::Chunked(_)));
        assert!(!head.keep_alive);
        let (head, _) = parse_head(b"HTTP/1.0 200 OK\r\n\r\n").unwrap().unwrap();
        assert_eq!(
            (head.framing, head.keep_alive),
            (Framing::UntilClose, false)
        );
        assert!(parse_head(b"HTTP/1.1 200 OK\r\ncontent-le")
            .unwrap()
            .is_none());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n").is_err());
    }
}
