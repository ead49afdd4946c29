//! A TCP relay that does nothing but copy bytes, for `bench/run.sh`: the cost of putting any
//! process between a client and an engine on this machine (its scheduler wake-ups and socket
//! copies), with no HTTP, checks or logging. What the proxy adds beyond this relay is its own
//! work.
//!
//!     cargo run --release --example relay -- LISTEN_PORT UPSTREAM_HOST:PORT
//!
//! One upstream connection per client connection, on a single-threaded runtime like the
//! proxy's on one CPU.

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(port), Some(upstream)) = (args.next(), args.next()) else {
        eprintln!("usage: relay LISTEN_PORT UPSTREAM_HOST:PORT");
        return ExitCode::from(2);
    };
    let Ok(port) = port.parse::<u16>() else {
        eprintln!("relay: LISTEN_PORT must be a port number, not {port:?}");
        return ExitCode::from(2);
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("relay: no runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("relay: cannot listen on 127.0.0.1:{port}: {e}");
                return ExitCode::FAILURE;
            }
        };
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                continue;
            };
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let Ok(mut engine) = tokio::net::TcpStream::connect(&upstream).await else {
                    return;
                };
                let _ = client.set_nodelay(true);
                let _ = engine.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional(&mut client, &mut engine).await;
            });
        }
    })
}
