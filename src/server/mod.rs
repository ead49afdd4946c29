//! Accepting connections and draining them on shutdown.
//!
//! HTTP/1 connections are served by the proxy's own connection loop (`h1`), built for the
//! proxy's hot path; a connection that opens with the HTTP/2 preface (prior knowledge, as
//! HTTP/2 clients without TLS speak) goes to hyper's HTTP/2 server. On SIGTERM or Ctrl-C the
//! listener closes, idle connections close, and in-flight requests and streams get at most
//! `--shutdown-timeout` to finish.

mod body;
mod h1;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;

pub use body::{BodyError, RequestBody};

/// Connections the kernel queues before the proxy accepts them (capped by
/// `net.core.somaxconn`). std's default of 128 makes a burst of new clients beyond it wait a
/// second or more for their SYN to be sent again.
const BACKLOG: u32 = 4096;

/// A listening socket on `addr` with a deep accept queue.
pub fn listen(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // As std's bind does: a restarted proxy can listen again at once.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Limits on what a client may send before its request reaches the router.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time to send the request head (slowloris defence).
    pub header_read_timeout: Duration,
    /// Time a kept-alive connection may idle between requests.
    pub keep_alive_timeout: Duration,
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
            keep_alive_timeout: config.keep_alive_timeout,
            max_headers: config.max_headers,
            max_header_bytes: config.max_header_bytes,
        }
    }
}

type H2 = hyper::server::conn::http2::Builder<TokioExecutor>;

/// Serves `app` on `listener` until `shutdown` resolves, then lets open connections finish
/// for at most `drain`.
pub async fn serve(
    listener: TcpListener,
    app: crate::routes::App,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
    limits: Limits,
) {
    let mut h2 = H2::new(TokioExecutor::new());
    h2.timer(TokioTimer::new())
        .max_header_list_size(limits.max_header_bytes.try_into().unwrap_or(u32::MAX));
    let h2 = Arc::new(h2);
    // Every connection holds a receiver: `true` asks it to finish, and the sender sees when
    // the last one is gone.
    let (stop, _) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let _ = stream.set_nodelay(true);
                    let conn = h1::Connection::new(stream, app.clone(), limits, stop.subscribe());
                    let h2 = Arc::clone(&h2);
                    tokio::spawn(async move {
                        // A client that breaks the protocol or hangs up only ends its connection.
                        if let h1::Outcome::Http2 { io, read, app, stop } = conn.run().await {
                            serve_h2(&h2, io, read, app, stop).await;
                        }
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
    stop.send_replace(true);
    tokio::select! {
        () = stop.closed() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(drain) => tracing::warn!("drain timeout reached; closing remaining connections"),
    }
}

/// One HTTP/2 connection, until it closes or, on shutdown, its open streams finish.
async fn serve_h2(
    h2: &H2,
    io: TcpStream,
    read: Bytes,
    app: crate::routes::App,
    mut stop: watch::Receiver<bool>,
) {
    let conn = h2.serve_connection(TokioIo::new(Replay { read, io }), app);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        _ = stop.wait_for(|stop| *stop) => {}
    }
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}

/// A connection whose first bytes were already read: reads give those back first.
struct Replay {
    read: Bytes,
    io: TcpStream,
}

impl AsyncRead for Replay {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if !self.read.is_empty() {
            let n = self.read.len().min(buf.remaining());
            buf.put_slice(&self.read[..n]);
            self.read.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Replay {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A burst of connections larger than std's backlog of 128 is queued at once, not left to
    /// SYN retries (kernels since 5.4 allow 4096 by default).
    #[tokio::test]
    async fn a_burst_of_connections_waits_in_the_accept_queue() {
        let listener = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let connects: Vec<_> = (0..300)
            .map(|_| {
                tokio::spawn(tokio::time::timeout(
                    Duration::from_millis(500),
                    TcpStream::connect(addr),
                ))
            })
            .collect();
        let mut open = Vec::new();
        for c in connects {
            open.push(c.await.unwrap().expect("connect waited").unwrap());
        }
        assert_eq!(open.len(), 300);
        drop(listener);
    }
}
