//! What every command shares: loading the engine, reading the input, showing progress, writing
//! outputs safely.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use stemscribe_engine::{
    decode_file, decode_raw_pcm, Audio, DecodeOptions, Device, DeviceUse, Engine, EngineConfig,
    PitchModel, RawPcm, RuntimeConfig,
};

/// Inputs shorter than this get no progress bar.
const PROGRESS_MIN_SECS: f64 = 5.0;

/// The options every command of `stemscribe` and `stemscribe-lab` takes, before or after it.
#[derive(Debug, Clone, clap::Args)]
pub struct GlobalArgs {
    /// Print nothing but errors (results a command prints still go to stdout).
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Worker threads for inference and signal processing (default: every core).
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: Option<u16>,
    /// Where the models run: `cuda` (an NVIDIA GPU, with the GPU build from
    /// `stemscribe setup --gpu`), `cpu`, or `auto`: CUDA when the GPU build is installed and
    /// works, else the CPU (saying why when CUDA was tried).
    #[arg(long, global = true, value_name = "DEVICE", default_value = "auto")]
    pub device: Device,
}

impl GlobalArgs {
    /// Sizes rayon's global pool to `--threads` and returns the hardware choices. Call once,
    /// before any parallel work.
    pub fn apply(&self) -> Hardware {
        self.apply_for(1)
    }

    /// As [`GlobalArgs::apply`], for a command that runs up to `jobs` inferences at once
    /// (`serve --max-jobs`): `--threads` is each one's, so rayon's pool gets that many for each
    /// job, or their signal processing would queue for one job's threads.
    pub fn apply_for(&self, jobs: usize) -> Hardware {
        let threads = self.threads.map(usize::from);
        if let Some(threads) = threads {
            // Only fails if a pool already exists, which cannot happen this early.
            let _ = rayon::ThreadPoolBuilder::new()
                .num_threads(threads * jobs.max(1))
                .build_global();
        }
        Hardware {
            threads,
            device: self.device,
            quiet: self.quiet,
        }
    }
}

/// Where inference runs: the global `--threads` and `--device`.
#[derive(Debug, Clone, Copy)]
pub struct Hardware {
    /// Worker threads (default: every core).
    pub threads: Option<usize>,
    /// The device asked for.
    pub device: Device,
    /// `--quiet`: no note when CUDA falls back to the CPU.
    pub quiet: bool,
}

impl Hardware {
    /// The runtime configuration these choices make.
    pub fn runtime(self) -> RuntimeConfig {
        RuntimeConfig {
            threads: self.threads,
            device: self.device,
            ..RuntimeConfig::default()
        }
    }

    /// Prints why the models run on the CPU, when CUDA was tried (unless `--quiet`).
    pub fn report_fallback(self, device: &DeviceUse) {
        if let DeviceUse::Cpu {
            fallback: Some(reason),
        } = device
        {
            if !self.quiet {
                eprintln!("note: running on the CPU: CUDA was tried and failed: {reason}");
            }
        }
    }
}

/// Loads the engine as `config` says, on `hardware`; says on stderr when CUDA was tried and
/// the models run on the CPU instead.
pub fn load_engine(hardware: Hardware, mut config: EngineConfig) -> Result<Engine> {
    config.runtime.threads = hardware.threads;
    config.runtime.device = hardware.device;
    let engine = Engine::new(&config)?;
    hardware.report_fallback(engine.device());
    Ok(engine)
}

/// The pitch-tracker choice of the commands that transcribe.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct PitchArgs {
    /// Pitch tracker: swift-f0, crepe-tiny, crepe-full, pesto or fcpe (installed by scripts/setup.sh;
    /// docs/quality.md compares them).
    #[arg(long, value_name = "MODEL", default_value_t = PitchModel::default())]
    pub pitch_model: PitchModel,
}

impl PitchArgs {
    /// The engine configuration that runs this tracker, everything else at its default.
    pub fn config(self) -> EngineConfig {
        EngineConfig {
            pitch_model: self.pitch_model,
            ..EngineConfig::default()
        }
    }
}

/// The choice of model behind `2track_*`.
#[derive(Debug, Clone, clap::Args)]
pub struct TwoStemArgs {
    /// Serve 2track_* (and the vocals transcription reads) from this MDX-Net vocal or
    /// instrumental model, installed with `stemscribe models add` (its NAME), instead of
    /// Spleeter.
    #[arg(long, value_name = "NAME")]
    pub two_stem_model: Option<String>,
}

impl TwoStemArgs {
    /// `config` with this choice applied.
    pub fn apply(&self, config: EngineConfig) -> EngineConfig {
        EngineConfig {
            two_stem_model: self.two_stem_model.clone(),
            ..config
        }
    }
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
    /// Refuse inputs longer than this, in seconds, as soon as decoding passes it (memory grows
    /// by about 100 MB per minute of audio).
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_MAX_DURATION_SECS,
          value_parser = positive_seconds)]
    pub max_duration: f64,
}

/// The default of `--max-duration`: the invoke API's limit.
pub const DEFAULT_MAX_DURATION_SECS: f64 = 600.0;

/// A positive, finite number of seconds.
pub fn positive_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && seconds > 0.0 => Ok(seconds),
        _ => Err(format!("`{text}` is not a positive number of seconds")),
    }
}

impl Input {
    /// Decodes the input to 44.1 kHz stereo.
    pub fn decode(&self) -> Result<Audio> {
        let context = || {
            format!(
                "cannot decode {} (--max-duration raises the {} s limit)",
                self.input.display(),
                self.max_duration
            )
        };
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
                    Some(self.max_duration),
                )
                .with_context(context)
            }
            _ => decode_file(
                &self.input,
                &DecodeOptions {
                    max_duration_secs: Some(self.max_duration),
                    ..DecodeOptions::default()
                },
            )
            .with_context(context),
        }
    }
}

/// Decodes `path` (stream `track` of a multi-stream file, else its audio track) to 44.1 kHz
/// stereo, without a duration limit: for the evaluations' known clips.
pub fn decode_track(path: &Path, track: Option<usize>) -> Result<Audio> {
    let options = DecodeOptions {
        track,
        ..DecodeOptions::default()
    };
    decode_file(path, &options).with_context(|| format!("cannot decode {}", path.display()))
}

/// File name extensions read as audio when a folder is searched.
const AUDIO_EXTENSIONS: [&str; 9] = [
    "wav", "mp3", "flac", "ogg", "m4a", "aac", "mp4", "oga", "opus",
];

/// Every audio file under `dir`, recursively and sorted (symbolic links to folders are not
/// followed); none when `dir` does not exist.
pub fn find_audio(dir: &Path) -> Result<Vec<PathBuf>> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) -> Result<()> {
        let entries =
            std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("cannot read {}", dir.display()))?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                walk(&path, found)?;
            } else if path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| AUDIO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
            {
                found.push(path);
            }
        }
        Ok(())
    }
    let mut found = Vec::new();
    if dir.is_dir() {
        walk(dir, &mut found)?;
    }
    found.sort();
    Ok(found)
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

/// Partial files being written now, removed by [`remove_partials_on_signal`]'s handler.
static PARTIALS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Removes the partial outputs being written when SIGINT, SIGTERM or SIGHUP arrives, then
/// exits with 128 + 2 as an interrupted command does (a hard kill cannot be caught: partial
/// files exist only while an output is being written, at the very end of a command).
pub fn remove_partials_on_signal() -> Result<()> {
    ctrlc::set_handler(|| {
        if let Ok(partials) = PARTIALS.lock() {
            for partial in partials.iter() {
                let _ = std::fs::remove_file(partial);
            }
        }
        std::process::exit(130);
    })
    .context("cannot install the signal handler")
}

/// Writes an output through `write`. A regular file (or a new one) is written to
/// `<file>.partial` beside it and renamed at the end, so a failure or an interruption never
/// leaves a truncated file where the output should be; a symbolic link is followed and its
/// target written; a pipe, device or socket is written straight through, never replaced.
pub fn write_output<T>(path: &Path, write: impl FnOnce(&mut dyn Write) -> Result<T>) -> Result<T> {
    let target = follow_links(path)?;
    match std::fs::metadata(&target) {
        Ok(meta) if meta.is_dir() => {
            anyhow::bail!("cannot write {}: it is a directory", path.display())
        }
        Ok(meta) if !meta.is_file() => {
            let file = OpenOptions::new()
                .write(true)
                .open(&target)
                .with_context(|| format!("cannot open {}", path.display()))?;
            write_buffered(file, path, write)
        }
        _ => write_atomically(&target, write),
    }
}

/// Writes `bytes` to `path` as [`write_output`] does.
pub fn write_bytes(path: &Path, bytes: &[u8]) -> Result<()> {
    write_output(path, |w| {
        w.write_all(bytes)
            .with_context(|| format!("cannot write {}", path.display()))
    })
}

/// Runs `write` on `file` through a buffer and flushes it; errors name `path`.
fn write_buffered<T>(
    file: File,
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> Result<T>,
) -> Result<T> {
    let mut writer = BufWriter::new(file);
    let value = write(&mut writer)?;
    writer
        .flush()
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(value)
}

/// The file `path` names once every symbolic link on the way is followed (the link itself
/// when it dangles: its target is created).
fn follow_links(path: &Path) -> Result<PathBuf> {
    let mut current = path.to_owned();
    for _ in 0..MAX_LINKS {
        match std::fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = std::fs::read_link(&current)
                    .with_context(|| format!("cannot read the link {}", current.display()))?;
                current = match current.parent() {
                    Some(parent) if target.is_relative() => parent.join(target),
                    _ => target,
                };
            }
            _ => return Ok(current),
        }
    }
    anyhow::bail!(
        "cannot write {}: too many levels of symbolic links",
        path.display()
    )
}

/// Links followed before giving up, as the kernel does.
const MAX_LINKS: usize = 40;

/// Writes through `write` to `<path>.partial` and renames it over `path`.
fn write_atomically<T>(path: &Path, write: impl FnOnce(&mut dyn Write) -> Result<T>) -> Result<T> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    if let Ok(mut partials) = PARTIALS.lock() {
        partials.push(partial.clone());
    }
    let result = File::create(&partial)
        .with_context(|| format!("cannot create {}", partial.display()))
        .and_then(|file| write_buffered(file, path, write))
        .and_then(|value| {
            std::fs::rename(&partial, path)
                .with_context(|| format!("cannot move output to {}", path.display()))?;
            Ok(value)
        });
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    if let Ok(mut partials) = PARTIALS.lock() {
        partials.retain(|p| p != &partial);
    }
    result
}
