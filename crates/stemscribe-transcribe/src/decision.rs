//! The decision between a sung melody, speech or rap, and instrumental music: measurable
//! properties of the separated voice, its pitch contour and its notes ([`DecisionFeatures`]),
//! among them the verdicts of a small network on every voiced frame ([`FrameNetwork`]),
//! combined by a small learned classifier ([`DecisionModel`]) into the probability of each
//! class. Its parameters are data: `decision.json` beside this file, written by
//! `scripts/train/fit_singing_decision.py` from clips that anyone can regenerate
//! (`scripts/train/make_decision_data.py`); see docs/quality.md, "The singing decision".

use std::sync::OnceLock;

use realfft::RealFftPlanner;
use serde::Deserialize;
use thiserror::Error;

use crate::envelope::{envelope_distance_db, ENVELOPE_COEFFICIENTS};
use crate::notes::Evidence;
use crate::pitch::PitchTrack;
use crate::segment::{semitones, Segment};

/// Confidence at which a frame counts as voiced.
const VOICED: f32 = 0.5;
/// Notes at least this long are read for vibrato.
const VIBRATO_MIN_SECS: f64 = 0.25;
/// Seconds over which a note's pitch is smoothed to tell its vibrato from its drift.
const VIBRATO_SMOOTH_SECS: f64 = 0.2;

/// The classes the decision tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoiceClass {
    /// A voice sings a melody.
    Sung,
    /// A voice speaks or raps.
    Spoken,
    /// No voice: instrumental music, noise or silence.
    Instrumental,
}

/// The classifier's probability of each [`VoiceClass`]; they sum to 1.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ClassProbabilities {
    /// Probability that a voice sings.
    pub sung: f64,
    /// Probability that a voice speaks or raps.
    pub spoken: f64,
    /// Probability that there is no voice.
    pub instrumental: f64,
}

impl ClassProbabilities {
    /// The likelier of the two classes that give no notes.
    pub fn not_sung(&self) -> VoiceClass {
        if self.spoken > self.instrumental {
            VoiceClass::Spoken
        } else {
            VoiceClass::Instrumental
        }
    }
}

/// What the decision reads of an input, every value finite.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct DecisionFeatures {
    /// Natural log of the input's length in seconds.
    pub log_seconds: f64,
    /// Share of frames that are voiced.
    pub voiced_share: f64,
    /// [`Evidence::stable_share`].
    pub stable_share: f64,
    /// [`Evidence::held_share`].
    pub held_share: f64,
    /// Share of the input covered by notes.
    pub sung_share: f64,
    /// Natural log of the median note length in seconds plus 50 ms.
    pub log_median_note: f64,
    /// Natural log of [`Evidence::mean_slope`] (at least 0.1 semitone a second).
    pub log_slope: f64,
    /// [`Evidence::range_semitones`] in octaves.
    pub range_octaves: f64,
    /// Notes per second of voiced time, at most 10.
    pub note_rate: f64,
    /// Standard deviation of the natural log of the note lengths.
    pub note_length_spread: f64,
    /// How the intervals between consecutive notes settle on whole semitones: the length of
    /// the mean of `exp(2πi·interval)`, weighted by the shorter note of each pair (1: every
    /// interval a whole number of semitones).
    pub interval_quantisation: f64,
    /// Median vibrato rate of the notes of 250 ms or more, in Hz (half the rate at which
    /// the pitch crosses its smoothed self).
    pub vibrato_rate: f64,
    /// Median vibrato extent of those notes: the deviation from the smoothed pitch, in
    /// semitones (RMS), at most 1.
    pub vibrato_extent: f64,
    /// Natural log of the median length of a run of voiced frames in seconds plus 50 ms.
    pub log_voiced_run: f64,
    /// Runs of voiced frames per second of input (syllables, sung or spoken).
    pub voiced_run_rate: f64,
    /// Mean of the harmonic level minus the broadband level over voiced frames, in dB
    /// (at most 0 and at least −40).
    pub harmonicity_db: f64,
    /// Mean change of the spectral envelope ([`PitchTrack::envelope_db`]) from one voiced
    /// frame to the next, in dB ([`crate::envelope_distance_db`]).
    pub envelope_change_db: f64,
    /// The same over the frames inside notes, their first two left out.
    pub envelope_change_in_notes_db: f64,
    /// RMS distance in dB of the voiced frames' envelopes from their mean: how much the
    /// timbre varies (vowels and consonants do; an instrument's timbre does not).
    pub envelope_spread_db: f64,
    /// RMS distance in dB of each note's mean envelope from the mean of them all (0 with
    /// fewer than two notes): a singer's vowels change from note to note.
    pub note_timbre_spread_db: f64,
    /// Share of the loud frames (within 20 dB of the 95th percentile of the loudness) that
    /// are unvoiced: consonants and breaths.
    pub unvoiced_loud_share: f64,
    /// Mean of each cepstral coefficient of the voiced frames' envelopes, in dB: the timbre
    /// (the first is the spectral tilt: a voice's harmonics fall faster than a bowed string's
    /// or a brass instrument's; the others the formant pattern).
    pub envelope_mean_db: [f64; ENVELOPE_COEFFICIENTS],
    /// Standard deviation of each cepstral coefficient over the voiced frames, in dB: how
    /// each part of the timbre moves (vowels and consonants move the formants).
    pub envelope_std_db: [f64; ENVELOPE_COEFFICIENTS],
    /// Mean of the first [`UNVOICED_COEFFICIENTS`] cepstral coefficients of the loud unvoiced
    /// frames' mel envelopes, in dB (0 without any): the spectra of consonants and breaths
    /// (fricatives are bright) against those of an instrument's attacks or a backing's leaks.
    pub unvoiced_envelope_db: [f64; UNVOICED_COEFFICIENTS],
    /// Median pitch of the voiced frames as a MIDI number (0 without any).
    pub pitch_median: f64,
    /// Spread of the voiced frames' pitch: the 90th minus the 10th percentile, in semitones.
    pub pitch_spread_semitones: f64,
    /// Standard deviation of the voiced frames' loudness, in dB.
    pub loudness_spread_db: f64,
    /// Share of the loudness contour's variance at syllable rates (2.5 to 8 Hz).
    pub loudness_modulation: f64,
    /// Level of the separated voice against the input's, in dB (0 for an isolated voice,
    /// at least −60).
    pub vocal_to_mix_db: f64,
    /// Mean voicing confidence of the voiced frames.
    pub voiced_confidence: f64,
    /// The frame network's verdict on the voiced frames ([`FrameNetwork::verdicts`]): the
    /// mean log probability of singing against the log of the sum of the other two's.
    pub frame_sung_log_odds: f64,
    /// Its mean log probability of speech minus that of an instrument.
    pub frame_spoken_log_odds: f64,
}

/// How many cepstral coefficients of the unvoiced frames' envelopes the decision reads.
pub const UNVOICED_COEFFICIENTS: usize = 3;

/// How many features the decision reads.
pub const FEATURES: usize = 24 + 2 * ENVELOPE_COEFFICIENTS + UNVOICED_COEFFICIENTS + 5;

/// The names of [`DecisionFeatures`]' fields in the order of [`DecisionFeatures::values`],
/// as `decision.json` lists them.
pub const FEATURE_NAMES: [&str; FEATURES] = [
    "log_seconds",
    "voiced_share",
    "stable_share",
    "held_share",
    "sung_share",
    "log_median_note",
    "log_slope",
    "range_octaves",
    "note_rate",
    "note_length_spread",
    "interval_quantisation",
    "vibrato_rate",
    "vibrato_extent",
    "log_voiced_run",
    "voiced_run_rate",
    "harmonicity_db",
    "envelope_change_db",
    "envelope_change_in_notes_db",
    "envelope_spread_db",
    "note_timbre_spread_db",
    "unvoiced_loud_share",
    "loudness_modulation",
    "vocal_to_mix_db",
    "voiced_confidence",
    "envelope_mean_1",
    "envelope_mean_2",
    "envelope_mean_3",
    "envelope_mean_4",
    "envelope_mean_5",
    "envelope_mean_6",
    "envelope_mean_7",
    "envelope_mean_8",
    "envelope_mean_9",
    "envelope_mean_10",
    "envelope_mean_11",
    "envelope_mean_12",
    "envelope_std_1",
    "envelope_std_2",
    "envelope_std_3",
    "envelope_std_4",
    "envelope_std_5",
    "envelope_std_6",
    "envelope_std_7",
    "envelope_std_8",
    "envelope_std_9",
    "envelope_std_10",
    "envelope_std_11",
    "envelope_std_12",
    "unvoiced_envelope_1",
    "unvoiced_envelope_2",
    "unvoiced_envelope_3",
    "pitch_median",
    "pitch_spread_semitones",
    "loudness_spread_db",
    "frame_sung_log_odds",
    "frame_spoken_log_odds",
];

impl DecisionFeatures {
    /// The values in the order of [`FEATURE_NAMES`].
    pub fn values(&self) -> [f64; FEATURES] {
        let scalars = [
            self.log_seconds,
            self.voiced_share,
            self.stable_share,
            self.held_share,
            self.sung_share,
            self.log_median_note,
            self.log_slope,
            self.range_octaves,
            self.note_rate,
            self.note_length_spread,
            self.interval_quantisation,
            self.vibrato_rate,
            self.vibrato_extent,
            self.log_voiced_run,
            self.voiced_run_rate,
            self.harmonicity_db,
            self.envelope_change_db,
            self.envelope_change_in_notes_db,
            self.envelope_spread_db,
            self.note_timbre_spread_db,
            self.unvoiced_loud_share,
            self.loudness_modulation,
            self.vocal_to_mix_db,
            self.voiced_confidence,
        ];
        let tail = [
            self.pitch_median,
            self.pitch_spread_semitones,
            self.loudness_spread_db,
            self.frame_sung_log_odds,
            self.frame_spoken_log_odds,
        ];
        let mut values = [0.0; FEATURES];
        for (slot, value) in values.iter_mut().zip(
            scalars
                .iter()
                .chain(&self.envelope_mean_db)
                .chain(&self.envelope_std_db)
                .chain(&self.unvoiced_envelope_db)
                .chain(&tail),
        ) {
            *slot = *value;
        }
        values
    }

    /// The features of `track`, its kept `segments` and their `evidence`, with the verdicts
    /// of `frames`; `vocal_to_mix_db` is `None` for an isolated voice.
    pub fn measure(
        track: &PitchTrack,
        segments: &[Segment],
        evidence: &Evidence,
        vocal_to_mix_db: Option<f64>,
        frames: &FrameNetwork,
    ) -> Self {
        let period = track.frame_period;
        let n = track.len();
        let voiced: Vec<bool> = track.confidence.iter().map(|&c| c >= VOICED).collect();
        let voiced_count = voiced.iter().filter(|&&v| v).count();
        let duration = evidence.duration_secs.max(period);

        let lengths: Vec<f64> = segments
            .iter()
            .map(|s| (s.end - s.start) as f64 * period)
            .collect();
        let log_lengths: Vec<f64> = lengths.iter().map(|l| l.max(period).ln()).collect();

        let runs = voiced_runs(&voiced);
        let mut run_secs: Vec<f64> = runs.iter().map(|r| r.len() as f64 * period).collect();
        run_secs.sort_by(f64::total_cmp);

        let (rates, extents): (Vec<f64>, Vec<f64>) = segments
            .iter()
            .filter(|s| (s.end - s.start) as f64 * period >= VIBRATO_MIN_SECS)
            .filter_map(|s| vibrato(track, s))
            .unzip();

        let harmonicity: Vec<f64> = (0..n)
            .filter(|&t| voiced[t])
            .filter_map(|t| {
                let h = track.harmonic_db.get(t)?;
                Some(f64::from(h - track.loudness_db[t]).clamp(-40.0, 0.0))
            })
            .collect();
        let envelope = |t: usize| track.envelope_db.get(t);
        let change = |t: usize| {
            envelope(t)
                .zip(envelope(t.wrapping_sub(1)))
                .map(|(a, b)| envelope_distance_db(a, b))
        };
        let change_voiced: Vec<f64> = (1..n)
            .filter(|&t| voiced[t] && voiced[t - 1])
            .filter_map(change)
            .collect();
        let change_in_notes: Vec<f64> = segments
            .iter()
            .flat_map(|s| (s.start + 2).min(s.end)..s.end)
            .filter_map(change)
            .collect();
        let voiced_envelopes: Vec<&[f32; ENVELOPE_COEFFICIENTS]> =
            (0..n).filter(|&t| voiced[t]).filter_map(envelope).collect();
        let voiced_centre = mean_envelope(&voiced_envelopes);
        let note_envelopes: Vec<[f32; ENVELOPE_COEFFICIENTS]> = segments
            .iter()
            .filter(|s| s.end - s.start >= 4)
            .filter_map(|s| {
                mean_envelope(&(s.start..s.end).filter_map(envelope).collect::<Vec<_>>())
            })
            .collect();
        let note_refs: Vec<&[f32; ENVELOPE_COEFFICIENTS]> = note_envelopes.iter().collect();
        let mut levels: Vec<f32> = track.loudness_db.clone();
        levels.sort_by(f32::total_cmp);
        let loud_floor = levels
            .get(levels.len() * 95 / 100)
            .map_or(f32::INFINITY, |l| l - 20.0);
        let loud: Vec<usize> = (0..n)
            .filter(|&t| track.loudness_db[t] >= loud_floor)
            .collect();
        let unvoiced_loud: Vec<usize> = loud.iter().copied().filter(|&t| !voiced[t]).collect();
        let unvoiced_envelopes: Vec<&[f32; ENVELOPE_COEFFICIENTS]> =
            unvoiced_loud.iter().filter_map(|&t| envelope(t)).collect();
        let mut voiced_pitches: Vec<f64> = (0..n)
            .filter(|&t| voiced[t])
            .filter_map(|t| semitones(track.pitch_hz[t]))
            .collect();
        voiced_pitches.sort_by(f64::total_cmp);
        let voiced_loudness: Vec<f64> = (0..n)
            .filter(|&t| voiced[t])
            .map(|t| f64::from(track.loudness_db[t]))
            .collect();
        let confidences: Vec<f64> = (0..n)
            .filter(|&t| voiced[t])
            .map(|t| f64::from(track.confidence[t]))
            .collect();
        let [frame_sung_log_odds, frame_spoken_log_odds] = frames.verdicts(track);

        let features = Self {
            log_seconds: duration.ln(),
            voiced_share: evidence.voiced_share,
            stable_share: evidence.stable_share,
            held_share: evidence.held_share,
            sung_share: (evidence.sung_secs / duration).min(1.0),
            log_median_note: (evidence.median_note_secs + 0.05).ln(),
            log_slope: evidence.mean_slope.max(0.1).ln(),
            range_octaves: evidence.range_semitones / 12.0,
            note_rate: (segments.len() as f64 / (voiced_count as f64 * period).max(1.0)).min(10.0),
            note_length_spread: spread(&log_lengths),
            interval_quantisation: interval_quantisation(segments, period),
            vibrato_rate: median(rates),
            vibrato_extent: median(extents).min(1.0),
            log_voiced_run: (run_secs.get(run_secs.len() / 2).copied().unwrap_or(0.0) + 0.05).ln(),
            voiced_run_rate: runs.len() as f64 / duration,
            harmonicity_db: mean(&harmonicity).unwrap_or(-40.0),
            envelope_change_db: mean(&change_voiced).unwrap_or(0.0),
            envelope_change_in_notes_db: mean(&change_in_notes).unwrap_or(0.0),
            envelope_spread_db: voiced_centre
                .map_or(0.0, |centre| spread_around(&voiced_envelopes, &centre)),
            note_timbre_spread_db: if note_refs.len() < 2 {
                0.0
            } else {
                spread_from_mean(&note_refs)
            },
            envelope_mean_db: voiced_centre
                .map_or([0.0; ENVELOPE_COEFFICIENTS], |e| e.map(f64::from)),
            envelope_std_db: coefficient_spread(&voiced_envelopes),
            unvoiced_envelope_db: mean_envelope(&unvoiced_envelopes)
                .map_or([0.0; UNVOICED_COEFFICIENTS], |e| {
                    std::array::from_fn(|k| f64::from(e[k]))
                }),
            pitch_median: percentile(&voiced_pitches, 0.5),
            pitch_spread_semitones: percentile(&voiced_pitches, 0.9)
                - percentile(&voiced_pitches, 0.1),
            loudness_spread_db: spread(&voiced_loudness),
            unvoiced_loud_share: if loud.is_empty() {
                0.0
            } else {
                unvoiced_loud.len() as f64 / loud.len() as f64
            },
            loudness_modulation: loudness_modulation(&track.loudness_db, period),
            vocal_to_mix_db: vocal_to_mix_db.unwrap_or(0.0).clamp(-60.0, 20.0),
            voiced_confidence: mean(&confidences).unwrap_or(0.0),
            frame_sung_log_odds,
            frame_spoken_log_odds,
        };
        features.finite()
    }

    /// `self` with any value that is not finite replaced by 0.
    fn finite(mut self) -> Self {
        let scalars = [
            &mut self.log_seconds,
            &mut self.voiced_share,
            &mut self.stable_share,
            &mut self.held_share,
            &mut self.sung_share,
            &mut self.log_median_note,
            &mut self.log_slope,
            &mut self.range_octaves,
            &mut self.note_rate,
            &mut self.note_length_spread,
            &mut self.interval_quantisation,
            &mut self.vibrato_rate,
            &mut self.vibrato_extent,
            &mut self.log_voiced_run,
            &mut self.voiced_run_rate,
            &mut self.harmonicity_db,
            &mut self.envelope_change_db,
            &mut self.envelope_change_in_notes_db,
            &mut self.envelope_spread_db,
            &mut self.note_timbre_spread_db,
            &mut self.unvoiced_loud_share,
            &mut self.loudness_modulation,
            &mut self.vocal_to_mix_db,
            &mut self.voiced_confidence,
            &mut self.pitch_median,
            &mut self.pitch_spread_semitones,
            &mut self.loudness_spread_db,
            &mut self.frame_sung_log_odds,
            &mut self.frame_spoken_log_odds,
        ];
        for value in scalars.into_iter().chain(
            self.envelope_mean_db
                .iter_mut()
                .chain(&mut self.envelope_std_db)
                .chain(&mut self.unvoiced_envelope_db),
        ) {
            if !value.is_finite() {
                *value = 0.0;
            }
        }
        self
    }
}

/// The mean of `envelopes`, `None` for none.
fn mean_envelope(
    envelopes: &[&[f32; ENVELOPE_COEFFICIENTS]],
) -> Option<[f32; ENVELOPE_COEFFICIENTS]> {
    if envelopes.is_empty() {
        return None;
    }
    let mut sum = [0.0f64; ENVELOPE_COEFFICIENTS];
    for e in envelopes {
        for (s, v) in sum.iter_mut().zip(e.iter()) {
            *s += f64::from(*v);
        }
    }
    Some(sum.map(|s| (s / envelopes.len() as f64) as f32))
}

/// RMS of the distances ([`envelope_distance_db`]) of `envelopes` from their mean; 0 for none.
fn spread_from_mean(envelopes: &[&[f32; ENVELOPE_COEFFICIENTS]]) -> f64 {
    mean_envelope(envelopes).map_or(0.0, |centre| spread_around(envelopes, &centre))
}

/// RMS of the distances of `envelopes` (at least one) from `centre`.
fn spread_around(
    envelopes: &[&[f32; ENVELOPE_COEFFICIENTS]],
    centre: &[f32; ENVELOPE_COEFFICIENTS],
) -> f64 {
    let sum: f64 = envelopes
        .iter()
        .map(|e| envelope_distance_db(e, centre).powi(2))
        .sum();
    (sum / envelopes.len() as f64).sqrt()
}

/// Index ranges of consecutive `true` values.
fn voiced_runs(voiced: &[bool]) -> Vec<std::ops::Range<usize>> {
    let mut runs = Vec::new();
    let mut start = None;
    for (t, &v) in voiced.iter().chain(std::iter::once(&false)).enumerate() {
        match (v, start) {
            (true, None) => start = Some(t),
            (false, Some(s)) => {
                runs.push(s..t);
                start = None;
            }
            _ => {}
        }
    }
    runs
}

/// The standard deviation of each coefficient of `envelopes` (0 with fewer than two).
fn coefficient_spread(envelopes: &[&[f32; ENVELOPE_COEFFICIENTS]]) -> [f64; ENVELOPE_COEFFICIENTS] {
    std::array::from_fn(|k| {
        let values: Vec<f64> = envelopes.iter().map(|e| f64::from(e[k])).collect();
        spread(&values)
    })
}

/// The value at fraction `q` of the sorted `values` (0 for none).
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let last = sorted.len().saturating_sub(1);
    sorted
        .get(((last as f64 * q).round() as usize).min(last))
        .copied()
        .unwrap_or(0.0)
}

fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    percentile(&values, 0.5)
}

fn spread(values: &[f64]) -> f64 {
    match mean(values) {
        Some(m) if values.len() > 1 => {
            (values.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / values.len() as f64).sqrt()
        }
        _ => 0.0,
    }
}

/// See [`DecisionFeatures::interval_quantisation`]; 0 with fewer than two notes.
fn interval_quantisation(segments: &[Segment], period: f64) -> f64 {
    let (mut re, mut im, mut total) = (0.0, 0.0, 0.0);
    for pair in segments.windows(2) {
        let weight =
            ((pair[0].end - pair[0].start).min(pair[1].end - pair[1].start)) as f64 * period;
        let phase = std::f64::consts::TAU * (pair[1].pitch - pair[0].pitch);
        re += weight * phase.cos();
        im += weight * phase.sin();
        total += weight;
    }
    if total > 0.0 {
        (re * re + im * im).sqrt() / total
    } else {
        0.0
    }
}

/// Vibrato rate (Hz) and extent (semitones, RMS) of one note: its voiced pitch against the
/// pitch smoothed over [`VIBRATO_SMOOTH_SECS`].
fn vibrato(track: &PitchTrack, note: &Segment) -> Option<(f64, f64)> {
    let pitches: Vec<f64> = (note.start..note.end)
        .filter_map(|t| semitones(track.pitch_hz[t]))
        .collect();
    let half = ((VIBRATO_SMOOTH_SECS / track.frame_period / 2.0).round() as usize).max(1);
    if pitches.len() < 2 * half + 2 {
        return None;
    }
    let residual: Vec<f64> = (half..pitches.len() - half)
        .map(|i| {
            let window = &pitches[i - half..=i + half];
            pitches[i] - window.iter().sum::<f64>() / window.len() as f64
        })
        .collect();
    let crossings = residual
        .windows(2)
        .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
        .count();
    let seconds = residual.len() as f64 * track.frame_period;
    let rms = (residual.iter().map(|r| r * r).sum::<f64>() / residual.len() as f64).sqrt();
    Some((crossings as f64 / 2.0 / seconds, rms))
}

/// Share of the variance of the loudness contour (dB, floored 60 dB below its loudest frame)
/// between 2.5 and 8 Hz, from its discrete Fourier transform; 0 for a flat contour.
fn loudness_modulation(loudness_db: &[f32], period: f64) -> f64 {
    let n = loudness_db.len();
    if n < 8 {
        return 0.0;
    }
    let top = loudness_db
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    let levels: Vec<f64> = loudness_db
        .iter()
        .map(|&l| f64::from(l.max(top - 60.0)))
        .collect();
    let m = levels.iter().sum::<f64>() / n as f64;
    let centred: Vec<f64> = levels.iter().map(|l| l - m).collect();
    let total: f64 = centred.iter().map(|c| c * c).sum();
    if total <= 0.0 {
        return 0.0;
    }
    let fft = RealFftPlanner::<f64>::new().plan_fft_forward(n);
    let mut input = centred;
    let mut spectrum = fft.make_output_vec();
    if fft.process(&mut input, &mut spectrum).is_err() {
        return 0.0;
    }
    let resolution = 1.0 / (n as f64 * period);
    // Parseval: the variance in bin k (0 < k < n/2) is 2·|X_k|²/n of the total n·var.
    let band: f64 = spectrum
        .iter()
        .enumerate()
        .filter(|(k, _)| {
            let hz = *k as f64 * resolution;
            *k > 0 && 2 * k < n && (2.5..=8.0).contains(&hz)
        })
        .map(|(_, c)| 2.0 * c.norm_sqr() / n as f64)
        .sum();
    (band / total).min(1.0)
}

/// Why a decision model could not be read.
#[derive(Debug, Error)]
pub enum DecisionModelError {
    /// The text is not the expected JSON.
    #[error("the decision model is not valid: {0}")]
    Json(#[from] serde_json::Error),
    /// The JSON does not describe a model over [`FEATURE_NAMES`] into three classes.
    #[error("the decision model is not valid: {0}")]
    Shape(String),
}

/// One dense layer: `outputs = weights · inputs + bias`.
#[derive(Debug, Clone, Deserialize)]
struct Layer {
    weights: Vec<Vec<f64>>,
    bias: Vec<f64>,
}

/// `x` through `layers`, ReLU between them (not after the last).
fn forward(layers: &[Layer], mut x: Vec<f64>) -> Vec<f64> {
    for (i, layer) in layers.iter().enumerate() {
        let last = i + 1 == layers.len();
        x = layer
            .weights
            .iter()
            .zip(&layer.bias)
            .map(|(row, b)| row.iter().zip(&x).map(|(w, v)| w * v).sum::<f64>() + b)
            .map(|y| if last { y } else { y.max(0.0) })
            .collect();
    }
    x
}

/// The softmax of `x`.
fn softmax(x: &[f64]) -> Vec<f64> {
    let top = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = x.iter().map(|v| (v - top).exp()).collect();
    let sum: f64 = e.iter().sum();
    e.iter().map(|v| v / sum).collect()
}

/// Checks that `layers` take `inputs` values and give 3, every number finite.
fn check_layers(layers: &[Layer], inputs: usize, what: &str) -> Result<(), DecisionModelError> {
    let mut width = inputs;
    for (i, layer) in layers.iter().enumerate() {
        if layer.weights.is_empty()
            || layer.weights.len() != layer.bias.len()
            || layer.weights.iter().any(|row| row.len() != width)
        {
            return Err(DecisionModelError::Shape(format!(
                "{what} layer {i} does not take {width} inputs"
            )));
        }
        width = layer.weights.len();
    }
    if layers.is_empty() || width != 3 {
        return Err(DecisionModelError::Shape(format!(
            "the last {what} layer must give 3 outputs"
        )));
    }
    if layers
        .iter()
        .flat_map(|l| l.weights.iter().flatten().chain(&l.bias))
        .any(|v| !v.is_finite())
    {
        return Err(DecisionModelError::Shape(format!(
            "every {what} parameter must be finite"
        )));
    }
    Ok(())
}

/// Values the frame network reads of each frame: its cepstral envelope, its harmonicity and its
/// loudness against the input's 95th percentile.
pub const FRAME_INPUTS: usize = ENVELOPE_COEFFICIENTS + 2;
/// Lowest probability a frame's verdict is read at (its logarithm is the floor).
const FRAME_PROBABILITY_FLOOR: f64 = 1e-6;

/// The network that judges every voiced frame of the separated voice: [`FRAME_INPUTS`] values
/// of each frame at `taps` around it (frame offsets, the first and last frames repeated past
/// the edges), standardised, through dense layers into sung / spoken / instrumental
/// probabilities. `scripts/train/voice_frames.py` trains it and computes the same.
#[derive(Debug, Clone, Deserialize)]
pub struct FrameNetwork {
    taps: Vec<isize>,
    inputs: usize,
    mean: Vec<f64>,
    scale: Vec<f64>,
    layers: Vec<Layer>,
}

impl FrameNetwork {
    fn check(&self) -> Result<(), DecisionModelError> {
        let n = self.taps.len() * FRAME_INPUTS;
        if self.inputs != FRAME_INPUTS || self.taps.is_empty() {
            return Err(DecisionModelError::Shape(format!(
                "the frame network must read {FRAME_INPUTS} values at one tap or more"
            )));
        }
        if self.mean.len() != n
            || self.scale.len() != n
            || self.scale.iter().any(|&s| !(s.is_finite() && s > 0.0))
            || self.mean.iter().any(|m| !m.is_finite())
        {
            return Err(DecisionModelError::Shape(
                "the frame network's mean and scale must give one finite value, scale positive, \
                 per input"
                    .into(),
            ));
        }
        check_layers(&self.layers, n, "frame network")
    }

    /// Over the voiced frames of `track`, the mean log probability (floored at
    /// ln 10⁻⁶) of each class, as two log odds: singing against the other two (the log of
    /// the sum of their exponentials), speech against an instrument. Without voiced frames,
    /// those of equal probabilities: −ln 2 and 0.
    pub fn verdicts(&self, track: &PitchTrack) -> [f64; 2] {
        let n = track.len();
        let mut sorted: Vec<f64> = track.loudness_db.iter().map(|&l| f64::from(l)).collect();
        sorted.sort_by(f64::total_cmp);
        let top = percentile(&sorted, 0.95);
        let values: Vec<[f64; FRAME_INPUTS]> = (0..n)
            .map(|t| {
                let mut row = [0.0; FRAME_INPUTS];
                let envelope = track.envelope_db.get(t).copied().unwrap_or_default();
                for (slot, v) in row.iter_mut().zip(envelope) {
                    *slot = f64::from(v);
                }
                let loudness = track.loudness_db[t];
                let harmonic = track.harmonic_db.get(t).map_or(f32::NEG_INFINITY, |&h| h);
                row[ENVELOPE_COEFFICIENTS] = f64::from(harmonic - loudness).clamp(-40.0, 0.0);
                row[ENVELOPE_COEFFICIENTS + 1] = f64::from(loudness) - top;
                row
            })
            .collect();
        let mut sums = [0.0f64; 3];
        let mut voiced = 0usize;
        let mut x = vec![0.0; self.mean.len()];
        for t in (0..n).filter(|&t| track.confidence[t] >= VOICED) {
            for (k, &tap) in self.taps.iter().enumerate() {
                let at = (t as isize + tap).clamp(0, n as isize - 1) as usize;
                for (j, v) in values[at].iter().enumerate() {
                    let i = k * FRAME_INPUTS + j;
                    x[i] = (v - self.mean[i]) / self.scale[i];
                }
            }
            let p = softmax(&forward(&self.layers, x.clone()));
            for (sum, p) in sums.iter_mut().zip(&p) {
                *sum += p.max(FRAME_PROBABILITY_FLOOR).ln();
            }
            voiced += 1;
        }
        if voiced == 0 {
            return [-std::f64::consts::LN_2, 0.0];
        }
        let [sung, spoken, instrumental] = sums.map(|s| s / voiced as f64);
        let top = spoken.max(instrumental);
        let others = top + ((spoken - top).exp() + (instrumental - top).exp()).ln();
        [sung - others, spoken - instrumental]
    }
}

/// The classifier: the frame network's verdicts join the other features, which are
/// standardised and go through dense layers (ReLU between them) into a softmax over
/// [`VoiceClass`]es in the order sung, spoken, instrumental.
#[derive(Debug, Clone, Deserialize)]
pub struct DecisionModel {
    features: Vec<String>,
    classes: Vec<String>,
    frames: FrameNetwork,
    mean: Vec<f64>,
    scale: Vec<f64>,
    layers: Vec<Layer>,
    /// Probability of singing at or above which notes are given.
    threshold: f64,
}

/// The model the engine uses: `decision.json`, compiled in.
const BUNDLED: &str = include_str!("decision.json");

impl DecisionModel {
    /// Reads and checks a model written by `scripts/train/fit_singing_decision.py`.
    pub fn from_json(text: &str) -> Result<Self, DecisionModelError> {
        let model: Self = serde_json::from_str(text)?;
        model.check()?;
        Ok(model)
    }

    /// The model compiled into the engine, read once.
    pub fn bundled() -> &'static Self {
        static MODEL: OnceLock<DecisionModel> = OnceLock::new();
        MODEL.get_or_init(|| {
            // The bundled file is checked by a unit test; a broken one cannot be built.
            Self::from_json(BUNDLED).unwrap_or_else(|e| panic!("bundled decision.json: {e}"))
        })
    }

    /// Probability of singing at or above which notes are given.
    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    /// The network that judges every voiced frame.
    pub fn frame_network(&self) -> &FrameNetwork {
        &self.frames
    }

    fn check(&self) -> Result<(), DecisionModelError> {
        let shape = |what: String| Err(DecisionModelError::Shape(what));
        if self.features != FEATURE_NAMES {
            return shape(format!(
                "features {:?}, expected {FEATURE_NAMES:?}",
                self.features
            ));
        }
        if self.classes != ["sung", "spoken", "instrumental"] {
            return shape(format!("classes {:?}", self.classes));
        }
        let n = FEATURE_NAMES.len();
        if self.mean.len() != n || self.scale.len() != n || self.scale.iter().any(|&s| s <= 0.0) {
            return shape("mean and scale must give one value, scale positive, per feature".into());
        }
        check_layers(&self.layers, n, "clip network")?;
        self.frames.check()?;
        if self.mean.iter().chain(&self.scale).any(|v| !v.is_finite())
            || !(0.0..=1.0).contains(&self.threshold)
        {
            return shape("every parameter must be finite and the threshold in [0, 1]".into());
        }
        Ok(())
    }

    /// The probability of each class for `features`.
    pub fn probabilities(&self, features: &DecisionFeatures) -> ClassProbabilities {
        let x: Vec<f64> = features
            .values()
            .iter()
            .zip(self.mean.iter().zip(&self.scale))
            .map(|(v, (m, s))| (v - m) / s)
            .collect();
        let p = softmax(&forward(&self.layers, x));
        ClassProbabilities {
            sung: p[0],
            spoken: p[1],
            instrumental: p[2],
        }
    }
}

#[cfg(test)]
mod tests {
    use std::f64::consts::LN_2;

    use super::*;

    #[test]
    fn the_bundled_model_reads_and_gives_probabilities() {
        let model = DecisionModel::from_json(BUNDLED).expect("valid bundled model");
        let p = model.probabilities(&DecisionFeatures::default());
        assert!(
            (p.sung + p.spoken + p.instrumental - 1.0).abs() < 1e-9,
            "{p:?}"
        );
    }

    /// A frame network reading `taps` whose singing logit is `weight` times value `input` of
    /// the values it reads (the first tap's first), its other logits 0.
    fn singing_network(taps: Vec<isize>, input: usize, weight: f64) -> FrameNetwork {
        let n = taps.len() * FRAME_INPUTS;
        let mut sung = vec![0.0; n];
        sung[input] = weight;
        FrameNetwork {
            taps,
            inputs: FRAME_INPUTS,
            mean: vec![0.0; n],
            scale: vec![1.0; n],
            layers: vec![Layer {
                weights: vec![sung, vec![0.0; n], vec![0.0; n]],
                bias: vec![0.0; 3],
            }],
        }
    }

    /// A frame network whose singing logit is the first envelope coefficient one frame back.
    fn previous_frame_network() -> FrameNetwork {
        singing_network(vec![-1, 0, 1], 0, 1.0)
    }

    #[test]
    fn frame_verdicts_read_their_taps_with_the_edges_repeated() {
        let network = previous_frame_network();
        network.check().expect("a valid frame network");
        let envelope = |c: f32| {
            let mut e = [0.0; ENVELOPE_COEFFICIENTS];
            e[0] = c;
            e
        };
        let track = PitchTrack {
            frame_period: 0.016,
            pitch_hz: vec![220.0; 4],
            confidence: vec![0.9, 0.9, 0.9, 0.1],
            loudness_db: vec![-20.0; 4],
            harmonic_db: vec![-22.0; 4],
            envelope_db: vec![
                envelope(1.0),
                envelope(4.0),
                envelope(-30.0),
                envelope(-30.0),
            ],
        };
        // Frame 0 reads itself past the edge, 1 reads frame 0, 2 reads frame 1; frame 3 is
        // unvoiced. Spoken and instrumental are alike, so singing's log odds are the mean
        // logit minus ln 2.
        let [sung, spoken] = network.verdicts(&track);
        assert!(
            (sung - ((1.0 + 1.0 + 4.0) / 3.0 - LN_2)).abs() < 1e-12,
            "{sung}"
        );
        assert!(spoken.abs() < 1e-12, "{spoken}");
        let silent = PitchTrack {
            confidence: vec![0.1; 4],
            ..track
        };
        assert_eq!(network.verdicts(&silent), [-LN_2, 0.0]);
    }

    /// A one-tap frame network whose singing logit is a tenth of input `input` of the frame
    /// (small enough that no probability reaches the floor).
    fn one_input_network(input: usize) -> FrameNetwork {
        singing_network(vec![0], input, 0.1)
    }

    #[test]
    fn frames_read_their_harmonicity_and_their_loudness_against_the_95th_percentile() {
        let track = PitchTrack {
            frame_period: 0.016,
            pitch_hz: vec![220.0; 4],
            confidence: vec![0.9, 0.9, 0.9, 0.1],
            loudness_db: vec![-20.0, -30.0, -40.0, -10.0],
            // Harmonic minus broadband: -3 dB, +5 (read as 0), -50 (read as -40).
            harmonic_db: vec![-23.0, -25.0, -90.0, -10.0],
            envelope_db: vec![[0.0; ENVELOPE_COEFFICIENTS]; 4],
        };
        let mean_minus_ln2 = |values: [f64; 3]| 0.1 * values.iter().sum::<f64>() / 3.0 - LN_2;
        let [harmonicity, _] = one_input_network(ENVELOPE_COEFFICIENTS).verdicts(&track);
        assert!((harmonicity - mean_minus_ln2([-3.0, 0.0, -40.0])).abs() < 1e-12);
        // The 95th percentile of the four frames (nearest rank) is the unvoiced -10 dB.
        let [loudness, _] = one_input_network(ENVELOPE_COEFFICIENTS + 1).verdicts(&track);
        assert!((loudness - mean_minus_ln2([-10.0, -20.0, -30.0])).abs() < 1e-12);
    }

    #[test]
    fn a_frame_network_of_the_wrong_width_is_refused() {
        let mut network = previous_frame_network();
        network.taps.push(2);
        assert!(network.check().is_err());
    }

    #[test]
    fn a_model_of_other_features_is_refused() {
        let text = BUNDLED.replacen("log_seconds", "log_minutes", 1);
        let error = DecisionModel::from_json(&text).expect_err("renamed feature");
        assert!(error.to_string().contains("log_minutes"), "{error}");
    }

    #[test]
    fn vibrato_is_read_at_its_rate_and_extent() {
        let period = 0.016;
        let frames = 100;
        let track = PitchTrack {
            frame_period: period,
            pitch_hz: (0..frames)
                .map(|t| {
                    let midi = 64.0 + 0.5 * (std::f64::consts::TAU * 5.5 * t as f64 * period).sin();
                    (440.0 * 2f64.powf((midi - 69.0) / 12.0)) as f32
                })
                .collect(),
            confidence: vec![0.9; frames],
            ..PitchTrack::default()
        };
        let note = Segment {
            start: 0,
            end: frames,
            pitch: 64.0,
        };
        let (rate, extent) = vibrato(&track, &note).expect("long enough");
        assert!((rate - 5.5).abs() < 0.8, "{rate}");
        assert!(extent > 0.2 && extent < 0.4, "{extent}");
    }

    #[test]
    fn whole_semitone_intervals_are_quantised() {
        let note = |start, pitch| Segment {
            start,
            end: start + 20,
            pitch,
        };
        let on_scale = [
            note(0, 60.1),
            note(20, 62.1),
            note(40, 64.1),
            note(60, 59.1),
        ];
        let off_scale = [
            note(0, 60.0),
            note(20, 62.5),
            note(40, 63.7),
            note(60, 60.2),
        ];
        assert!(interval_quantisation(&on_scale, 0.01) > 0.99);
        assert!(interval_quantisation(&off_scale, 0.01) < 0.7);
    }

    #[test]
    fn syllable_rate_loudness_is_modulation() {
        let period = 0.016;
        let syllables: Vec<f32> = (0..400)
            .map(|t| -20.0 + 10.0 * (std::f64::consts::TAU * 4.0 * t as f64 * period).sin() as f32)
            .collect();
        let slow: Vec<f32> = (0..400)
            .map(|t| -20.0 + 10.0 * (std::f64::consts::TAU * 0.5 * t as f64 * period).sin() as f32)
            .collect();
        assert!(loudness_modulation(&syllables, period) > 0.9);
        assert!(loudness_modulation(&slow, period) < 0.1);
    }
}
