//! Four stems without four-stem weights: drums, bass and other derived from a 2-stem
//! accompaniment by masks that sum to one, so that `drums + bass + other` is the
//! accompaniment, to rounding.
//!
//! Two splits ([`DerivedStemsOptions`]): the default, [`learned`], is a small network over
//! per-bin features, trained on the corpus's stems (`scripts/train/derived_stems.py`); the
//! median rule it replaced ([`MedianSplit`]) is kept for comparison. The rule separates
//! harmonic from percussive content with median filters (Fitzgerald, 2010) on the mean-of-sides
//! magnitude spectrogram `S`: a median across time gives the sustained part `H` and a median
//! across frequency the transient part `P`; soft masks `H² / (H² + P²)` and `P² / (H² + P²)`
//! split every bin, the harmonic share below a crossover (a cosine taper between two
//! frequencies) is the bass, above it the other instruments, and the percussive share is the
//! drums.

mod learned;
#[rustfmt::skip]
mod weights;

use std::ops::ControlFlow;

use rayon::prelude::*;
use stemscribe_audio::Audio;

use crate::denoise::{clean, Cleaned, NoiseOptions};
use crate::spectral::{apply_masks, median, spectrogram, Spectrogram};
use crate::stft::Stft;

/// Added to both sides of a mask's ratio so silent bins split evenly.
const EPSILON: f32 = 1e-10;
/// STFT frame length of the learned split, in samples (the features were trained on it).
const LEARNED_FFT_SIZE: usize = 4096;
/// STFT hop of the learned split, in samples.
const LEARNED_HOP: usize = 1024;

/// How drums, bass and other are split from the accompaniment.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum DerivedStemsOptions {
    /// A small network's masks over per-bin features (see the `learned` module).
    #[default]
    Learned,
    /// Median-filter harmonic/percussive separation and a bass crossover.
    Median(MedianSplit),
}

/// The parameters of the median rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MedianSplit {
    /// STFT frame length in samples.
    pub fft_size: usize,
    /// STFT hop in samples.
    pub hop: usize,
    /// Frames in the median across time (odd), the harmonic filter.
    pub harmonic_frames: usize,
    /// Bins in the median across frequency (odd), the percussive filter.
    pub percussive_bins: usize,
    /// Harmonic content below this is all bass (Hz).
    pub bass_full_hz: f32,
    /// Harmonic content above this is all other (Hz).
    pub bass_none_hz: f32,
}

impl MedianSplit {
    /// The rule's settings as it shipped (chosen on the musdb7 rock clip).
    pub const DEFAULT: Self = Self {
        fft_size: 4096,
        hop: 1024,
        harmonic_frames: 31,
        percussive_bins: 9,
        bass_full_hz: 150.0,
        bass_none_hz: 300.0,
    };
}

impl Default for MedianSplit {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Splits an accompaniment into `[drums, bass, other]`, each as long as the input.
pub fn derive_stems(accompaniment: &Audio, options: &DerivedStemsOptions) -> [Audio; 3] {
    let mut stems = Vec::with_capacity(3);
    derive_stems_each(accompaniment, options, &mut |stem| {
        stems.push(stem);
        ControlFlow::Continue(())
    });
    let mut stems = stems.into_iter();
    let mut next = || stems.next().expect("three stems were derived");
    [next(), next(), next()]
}

/// As [`derive_stems`], but synthesises one stem at a time and hands it to `on_stem` (drums,
/// then bass, then other), so that only one is held at once if the caller drops it; stops
/// early when `on_stem` returns [`ControlFlow::Break`].
pub fn derive_stems_each(
    accompaniment: &Audio,
    options: &DerivedStemsOptions,
    on_stem: &mut dyn FnMut(Audio) -> ControlFlow<()>,
) {
    derive(accompaniment, options, None, on_stem);
}

/// As [`derive_stems_each`], from the accompaniment with its stationary noise suppressed
/// first ([`suppress_noise`](crate::suppress_noise)). The stems are the same as from
/// `derive_stems_each(&suppress_noise(accompaniment, noise), ..)`; when no noise is found,
/// the spectrogram the noise search took serves the split too, if their STFTs agree.
pub fn derive_clean_stems_each(
    accompaniment: &Audio,
    noise: &NoiseOptions,
    options: &DerivedStemsOptions,
    on_stem: &mut dyn FnMut(Audio) -> ControlFlow<()>,
) {
    match clean(accompaniment, noise) {
        Cleaned::Unchanged(magnitude) => {
            let taken = Some(((noise.fft_size, noise.hop), magnitude));
            derive(accompaniment, options, taken, on_stem);
        }
        Cleaned::Suppressed(cleaned) => derive(&cleaned, options, None, on_stem),
    }
}

/// The split of `options`, reusing `taken`, a spectrogram of `accompaniment` with the STFT
/// `(fft size, hop)`, when the split's STFT is the same.
fn derive(
    accompaniment: &Audio,
    options: &DerivedStemsOptions,
    taken: Option<((usize, usize), Spectrogram)>,
    on_stem: &mut dyn FnMut(Audio) -> ControlFlow<()>,
) {
    let (fft_size, hop) = match options {
        DerivedStemsOptions::Learned => (LEARNED_FFT_SIZE, LEARNED_HOP),
        DerivedStemsOptions::Median(split) => (split.fft_size, split.hop),
    };
    let stft = Stft::new(fft_size, hop);
    let magnitude = match taken {
        Some((taken_with, magnitude)) if taken_with == (fft_size, hop) => magnitude,
        _ => spectrogram(&stft, accompaniment),
    };
    match options {
        DerivedStemsOptions::Learned => {
            let bins = magnitude.bins;
            // Other's mask is not needed: other is what drums and bass leave.
            let [drums, bass, _] =
                learned::learned_masks(magnitude, accompaniment.sample_rate(), LEARNED_FFT_SIZE);
            emit_stems(&stft, accompaniment, on_stem, |stem, t, gains| {
                let mask = if stem == 0 { &drums } else { &bass };
                gains.copy_from_slice(&mask[t * bins..(t + 1) * bins]);
            });
        }
        DerivedStemsOptions::Median(split) => {
            median_split(accompaniment, split, &stft, magnitude, on_stem);
        }
    }
}

/// Synthesises drums and bass in turn, `gains(stem, frame, out)` writing each frame's mask
/// (stem 0 drums, 1 bass), then other as what they leave of the accompaniment, and hands
/// each to `on_stem` until it breaks.
///
/// The masks sum to one and the STFT reconstructs its input, so other's own mask would give
/// the same signal to rounding (within 1e-6 of full scale); the subtraction saves a third
/// pass of forward and inverse transforms, and makes the stems sum to the accompaniment
/// exactly but for the rounding of two subtractions.
fn emit_stems(
    stft: &Stft,
    accompaniment: &Audio,
    on_stem: &mut dyn FnMut(Audio) -> ControlFlow<()>,
    gains: impl Fn(usize, usize, &mut [f32]) + Sync,
) {
    let synthesise = |stem: usize| {
        apply_masks(stft, accompaniment, 1, |t, out| gains(stem, t, &mut out[0])).remove(0)
    };
    let drums = synthesise(0);
    // What drums, then bass, leave of the accompaniment, side by side.
    let mut rest: Vec<Vec<f32>> = accompaniment
        .channels()
        .par_iter()
        .zip(drums.channels())
        .map(|(whole, part)| whole.iter().zip(part).map(|(w, p)| w - p).collect())
        .collect();
    if on_stem(drums).is_break() {
        return;
    }
    let bass = synthesise(1);
    rest.par_iter_mut()
        .zip(bass.channels())
        .for_each(|(rest, part)| {
            for (r, p) in rest.iter_mut().zip(part) {
                *r -= p;
            }
        });
    if on_stem(bass).is_break() {
        return;
    }
    let other = Audio::new(accompaniment.sample_rate(), rest)
        .expect("same rate and layout as the accompaniment");
    let _ = on_stem(other);
}

/// The median rule (see the module's text).
fn median_split(
    accompaniment: &Audio,
    options: &MedianSplit,
    stft: &Stft,
    magnitude: Spectrogram,
    on_stem: &mut dyn FnMut(Audio) -> ControlFlow<()>,
) {
    let (frames, bins) = (magnitude.frames(), magnitude.bins);
    let half_time = options.harmonic_frames / 2;
    let half_freq = options.percussive_bins / 2;

    // Harmonic medians, bin-major (each bin filtered along time in parallel).
    let mut harmonic = vec![0.0_f32; bins * frames];
    harmonic
        .par_chunks_mut(frames.max(1))
        .enumerate()
        .for_each_init(Vec::new, |window, (f, out)| {
            for (t, value) in out.iter_mut().enumerate() {
                window.clear();
                let range = t.saturating_sub(half_time)..(t + half_time + 1).min(frames);
                window.extend(range.map(|u| magnitude.values[u * bins + f]));
                *value = median(window);
            }
        });
    // Percussive medians frame by frame, each frame's tonal share `H² / (H² + P²)` written
    // over its magnitudes: two spectrograms held at most, not three.
    let mut tonal = magnitude.values;
    tonal.par_chunks_mut(bins).enumerate().for_each_init(
        || (Vec::new(), Vec::new()),
        |(window, original), (t, frame)| {
            original.clear();
            original.extend_from_slice(frame);
            for (f, value) in frame.iter_mut().enumerate() {
                window.clear();
                let range = f.saturating_sub(half_freq)..(f + half_freq + 1).min(bins);
                window.extend_from_slice(&original[range]);
                let p = median(window).powi(2);
                let h = harmonic[f * frames + t].powi(2);
                *value = (h + EPSILON / 2.0) / (h + p + EPSILON);
            }
        },
    );
    drop(harmonic);

    let hz_per_bin = accompaniment.sample_rate() as f32 / options.fft_size as f32;
    let bass_share: Vec<f32> = (0..bins)
        .map(|f| {
            let hz = f as f32 * hz_per_bin;
            if hz <= options.bass_full_hz {
                1.0
            } else if hz >= options.bass_none_hz {
                0.0
            } else {
                let x = (hz - options.bass_full_hz) / (options.bass_none_hz - options.bass_full_hz);
                0.5 + 0.5 * (std::f32::consts::PI * x).cos()
            }
        })
        .collect();
    emit_stems(stft, accompaniment, on_stem, |stem, t, gains| {
        let shares = tonal[t * bins..(t + 1) * bins].iter().zip(&bass_share);
        for (gain, (&tonal, &bass)) in gains.iter_mut().zip(shares) {
            *gain = if stem == 0 { 1.0 - tonal } else { tonal * bass };
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPLITS: [DerivedStemsOptions; 2] = [
        DerivedStemsOptions::Learned,
        DerivedStemsOptions::Median(MedianSplit::DEFAULT),
    ];

    fn signal(f: impl Fn(usize) -> f32) -> Audio {
        let side: Vec<f32> = (0..44_100).map(f).collect();
        Audio::new(44_100, vec![side.clone(), side]).unwrap()
    }

    fn energy(audio: &Audio) -> f64 {
        stemscribe_eval::rms(audio.channels()).powi(2)
    }

    #[test]
    fn the_stems_sum_to_the_accompaniment() {
        let mix = signal(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5);
        for options in SPLITS {
            let stems = derive_stems(&mix, &options);
            let sum = Audio::sum(&stems).unwrap();
            for (a, b) in sum
                .channels()
                .iter()
                .flatten()
                .zip(mix.channels().iter().flatten())
            {
                assert!((a - b).abs() < 1e-4, "{options:?}");
            }
        }
    }

    #[test]
    fn other_is_what_its_own_mask_gives_to_rounding() {
        let mix = signal(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5);
        let stft = Stft::new(LEARNED_FFT_SIZE, LEARNED_HOP);
        let masks = learned::learned_masks(spectrogram(&stft, &mix), 44_100, LEARNED_FFT_SIZE);
        let bins = stft.bins();
        let own = apply_masks(&stft, &mix, 1, |t, out| {
            out[0].copy_from_slice(&masks[2][t * bins..(t + 1) * bins]);
        });
        let [_, _, other] = derive_stems(&mix, &DerivedStemsOptions::Learned);
        let largest = other
            .channels()
            .iter()
            .flatten()
            .zip(own[0].channels().iter().flatten())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(largest < 1e-6, "{largest}");
    }

    #[test]
    fn tones_go_to_bass_or_other_and_clicks_to_drums() {
        let tau = std::f32::consts::TAU;
        let bass = signal(|i| 0.5 * (tau * 80.0 * i as f32 / 44_100.0).sin());
        let lead = signal(|i| 0.5 * (tau * 880.0 * i as f32 / 44_100.0).sin());
        let clicks = signal(|i| if i % 11_025 == 0 { 1.0 } else { 0.0 });
        for options in SPLITS {
            let [drums, low, other] = derive_stems(&bass, &options);
            assert!(
                energy(&low) > 20.0 * (energy(&drums) + energy(&other)),
                "{options:?}"
            );

            let [drums, low, other] = derive_stems(&lead, &options);
            assert!(
                energy(&other) > 20.0 * (energy(&drums) + energy(&low)),
                "{options:?}"
            );

            let [drums, low, other] = derive_stems(&clicks, &options);
            assert!(
                energy(&drums) > 5.0 * (energy(&low) + energy(&other)),
                "{options:?}"
            );
        }
    }

    #[test]
    fn clean_stems_are_the_stems_of_the_suppressed_accompaniment() {
        // Bursts of a tone: music, not a steady tone the suppressor would take for hum.
        let tone = |i: usize| {
            let on = (i / 11_025) % 2 == 0;
            if on {
                0.5 * (i as f32 * 0.0627).sin()
            } else {
                0.0
            }
        };
        let mut seed = 12_345_u32;
        let mut hiss = move || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1 << 24) as f32 - 0.5
        };
        let side = |noise: &mut dyn FnMut() -> f32| -> Vec<f32> {
            (0..3 * 44_100).map(|i| tone(i) + 0.05 * noise()).collect()
        };
        let noisy = Audio::new(44_100, vec![side(&mut hiss), side(&mut hiss)]).unwrap();
        let clean_tone = signal(tone);
        let noise = NoiseOptions::default();
        assert!(matches!(clean(&noisy, &noise), Cleaned::Suppressed(_)));
        assert!(matches!(clean(&clean_tone, &noise), Cleaned::Unchanged(_)));
        for input in [&noisy, &clean_tone] {
            for options in SPLITS {
                let expected = derive_stems(&crate::suppress_noise(input, &noise), &options);
                let mut stems = Vec::new();
                derive_clean_stems_each(input, &noise, &options, &mut |stem| {
                    stems.push(stem);
                    ControlFlow::Continue(())
                });
                assert_eq!(stems, expected, "{options:?}");
            }
        }
    }
}
