//! `stemscribe-lab corpus`: the MIDI service over every clip of the development corpus
//! (`shared/data/corpus`, see its README) and over mixtures built from it, reported per
//! category: the sung / not sung decision as a confusion table, note metrics where notes are
//! known, and the agreement between a mix's notes and its isolated vocal's.
//!
//! Clips: `sung_solo/` (annotated sight-singing), `songs/`, `speech/`, `instrumental/`,
//! `stems/` (mixes with their vocal stem, and a classical duo without voice). Derived: 2 s and
//! 5 s excerpts of every clip (from the first annotated note for solo singing), and every
//! solo voice over accompaniments of the corpus (instrumental clips and the stems' backings,
//! looped) at 0 and −6 dB, scored against the voice's annotation. Beside them, as a group of
//! its own: the vocadito clip of `tests/data` against its annotator A1.
//!
//! Where notes are annotated, the report gives beside the F1 scores the pitch ceiling
//! ([`pitch_ceiling`]): how many annotated notes the tracked pitch agrees with at all, given
//! the annotation's own boundaries. It tells the tracker's and the annotation's share of a
//! low COnP from the segmentation's.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use stemscribe_engine::transcribe::{notes_from_track, Decision, PitchTrack, FEATURE_NAMES};
use stemscribe_engine::{
    Audio, Engine, NoOutput, Transcription, TranscriptionOptions, TRANSCRIPTION_MIN_LEVEL_DBFS,
};
use stemscribe_eval::{
    mix_over, pitch_ceiling, read_notes_csv, rms, score_notes, EvalNote, Tolerances,
    TranscriptionScores,
};

use crate::io::{decode_track, find_audio, load_engine, write_bytes, Hardware, PitchArgs};

/// Arguments of `stemscribe-lab corpus`.
#[derive(Debug, clap::Args)]
pub struct CorpusArgs {
    /// The corpus directory.
    #[arg(long, value_name = "DIR", default_value = "../shared/data/corpus")]
    corpus: PathBuf,
    /// Accompaniments each solo voice is mixed over (at 0 and −6 dB), taken in turn.
    #[arg(long, value_name = "N", default_value_t = 2)]
    backings_per_voice: usize,
    /// Only the first N clips of each category (a quick run).
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Write one CSV line of decision features per clip (for fitting the decision).
    #[arg(long, value_name = "OUT.csv")]
    features: Option<PathBuf>,
    /// Write each clip's pitch contour (`NAME.track.csv`: time, pitch, confidence, broadband
    /// and harmonic level) and annotation (`NAME.notes.csv`) into this directory, with an
    /// `index.csv`, for fitting the note rules (`scripts/train/fit_note_rules.py DIR`).
    #[arg(long, value_name = "DIR")]
    tracks: Option<PathBuf>,
    /// A solo voice with careful note annotations, reported as a group of its own beside the
    /// corpus (not excerpted or mixed): its annotation is read from `NAME_notesA1.csv` beside
    /// it (vocadito's format). Skipped, with a line on stderr, when the file is missing.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "tests/data/vocadito_1.flac"
    )]
    vocadito: PathBuf,
    #[command(flatten)]
    pitch: PitchArgs,
}

/// What a clip is, as the decision should see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Sung,
    Speech,
    Instrumental,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Sung => "sung",
            Self::Speech => "speech",
            Self::Instrumental => "instrumental",
        }
    }
}

/// One input to the service and what is known about it.
struct Clip {
    name: String,
    /// Report group: solo, song, speech, instrumental, stems, excerpt 2 s, mix 0 dB, ...
    group: String,
    kind: Kind,
    audio: Audio,
    /// Annotated notes of the sung voice, in the clip's time.
    reference: Option<Vec<EvalNote>>,
    /// The isolated vocal, when the clip is a mix of stems.
    vocal_stem: Option<Audio>,
}

/// What the service did with a clip.
struct Outcome {
    clip_name: String,
    group: String,
    kind: Kind,
    seconds: f64,
    result: Result<Transcription, NoOutput>,
    scores: Option<TranscriptionScores>,
    /// COnP F1 after the estimate is shifted by the clip's median pitch difference from the
    /// reference over onset-matched notes (annotations and audio may differ in tuning).
    aligned_conp: Option<f64>,
    /// That median difference, reference minus estimate, in semitones.
    tuning_offset: Option<f64>,
    /// The COnP F1 that notes with the annotation's own boundaries and the contour's median
    /// pitch would get ([`pitch_ceiling`]).
    ceiling: Option<f64>,
    agreement: Option<f64>,
    decision: Decision,
}

/// Runs the corpus evaluation and prints its report.
pub fn run(args: &CorpusArgs, hardware: Hardware) -> Result<()> {
    let engine = load_engine(hardware, args.pitch.config())?;
    let clips = gather(args)?;
    eprintln!("{} clips", clips.len());
    if let Some(dir) = &args.tracks {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut outcomes = Vec::new();
    let mut index = String::from("clip,file,group,kind,seconds\n");
    for clip in clips {
        let outcome = evaluate(&engine, clip, args.tracks.as_deref())?;
        let _ = writeln!(
            index,
            "{},{},{},{},{:.2}",
            outcome.clip_name,
            file_stem(&outcome.clip_name),
            outcome.group,
            outcome.kind.name(),
            outcome.seconds
        );
        outcomes.push(outcome);
    }
    if let Some(dir) = &args.tracks {
        write_bytes(&dir.join("index.csv"), index.as_bytes())?;
    }
    print!("{}", report(&outcomes));
    if let Some(path) = &args.features {
        let mut csv = format!(
            "clip,group,kind,seconds,decision,p_sung,p_spoken,p_instrumental,{}\n",
            FEATURE_NAMES.join(",")
        );
        for o in &outcomes {
            let _ = writeln!(
                csv,
                "{},{},{},{:.2},{},{}",
                o.clip_name,
                o.group,
                o.kind.name(),
                o.seconds,
                decision_name(&o.result),
                decision_columns(&o.decision)
            );
        }
        write_bytes(path, csv.as_bytes())?;
    }
    Ok(())
}

/// `notes`, `spoken` or `instrumental`: what the service answered.
pub(crate) fn decision_name(result: &Result<Transcription, NoOutput>) -> &'static str {
    match result {
        Ok(_) => "notes",
        Err(NoOutput::Spoken { .. }) => "spoken",
        Err(NoOutput::Instrumental { .. }) => "instrumental",
    }
}

/// The class probabilities and every feature of `decision`, comma-separated.
pub(crate) fn decision_columns(decision: &Decision) -> String {
    let p = &decision.probabilities;
    let mut columns = format!("{:.4},{:.4},{:.4}", p.sung, p.spoken, p.instrumental);
    for value in decision.features.values() {
        let _ = write!(columns, ",{value:.5}");
    }
    columns
}

/// A file's name up to its first dot.
pub(crate) fn stem_name(path: &Path) -> String {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("?");
    name.split('.').next().unwrap_or(name).to_owned()
}

/// `onset offset midi` lines (the sight-singing annotations).
fn read_midi_notes(path: &Path) -> Result<Vec<EvalNote>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let fields: Vec<f64> = line
                .split_whitespace()
                .map(str::parse)
                .collect::<Result<_, _>>()
                .with_context(|| format!("{}: bad line `{line}`", path.display()))?;
            let [onset, offset, midi] = fields[..] else {
                anyhow::bail!("{}: expected 3 fields in `{line}`", path.display());
            };
            Ok(EvalNote {
                onset,
                offset,
                pitch_hz: 440.0 * 2f64.powf((midi - 69.0) / 12.0),
            })
        })
        .collect()
}

/// `audio` from `start` for `seconds` (or to its end).
fn excerpt(audio: &Audio, start: f64, seconds: f64) -> Audio {
    let rate = f64::from(audio.sample_rate());
    audio.section((start * rate) as usize..((start + seconds) * rate) as usize)
}

/// Notes of `reference` inside `[start, start + seconds)`, shifted to the excerpt's time.
fn notes_within(reference: &[EvalNote], start: f64, seconds: f64) -> Vec<EvalNote> {
    reference
        .iter()
        .filter(|n| n.onset >= start && n.offset <= start + seconds)
        .map(|n| EvalNote {
            onset: n.onset - start,
            offset: n.offset - start,
            ..*n
        })
        .collect()
}

/// Confidence at which a frame of a [`PitchTrack`] is voiced (its documented convention).
const VOICED: f32 = 0.5;

/// Where the voice comes in in the corpus's song (its README: "vocals audible from about 10 s").
const SONG_VOICE_ONSET_SECS: f64 = 10.0;

/// The start of the first half second of `stem` within 20 dB of its loudest half second.
fn voice_onset(stem: &Audio) -> f64 {
    let block = stem.sample_rate() as usize / 2;
    let levels: Vec<f64> = (0..stem.frames() / block.max(1))
        .map(|i| {
            let parts: Vec<Vec<f32>> = stem
                .channels()
                .iter()
                .map(|c| c[i * block..(i + 1) * block].to_vec())
                .collect();
            rms(&parts)
        })
        .collect();
    let loudest = levels.iter().copied().fold(0.0, f64::max);
    levels
        .iter()
        .position(|&l| l > loudest / 10.0)
        .map_or(0.0, |i| i as f64 * 0.5)
}

/// Every clip of the corpus and every clip derived from it.
fn gather(args: &CorpusArgs) -> Result<Vec<Clip>> {
    let limit = |mut files: Vec<PathBuf>| {
        if let Some(n) = args.limit {
            files.truncate(n);
        }
        files
    };
    let corpus = &args.corpus;
    let mut clips = Vec::new();
    let mut voices = Vec::new();
    for path in limit(find_audio(&corpus.join("sung_solo"))?) {
        let audio = decode_track(&path, None)?;
        let notes = read_midi_notes(&path.with_extension("notes.txt"))?;
        voices.push((stem_name(&path), audio.clone(), notes.clone()));
        clips.push(Clip {
            name: stem_name(&path),
            group: "solo".into(),
            kind: Kind::Sung,
            audio,
            reference: Some(notes),
            vocal_stem: None,
        });
    }
    for (folder, kind) in [
        ("songs", Kind::Sung),
        ("speech", Kind::Speech),
        ("instrumental", Kind::Instrumental),
    ] {
        for path in limit(find_audio(&corpus.join(folder))?) {
            clips.push(Clip {
                name: stem_name(&path),
                group: folder.trim_end_matches('s').into(),
                kind,
                audio: decode_track(&path, None)?,
                reference: None,
                vocal_stem: None,
            });
        }
    }
    let stems = corpus.join("stems");
    let mut backings: Vec<(String, Audio)> = clips
        .iter()
        .filter(|c| c.kind == Kind::Instrumental)
        .map(|c| (c.name.clone(), c.audio.clone()))
        .collect();
    let multitrack = ["musdb7_TheEastonEllises_Falcon69", "jdc_test_audio_file"]
        .iter()
        .map(|name| stems.join(format!("{name}.stem.mp4")))
        .filter(|path| path.is_file())
        .collect();
    for path in limit(multitrack) {
        let name = stem_name(&path);
        let parts = (1..=3)
            .map(|t| decode_track(&path, Some(t)))
            .collect::<Result<Vec<_>>>()?;
        backings.push((format!("{name} backing"), Audio::sum(&parts)?));
        clips.push(Clip {
            name: name.clone(),
            group: "stems".into(),
            kind: Kind::Sung,
            audio: decode_track(&path, Some(0))?,
            reference: None,
            vocal_stem: Some(decode_track(&path, Some(4))?),
        });
    }
    let tky823 = ["sample3_jpop__mixture", "sample2_classical__mixture"]
        .iter()
        .all(|name| stems.join(format!("tky823_{name}_16000.wav")).is_file());
    if args.limit.is_none_or(|n| n > 2) && tky823 {
        let jpop = |part: &str| {
            decode_track(
                &stems.join(format!("tky823_sample3_jpop__{part}_16000.wav")),
                None,
            )
        };
        backings.push((
            "tky823 jpop backing".into(),
            Audio::sum(&[jpop("piano")?, jpop("bass")?])?,
        ));
        clips.push(Clip {
            name: "tky823_sample3_jpop".into(),
            group: "stems".into(),
            kind: Kind::Sung,
            audio: jpop("mixture")?,
            reference: None,
            vocal_stem: Some(jpop("vocal")?),
        });
        let classical = decode_track(
            &stems.join("tky823_sample2_classical__mixture_16000.wav"),
            None,
        )?;
        backings.push(("tky823 classical".into(), classical.clone()));
        clips.push(Clip {
            name: "tky823_sample2_classical".into(),
            group: "instrumental".into(),
            kind: Kind::Instrumental,
            audio: classical,
            reference: None,
            vocal_stem: None,
        });
    }

    // Short excerpts from where the voice starts: the first annotated note, the vocal stem's
    // first loud second, 10 s into the corpus song (its README), else the clip's start.
    let mut excerpts = Vec::new();
    for clip in &clips {
        let start = match (&clip.reference, &clip.vocal_stem) {
            (Some(reference), _) => reference.first().map_or(0.0, |n| (n.onset - 0.1).max(0.0)),
            (None, Some(stem)) => voice_onset(stem),
            (None, None) if clip.group == "song" => SONG_VOICE_ONSET_SECS,
            (None, None) => 0.0,
        };
        for seconds in [2.0, 5.0] {
            if clip.audio.duration_secs() < start + seconds {
                continue;
            }
            excerpts.push(Clip {
                name: format!("{} {seconds:.0} s", clip.name),
                group: format!("{seconds:.0} s excerpt"),
                kind: clip.kind,
                audio: excerpt(&clip.audio, start, seconds),
                reference: clip
                    .reference
                    .as_ref()
                    .map(|r| notes_within(r, start, seconds)),
                vocal_stem: None,
            });
        }
    }
    clips.extend(excerpts);

    // Annotated mixtures: each voice over the next backings in turn, at 0 and −6 dB.
    let mut turn = 0;
    for (name, voice, notes) in &voices {
        for _ in 0..args.backings_per_voice.min(backings.len()) {
            let (backing_name, backing) = &backings[turn % backings.len()];
            turn += 1;
            for db in [0.0, -6.0] {
                clips.push(Clip {
                    name: format!("{name} over {backing_name} at {db:.0} dB"),
                    group: format!("mix {db:.0} dB"),
                    kind: Kind::Sung,
                    audio: mix_over(voice, backing, db)?.0,
                    reference: Some(notes.clone()),
                    vocal_stem: None,
                });
            }
        }
    }
    if args.vocadito.is_file() {
        let notes_path = args
            .vocadito
            .with_file_name(format!("{}_notesA1.csv", stem_name(&args.vocadito)));
        let text = std::fs::read_to_string(&notes_path)
            .with_context(|| format!("cannot read {}", notes_path.display()))?;
        let reference = read_notes_csv(&text)
            .with_context(|| format!("cannot parse {}", notes_path.display()))?;
        clips.push(Clip {
            name: stem_name(&args.vocadito),
            group: "vocadito (A1)".into(),
            kind: Kind::Sung,
            audio: decode_track(&args.vocadito, None)?,
            reference: Some(reference),
            vocal_stem: None,
        });
    } else {
        eprintln!(
            "{} not found: the vocadito group is left out",
            args.vocadito.display()
        );
    }
    Ok(clips)
}

/// A clip's name as a file name: letters, digits, `-` and `.` kept, anything else `_`.
fn file_stem(clip_name: &str) -> String {
    clip_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Writes `track` and the clip's annotation into `dir` (see `--tracks`).
fn write_track(dir: &Path, clip: &Clip, track: &PitchTrack) -> Result<()> {
    let stem = file_stem(&clip.name);
    let mut csv = String::from("secs,pitch_hz,confidence,loudness_db,harmonic_db\n");
    for t in 0..track.len() {
        let _ = writeln!(
            csv,
            "{:.3},{},{},{},{}",
            t as f64 * track.frame_period,
            track.pitch_hz[t],
            track.confidence[t],
            track.loudness_db[t],
            track.harmonic_db.get(t).copied().unwrap_or(f32::NAN)
        );
    }
    write_bytes(&dir.join(format!("{stem}.track.csv")), csv.as_bytes())?;
    if let Some(reference) = &clip.reference {
        let mut csv = String::from("onset,offset,pitch_hz\n");
        for n in reference {
            let _ = writeln!(csv, "{},{},{}", n.onset, n.offset, n.pitch_hz);
        }
        write_bytes(&dir.join(format!("{stem}.notes.csv")), csv.as_bytes())?;
    }
    Ok(())
}

/// Runs the service's steps on one clip, keeping what the report and the features need, and
/// writing its contour into `tracks` when given.
fn evaluate(engine: &Engine, clip: Clip, tracks: Option<&Path>) -> Result<Outcome> {
    let traced = engine.transcribe_traced(&clip.audio, &mut |_| {})?;
    let (track, result) = (traced.track, traced.result);
    if let Some(dir) = tracks {
        write_track(dir, &clip, &track)?;
    }
    let options = TranscriptionOptions::default();
    let estimate: Vec<EvalNote> = match &result {
        Ok(t) => t.notes.iter().map(EvalNote::from).collect(),
        Err(_) => Vec::new(),
    };
    let tolerances = Tolerances::default();
    let scores = clip
        .reference
        .as_ref()
        .filter(|r| !r.is_empty())
        .map(|reference| score_notes(reference, &estimate, &tolerances));
    let (aligned_conp, tuning_offset) = match clip.reference.as_ref().filter(|r| !r.is_empty()) {
        Some(reference) => match tuning_offset(reference, &estimate, &tolerances) {
            Some(offset) => {
                let factor = 2f64.powf(offset / 12.0);
                let shifted: Vec<EvalNote> = estimate
                    .iter()
                    .map(|n| EvalNote {
                        pitch_hz: n.pitch_hz * factor,
                        ..*n
                    })
                    .collect();
                (
                    Some(score_notes(reference, &shifted, &tolerances).conp.f1),
                    Some(offset),
                )
            }
            None => (None, None),
        },
        None => (None, None),
    };
    let ceiling = clip.reference.as_ref().map(|reference| {
        let contour: Vec<Option<f64>> = track
            .pitch_hz
            .iter()
            .zip(&track.confidence)
            .map(|(&hz, &c)| (c >= VOICED).then_some(f64::from(hz)))
            .collect();
        pitch_ceiling(reference, &contour, track.frame_period, &tolerances)
    });
    let agreement = match &clip.vocal_stem {
        Some(stem) => {
            let raised = stem.raised_to(TRANSCRIPTION_MIN_LEVEL_DBFS);
            let stem = raised.as_ref().unwrap_or(stem);
            let stem_track = engine.transcriber()?.track(stem, &mut |_| {})?;
            notes_from_track(&stem_track, &options).ok().map(|t| {
                let reference: Vec<EvalNote> = t.notes.iter().map(EvalNote::from).collect();
                score_notes(&reference, &estimate, &tolerances).conp.f1
            })
        }
        None => None,
    };
    eprintln!(
        "{:<60} {:>12} {}",
        clip.name,
        clip.kind.name(),
        match &result {
            Ok(t) => format!("{} notes, confidence {:.2}", t.notes.len(), t.confidence),
            Err(e) => e.to_string(),
        }
    );
    Ok(Outcome {
        clip_name: clip.name,
        group: clip.group,
        kind: clip.kind,
        seconds: clip.audio.duration_secs(),
        result,
        scores,
        aligned_conp,
        tuning_offset,
        ceiling,
        agreement,
        decision: traced.decision,
    })
}

/// The median pitch difference (reference minus estimate, semitones) over notes whose onsets
/// match; `None` without matches.
fn tuning_offset(
    reference: &[EvalNote],
    estimate: &[EvalNote],
    tolerances: &Tolerances,
) -> Option<f64> {
    let semitones = |hz: f64| 12.0 * (hz / 440.0).log2();
    let mut differences: Vec<f64> = reference
        .iter()
        .filter_map(|r| {
            estimate
                .iter()
                .filter(|e| (e.onset - r.onset).abs() <= tolerances.onset_secs)
                .min_by(|a, b| {
                    (a.onset - r.onset)
                        .abs()
                        .total_cmp(&(b.onset - r.onset).abs())
                })
                .map(|e| semitones(r.pitch_hz) - semitones(e.pitch_hz))
        })
        .collect();
    if differences.is_empty() {
        return None;
    }
    differences.sort_by(f64::total_cmp);
    Some(differences[differences.len() / 2])
}

/// The report: decisions per group and kind, note metrics and agreement per group.
fn report(outcomes: &[Outcome]) -> String {
    let mut out = String::new();
    let mut groups: Vec<&str> = Vec::new();
    for o in outcomes {
        if !groups.contains(&o.group.as_str()) {
            groups.push(&o.group);
        }
    }
    let _ = writeln!(
        out,
        "\n## Decision (notes / instrumental / spoken) by group\n"
    );
    let _ = writeln!(
        out,
        "| group | kind | clips | notes | NoOutput: instrumental | NoOutput: spoken | right |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    let mut right_total = 0;
    for group in &groups {
        for kind in [Kind::Sung, Kind::Speech, Kind::Instrumental] {
            let of: Vec<&Outcome> = outcomes
                .iter()
                .filter(|o| o.group == *group && o.kind == kind)
                .collect();
            if of.is_empty() {
                continue;
            }
            let notes = of.iter().filter(|o| o.result.is_ok()).count();
            let melody = of
                .iter()
                .filter(|o| matches!(o.result, Err(NoOutput::Instrumental { .. })))
                .count();
            let not_sung = of.len() - notes - melody;
            let right = if kind == Kind::Sung {
                notes
            } else {
                of.len() - notes
            };
            right_total += right;
            let _ = writeln!(
                out,
                "| {group} | {} | {} | {notes} | {melody} | {not_sung} | {right}/{} |",
                kind.name(),
                of.len(),
                of.len()
            );
        }
    }
    let _ = writeln!(
        out,
        "\nright decisions: {right_total} of {}",
        outcomes.len()
    );
    let wrong: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| o.result.is_ok() != (o.kind == Kind::Sung))
        .collect();
    for o in &wrong {
        let _ = writeln!(
            out,
            "- wrong: {} ({}): {}",
            o.clip_name,
            o.kind.name(),
            match &o.result {
                Ok(t) => format!("{} notes, confidence {:.2}", t.notes.len(), t.confidence),
                Err(e) => e.to_string(),
            }
        );
    }

    let _ = writeln!(
        out,
        "\n## Notes against annotations (F1; mean and worst clip)\n"
    );
    let _ = writeln!(
        out,
        "| group | clips | COn | COnP | COnPOff | worst COnP (clip) | COnP tuning-aligned | median |tuning offset| | COnP ceiling (annotated boundaries) | worst ceiling (clip) |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
    for group in &groups {
        let scored: Vec<(&Outcome, &TranscriptionScores)> = outcomes
            .iter()
            .filter(|o| o.group == *group)
            .filter_map(|o| o.scores.as_ref().map(|s| (o, s)))
            .collect();
        if scored.is_empty() {
            continue;
        }
        let mean = |f: fn(&TranscriptionScores) -> f64| {
            scored.iter().map(|(_, s)| f(s)).sum::<f64>() / scored.len() as f64
        };
        let worst = scored
            .iter()
            .min_by(|a, b| a.1.conp.f1.total_cmp(&b.1.conp.f1))
            .map(|(o, s)| format!("{:.3} ({})", s.conp.f1, o.clip_name))
            .unwrap_or_default();
        let aligned: Vec<f64> = scored
            .iter()
            .map(|(o, _)| o.aligned_conp.unwrap_or(0.0))
            .collect();
        let mut offsets: Vec<f64> = scored
            .iter()
            .filter_map(|(o, _)| o.tuning_offset.map(f64::abs))
            .collect();
        offsets.sort_by(f64::total_cmp);
        let ceilings: Vec<(&Outcome, f64)> = scored
            .iter()
            .filter_map(|(o, _)| o.ceiling.map(|c| (*o, c)))
            .collect();
        let worst_ceiling = ceilings
            .iter()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(o, c)| format!("{c:.3} ({})", o.clip_name))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "| {group} | {} | {:.3} | {:.3} | {:.3} | {worst} | {:.3} | {:.2} st | {:.3} | {worst_ceiling} |",
            scored.len(),
            mean(|s| s.con.f1),
            mean(|s| s.conp.f1),
            mean(|s| s.conpoff.f1),
            aligned.iter().sum::<f64>() / aligned.len() as f64,
            offsets.get(offsets.len() / 2).copied().unwrap_or(0.0),
            ceilings.iter().map(|(_, c)| c).sum::<f64>() / ceilings.len().max(1) as f64
        );
    }

    let agreements: Vec<&Outcome> = outcomes.iter().filter(|o| o.agreement.is_some()).collect();
    if !agreements.is_empty() {
        let _ = writeln!(
            out,
            "\n## Mix against its isolated vocal (COnP F1 of the mix's notes, the vocal stem's notes as reference)\n"
        );
        for o in agreements {
            let _ = writeln!(out, "- {}: {:.3}", o.clip_name, o.agreement.unwrap_or(0.0));
        }
    }
    out
}
