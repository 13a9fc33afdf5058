//! `stemscribe midi`: decode, separate the vocals, transcribe, write SMF and/or JSON.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use clap::ArgGroup;
use stemscribe_engine::{to_json, to_smf, Progress, SmfOptions, Transcription};

use crate::io::{load_engine, progress_bar, write_bytes, Hardware, Input, PitchArgs, TwoStemArgs};

/// Exit status when nothing is sung (the API's `40000010 InvalidData:NoOutput`).
pub const NO_OUTPUT_STATUS: u8 = 3;

/// Arguments of `stemscribe midi`.
#[derive(Debug, clap::Args)]
#[command(
    group(ArgGroup::new("destination").required(true).multiple(true).args(["output", "json"])),
    after_help = "Exit status 3 with `error: no singing melody found: ...` when the input has no \
sung melody: instrumental music, or a voice that speaks or raps. A small classifier, trained on \
sung, spoken, rapped and instrumental clips, reads the separated voice, its pitch and its notes \
and gives the probability of singing; notes are written at or above its threshold, with that \
probability as their confidence (docs/quality.md, \"The singing decision\")."
)]
pub struct Args {
    #[command(flatten)]
    input: Input,
    /// After the work, print to stderr the seconds each stage took (model load, decode,
    /// resample, STFT, network, masks, inverse STFT, post-processing, pitch features, notes,
    /// encode) and their share of the run.
    #[arg(long)]
    pub timings: bool,
    /// Write a Standard MIDI File (one track named `vocal`).
    #[arg(long, short, value_name = "OUT.mid")]
    output: Option<PathBuf>,
    /// Write the JSON note list `{"midiList": [...], "track": "vocal", "confidence": x}`.
    #[arg(long, value_name = "OUT.json")]
    json: Option<PathBuf>,
    /// Put every note on its nearest key, without pitch bends for the fractional pitch.
    #[arg(long)]
    no_pitch_bend: bool,
    /// The input is an isolated voice: skip vocal separation.
    #[arg(long)]
    isolated_voice: bool,
    #[command(flatten)]
    pitch: PitchArgs,
    #[command(flatten)]
    two_stem: TwoStemArgs,
}

/// Writes the API's JSON note list of `melody` to `path`, one line.
pub(crate) fn write_json(path: &Path, melody: &Transcription) -> Result<()> {
    write_bytes(path, format!("{}\n", to_json(melody)).as_bytes())
}

/// Runs `stemscribe midi`.
pub fn run(args: &Args, hardware: Hardware, quiet: bool) -> Result<()> {
    let started = Instant::now();
    let audio = args.input.decode()?;
    let engine = load_engine(hardware, args.two_stem.apply(args.pitch.config()))?;
    let bar = progress_bar(&audio, quiet, "transcribing");
    let mut on_progress = |p: Progress| {
        bar.set_length(p.total as u64);
        bar.set_position(p.done as u64);
    };
    let melody = if args.isolated_voice {
        engine.transcribe_voice(&audio, &mut on_progress)
    } else {
        engine.transcribe(&audio, &mut on_progress)
    };
    bar.finish_and_clear();
    let melody = melody?;
    if let Some(path) = &args.output {
        let options = SmfOptions {
            pitch_bend: !args.no_pitch_bend,
        };
        write_bytes(path, &to_smf(&melody, &options))?;
        if !quiet {
            eprintln!("wrote {}", path.display());
        }
    }
    if let Some(path) = &args.json {
        write_json(path, &melody)?;
        if !quiet {
            eprintln!("wrote {}", path.display());
        }
    }
    if !quiet {
        eprintln!(
            "transcribed {} notes (confidence {:.2}) from {:.1} s of audio in {:.1} s",
            melody.notes.len(),
            melody.confidence,
            audio.duration_secs(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
