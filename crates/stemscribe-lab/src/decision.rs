//! `stemscribe-lab decision-features`: what the singing decision reads of every clip of a
//! manifest (the one `scripts/train/make_decision_data.py` writes), one CSV line a clip, for
//! `scripts/train/fit_singing_decision.py`; with `--frames`, also every clip's pitch track and
//! kept notes frame by frame, for trying new features in Python before the engine measures them.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result};
use stemscribe_engine::transcribe::{
    harmonic_levels_db, kept_segments, PitchTrack, Segment, ENVELOPE_COEFFICIENTS, FEATURE_NAMES,
};
use stemscribe_engine::TRANSCRIPTION_MIN_LEVEL_DBFS;

use crate::corpus::{decision_columns, decision_name};
use crate::io::{decode_track, load_engine, write_bytes, Hardware, PitchArgs};

/// Arguments of `stemscribe-lab decision-features`.
#[derive(Debug, clap::Args)]
pub struct DecisionFeaturesArgs {
    /// The manifest: a CSV whose first column names a clip in `clips/` beside it; every
    /// column is copied to the output.
    #[arg(long, value_name = "FILE")]
    manifest: PathBuf,
    /// Where the features go.
    #[arg(long, value_name = "OUT.csv")]
    out: PathBuf,
    /// Where to write each clip's frames as `CLIP.csv` (see [`frames_csv`]); none if absent.
    #[arg(long, value_name = "DIR")]
    frames: Option<PathBuf>,
    #[command(flatten)]
    pitch: PitchArgs,
}

/// Measures every clip of the manifest through the engine's own transcription path.
pub fn run(args: &DecisionFeaturesArgs, hardware: Hardware) -> Result<()> {
    let engine = load_engine(hardware, args.pitch.config())?;
    let text = std::fs::read_to_string(&args.manifest)
        .with_context(|| format!("cannot read {}", args.manifest.display()))?;
    let mut lines = text.lines();
    let header = lines.next().context("the manifest is empty")?;
    let clips = args
        .manifest
        .parent()
        .map_or_else(|| PathBuf::from("clips"), |dir| dir.join("clips"));
    let mut csv = format!(
        "{header},decision,p_sung,p_spoken,p_instrumental,{}\n",
        FEATURE_NAMES.join(",")
    );
    let rows: Vec<&str> = lines.filter(|l| !l.trim().is_empty()).collect();
    if let Some(dir) = &args.frames {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    for (i, row) in rows.iter().enumerate() {
        let file = row.split(',').next().unwrap_or_default();
        let audio = decode_track(&clips.join(file), None)?;
        let traced = engine.transcribe_traced(&audio, &mut |_| {})?;
        if let Some(dir) = &args.frames {
            let transcriber = engine.transcriber()?;
            let segments = kept_segments(&traced.track, transcriber.options());
            // The mix the vocals were separated from, read at the vocals' pitch.
            let rate = transcriber.tracker().sample_rate();
            let mix = audio
                .raised_to(TRANSCRIPTION_MIN_LEVEL_DBFS)
                .unwrap_or(audio)
                .remix(1)?
                .resample(rate)?;
            let hop = (traced.track.frame_period * f64::from(rate)).round() as usize;
            let mix_harmonic =
                harmonic_levels_db(mix.channel(0), rate, hop, &traced.track.pitch_hz);
            let csv = frames_csv(&traced.track, &segments, &mix_harmonic);
            write_bytes(&dir.join(file).with_extension("csv"), csv.as_bytes())?;
        }
        let _ = writeln!(
            csv,
            "{row},{},{}",
            decision_name(&traced.result),
            decision_columns(&traced.decision)
        );
        if (i + 1) % 100 == 0 {
            eprintln!("{}/{}", i + 1, rows.len());
        }
    }
    write_bytes(&args.out, csv.as_bytes())
}

/// One line a frame of `track`: its time, pitch, voicing confidence, loudness, harmonic level,
/// cepstral envelope, the index of the kept note it lies in (`-1` outside notes), and the
/// level of the same harmonics in the mix (`mix_harmonic`).
fn frames_csv(track: &PitchTrack, segments: &[Segment], mix_harmonic: &[f32]) -> String {
    let envelope_names: Vec<String> = (1..=ENVELOPE_COEFFICIENTS)
        .map(|k| format!("envelope_{k}"))
        .collect();
    let mut csv = format!(
        "seconds,pitch_hz,confidence,loudness_db,harmonic_db,{},note,mix_harmonic_db\n",
        envelope_names.join(",")
    );
    let mut note = vec![-1i64; track.len()];
    for (i, s) in segments.iter().enumerate() {
        for slot in note.iter_mut().take(s.end).skip(s.start) {
            *slot = i as i64;
        }
    }
    for (t, note) in note.iter().enumerate() {
        let envelope = track.envelope_db.get(t).copied().unwrap_or_default();
        let envelope: Vec<String> = envelope.iter().map(|v| format!("{v:.3}")).collect();
        let _ = writeln!(
            csv,
            "{:.4},{:.3},{:.4},{:.2},{:.2},{},{},{:.2}",
            t as f64 * track.frame_period,
            track.pitch_hz[t],
            track.confidence[t],
            track.loudness_db[t],
            track
                .harmonic_db
                .get(t)
                .copied()
                .unwrap_or(f32::NEG_INFINITY),
            envelope.join(","),
            note,
            mix_harmonic.get(t).copied().unwrap_or(f32::NEG_INFINITY)
        );
    }
    csv
}
