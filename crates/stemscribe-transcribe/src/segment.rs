//! Splits a pitch contour into notes and rests by exact dynamic programming.
//!
//! This is the segmentation of SwiftF0's `segment_notes` (swift-f0 0.3.0, MIT licence,
//! Lars Nieradzik), ported frame for frame, with one change: its loudness term reads the
//! level of the voice's harmonics, doubled, instead of the broadband level. It minimises
//!
//! `J = Σ_notes [β + Σ_frames (offpitch + unvoiced + quiet)]`, rests costing nothing, where
//!
//! - `offpitch = c · min(|m − μ|, 2)`: `m` the frame's pitch in semitones, `c` its
//!   confidence, `μ` the note's pitch (one of the measured pitches rounded to a cent);
//! - `unvoiced = −ln(c / (1 − c))`, `c` clipped to [0.01, 0.99];
//! - `quiet` = twice the dB by which the frame's harmonic level
//!   ([`PitchTrack::harmonic_db`]) lies more than 3 dB below the loudest frames within 64 ms
//!   on both sides: a dip between two syllables sung on one pitch splits them into two
//!   notes (a track with no harmonic levels uses `loudness_db`, undoubled: SwiftF0's rule);
//! - `β = hold / frame period`: a new pitch one semitone away becomes a note of its own once
//!   it lasts longer than `hold`, a jump of two semitones or more after half of that.
//!
//! Time and memory are O(frames × distinct pitches).

use crate::pitch::PitchTrack;

/// One note found in a contour, in frames.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Segment {
    /// First frame of the note.
    pub start: usize,
    /// One past the last frame.
    pub end: usize,
    /// The note's pitch as a fractional MIDI number, a measured pitch rounded to a cent.
    pub pitch: f64,
}

/// Largest pitch error, in semitones, a frame is charged.
const OFFPITCH_CAP: f64 = 2.0;
/// Frames on each side of the loudness window (64 ms at 16 ms frames).
const LOUDNESS_REACH: usize = 4;
/// Weight of a dip in the harmonic level; chosen on the corpus (docs/quality.md, Transcription).
const HARMONIC_DIP_WEIGHT: f64 = 2.0;

/// The segmentation of `track` with the smallest cost, notes in time order.
pub fn segment(track: &PitchTrack, hold_secs: f64) -> Vec<Segment> {
    let n = track.len();
    let semitones: Vec<Option<f64>> = track.pitch_hz.iter().map(|&hz| semitones(hz)).collect();
    let weight: Vec<f64> = semitones
        .iter()
        .zip(&track.confidence)
        .map(|(m, &c)| if m.is_some() { f64::from(c) } else { 0.0 })
        .collect();
    let mut candidates: Vec<f64> = semitones
        .iter()
        .flatten()
        .map(|m| (m * 100.0 + 0.5).floor() / 100.0)
        .collect();
    if candidates.is_empty() {
        return Vec::new();
    }
    candidates.sort_by(f64::total_cmp);
    candidates.dedup();

    let quiet = if track.harmonic_db.len() == n {
        quiet_cost(&track.harmonic_db, HARMONIC_DIP_WEIGHT)
    } else {
        quiet_cost(&track.loudness_db, 1.0)
    };
    let frame_cost: Vec<f64> = weight
        .iter()
        .zip(&quiet)
        .map(|(&w, &quiet)| {
            let c = w.clamp(0.01, 0.99);
            -(c / (1.0 - c)).ln() + quiet
        })
        .collect();
    let beta = hold_secs / track.frame_period;

    // cost[j]: the cheapest segmentation of the frames so far that ends in a note at
    // candidate j; opened[j]: where that note starts.
    let mut cost = vec![f64::INFINITY; candidates.len()];
    let mut opened = vec![0usize; candidates.len()];
    // For each prefix length b: where its last note or rest frame starts, and the note's
    // candidate (None for a rest).
    let mut back = vec![0usize; n + 1];
    let mut kind: Vec<Option<usize>> = vec![None; n + 1];
    let mut best = 0.0f64;
    for t in 0..n {
        let open = best + beta;
        let m = semitones[t].unwrap_or(0.0);
        for ((cost_j, opened_j), mu) in cost.iter_mut().zip(&mut opened).zip(&candidates) {
            if open < *cost_j {
                *opened_j = t;
                *cost_j = open;
            }
            *cost_j += weight[t] * (mu - m).abs().min(OFFPITCH_CAP) + frame_cost[t];
        }
        let argmin = (1..cost.len()).fold(0, |a, j| if cost[j] < cost[a] { j } else { a });
        if cost[argmin] < best {
            best = cost[argmin];
            back[t + 1] = opened[argmin];
            kind[t + 1] = Some(argmin);
        } else {
            back[t + 1] = t;
        }
    }

    let mut notes = Vec::new();
    let mut b = n;
    while b > 0 {
        let a = back[b];
        if let Some(j) = kind[b] {
            notes.push(Segment {
                start: a,
                end: b,
                pitch: candidates[j],
            });
        }
        b = a;
    }
    notes.reverse();
    notes
}

/// A frequency as a fractional MIDI number, if it is a positive finite one.
pub(crate) fn semitones(hz: f32) -> Option<f64> {
    let hz = f64::from(hz);
    (hz.is_finite() && hz > 0.0).then(|| 69.0 + 12.0 * (hz / 440.0).log2())
}

/// Per frame, `weight` times the dB by which it lies more than 3 dB below the loudest frames
/// within [`LOUDNESS_REACH`] frames on both sides (the edges mirrored, numpy's `symmetric`
/// pad).
fn quiet_cost(level: &[f32], weight: f64) -> Vec<f64> {
    let n = level.len();
    let at = |i: isize| -> f64 {
        let len = n as isize;
        let mirrored = if i < 0 {
            -i - 1
        } else if i >= len {
            2 * len - i - 1
        } else {
            i
        };
        f64::from(level[mirrored.clamp(0, len - 1) as usize])
    };
    let reach = LOUDNESS_REACH as isize;
    let half_power_db = 10.0 * 2f64.log10();
    (0..n as isize)
        .map(|t| {
            let left = (t - reach..=t).map(at).fold(f64::NEG_INFINITY, f64::max);
            let right = (t..=t + reach).map(at).fold(f64::NEG_INFINITY, f64::max);
            weight * (left.min(right) - at(t) - half_power_db).max(0.0)
        })
        .collect()
}
