//! `stemscribe separate`: decode, separate, write WAV.

use std::fs::File;
use std::io::{BufWriter, IsTerminal};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::ArgGroup;
use indicatif::{ProgressBar, ProgressStyle};
use stemscribe_engine::{
    decode_file, decode_raw_pcm, write_wav, Audio, DecodeOptions, EncodeReport, Engine,
    EngineConfig, OutputSpec, Progress, RawPcm, RuntimeConfig, SeparationModel, SeparationOptions,
    WavSampleFormat, PROCESSING_RATE,
};

/// Inputs shorter than this get no progress bar.
const PROGRESS_MIN_SECS: f64 = 5.0;

/// Arguments of `stemscribe separate`.
#[derive(Debug, clap::Args)]
#[command(
    group(ArgGroup::new("destination").required(true).args(["output", "stems"])),
    after_help = "Output levels: 16-bit WAV is hard-clipped at full scale (never wrapped) and the \
number of clipped samples is reported; 32-bit float WAV (--float, and every --stems file) keeps \
peaks above full scale unchanged."
)]
pub struct Args {
    /// Audio file to separate: wav, mp3, aac (ADTS or m4a), flac, ogg; raw PCM with --pcm-rate.
    input: PathBuf,
    /// Model: 2track_vocal (vocals) or 2track_acc (accompaniment).
    #[arg(long, short, default_value = "2track_vocal")]
    model: SeparationModel,
    /// Write the model's stem to this WAV file.
    #[arg(long, short, value_name = "OUT.wav")]
    output: Option<PathBuf>,
    /// Write every stem of the model's family (vocals.wav, accompaniment.wav) into this
    /// directory, 44.1 kHz stereo 32-bit float, as long as the input.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["sample_rate", "channels", "float"])]
    stems: Option<PathBuf>,
    /// Output sample rate in Hz (resampled).
    #[arg(long, value_name = "HZ", default_value_t = PROCESSING_RATE)]
    sample_rate: u32,
    /// Output channels: 1 (mono downmix) or 2.
    #[arg(long, value_name = "1|2", default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=2))]
    channels: u8,
    /// Write 32-bit float WAV instead of 16-bit PCM.
    #[arg(long)]
    float: bool,
    /// Treat the input as headerless 16-bit little-endian PCM at this rate.
    #[arg(long, value_name = "HZ", requires = "pcm_channels")]
    pcm_rate: Option<u32>,
    /// Channel count of headerless PCM input.
    #[arg(long, value_name = "N", requires = "pcm_rate")]
    pcm_channels: Option<u16>,
    /// Reproduce Spleeter exactly: silent band above 11 kHz, no window overlap.
    #[arg(long, conflicts_with = "wiener")]
    spleeter_reference: bool,
    /// Refine the stems with a multichannel Wiener filter (slightly better, about 40% slower).
    #[arg(long)]
    wiener: bool,
}

/// Runs `stemscribe separate`.
pub fn run(args: &Args, threads: Option<usize>, quiet: bool) -> Result<()> {
    let started = Instant::now();
    let audio = decode_input(args)?;
    let separation = if args.spleeter_reference {
        SeparationOptions::spleeter_reference()
    } else {
        SeparationOptions {
            wiener: args.wiener,
            ..SeparationOptions::default()
        }
    };
    let engine = Engine::new(&EngineConfig {
        runtime: RuntimeConfig {
            threads,
            ..RuntimeConfig::default()
        },
        separation,
    })?;
    let bar = progress_bar(&audio, quiet);
    let mut on_progress = |p: Progress| {
        bar.set_length(p.total as u64);
        bar.set_position(p.done as u64);
    };
    if let Some(dir) = &args.stems {
        let stems = engine.separate_all(&audio, args.model, &mut on_progress)?;
        bar.finish_and_clear();
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create directory {}", dir.display()))?;
        let spec = OutputSpec {
            sample_rate: PROCESSING_RATE,
            channels: 2,
            sample_format: WavSampleFormat::Float32,
        };
        for stem in stems {
            let path = dir.join(format!("{}.wav", stem.name));
            write_atomically(stem.audio, &spec, &path)?;
            if !quiet {
                eprintln!("wrote {}", path.display());
            }
        }
    } else if let Some(path) = &args.output {
        let stem = engine.separate(&audio, args.model, &mut on_progress)?;
        bar.finish_and_clear();
        let spec = OutputSpec {
            sample_rate: args.sample_rate,
            channels: usize::from(args.channels),
            sample_format: if args.float {
                WavSampleFormat::Float32
            } else {
                WavSampleFormat::Pcm16
            },
        };
        let report = write_atomically(stem, &spec, path)?;
        if !quiet {
            if report.clipped_samples > 0 {
                eprintln!(
                    "warning: {} samples beyond full scale were clipped (use --float to keep them)",
                    report.clipped_samples
                );
            }
            eprintln!("wrote {}", path.display());
        }
    }
    if !quiet {
        eprintln!(
            "separated {:.1} s of audio in {:.1} s",
            audio.duration_secs(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

fn decode_input(args: &Args) -> Result<Audio> {
    let context = || format!("cannot decode {}", args.input.display());
    match (args.pcm_rate, args.pcm_channels) {
        (Some(sample_rate), Some(channels)) => {
            let bytes = std::fs::read(&args.input)
                .with_context(|| format!("cannot read {}", args.input.display()))?;
            decode_raw_pcm(
                &bytes,
                RawPcm {
                    sample_rate,
                    channels,
                },
                None,
            )
            .with_context(context)
        }
        _ => decode_file(&args.input, &DecodeOptions::default()).with_context(context),
    }
}

fn progress_bar(audio: &Audio, quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() || audio.duration_secs() < PROGRESS_MIN_SECS {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(1);
    if let Ok(style) =
        ProgressStyle::with_template("separating {bar:40} {percent:>3}% ({elapsed} / ~{duration})")
    {
        bar.set_style(style);
    }
    bar
}

/// Writes to a temporary file beside `path` and renames it, so a failure never leaves a
/// truncated file where the output should be.
fn write_atomically(audio: Audio, spec: &OutputSpec, path: &Path) -> Result<EncodeReport> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let result = File::create(&partial)
        .with_context(|| format!("cannot create {}", partial.display()))
        .and_then(|file| {
            write_wav(audio, spec, BufWriter::new(file))
                .with_context(|| format!("cannot write {}", path.display()))
        })
        .and_then(|report| {
            std::fs::rename(&partial, path)
                .with_context(|| format!("cannot move output to {}", path.display()))?;
            Ok(report)
        });
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}
