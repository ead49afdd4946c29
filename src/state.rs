//! The shared state every handler sees, built once at start-up.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::config::Config;
use crate::limits::Limiter;
use crate::metrics::Metrics;
use crate::responses_store::ResponsesStore;
use crate::upstream::pool::Pool;

/// Configuration and the engines, shared by all requests. Cloning it (axum does, for every
/// extractor and middleware of every request) is one reference count.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What `AppState` holds.
#[derive(Debug)]
pub struct Shared {
    pub config: Arc<Config>,
    pub pool: Arc<Pool>,
    /// `--max-concurrent-requests`, when set.
    pub limiter: Option<Arc<Limiter>>,
    /// Set when shutdown begins: readiness turns 503 at once.
    pub draining: Arc<AtomicBool>,
    /// The Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// `--responses-store N`: the last N Responses API answers, when on.
    pub responses: Option<Arc<ResponsesStore>>,
}

impl AppState {
    /// Builds the state (one pooled client per upstream) from a checked configuration.
    pub fn new(config: Config) -> Result<Self, String> {
        let pool = Pool::new(&config)?;
        let limiter = Limiter::new(
            config.max_concurrent_requests,
            config.max_queued_requests,
            config.queue_timeout,
        );
        let responses = (config.responses_store > 0)
            .then(|| Arc::new(ResponsesStore::new(config.responses_store)));
        Ok(AppState(Arc::new(Shared {
            responses,
            config: Arc::new(config),
            pool: Arc::new(pool),
            limiter: limiter.map(Arc::new),
            draining: Arc::new(AtomicBool::new(false)),
            metrics: Arc::new(Metrics::new()),
        })))
    }
}
