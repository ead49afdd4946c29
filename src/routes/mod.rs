//! The route table. Every Model Inference route is served at the root and under the `/models/`
//! and `/api/models/` prefixes that Azure AI Foundry endpoints use (the SDK appends its route to
//! whatever endpoint it is given).

pub mod azure_openai;
pub mod health;
pub mod model_inference;
pub mod operations;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;

use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::error::ApiError;
use crate::extract::check_key;
use crate::state::AppState;

const PREFIXES: &[&str] = &["", "/models", "/api/models"];

/// The whole application: the front service around the router.
pub fn app(state: AppState) -> App {
    App {
        router: router(state.clone()),
        state,
    }
}

/// The router: every route, Azure-shaped fallbacks, and the layers around them.
fn router(state: AppState) -> Router {
    let mut router = Router::new()
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/metrics", get(health::metrics));
    for &operation in operations::OPERATIONS {
        router = router.route(
            operation.route,
            post(
                move |State(state): State<AppState>, request: Request| async move {
                    operations::serve(&state, operation, request).await
                },
            ),
        );
    }
    for prefix in PREFIXES {
        router = router
            .route(
                &format!("{prefix}/images/embeddings"),
                post(model_inference::image_embeddings),
            )
            .route(&format!("{prefix}/info"), get(model_inference::info));
    }
    router = router
        .route(
            "/openai/deployments/{deployment}/audio/transcriptions",
            post(azure_openai::audio_transcriptions),
        )
        .route(
            "/openai/deployments/{deployment}/{*operation}",
            post(azure_openai::unsupported_operation),
        )
        .route("/openai/responses", post(azure_openai::responses))
        .route(
            "/openai/responses/{id}",
            get(azure_openai::get_response).delete(azure_openai::delete_response),
        )
        .route(
            "/openai/v1/responses/{id}",
            get(azure_openai::get_response).delete(azure_openai::delete_response),
        )
        .route("/openai/models", get(azure_openai::models))
        .route("/openai/v1/responses", post(azure_openai::v1_responses))
        .route("/openai/v1/models", get(azure_openai::models));
    router
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|method: Method| async move {
            ApiError::MethodNotAllowed {
                method: method.to_string(),
            }
        })
        .layer(middleware::from_fn_with_state(state.clone(), front))
        .with_state(state)
}

/// The service the server runs: a POST to a JSON operation goes straight to its handler (see
/// `operations`), anything else through the router. Both ways pass the same front checks.
#[derive(Clone)]
pub struct App {
    state: AppState,
    router: Router,
}

/// The future of one request through `App`: boxed on both ways, so that what a connection holds
/// and moves is a pointer (the router's own future is about as large as a request's state).
pub type AppFuture = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl App {
    /// Runs one request (what the HTTP/1 connection loop calls, and hyper's HTTP/2 server
    /// through the `Service` impl below).
    pub fn call_boxed<B>(&self, request: http::Request<B>) -> AppFuture
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<axum::BoxError>,
    {
        let found = (request.method() == Method::POST)
            .then(|| operations::find(request.uri().path()))
            .flatten();
        let Some((operation, _)) = found else {
            // A router clone is one reference count.
            return Box::pin(tower::Service::call(&mut self.router.clone(), request));
        };
        let state = self.state.clone();
        boxed_in_place(move || async move {
            let request = request.map(Body::new);
            let route = crate::telemetry::Route::Static(operation.route);
            let state = &state;
            Ok(pass_front(state, request, route, |request| {
                operations::serve(state, operation, request)
            })
            .await)
        })
    }
}

/// Boxes the future `make` returns, built in its allocation: a request's future is several
/// kilobytes (every state it can be in), and `Box::pin(future)` copied all of it from the stack
/// into the box on every request.
fn boxed_in_place<F, M>(make: M) -> AppFuture
where
    F: Future<Output = Result<Response, Infallible>> + Send + 'static,
    M: FnOnce() -> F,
{
    let slot = Box::<F>::new_uninit();
    let future: Box<F> = Box::write(slot, make());
    Box::into_pin(future)
}

/// What hyper's HTTP/2 server runs on each connection: `App` itself (no tower adapter, so no
/// service clone and hand-over state machine per request).
impl<B> hyper::service::Service<http::Request<B>> for App
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = AppFuture;

    fn call(&self, request: http::Request<B>) -> Self::Future {
        self.call_boxed(request)
    }
}

/// What every request passes before its handler, in one layer (one boxed future, not three):
/// the observer (request id, metrics, log line) sees every request, including the ones auth
/// refuses; auth runs before a request can take a concurrency slot, and both before any
/// handler touches the body or the engine.
async fn front(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = match request.extensions().get::<MatchedPath>() {
        Some(m) => crate::telemetry::Route::Matched(m.clone()),
        None => crate::telemetry::Route::Unmatched,
    };
    pass_front(&state, request, route, |request| next.run(request)).await
}

/// The front checks around `handler`: observer, key, concurrency limit. The request is moved
/// once, into the handler, and the handler's future is pinned where it is built: each layer
/// that took them by value copied them into cold memory (see `telemetry::Observation`).
async fn pass_front<F, Fut>(
    state: &AppState,
    mut request: Request,
    route: crate::telemetry::Route,
    handler: F,
) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let mut observation = crate::telemetry::Observation::begin(state, &mut request, route);
    let handling = std::pin::pin!(async move {
        if let Err(e) = check_key(state, &request) {
            return e.into_response();
        }
        let slot = match crate::limits::take_slot(state, request.uri().path()).await {
            Ok(slot) => slot,
            Err(e) => return e.into_response(),
        };
        crate::limits::hold(slot, handler(request).await)
    });
    let response = observation.watch(handling).await;
    observation.end(response)
}
