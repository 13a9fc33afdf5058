//! `stemscribe-lab decision-features`: what the singing decision reads of every clip of a
//! manifest (the one `scripts/train/make_decision_data.py` writes), one CSV line a clip, for
//! `scripts/train/fit_singing_decision.py`.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result};
use stemscribe_engine::transcribe::FEATURE_NAMES;

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
    for (i, row) in rows.iter().enumerate() {
        let file = row.split(',').next().unwrap_or_default();
        let audio = decode_track(&clips.join(file), None)?;
        let traced = engine.transcribe_traced(&audio, &mut |_| {})?;
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
