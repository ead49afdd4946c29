//! Command-line entry point: arguments → checked configuration → logging → serve.

use std::process::ExitCode;

use clap::Parser;

use azure_openai_proxy::cli::Args;
use azure_openai_proxy::config::Config;

fn main() -> ExitCode {
    let config = match Config::from_args(Args::parse()) {
        Ok(c) => c,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    azure_openai_proxy::telemetry::init(config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
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
