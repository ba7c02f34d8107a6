//! The `cellvae` binary: parses the command line, runs it, and turns a library error into one
//! `error:` line and exit code 1 (clap exits 2 on usage errors).

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cellvae::cli::Cli::parse();
    match cellvae::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
