//! `stemscribe eval`: quality measurements against ground truth.

use std::path::PathBuf;

use crate::io::{load_engine, write_atomically};
use anyhow::{Context, Result};
use stemscribe_engine::{
    decode_file, encode, from_json, Audio, DecodeOptions, HighBand, OutputFormat, OutputSpec,
    SeparationModel, SeparationOptions, WavSampleFormat, PROCESSING_RATE,
};
use stemscribe_eval::{global_sdr, read_notes_csv, score_notes, EvalNote, Tolerances};

/// Evaluations.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Global SDR of the 2-stem split of a NI stems file (streams: mix, drums, bass, other,
    /// vocals), as in the music demixing challenges.
    Separation(SeparationArgs),
    /// mir_eval note metrics (COn, COnP, COnPOff) of a JSON note list against reference
    /// notes.
    Transcription(TranscriptionArgs),
    /// Mix a voice with looped accompaniment at a chosen level, to test transcription of
    /// songs whose notes are known.
    Mix(MixArgs),
}

/// Arguments of `stemscribe eval mix`.
#[derive(Debug, clap::Args)]
pub struct MixArgs {
    /// The voice (its length is the mix's).
    #[arg(long, value_name = "FILE")]
    vocals: PathBuf,
    /// The accompaniment, looped or cut to the voice's length.
    #[arg(long, value_name = "FILE")]
    accompaniment: PathBuf,
    /// Streams of the accompaniment file to sum (e.g. 1 2 3 of a stems file); default: the
    /// first.
    #[arg(long, value_name = "N", num_args = 1..)]
    accompaniment_tracks: Vec<usize>,
    /// Level of the voice over the accompaniment, RMS in dB.
    #[arg(
        long,
        value_name = "DB",
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    vocals_db: f64,
    /// The mix, 44.1 kHz stereo 32-bit float WAV.
    #[arg(long, short, value_name = "OUT.wav")]
    output: PathBuf,
}

/// Arguments of `stemscribe eval transcription`.
#[derive(Debug, clap::Args)]
pub struct TranscriptionArgs {
    /// Reference notes, one `onset_secs,pitch_hz,duration_secs` line each (vocadito format).
    #[arg(long, value_name = "NOTES.csv")]
    reference: PathBuf,
    /// Estimated notes as the JSON note list `stemscribe midi --json` writes.
    #[arg(long, value_name = "OUT.json")]
    estimate: PathBuf,
}

/// An option that is either on or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Switch {
    /// Enabled.
    On,
    /// Disabled.
    Off,
}

/// Arguments of `stemscribe eval separation`.
#[derive(Debug, clap::Args)]
pub struct SeparationArgs {
    /// A `.stem.mp4` file in Native Instruments stems order.
    #[arg(long, value_name = "FILE")]
    stems_file: PathBuf,
    /// Bins above the network's range: `zero`, or `extend:N` (mean of the top N mask bins).
    #[arg(long, value_name = "MODE")]
    high_band: Option<String>,
    /// Frames shared by consecutive network windows.
    #[arg(long, value_name = "FRAMES")]
    overlap: Option<usize>,
    /// Start from Spleeter's exact behaviour instead of the default options.
    #[arg(long)]
    spleeter_reference: bool,
    /// Multichannel Wiener filtering: `on` or `off` (default: the engine's default).
    #[arg(long, value_name = "on|off")]
    wiener: Option<Switch>,
    /// Loop the clip this many times, so that it spans several network windows (seams).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    repeat: u16,
}

/// Runs an evaluation and prints its table.
pub fn run(command: &Command, threads: Option<usize>) -> Result<()> {
    match command {
        Command::Separation(args) => separation(args, threads),
        Command::Transcription(args) => transcription(args),
        Command::Mix(args) => mix(args),
    }
}

fn mix(args: &MixArgs) -> Result<()> {
    let decode = |path: &PathBuf, track| {
        let options = DecodeOptions {
            track,
            ..DecodeOptions::default()
        };
        decode_file(path, &options).with_context(|| format!("cannot decode {}", path.display()))
    };
    let vocals = decode(&args.vocals, None)?;
    let accompaniment = if args.accompaniment_tracks.is_empty() {
        decode(&args.accompaniment, None)?
    } else {
        let parts = args
            .accompaniment_tracks
            .iter()
            .map(|&track| decode(&args.accompaniment, Some(track)))
            .collect::<Result<Vec<_>>>()?;
        Audio::sum(&parts)?
    };
    let frames = vocals.frames();
    let rms = |channels: &[Vec<f32>]| {
        let energy: f64 = channels
            .iter()
            .flatten()
            .map(|&s| f64::from(s).powi(2))
            .sum();
        (energy / (channels.len() * frames).max(1) as f64).sqrt()
    };
    let looped: Vec<Vec<f32>> = accompaniment
        .channels()
        .iter()
        .map(|c| c.iter().copied().cycle().take(frames).collect())
        .collect();
    let (voice_rms, backing_rms) = (rms(vocals.channels()), rms(&looped));
    anyhow::ensure!(
        voice_rms > 0.0 && backing_rms > 0.0,
        "the vocals or the accompaniment are silent"
    );
    let gain = (voice_rms / backing_rms / 10f64.powf(args.vocals_db / 20.0)) as f32;
    let channels = vocals
        .channels()
        .iter()
        .zip(&looped)
        .map(|(v, a)| v.iter().zip(a).map(|(&v, &a)| v + gain * a).collect())
        .collect();
    let spec = OutputSpec {
        sample_rate: PROCESSING_RATE,
        channels: 2,
        format: OutputFormat::Wav(WavSampleFormat::Float32),
    };
    write_atomically(&args.output, |w| {
        encode(Audio::new(PROCESSING_RATE, channels)?, &spec, w)
            .with_context(|| format!("cannot write {}", args.output.display()))
    })?;
    println!(
        "wrote {} ({:.1} s, accompaniment gain {gain:.4})",
        args.output.display(),
        vocals.duration_secs()
    );
    Ok(())
}

fn transcription(args: &TranscriptionArgs) -> Result<()> {
    let read = |path: &PathBuf| {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
    };
    let reference = read_notes_csv(&read(&args.reference)?)
        .with_context(|| format!("cannot parse {}", args.reference.display()))?;
    let estimate: Vec<EvalNote> = from_json(&read(&args.estimate)?)
        .with_context(|| format!("cannot parse {}", args.estimate.display()))?
        .notes
        .iter()
        .map(EvalNote::from)
        .collect();
    let scores = score_notes(&reference, &estimate, &Tolerances::default());
    println!(
        "reference notes: {}; estimated notes: {}",
        reference.len(),
        estimate.len()
    );
    println!(
        "{:<8} {:>9} {:>9} {:>9}",
        "metric", "precision", "recall", "F1"
    );
    for (name, s) in [
        ("COn", scores.con),
        ("COnP", scores.conp),
        ("COnPOff", scores.conpoff),
    ] {
        println!(
            "{name:<8} {:>9.3} {:>9.3} {:>9.3}",
            s.precision, s.recall, s.f1
        );
    }
    Ok(())
}

fn separation(args: &SeparationArgs, threads: Option<usize>) -> Result<()> {
    let mut options = if args.spleeter_reference {
        SeparationOptions::spleeter_reference()
    } else {
        SeparationOptions::default()
    };
    if let Some(mode) = &args.high_band {
        options.high_band = parse_high_band(mode)?;
    }
    if let Some(overlap) = args.overlap {
        options.overlap_frames = overlap;
    }
    if let Some(wiener) = args.wiener {
        options.wiener = wiener == Switch::On;
    }
    let track = |index| {
        let options = DecodeOptions {
            track: Some(index),
            ..DecodeOptions::default()
        };
        decode_file(&args.stems_file, &options)
            .with_context(|| {
                format!(
                    "cannot decode stream {index} of {}",
                    args.stems_file.display()
                )
            })
            .and_then(|audio| repeat(&audio, usize::from(args.repeat)))
    };
    let mix = track(0)?;
    let vocals = track(4)?;
    let accompaniment = Audio::sum(&[track(1)?, track(2)?, track(3)?])?;
    let engine = load_engine(threads, options)?;
    let stems = engine.separate_all(&mix, SeparationModel::TwoTrackVocal, &mut |_| {})?;
    println!("clip: {:.1} s; options: {options:?}", mix.duration_secs());
    for (stem, reference) in stems.iter().zip([&vocals, &accompaniment]) {
        println!(
            "{:<14} global SDR {:7.3} dB",
            stem.name,
            global_sdr(reference, &stem.audio)
        );
    }
    Ok(())
}

fn parse_high_band(mode: &str) -> Result<HighBand> {
    if mode == "zero" {
        return Ok(HighBand::Zero);
    }
    let bins = mode
        .strip_prefix("extend:")
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("--high-band must be `zero` or `extend:N`, not `{mode}`"))?;
    Ok(HighBand::ExtendMask { average_bins: bins })
}

fn repeat(audio: &Audio, times: usize) -> Result<Audio> {
    let channels = audio.channels().iter().map(|c| c.repeat(times)).collect();
    Ok(Audio::new(audio.sample_rate(), channels)?)
}
