//! Command-line entry point: arguments → checked configuration → logging → serve.

use std::process::ExitCode;

use clap::Parser;

use azure_openai_proxy::cli::Args;
use azure_openai_proxy::config::Config;

/// Freed blocks wait per thread for the next request's allocations (see `alloc`).
#[global_allocator]
static ALLOCATOR: azure_openai_proxy::alloc::CachingAlloc = azure_openai_proxy::alloc::CachingAlloc;

fn main() -> ExitCode {
    let args = Args::parse();
    let check_only = args.check_config;
    let config = match Config::from_args(args) {
        Ok(c) => c,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    if check_only {
        let upstreams: Vec<String> = config
            .upstreams
            .iter()
            .map(|u| format!("{} ({})", u.name, u.urls.join(", ")))
            .collect();
        println!(
            "configuration OK: listen {}, upstreams: {}, {} deployment(s) declared, {} API key(s)",
            config.listen,
            upstreams.join("; "),
            config.deployments.len(),
            config.api_keys.len()
        );
        return ExitCode::SUCCESS;
    }
    let _log_guard = azure_openai_proxy::telemetry::init(config.log_format);
    // One thread: a current-thread runtime, which skips the work-stealing pool's cross-thread
    // bookkeeping (measured: about a fifth more requests per second on one core).
    let mut builder = if config.worker_threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(config.worker_threads);
        b
    };
    let runtime = match builder.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(azure_openai_proxy::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
