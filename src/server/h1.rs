//! One client connection spoken as HTTP/1.1 (or 1.0) by the proxy's own loop.
//!
//! Why not hyper's server here: on the proxy's hot path (a small POST in, a small JSON answer
//! out) hyper's connection machinery was about a third of the proxy's user-space instructions,
//! and it allocates a fresh read buffer for each request because it reads ahead while the
//! previous head still shares the buffer (figures in docs/benchmarks.md). This loop reads into
//! one buffer that heads and small bodies are sliced from, writes each answer head and its
//! first chunk in one write, and keeps what RFC 9112 asks of a server:
//!
//! - keep-alive by version and `Connection`, pipelined requests answered in order;
//! - request bodies by `Content-Length` or chunked coding (both at once, or a coding other than
//!   chunked last, is refused: the framing would be ambiguous); `Expect: 100-continue` answered
//!   when the handler first reads the body;
//! - answers framed by their length when it is known, chunked otherwise (close-delimited for
//!   HTTP/1.0); no body for HEAD, 1xx, 204 and 304; a `Date` header;
//! - a client that hangs up while its request is in flight cancels it (the engine request is
//!   dropped with it), like hyper's default;
//! - limits: `--header-read-timeout` for a head (from accept for the first request, from its
//!   first byte for later ones), `--keep-alive-timeout` for an idle connection,
//!   `--max-headers` and `--max-header-bytes`; each refusal is an Azure error body.
//!
//! A connection that opens with the HTTP/2 preface is handed back to the caller for hyper's
//! HTTP/2 server, with the bytes read so far.

use std::future::{poll_fn, Future};
use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use axum::response::{IntoResponse, Response};
use bytes::{Buf, Bytes, BytesMut};
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri, Version};
use http_body::Body as _;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

use super::body::{Mailbox, RequestBody};
use super::Limits;
use crate::error::ApiError;
use crate::routes::App;
use crate::wire::{decimal, eq_lower, has_token, hex};

/// What a client sends first on an HTTP/2 connection with prior knowledge.
pub(super) const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Free space ensured in the read buffer before each read.
const READ_SPACE: usize = 8 * 1024;
/// Free space ensured while a large request body streams in.
const BODY_READ_SPACE: usize = 64 * 1024;
/// `Content-Length` bodies up to this size are read into one buffer of their size and handed
/// over whole: the handler gets one piece to check, with no copy into a collecting buffer and
/// no regrowth of one (page faults and copies that cost a 80 kB body a fifth of its time).
const WHOLE_BODY: u64 = 16 << 20;
/// Buffered answer bytes that are written out even if more are ready.
const WRITE_HIGH: usize = 64 * 1024;
/// Answer chunks at least this large are written from their own buffer, not copied.
const COPY_LIMIT: usize = 16 * 1024;
/// Headers parsed into a buffer on the stack; more (a larger `--max-headers`) use the heap.
const STACK_HEADERS: usize = 100;
/// After refusing a request whose body was not read, the body is read and dropped for at most
/// this long (and this many bytes) before the connection closes, so that the client reads the
/// answer instead of a reset.
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);
const LINGER_BYTES: usize = 1 << 20;
/// Longest chunk-size line (size, extensions, CRLF) accepted in a chunked request body.
const MAX_CHUNK_LINE: usize = 4096;

/// How a connection ended.
pub(super) enum Outcome {
    /// Closed (by either side, by a limit or by shutdown).
    Closed,
    /// The client opened with the HTTP/2 preface: serve it as HTTP/2, with the bytes read so
    /// far, the same app and the same shutdown signal.
    Http2 {
        io: TcpStream,
        read: Bytes,
        app: App,
        stop: watch::Receiver<bool>,
    },
}

/// One accepted connection.
pub(super) struct Connection {
    io: TcpStream,
    rbuf: BytesMut,
    wbuf: Vec<u8>,
    app: App,
    limits: Limits,
    stop: watch::Receiver<bool>,
    /// One timer for the connection, re-armed only when a deadline moves earlier than it.
    timer: Pin<Box<Sleep>>,
    /// Where each header of the head being parsed lies in the read buffer.
    spans: Vec<HeaderSpan>,
}

#[derive(Clone, Copy)]
struct HeaderSpan {
    name: (usize, usize),
    value: (usize, usize),
}

/// What the connection needs to know about a request beyond what the handler gets.
struct Exchange {
    head_only: bool,
    version: Version,
    keep_alive: bool,
}

/// A request header's name: the ones Azure clients send on every request are matched a word at
/// a time (`HeaderName::from_bytes` lower-cases the name into a buffer and looks it up, about
/// 120 instructions a header, and copies a name it does not know, such as `api-key`, into an
/// allocation of its own).
fn header_name(name: &[u8]) -> Result<HeaderName, http::header::InvalidHeaderName> {
    use crate::extract::API_KEY;
    use crate::telemetry::{CLIENT_REQUEST_ID, REQUEST_ID};
    use crate::translate::extra_params::EXTRA_PARAMETERS;
    // httparse has checked that a name is token characters, as `eq_lower` needs.
    let is = |lower: &str, header: HeaderName| eq_lower(name, lower.as_bytes()).then_some(header);
    let known = match name.len() {
        4 => is("host", header::HOST),
        6 => is("accept", header::ACCEPT),
        7 => is("api-key", API_KEY),
        10 => is("user-agent", header::USER_AGENT).or_else(|| is("connection", header::CONNECTION)),
        12 => is("content-type", header::CONTENT_TYPE).or_else(|| is("x-request-id", REQUEST_ID)),
        13 => is("authorization", header::AUTHORIZATION),
        14 => is("content-length", header::CONTENT_LENGTH),
        15 => is("accept-encoding", header::ACCEPT_ENCODING),
        16 => is("extra-parameters", EXTRA_PARAMETERS),
        22 => is("x-ms-client-request-id", CLIENT_REQUEST_ID),
        _ => None,
    };
    match known {
        Some(header) => Ok(header),
        None => HeaderName::from_bytes(name),
    }
}

/// What the names of the OpenAI SDKs' own request headers (Python, Node, .NET, Go) begin with:
/// platform, retries, timeout, for OpenAI's servers; nine on every request of openai for Python.
const SDK_PREFIX: &[u8] = b"x-stainless-";

/// Whether a request header is one of the SDKs' own (`SDK_PREFIX`), which nothing in the proxy
/// reads or forwards: such headers are checked and counted like any other but not put in the
/// request's header map (hashing and storing them was about 2,500 instructions a request).
fn is_sdk_header(name: &[u8]) -> bool {
    name.get(..SDK_PREFIX.len())
        .is_some_and(|prefix| eq_lower(prefix, SDK_PREFIX))
}

/// A request header's value, which httparse has checked: it accepts tab, space to `~` and
/// 0x80 to 0xFF, all of which `HeaderValue` accepts too (a test checks every byte), so checking
/// each byte again (about 70 instructions a header) is skipped.
fn header_value(value: Bytes) -> HeaderValue {
    // SAFETY: not a memory-safety matter: `from_maybe_shared_unchecked` only skips the byte
    // check, whose rule httparse's is a subset of (see above; debug builds check again).
    unsafe { HeaderValue::from_maybe_shared_unchecked(value) }
}

/// How the rest of a request body is read from the connection.
enum Reading {
    /// Nothing (left) to read.
    Done,
    /// A streamed body: bytes left by `Content-Length`, or chunked.
    Body {
        mailbox: Arc<Mailbox>,
        decoder: Decoder,
        /// Bytes of the `100 Continue` line still to write before reading.
        continue_left: usize,
    },
    /// The handler dropped the body, or it was broken: the connection closes after the answer.
    Abandoned,
}

impl Reading {
    /// `Done` once a declared length is all read (the handler need not poll again to see the
    /// end), `Abandoned` once the handler dropped an unfinished body.
    fn settle(&mut self) {
        if let Reading::Body {
            mailbox, decoder, ..
        } = self
        {
            if matches!(
                decoder,
                Decoder::Length(0) | Decoder::Chunked(Chunked::Done)
            ) {
                mailbox.end(None);
                *self = Reading::Done;
            } else if Arc::strong_count(mailbox) == 1 {
                *self = Reading::Abandoned;
            }
        }
    }
}

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// A refused head: answered (when there is anyone to answer) and the connection closed.
enum HeadError {
    /// The client went away or broke the connection mid-head: nothing to answer.
    Gone,
    /// An answer to write before closing.
    Refuse(ApiError),
}

/// The client hung up (or the connection broke) while its request was in flight.
struct Gone;

impl Connection {
    pub(super) fn new(
        io: TcpStream,
        app: App,
        limits: Limits,
        stop: watch::Receiver<bool>,
    ) -> Self {
        let timer = Box::pin(tokio::time::sleep_until(
            Instant::now() + limits.header_read_timeout,
        ));
        Connection {
            io,
            rbuf: BytesMut::with_capacity(READ_SPACE),
            wbuf: Vec::with_capacity(1024),
            app,
            limits,
            stop,
            timer,
            spans: Vec::new(),
        }
    }

    /// Serves requests until the connection closes.
    pub(super) async fn run(mut self) -> Outcome {
        let mut first = true;
        loop {
            let request = match self.read_head(first).await {
                Ok(Head::Request(r)) => r,
                Ok(Head::Idle) => return Outcome::Closed,
                Ok(Head::Http2) => {
                    let read = self.rbuf.split().freeze();
                    return Outcome::Http2 {
                        io: self.io,
                        read,
                        app: self.app,
                        stop: self.stop,
                    };
                }
                Err(HeadError::Gone) => return Outcome::Closed,
                Err(HeadError::Refuse(e)) => {
                    let exchange = Exchange {
                        head_only: false,
                        version: Version::HTTP_11,
                        keep_alive: false,
                    };
                    let mut reading = Reading::Abandoned;
                    let _ = self
                        .respond(e.into_response(), &exchange, &mut reading)
                        .await;
                    self.linger().await;
                    return Outcome::Closed;
                }
            };
            first = false;
            let (request, exchange, mut reading) = request;
            let mut call = self.app.call_boxed(request);
            let answer = poll_fn(|cx| {
                if let Poll::Ready(answer) = call.as_mut().poll(cx) {
                    return Poll::Ready(Ok(answer));
                }
                self.pump(cx, &mut reading).map(Err)
            })
            .await;
            drop(call);
            let Ok(Ok(response)) = answer else {
                // The client left: dropping the handler's future cancels its engine request.
                return Outcome::Closed;
            };
            match self.respond(response, &exchange, &mut reading).await {
                Ok(true) => {}
                Ok(false) => {
                    if !matches!(reading, Reading::Done) {
                        self.linger().await;
                    }
                    return Outcome::Closed;
                }
                Err(Gone) => return Outcome::Closed,
            }
        }
    }

    /// Waits for the next request head and parses it.
    async fn read_head(&mut self, first: bool) -> Result<Head, HeadError> {
        let now = Instant::now();
        // A new connection gets the head timeout at once; a kept-alive one may idle first.
        let mut head_deadline = first.then(|| now + self.limits.header_read_timeout);
        let idle_deadline = now + self.limits.keep_alive_timeout;
        loop {
            // Empty lines before a request line are ignored (RFC 9112, 2.2): some clients send
            // a CRLF after a body.
            while self.rbuf.starts_with(b"\n") || self.rbuf.starts_with(b"\r\n") {
                let n = if self.rbuf[0] == b'\n' { 1 } else { 2 };
                self.rbuf.advance(n);
            }
            if !self.rbuf.is_empty() {
                let n = self.rbuf.len().min(H2_PREFACE.len());
                let preface = first && self.rbuf[..n] == H2_PREFACE[..n];
                if preface && n == H2_PREFACE.len() {
                    return Ok(Head::Http2);
                }
                // (A prefix of the preface waits for the rest.)
                if !preface {
                    if let Some(request) = self.parse_head()? {
                        return Ok(Head::Request(request));
                    }
                }
                if self.rbuf.len() >= self.limits.max_header_bytes {
                    return Err(HeadError::Refuse(self.too_large()));
                }
                head_deadline
                    .get_or_insert_with(|| Instant::now() + self.limits.header_read_timeout);
            }
            match self.read_more(head_deadline, idle_deadline).await {
                Ok(()) => {}
                Err(Wait::Closed) => {
                    return if self.rbuf.is_empty() {
                        Ok(Head::Idle)
                    } else {
                        Err(HeadError::Gone)
                    };
                }
                Err(Wait::Stopped) => return Ok(Head::Idle),
                Err(Wait::TimedOut) => {
                    return if self.rbuf.is_empty() {
                        Ok(Head::Idle)
                    } else {
                        Err(HeadError::Refuse(ApiError::HeadTimeout {
                            seconds: self.limits.header_read_timeout.as_secs_f64(),
                        }))
                    };
                }
            }
        }
    }

    /// Reads more of a head, bounded by the head deadline (once one runs) or the idle one;
    /// an idle connection also ends on shutdown.
    async fn read_more(
        &mut self,
        head_deadline: Option<Instant>,
        idle_deadline: Instant,
    ) -> Result<(), Wait> {
        let deadline = head_deadline.unwrap_or(idle_deadline);
        if self.timer.deadline() > deadline {
            self.timer.as_mut().reset(deadline);
        }
        let idle = self.rbuf.is_empty();
        if idle && *self.stop.borrow() {
            return Err(Wait::Stopped);
        }
        if idle {
            rewind(&mut self.rbuf);
        }
        reserve(&mut self.rbuf, READ_SPACE);
        let Connection {
            io,
            rbuf,
            stop,
            timer,
            ..
        } = self;
        let mut stopped = std::pin::pin!(stop.changed());
        poll_fn(|cx| {
            match poll_read_buf(io, cx, rbuf) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(Err(Wait::Closed)),
                Poll::Ready(Ok(_)) => return Poll::Ready(Ok(())),
                Poll::Pending => {}
            }
            if idle && stopped.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(Wait::Stopped));
            }
            while timer.as_mut().poll(cx).is_ready() {
                if Instant::now() >= deadline {
                    return Poll::Ready(Err(Wait::TimedOut));
                }
                // The shared timer was armed for an earlier deadline: re-arm it for this one.
                timer.as_mut().reset(deadline);
            }
            Poll::Pending
        })
        .await
    }

    fn too_large(&self) -> ApiError {
        ApiError::HeadersTooLarge {
            max_headers: self.limits.max_headers,
            max_bytes: self.limits.max_header_bytes,
        }
    }

    /// Parses a complete head at the front of the read buffer into a request; `None` while the
    /// head is incomplete.
    fn parse_head(&mut self) -> Result<Option<Parsed>, HeadError> {
        let max = self.limits.max_headers;
        let mut stack = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; STACK_HEADERS];
        let mut heap = Vec::new();
        let slots: &mut [MaybeUninit<httparse::Header<'_>>] = if max <= STACK_HEADERS {
            &mut stack[..max]
        } else {
            heap.resize_with(max, MaybeUninit::uninit);
            &mut heap[..]
        };
        let buf: &[u8] = &self.rbuf;
        let mut parsed = httparse::Request::new(&mut []);
        let len = match parsed.parse_with_uninit_headers(buf, slots) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => {
                return Err(HeadError::Refuse(self.too_large()))
            }
            Err(_) => return Err(malformed("the request line or a header is malformed")),
        };
        if len > self.limits.max_header_bytes {
            return Err(HeadError::Refuse(self.too_large()));
        }
        let base = buf.as_ptr() as usize;
        let span = |s: &[u8]| {
            let start = s.as_ptr() as usize - base;
            (start, start + s.len())
        };
        let method = match parsed.method {
            Some(m) => span(m.as_bytes()),
            None => return Err(malformed("no method")),
        };
        let target = match parsed.path {
            Some(p) => span(p.as_bytes()),
            None => return Err(malformed("no request target")),
        };
        let version = if parsed.version == Some(0) {
            Version::HTTP_10
        } else {
            Version::HTTP_11
        };
        self.spans.clear();
        for h in parsed.headers.iter() {
            self.spans.push(HeaderSpan {
                name: span(h.name.as_bytes()),
                value: span(h.value),
            });
        }
        drop(heap);
        let head = self.rbuf.split_to(len).freeze();
        let method = Method::from_bytes(&head[method.0..method.1])
            .map_err(|_| malformed("the method is not a token"))?;
        let uri = Uri::from_maybe_shared(head.slice(target.0..target.1))
            .map_err(|_| malformed("the request target is not a valid URI"))?;
        // Room for the headers the proxy adds (the request id) without a rehash.
        let mut headers = HeaderMap::with_capacity(self.spans.len() + 2);
        let mut framing = Framing::None;
        let (mut said_close, mut said_keep_alive) = (false, false);
        let mut expect_continue = false;
        for s in &self.spans {
            let raw = &head[s.name.0..s.name.1];
            if is_sdk_header(raw) {
                continue;
            }
            let name = header_name(raw).map_err(|_| malformed("a header name is not a token"))?;
            let value = header_value(head.slice(s.value.0..s.value.1));
            if name == header::CONTENT_LENGTH {
                let n = content_length(value.as_bytes())
                    .ok_or_else(|| malformed("Content-Length is not a number"))?;
                framing = match framing {
                    Framing::None => Framing::Length(n),
                    Framing::Length(m) if m == n => framing,
                    Framing::Length(_) => {
                        return Err(malformed("Content-Length is given twice, differently"))
                    }
                    Framing::Chunked => {
                        return Err(malformed("both Content-Length and Transfer-Encoding"))
                    }
                };
            } else if name == header::TRANSFER_ENCODING {
                if version == Version::HTTP_10 {
                    return Err(malformed("Transfer-Encoding in an HTTP/1.0 request"));
                }
                if matches!(framing, Framing::Length(_)) {
                    return Err(malformed("both Content-Length and Transfer-Encoding"));
                }
                // The last coding (of the last such header) must be chunked.
                let last = value
                    .as_bytes()
                    .rsplit(|b| *b == b',')
                    .next()
                    .unwrap_or_default();
                if !eq_lower(last.trim_ascii(), b"chunked") {
                    return Err(malformed("a Transfer-Encoding other than chunked"));
                }
                framing = Framing::Chunked;
            } else if name == header::CONNECTION {
                said_close |= has_token(value.as_bytes(), b"close");
                said_keep_alive |= has_token(value.as_bytes(), b"keep-alive");
            } else if name == header::EXPECT {
                expect_continue =
                    version == Version::HTTP_11 && eq_lower(value.as_bytes(), b"100-continue");
            }
            headers.append(name, value);
        }
        // Only a client still holding its body back waits for the go-ahead.
        let continue_left = if expect_continue && self.rbuf.is_empty() {
            CONTINUE.len()
        } else {
            0
        };
        let streamed = |length, decoder| {
            let (body, mailbox) = RequestBody::streamed(length);
            let reading = Reading::Body {
                mailbox,
                decoder,
                continue_left,
            };
            (body, reading)
        };
        let (body, reading) = match framing {
            Framing::None | Framing::Length(0) => (RequestBody::empty(), Reading::Done),
            Framing::Length(n) if n <= self.rbuf.len() as u64 => {
                // `n` fits in the buffer, so in usize.
                let body = self.rbuf.split_to(n as usize).freeze();
                (RequestBody::whole(body), Reading::Done)
            }
            Framing::Length(n) => streamed(Some(n), Decoder::Length(n)),
            Framing::Chunked => streamed(None, Decoder::Chunked(Chunked::Size)),
        };
        let mut request = Request::new(body);
        *request.method_mut() = method;
        *request.uri_mut() = uri;
        *request.version_mut() = version;
        *request.headers_mut() = headers;
        let exchange = Exchange {
            head_only: request.method() == Method::HEAD,
            version,
            keep_alive: !said_close && (version == Version::HTTP_11 || said_keep_alive),
        };
        Ok(Some((request, exchange, reading)))
    }

    /// While a request is in flight: feeds its body to the handler as asked, and otherwise
    /// watches the connection so that a client hanging up cancels the request. Ready only
    /// when the client is gone.
    fn pump(&mut self, cx: &mut Context<'_>, reading: &mut Reading) -> Poll<Gone> {
        loop {
            if let Reading::Body {
                mailbox,
                decoder,
                continue_left,
            } = reading
            {
                if Arc::strong_count(mailbox) == 1 {
                    // The handler dropped the body unread.
                    *reading = Reading::Abandoned;
                    continue;
                }
                if !mailbox.wanted(cx) {
                    return Poll::Pending;
                }
                while *continue_left > 0 {
                    let from = CONTINUE.len() - *continue_left;
                    match Pin::new(&mut self.io).poll_write(cx, &CONTINUE[from..]) {
                        Poll::Ready(Ok(n)) if n > 0 => *continue_left -= n,
                        Poll::Ready(_) => return Poll::Ready(Gone),
                        Poll::Pending => return Poll::Pending,
                    }
                }
                match decoder.decode(&mut self.rbuf) {
                    Ok(Decoded::Chunk(chunk)) => {
                        mailbox.deliver(chunk);
                        reading.settle();
                        continue;
                    }
                    Ok(Decoded::End) => {
                        mailbox.end(None);
                        *reading = Reading::Done;
                        continue;
                    }
                    Ok(Decoded::More) => {}
                    Err(e) => {
                        mailbox.end(Some(e));
                        *reading = Reading::Abandoned;
                        continue;
                    }
                }
                match decoder.whole_left(&self.rbuf) {
                    Some(left) if self.rbuf.capacity() - self.rbuf.len() < left => {
                        self.rbuf.reserve(left);
                    }
                    Some(_) => {}
                    None => reserve(&mut self.rbuf, BODY_READ_SPACE),
                }
                match poll_read_buf(&mut self.io, cx, &mut self.rbuf) {
                    Poll::Ready(Ok(n)) if n > 0 => continue,
                    Poll::Ready(_) => {
                        mailbox.end(Some("the client closed the connection mid-body"));
                        return Poll::Ready(Gone);
                    }
                    Poll::Pending => return Poll::Pending,
                }
            }
            // No body to read: read ahead (a pipelined request) only up to one head's worth,
            // which is also how a hang-up is seen.
            if matches!(reading, Reading::Abandoned)
                || self.rbuf.len() >= self.limits.max_header_bytes
            {
                return Poll::Pending;
            }
            reserve(&mut self.rbuf, READ_SPACE);
            return match poll_read_buf(&mut self.io, cx, &mut self.rbuf) {
                Poll::Ready(Ok(n)) if n > 0 => continue,
                Poll::Ready(_) => Poll::Ready(Gone),
                Poll::Pending => Poll::Pending,
            };
        }
    }

    /// Writes an answer. `Ok(true)` when the connection may serve another request.
    async fn respond(
        &mut self,
        response: Response,
        exchange: &Exchange,
        reading: &mut Reading,
    ) -> Result<bool, Gone> {
        reading.settle();
        let (parts, mut body) = response.into_parts();
        let status = parts.status;
        let no_body = exchange.head_only
            || status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED;
        let draining = *self.stop.borrow();
        let mut keep_alive = exchange.keep_alive
            && !draining
            && matches!(reading, Reading::Done)
            && !parts
                .headers
                .get_all(header::CONNECTION)
                .iter()
                .any(|v| has_token(v.as_bytes(), b"close"));
        let framing = if no_body {
            Framing::None
        } else if let Some(n) = body.size_hint().exact() {
            Framing::Length(n)
        } else if let Some(n) = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| content_length(v.as_bytes()))
        {
            Framing::Length(n)
        } else if exchange.version == Version::HTTP_11 {
            Framing::Chunked
        } else {
            keep_alive = false;
            Framing::None
        };
        let w = &mut self.wbuf;
        w.clear();
        w.extend_from_slice(b"HTTP/1.1 ");
        w.extend_from_slice(status.as_str().as_bytes());
        w.push(b' ');
        w.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
        w.extend_from_slice(b"\r\n");
        let mut dated = false;
        for (name, value) in &parts.headers {
            if name == header::CONNECTION
                || name == header::TRANSFER_ENCODING
                || name == "keep-alive"
                || (name == header::CONTENT_LENGTH && !exchange.head_only)
            {
                continue;
            }
            dated |= name == header::DATE;
            w.extend_from_slice(name.as_str().as_bytes());
            w.extend_from_slice(b": ");
            w.extend_from_slice(value.as_bytes());
            w.extend_from_slice(b"\r\n");
        }
        if !dated {
            w.extend_from_slice(b"date: ");
            push_date(w);
            w.extend_from_slice(b"\r\n");
        }
        match framing {
            Framing::Length(n) if !exchange.head_only => {
                w.extend_from_slice(b"content-length: ");
                w.extend_from_slice(decimal(n, &mut [0; 20]));
                w.extend_from_slice(b"\r\n");
            }
            Framing::Chunked => w.extend_from_slice(b"transfer-encoding: chunked\r\n"),
            _ => {}
        }
        if !keep_alive {
            w.extend_from_slice(b"connection: close\r\n");
        } else if exchange.version == Version::HTTP_10 {
            w.extend_from_slice(b"connection: keep-alive\r\n");
        }
        w.extend_from_slice(b"\r\n");
        if no_body {
            self.flush().await?;
            return Ok(keep_alive);
        }
        let declared = match framing {
            Framing::Length(n) => Some(n),
            _ => None,
        };
        let chunked = matches!(framing, Framing::Chunked);
        let mut written: u64 = 0;
        loop {
            let next = poll_fn(|cx| {
                match Pin::new(&mut body).poll_frame(cx) {
                    Poll::Ready(frame) => return Poll::Ready(Ok(Some(frame))),
                    Poll::Pending if !self.wbuf.is_empty() => return Poll::Ready(Ok(None)),
                    Poll::Pending => {}
                }
                self.pump(cx, reading).map(Err)
            })
            .await;
            match next {
                Err(Gone) => return Err(Gone),
                // Nothing ready yet: send what is buffered, then wait.
                Ok(None) => self.flush().await?,
                Ok(Some(None)) => break,
                Ok(Some(Some(Err(_)))) => {
                    // The answer broke mid-way (e.g. the engine hung up): the client must not
                    // take it for whole, so no last chunk and no keep-alive.
                    let _ = self.flush().await;
                    return Ok(false);
                }
                Ok(Some(Some(Ok(frame)))) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    if data.is_empty() {
                        continue;
                    }
                    written += data.len() as u64;
                    if declared.is_some_and(|n| written > n) {
                        // More than the length announced: stop at what was announced.
                        let _ = self.flush().await;
                        return Ok(false);
                    }
                    self.push_data(data, chunked).await?;
                }
            }
        }
        if chunked {
            self.wbuf.extend_from_slice(b"0\r\n\r\n");
        }
        self.flush().await?;
        Ok(keep_alive && declared.is_none_or(|n| n == written))
    }

    /// Adds one chunk of an answer body: copied into the write buffer when small, written
    /// from its own buffer when large.
    async fn push_data(&mut self, data: Bytes, chunked: bool) -> Result<(), Gone> {
        if chunked {
            self.wbuf
                .extend_from_slice(hex(data.len() as u64, &mut [0; 16]));
            self.wbuf.extend_from_slice(b"\r\n");
        }
        if data.len() < COPY_LIMIT {
            self.wbuf.extend_from_slice(&data);
            if chunked {
                self.wbuf.extend_from_slice(b"\r\n");
            }
            if self.wbuf.len() >= WRITE_HIGH {
                self.flush().await?;
            }
            return Ok(());
        }
        let tail: &[u8] = if chunked { b"\r\n" } else { b"" };
        let mut parts = [&self.wbuf[..], &data[..], tail];
        write_all_vectored(&mut self.io, &mut parts).await?;
        self.wbuf.clear();
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), Gone> {
        if !self.wbuf.is_empty() {
            self.io.write_all(&self.wbuf).await.map_err(|_| Gone)?;
            self.wbuf.clear();
        }
        Ok(())
    }

    /// Closes after an answer the client may still be sending a body for: stops writing, then
    /// reads and drops what arrives for a short while, so that closing does not reset the
    /// connection before the client has read the answer.
    async fn linger(&mut self) {
        let _ = self.io.shutdown().await;
        let mut dropped = 0;
        let until = Instant::now() + LINGER;
        while dropped < LINGER_BYTES {
            self.rbuf.clear();
            reserve(&mut self.rbuf, READ_SPACE);
            let read = tokio::time::timeout_at(
                until,
                poll_fn(|cx| poll_read_buf(&mut self.io, cx, &mut self.rbuf)),
            );
            match read.await {
                Ok(Ok(n)) if n > 0 => dropped += n,
                _ => return,
            }
        }
    }
}

/// A parsed request, what the connection keeps about it, and how its body is read.
type Parsed = (Request<RequestBody>, Exchange, Reading);

/// A head's outcome.
// Built and moved once per request: boxing the large variant would cost an allocation.
#[allow(clippy::large_enum_variant)]
enum Head {
    Request(Parsed),
    /// The connection closed, idled out or was stopped between requests.
    Idle,
    Http2,
}

/// Why waiting for more of a head ended without bytes.
enum Wait {
    Closed,
    Stopped,
    TimedOut,
}

fn malformed(detail: &'static str) -> HeadError {
    HeadError::Refuse(ApiError::MalformedHttp { detail })
}

#[derive(Clone, Copy)]
enum Framing {
    None,
    Length(u64),
    Chunked,
}

/// A `Content-Length` value: digits only (RFC 9110), no sign, no list, at most 19 of them.
fn content_length(v: &[u8]) -> Option<u64> {
    if v.len() > 19 {
        return None;
    }
    crate::wire::parse_u64(v)
}

/// Makes room for a read of at least `space` bytes. `BytesMut` reuses its allocation in place
/// once the slices cut from it (earlier heads and bodies) are gone.
fn reserve(buf: &mut BytesMut, space: usize) {
    if buf.capacity() - buf.len() < space / 2 {
        buf.reserve(space);
    }
}

/// Moves an empty read buffer back to the start of its allocation, once the last request's
/// head and body (which share it) are gone: each request is then read into the same few
/// cache lines, where before the reads marched through 4 kB of the buffer before it was
/// reclaimed (with 64 connections, a quarter of a megabyte of cold lines for the kernel to
/// copy into and the parser to read). Nothing moves while a part is still shared.
fn rewind(buf: &mut BytesMut) {
    // Asking for a byte more than is left makes `try_reclaim` take back the space before the
    // buffer's start when it is the allocation's only user; it never allocates.
    let _ = buf.try_reclaim(buf.capacity() + 1);
}

fn poll_read_buf(
    io: &mut TcpStream,
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
) -> Poll<std::io::Result<usize>> {
    let spare = buf.spare_capacity_mut();
    let mut read = ReadBuf::uninit(spare);
    match Pin::new(io).poll_read(cx, &mut read) {
        Poll::Ready(Ok(())) => {
            let n = read.filled().len();
            // SAFETY: `poll_read` initialised the first `n` spare bytes.
            unsafe { buf.set_len(buf.len() + n) };
            Poll::Ready(Ok(n))
        }
        Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        Poll::Pending => Poll::Pending,
    }
}

async fn write_all_vectored(io: &mut TcpStream, parts: &mut [&[u8]; 3]) -> Result<(), Gone> {
    loop {
        let slices = [
            IoSlice::new(parts[0]),
            IoSlice::new(parts[1]),
            IoSlice::new(parts[2]),
        ];
        if parts.iter().all(|p| p.is_empty()) {
            return Ok(());
        }
        let mut n = io.write_vectored(&slices).await.map_err(|_| Gone)?;
        if n == 0 {
            return Err(Gone);
        }
        for p in parts.iter_mut() {
            let k = n.min(p.len());
            *p = &p[k..];
            n -= k;
        }
    }
}

/// Appends the current time as an HTTP date, formatted once per second per thread.
fn push_date(w: &mut Vec<u8>) {
    use std::cell::RefCell;
    thread_local! {
        static CACHED: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let now = SystemTime::now();
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    CACHED.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != secs {
            *c = (secs, httpdate::fmt_http_date(now));
        }
        w.extend_from_slice(c.1.as_bytes());
    });
}

/// Reads a request body from the connection's buffer.
enum Decoder {
    /// Bytes left.
    Length(u64),
    Chunked(Chunked),
}

#[derive(Clone, Copy)]
enum Chunked {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk's data, this many bytes left.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer lines until an empty one; bytes of trailers seen so far.
    Trailers(usize),
    Done,
}

enum Decoded {
    Chunk(Bytes),
    /// Needs more bytes from the client.
    More,
    End,
}

impl Decoder {
    /// For a body handed over whole, the bytes of it not yet in `buf`.
    fn whole_left(&self, buf: &BytesMut) -> Option<usize> {
        match *self {
            Decoder::Length(left) if left <= WHOLE_BODY => {
                Some((left as usize).saturating_sub(buf.len()))
            }
            _ => None,
        }
    }

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, &'static str> {
        match self {
            Decoder::Length(0) => Ok(Decoded::End),
            Decoder::Length(left) => {
                if buf.is_empty() || (buf.len() as u64) < *left && *left <= WHOLE_BODY {
                    return Ok(Decoded::More);
                }
                let n = (*left).min(buf.len() as u64);
                *left -= n;
                // `n` is at most the buffer's length.
                let chunk = buf.split_to(n as usize).freeze();
                if chunk.len() > BODY_READ_SPACE {
                    // What is left of the buffer shares the body's allocation and would keep
                    // it alive while the connection idles: the rest moves to a buffer of its own.
                    let rest = buf.split();
                    *buf = BytesMut::with_capacity(READ_SPACE.max(rest.len()));
                    buf.extend_from_slice(&rest);
                }
                Ok(Decoded::Chunk(chunk))
            }
            Decoder::Chunked(state) => loop {
                match *state {
                    Chunked::Done => return Ok(Decoded::End),
                    Chunked::Size => {
                        let Some(eol) = memchr::memchr(b'\n', buf) else {
                            if buf.len() > MAX_CHUNK_LINE {
                                return Err("a chunk-size line is too long");
                            }
                            return Ok(Decoded::More);
                        };
                        if eol > MAX_CHUNK_LINE {
                            return Err("a chunk-size line is too long");
                        }
                        let line = &buf[..eol];
                        let line = line
                            .strip_suffix(b"\r")
                            .ok_or("a chunk-size line lacks its CR")?;
                        let digits_end = line
                            .iter()
                            .position(|b| !b.is_ascii_hexdigit())
                            .unwrap_or(line.len());
                        let rest = &line[digits_end..];
                        if digits_end == 0
                            || digits_end > 15
                            || !(rest.is_empty() || rest.trim_ascii_start().starts_with(b";"))
                        {
                            return Err("a chunk size is not a hexadecimal number");
                        }
                        let size = line[..digits_end].iter().fold(0u64, |n, d| {
                            let v = match d {
                                b'0'..=b'9' => d - b'0',
                                b'a'..=b'f' => d - b'a' + 10,
                                _ => d - b'A' + 10,
                            };
                            n * 16 + u64::from(v)
                        });
                        buf.advance(eol + 1);
                        *state = if size == 0 {
                            Chunked::Trailers(0)
                        } else {
                            Chunked::Data(size)
                        };
                    }
                    Chunked::Data(left) => {
                        if buf.is_empty() {
                            return Ok(Decoded::More);
                        }
                        let n = left.min(buf.len() as u64);
                        *state = if n == left {
                            Chunked::DataEnd
                        } else {
                            Chunked::Data(left - n)
                        };
                        // `n` is at most the buffer's length.
                        return Ok(Decoded::Chunk(buf.split_to(n as usize).freeze()));
                    }
                    Chunked::DataEnd => {
                        if buf.len() < 2 {
                            return Ok(Decoded::More);
                        }
                        if &buf[..2] != b"\r\n" {
                            return Err("a chunk is longer than its size");
                        }
                        buf.advance(2);
                        *state = Chunked::Size;
                    }
                    Chunked::Trailers(seen) => {
                        let Some(eol) = memchr::memchr(b'\n', buf) else {
                            if seen + buf.len() > 64 * 1024 {
                                return Err("the trailers are too large");
                            }
                            return Ok(Decoded::More);
                        };
                        let empty = eol == 0 || (eol == 1 && buf[0] == b'\r');
                        buf.advance(eol + 1);
                        *state = if empty {
                            Chunked::Done
                        } else {
                            Chunked::Trailers(seen + eol + 1)
                        };
                        if seen + eol + 1 > 64 * 1024 {
                            return Err("the trailers are too large");
                        }
                    }
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Once a request's head (which shares the read buffer) is gone, the next request is read
    /// into the start of the buffer again, not further along it; never while the head lives.
    #[test]
    fn an_empty_read_buffer_rewinds_to_its_start() {
        let mut buf = BytesMut::with_capacity(READ_SPACE);
        let start = buf.spare_capacity_mut().as_ptr() as usize;
        for _ in 0..3 {
            buf.extend_from_slice(&[b'x'; 300]);
            let head = buf.split_to(300).freeze();
            rewind(&mut buf);
            assert_eq!(
                buf.spare_capacity_mut().as_ptr() as usize,
                start + 300,
                "moved while the head still shares the buffer"
            );
            drop(head);
            rewind(&mut buf);
            assert_eq!(buf.spare_capacity_mut().as_ptr() as usize, start);
            assert_eq!(buf.capacity(), READ_SPACE);
        }
    }

    #[test]
    fn header_names_are_what_http_makes_of_them() {
        for name in [
            "Host",
            "host",
            "Accept",
            "api-key",
            "Api-Key",
            "User-Agent",
            "Connection",
            "Content-Type",
            "X-Request-Id",
            "Authorization",
            "CONTENT-LENGTH",
            "Accept-Encoding",
            "extra-parameters",
            "x-ms-client-request-id",
            "x-stainless-lang",
            "X-Stainless-Lang",
            "x-stainless-os",
            "x-stainless-package-version",
            "x-stainless-runtime-version",
            "x-stainless-read-timeout",
            "x-stainless-",
            "x-stainless-o",
            "x-stainless-osx",
            "x-stainless-lanh",
            "x-stainlesz-lang",
            "hosu",
            "api_key",
            "content-typf",
        ] {
            let ours = header_name(name.as_bytes()).unwrap();
            assert_eq!(
                ours,
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                "{name}"
            );
            assert_eq!(ours.as_str(), name.to_ascii_lowercase());
        }
        assert!(header_name(b"bad name").is_err());
        assert!(header_name(b"").is_err());
    }

    #[test]
    fn only_the_sdks_own_headers_stay_out_of_the_map() {
        for name in ["x-stainless-os", "X-Stainless-Retry-Count", "x-stainless-"] {
            assert!(is_sdk_header(name.as_bytes()), "{name}");
        }
        for name in [
            "x-stainless",
            "x-stainlesz-os",
            "x-request-id",
            "api-key",
            "",
            "x",
        ] {
            assert!(!is_sdk_header(name.as_bytes()), "{name}");
        }
    }

    /// Every byte httparse lets into a request header value is one `HeaderValue` accepts, as
    /// `header_value` relies on.
    #[test]
    fn header_values_httparse_accepts_are_valid_header_values() {
        let mut accepted = 0;
        for b in 0..=255u8 {
            let mut raw = b"GET / HTTP/1.1\r\nx: a".to_vec();
            raw.push(b);
            raw.extend_from_slice(b"a\r\n\r\n");
            let mut headers = [httparse::EMPTY_HEADER; 4];
            let mut request = httparse::Request::new(&mut headers);
            if let Ok(httparse::Status::Complete(_)) = request.parse(&raw) {
                let value = request.headers[0].value;
                assert!(HeaderValue::from_bytes(value).is_ok(), "byte {b:#x}");
                accepted += 1;
            }
        }
        // Tab, space to `~`, and 0x80 to 0xFF.
        assert_eq!(accepted, 1 + 95 + 128);
    }

    fn decode_all(
        decoder: &mut Decoder,
        input: &[u8],
        cut: usize,
    ) -> Result<Vec<u8>, &'static str> {
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut fed = 0;
        loop {
            match decoder.decode(&mut buf)? {
                Decoded::Chunk(c) => out.extend_from_slice(&c),
                Decoded::End => return Ok(out),
                Decoded::More => {
                    if fed == input.len() {
                        return Err("ran out of input");
                    }
                    let end = (fed + cut).min(input.len());
                    buf.extend_from_slice(&input[fed..end]);
                    fed = end;
                }
            }
        }
    }

    #[test]
    fn chunked_bodies_decode_however_they_are_cut() {
        let input = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nx-trailer: 1\r\n\r\n";
        for cut in 1..input.len() {
            let mut d = Decoder::Chunked(Chunked::Size);
            assert_eq!(
                decode_all(&mut d, input, cut).unwrap(),
                b"hello, world",
                "cut {cut}"
            );
        }
    }

    #[test]
    fn broken_chunked_bodies_are_errors() {
        for bad in [
            &b"zz\r\nhello\r\n0\r\n\r\n"[..],
            b"5\r\nhelloXX0\r\n\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"ffffffffffffffff\r\n",
            b"-5\r\nhello\r\n",
        ] {
            let mut d = Decoder::Chunked(Chunked::Size);
            assert!(
                decode_all(&mut d, bad, 3).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn a_length_body_is_handed_over_whole_and_lets_go_of_its_buffer() {
        let size = 200_000;
        let mut d = Decoder::Length(size as u64);
        let mut buf = BytesMut::new();
        assert_eq!(d.whole_left(&buf), Some(size));
        // Arriving in pieces: nothing is handed over until the whole body is there.
        buf.reserve(size + 64);
        for piece in 0..4 {
            buf.extend_from_slice(&vec![b'a' + piece; size / 4]);
            if piece < 3 {
                assert!(matches!(d.decode(&mut buf), Ok(Decoded::More)));
            }
        }
        buf.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        let Ok(Decoded::Chunk(body)) = d.decode(&mut buf) else {
            panic!("the whole body should be one chunk");
        };
        assert_eq!(body.len(), size);
        assert_eq!(&body[size - 1..], b"d");
        // The pipelined request stays, in a buffer of its own.
        assert_eq!(&buf[..], b"GET / HTTP/1.1\r\n\r\n");
        assert!(buf.capacity() <= 2 * READ_SPACE, "{}", buf.capacity());
        assert!(matches!(d.decode(&mut buf), Ok(Decoded::End)));
    }

    #[test]
    fn content_length_is_digits_only() {
        assert_eq!(content_length(b"42"), Some(42));
        assert_eq!(content_length(b"0"), Some(0));
        for bad in [
            &b""[..],
            b"+1",
            b"-1",
            b"1,1",
            b" 1",
            b"0x10",
            b"99999999999999999999",
        ] {
            assert_eq!(content_length(bad), None, "{bad:?}");
        }
    }
}
