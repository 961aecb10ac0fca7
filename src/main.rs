use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = gatehouse::cli::Cli::parse();
    gatehouse::cli::init_tracing(cli.log_format);
    gatehouse::cli::run(cli)
}
