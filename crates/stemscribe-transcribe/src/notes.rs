//! From segments to the notes the service returns: short fragments dropped, velocities from
//! loudness, an overall confidence, and the rule that decides there is no sung melody.

use stemscribe_midi::{Note, Transcription};

use crate::pitch::PitchTrack;
use crate::segment::{segment, semitones, Segment};
use crate::NoOutput;

/// Confidence at which a frame counts as voiced.
const VOICED: f32 = 0.5;
/// Largest distance, in semitones, of a frame's pitch from its note's for the frame to count
/// as explained by the note.
const STABLE_SEMITONES: f64 = 0.5;
/// Level range, in dB below the loudest note, mapped onto velocities 127 down to 1.
const VELOCITY_RANGE_DB: f64 = 60.0;

/// Choices that change the notes. The defaults were chosen on vocadito and MIR-1K style
/// material (solo and separated singing); see the README's quality table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TranscriptionOptions {
    /// Cost of a note in seconds of frames: a new pitch one semitone away becomes a note of
    /// its own once it lasts longer than this.
    pub hold_secs: f64,
    /// Notes shorter than this are dropped.
    pub min_note_secs: f64,
    /// Less than this much sung time in notes means there is no melody
    /// ([`NoOutput::NoMelody`]).
    pub min_melody_secs: f64,
    /// A confidence below this means the voice speaks or raps rather than sings
    /// ([`NoOutput::NotSung`]).
    pub min_confidence: f64,
}

impl Default for TranscriptionOptions {
    fn default() -> Self {
        Self {
            hold_secs: 0.100,
            min_note_secs: 0.080,
            min_melody_secs: 1.0,
            min_confidence: 0.65,
        }
    }
}

/// The notes of `track`, or why it holds no sung melody.
///
/// Confidence is the share of voiced frames (confidence ≥ 0.5) that lie inside a kept note
/// and within 50 cents of its pitch: near 0.9 for singing, below 0.5 for speech and rap,
/// whose pitch glides instead of settling on notes.
pub fn notes_from_track(
    track: &PitchTrack,
    options: &TranscriptionOptions,
) -> Result<Transcription, NoOutput> {
    let period = track.frame_period;
    let min_frames = (options.min_note_secs / period).round() as usize;
    let segments: Vec<Segment> = segment(track, options.hold_secs)
        .into_iter()
        .filter(|s| s.end - s.start >= min_frames.max(1))
        .collect();

    let voiced = track.confidence.iter().filter(|&&c| c >= VOICED).count();
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
    let confidence = if voiced == 0 {
        0.0
    } else {
        stable as f64 / voiced as f64
    };

    let sung_secs = segments.iter().map(|s| s.end - s.start).sum::<usize>() as f64 * period;
    if sung_secs < options.min_melody_secs {
        return Err(NoOutput::NoMelody { sung_secs });
    }
    if confidence < options.min_confidence {
        return Err(NoOutput::NotSung { confidence });
    }

    let levels: Vec<f64> = segments
        .iter()
        .map(|s| power_mean_db(&track.loudness_db[s.start..s.end]))
        .collect();
    let loudest = levels.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let notes = segments
        .iter()
        .zip(&levels)
        .map(|(s, &level)| Note {
            start: s.start as f64 * period,
            end: s.end as f64 * period,
            pitch: s.pitch,
            velocity: velocity(level, loudest),
        })
        .collect();
    Ok(Transcription { notes, confidence })
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
