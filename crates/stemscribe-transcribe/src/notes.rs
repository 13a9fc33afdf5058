//! From segments to the notes the service returns: short fragments dropped, the singing
//! decision ([`crate::DecisionModel`]) that gives notes or [`NoOutput`], velocities from
//! loudness and the confidence (the decision's probability of singing).

use stemscribe_audio::timings::{measure, Stage};
use stemscribe_midi::{Note, Transcription};

use crate::decision::{ClassProbabilities, DecisionFeatures, DecisionModel, VoiceClass};
use crate::pitch::PitchTrack;
use crate::segment::{segment, semitones, Segment};
use crate::NoOutput;

/// Confidence at which a frame counts as voiced.
const VOICED: f32 = 0.5;
/// Largest distance, in semitones, of a frame's pitch from its note's for the frame to count
/// as explained by the note.
const STABLE_SEMITONES: f64 = 0.5;
/// Seconds over which a held pitch is measured.
const HELD_SECS: f64 = 0.048;
/// Largest pitch change, in semitones, over [`HELD_SECS`] for a frame to count as held.
const HELD_SEMITONES: f64 = 0.25;
/// Level range, in dB below the loudest note, mapped onto velocities 127 down to 1.
const VELOCITY_RANGE_DB: f64 = 60.0;
/// A note's first and last frames are trimmed while their harmonic level lies more than this
/// many dB below the note's median (a breath, a decay, a consonant before the vowel).
const TRIM_DB: f32 = 10.0;

/// Choices that change the notes. `hold_secs` was chosen leave-one-recording-out on the
/// development corpus and vocadito, `min_note_secs` on vocadito; see docs/quality.md,
/// Transcription. Whether there are notes at all is the [`DecisionModel`]'s call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TranscriptionOptions {
    /// Cost of a note in seconds of frames: a new pitch one semitone away becomes a note of
    /// its own once it lasts longer than this.
    pub hold_secs: f64,
    /// Notes shorter than this are dropped.
    pub min_note_secs: f64,
}

impl Default for TranscriptionOptions {
    fn default() -> Self {
        Self {
            hold_secs: 0.130,
            min_note_secs: 0.080,
        }
    }
}

/// Measurable properties of a pitch contour and the notes found in it, part of what the
/// singing decision reads ([`DecisionFeatures`]).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Evidence {
    /// Length of the contour in seconds.
    pub duration_secs: f64,
    /// Share of frames that are voiced (confidence ≥ 0.5).
    pub voiced_share: f64,
    /// Share of voiced frames inside a kept note and within 50 cents of its pitch.
    pub stable_share: f64,
    /// Share of voiced frames whose pitch moves less than a quarter semitone over the next
    /// 48 ms, among those whose frame 48 ms later is voiced too.
    pub held_share: f64,
    /// Seconds covered by kept notes.
    pub sung_secs: f64,
    /// Median length of the kept notes in seconds (0 without notes).
    pub median_note_secs: f64,
    /// Mean absolute pitch slope over pairs of consecutive voiced frames, semitones per second.
    pub mean_slope: f64,
    /// Spread of the voiced pitches, 5th to 95th percentile, in semitones.
    pub range_semitones: f64,
}

/// The evidence `track` and its kept `segments` give.
pub fn evidence(track: &PitchTrack, segments: &[Segment]) -> Evidence {
    let period = track.frame_period;
    let voiced: Vec<usize> = (0..track.len())
        .filter(|&t| track.confidence[t] >= VOICED)
        .collect();
    let stable: usize = segments
        .iter()
        .map(|s| {
            (s.start..s.end)
                .filter(|&t| {
                    track.confidence[t] >= VOICED
                        && semitones(track.pitch_hz[t])
                            .is_some_and(|m| (m - s.pitch).abs() <= STABLE_SEMITONES)
                })
                .count()
        })
        .sum();
    let mut durations: Vec<f64> = segments
        .iter()
        .map(|s| (s.end - s.start) as f64 * period)
        .collect();
    durations.sort_by(f64::total_cmp);
    let slopes: Vec<f64> = voiced
        .windows(2)
        .filter(|w| w[1] == w[0] + 1)
        .filter_map(|w| {
            let (a, b) = (
                semitones(track.pitch_hz[w[0]])?,
                semitones(track.pitch_hz[w[1]])?,
            );
            Some((b - a).abs() / period)
        })
        .collect();
    let lag = ((HELD_SECS / period).round() as usize).max(1);
    let followed: Vec<usize> = voiced
        .iter()
        .copied()
        .filter(|&t| t + lag < track.len() && track.confidence[t + lag] >= VOICED)
        .collect();
    let held = followed
        .iter()
        .filter(|&&t| {
            semitones(track.pitch_hz[t])
                .zip(semitones(track.pitch_hz[t + lag]))
                .is_some_and(|(a, b)| (a - b).abs() < HELD_SEMITONES)
        })
        .count();
    let mut pitches: Vec<f64> = voiced
        .iter()
        .filter_map(|&t| semitones(track.pitch_hz[t]))
        .collect();
    pitches.sort_by(f64::total_cmp);
    let quantile = |q: f64| {
        let last = pitches.len().saturating_sub(1);
        pitches
            .get((last as f64 * q) as usize)
            .copied()
            .unwrap_or(0.0)
    };
    Evidence {
        duration_secs: track.len() as f64 * period,
        voiced_share: share(voiced.len(), track.len()),
        stable_share: share(stable, voiced.len()),
        held_share: share(held, followed.len()),
        // A fold from +0.0: `Sum` of no floats is −0.0, which prints as "-0.0 s".
        sung_secs: durations.iter().fold(0.0, |total, d| total + d),
        median_note_secs: durations.get(durations.len() / 2).copied().unwrap_or(0.0),
        mean_slope: slopes.iter().sum::<f64>() / slopes.len().max(1) as f64,
        range_semitones: quantile(0.95) - quantile(0.05),
    }
}

/// `part / whole`, or 0 when `whole` is 0.
fn share(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// The notes of a contour long enough to keep (at least `min_note_secs`).
pub fn kept_segments(track: &PitchTrack, options: &TranscriptionOptions) -> Vec<Segment> {
    let min_frames = min_note_frames(track, options);
    segment(track, options.hold_secs)
        .into_iter()
        .filter(|s| s.end - s.start >= min_frames)
        .collect()
}

/// `min_note_secs` in frames of `track`, at least one.
fn min_note_frames(track: &PitchTrack, options: &TranscriptionOptions) -> usize {
    ((options.min_note_secs / track.frame_period).round() as usize).max(1)
}

/// What the singing decision read and concluded.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Decision {
    /// The contour's evidence.
    pub evidence: Evidence,
    /// Everything the classifier read.
    pub features: DecisionFeatures,
    /// Its probability of each class.
    pub probabilities: ClassProbabilities,
}

/// The notes of `track`, an isolated voice, or why it holds no sung melody: see
/// [`notes_with_decision`].
pub fn notes_from_track(
    track: &PitchTrack,
    options: &TranscriptionOptions,
) -> Result<Transcription, NoOutput> {
    notes_with_decision(track, options, None).1
}

/// The notes of `track`, or why it holds no sung melody, with what the decision read.
/// `vocal_to_mix_db` is the level of the separated voice against the input it was separated
/// from (`None`: an isolated voice).
///
/// The [`DecisionModel`] gives the probability that a voice sings, speaks or raps, or that
/// there is none; at or above its threshold of singing, the notes are given with that
/// probability as their confidence, trimmed to where their harmonics sound (frames at either
/// end more than 10 dB below the note's median harmonic level are dropped).
pub fn notes_with_decision(
    track: &PitchTrack,
    options: &TranscriptionOptions,
    vocal_to_mix_db: Option<f64>,
) -> (Decision, Result<Transcription, NoOutput>) {
    measure(Stage::Notes, || decide(track, options, vocal_to_mix_db))
}

fn decide(
    track: &PitchTrack,
    options: &TranscriptionOptions,
    vocal_to_mix_db: Option<f64>,
) -> (Decision, Result<Transcription, NoOutput>) {
    let segments = kept_segments(track, options);
    let evidence = evidence(track, &segments);
    let model = DecisionModel::bundled();
    let features = DecisionFeatures::measure(
        track,
        &segments,
        &evidence,
        vocal_to_mix_db,
        model.frame_network(),
    );
    let decision = Decision {
        evidence,
        features,
        probabilities: model.probabilities(&features),
    };
    let singing = decision.probabilities.sung;
    let result = if segments.is_empty() || singing < model.threshold() {
        Err(match decision.probabilities.not_sung() {
            VoiceClass::Spoken => NoOutput::Spoken { singing },
            _ => NoOutput::Instrumental { singing },
        })
    } else {
        Ok(Transcription {
            notes: notes(track, &segments, options),
            confidence: singing,
        })
    };
    (decision, result)
}

/// The notes `track` gives once the decision says it is sung: its kept segments trimmed to
/// where their harmonics sound, with velocities from their loudness.
pub fn sung_notes(track: &PitchTrack, options: &TranscriptionOptions) -> Vec<Note> {
    notes(track, &kept_segments(track, options), options)
}

/// The notes of `segments` of `track`.
fn notes(track: &PitchTrack, segments: &[Segment], options: &TranscriptionOptions) -> Vec<Note> {
    let period = track.frame_period;
    let min_frames = min_note_frames(track, options);
    let segments: Vec<Segment> = segments
        .iter()
        .map(|s| trimmed(s, &track.harmonic_db, min_frames))
        .collect();
    let levels: Vec<f64> = segments
        .iter()
        .map(|s| power_mean_db(&track.loudness_db[s.start..s.end]))
        .collect();
    let loudest = levels.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    segments
        .iter()
        .zip(&levels)
        .map(|(s, &level)| Note {
            start: s.start as f64 * period,
            end: s.end as f64 * period,
            pitch: s.pitch,
            velocity: velocity(level, loudest),
        })
        .collect()
}

/// `segment` without the frames at either end whose harmonic level lies more than
/// [`TRIM_DB`] below the note's median, never shorter than `min_frames`; unchanged when
/// `harmonic_db` does not cover it (a track without harmonic levels).
fn trimmed(segment: &Segment, harmonic_db: &[f32], min_frames: usize) -> Segment {
    let Some(levels) = harmonic_db.get(segment.start..segment.end) else {
        return *segment;
    };
    let mut sorted = levels.to_vec();
    sorted.sort_by(f32::total_cmp);
    let Some(&median) = sorted.get(sorted.len() / 2) else {
        return *segment;
    };
    let floor = median - TRIM_DB;
    let (mut start, mut end) = (segment.start, segment.end);
    while end - start > min_frames && harmonic_db[end - 1] < floor {
        end -= 1;
    }
    while end - start > min_frames && harmonic_db[start] < floor {
        start += 1;
    }
    Segment {
        start,
        end,
        ..*segment
    }
}

/// The level of the mean power of frames given in dB.
fn power_mean_db(levels_db: &[f32]) -> f64 {
    let mean = levels_db
        .iter()
        .map(|&db| 10f64.powf(f64::from(db) / 10.0))
        .sum::<f64>()
        / levels_db.len().max(1) as f64;
    10.0 * mean.max(1e-14).log10()
}

/// 127 for the loudest note, one step less per [`VELOCITY_RANGE_DB`]/126 dB below it.
fn velocity(level_db: f64, loudest_db: f64) -> u8 {
    let below = (loudest_db - level_db).max(0.0);
    (127.0 - below * 126.0 / VELOCITY_RANGE_DB)
        .round()
        .clamp(1.0, 127.0) as u8
}
