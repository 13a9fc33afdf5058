//! What every command shares: loading the engine, reading the input, showing progress, writing
//! outputs safely.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use stemscribe_engine::{
    decode_file, decode_raw_pcm, Audio, DecodeOptions, Engine, EngineConfig, RawPcm,
};

/// Inputs shorter than this get no progress bar.
const PROGRESS_MIN_SECS: f64 = 5.0;

/// Loads the engine as `config` says, with `threads` worker threads (default: every core).
pub fn load_engine(threads: Option<usize>, mut config: EngineConfig) -> Result<Engine> {
    config.runtime.threads = threads;
    Ok(Engine::new(&config)?)
}

/// The input file and how to read it.
#[derive(Debug, clap::Args)]
pub struct Input {
    /// Audio file: wav, mp3, aac (ADTS or m4a), flac, ogg; raw PCM with --pcm-rate.
    pub input: PathBuf,
    /// Treat the input as headerless 16-bit little-endian PCM at this rate.
    #[arg(long, value_name = "HZ", requires = "pcm_channels")]
    pub pcm_rate: Option<u32>,
    /// Channel count of headerless PCM input.
    #[arg(long, value_name = "N", requires = "pcm_rate")]
    pub pcm_channels: Option<u16>,
}

impl Input {
    /// Decodes the input to 44.1 kHz stereo.
    pub fn decode(&self) -> Result<Audio> {
        let context = || format!("cannot decode {}", self.input.display());
        match (self.pcm_rate, self.pcm_channels) {
            (Some(sample_rate), Some(channels)) => {
                let bytes = std::fs::read(&self.input)
                    .with_context(|| format!("cannot read {}", self.input.display()))?;
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
            _ => decode_file(&self.input, &DecodeOptions::default()).with_context(context),
        }
    }
}

/// A progress bar on a terminal for inputs long enough to need one; hidden otherwise.
pub fn progress_bar(audio: &Audio, quiet: bool, task: &str) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() || audio.duration_secs() < PROGRESS_MIN_SECS {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(1);
    let template = format!("{task} {{bar:40}} {{percent:>3}}% ({{elapsed}} / ~{{duration}})");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar
}

/// Writes through `write` to a temporary file beside `path` and renames it, so a failure
/// never leaves a truncated file where the output should be.
pub fn write_atomically<T>(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> Result<T>,
) -> Result<T> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let result = File::create(&partial)
        .with_context(|| format!("cannot create {}", partial.display()))
        .and_then(|file| {
            let mut writer = BufWriter::new(file);
            let value = write(&mut writer)?;
            writer
                .flush()
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(value)
        })
        .and_then(|value| {
            std::fs::rename(&partial, path)
                .with_context(|| format!("cannot move output to {}", path.display()))?;
            Ok(value)
        });
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}
