//! The `driftwatch` binary: parse, run, print any error as one line, exit 2.

use clap::Parser;
use driftwatch::cli::{Cli, Command};

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => driftwatch::commands::run(*args),
        Command::Validate { specs } => driftwatch::commands::validate(&specs),
        Command::Init(args) => driftwatch::commands::init(&args),
        Command::Demo(args) => driftwatch::commands::demo(&args),
        Command::Report(args) => driftwatch::commands::report(&args),
        Command::Loadtest(args) => driftwatch::commands::loadtest(&args),
    };
    if let Err(e) = result {
        eprintln!("driftwatch: {e:#}");
        std::process::exit(2);
    }
}
