//! Every upstream and the deployments they serve: which engine (and which model name there)
//! answers a deployment, and the background health checks of their replicas.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::config::{Config, DeploymentConfig};
use crate::error::ApiError;
use crate::translate::info::ModelType;
use crate::upstream::client::{Discovery, Upstream};

/// Where a request goes.
#[derive(Debug, Clone)]
pub struct Target {
    pub upstream: Arc<Upstream>,
    /// The deployment name clients used (shared: a request clones it, never copies it).
    pub deployment: Arc<str>,
    /// The model name the engine knows.
    pub model: Arc<str>,
    /// The model's type, when declared or already learned.
    pub model_type: Option<ModelType>,
}

/// A deployment as listed by the model routes.
#[derive(Debug, Clone)]
pub struct Listed {
    pub deployment: Arc<str>,
    pub model: Arc<str>,
    pub upstream: Arc<Upstream>,
    pub owned_by: Option<String>,
}

/// All upstreams and deployments.
#[derive(Debug)]
pub struct Pool {
    upstreams: Vec<Arc<Upstream>>,
    /// Declared deployments; empty means every model an engine lists is a deployment.
    declared: Vec<DeploymentConfig>,
    /// `--model-name`: another name for the first engine's first model.
    alias: Option<String>,
    /// `--model-type`: the type of every model without a declared one.
    model_type: Option<ModelType>,
    /// How often replicas are health-checked.
    health_interval: Duration,
    /// The declared deployments as listed, built once.
    declared_list: Option<Arc<Vec<Listed>>>,
    /// The dynamic list and the discoveries it was built from.
    cache: RwLock<Option<ListCache>>,
}

/// What each engine listed (inline for a few engines: no allocation per request), and the
/// deployments built from it.
type Discovered = smallvec::SmallVec<[Option<Arc<Discovery>>; 4]>;
type ListCache = (Discovered, Arc<Vec<Listed>>);

impl Pool {
    /// Builds one client per upstream.
    pub fn new(config: &Config) -> Result<Self, String> {
        let upstreams = config
            .upstreams
            .iter()
            .map(|u| Upstream::new(config, u).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        let declared_list = (!config.deployments.is_empty()).then(|| {
            Arc::new(
                config
                    .deployments
                    .iter()
                    .filter_map(|d| {
                        let upstream = upstreams.get(d.upstream)?;
                        Some(Listed {
                            deployment: Arc::from(d.name.as_str()),
                            model: Arc::from(d.model.as_str()),
                            upstream: Arc::clone(upstream),
                            owned_by: None,
                        })
                    })
                    .collect(),
            )
        });
        Ok(Pool {
            declared_list,
            cache: RwLock::new(None),
            upstreams,
            declared: config.deployments.clone(),
            alias: config.model_name.clone(),
            model_type: config.model_type,
            health_interval: config.health_check_interval,
        })
    }

    /// The upstreams.
    pub fn upstreams(&self) -> &[Arc<Upstream>] {
        &self.upstreams
    }

    /// The first upstream (the only one without a config file).
    pub fn primary(&self) -> Option<&Arc<Upstream>> {
        self.upstreams.first()
    }

    /// Every deployment: declared ones, or every model each engine lists (plus the alias).
    /// Fails only when no engine can be asked. Built once per change of what the engines list,
    /// so a request pays one lock and one reference count, not a list of strings.
    pub async fn list(&self) -> Result<Arc<Vec<Listed>>, ApiError> {
        if let Some(declared) = &self.declared_list {
            return Ok(Arc::clone(declared));
        }
        let mut found = Discovered::new();
        let mut last_error = None;
        for upstream in &self.upstreams {
            match upstream.discover(false).await {
                Ok(d) => found.push(Some(d)),
                Err(e) => {
                    found.push(None);
                    last_error = Some(e);
                }
            }
        }
        if let Ok(cache) = self.cache.read() {
            if let Some((key, list)) = cache.as_ref() {
                let same = key.len() == found.len()
                    && key.iter().zip(&found).all(|(a, b)| match (a, b) {
                        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                        (None, None) => true,
                        _ => false,
                    });
                if same && !list.is_empty() {
                    return Ok(Arc::clone(list));
                }
            }
        }
        let mut out = Vec::new();
        for (upstream, d) in self.upstreams.iter().zip(&found) {
            let Some(d) = d else { continue };
            for m in &d.models {
                if out.is_empty() {
                    if let Some(alias) = self.alias.as_ref().filter(|a| **a != m.id) {
                        out.push(Listed {
                            deployment: Arc::from(alias.as_str()),
                            model: Arc::from(m.id.as_str()),
                            upstream: Arc::clone(upstream),
                            owned_by: m.owned_by.clone(),
                        });
                    }
                }
                out.push(Listed {
                    deployment: Arc::from(m.id.as_str()),
                    model: Arc::from(m.id.as_str()),
                    upstream: Arc::clone(upstream),
                    owned_by: m.owned_by.clone(),
                });
            }
        }
        if out.is_empty() {
            if let Some(e) = last_error {
                return Err(e);
            }
        }
        let list = Arc::new(out);
        if let Ok(mut cache) = self.cache.write() {
            *cache = Some((found, Arc::clone(&list)));
        }
        Ok(list)
    }

    fn target(&self, listed: &Listed) -> Target {
        let declared = self.declared.iter().find(|d| *d.name == *listed.deployment);
        Target {
            upstream: Arc::clone(&listed.upstream),
            deployment: listed.deployment.clone(),
            model: listed.model.clone(),
            model_type: declared
                .and_then(|d| d.model_type)
                .or(self.model_type)
                .or_else(|| listed.upstream.reported_model_type()),
        }
    }

    /// The deployment called `name`, or Azure OpenAI's 404 `DeploymentNotFound`.
    pub async fn deployment(&self, name: &str) -> Result<Target, ApiError> {
        let listed = self.list().await?;
        listed
            .iter()
            .find(|l| &*l.deployment == name)
            .map(|l| self.target(l))
            .ok_or_else(|| ApiError::DeploymentNotFound {
                deployment: name.to_owned(),
            })
    }

    /// The target of a request that names no deployment: the only one there is.
    pub async fn only(&self) -> Result<Target, ApiError> {
        let listed = self.list().await?;
        match listed.as_slice() {
            [] => Err(ApiError::NotReady {
                detail: "the engine lists no model".into(),
            }),
            // With an alias, the alias and the model it names are one deployment.
            [one] | [one, _]
                if listed
                    .iter()
                    .all(|l| l.model == one.model && Arc::ptr_eq(&l.upstream, &one.upstream)) =>
            {
                Ok(self.target(one))
            }
            _ if self.upstreams.len() == 1 && self.declared.is_empty() => {
                Ok(self.target(&listed[0]))
            }
            _ => Err(ApiError::invalid_param(
                "model",
                "This endpoint serves several models: name one in 'model'.",
            )),
        }
    }

    /// Starts the background health checks of every upstream's replicas.
    pub fn spawn_health_checks(self: &Arc<Self>) {
        for upstream in &self.upstreams {
            let upstream = Arc::clone(upstream);
            let interval = self.health_interval;
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    upstream.check_replicas().await;
                }
            });
        }
    }
}
