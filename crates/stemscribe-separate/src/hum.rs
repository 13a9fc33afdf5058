//! Mains hum removal by sinusoidal modelling.
//!
//! Hum is a sum of harmonics of the mains frequency (50 or 60 Hz, a little off in practice)
//! whose amplitudes and phases hardly move. Each harmonic's complex amplitude is measured in
//! Hann-windowed blocks of [`HumOptions::block_secs`], at the absolute time of the signal, so
//! that a steady tone keeps its phase from block to block while music at that frequency does
//! not. The mains frequency is refined from the phase advance between blocks; a harmonic
//! counts as hum when its amplitudes, block after block, agree in phase
//! ([`HumOptions::coherence`]). Each hum harmonic is then resynthesised from its amplitudes
//! averaged over [`HumOptions::smoothing_blocks`] neighbours and subtracted. Music is touched
//! only by what of it falls within a few hertz of a hum harmonic and survives that averaging;
//! input without hum is returned unchanged.

use std::f64::consts::TAU;

use rayon::prelude::*;
use stemscribe_audio::{mono, rms, Audio};

use crate::stft::periodic_hann;

/// The parameters of the hum remover.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HumOptions {
    /// Analysis block length in seconds (the frequency resolution is about 2 / this).
    pub block_secs: f64,
    /// Harmonics up to this frequency (Hz) are examined.
    pub max_hz: f64,
    /// The least phase agreement, from 0 (none) to 1 (a perfectly steady tone), of the first
    /// eight harmonics' amplitudes over consecutive blocks, averaged over the harmonics, for
    /// the input to have hum.
    pub coherence: f64,
    /// Once the mains are found, the least phase agreement of each harmonic.
    pub harmonic_coherence: f64,
    /// Amplitudes are averaged over this many blocks on each side before resynthesis.
    pub smoothing_blocks: usize,
    /// A harmonic quieter than this, against the whole signal's RMS (dB), is left alone.
    pub min_level_db: f64,
}

impl Default for HumOptions {
    fn default() -> Self {
        Self {
            block_secs: 0.5,
            max_hz: 2_000.0,
            coherence: 0.64,
            harmonic_coherence: 0.6,
            smoothing_blocks: 16,
            min_level_db: -60.0,
        }
    }
}

/// The hum found in a signal.
#[derive(Debug, Clone, PartialEq)]
pub struct Hum {
    /// The refined mains frequency (Hz).
    pub mains_hz: f64,
    /// The harmonic numbers that were found steady.
    pub harmonics: Vec<u32>,
}

/// `audio` with its mains hum removed, and the hum found; `None` when there is none.
pub fn remove_hum(audio: &Audio, options: &HumOptions) -> Option<(Audio, Hum)> {
    let hum = detect_hum(audio, options)?;
    let rate = f64::from(audio.sample_rate());
    let channels = audio
        .channels()
        .par_iter()
        .map(|channel| {
            let mut cleaned = channel.clone();
            for &k in &hum.harmonics {
                let omega = TAU * hum.mains_hz * f64::from(k) / rate;
                subtract_tone(&mut cleaned, channel, omega, options, rate);
            }
            cleaned
        })
        .collect();
    // Same rate and lengths as a valid input: cannot fail.
    Audio::new(audio.sample_rate(), channels)
        .ok()
        .map(|cleaned| (cleaned, hum))
}

/// The mains hum of `audio`, if any: the frequency (50 or 60 Hz, refined) and the steady
/// harmonics.
pub fn detect_hum(audio: &Audio, options: &HumOptions) -> Option<Hum> {
    let rate = f64::from(audio.sample_rate());
    let block = (options.block_secs * rate).round() as usize;
    let mono = mono(audio.channels());
    if block < 16 || mono.len() < 8 * block {
        return None;
    }
    let seconds = block as f64 / rate;
    // The mains frequency: the offset from 50 or 60 Hz at which the low harmonics' block
    // amplitudes are, on average over the harmonics, most coherent (a tone at k (mains + d)
    // advances 2 pi k d per second against one at k mains). Each harmonic counts alike, so
    // one loud sustained bass note at a multiple of 50 Hz does not decide it.
    let mut best: Option<(f64, f64)> = None;
    for mains in [50.0, 60.0] {
        let low: Vec<(Vec<(f64, f64)>, f64)> = (1..=MAINS_HARMONICS)
            .into_par_iter()
            .map(|k| {
                let omega = TAU * mains * f64::from(k) / rate;
                let amplitudes = block_amplitudes(&mono, omega, block, block);
                let magnitude = amplitudes.iter().map(|a| a.0.hypot(a.1)).sum();
                (amplitudes, magnitude)
            })
            .collect();
        // Every offset's coherence at once, then the best in order of offset (the first of
        // equals), as one loop over them would find it.
        let coherences: Vec<(f64, f64)> = (-200..=200)
            .into_par_iter()
            .map(|step| {
                let offset = f64::from(step) * 0.002;
                let coherence = low
                    .iter()
                    .zip(1..)
                    .map(|((amplitudes, magnitude), k)| {
                        let turn = -TAU * f64::from(k) * offset * seconds;
                        rotated_coherence(amplitudes, *magnitude, turn)
                    })
                    .sum::<f64>()
                    / f64::from(MAINS_HARMONICS);
                (mains + offset, coherence)
            })
            .collect();
        for (hz, coherence) in coherences {
            if best.is_none_or(|(_, c)| coherence > c) {
                best = Some((hz, coherence));
            }
        }
    }
    let (mains_hz, coherence) = best?;
    if coherence < options.coherence {
        return None;
    }
    let level = rms(std::slice::from_ref(&mono)) * 10f64.powf(options.min_level_db / 20.0);
    let highest = (options.max_hz / mains_hz).floor() as u32;
    let harmonics: Vec<u32> = (1..=highest)
        .into_par_iter()
        .filter(|&k| {
            let omega = TAU * mains_hz * f64::from(k) / rate;
            // Blocks four times as long: music a few hertz away stays out of the narrower window.
            let amplitudes = block_amplitudes(&mono, omega, 4 * block, 4 * block);
            windowed_coherence(&amplitudes, 4).is_some_and(|(coherence, mean)| {
                coherence >= options.harmonic_coherence && mean >= level
            })
        })
        .collect();
    (!harmonics.is_empty()).then_some(Hum {
        mains_hz,
        harmonics,
    })
}

/// The harmonics of 50 or 60 Hz whose coherence finds the mains.
const MAINS_HARMONICS: u32 = 8;

/// `|sum_b a_b e^(i turn b)| / sum_b |a_b|`, with `magnitude` the sum of the `|a_b|`: 1 when
/// the amplitudes, each turned by `turn` radians per block more than the last, all point the
/// same way; 0 for silence.
fn rotated_coherence(amplitudes: &[(f64, f64)], magnitude: f64, turn: f64) -> f64 {
    let (mut re, mut im) = (0.0, 0.0);
    for (b, a) in amplitudes.iter().enumerate() {
        let (c, s) = ((turn * b as f64).cos(), (turn * b as f64).sin());
        re += a.0 * c - a.1 * s;
        im += a.0 * s + a.1 * c;
    }
    if magnitude > 0.0 {
        re.hypot(im) / magnitude
    } else {
        0.0
    }
}

/// How steady a tone's block amplitudes are: over windows of `width` blocks,
/// `|sum a| / sqrt(n sum |a|^2)`, which is 1 only for amplitudes equal in phase and size (a
/// steady tone) and about `1 / sqrt(n)` for music or a single burst, averaged over the
/// windows weighted by their energy; and the mean magnitude. `None` for silence.
fn windowed_coherence(amplitudes: &[(f64, f64)], width: usize) -> Option<(f64, f64)> {
    let (mut weighted, mut weights, mut magnitude) = (0.0, 0.0, 0.0);
    for window in amplitudes.chunks(width) {
        let (re, im) = window
            .iter()
            .fold((0.0, 0.0), |(r, i), a| (r + a.0, i + a.1));
        let energy: f64 = window.iter().map(|a| a.0 * a.0 + a.1 * a.1).sum();
        magnitude += window.iter().map(|a| a.0.hypot(a.1)).sum::<f64>();
        if energy > 0.0 {
            let coherence = re.hypot(im) / (window.len() as f64 * energy).sqrt();
            weighted += coherence * energy;
            weights += energy;
        }
    }
    (weights > 0.0).then(|| (weighted / weights, magnitude / amplitudes.len() as f64))
}

/// The complex amplitude, `(re, im)`, of the tone at `omega` (radians per sample) in each
/// Hann-windowed block of `block` samples, blocks starting every `hop` samples from
/// `-block / 2` (samples outside the signal are zero), phases at absolute time.
///
/// Each block's sum runs through its own rotating phasor, a chain of dependent products; the
/// blocks inside the signal are taken [`LANES`] at a time so the chains interleave, each with
/// exactly the operations it has alone.
fn block_amplitudes(signal: &[f32], omega: f64, block: usize, hop: usize) -> Vec<(f64, f64)> {
    let window = periodic_hann(block);
    let scale = 2.0 / window.iter().sum::<f64>();
    let step = (omega.cos(), -omega.sin());
    let half = (block / 2) as isize;
    let len = signal.len() as isize;
    let starts: Vec<isize> = std::iter::successors(Some(-half), |s| Some(s + hop as isize))
        .take_while(|&s| s < len - half)
        .collect();
    let inside = |s: isize| s >= 0 && s + block as isize <= len;
    let mut amplitudes = Vec::with_capacity(starts.len());
    let mut rest = &starts[..];
    while let Some(&first) = rest.first() {
        match rest.first_chunk::<LANES>() {
            Some(group) if group.iter().all(|&s| inside(s)) => {
                let sums = interleaved(signal, &window, omega, step, *group);
                amplitudes.extend(sums.map(|(re, im)| (re * scale, im * scale)));
                rest = &rest[LANES..];
            }
            _ => {
                let (re, im) = one_block(signal, &window, omega, step, first);
                amplitudes.push((re * scale, im * scale));
                rest = &rest[1..];
            }
        }
    }
    amplitudes
}

/// Blocks whose phasor chains [`block_amplitudes`] interleaves.
const LANES: usize = 4;

/// The windowed sum of `x[n] e^{-i omega n}` over the block at `start` (any start: samples
/// outside the signal count as zero), the phasor advanced by `step` = `e^{-i omega}`.
fn one_block(
    signal: &[f32],
    window: &[f64],
    omega: f64,
    (step_re, step_im): (f64, f64),
    start: isize,
) -> (f64, f64) {
    let phase = -omega * start as f64;
    let (mut re, mut im) = (phase.cos(), phase.sin());
    let (mut sum_re, mut sum_im) = (0.0, 0.0);
    for (n, &w) in window.iter().enumerate() {
        let index = start + n as isize;
        if index >= 0 && (index as usize) < signal.len() {
            let x = w * f64::from(signal[index as usize]);
            sum_re += x * re;
            sum_im += x * im;
        }
        (re, im) = (re * step_re - im * step_im, re * step_im + im * step_re);
    }
    (sum_re, sum_im)
}

/// [`one_block`] of [`LANES`] blocks that lie wholly inside the signal, side by side;
/// compiled for AVX2 where the CPU has it (four lanes to a register, the same operations in
/// the same order, no fused multiply-adds: the same results).
fn interleaved(
    signal: &[f32],
    window: &[f64],
    omega: f64,
    step: (f64, f64),
    starts: [isize; LANES],
) -> [(f64, f64); LANES] {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { interleaved_avx2(signal, window, omega, step, starts) };
    }
    interleave(signal, window, omega, step, starts)
}

/// [`interleave`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn interleaved_avx2(
    signal: &[f32],
    window: &[f64],
    omega: f64,
    step: (f64, f64),
    starts: [isize; LANES],
) -> [(f64, f64); LANES] {
    interleave(signal, window, omega, step, starts)
}

/// The work of [`interleaved`].
#[inline(always)]
fn interleave(
    signal: &[f32],
    window: &[f64],
    omega: f64,
    (step_re, step_im): (f64, f64),
    starts: [isize; LANES],
) -> [(f64, f64); LANES] {
    let blocks = starts.map(|s| &signal[s as usize..s as usize + window.len()]);
    let phases = starts.map(|s| -omega * s as f64);
    let (mut re, mut im) = (phases.map(f64::cos), phases.map(f64::sin));
    let (mut sum_re, mut sum_im) = ([0.0; LANES], [0.0; LANES]);
    for (n, &w) in window.iter().enumerate() {
        for lane in 0..LANES {
            let x = w * f64::from(blocks[lane][n]);
            sum_re[lane] += x * re[lane];
            sum_im[lane] += x * im[lane];
            (re[lane], im[lane]) = (
                re[lane] * step_re - im[lane] * step_im,
                re[lane] * step_im + im[lane] * step_re,
            );
        }
    }
    std::array::from_fn(|lane| (sum_re[lane], sum_im[lane]))
}

/// Subtracts from `out` the tone at `omega` measured in `signal`: amplitudes in half-overlapping
/// blocks, averaged over neighbours, resynthesised with Hann crossfades that sum to one.
fn subtract_tone(out: &mut [f32], signal: &[f32], omega: f64, options: &HumOptions, rate: f64) {
    let block = ((options.block_secs * rate).round() as usize).max(2) & !1;
    let hop = block / 2;
    let amplitudes = block_amplitudes(signal, omega, block, hop);
    let reach = 2 * options.smoothing_blocks;
    let smoothed: Vec<(f64, f64)> = (0..amplitudes.len())
        .map(|b| {
            let from = b.saturating_sub(reach);
            let to = (b + reach + 1).min(amplitudes.len());
            let n = (to - from) as f64;
            let (re, im) = amplitudes[from..to]
                .iter()
                .fold((0.0, 0.0), |(r, i), a| (r + a.0, i + a.1));
            (re / n, im / n)
        })
        .collect();
    let crossfade = periodic_hann(block);
    let (step_re, step_im) = (omega.cos(), omega.sin());
    let half = (block / 2) as isize;
    for (b, &(re, im)) in smoothed.iter().enumerate() {
        let start = b as isize * hop as isize - half;
        let phase = omega * start as f64;
        let (mut cos, mut sin) = (phase.cos(), phase.sin());
        for (n, &fade) in crossfade.iter().enumerate() {
            let index = start + n as isize;
            if index >= 0 && (index as usize) < out.len() {
                // The tone is re cos(phase) - im sin(phase) (measured against e^-i phase).
                out[index as usize] -= (fade * (re * cos - im * sin)) as f32;
            }
            (cos, sin) = (cos * step_re - sin * step_im, cos * step_im + sin * step_re);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleaved_blocks_are_the_blocks_taken_one_by_one_bit_for_bit() {
        let signal: Vec<f32> = (0..20_000)
            .map(|i| ((i * 7919 + 13) % 1001) as f32 / 1000.0 - 0.5)
            .collect();
        let (block, omega) = (1_001, 0.0713_f64);
        let window = periodic_hann(block);
        let step = (omega.cos(), -omega.sin());
        let starts = [0, 17, 5_000, 18_999 - block as isize];
        // As dispatched (AVX2 where the CPU has it), and compiled for any x86-64.
        for together in [
            interleaved(&signal, &window, omega, step, starts),
            interleave(&signal, &window, omega, step, starts),
        ] {
            for (start, sums) in starts.into_iter().zip(together) {
                let alone = one_block(&signal, &window, omega, step, start);
                assert_eq!(sums.0.to_bits(), alone.0.to_bits());
                assert_eq!(sums.1.to_bits(), alone.1.to_bits());
            }
        }
    }

    fn tone_mix(rate: u32, seconds: f64, mains: f64, hum_level: f32) -> (Audio, Audio) {
        let frames = (f64::from(rate) * seconds) as usize;
        // Music: a few notes that change every 0.3 s, plus a noise-like chirp.
        let music: Vec<f32> = (0..frames)
            .map(|i| {
                let t = i as f64 / f64::from(rate);
                let note = 220.0 * 2f64.powf(((t / 0.3).floor() % 7.0) / 12.0);
                (0.3 * (TAU * note * t).sin() + 0.1 * (TAU * (100.0 + 400.0 * t) * t).sin()) as f32
            })
            .collect();
        let hum: Vec<f32> = (0..frames)
            .map(|i| {
                let t = i as f64 / f64::from(rate);
                (1..=10)
                    .map(|k| {
                        (TAU * mains * f64::from(k) * t + 0.7 * f64::from(k)).sin() / f64::from(k)
                    })
                    .sum::<f64>() as f32
                    * hum_level
            })
            .collect();
        let clean = Audio::new(rate, vec![music.clone(), music.clone()]).unwrap();
        let noisy: Vec<f32> = music.iter().zip(&hum).map(|(m, h)| m + h).collect();
        (clean, Audio::new(rate, vec![noisy.clone(), noisy]).unwrap())
    }

    fn energy_db(a: &[f32], b: &[f32]) -> f64 {
        let e = |x: &[f32]| x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>();
        let diff: Vec<f32> = a.iter().zip(b).map(|(x, y)| x - y).collect();
        10.0 * (e(&diff) / e(b)).log10()
    }

    #[test]
    fn removes_slightly_off_mains_hum_and_keeps_music() {
        let (clean, noisy) = tone_mix(22_050, 12.0, 50.03, 0.1);
        let (cleaned, hum) = remove_hum(&noisy, &HumOptions::default()).expect("hum found");
        assert!((hum.mains_hz - 50.03).abs() < 0.005, "{hum:?}");
        // What is left of the hum, against the hum added (away from the edges).
        let range = 22_050..22_050 * 11;
        let left = energy_db(
            &cleaned.channels()[0][range.clone()],
            &clean.channels()[0][range.clone()],
        );
        let added = energy_db(
            &noisy.channels()[0][range.clone()],
            &clean.channels()[0][range],
        );
        assert!(left - added < -25.0, "hum passed {:.1} dB", left - added);
    }

    #[test]
    fn finds_sixty_hertz_mains() {
        let (_, noisy) = tone_mix(22_050, 12.0, 59.97, 0.1);
        let hum = detect_hum(&noisy, &HumOptions::default()).expect("hum found");
        assert!((hum.mains_hz - 59.97).abs() < 0.005, "{hum:?}");
        assert!(hum.harmonics.starts_with(&[1, 2, 3]), "{hum:?}");
    }

    #[test]
    fn music_without_hum_is_unchanged() {
        let (clean, _) = tone_mix(22_050, 12.0, 50.0, 0.0);
        assert!(remove_hum(&clean, &HumOptions::default()).is_none());
    }
}
