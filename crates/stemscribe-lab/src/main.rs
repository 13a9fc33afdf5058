//! `stemscribe-lab`: the developers' evaluations of the engine against ground truth. Users
//! never need it; `stemscribe` is their command. Every figure in `docs/quality.md` names the
//! `stemscribe-lab` command or script that reproduces it.
//!
//! Exit status: 0 on success, 1 when the evaluation failed (the reason is one line on stderr),
//! 2 when the command line is wrong.

mod corpus;
mod eval;

use std::process::ExitCode;

use clap::Parser;
use stemscribe_cli::io;
use stemscribe_engine::Device;

/// Quality evaluations of stemscribe against ground truth (for developers).
#[derive(Debug, Parser)]
#[command(name = "stemscribe-lab", version, about, long_about = None)]
struct Cli {
    /// Print nothing but errors and the results.
    #[arg(long, short, global = true)]
    quiet: bool,
    /// Worker threads for inference and signal processing (default: every core).
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: Option<u16>,
    /// Where the models run: `cuda`, `cpu`, or `auto` (as `stemscribe --device`).
    #[arg(long, global = true, value_name = "DEVICE", default_value = "auto")]
    device: Device,
    #[command(subcommand)]
    command: eval::Command,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let threads = cli.threads.map(usize::from);
    if let Some(threads) = threads {
        // Only fails if a pool already exists, which cannot happen this early.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global();
    }
    let hardware = io::Hardware {
        threads,
        device: cli.device,
        quiet: cli.quiet,
    };
    match eval::run(&cli.command, hardware) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
