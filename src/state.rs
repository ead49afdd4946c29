//! The shared state every handler sees, built once at start-up.

use std::sync::Arc;

use crate::config::Config;
use crate::upstream::pool::Pool;

/// Configuration and the engines, shared by all requests.
#[derive(Debug, Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub pool: Arc<Pool>,
}

impl AppState {
    /// Builds the state (one pooled client per upstream) from a checked configuration.
    pub fn new(config: Config) -> Result<Self, String> {
        let pool = Pool::new(&config)?;
        Ok(AppState {
            config: Arc::new(config),
            pool: Arc::new(pool),
        })
    }
}
