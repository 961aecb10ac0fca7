use std::process::ExitCode;

use clap::Parser;

/// Config loading and planning allocate many small strings and maps; mimalloc halves their cost
/// against the system allocator (see `cargo bench --bench declarative`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    quiet_on_closed_stdout();
    let cli = gatehouse::cli::Cli::parse();
    let _traces = gatehouse::cli::init_tracing(cli.log_format);
    gatehouse::cli::run(cli)
}

/// `gatehouse … | head` closes the pipe once it has read enough: the reader's choice, not an error.
/// Printing to a standard output closed that way ends the command quietly with 0 (issue 22.9), not
/// with a panic and a backtrace. Every other panic is reported as before.
fn quiet_on_closed_stdout() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(0);
        }
        report(info)
    }));
}
