//! Accepting connections and draining them on shutdown.
//!
//! A hyper-util accept loop rather than `axum::serve`: it lets the proxy set an HTTP/1 header
//! read timeout (a slowloris defence `axum::serve` does not offer) and drain in-flight
//! requests and streams, bounded, when SIGTERM or Ctrl-C arrives.

use std::future::Future;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

/// Limits on what a client may send before its request reaches the router.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time to send the request head (slowloris defence).
    pub header_read_timeout: Duration,
    /// Most headers in a request.
    pub max_headers: usize,
    /// Largest request head in bytes.
    pub max_header_bytes: usize,
}

impl Limits {
    /// The limits from the configuration.
    pub fn from_config(config: &crate::config::Config) -> Self {
        Limits {
            header_read_timeout: config.header_read_timeout,
            max_headers: config.max_headers,
            max_header_bytes: config.max_header_bytes,
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets open connections finish
/// for at most `drain`.
pub async fn serve(
    listener: TcpListener,
    app: crate::routes::App,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
    limits: Limits,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_headers(limits.max_headers)
        .max_buf_size(limits.max_header_bytes);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(limits.max_header_bytes.try_into().unwrap_or(u32::MAX));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let _ = stream.set_nodelay(true);
                    let service = app.clone();
                    // No upgrades: the API has none, and an upgradeable connection is one more layer
                    // on every read and write (about 0.4 us of CPU per request under wrk, docs/benchmarks.md).
                    let conn = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                    let conn = graceful.watch(conn);
                    tokio::spawn(async move {
                        // A client that breaks the protocol or hangs up only ends its connection.
                        let _ = conn.await;
                    });
                }
                Err(e) => {
                    // E.g. out of file descriptors: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!(
        "shutting down: draining open connections (at most {} s)",
        drain.as_secs_f64()
    );
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(drain) => tracing::warn!("drain timeout reached; closing remaining connections"),
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
