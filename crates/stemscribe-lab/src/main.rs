//! `stemscribe-lab`: the developers' evaluations of the engine against ground truth. Users
//! never need it; `stemscribe` is their command. Every figure in `docs/quality.md` names the
//! `stemscribe-lab` command or script that reproduces it.
//!
//! Exit status: 0 on success, 1 when the evaluation failed (the reason is one line on stderr),
//! 2 when the command line is wrong.

mod corpus;
mod decision;
mod eval;

use std::process::ExitCode;

use clap::Parser;
use stemscribe_cli::io;

/// Quality evaluations of stemscribe against ground truth (for developers).
#[derive(Debug, Parser)]
#[command(name = "stemscribe-lab", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    global: io::GlobalArgs,
    #[command(subcommand)]
    command: eval::Command,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let hardware = cli.global.apply();
    match eval::run(&cli.command, hardware) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
