//! The learned split: per-bin features of the accompaniment's spectrogram, and a small network
//! (one hidden layer of `tanh` units, a softmax over drums, bass and other) that turns them into
//! three masks summing to one. `scripts/train/derived_stems.py` computes the same features
//! (any change here must be made there, and the weights retrained) and writes `weights.rs`.
//!
//! The features of bin `f` in frame `t`, with `L` the magnitude in dB (`20 log10(|X| + 1e-8)`):
//! - for each of [`SCALES`] `(frames, bins)`: the tonal share `H² / (H² + P²)` of median
//!   filters across time (`H`) and across frequency (`P`), windows clamped at the edges;
//! - the bin's frequency as 8 triangular weights over `log2(hz / 20)`, centres 0 to 10 octaves;
//! - `L` against the frame's loudest bin, and against its 31-frame median (the contrast);
//! - the frame's percussive energy share and its mean rise in dB (broadband onsets);
//! - `L`'s change from the previous frame, to 2, 5 and 10 frames later (decay) and from 2
//!   frames earlier;
//! - `L` above its neighbours 3–4 bins away and 1 bin away (spectral peaks, i.e. partials).

use rayon::prelude::*;

use super::weights::{B1, B2, HIDDEN, SCALES, W1, W2};
use super::EPSILON;
use crate::spectral::{
    has_median_network, lane_medians, network_medians, network_sliding_medians, Spectrogram, LANES,
};

/// The scale whose median across time is the contrast feature's reference.
const CONTRAST_SCALE: usize = 1;
/// Features per bin: one tonal share per scale, then 19 more (see the module's list).
pub(super) const INPUTS: usize = SCALES.len() + 19;
const _: () = assert!(
    SCALES.len() == 3,
    "the three masks are written over the three scales' tonal shares"
);
/// Centres of the triangular frequency weights, in octaves above 20 Hz.
const OCTAVE_CENTRES: usize = 8;
/// Octaves from the first frequency centre to the last.
const OCTAVE_SPAN: f32 = 10.0;

/// The masks `[drums, bass, other]` of a spectrogram taken with the module's STFT at
/// `sample_rate`, each frame-major like the spectrogram.
pub(super) fn learned_masks(
    magnitude: Spectrogram,
    sample_rate: u32,
    fft_size: usize,
) -> [Vec<f32>; 3] {
    let bins = magnitude.bins;
    let frames = magnitude.frames();
    let mut tonal: Vec<Vec<f32>> = Vec::with_capacity(SCALES.len());
    // The contrast scale's medians across time, kept for the contrast feature, and its
    // per-frame percussive and total energy.
    let mut contrast_reference = TimeMedians::default();
    let mut sums = vec![(0.0_f64, 0.0_f64); frames];
    for (scale, &(time_frames, freq_bins)) in SCALES.iter().enumerate() {
        let harmonic = time_medians(&magnitude, time_frames);
        let mut share = vec![0.0_f32; frames * bins];
        let is_contrast = scale == CONTRAST_SCALE;
        // [`LANES`] frames to a task, their medians across frequency taken together.
        share
            .par_chunks_mut(LANES * bins)
            .zip(sums.par_chunks_mut(LANES))
            .enumerate()
            .for_each_init(
                || (Vec::new(), Vec::new()),
                |(percussive, padded), (block, (shares, sums))| {
                    let first = block * LANES;
                    let rows = &magnitude.values[first * bins..][..shares.len()];
                    percussive.resize(shares.len(), 0.0);
                    frequency_medians(freq_bins, bins, rows, padded, percussive);
                    for (k, ((out, sum), percussive)) in shares
                        .chunks_exact_mut(bins)
                        .zip(sums)
                        .zip(percussive.chunks_exact(bins))
                        .enumerate()
                    {
                        for ((value, p), h) in out
                            .iter_mut()
                            .zip(percussive)
                            .zip(harmonic.frame(first + k))
                        {
                            let p = p.powi(2);
                            let h = h.powi(2);
                            *value = (h + EPSILON / 2.0) / (h + p + EPSILON);
                            if is_contrast {
                                sum.0 += f64::from(p);
                                sum.1 += f64::from(h + p);
                            }
                        }
                    }
                },
            );
        if is_contrast {
            contrast_reference = harmonic;
        }
        tonal.push(share);
    }
    let percussive_share: Vec<f32> = sums
        .iter()
        .map(|&(p, total)| (p / (total + f64::from(EPSILON))) as f32)
        .collect();

    let mut level = magnitude.values;
    level.par_iter_mut().for_each(|m| *m = decibels(*m));
    let level = level;
    let row = |t: usize| &level[t * bins..(t + 1) * bins];
    // `L` against the contrast scale's median across time, from the levels already in dB.
    let mut contrast = vec![0.0_f32; frames * bins];
    contrast
        .par_chunks_mut(bins)
        .enumerate()
        .for_each(|(t, out)| {
            let reference = contrast_reference.frame(t);
            for ((value, &l), &reference) in out.iter_mut().zip(row(t)).zip(reference) {
                let above = l - decibels(reference);
                *value = (above / 30.0).clamp(-2.0, 2.0);
            }
        });
    drop(contrast_reference);
    let flux: Vec<f32> = (0..frames)
        .into_par_iter()
        .map(|t| {
            if t == 0 {
                return 0.0;
            }
            let rise: f32 = row(t)
                .iter()
                .zip(row(t - 1))
                .map(|(a, b)| (a - b).max(0.0))
                .sum();
            rise / bins as f32 / 10.0
        })
        .collect();
    let octave_weights = octave_weights(bins, sample_rate, fft_size);

    // Each frame's masks are written over its tonal shares, which only that frame reads.
    let mut masks: [Vec<f32>; 3] = tonal
        .try_into()
        .unwrap_or_else(|_| unreachable!("one tonal share per scale, three scales"));
    let [drums, bass, other] = &mut masks;
    drums
        .par_chunks_mut(bins)
        .zip(bass.par_chunks_mut(bins))
        .zip(other.par_chunks_mut(bins))
        .enumerate()
        .for_each_init(
            || Box::new(Tile::default()),
            |tile, (t, ((drums, bass), other))| {
                let now = row(t);
                let earlier = |k: usize| row(t.saturating_sub(k));
                let later = |k: usize| row((t + k).min(frames - 1));
                let (previous, back2) = (earlier(1), earlier(2));
                let (ahead2, ahead5, ahead10) = (later(2), later(5), later(10));
                let loudest = now.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let at = |f: isize| now[f.clamp(0, bins as isize - 1) as usize];
                for first in (0..bins).step_by(TILE) {
                    let width = TILE.min(bins - first);
                    let span = first..first + width;
                    let inputs = &mut tile.inputs;
                    for (input, share) in inputs.iter_mut().zip([&*drums, &*bass, &*other]) {
                        input[..width].copy_from_slice(&share[span.clone()]);
                    }
                    for (c, input) in inputs[SCALES.len()..REST].iter_mut().enumerate() {
                        input[..width].copy_from_slice(&octave_weights[c * bins..][span.clone()]);
                    }
                    let l = &now[span.clone()];
                    let rest = &mut inputs[REST..];
                    fill(
                        &mut rest[0],
                        l.iter()
                            .map(|&l| ((l - loudest) / 80.0 + 1.0).clamp(-1.0, 1.0)),
                    );
                    rest[1][..width].copy_from_slice(&contrast[t * bins..][span.clone()]);
                    rest[2] = [percussive_share[t]; TILE];
                    rest[3] = [flux[t]; TILE];
                    fill(
                        &mut rest[4],
                        l.iter()
                            .zip(&previous[span.clone()])
                            .map(|(&l, &p)| ((l - p) / 20.0).clamp(-2.0, 2.0)),
                    );
                    for (input, other) in
                        rest[5..9].iter_mut().zip([ahead2, ahead5, ahead10, back2])
                    {
                        fill(
                            input,
                            l.iter()
                                .zip(&other[span.clone()])
                                .map(|(&l, &o)| ((o - l) / 30.0).clamp(-2.0, 2.0)),
                        );
                    }
                    fill(
                        &mut rest[9],
                        span.clone().map(|f| {
                            let f = f as isize;
                            let far = at(f - 4).max(at(f - 3)).max(at(f + 3)).max(at(f + 4));
                            ((at(f) - far) / 20.0).clamp(-2.0, 2.0)
                        }),
                    );
                    fill(
                        &mut rest[10],
                        span.clone().map(|f| {
                            let f = f as isize;
                            ((at(f) - at(f - 1).max(at(f + 1))) / 20.0).clamp(-2.0, 2.0)
                        }),
                    );
                    tile.run();
                    for (mask, output) in [&mut *drums, &mut *bass, &mut *other]
                        .into_iter()
                        .zip(&tile.outputs)
                    {
                        mask[span.clone()].copy_from_slice(&output[..width]);
                    }
                }
            },
        );
    masks
}

/// The first input after the tonal shares and the octave weights.
const REST: usize = SCALES.len() + OCTAVE_CENTRES;

/// Writes `values` into the start of `out`.
fn fill(out: &mut [f32; TILE], values: impl Iterator<Item = f32>) {
    for (o, v) in out.iter_mut().zip(values) {
        *o = v;
    }
}

/// Bins the network runs on together: each step of a layer runs over them all, so it
/// vectorises across bins, and a tile's values stay in the L1 cache.
const TILE: usize = 64;

/// One tile's features, hidden units and masks, each row one value of every bin in the tile.
struct Tile {
    inputs: [[f32; TILE]; INPUTS],
    hidden: [[f32; TILE]; HIDDEN],
    outputs: [[f32; TILE]; 3],
}

impl Default for Tile {
    fn default() -> Self {
        Self {
            inputs: [[0.0; TILE]; INPUTS],
            hidden: [[0.0; TILE]; HIDDEN],
            outputs: [[0.0; TILE]; 3],
        }
    }
}

impl Tile {
    /// The network, `softmax(W2ᵀ tanh(W1ᵀ x + b1) + b2)`, from `inputs` into `outputs`. Each
    /// bin's sums are taken in the same order as for a single bin, so a bin's masks do not
    /// depend on the tile it is in, nor on the instructions the CPU offers: with AVX2 the
    /// same operations run eight bins to a register (no fused multiply-adds, which would round
    /// differently).
    fn run(&mut self) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            unsafe { self.run_avx2() };
            return;
        }
        self.layers();
    }

    /// [`Tile::layers`] compiled for AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn run_avx2(&mut self) {
        self.layers();
    }

    #[inline(always)]
    fn layers(&mut self) {
        // The hidden sums of UNITS units for LANES bins stay in registers while the inputs
        // stream past; each sum still starts at its bias and adds the inputs in order.
        const LANES: usize = 8;
        const UNITS: usize = 4;
        const _: () = assert!(TILE % LANES == 0 && HIDDEN % UNITS == 0);
        for first in (0..TILE).step_by(LANES) {
            for unit in (0..HIDDEN).step_by(UNITS) {
                let mut sums: [[f32; LANES]; UNITS] =
                    std::array::from_fn(|u| [B1[unit + u]; LANES]);
                for (input, weights) in self.inputs.iter().zip(&W1) {
                    let x = &input[first..first + LANES];
                    for (sum, &w) in sums.iter_mut().zip(&weights[unit..unit + UNITS]) {
                        for (s, x) in sum.iter_mut().zip(x) {
                            *s += x * w;
                        }
                    }
                }
                for (hidden, sum) in self.hidden[unit..unit + UNITS].iter_mut().zip(&sums) {
                    hidden[first..first + LANES].copy_from_slice(sum);
                }
            }
        }
        for hidden in &mut self.hidden {
            for h in hidden {
                *h = tanh(*h);
            }
        }
        for (output, &bias) in self.outputs.iter_mut().zip(&B2) {
            *output = [bias; TILE];
        }
        for (hidden, weights) in self.hidden.iter().zip(&W2) {
            for (output, &w) in self.outputs.iter_mut().zip(weights) {
                for (l, h) in output.iter_mut().zip(hidden) {
                    *l += h * w;
                }
            }
        }
        let [drums, bass, other] = &mut self.outputs;
        for ((d, b), o) in drums.iter_mut().zip(bass.iter_mut()).zip(other.iter_mut()) {
            let top = d.max(*b).max(*o);
            let exp = [*d, *b, *o].map(|l| (l - top).exp());
            let total = exp[0] + exp[1] + exp[2];
            [*d, *b, *o] = exp.map(|e| e / total);
        }
    }
}

/// `tanh` by its (7, 6) Padé approximant, clamped to ±1: within 1e-4 of the exact value, and
/// several times faster than the library's, which dominated the network's time.
fn tanh(x: f32) -> f32 {
    let x2 = x * x;
    let numerator = x * (135_135.0 + x2 * (17_325.0 + x2 * (378.0 + x2)));
    let denominator = 135_135.0 + x2 * (62_370.0 + x2 * (3_150.0 + 28.0 * x2));
    (numerator / denominator).clamp(-1.0, 1.0)
}

/// Writes into `out` the medians across frequency over `span` (odd) bins of each of the
/// `rows` (frames of `bins` magnitudes, at most [`LANES`] of them), windows clamped at the
/// edges; `padded` is scratch space.
fn frequency_medians(
    span: usize,
    bins: usize,
    rows: &[f32],
    padded: &mut Vec<f32>,
    out: &mut [f32],
) {
    if has_median_network(span) {
        for (row, out) in rows.chunks_exact(bins).zip(out.chunks_exact_mut(bins)) {
            network_sliding_medians(span, row, padded, out);
        }
        return;
    }
    let frames = rows.len() / bins;
    lane_medians(
        span,
        frames,
        bins,
        |t, f| rows[t * bins + f],
        |f, medians| {
            for (t, &median) in medians.iter().enumerate() {
                out[t * bins + f] = median;
            }
        },
    );
}

/// Bins whose windows across time one task slides together.
const BINS_PER_TASK: usize = LANES;

/// Medians across time of every bin, in blocks of [`BINS_PER_TASK`] neighbouring bins (the
/// last block may be narrower), each block frame-major, the blocks one after another.
#[derive(Default)]
struct TimeMedians {
    values: Vec<f32>,
    frames: usize,
}

impl TimeMedians {
    /// The medians of frame `t`, bin after bin.
    fn frame(&self, t: usize) -> impl Iterator<Item = &f32> {
        self.values
            .chunks(BINS_PER_TASK * self.frames.max(1))
            .flat_map(move |block| {
                let width = block.len() / self.frames;
                &block[t * width..(t + 1) * width]
            })
    }
}

/// Medians across time of every bin over `span` frames (odd; the window's ends clamped to the
/// first and last frame). Each task copies out the columns of [`BINS_PER_TASK`] neighbouring
/// bins, frame after frame, and slides their windows together ([`lane_medians`]).
fn time_medians(magnitude: &Spectrogram, span: usize) -> TimeMedians {
    let (bins, frames) = (magnitude.bins, magnitude.frames());
    if frames == 0 {
        return TimeMedians::default();
    }
    let half = span / 2;
    let mut values = vec![0.0_f32; bins * frames];
    values
        .par_chunks_mut(BINS_PER_TASK * frames)
        .enumerate()
        .for_each_init(Vec::new, |columns, (b, out)| {
            let block = b * BINS_PER_TASK..(b * BINS_PER_TASK + out.len() / frames);
            let width = block.len();
            // The block's bins frame after frame, contiguous: read in place, one short run from
            // each row of the spectrogram, they cost a cache miss per frame as the medians slide.
            columns.clear();
            for row in magnitude.values.chunks_exact(bins) {
                columns.extend_from_slice(&row[block.clone()]);
            }
            let columns = &columns[..];
            if has_median_network(span) {
                let row = |t: isize| {
                    let t = t.clamp(0, frames as isize - 1) as usize;
                    &columns[t * width..(t + 1) * width]
                };
                for (t, medians) in out.chunks_exact_mut(width).enumerate() {
                    let first = t as isize - half as isize;
                    network_medians(span, |k| row(first + k as isize), medians);
                }
                return;
            }
            let at = |f: usize, t: usize| columns[t * width + f];
            lane_medians(span, width, frames, at, |t, medians| {
                out[t * width..(t + 1) * width].copy_from_slice(medians);
            });
        });
    TimeMedians { values, frames }
}

/// The triangular weights of every bin's frequency: [`OCTAVE_CENTRES`] rows of one weight
/// per bin.
fn octave_weights(bins: usize, sample_rate: u32, fft_size: usize) -> Vec<f32> {
    let spacing = OCTAVE_SPAN / (OCTAVE_CENTRES - 1) as f32;
    let octaves: Vec<f32> = (0..bins)
        .map(|f| {
            let hz = f as f32 * sample_rate as f32 / fft_size as f32;
            (hz.max(20.0) / 20.0).log2()
        })
        .collect();
    (0..OCTAVE_CENTRES)
        .flat_map(|c| {
            octaves
                .iter()
                .map(move |o| (1.0 - (o - c as f32 * spacing).abs() / spacing).max(0.0))
        })
        .collect()
}

/// A magnitude in dB, floored at -160 dB.
fn decibels(magnitude: f32) -> f32 {
    20.0 * (magnitude + 1e-8).log10()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_tanh_is_within_1e_4() {
        for i in -10_000..=10_000 {
            let x = i as f32 / 1000.0;
            assert!((tanh(x) - x.tanh()).abs() < 1e-4, "{x}");
        }
    }

    #[test]
    fn time_medians_are_each_bins_median_across_its_clamped_window() {
        let (bins, frames) = (BINS_PER_TASK + 7, 50);
        let values: Vec<f32> = (0..bins * frames)
            .map(|i| ((i * 7919 + 13) % 101) as f32)
            .collect();
        let magnitude = Spectrogram { bins, values };
        for span in [1, 5, 9, 61] {
            let medians = time_medians(&magnitude, span);
            let medians: Vec<f32> = (0..frames)
                .flat_map(|t| medians.frame(t))
                .copied()
                .collect();
            for f in 0..bins {
                for t in 0..frames {
                    let mut window: Vec<f32> = (0..span)
                        .map(|k| {
                            let u = (t + k).saturating_sub(span / 2).min(frames - 1);
                            magnitude.values[u * bins + f]
                        })
                        .collect();
                    let expected = crate::spectral::median(&mut window);
                    assert_eq!(
                        medians[t * bins + f],
                        expected,
                        "span {span}, bin {f}, frame {t}"
                    );
                }
            }
        }
    }

    #[test]
    fn frequency_medians_are_each_frames_median_across_its_clamped_window() {
        let (bins, frames) = (70, LANES - 5);
        let rows: Vec<f32> = (0..bins * frames)
            .map(|i| ((i * 7919 + 13) % 101) as f32)
            .collect();
        for span in [5, 9, 25] {
            let mut out = vec![0.0; rows.len()];
            frequency_medians(span, bins, &rows, &mut Vec::new(), &mut out);
            for (t, (row, out)) in rows.chunks(bins).zip(out.chunks(bins)).enumerate() {
                for (f, &got) in out.iter().enumerate() {
                    let mut window: Vec<f32> = (0..span)
                        .map(|k| row[(f + k).saturating_sub(span / 2).min(bins - 1)])
                        .collect();
                    let expected = crate::spectral::median(&mut window);
                    assert_eq!(got, expected, "span {span}, frame {t}, bin {f}");
                }
            }
        }
    }

    #[test]
    fn the_masks_sum_to_one() {
        let mut tile = Tile::default();
        for (k, input) in tile.inputs.iter_mut().enumerate() {
            *input = std::array::from_fn(|j| ((k * 31 + j * 7) % 13) as f32 / 6.0 - 1.0);
        }
        tile.run();
        for j in 0..TILE {
            let masks = tile.outputs.map(|output| output[j]);
            assert!((masks.iter().sum::<f32>() - 1.0).abs() < 1e-5);
            assert!(masks.iter().all(|m| (0.0..=1.0).contains(m)));
        }
    }
}
