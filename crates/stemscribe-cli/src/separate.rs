//! `stemscribe separate`: decode, separate, write WAV, MP3 or AAC.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::ArgGroup;
use stemscribe_engine::runtime::setup::cache_dir;
use stemscribe_engine::runtime::Runtime;
use stemscribe_engine::separate::{
    convert_checkpoint, is_checkpoint, Ensemble, EnsembleMethod, MdxOptions, ModelFile, Separate,
};
use stemscribe_engine::{
    encode, Audio, EncodeReport, Engine, EngineConfig, OutputFormat, OutputSpec, Progress,
    SeparationModel, SeparationOptions, WavSampleFormat, PROCESSING_RATE,
};

use crate::io::{load_engine, progress_bar, write_output, Hardware, Input, TwoStemArgs};
use crate::UsageError;

/// Arguments of `stemscribe separate`.
#[derive(Debug, clap::Args)]
#[command(
    group(ArgGroup::new("destination").required(true).args(["output", "stems"])),
    after_help = "Output levels: 16-bit WAV is hard-clipped at full scale (never wrapped) and the \
number of clipped samples is reported; so are MP3 and AAC. 32-bit float WAV (--float, and \
--stems files unless --format is given) keeps peaks above full scale unchanged. MP3 (LAME VBR \
-V 2, 8-48 kHz) decodes to exactly the input's length; AAC-LC in ADTS (96 kbit/s per channel, \
8-96 kHz) starts with the decoder's 1024-sample priming frame and is within one frame of the \
input's length."
)]
pub struct Args {
    #[command(flatten)]
    input: Input,
    /// After the work, print to stderr the seconds each stage took (model load, decode,
    /// resample, STFT, network, masks, inverse STFT, post-processing, pitch features, notes,
    /// encode) and their share of the run.
    #[arg(long)]
    pub timings: bool,
    /// Model: 2track_vocal (vocals), 2track_acc (accompaniment), bs_4track_vocal (vocals of
    /// a four-stem split, mains hum removed) or bs_4track_acc (its drums + bass + other,
    /// mains hum and stationary noise removed).
    #[arg(long, short, default_value = "2track_vocal")]
    model: SeparationModel,
    /// Write the model's stem to this file.
    #[arg(long, short, value_name = "OUT")]
    output: Option<PathBuf>,
    /// Write every stem of the model's family into this directory (vocals, accompaniment;
    /// for bs_4track_*: vocals, drums, bass, other), 44.1 kHz stereo (32-bit float unless --format is given).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["sample_rate", "channels", "float"])]
    stems: Option<PathBuf>,
    /// Output sample rate in Hz (resampled).
    #[arg(long, value_name = "HZ", default_value_t = PROCESSING_RATE)]
    sample_rate: u32,
    /// Output channels: 1 (mono downmix) or 2.
    #[arg(long, value_name = "1|2", default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=2))]
    channels: u8,
    /// Output format: wav, mp3 or aac [default: from the OUT extension, else wav].
    #[arg(long, value_name = "wav|mp3|aac")]
    format: Option<OutputFormat>,
    /// Write 32-bit float WAV instead of 16-bit PCM.
    #[arg(long)]
    float: bool,
    /// Reproduce Spleeter exactly: silent band above 11 kHz, no window overlap.
    #[arg(long, conflicts_with = "wiener")]
    spleeter_reference: bool,
    /// Refine the stems with a multichannel Wiener filter (slightly better, about 40% slower).
    #[arg(long)]
    wiener: bool,
    /// Run this model file instead of --model and write its stems into --stems DIR: a UVR
    /// MDX-Net ONNX file (parameters from NAME.json or MODEL.json beside it, else recognised
    /// by UVR's hash), an HT-Demucs ONNX file (demucs-onnx's layout), or a BS-RoFormer,
    /// Mel-Band RoFormer or MDX23C checkpoint (MODEL.ckpt with MODEL.yaml beside it or --config),
    /// converted once and cached; the family is told from the file. Repeat it for an
    /// ensemble: each model separates the song and the stems of the same name are combined
    /// (--ensemble).
    #[arg(long, value_name = "FILE", requires = "stems",
          conflicts_with_all = ["spleeter_reference", "wiener"])]
    model_file: Vec<PathBuf>,
    /// With several --model-file: how their stems of the same name are combined, as
    /// audio-separator's ensembler does: avg_wave (the mean) or median_wave (the median,
    /// sample by sample).
    #[arg(
        long,
        value_name = "METHOD",
        default_value = "avg_wave",
        requires = "model_file"
    )]
    ensemble: EnsembleMethod,
    /// With one checkpoint --model-file: its YAML config [default: MODEL.yaml beside it].
    #[arg(long, value_name = "FILE.yaml", requires = "model_file")]
    config: Option<PathBuf>,
    /// With --model-file: also run the network on the negated spectrogram and average (UVR's
    /// "denoise"; twice the network time).
    #[arg(long, requires = "model_file")]
    mdx_denoise: bool,
    #[command(flatten)]
    two_stem: TwoStemArgs,
}

/// Runs `stemscribe separate`.
pub fn run(args: &Args, hardware: Hardware, quiet: bool) -> Result<()> {
    let started = Instant::now();
    let spec = args.output_spec()?;
    spec.check().map_err(|e| UsageError(e.to_string()))?;
    let audio = args.input.decode()?;
    if args.model_file.is_empty() {
        run_engine(args, &audio, &spec, hardware, quiet)?;
    } else {
        let dir = args.stems.as_deref().unwrap_or(Path::new("."));
        run_model_files(args, &audio, &spec, dir, hardware, quiet)?;
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

impl Args {
    /// The delivery format: `--format`, else the output's extension, else WAV; `--stems`
    /// files are 44.1 kHz stereo.
    fn output_spec(&self) -> Result<OutputSpec> {
        let named = self.format.or_else(|| {
            self.output
                .as_deref()
                .and_then(Path::extension)
                .and_then(|e| e.to_str())
                .and_then(|e| e.parse().ok())
        });
        let wav = |float| {
            OutputFormat::Wav(if float {
                WavSampleFormat::Float32
            } else {
                WavSampleFormat::Pcm16
            })
        };
        let format = match named {
            None if self.stems.is_some() => wav(true),
            None | Some(OutputFormat::Wav(_)) => wav(self.float),
            Some(_) if self.float => {
                return Err(UsageError("--float applies to WAV output only".into()).into())
            }
            Some(lossy) => lossy,
        };
        Ok(if self.stems.is_some() {
            OutputSpec {
                sample_rate: PROCESSING_RATE,
                channels: 2,
                format,
            }
        } else {
            OutputSpec {
                sample_rate: self.sample_rate,
                channels: usize::from(self.channels),
                format,
            }
        })
    }
}

/// Separates `audio` into every stem of `model`'s family and writes each into `dir` as
/// `<stem>.<extension>` as soon as it exists (so only one is held), calling `written` with its
/// path; stops at the first stem that cannot be written.
pub(crate) fn write_stems(
    engine: &Engine,
    audio: &Audio,
    model: SeparationModel,
    spec: &OutputSpec,
    dir: &Path,
    progress: &mut dyn FnMut(Progress),
    written: &mut dyn FnMut(&Path),
) -> Result<()> {
    let mut failure = None;
    engine.separate_each(audio, model, progress, &mut |stem| {
        let path = dir.join(format!("{}.{}", stem.name(), spec.format.extension()));
        match write_file(stem.audio, spec, &path) {
            Ok(_) => {
                written(&path);
                ControlFlow::Continue(())
            }
            Err(error) => {
                failure = Some(error);
                ControlFlow::Break(())
            }
        }
    })?;
    failure.map_or(Ok(()), Err)
}

/// Separates `audio` with the engine's model (`--model`) and writes `-o` or `--stems`.
fn run_engine(
    args: &Args,
    audio: &Audio,
    spec: &OutputSpec,
    hardware: Hardware,
    quiet: bool,
) -> Result<()> {
    let separation = if args.spleeter_reference {
        SeparationOptions::spleeter_reference()
    } else {
        SeparationOptions {
            wiener: args.wiener,
            ..SeparationOptions::default()
        }
    };
    let engine = load_engine(
        hardware,
        args.two_stem.apply(EngineConfig {
            separation,
            separation_only: true,
            ..EngineConfig::default()
        }),
    )?;
    let bar = progress_bar(audio, quiet, "separating");
    let mut on_progress = |p: Progress| {
        bar.set_length(p.total as u64);
        bar.set_position(p.done as u64);
    };
    if let Some(dir) = &args.stems {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create directory {}", dir.display()))?;
        let written = write_stems(
            &engine,
            audio,
            args.model,
            spec,
            dir,
            &mut on_progress,
            &mut |path| {
                if !quiet {
                    bar.suspend(|| eprintln!("wrote {}", path.display()));
                }
            },
        );
        bar.finish_and_clear();
        written?;
    } else if let Some(path) = &args.output {
        let stem = engine.separate(audio, args.model, &mut on_progress)?;
        bar.finish_and_clear();
        let report = write_file(stem, spec, path)?;
        if !quiet {
            if report.clipped_samples > 0 {
                eprintln!(
                    "warning: {} samples beyond full scale were clipped (32-bit float WAV, \
                     --float, keeps them)",
                    report.clipped_samples
                );
            }
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(())
}

/// Opens the model in `file`, converting a checkpoint first.
fn open_model_file(
    args: &Args,
    runtime: &Runtime,
    file: &Path,
    quiet: bool,
) -> Result<Box<dyn Separate>> {
    let converted;
    let path = if is_checkpoint(file) {
        converted = convert_checkpoint(file, args.config.as_deref(), &cache_dir(), &mut |line| {
            if !quiet {
                eprintln!("{line}");
            }
        })
        .with_context(|| format!("cannot convert {}", file.display()))?;
        converted.as_path()
    } else {
        if args.config.is_some() {
            return Err(UsageError("--config applies to checkpoints (.ckpt) only".into()).into());
        }
        file
    };
    let model = ModelFile::open(runtime, path)
        .with_context(|| format!("cannot load {}", path.display()))?;
    if args.mdx_denoise && !matches!(model, ModelFile::Mdx(_)) {
        return Err(UsageError(format!(
            "--mdx-denoise applies to MDX-Net models only, and {} is not one",
            file.display()
        ))
        .into());
    }
    Ok(Box::new(model.with_mdx_options(MdxOptions {
        denoise: args.mdx_denoise,
    })))
}

/// Separates `audio` with the model in each `--model-file` (combined by `--ensemble` when
/// there are several) and writes the stems into `dir`.
fn run_model_files(
    args: &Args,
    audio: &Audio,
    spec: &OutputSpec,
    dir: &Path,
    hardware: Hardware,
    quiet: bool,
) -> Result<()> {
    if args.config.is_some() && args.model_file.len() > 1 {
        return Err(UsageError(
            "--config applies to a single --model-file; for several checkpoints, put each \
             MODEL.yaml beside its MODEL.ckpt"
                .into(),
        )
        .into());
    }
    let runtime = Runtime::new(&hardware.runtime())?;
    let models = args
        .model_file
        .iter()
        .map(|file| open_model_file(args, &runtime, file, quiet))
        .collect::<Result<Vec<_>>>()?;
    let model: Box<dyn Separate> = if models.len() == 1 {
        models.into_iter().next().context("no model file")?
    } else {
        Box::new(Ensemble::new(models, args.ensemble).context("no model file")?)
    };
    hardware.report_fallback(&runtime.device_use());
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create directory {}", dir.display()))?;
    let bar = progress_bar(audio, quiet, "separating");
    let stems = model.separate(audio, &mut |p| {
        bar.set_length(p.total as u64);
        bar.set_position(p.done as u64);
    });
    bar.finish_and_clear();
    let stems = stems?;
    for (name, stem) in stems {
        let path = dir.join(format!("{}.{}", name.name(), spec.format.extension()));
        write_file(stem, spec, &path)?;
        if !quiet {
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(())
}

fn write_file(audio: Audio, spec: &OutputSpec, path: &Path) -> Result<EncodeReport> {
    write_output(path, |writer| {
        encode(audio, spec, writer).with_context(|| format!("cannot write {}", path.display()))
    })
}
