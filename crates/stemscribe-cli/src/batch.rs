//! `stemscribe batch`: every audio file under a folder, `--jobs` at a time (one engine per job),
//! resumable, with one progress bar and a summary.
//!
//! Each input `IN/a/song.mp3` gets its own folder `OUT/a/song/` holding what `--stems` writes
//! (every stem of the model's family) or, with `--midi`, `song.mid` and `song.json`. A file
//! `OUT/a/song/stemscribe.json` is written last and records the result; inputs whose record
//! says `ok` or `no_output` are skipped on the next run, so an interrupted batch resumes
//! where it stopped. A failing input is recorded and the batch goes on; the exit status is 1
//! if any input failed.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use stemscribe_engine::{
    decode_file, to_smf, DecodeOptions, Engine, EngineConfig, EngineError, OutputFormat,
    OutputSpec, SeparationModel, SmfOptions, WavSampleFormat, PROCESSING_RATE,
};

use crate::io::{
    find_audio, load_engine, positive_seconds, write_bytes, Hardware, PitchArgs, TwoStemArgs,
    DEFAULT_MAX_DURATION_SECS,
};
use crate::midi::write_json;
use crate::separate::write_stems;

/// The per-input record, written last.
const RECORD: &str = "stemscribe.json";

/// Arguments of `stemscribe batch`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folder of inputs (searched recursively).
    input_dir: PathBuf,
    /// Folder of outputs: one sub-folder per input, mirroring the input tree.
    output_dir: PathBuf,
    /// Separation model whose stems are written (as --stems writes them).
    #[arg(long, short, default_value = "2track_vocal", conflicts_with = "midi")]
    model: SeparationModel,
    /// Transcribe the sung melody instead: NAME.mid and NAME.json.
    #[arg(long)]
    midi: bool,
    /// Stem format: wav (32-bit float), mp3 or aac.
    #[arg(long, value_name = "wav|mp3|aac", conflicts_with = "midi")]
    format: Option<OutputFormat>,
    /// Inputs processed at once, each by its own engine with its share of the threads (an
    /// engine runs one inference at a time); more costs memory (one set of models each).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    jobs: u16,
    /// Where to write the summary CSV (`file,status,seconds,error`).
    #[arg(long, value_name = "FILE")]
    summary: Option<PathBuf>,
    /// Refuse inputs longer than this, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_MAX_DURATION_SECS,
          value_parser = positive_seconds)]
    max_duration: f64,
    #[command(flatten)]
    pitch: PitchArgs,
    #[command(flatten)]
    two_stem: TwoStemArgs,
}

/// How one input ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Ok,
    NoOutput,
    Skipped,
    Failed,
}

impl Status {
    fn name(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::NoOutput => "no_output",
            Self::Skipped => "skipped",
            Self::Failed => "failed",
        }
    }
}

/// One line of the summary.
#[derive(Debug)]
struct Row {
    file: PathBuf,
    status: Status,
    seconds: f64,
    error: String,
}

/// Runs `stemscribe batch`.
pub fn run(args: &Args, hardware: Hardware, quiet: bool) -> Result<()> {
    anyhow::ensure!(
        args.input_dir.is_dir(),
        "{} is not a folder",
        args.input_dir.display()
    );
    let inputs = find_audio(&args.input_dir)?;
    let jobs = usize::from(args.jobs).min(inputs.len()).max(1);
    let threads = hardware
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let share = |job| Hardware {
        threads: Some((threads / jobs).max(1)),
        // One note is enough when CUDA falls back.
        quiet: hardware.quiet || job > 0,
        ..hardware
    };
    let config = EngineConfig {
        separation_only: !args.midi,
        ..args.two_stem.apply(args.pitch.config())
    };
    let engines = (0..jobs)
        .map(|job| load_engine(share(job), config.clone()))
        .collect::<Result<Vec<_>>>()?;
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::new(inputs.len() as u64);
        if let Ok(style) = ProgressStyle::with_template(
            "batch {bar:40} {pos}/{len} files ({elapsed} / ~{duration}) {msg}",
        ) {
            bar.set_style(style);
        }
        bar
    };
    let queue = Arc::new(Mutex::new(inputs.into_iter()));
    let rows = Arc::new(Mutex::new(Vec::new()));
    std::thread::scope(|scope| {
        for engine in &engines {
            let (queue, rows, bar) = (queue.clone(), rows.clone(), &bar);
            scope.spawn(move || loop {
                let next = queue.lock().ok().and_then(|mut q| q.next());
                let Some(input) = next else { break };
                let row = process(engine, args, &input);
                bar.inc(1);
                if row.status == Status::Failed {
                    bar.suspend(|| eprintln!("failed: {}: {}", row.file.display(), row.error));
                }
                if let Ok(mut rows) = rows.lock() {
                    rows.push(row);
                }
            });
        }
    });
    bar.finish_and_clear();
    let mut rows = std::mem::take(
        &mut *rows
            .lock()
            .map_err(|_| anyhow::anyhow!("a worker panicked"))?,
    );
    rows.sort_by(|a, b| a.file.cmp(&b.file));
    let summary = args
        .summary
        .clone()
        .unwrap_or_else(|| args.output_dir.join("summary.csv"));
    std::fs::create_dir_all(&args.output_dir)
        .with_context(|| format!("cannot create {}", args.output_dir.display()))?;
    write_bytes(&summary, summary_csv(&rows).as_bytes())?;
    let count = |status| rows.iter().filter(|r| r.status == status).count();
    let failed = count(Status::Failed);
    if !quiet {
        eprintln!(
            "{} files: {} done, {} without a sung melody, {} skipped (done before), {failed} failed; summary in {}",
            rows.len(),
            count(Status::Ok),
            count(Status::NoOutput),
            count(Status::Skipped),
            summary.display()
        );
    }
    anyhow::ensure!(
        failed == 0,
        "{failed} of {} files failed (see {})",
        rows.len(),
        summary.display()
    );
    Ok(())
}

/// The output folder of `input`: its path under the input folder, without its extension.
fn output_folder(args: &Args, input: &Path) -> PathBuf {
    let relative = input.strip_prefix(&args.input_dir).unwrap_or(input);
    args.output_dir.join(relative.with_extension(""))
}

/// Runs one input unless its record says it is done; never fails, the row says how it went.
fn process(engine: &Engine, args: &Args, input: &Path) -> Row {
    let started = Instant::now();
    let folder = output_folder(args, input);
    let row = |status, error: String| Row {
        file: input.to_owned(),
        status,
        seconds: started.elapsed().as_secs_f64(),
        error,
    };
    if finished_before(&folder.join(RECORD)) {
        return row(Status::Skipped, String::new());
    }
    let result = run_one(engine, args, input, &folder);
    let (status, error) = match result {
        Ok(status) => (status, String::new()),
        Err(error) => (Status::Failed, format!("{error:#}")),
    };
    let record = serde_json::json!({
        "status": status.name(),
        "seconds": (started.elapsed().as_secs_f64() * 1e3).round() / 1e3,
        "error": error,
    });
    let written = std::fs::create_dir_all(&folder)
        .map_err(anyhow::Error::from)
        .and_then(|()| write_bytes(&folder.join(RECORD), format!("{record}\n").as_bytes()));
    match written {
        Ok(()) => row(status, error),
        Err(e) => row(Status::Failed, format!("{error} (and the record: {e:#})")),
    }
}

/// Whether the record at `path` says the input was done (sung notes or none, not a failure).
fn finished_before(path: &Path) -> bool {
    let status = std::fs::read(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|record| record["status"].as_str().map(str::to_owned));
    [Status::Ok, Status::NoOutput]
        .iter()
        .any(|done| status.as_deref() == Some(done.name()))
}

/// Decodes, separates or transcribes, and writes the outputs of one input.
fn run_one(engine: &Engine, args: &Args, input: &Path, folder: &Path) -> Result<Status> {
    let audio = decode_file(
        input,
        &DecodeOptions {
            max_duration_secs: Some(args.max_duration),
            ..DecodeOptions::default()
        },
    )
    .with_context(|| format!("cannot decode {}", input.display()))?;
    std::fs::create_dir_all(folder)
        .with_context(|| format!("cannot create {}", folder.display()))?;
    if args.midi {
        let melody = match engine.transcribe(&audio, &mut |_| {}) {
            Ok(melody) => melody,
            Err(EngineError::NoOutput(_)) => return Ok(Status::NoOutput),
            Err(other) => return Err(other.into()),
        };
        let name = input
            .file_stem()
            .map_or_else(|| "melody".into(), |s| s.to_string_lossy().into_owned());
        write_bytes(
            &folder.join(format!("{name}.mid")),
            &to_smf(&melody, &SmfOptions::default()),
        )?;
        write_json(&folder.join(format!("{name}.json")), &melody)?;
        return Ok(Status::Ok);
    }
    let spec = OutputSpec {
        sample_rate: PROCESSING_RATE,
        channels: 2,
        format: args
            .format
            .unwrap_or(OutputFormat::Wav(WavSampleFormat::Float32)),
    };
    write_stems(
        engine,
        &audio,
        args.model,
        &spec,
        folder,
        &mut |_| {},
        &mut |_| {},
    )?;
    Ok(Status::Ok)
}

/// The summary as CSV: `file,status,seconds,error`, fields quoted where needed.
fn summary_csv(rows: &[Row]) -> String {
    let quote = |field: &str| {
        if field.contains([',', '"', '\n']) {
            format!("\"{}\"", field.replace('"', "\"\""))
        } else {
            field.to_owned()
        }
    };
    let mut csv = String::from("file,status,seconds,error\n");
    for row in rows {
        let _ = writeln!(
            csv,
            "{},{},{:.3},{}",
            quote(&row.file.to_string_lossy()),
            row.status.name(),
            row.seconds,
            quote(&row.error)
        );
    }
    csv
}
