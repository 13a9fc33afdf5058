//! The level of a voice's harmonics at its tracked pitch, frame by frame: the measure of
//! loudness that the note segmentation splits notes on.
//!
//! A sung syllable change (a consonant between two vowels on the same pitch) fills the
//! broadband level with noise, but it interrupts the harmonics; leakage from drums in a
//! separated voice does the opposite. Measuring only the harmonics sees the first and not the
//! second.

use crate::spectrum::{peak_near, FrameSpectra};

/// Highest harmonic frequency measured, in Hz: with the pitch range, the band of a voice that
/// transcription reads (above it only the broadband loudness, hence velocities, changes).
pub const MAX_HARMONIC_HZ: f64 = 5000.0;
/// Floor of the returned levels, in dB.
const FLOOR_DB: f64 = -140.0;

/// Per frame, the level in dB of the harmonics of `pitch_hz[t]` (below 5 kHz and Nyquist) in
/// the Hann-windowed two hops `[(t − 1)·hop, (t + 1)·hop)` of `signal` (the span of
/// [`crate::PitchTrack::loudness_db`]), each harmonic read as the strongest of the three bins
/// nearest to it. A frame whose pitch is not a positive finite number gets the level of the
/// whole window. A full-scale sine at the frame's pitch reads 0 dB.
pub fn harmonic_levels_db(
    signal: &[f32],
    sample_rate: u32,
    hop: usize,
    pitch_hz: &[f32],
) -> Vec<f32> {
    let mut spectra = FrameSpectra::new(sample_rate, hop);
    let levels = HarmonicLevels::new(sample_rate, &spectra);
    pitch_hz
        .iter()
        .enumerate()
        .map(|(t, &f0)| levels.level_db(spectra.power(signal, t), f0))
        .collect()
}

/// Reads [`harmonic_levels_db`]'s level from one frame's power spectrum.
pub(crate) struct HarmonicLevels {
    bin_hz: f64,
    top_hz: f64,
    /// Power of a full-scale sine's bin through the window, so that levels are in dBFS.
    full_scale: f64,
}

impl HarmonicLevels {
    /// The reading of `spectra`'s frames of a signal at `sample_rate`.
    pub(crate) fn new(sample_rate: u32, spectra: &FrameSpectra) -> Self {
        let bin_hz = spectra.bin_hz();
        Self {
            bin_hz,
            top_hz: MAX_HARMONIC_HZ.min(f64::from(sample_rate) / 2.0 - bin_hz),
            full_scale: spectra.window_sum().powi(2) / 4.0,
        }
    }

    /// The level in dB of the harmonics of `f0` in `power` (of the whole spectrum when `f0`
    /// is not a positive finite number).
    pub(crate) fn level_db(&self, power: &[f64], f0: f32) -> f32 {
        let f0 = f64::from(f0);
        let energy = if f0.is_finite() && f0 > 0.0 {
            (1..)
                .map(|k| k as f64 * f0)
                .take_while(|&hz| hz <= self.top_hz)
                .map(|hz| peak_near(power, hz, self.bin_hz))
                .sum::<f64>()
        } else {
            power.iter().sum::<f64>()
        };
        (10.0 * (energy / self.full_scale).max(1e-14).log10()).max(FLOOR_DB) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(hz: f32, amplitude: f32, samples: usize) -> Vec<f32> {
        (0..samples)
            .map(|i| amplitude * (std::f32::consts::TAU * hz * i as f32 / 16_000.0).sin())
            .collect()
    }

    #[test]
    fn a_full_scale_sine_reads_near_zero_db_at_its_pitch() {
        let signal = sine(250.0, 1.0, 16_000);
        let levels = harmonic_levels_db(&signal, 16_000, 256, &[250.0; 40]);
        for level in &levels[2..] {
            assert!(level.abs() < 1.0, "{level}");
        }
    }

    #[test]
    fn noise_between_harmonics_is_not_counted() {
        // A tone at 250 Hz read at a pitch of 330 Hz: its harmonics miss the tone's.
        let signal = sine(250.0, 1.0, 16_000);
        let off = harmonic_levels_db(&signal, 16_000, 256, &[330.0; 40]);
        let on = harmonic_levels_db(&signal, 16_000, 256, &[250.0; 40]);
        assert!(on[20] - off[20] > 20.0, "{} {}", on[20], off[20]);
    }

    #[test]
    fn silence_and_edges_stay_finite() {
        let levels = harmonic_levels_db(&[0.0; 300], 16_000, 256, &[200.0, f32::NAN]);
        assert_eq!(levels, vec![FLOOR_DB as f32; 2]);
    }
}
