//! `proximity`: parses the command line, runs the command, prints the error chain and exits
//! with the documented code (see `proximity --help`).

use std::process::ExitCode;

use clap::Parser;
use proximity_provisioner::cli::Cli;
use proximity_provisioner::errors::exit_code;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(proximity_provisioner::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(exit_code(&error))
        }
    }
}
