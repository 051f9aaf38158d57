//! `banter-registry` binary: parse flags, set up logging, run, exit non-zero with one line on failure.

use banter_registry::cli::{Cli, Command};
use banter_registry::logging::LogFilter;
use clap::Parser;

/// mimalloc: a request allocates and frees many small objects across the
/// runtime's threads, which glibc malloc serves more slowly (see docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // Client commands log only warnings unless asked, so their output stays clean.
    let default = if matches!(cli.command, Command::Serve(_)) {
        cli.log.as_str()
    } else {
        "warn"
    };
    banter_registry::logging::init(LogFilter::parse(default), cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(banter_registry::cli::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
