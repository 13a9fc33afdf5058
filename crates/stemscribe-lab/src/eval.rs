//! The evaluation commands: quality measurements against ground truth.

use std::path::{Path, PathBuf};

use crate::corpus::stem_name;
use crate::io::{decode_track, find_audio, load_engine, write_output, Hardware};
use anyhow::{Context, Result};
use stemscribe_engine::separate::{EndPadding, HighBand, MedianSplit};
use stemscribe_engine::{
    decode_file, encode, from_json, Audio, DecodeOptions, DerivedStemsOptions, EngineConfig,
    NoiseOptions, OutputFormat, OutputSpec, SeparationModel, SeparationOptions, WavSampleFormat,
    PROCESSING_RATE,
};
use stemscribe_eval::{
    add_babble, add_noise, global_sdr, mix_over, noise_passed_db, read_notes_csv, score_notes,
    EvalNote, NoiseKind, Tolerances,
};

/// Evaluations.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Global SDR of each stem of a model's split of a NI stems file (streams: mix, drums,
    /// bass, other, vocals), as in the music demixing challenges.
    Separation(SeparationArgs),
    /// Global SDR of the 2-track and the 4-track models on the stems file's mix with added
    /// white, pink and hum noise at 20 and 10 dB SNR, and on the clean mix; and how much of
    /// each noise reaches each model's output.
    Noise(NoiseArgs),
    /// mir_eval note metrics (COn, COnP, COnPOff) of a JSON note list against reference
    /// notes.
    Transcription(TranscriptionArgs),
    /// Mix a voice with looped accompaniment at a chosen level, to test transcription of
    /// songs whose notes are known.
    Mix(MixArgs),
    /// The MIDI service over every clip of the development corpus and mixtures built from
    /// it: decisions, note metrics and mix/stem agreement per category.
    Corpus(crate::corpus::CorpusArgs),
    /// What the singing decision reads of every clip of a manifest
    /// (`scripts/train/make_decision_data.py`), one CSV line a clip.
    DecisionFeatures(crate::decision::DecisionFeaturesArgs),
}

/// Arguments of `stemscribe-lab mix`.
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

/// Arguments of `stemscribe-lab transcription`.
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

/// How four-track models without a four-stem network split drums, bass and other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DerivedSplit {
    /// The learned masks (the default).
    Learned,
    /// The median-filter rule they replaced.
    Median,
}

impl From<DerivedSplit> for DerivedStemsOptions {
    fn from(split: DerivedSplit) -> Self {
        match split {
            DerivedSplit::Learned => DerivedStemsOptions::Learned,
            DerivedSplit::Median => DerivedStemsOptions::Median(MedianSplit::default()),
        }
    }
}

/// What the network sees past the song's end (see `EndPadding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum End {
    /// Silence, as Spleeter does.
    Silence,
    /// The last frames mirrored.
    Mirror,
}

/// Arguments of `stemscribe-lab noise`.
#[derive(Debug, clap::Args)]
pub struct NoiseArgs {
    /// `.stem.mp4` files in Native Instruments stems order to measure.
    #[arg(long, value_name = "FILE")]
    stems_file: Vec<PathBuf>,
    /// The development corpus: every clip with stems under its `stems/` is measured too, and
    /// the talkers under its `speech/` make the babble noise (without it: no babble).
    #[arg(long, value_name = "DIR")]
    corpus: Option<PathBuf>,
    /// Noise floor percentile of the suppressor (0-1).
    #[arg(long, default_value_t = NoiseOptions::default().percentile)]
    percentile: f32,
    /// Share of the estimated noise power removed.
    #[arg(long, default_value_t = NoiseOptions::default().over_subtraction)]
    over_subtraction: f32,
    /// Least gain a bin keeps (0-1).
    #[arg(long, default_value_t = NoiseOptions::default().floor_gain)]
    floor_gain: f32,
    /// Percentile spread up to which a bin's floor is taken for noise.
    #[arg(long, default_value_t = NoiseOptions::default().noise_spread)]
    noise_spread: f32,
    /// Percentile spread from which a bin's floor is taken for music.
    #[arg(long, default_value_t = NoiseOptions::default().music_spread)]
    music_spread: f32,
}

/// Arguments of `stemscribe-lab separation`.
#[derive(Debug, clap::Args)]
pub struct SeparationArgs {
    /// A `.stem.mp4` file in Native Instruments stems order.
    #[arg(long, value_name = "FILE")]
    stems_file: PathBuf,
    /// The model whose stems are scored (its family: 2track or bs_4track).
    #[arg(long, default_value = "2track_vocal")]
    model: SeparationModel,
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
    /// The network's input past the song's end: `silence` or `mirror`.
    #[arg(long, value_name = "silence|mirror")]
    end: Option<End>,
    /// Loop the clip this many times, so that it spans several network windows (seams).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    repeat: u16,
    /// How `bs_4track_*` derives drums, bass and other without a four-stem network.
    #[arg(long, value_enum, default_value_t = DerivedSplit::Learned)]
    derived: DerivedSplit,
}

/// Runs an evaluation and prints its table.
pub fn run(command: &Command, hardware: Hardware) -> Result<()> {
    match command {
        Command::Separation(args) => separation(args, hardware),
        Command::Noise(args) => noise(args, hardware),
        Command::Transcription(args) => transcription(args),
        Command::Mix(args) => mix(args),
        Command::Corpus(args) => crate::corpus::run(args, hardware),
        Command::DecisionFeatures(args) => crate::decision::run(args, hardware),
    }
}

fn mix(args: &MixArgs) -> Result<()> {
    let vocals = decode_track(&args.vocals, None)?;
    let accompaniment = if args.accompaniment_tracks.is_empty() {
        decode_track(&args.accompaniment, None)?
    } else {
        let parts = args
            .accompaniment_tracks
            .iter()
            .map(|&track| decode_track(&args.accompaniment, Some(track)))
            .collect::<Result<Vec<_>>>()?;
        Audio::sum(&parts)?
    };
    let (mix, gain) = mix_over(&vocals, &accompaniment, args.vocals_db)?;
    let spec = OutputSpec {
        sample_rate: PROCESSING_RATE,
        channels: 2,
        format: OutputFormat::Wav(WavSampleFormat::Float32),
    };
    write_output(&args.output, |w| {
        encode(mix, &spec, w).with_context(|| format!("cannot write {}", args.output.display()))
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

fn separation(args: &SeparationArgs, hardware: Hardware) -> Result<()> {
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
    if let Some(end) = args.end {
        options.end_padding = match end {
            End::Silence => EndPadding::Silence,
            End::Mirror => EndPadding::Mirror,
        };
    }
    let references = References::read(&args.stems_file, usize::from(args.repeat))?;
    let engine = load_engine(
        hardware,
        EngineConfig {
            separation: options,
            derived: args.derived.into(),
            ..EngineConfig::default()
        },
    )?;
    let stems = engine.separate_all(&references.mix, args.model, &mut |_| {})?;
    println!(
        "clip: {:.1} s; model {}; options: {options:?}",
        references.mix.duration_secs(),
        args.model
    );
    for stem in &stems {
        println!(
            "{:<14} global SDR {:7.3} dB",
            stem.name(),
            global_sdr(references.stem(stem.name())?, &stem.audio)
        );
    }
    if args.model.is_four_track() {
        let parts: Vec<Audio> = stems.into_iter().skip(1).map(|s| s.audio).collect();
        println!(
            "{:<14} global SDR {:7.3} dB (drums + bass + other)",
            "accompaniment",
            global_sdr(&references.accompaniment, &Audio::sum(&parts)?)
        );
    }
    Ok(())
}

/// The models in the column order of the noise tables: each 2-track model beside its
/// 4-track counterpart.
const NOISE_COLUMNS: [SeparationModel; 4] = [
    SeparationModel::TwoTrackVocal,
    SeparationModel::FourTrackVocal,
    SeparationModel::TwoTrackAcc,
    SeparationModel::FourTrackAcc,
];

fn noise(args: &NoiseArgs, hardware: Hardware) -> Result<()> {
    let mut clips = args
        .stems_file
        .iter()
        .map(|path| NoiseClip::from_stems_file(path))
        .collect::<Result<Vec<_>>>()?;
    let mut talkers = Vec::new();
    if let Some(corpus) = &args.corpus {
        clips.extend(corpus_noise_clips(&corpus.join("stems"))?);
        for path in find_audio(&corpus.join("speech"))? {
            talkers.push(decode_track(&path, None)?);
        }
    }
    anyhow::ensure!(
        !clips.is_empty(),
        "nothing to measure: give --stems-file FILE or --corpus DIR"
    );
    let noise = NoiseOptions {
        percentile: args.percentile,
        over_subtraction: args.over_subtraction,
        floor_gain: args.floor_gain,
        noise_spread: args.noise_spread,
        music_spread: args.music_spread,
        ..NoiseOptions::default()
    };
    let engine = load_engine(
        hardware,
        EngineConfig {
            noise,
            ..EngineConfig::default()
        },
    )?;
    let mut summary = NoiseSummary::default();
    for clip in &clips {
        println!("\n== {} ({:.1} s)", clip.name, clip.mix.duration_secs());
        noise_tables(&engine, clip, &talkers, &mut summary)?;
    }
    summary.print(clips.len());
    Ok(())
}

/// A mix with its clean references, for the noise tables.
struct NoiseClip {
    name: String,
    mix: Audio,
    /// The clean vocal stem; `None` for an instrumental or when the stems do not sum to the
    /// mix.
    vocals: Option<Audio>,
    /// The clean accompaniment; `None` when the stems do not sum to the mix.
    accompaniment: Option<Audio>,
}

impl NoiseClip {
    /// A NI stems file's mix and its vocals and accompaniment.
    fn from_stems_file(path: &Path) -> Result<Self> {
        let references = References::read(path, 1)?;
        Ok(Self {
            name: stem_name(path),
            mix: references.mix,
            vocals: Some(references.vocals),
            accompaniment: Some(references.accompaniment),
        })
    }

    /// The clean reference of a model's stem, when the clip has one.
    fn reference(&self, model: SeparationModel) -> Option<&Audio> {
        match model.stem().name() {
            "vocals" => self.vocals.as_ref(),
            _ => self.accompaniment.as_ref(),
        }
    }
}

/// The corpus's clips with stems: NI stems files and tky823's mixtures (a song with a vocal,
/// bass and piano; a piano and violin duo).
fn corpus_noise_clips(stems: &Path) -> Result<Vec<NoiseClip>> {
    let mut clips = Vec::new();
    for path in find_audio(stems)? {
        let name = stem_name(&path);
        if path.to_string_lossy().ends_with(".stem.mp4") {
            clips.push(NoiseClip::from_stems_file(&path)?);
        } else if let Some(song) = name.strip_suffix("__mixture_16000") {
            // tky823's mixtures are reverberant mixes of dry stems: the noise passed is
            // measured, SDR against the stems is not.
            clips.push(NoiseClip {
                name: song.to_owned(),
                mix: decode_track(&path, None)?,
                vocals: None,
                accompaniment: None,
            });
        }
    }
    Ok(clips)
}

/// The noise tables of one clip: SDR against the clean stems, and the noise passed.
fn noise_tables(
    engine: &stemscribe_engine::Engine,
    clip: &NoiseClip,
    talkers: &[Audio],
    summary: &mut NoiseSummary,
) -> Result<()> {
    let mut conditions = vec![("clean".to_owned(), clip.mix.clone())];
    for kind in [
        NoiseKind::White,
        NoiseKind::Pink,
        NoiseKind::Hum { mains_hz: 50.0 },
    ] {
        for snr in [20.0, 10.0] {
            let noisy = add_noise(&clip.mix, kind, snr, 20_261_121)?;
            conditions.push((format!("{} {snr} dB", kind.name()), noisy));
        }
    }
    if !talkers.is_empty() {
        for snr in [20.0, 10.0] {
            let noisy = add_babble(&clip.mix, talkers, snr)?;
            conditions.push((format!("babble {snr} dB"), noisy));
        }
    }
    let cell = |value: Option<f64>, decimals: usize| {
        value.map_or_else(|| "-".to_owned(), |v| format!("{v:.decimals$}"))
    };
    println!("global SDR (dB) against the clean stems");
    print_noise_header();
    let mut clean_outputs: Vec<Audio> = Vec::new();
    let mut passed_rows = Vec::new();
    for (name, mix) in &conditions {
        let mut sdr = Vec::new();
        let mut passed = Vec::new();
        for (index, model) in NOISE_COLUMNS.into_iter().enumerate() {
            let estimate = engine.separate(mix, model, &mut |_| {})?;
            sdr.push(clip.reference(model).map(|r| global_sdr(r, &estimate)));
            match clean_outputs.get(index) {
                Some(clean) => passed.push(noise_passed_db(mix, &clip.mix, &estimate, clean)),
                None => clean_outputs.push(estimate),
            }
        }
        println!(
            "{name:<16} {:>13} {:>16} {:>11} {:>14}",
            cell(sdr[0], 2),
            cell(sdr[1], 2),
            cell(sdr[2], 2),
            cell(sdr[3], 2)
        );
        summary.add_sdr(name, &sdr);
        if !passed.is_empty() {
            summary.add_passed(name, &passed);
            passed_rows.push((name.clone(), passed));
        }
    }
    println!(
        "noise passed (dB): energy of output(noisy) - output(clean) against the added noise's"
    );
    print_noise_header();
    for (name, passed) in passed_rows {
        println!(
            "{name:<16} {:>13.1} {:>16.1} {:>11.1} {:>14.1}",
            passed[0], passed[1], passed[2], passed[3]
        );
    }
    Ok(())
}

/// The column heads of the noise tables, in [`NOISE_COLUMNS`] order.
fn print_noise_header() {
    println!(
        "{:<16} {:>13} {:>16} {:>11} {:>14}",
        "input", "2track_vocal", "bs_4track_vocal", "2track_acc", "bs_4track_acc"
    );
}

/// Every clip's figures per condition, for the mean and the worst over the clips.
#[derive(Default)]
struct NoiseSummary {
    /// Per condition: noise passed per column, one row per clip.
    passed: Vec<(String, Vec<[f64; 4]>)>,
    /// Per condition: the 4-track minus the 2-track SDR (vocals, accompaniment) per clip.
    sdr_gain: Vec<(String, Vec<[Option<f64>; 2]>)>,
}

impl NoiseSummary {
    fn add_passed(&mut self, condition: &str, passed: &[f64]) {
        let row = [passed[0], passed[1], passed[2], passed[3]];
        Self::entry(&mut self.passed, condition).push(row);
    }

    fn add_sdr(&mut self, condition: &str, sdr: &[Option<f64>]) {
        let gain = |two: Option<f64>, four: Option<f64>| Some(four? - two?);
        let row = [gain(sdr[0], sdr[1]), gain(sdr[2], sdr[3])];
        Self::entry(&mut self.sdr_gain, condition).push(row);
    }

    fn entry<'a, T>(rows: &'a mut Vec<(String, Vec<T>)>, condition: &str) -> &'a mut Vec<T> {
        let index = match rows.iter().position(|(name, _)| name == condition) {
            Some(index) => index,
            None => {
                rows.push((condition.to_owned(), Vec::new()));
                rows.len() - 1
            }
        };
        &mut rows[index].1
    }

    fn print(&self, clips: usize) {
        println!("\n== over {clips} clips: noise passed (dB), mean / worst (highest)");
        print_noise_header();
        for (name, rows) in &self.passed {
            let cells = column_summaries(rows, |r, c| Some(r[c]), f64::max, 1);
            println!(
                "{name:<16} {:>13} {:>16} {:>11} {:>14}",
                cells[0], cells[1], cells[2], cells[3]
            );
        }
        println!("\n== over {clips} clips: SDR of bs_4track_* minus 2track_* (dB), mean / worst (lowest)");
        println!("{:<16} {:>16} {:>16}", "input", "vocals", "accompaniment");
        for (name, rows) in &self.sdr_gain {
            let cells = column_summaries(rows, |r, c| r[c], f64::min, 2);
            println!("{name:<16} {:>16} {:>16}", cells[0], cells[1]);
        }
    }
}

/// [`mean_and_worst`] of each of the `N` columns of `rows` over the rows with a value there
/// (`value(row, column)`).
fn column_summaries<const N: usize, T>(
    rows: &[[T; N]],
    value: impl Fn(&[T; N], usize) -> Option<f64>,
    worse: fn(f64, f64) -> f64,
    decimals: usize,
) -> [String; N] {
    std::array::from_fn(|c| {
        let values: Vec<f64> = rows.iter().filter_map(|r| value(r, c)).collect();
        mean_and_worst(&values, worse, decimals)
    })
}

/// `mean / worst` of `values` to `decimals` places, the worst picked by `worse` (`f64::max`
/// or `f64::min`); `-` for none.
fn mean_and_worst(values: &[f64], worse: fn(f64, f64) -> f64, decimals: usize) -> String {
    let Some(worst) = values.iter().copied().reduce(worse) else {
        return "-".to_owned();
    };
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    format!("{mean:.decimals$} / {worst:.decimals$}")
}

/// The streams of a NI stems file: the mix and each reference stem.
struct References {
    mix: Audio,
    drums: Audio,
    bass: Audio,
    other: Audio,
    vocals: Audio,
    accompaniment: Audio,
}

impl References {
    /// Decodes every stream, each looped `repeat` times.
    fn read(path: &Path, repeat: usize) -> Result<Self> {
        let track = |index| {
            let options = DecodeOptions {
                track: Some(index),
                ..DecodeOptions::default()
            };
            decode_file(path, &options)
                .with_context(|| format!("cannot decode stream {index} of {}", path.display()))
                .and_then(|audio| looped(&audio, repeat))
        };
        let (drums, bass, other) = (track(1)?, track(2)?, track(3)?);
        let accompaniment = Audio::sum(&[drums.clone(), bass.clone(), other.clone()])?;
        Ok(Self {
            mix: track(0)?,
            drums,
            bass,
            other,
            vocals: track(4)?,
            accompaniment,
        })
    }

    /// The reference for a stem name.
    fn stem(&self, name: &str) -> Result<&Audio> {
        Ok(match name {
            "vocals" => &self.vocals,
            "drums" => &self.drums,
            "bass" => &self.bass,
            "other" => &self.other,
            "accompaniment" => &self.accompaniment,
            other => anyhow::bail!("the stems file has no reference for `{other}`"),
        })
    }
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

fn looped(audio: &Audio, times: usize) -> Result<Audio> {
    let channels = audio.channels().iter().map(|c| c.repeat(times)).collect();
    Ok(Audio::new(audio.sample_rate(), channels)?)
}
