//! Stationary noise suppression (hiss, hum, steady room and crowd noise) by spectral
//! subtraction against a per-bin noise floor.
//!
//! The floor of bin `f` is a low percentile `q` of its magnitudes over the whole signal: music
//! comes and goes, steady noise is always there. For noise alone the magnitude is Rayleigh
//! distributed, so the noise power is that percentile squared divided by `-ln(1 - q)`. Each bin
//! keeps `sqrt(max(g², 1 - α N / |S|²))` of its energy, `g` the floor gain and `α` the
//! over-subtraction factor. Mains hum is steady at 50 or 60 Hz and its harmonics, so it is
//! caught by the same floor; nothing assumes its frequency.

use stemscribe_audio::Audio;

use crate::spectral::{apply_masks, median, spectrogram, Spectrogram};
use crate::stft::Stft;

/// The parameters of the suppressor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NoiseOptions {
    /// STFT frame length in samples.
    pub fft_size: usize,
    /// STFT hop in samples.
    pub hop: usize,
    /// The percentile (0-1) of each bin's magnitudes taken as its noise floor.
    pub percentile: f32,
    /// How much of the estimated noise power is removed (1: all of it).
    pub over_subtraction: f32,
    /// The least gain a bin keeps (0-1), which bounds the damage to music.
    pub floor_gain: f32,
    /// Hiss is detected above this frequency (Hz), where music is sparse.
    pub hiss_band_hz: f32,
    /// Median ratio, over the hiss band, of each bin's 3q-th to q-th magnitude percentile up
    /// to which the floors are taken for hiss (about 1.45 for stereo hiss).
    pub noise_spread: f32,
    /// The median ratio from which there is taken to be no hiss; in between, the noise
    /// estimate is scaled down linearly.
    pub music_spread: f32,
    /// A steady tone's floor stands this far above the median floor of the 33 bins around it
    /// (dB).
    pub tone_peak_db: f32,
    /// And its 3q-th to q-th percentile ratio is at most this.
    pub tone_spread: f32,
    /// Take every bin's floor for noise, without the hiss test: removes steady accompaniment
    /// along with the noise, which suits a vocal estimate but not an accompaniment.
    pub every_floor: bool,
}

impl Default for NoiseOptions {
    fn default() -> Self {
        Self {
            fft_size: 4096,
            hop: 1024,
            percentile: 0.1,
            over_subtraction: 1.0,
            floor_gain: 0.3,
            hiss_band_hz: 5_000.0,
            noise_spread: 1.55,
            music_spread: 1.8,
            tone_peak_db: 6.0,
            tone_spread: 1.45,
            every_floor: false,
        }
    }
}

impl NoiseOptions {
    /// The settings for a vocal estimate: every steady component is removed.
    pub fn for_vocals() -> Self {
        Self {
            every_floor: true,
            floor_gain: 0.1,
            ..Self::default()
        }
    }
}

/// `audio` with its stationary noise suppressed, as long as the input (unchanged when no
/// noise is found).
pub fn suppress_noise(audio: &Audio, options: &NoiseOptions) -> Audio {
    let stft = Stft::new(options.fft_size, options.hop);
    let magnitude = spectrogram(&stft, audio);
    let noise = noise_power(&magnitude, audio.sample_rate(), options);
    if noise.iter().all(|&p| p == 0.0) {
        return audio.clone();
    }
    let bins = magnitude.bins;
    let least = options.floor_gain * options.floor_gain;
    let mut cleaned = apply_masks(&stft, audio, 1, |t, gains| {
        for (f, gain) in gains[0].iter_mut().enumerate() {
            let power = magnitude.values[t * bins + f].powi(2);
            let kept = if power > 0.0 {
                1.0 - noise[f] / power
            } else {
                0.0
            };
            *gain = kept.max(least).sqrt();
        }
    });
    cleaned.remove(0)
}

/// The estimated power of the steady noise in each bin of `magnitude` (a spectrogram of a
/// signal at `sample_rate`), scaled by the over-subtraction factor.
fn noise_power(magnitude: &Spectrogram, sample_rate: u32, options: &NoiseOptions) -> Vec<f32> {
    let (frames, bins) = (magnitude.frames(), magnitude.bins);
    let q = options.percentile.clamp(0.001, 0.3);
    let rayleigh = -(1.0 - q).ln();
    let mut column = Vec::with_capacity(frames);
    let (floors, spreads): (Vec<f32>, Vec<f32>) = (0..bins)
        .map(|f| {
            column.clear();
            column.extend((0..frames).map(|t| magnitude.values[t * bins + f]));
            let mut at = |p: f32| {
                let index = ((frames as f32 - 1.0) * p).round() as usize;
                *column.select_nth_unstable_by(index, f32::total_cmp).1
            };
            let (floor, upper) = (at(q), at(3.0 * q));
            (
                floor,
                if floor > 0.0 {
                    upper / floor
                } else {
                    f32::INFINITY
                },
            )
        })
        .unzip();

    // Broadband hiss: music is sparse at high frequencies, so there a steady lower tail
    // means noise; then every bin's floor is taken for noise (Rayleigh-corrected).
    let hz_per_bin = sample_rate as f32 / options.fft_size as f32;
    let first_high = ((options.hiss_band_hz / hz_per_bin) as usize).min(bins - 1);
    let mut high: Vec<f32> = spreads[first_high..].to_vec();
    let high_spread = median(&mut high);
    let (noisy, musical) = (options.noise_spread, options.music_spread);
    let hiss = if options.every_floor {
        1.0
    } else {
        ((musical - high_spread) / (musical - noisy).max(1e-3)).clamp(0.0, 1.0)
    };

    // Hum and other steady tones: bins whose floor stands out from its neighbours' and
    // barely moves, whatever the frequency.
    let peak = 10f32.powf(options.tone_peak_db / 20.0);
    let mut around = Vec::new();
    (0..bins)
        .map(|f| {
            around.clear();
            around.extend_from_slice(&floors[f.saturating_sub(16)..(f + 17).min(bins)]);
            let local = median(&mut around);
            let tone = floors[f] > peak * local && spreads[f] <= options.tone_spread;
            let steady = if options.every_floor {
                1.0
            } else {
                ((musical - spreads[f]) / (musical - noisy).max(1e-3)).clamp(0.0, 1.0)
            };
            let hiss_power = hiss * steady * floors[f] * floors[f] / rayleigh;
            let tone_power = if tone { floors[f] * floors[f] } else { 0.0 };
            options.over_subtraction * hiss_power.max(tone_power)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn energy(audio: &Audio) -> f64 {
        stemscribe_eval::rms(audio.channels()).powi(2)
    }

    #[test]
    fn steady_stereo_hiss_is_removed_and_bursts_of_tone_are_kept() {
        let mut seed = 12_345_u32;
        let mut hiss = || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        let tau = std::f32::consts::TAU;
        let tone: Vec<f32> = (0..88_200)
            .map(|i| {
                let on = (i / 11_025) % 2 == 0;
                if on {
                    0.5 * (tau * 440.0 * i as f32 / 44_100.0).sin()
                } else {
                    0.0
                }
            })
            .collect();
        let mut side = || -> Vec<f32> { tone.iter().map(|t| t + 0.05 * hiss()).collect() };
        let noisy = Audio::new(44_100, vec![side(), side()]).unwrap();
        let clean = Audio::new(44_100, vec![tone.clone(), tone]).unwrap();
        let out = suppress_noise(&noisy, &NoiseOptions::default());
        let error = |a: &Audio| {
            a.channels()
                .iter()
                .flatten()
                .zip(clean.channels().iter().flatten())
                .map(|(x, y)| f64::from(x - y).powi(2))
                .sum::<f64>()
        };
        assert!(
            error(&out) < 0.3 * error(&noisy),
            "{} vs {}",
            error(&out),
            error(&noisy)
        );
        assert!(energy(&out) > 0.9 * energy(&clean));
    }
}
