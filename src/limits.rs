//! `--max-concurrent-requests`: at most N requests proxied at once, a bounded queue behind
//! them, and Azure's 429 (with `Retry-After` and `retry-after-ms`) beyond it, so the engine is
//! never flooded. The slot travels inside the response body: a stream holds it until its last
//! byte or until its client goes away.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;
use crate::state::AppState;

/// The concurrency limit and its queue.
#[derive(Debug)]
pub struct Limiter {
    slots: Arc<Semaphore>,
    max: usize,
    queued: AtomicUsize,
    max_queued: usize,
    wait: Duration,
}

impl Limiter {
    /// A limiter of `max` slots (`None` for 0: no limit).
    pub fn new(max: usize, max_queued: usize, wait: Duration) -> Option<Self> {
        (max > 0).then(|| Limiter {
            slots: Arc::new(Semaphore::new(max)),
            max,
            queued: AtomicUsize::new(0),
            max_queued,
            wait,
        })
    }

    /// Requests waiting for a slot now.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Requests being served now.
    pub fn in_flight(&self) -> usize {
        self.max - self.slots.available_permits()
    }

    async fn acquire(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        if let Ok(p) = Arc::clone(&self.slots).try_acquire_owned() {
            return Ok(p);
        }
        let full = ApiError::TooManyRequests {
            in_flight: self.max,
        };
        if self.queued.fetch_add(1, Ordering::AcqRel) >= self.max_queued {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(full);
        }
        // Leaves the queue however the wait ends, the client's departure included.
        let _queued = Queued(&self.queued);
        match tokio::time::timeout(self.wait, Arc::clone(&self.slots).acquire_owned()).await {
            Ok(Ok(p)) => Ok(p),
            _ => Err(full),
        }
    }
}

struct Queued<'a>(&'a AtomicUsize);

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Routes that never wait for a slot: the platform's probes.
const UNLIMITED: &[&str] = &["/health", "/ready"];

/// A slot for a request to `path` (none needed when there is no limit, or for the probes):
/// waits in the queue for one, or refuses with 429. The request stays where it is; only its
/// path is looked at.
pub async fn take_slot(
    state: &AppState,
    path: &str,
) -> Result<Option<OwnedSemaphorePermit>, ApiError> {
    match state.limiter.as_ref() {
        Some(limiter) if !UNLIMITED.contains(&path) => limiter.acquire().await.map(Some),
        _ => Ok(None),
    }
}

/// The answer, holding `slot` until its body is finished or dropped.
pub fn hold(slot: Option<OwnedSemaphorePermit>, response: Response) -> Response {
    match slot {
        None => response,
        Some(permit) => response.map(|body| {
            Body::new(Held {
                inner: body,
                _held: permit,
            })
        }),
    }
}

/// A response body that keeps something alive until it is finished or dropped.
struct Held<T> {
    inner: Body,
    _held: T,
}

impl<T: Unpin + Send + 'static> http_body::Body for Held<T> {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
