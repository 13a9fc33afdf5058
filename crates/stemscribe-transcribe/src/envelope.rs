//! A voice's spectral envelope, frame by frame, as cepstral coefficients: formants move with
//! every syllable of speech and with the vowels of a song, while a bowed or blown instrument
//! keeps its envelope through a note and from note to note. What the singing decision reads of
//! the timbre.

use crate::spectrum::{peak_near, FrameSpectra};

/// Mel-spaced frequencies the envelope is read at.
const BANDS: usize = 24;
/// Cepstral coefficients kept (the zeroth, overall level, is left out).
pub const ENVELOPE_COEFFICIENTS: usize = 12;
const COEFFICIENTS: usize = ENVELOPE_COEFFICIENTS;
/// Lowest and highest frequency of the envelope in Hz (the top is lowered to 95% of the
/// Nyquist frequency).
const LOW_HZ: f64 = 100.0;
/// See [`LOW_HZ`].
const HIGH_HZ: f64 = 7600.0;

/// Per frame, the cepstral envelope of the Hann-windowed two hops `[(t − 1)·hop, (t + 1)·hop)`
/// of `signal` (the span of [`crate::PitchTrack::loudness_db`]) at the frame's pitch
/// `pitch_hz[t]`: the level in dB of each harmonic below 7.6 kHz (or 95% of the Nyquist
/// frequency; the strongest of the three bins nearest it, floored 60 dB below the strongest
/// harmonic), interpolated onto 24 mel-spaced frequencies from 100 Hz, and coefficients 1 to 12
/// of their orthonormal DCT, so that it follows the formants, not the harmonics, and does not
/// change with the level. A frame without a positive finite pitch reads the spectrum's mel
/// bands instead. The Euclidean distance between two envelopes divided by √12 is their RMS
/// difference in dB ([`envelope_distance_db`]).
pub fn envelope_db(
    signal: &[f32],
    sample_rate: u32,
    hop: usize,
    pitch_hz: &[f32],
) -> Vec<[f32; ENVELOPE_COEFFICIENTS]> {
    let mut spectra = FrameSpectra::new(sample_rate, hop);
    let envelopes = Envelopes::new(sample_rate, &spectra);
    pitch_hz
        .iter()
        .enumerate()
        .map(|(t, &f0)| envelopes.read(spectra.power(signal, t), f0))
        .collect()
}

/// Reads [`envelope_db`]'s envelope from one frame's power spectrum.
pub(crate) struct Envelopes {
    bin_hz: f64,
    top_hz: f64,
    centres: Vec<f64>,
}

impl Envelopes {
    /// The reading of `spectra`'s frames of a signal at `sample_rate`.
    pub(crate) fn new(sample_rate: u32, spectra: &FrameSpectra) -> Self {
        let top_hz = HIGH_HZ.min(f64::from(sample_rate) / 2.0 * 0.95);
        Self {
            bin_hz: spectra.bin_hz(),
            top_hz,
            centres: mel_centres(top_hz),
        }
    }

    /// The envelope of `power` read at the harmonics of `f0` (at the mel frequencies when
    /// `f0` is not a positive finite number above one bin).
    pub(crate) fn read(&self, power: &[f64], f0: f32) -> [f32; ENVELOPE_COEFFICIENTS] {
        let (bin_hz, top_hz) = (self.bin_hz, self.top_hz);
        let f0 = f64::from(f0);
        // (frequency, dB) points the envelope passes through.
        let points: Vec<(f64, f64)> = if f0.is_finite() && f0 > bin_hz {
            (1..)
                .map(|k| k as f64 * f0)
                .take_while(|&hz| hz <= top_hz)
                .map(|hz| (hz, peak_near(power, hz, bin_hz)))
                .collect()
        } else {
            self.centres
                .iter()
                .map(|&hz| {
                    let bin = ((hz / bin_hz).round() as usize).min(power.len() - 1);
                    let lo = bin.saturating_sub(2);
                    let band = &power[lo..(bin + 3).min(power.len())];
                    (hz, band.iter().sum::<f64>() / band.len() as f64)
                })
                .collect()
        };
        let strongest = points.iter().fold(0.0f64, |a, p| a.max(p.1));
        if points.is_empty() || strongest <= 0.0 {
            return [0.0; COEFFICIENTS];
        }
        let floor = strongest * 1e-6;
        let points: Vec<(f64, f64)> = points
            .into_iter()
            .map(|(hz, p)| (hz, 10.0 * p.max(floor).log10()))
            .collect();
        let levels: Vec<f64> = self
            .centres
            .iter()
            .map(|&hz| interpolate(&points, hz))
            .collect();
        dct(&levels).map(|c| c as f32)
    }
}

/// [`BANDS`] mel-spaced frequencies from [`LOW_HZ`] to `top_hz`.
fn mel_centres(top_hz: f64) -> Vec<f64> {
    let mel = |hz: f64| 2595.0 * (1.0 + hz / 700.0).log10();
    let hz = |m: f64| 700.0 * (10f64.powf(m / 2595.0) - 1.0);
    let (low, high) = (mel(LOW_HZ), mel(top_hz.max(LOW_HZ * 2.0)));
    (0..BANDS)
        .map(|i| hz(low + (high - low) * i as f64 / (BANDS - 1) as f64))
        .collect()
}

/// The level at `hz` of the line through `points` (sorted by frequency), held flat beyond
/// its ends.
fn interpolate(points: &[(f64, f64)], hz: f64) -> f64 {
    let after = points.partition_point(|p| p.0 < hz);
    match (
        after.checked_sub(1).and_then(|i| points.get(i)),
        points.get(after),
    ) {
        (Some(a), Some(b)) if b.0 > a.0 => a.1 + (b.1 - a.1) * (hz - a.0) / (b.0 - a.0),
        (Some(a), _) => a.1,
        (None, Some(b)) => b.1,
        (None, None) => 0.0,
    }
}

/// The RMS difference in dB of two envelopes of [`envelope_db`].
pub fn envelope_distance_db(
    a: &[f32; ENVELOPE_COEFFICIENTS],
    b: &[f32; ENVELOPE_COEFFICIENTS],
) -> f64 {
    let sum: f64 = a.iter().zip(b).map(|(x, y)| f64::from(x - y).powi(2)).sum();
    (sum / COEFFICIENTS as f64).sqrt()
}

/// Coefficients 1..=12 of the orthonormal DCT-II of `levels`.
fn dct(levels: &[f64]) -> [f64; COEFFICIENTS] {
    let n = levels.len() as f64;
    let mut out = [0.0; COEFFICIENTS];
    for (k, c) in out.iter_mut().enumerate() {
        let k = (k + 1) as f64;
        *c = (2.0 / n).sqrt()
            * levels
                .iter()
                .enumerate()
                .map(|(i, l)| l * (std::f64::consts::PI * k * (i as f64 + 0.5) / n).cos())
                .sum::<f64>();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(harmonics: &[(f32, f32)], samples: usize) -> Vec<f32> {
        (0..samples)
            .map(|i| {
                harmonics
                    .iter()
                    .map(|(hz, a)| a * (std::f32::consts::TAU * hz * i as f32 / 16_000.0).sin())
                    .sum()
            })
            .collect()
    }

    /// Distances between consecutive frames' envelopes.
    fn changes(signal: &[f32], pitch_hz: f32) -> Vec<f64> {
        let envelopes = envelope_db(signal, 16_000, 256, &vec![pitch_hz; signal.len() / 256]);
        envelopes
            .windows(2)
            .map(|w| envelope_distance_db(&w[0], &w[1]))
            .collect()
    }

    #[test]
    fn a_steady_tone_does_not_move_and_a_new_timbre_does() {
        let bright = tone(
            &[(200.0, 0.3), (400.0, 0.3), (600.0, 0.3), (2400.0, 0.3)],
            8_000,
        );
        let dark = tone(&[(200.0, 0.5), (400.0, 0.1), (600.0, 0.02)], 8_000);
        let change = changes(&[bright, dark].concat(), 200.0);
        assert!(change[4..27].iter().all(|&c| c < 0.5), "{change:?}");
        assert!(change[29..33].iter().any(|&c| c > 3.0), "{change:?}");
    }

    #[test]
    fn silence_and_edges_stay_finite() {
        let envelopes = envelope_db(&[0.0; 300], 16_000, 256, &[200.0, f32::NAN, 0.0]);
        assert!(envelopes.iter().flatten().all(|c| c.is_finite()));
    }

    #[test]
    fn the_level_alone_does_not_move_it() {
        let loud = tone(&[(300.0, 0.4), (900.0, 0.2)], 4_096);
        let quiet: Vec<f32> = loud.iter().map(|s| s * 0.1).collect();
        let signal = [loud, quiet].concat();
        let envelopes = envelope_db(&signal, 16_000, 256, &[300.0; 32]);
        // Frames 8 and 24 lie wholly in the loud and the quiet part.
        let distance = envelope_distance_db(&envelopes[8], &envelopes[24]);
        assert!(distance < 0.1, "{distance}");
    }
}
