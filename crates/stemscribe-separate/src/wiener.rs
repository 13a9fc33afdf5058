//! The multichannel Wiener filter for a stereo mixture: one expectation-maximisation step
//! as in Nugraha, Liutkus and Vincent (2016) and `norbert.wiener(iterations=1)`.
//!
//! Starting from estimates `y_j = √m_j ⊙ x` (so that the densities' ratios are the
//! network's masks), each source gets a power spectral density
//! `v_j(t, f)` (mean over the sides of `|y_j|²`) and a 2×2 spatial covariance `R_j(f)`
//! (`Σ_t y_j y_jᴴ / Σ_t v_j`); the refined estimate is `v_j R_j (Σ_k v_k R_k)⁻¹ x`, which
//! uses the inter-channel phase the plain masks ignore. Covariances are estimated over the
//! frames given (one network window), which keeps memory bounded.

use rayon::prelude::*;
use realfft::num_complex::{Complex32, Complex64};

/// Diagonal loading of the mixture covariance, relative to its mean diagonal.
const LOADING: f64 = 1e-6;

/// Frequency bins per parallel task.
const BIN_BLOCK: usize = 16;

/// A 2×2 complex matrix, row-major.
type Matrix = [Complex64; 4];

/// Refines masked estimates of every stem.
///
/// - `mixture`: `[side][frame][bin]`, `row_frames` frames per side;
/// - `masks`: `[stem][side][frame][bin]`, `frames` frames, statistics use all of them;
/// - returns `[stem][side][frame][bin]` for the first `count` frames.
pub(crate) fn refine(
    mixture: &[Complex32],
    row_frames: usize,
    masks: &[f32],
    frames: usize,
    count: usize,
    bins: usize,
) -> Vec<Complex32> {
    let stems = masks.len() / (2 * frames * bins);
    // Neighbouring bins share cache lines, so each task takes a block of them.
    let per_bin: Vec<Vec<Complex32>> = (0..bins.div_ceil(BIN_BLOCK))
        .into_par_iter()
        .map_init(
            || BinScratch::new(stems, frames),
            |scratch, block| {
                (block * BIN_BLOCK..((block + 1) * BIN_BLOCK).min(bins))
                    .map(|bin| {
                        scratch.gather(mixture, row_frames, masks, frames, bins, bin);
                        scratch.filter(count)
                    })
                    .collect::<Vec<_>>()
            },
        )
        .flatten_iter()
        .collect();
    let mut filtered = vec![Complex32::default(); stems * 2 * count * bins];
    for (bin, values) in per_bin.iter().enumerate() {
        for (row, value) in values.iter().enumerate() {
            filtered[row * bins + bin] = *value;
        }
    }
    filtered
}

/// One frequency bin's working set, reused across bins by a worker.
struct BinScratch {
    stems: usize,
    frames: usize,
    /// The mixture, `[frame][side]`.
    mixture: Vec<[Complex64; 2]>,
    /// Initial estimates, `[stem][frame][side]`.
    estimates: Vec<[Complex64; 2]>,
    /// Power spectral densities, `[stem][frame]`.
    powers: Vec<f64>,
}

impl BinScratch {
    fn new(stems: usize, frames: usize) -> Self {
        Self {
            stems,
            frames,
            mixture: vec![[Complex64::default(); 2]; frames],
            estimates: vec![[Complex64::default(); 2]; stems * frames],
            powers: vec![0.0; stems * frames],
        }
    }

    /// Loads bin `bin`: the mixture, the estimates `√m ⊙ x` and their densities. The square
    /// root makes the densities' ratios equal the masks, so the filter keeps the masks'
    /// spectral balance and adds the spatial model on top.
    fn gather(
        &mut self,
        mixture: &[Complex32],
        row_frames: usize,
        masks: &[f32],
        frames: usize,
        bins: usize,
        bin: usize,
    ) {
        for (frame, x) in self.mixture.iter_mut().enumerate() {
            for (side, value) in x.iter_mut().enumerate() {
                let v = mixture[(side * row_frames + frame) * bins + bin];
                *value = Complex64::new(f64::from(v.re), f64::from(v.im));
            }
        }
        for stem in 0..self.stems {
            for frame in 0..self.frames {
                let index = stem * self.frames + frame;
                let y = &mut self.estimates[index];
                for (side, value) in y.iter_mut().enumerate() {
                    let m = masks[((stem * 2 + side) * frames + frame) * bins + bin];
                    *value = self.mixture[frame][side] * f64::from(m).sqrt();
                }
                self.powers[index] = (y[0].norm_sqr() + y[1].norm_sqr()) / 2.0;
            }
        }
    }

    /// Filters the first `count` frames; returns `[stem][side][frame]`.
    fn filter(&self, count: usize) -> Vec<Complex32> {
        let covariances: Vec<Matrix> = (0..self.stems)
            .map(|stem| {
                let rows = stem * self.frames..(stem + 1) * self.frames;
                let mut r = [Complex64::default(); 4];
                for y in &self.estimates[rows.clone()] {
                    r[0] += y[0] * y[0].conj();
                    r[1] += y[0] * y[1].conj();
                    r[2] += y[1] * y[0].conj();
                    r[3] += y[1] * y[1].conj();
                }
                let weight: f64 = self.powers[rows].iter().sum();
                let scale = if weight > 0.0 { 1.0 / weight } else { 0.0 };
                r.map(|c| c * scale)
            })
            .collect();
        let mut out = vec![Complex32::default(); self.stems * 2 * count];
        for frame in 0..count {
            let mut c = [Complex64::default(); 4];
            for (stem, r) in covariances.iter().enumerate() {
                let power = self.powers[stem * self.frames + frame];
                for (c, r) in c.iter_mut().zip(r) {
                    *c += r * power;
                }
            }
            let load = LOADING * (c[0].re + c[3].re) / 2.0 + f64::MIN_POSITIVE;
            c[0] += load;
            c[3] += load;
            let Some(inverse) = invert(&c) else { continue };
            let x = self.mixture[frame];
            for (stem, r) in covariances.iter().enumerate() {
                let power = self.powers[stem * self.frames + frame];
                let gain = multiply(r, &inverse).map(|g| g * power);
                let y = [
                    gain[0] * x[0] + gain[1] * x[1],
                    gain[2] * x[0] + gain[3] * x[1],
                ];
                for (side, value) in y.iter().enumerate() {
                    out[(stem * 2 + side) * count + frame] =
                        Complex32::new(value.re as f32, value.im as f32);
                }
            }
        }
        out
    }
}

fn multiply(a: &Matrix, b: &Matrix) -> Matrix {
    [
        a[0] * b[0] + a[1] * b[2],
        a[0] * b[1] + a[1] * b[3],
        a[2] * b[0] + a[3] * b[2],
        a[2] * b[1] + a[3] * b[3],
    ]
}

fn invert(m: &Matrix) -> Option<Matrix> {
    let det = m[0] * m[3] - m[1] * m[2];
    if det.norm_sqr() == 0.0 || !det.is_finite() {
        return None;
    }
    let inv = 1.0 / det;
    Some([m[3] * inv, -m[1] * inv, -m[2] * inv, m[0] * inv])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_sources_that_do_not_overlap() {
        // Stem 0 owns bin 0, stem 1 owns bin 1, with binary masks: the filter must keep
        // each source whole and give the other nothing.
        let (frames, bins) = (4, 2);
        let mixture: Vec<Complex32> = (0..2 * frames * bins)
            .map(|i| Complex32::new(1.0 + i as f32, 0.5 - i as f32))
            .collect();
        let mut masks = vec![0.0f32; 2 * 2 * frames * bins];
        for side in 0..2 {
            for frame in 0..frames {
                masks[(side * frames + frame) * bins] = 1.0;
                masks[((2 + side) * frames + frame) * bins + 1] = 1.0;
            }
        }
        let out = refine(&mixture, frames, &masks, frames, frames, bins);
        for side in 0..2 {
            for frame in 0..frames {
                let x = |bin: usize| mixture[(side * frames + frame) * bins + bin];
                let y = |stem: usize, bin: usize| {
                    out[((stem * 2 + side) * frames + frame) * bins + bin]
                };
                assert!((y(0, 0) - x(0)).norm() < 1e-3);
                assert!((y(1, 1) - x(1)).norm() < 1e-3);
                assert!(y(0, 1).norm() < 1e-3 && y(1, 0).norm() < 1e-3);
            }
        }
    }
}
