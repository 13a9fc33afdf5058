//! The level of a voice's harmonics at its tracked pitch, frame by frame: the measure of
//! loudness that the note segmentation splits notes on.
//!
//! A sung syllable change (a consonant between two vowels on the same pitch) fills the
//! broadband level with noise, but it interrupts the harmonics; leakage from drums in a
//! separated voice does the opposite. Measuring only the harmonics sees the first and not the
//! second.

use realfft::RealFftPlanner;

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
    let size = 2 * hop.max(1);
    let fft = RealFftPlanner::<f32>::new().plan_fft_forward(size);
    let window: Vec<f32> = (0..size)
        .map(|i| {
            let phase = std::f32::consts::TAU * i as f32 / size as f32;
            0.5 - 0.5 * phase.cos()
        })
        .collect();
    // Power of a full-scale sine's bin through this window, so that levels are in dBFS.
    let full_scale = f64::from(window.iter().sum::<f32>()).powi(2) / 4.0;
    let bin_hz = f64::from(sample_rate) / size as f64;
    let top_hz = MAX_HARMONIC_HZ.min(f64::from(sample_rate) / 2.0 - bin_hz);
    let mut frame = fft.make_input_vec();
    let mut spectrum = fft.make_output_vec();
    let mut scratch = fft.make_scratch_vec();
    let mut power = vec![0.0f64; spectrum.len()];
    pitch_hz
        .iter()
        .enumerate()
        .map(|(t, &f0)| {
            let start = (t * hop) as isize - hop as isize;
            for (i, (x, w)) in frame.iter_mut().zip(&window).enumerate() {
                let at = start + i as isize;
                *x = usize::try_from(at)
                    .ok()
                    .and_then(|at| signal.get(at))
                    .map_or(0.0, |s| s * w);
            }
            if fft
                .process_with_scratch(&mut frame, &mut spectrum, &mut scratch)
                .is_err()
            {
                return FLOOR_DB as f32;
            }
            for (p, c) in power.iter_mut().zip(&spectrum) {
                *p = f64::from(c.norm_sqr());
            }
            let f0 = f64::from(f0);
            let energy = if f0.is_finite() && f0 > 0.0 {
                (1..)
                    .map(|k| k as f64 * f0)
                    .take_while(|&hz| hz <= top_hz)
                    .map(|hz| {
                        let bin = (hz / bin_hz).round() as usize;
                        power[bin.saturating_sub(1)..(bin + 2).min(power.len())]
                            .iter()
                            .fold(0.0f64, |a, &b| a.max(b))
                    })
                    .sum::<f64>()
            } else {
                power.iter().sum::<f64>()
            };
            (10.0 * (energy / full_scale).max(1e-14).log10()).max(FLOOR_DB) as f32
        })
        .collect()
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
