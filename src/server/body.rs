//! The body of a request served by the proxy's own HTTP/1 connection loop.
//!
//! Most requests arrive whole in the first read (head and body in one segment); their body is a
//! slice of the connection's read buffer and costs nothing more. A larger or chunked body is
//! handed over through a one-slot mailbox: the handler's poll asks for it, the connection reads
//! and decodes and wakes it. Nothing is read before the handler asks. A `Content-Length` body up
//! to 16 MiB (`h1::WHOLE_BODY`) is then read into one buffer of its size and handed over whole;
//! a larger or chunked one goes one chunk at a time, so such a client is held back by TCP, not
//! buffered.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http_body::{Frame, SizeHint};

/// A request body: empty, whole, or streamed from the connection.
pub struct RequestBody {
    inner: Inner,
}

enum Inner {
    Whole(Option<Bytes>),
    Streamed {
        mailbox: Arc<Mailbox>,
        /// Bytes still to come when the length is declared (`Content-Length`).
        left: Option<u64>,
    },
}

/// Why a streamed body ended early.
#[derive(Debug, Clone, Copy)]
pub struct BodyError(&'static str);

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for BodyError {}

impl RequestBody {
    /// A body with nothing in it.
    pub(super) fn empty() -> Self {
        RequestBody {
            inner: Inner::Whole(None),
        }
    }

    /// A body that arrived whole.
    pub(super) fn whole(bytes: Bytes) -> Self {
        RequestBody {
            inner: Inner::Whole((!bytes.is_empty()).then_some(bytes)),
        }
    }

    /// A body the connection feeds through the returned mailbox.
    pub(super) fn streamed(length: Option<u64>) -> (Self, Arc<Mailbox>) {
        let mailbox = Arc::new(Mailbox::default());
        let body = RequestBody {
            inner: Inner::Streamed {
                mailbox: Arc::clone(&mailbox),
                left: length,
            },
        };
        (body, mailbox)
    }
}

impl http_body::Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match &mut self.get_mut().inner {
            Inner::Whole(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Inner::Streamed { mailbox, left } => {
                let mut slot = mailbox.lock();
                if let Some(chunk) = slot.chunk.take() {
                    if let Some(n) = left {
                        *n = n.saturating_sub(chunk.len() as u64);
                    }
                    if let Some(w) = slot.reader.take() {
                        w.wake();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(chunk))));
                }
                match slot.end {
                    End::Done => Poll::Ready(None),
                    End::Failed(e) => Poll::Ready(Some(Err(BodyError(e)))),
                    End::Open => {
                        slot.wanted = true;
                        slot.handler = Some(cx.waker().clone());
                        if let Some(w) = slot.reader.take() {
                            w.wake();
                        }
                        Poll::Pending
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Whole(bytes) => bytes.is_none(),
            Inner::Streamed { left, .. } => *left == Some(0),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Whole(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            Inner::Streamed { left: Some(n), .. } => SizeHint::with_exact(*n),
            Inner::Streamed { left: None, .. } => SizeHint::default(),
        }
    }
}

/// The hand-over point between the connection (which reads and decodes) and the handler
/// (which polls the body).
#[derive(Default)]
pub(super) struct Mailbox(Mutex<Slot>);

#[derive(Default)]
struct Slot {
    chunk: Option<Bytes>,
    end: End,
    /// The handler polled and found nothing: read it the next chunk.
    wanted: bool,
    handler: Option<Waker>,
    reader: Option<Waker>,
}

#[derive(Default, Clone, Copy)]
enum End {
    #[default]
    Open,
    Done,
    Failed(&'static str),
}

impl Mailbox {
    fn lock(&self) -> MutexGuard<'_, Slot> {
        // Neither side panics while holding the lock; if one did, the slot is still usable.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the handler is waiting for a chunk. If not, the connection's task is woken when
    /// it is.
    pub(super) fn wanted(&self, cx: &mut Context<'_>) -> bool {
        let mut slot = self.lock();
        if slot.wanted {
            return true;
        }
        slot.reader = Some(cx.waker().clone());
        false
    }

    /// Hands the handler its next chunk.
    pub(super) fn deliver(&self, chunk: Bytes) {
        let mut slot = self.lock();
        slot.chunk = Some(chunk);
        slot.wanted = false;
        if let Some(w) = slot.handler.take() {
            w.wake();
        }
    }

    /// Ends the body, whole (`None`) or broken.
    pub(super) fn end(&self, failure: Option<&'static str>) {
        let mut slot = self.lock();
        slot.end = failure.map_or(End::Done, End::Failed);
        slot.wanted = false;
        if let Some(w) = slot.handler.take() {
            w.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn a_streamed_body_yields_what_the_connection_delivers_then_ends() {
        let (body, mailbox) = RequestBody::streamed(Some(6));
        let reader = tokio::spawn(async move { body.collect().await.map(|c| c.to_bytes()) });
        let mut sent = 0;
        std::future::poll_fn(|cx| loop {
            if !mailbox.wanted(cx) {
                return Poll::Pending::<()>;
            }
            if sent == 2 {
                mailbox.end(None);
                return Poll::Ready(());
            }
            mailbox.deliver(Bytes::from_static(b"abc"));
            sent += 1;
        })
        .await;
        assert_eq!(
            reader.await.unwrap().unwrap(),
            Bytes::from_static(b"abcabc")
        );
    }

    #[tokio::test]
    async fn a_broken_body_is_an_error_for_the_handler() {
        let (body, mailbox) = RequestBody::streamed(None);
        mailbox.end(Some("the client closed the connection"));
        let err = body.collect().await.err().unwrap();
        assert_eq!(err.to_string(), "the client closed the connection");
    }
}
