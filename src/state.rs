//! The shared state every handler sees, built once at start-up.

use std::sync::Arc;

use crate::config::Config;
use crate::upstream::client::{Discovery, Upstream};
use crate::upstream::engines::Engine;

/// Configuration and the engine client, shared by all requests.
#[derive(Debug, Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub upstream: Arc<Upstream>,
}

impl AppState {
    /// Builds the state (the pooled client) from a checked configuration.
    pub fn new(config: Config) -> Result<Self, String> {
        let upstream = Upstream::new(&config)?;
        Ok(AppState {
            config: Arc::new(config),
            upstream: Arc::new(upstream),
        })
    }

    /// The engine: configured, else discovered; `Generic` while the engine cannot be asked.
    pub async fn engine(&self) -> Engine {
        if let Some(e) = self.config.engine {
            return e;
        }
        match self.upstream.discover(false).await {
            Ok(d) => d.engine,
            Err(_) => Engine::Generic,
        }
    }

    /// The model to fill into requests that omit one: configured, else the engine's first.
    /// `None` while the engine cannot be asked (the request then goes as sent).
    pub async fn default_model(&self) -> Option<String> {
        if let Some(m) = &self.config.model_name {
            return Some(m.clone());
        }
        let d: Arc<Discovery> = self.upstream.discover(false).await.ok()?;
        d.models.first().map(|m| m.id.clone())
    }
}
