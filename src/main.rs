use std::process::ExitCode;

use clap::Parser;

/// Config loading and planning allocate many small strings and maps; mimalloc halves their cost
/// against the system allocator (see `cargo bench --bench declarative`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = gatehouse::cli::Cli::parse();
    gatehouse::cli::init_tracing(cli.log_format);
    gatehouse::cli::run(cli)
}
