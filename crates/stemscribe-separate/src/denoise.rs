//! Stationary noise suppression (hiss, hum, steady room and crowd noise) by spectral
//! subtraction against a per-bin noise floor.
//!
//! The floor of bin `f` is a low percentile `q` of its magnitudes over the whole signal: music
//! comes and goes, steady noise is always there. For noise alone the magnitude is Rayleigh
//! distributed, so the noise power is that percentile squared divided by `-ln(1 - q)`. Each bin
//! keeps `sqrt(max(g², 1 - α N / |S|²))` of its energy, `g` the floor gain and `α` the
//! over-subtraction factor.
//!
//! Hiss is recognised above [`NoiseOptions::hiss_band_hz`], where music is sparse, and
//! modelled there as a power law in frequency (white: flat, pink: -3 dB per octave). Lower
//! down, sustained music lifts the floors, so a bin's hiss is the lesser of its floor and the
//! power law extended to its frequency. Mains hum is steady at 50 or 60 Hz and its
//! harmonics: it is caught as bins whose floor stands out from their neighbours' and barely
//! moves; nothing assumes its frequency.

use rayon::prelude::*;
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
        }
    }
}

/// `audio` with its stationary noise suppressed, as long as the input (unchanged when no
/// noise is found).
pub fn suppress_noise(audio: &Audio, options: &NoiseOptions) -> Audio {
    match clean(audio, options) {
        Cleaned::Unchanged(_) => audio.clone(),
        Cleaned::Suppressed(cleaned) => cleaned,
    }
}

/// What [`clean`] made of a signal.
pub(crate) enum Cleaned {
    /// No noise was found: the signal is unchanged, and this is its spectrogram, taken with
    /// the options' STFT.
    Unchanged(Spectrogram),
    /// The signal with its noise suppressed.
    Suppressed(Audio),
}

/// The stationary noise found in a signal, as the per-bin gains that suppress it: from
/// [`find_noise`], applied with [`NoiseGains::suppress`].
pub struct NoiseGains {
    stft: Stft,
    /// The signal's spectrogram, which the gains are computed from frame by frame.
    magnitude: Spectrogram,
    /// Each bin's noise power, scaled by the over-subtraction factor.
    noise: Vec<f32>,
    /// The least power gain a bin keeps.
    least: f32,
}

impl NoiseGains {
    /// `audio` (the signal the noise was found in, or one of the parts it is the sum of) with
    /// the noise's gains applied, as long as the input. Parts of a signal suppressed this way
    /// sum to the suppressed signal, to rounding.
    ///
    /// # Panics
    /// If `audio` is not as long as the signal the noise was found in.
    pub fn suppress(&self, audio: &Audio) -> Audio {
        let bins = self.magnitude.bins;
        assert_eq!(
            self.stft.frames(audio.frames()),
            self.magnitude.frames(),
            "the gains cover the signal the noise was found in"
        );
        let mut cleaned = apply_masks(&self.stft, audio, 1, |t, gains| {
            for (f, gain) in gains[0].iter_mut().enumerate() {
                let power = self.magnitude.values[t * bins + f].powi(2);
                let kept = if power > 0.0 {
                    1.0 - self.noise[f] / power
                } else {
                    0.0
                };
                *gain = kept.max(self.least).sqrt();
            }
        });
        cleaned.remove(0)
    }
}

impl std::fmt::Debug for NoiseGains {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoiseGains")
            .field("frames", &self.magnitude.frames())
            .field("bins", &self.magnitude.bins)
            .finish()
    }
}

/// The stationary noise of `audio`, or `None` when none is found (then [`suppress_noise`]
/// returns `audio` unchanged).
pub fn find_noise(audio: &Audio, options: &NoiseOptions) -> Option<NoiseGains> {
    match search(audio, options) {
        Search::Clean(_) => None,
        Search::Noisy(gains) => Some(gains),
    }
}

/// What [`search`] found.
enum Search {
    /// No noise, and the spectrogram taken with the options' STFT.
    Clean(Spectrogram),
    /// Noise, and the gains that suppress it.
    Noisy(NoiseGains),
}

/// The noise of `audio`, keeping the spectrogram when there is none.
fn search(audio: &Audio, options: &NoiseOptions) -> Search {
    let stft = Stft::new(options.fft_size, options.hop);
    let magnitude = spectrogram(&stft, audio);
    let noise = noise_power(&magnitude, audio.sample_rate(), options);
    if noise.iter().all(|&p| p == 0.0) {
        return Search::Clean(magnitude);
    }
    Search::Noisy(NoiseGains {
        stft,
        magnitude,
        noise,
        least: options.floor_gain * options.floor_gain,
    })
}

/// [`suppress_noise`], keeping the spectrogram it took when the signal needs no change.
pub(crate) fn clean(audio: &Audio, options: &NoiseOptions) -> Cleaned {
    match search(audio, options) {
        Search::Clean(magnitude) => Cleaned::Unchanged(magnitude),
        Search::Noisy(gains) => Cleaned::Suppressed(gains.suppress(audio)),
    }
}

/// Bins whose columns [`noise_power`] gathers together.
const GATHERED_BINS: usize = 16;

/// The estimated power of the steady noise in each bin of `magnitude` (a spectrogram of a
/// signal at `sample_rate`), scaled by the over-subtraction factor.
fn noise_power(magnitude: &Spectrogram, sample_rate: u32, options: &NoiseOptions) -> Vec<f32> {
    let (frames, bins) = (magnitude.frames(), magnitude.bins);
    let q = options.percentile.clamp(0.001, 0.3);
    let rayleigh = -(1.0 - q).ln();
    // Columns are gathered [`GATHERED_BINS`] at a time, one pass down the rows for them all:
    // a column alone strides down the spectrogram a row (several kilobytes) per value.
    let (floors, spreads): (Vec<f32>, Vec<f32>) = (0..bins.div_ceil(GATHERED_BINS))
        .into_par_iter()
        .map_init(Vec::new, |columns, block| {
            let block = block * GATHERED_BINS..((block + 1) * GATHERED_BINS).min(bins);
            let width = block.len();
            columns.clear();
            columns.resize(width * frames, 0.0);
            for (t, row) in magnitude.values.chunks_exact(bins).enumerate() {
                for (k, &value) in row[block.clone()].iter().enumerate() {
                    columns[k * frames + t] = value;
                }
            }
            columns
                .chunks_exact_mut(frames)
                .map(|column| {
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
                .collect::<Vec<_>>()
        })
        .flatten_iter()
        .unzip();

    // Broadband hiss: music is sparse at high frequencies, so there a steady lower tail
    // means noise; then each bin's floor, capped by the hiss band's power law, is taken for
    // noise (Rayleigh-corrected).
    let hz_per_bin = sample_rate as f32 / options.fft_size as f32;
    let first_high = ((options.hiss_band_hz / hz_per_bin) as usize).min(bins - 1);
    let mut high: Vec<f32> = spreads[first_high..].to_vec();
    let high_spread = median(&mut high);
    let (noisy, musical) = (options.noise_spread, options.music_spread);
    let hiss = ((musical - high_spread) / (musical - noisy).max(1e-3)).clamp(0.0, 1.0);
    let law = PowerLaw::fit(
        (first_high..bins)
            .filter(|&f| floors[f] > 0.0)
            .map(|f| (f as f32 * hz_per_bin, floors[f] * floors[f] / rayleigh)),
    );

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
            let steady = ((musical - spreads[f]) / (musical - noisy).max(1e-3)).clamp(0.0, 1.0);
            let floor_power = steady * floors[f] * floors[f] / rayleigh;
            let modelled = law.map_or(f32::INFINITY, |law| law.at(f.max(1) as f32 * hz_per_bin));
            let hiss_power = hiss * floor_power.min(modelled);
            let tone_power = if tone { floors[f] * floors[f] } else { 0.0 };
            options.over_subtraction * hiss_power.max(tone_power)
        })
        .collect()
}

/// A power spectral density `exp(a) f^b`, fitted by least squares in log-log coordinates.
#[derive(Debug, Clone, Copy)]
struct PowerLaw {
    a: f64,
    b: f64,
}

impl PowerLaw {
    /// The fit to `(frequency, power)` points, all positive; `None` for fewer than two
    /// distinct frequencies.
    fn fit(points: impl Iterator<Item = (f32, f32)>) -> Option<Self> {
        let (mut n, mut sx, mut sy, mut sxx, mut sxy) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (f, p) in points {
            let (x, y) = (f64::from(f).ln(), f64::from(p).ln());
            n += 1.0;
            sx += x;
            sy += y;
            sxx += x * x;
            sxy += x * y;
        }
        let spread = n * sxx - sx * sx;
        if n < 2.0 || spread <= 1e-12 {
            return None;
        }
        let b = (n * sxy - sx * sy) / spread;
        Some(Self {
            a: (sy - b * sx) / n,
            b,
        })
    }

    /// The modelled power at `frequency` (Hz).
    fn at(self, frequency: f32) -> f32 {
        (self.a + self.b * f64::from(frequency).ln()).exp() as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn energy(audio: &Audio) -> f64 {
        stemscribe_eval::rms(audio.channels()).powi(2)
    }

    /// `signal` on both sides, each with its own uniform hiss of peak `level` (seeded).
    fn with_stereo_hiss(signal: &[f32], level: f32, mut seed: u32) -> Audio {
        let mut hiss = || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        let mut side = || -> Vec<f32> { signal.iter().map(|s| s + level * hiss()).collect() };
        Audio::new(44_100, vec![side(), side()]).unwrap()
    }

    /// Two seconds at 44.1 kHz of a sine of `hz` and peak `amplitude`, on for a quarter of a
    /// second, then off for as long.
    fn tone_bursts(hz: f32, amplitude: f32) -> Vec<f32> {
        let tau = std::f32::consts::TAU;
        (0..88_200)
            .map(|i| {
                let on = (i / 11_025) % 2 == 0;
                if on {
                    amplitude * (tau * hz * i as f32 / 44_100.0).sin()
                } else {
                    0.0
                }
            })
            .collect()
    }

    #[test]
    fn a_sustained_low_note_under_hiss_is_not_taken_for_hiss() {
        // A bass note that swells and fades slowly (too much to be a steady tone) looks as
        // steady as hiss in its bins; only the hiss band's power law tells the two apart.
        let tau = std::f32::consts::TAU;
        let note: Vec<f32> = (0..176_400)
            .map(|i| {
                let t = i as f32 / 44_100.0;
                0.3 * (0.6 + 0.4 * (tau * 0.5 * t).sin()) * (tau * 110.0 * t).sin()
            })
            .collect();
        let noisy = with_stereo_hiss(&note, 0.02, 54_321);
        let clean = Audio::new(44_100, vec![note.clone(), note]).unwrap();
        let out = suppress_noise(&noisy, &NoiseOptions::default());
        assert!(
            energy(&out) > 0.95 * energy(&clean),
            "{} vs {}",
            energy(&out),
            energy(&clean)
        );
    }

    #[test]
    fn a_power_law_is_fitted_exactly() {
        // Pink noise: power proportional to 1/f.
        let law = PowerLaw::fit(
            [1_000.0f32, 2_000.0, 8_000.0]
                .map(|f| (f, 3.0 / f))
                .into_iter(),
        )
        .unwrap();
        assert!((law.at(100.0) - 0.03).abs() < 1e-5);
        assert!(PowerLaw::fit([(5.0f32, 1.0f32)].into_iter()).is_none());
    }

    #[test]
    fn steady_stereo_hiss_is_removed_and_bursts_of_tone_are_kept() {
        let tone = tone_bursts(440.0, 0.5);
        let noisy = with_stereo_hiss(&tone, 0.05, 12_345);
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

    #[test]
    fn parts_cleaned_by_the_gains_found_in_their_sum_sum_to_the_cleaned_sum() {
        // A steady tone would be taken for hum: this one comes and goes.
        let tone = tone_bursts(220.0, 0.4);
        let silence = vec![0.0; tone.len()];
        // One part is the tone, the other two split its hiss between them.
        let hiss = with_stereo_hiss(&silence, 0.05, 777);
        let halves = |scale: f32| {
            let sides = hiss.channels().iter();
            Audio::new(
                44_100,
                sides
                    .map(|c| c.iter().map(|s| s * scale).collect())
                    .collect(),
            )
            .unwrap()
        };
        let tone = Audio::new(44_100, vec![tone.clone(), tone]).unwrap();
        let parts = [tone, halves(0.25), halves(0.75)];
        let sum = Audio::sum(&parts).unwrap();
        let options = NoiseOptions::default();
        let noise = find_noise(&sum, &options).expect("the hiss is found");
        let cleaned: Vec<Audio> = parts.iter().map(|part| noise.suppress(part)).collect();
        let expected = suppress_noise(&sum, &options);
        let removed = energy(&sum) - energy(&expected);
        assert!(
            removed > 0.5 * energy(&hiss),
            "the sum was cleaned: {removed}"
        );
        let largest = Audio::sum(&cleaned)
            .unwrap()
            .channels()
            .iter()
            .flatten()
            .zip(expected.channels().iter().flatten())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(largest < 1e-5, "{largest}");
        // The hiss parts lose most of their energy, the tone little of its own.
        assert!(energy(&cleaned[1]) < 0.5 * energy(&parts[1]));
        assert!(energy(&cleaned[0]) > 0.8 * energy(&parts[0]));
    }

    #[test]
    fn no_noise_is_found_in_bursts_of_a_clean_tone() {
        // A steady tone would be taken for hum: this one comes and goes.
        let tone = tone_bursts(220.0, 0.4);
        let tone = Audio::new(44_100, vec![tone.clone(), tone]).unwrap();
        assert!(find_noise(&tone, &NoiseOptions::default()).is_none());
    }
}
