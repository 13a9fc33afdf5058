//! Mask passes over a whole signal without a network: the magnitude spectrogram of a stereo
//! signal, and the signals left by any number of per-bin masks applied to it. Shared by the
//! derived stems and the noise suppressor.

use rayon::prelude::*;
use realfft::num_complex::Complex32;
use stemscribe_audio::{written_zeros, Audio};

use crate::stft::{magnitude, Stft};

/// `frames × bins` magnitudes of the sides' mean (`(|L| + |R|) / 2`), frame-major.
pub(crate) struct Spectrogram {
    /// Frequency bins per frame.
    pub bins: usize,
    /// The values, frame after frame.
    pub values: Vec<f32>,
}

impl Spectrogram {
    /// Frames held.
    pub fn frames(&self) -> usize {
        self.values.len() / self.bins
    }
}

/// The mean-of-sides magnitude spectrogram of `audio`.
pub(crate) fn spectrogram(stft: &Stft, audio: &Audio) -> Spectrogram {
    let bins = stft.bins();
    let frames = stft.frames(audio.frames());
    let mut values = written_zeros(frames * bins);
    values.par_chunks_mut(bins).enumerate().for_each_init(
        || (vec![0.0; stft.fft_size()], vec![Complex32::default(); bins]),
        |(scratch, spectrum), (t, out)| {
            for channel in audio.channels() {
                stft.forward_frame(channel, t, scratch, spectrum);
                for (o, s) in out.iter_mut().zip(spectrum.iter()) {
                    *o += magnitude(*s) / audio.num_channels() as f32;
                }
            }
        },
    );
    Spectrogram { bins, values }
}

/// Applies `count` masks to `audio`: `masks(t, out)` fills `out[k]` (one gain per bin) for
/// frame `t`. Returns one signal per mask, each as long as `audio`, at its rate and layout.
pub(crate) fn apply_masks(
    stft: &Stft,
    audio: &Audio,
    count: usize,
    masks: impl Fn(usize, &mut [Vec<f32>]) + Sync,
) -> Vec<Audio> {
    let len = audio.frames();
    let frames = stft.frames(len);
    let bins = stft.bins();
    let mut per_channel: Vec<Vec<Vec<f32>>> = audio
        .channels()
        .par_iter()
        .map(|channel| {
            let mut outputs: Vec<Vec<f32>> = (0..count).map(|_| stft.accumulator(len)).collect();
            let mut gains = vec![vec![0.0; bins]; count];
            let mut scratch = vec![0.0; stft.fft_size()];
            let mut spectrum = vec![Complex32::default(); bins];
            let mut masked = vec![Complex32::default(); bins];
            for t in 0..frames {
                stft.forward_frame(channel, t, &mut scratch, &mut spectrum);
                masks(t, &mut gains);
                for (output, gain) in outputs.iter_mut().zip(&gains) {
                    for ((m, s), g) in masked.iter_mut().zip(&spectrum).zip(gain) {
                        *m = s * *g;
                    }
                    stft.inverse_frame_add(&mut masked, t, &mut scratch, output);
                }
            }
            outputs
                .into_iter()
                .map(|accumulator| stft.finish(accumulator, len))
                .collect()
        })
        .collect();
    (0..count)
        .map(|k| {
            let sides = per_channel
                .iter_mut()
                .map(|c| std::mem::take(&mut c[k]))
                .collect();
            Audio::new(audio.sample_rate(), sides).expect("same rate and layout as the input")
        })
        .collect()
}

/// The median of `values` (the upper one of an even count); 0 for none.
pub(crate) fn median(values: &mut [f32]) -> f32 {
    if values.is_empty() {
        return 0.0;
    }
    let middle = values.len() / 2;
    *values.select_nth_unstable_by(middle, f32::total_cmp).1
}

/// Sequences whose sliding medians [`lane_medians`] takes together, one per lane.
pub(crate) const LANES: usize = 64;

/// Sliding medians of `lanes` (at most [`LANES`]) sequences of `len` values at once: for each
/// position `i` in order, `emit(i, medians)` gets every lane's median of `value(lane, j)` over
/// the `span` (odd) positions `j` centred on `i`, positions past either end clamped to the
/// first or last. Each is the value a sort by `total_cmp` puts in the middle.
///
/// Each lane keeps its window in arrival order and tracks its median with the counts of the
/// window's values below and equal to it. One value leaving and one entering moves the median
/// by at most one place in the window's order, to the next value below or above it, found by
/// a pass over the window. Every step runs the same operations for every lane, without
/// branches, so they vectorise across lanes (neighbouring bins, or neighbouring frames).
pub(crate) fn lane_medians(
    span: usize,
    lanes: usize,
    len: usize,
    value: impl Fn(usize, usize) -> f32,
    emit: impl FnMut(usize, &[f32]),
) {
    assert!(
        lanes <= LANES && span % 2 == 1,
        "{lanes} lanes, span {span}"
    );
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        unsafe { lane_medians_avx2(span, lanes, len, value, emit) };
        return;
    }
    slide_lanes(span, lanes, len, value, emit);
}

/// [`slide_lanes`] compiled for AVX2, whose integer minimum and maximum the passes over the
/// windows use (the same results, several times faster than baseline x86-64).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn lane_medians_avx2(
    span: usize,
    lanes: usize,
    len: usize,
    value: impl Fn(usize, usize) -> f32,
    emit: impl FnMut(usize, &[f32]),
) {
    slide_lanes(span, lanes, len, value, emit);
}

/// The work of [`lane_medians`].
#[inline(always)]
fn slide_lanes(
    span: usize,
    lanes: usize,
    len: usize,
    value: impl Fn(usize, usize) -> f32,
    mut emit: impl FnMut(usize, &[f32]),
) {
    if len == 0 {
        return;
    }
    let half = span / 2;
    let at = |lane: usize, i: usize| order_key(value(lane, i.saturating_sub(half).min(len - 1)));
    // `window[k][lane]`: the lane's values as [`order_key`]s, the oldest at `oldest`; lanes
    // past `lanes` hold zeros.
    let mut window = vec![[0_i32; LANES]; span];
    for (k, row) in window.iter_mut().enumerate() {
        for (lane, key) in row[..lanes].iter_mut().enumerate() {
            *key = at(lane, k);
        }
    }
    let mut medians = [0_i32; LANES];
    let mut below = [0_i32; LANES];
    let mut equal = [0_i32; LANES];
    let mut column = Vec::with_capacity(span);
    for lane in 0..LANES {
        column.clear();
        column.extend(window.iter().map(|row| row[lane]));
        column.sort_unstable();
        let median = column[half];
        medians[lane] = median;
        below[lane] = column.iter().filter(|&&k| k < median).count() as i32;
        equal[lane] = column.iter().filter(|&&k| k == median).count() as i32;
    }
    let middle = half as i32;
    let mut oldest = 0;
    let mut values = [0.0_f32; LANES];
    let mut entering = [0_i32; LANES];
    for i in 0..len {
        for (value, &median) in values.iter_mut().zip(&medians) {
            *value = from_order_key(median);
        }
        emit(i, &values[..lanes]);
        if i + 1 == len {
            break;
        }
        for (lane, key) in entering[..lanes].iter_mut().enumerate() {
            *key = at(lane, i + span);
        }
        let slot = &mut window[oldest];
        for l in 0..LANES {
            let (leaving, entering, median) = (slot[l], entering[l], medians[l]);
            below[l] += i32::from(entering < median) - i32::from(leaving < median);
            equal[l] += i32::from(entering == median) - i32::from(leaving == median);
            slot[l] = entering;
        }
        oldest = if oldest + 1 == span { 0 } else { oldest + 1 };
        // The nearest values below and above each median.
        let mut lower = [i32::MIN; LANES];
        let mut upper = [i32::MAX; LANES];
        for row in &window {
            for l in 0..LANES {
                let (key, median) = (row[l], medians[l]);
                lower[l] = lower[l].max(if key < median { key } else { i32::MIN });
                upper[l] = upper[l].min(if key > median { key } else { i32::MAX });
            }
        }
        // The middle now lies below the median (more than half the window is below it),
        // above it (the values up to it are no more than half), or at it.
        let mut next = [0_i32; LANES];
        for l in 0..LANES {
            next[l] = if below[l] > middle {
                lower[l]
            } else if below[l] + equal[l] <= middle {
                upper[l]
            } else {
                medians[l]
            };
        }
        let mut count = [0_i32; LANES];
        for row in &window {
            for l in 0..LANES {
                count[l] += i32::from(row[l] == next[l]);
            }
        }
        for l in 0..LANES {
            below[l] = if below[l] > middle {
                below[l] - count[l]
            } else if below[l] + equal[l] <= middle {
                below[l] + equal[l]
            } else {
                below[l]
            };
            equal[l] = count[l];
            medians[l] = next[l];
        }
    }
}

/// Writes into `out[i]` the median of `row` over the `span` (odd) positions centred on `i`,
/// positions past either end clamped, for a `span` that [`has_median_network`]; `padded` is
/// scratch space.
pub(crate) fn network_sliding_medians(
    span: usize,
    row: &[f32],
    padded: &mut Vec<f32>,
    out: &mut [f32],
) {
    let len = row.len();
    if len == 0 {
        return;
    }
    let half = span / 2;
    padded.clear();
    padded.extend((0..len + span - 1).map(|i| row[i.saturating_sub(half).min(len - 1)]));
    network_medians(span, |k| &padded[k..k + len], out);
}

/// Whether [`network_medians`] takes medians of `span` values (5 or 9).
pub(crate) fn has_median_network(span: usize) -> bool {
    matches!(span, 5 | 9)
}

/// Writes into `out[j]` the median of `row(0)[j]`, ..., `row(span - 1)[j]` for a `span` that
/// [`has_median_network`] (rows at least as long as `out`): the value a sort by `total_cmp`
/// puts in the middle, found by a fixed network of min/max exchanges on [`order_key`]s, which
/// has no branches, so the loop vectorises across `j`.
pub(crate) fn network_medians<'a>(span: usize, row: impl Fn(usize) -> &'a [f32], out: &mut [f32]) {
    match span {
        5 => medians_by_network::<5>(std::array::from_fn(row), out),
        9 => medians_by_network::<9>(std::array::from_fn(row), out),
        _ => unreachable!("networks are for 5 or 9 values"),
    }
}

/// [`network_medians`] of `N` rows, compiled for AVX2 where the CPU has it (its integer
/// minimum and maximum; the same results).
fn medians_by_network<const N: usize>(rows: [&[f32]; N], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        unsafe { medians_by_network_avx2(rows, out) };
        return;
    }
    network_pass(rows, out);
}

/// [`network_pass`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn medians_by_network_avx2<const N: usize>(rows: [&[f32]; N], out: &mut [f32]) {
    network_pass(rows, out);
}

/// The work of [`medians_by_network`].
#[inline(always)]
fn network_pass<const N: usize>(rows: [&[f32]; N], out: &mut [f32]) {
    let rows = rows.map(|row| &row[..out.len()]);
    for (j, median) in out.iter_mut().enumerate() {
        let keys: [i32; N] = std::array::from_fn(|k| order_key(rows[k][j]));
        let middle = match *keys.as_slice() {
            [a, b, c, d, e] => median_of_5([a, b, c, d, e]),
            [a, b, c, d, e, f, g, h, i] => median_of_9([a, b, c, d, e, f, g, h, i]),
            _ => unreachable!("networks are for 5 or 9 values"),
        };
        *median = from_order_key(middle);
    }
}

/// Puts the lesser of `a` and `b` in `a`, the greater in `b`.
#[inline(always)]
fn exchange(a: &mut i32, b: &mut i32) {
    let low = (*a).min(*b);
    *b = (*a).max(*b);
    *a = low;
}

/// The median of five keys: Devillard's `opt_med5` network (after Paeth, Graphics Gems).
#[inline(always)]
fn median_of_5(keys: [i32; 5]) -> i32 {
    let [mut p0, mut p1, mut p2, mut p3, mut p4] = keys;
    exchange(&mut p0, &mut p1);
    exchange(&mut p3, &mut p4);
    exchange(&mut p0, &mut p3);
    exchange(&mut p1, &mut p4);
    exchange(&mut p1, &mut p2);
    exchange(&mut p2, &mut p3);
    exchange(&mut p1, &mut p2);
    p2
}

/// The median of nine keys: Devillard's `opt_med9` network (after Paeth, Graphics Gems). Its
/// exchanges are written out: a loop over them is not unrolled, and indexing the array then
/// costs ten times as much.
#[inline(always)]
fn median_of_9(keys: [i32; 9]) -> i32 {
    let [mut p0, mut p1, mut p2, mut p3, mut p4, mut p5, mut p6, mut p7, mut p8] = keys;
    exchange(&mut p1, &mut p2);
    exchange(&mut p4, &mut p5);
    exchange(&mut p7, &mut p8);
    exchange(&mut p0, &mut p1);
    exchange(&mut p3, &mut p4);
    exchange(&mut p6, &mut p7);
    exchange(&mut p1, &mut p2);
    exchange(&mut p4, &mut p5);
    exchange(&mut p7, &mut p8);
    exchange(&mut p0, &mut p3);
    exchange(&mut p5, &mut p8);
    exchange(&mut p4, &mut p7);
    exchange(&mut p3, &mut p6);
    exchange(&mut p1, &mut p4);
    exchange(&mut p2, &mut p5);
    exchange(&mut p4, &mut p7);
    exchange(&mut p4, &mut p2);
    exchange(&mut p6, &mut p4);
    exchange(&mut p4, &mut p2);
    p4
}

/// An integer that orders as `f32::total_cmp` orders `value` (its sign bit kept, the other
/// bits of a negative value flipped), so the sliding medians compare integers.
fn order_key(value: f32) -> i32 {
    let bits = value.to_bits() as i32;
    bits ^ ((((bits >> 31) as u32) >> 1) as i32)
}

/// The `f32` of an [`order_key`] (the flip undoes itself: the sign bit is unchanged).
fn from_order_key(key: i32) -> f32 {
    f32::from_bits(order_key(f32::from_bits(key as u32)) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_keys_order_as_total_cmp_and_come_back_exactly() {
        let values = [
            f32::NEG_INFINITY,
            -3.5,
            -1e-30,
            -0.0,
            0.0,
            1e-38,
            0.25,
            7.0,
            f32::MAX,
            f32::INFINITY,
        ];
        for a in values {
            assert_eq!(from_order_key(order_key(a)).to_bits(), a.to_bits());
            for b in values {
                assert_eq!(order_key(a).cmp(&order_key(b)), a.total_cmp(&b), "{a} {b}");
            }
        }
    }

    /// The median of each lane's clamped window, sorted out one by one.
    fn sorted_medians(span: usize, sequences: &[Vec<f32>]) -> Vec<Vec<f32>> {
        sequences
            .iter()
            .map(|values| {
                (0..values.len())
                    .map(|i| {
                        let mut window: Vec<f32> = (0..span)
                            .map(|k| values[(i + k).saturating_sub(span / 2).min(values.len() - 1)])
                            .collect();
                        median(&mut window)
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn lane_medians_are_the_middle_of_each_clamped_window() {
        let mut seed = 11_u32;
        let mut next = move || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            seed >> 8
        };
        // Few distinct values (ties in most windows), zeros of both signs and infinities, and
        // values all different; one lane, a few, and all of them.
        let mut few = || [0.0, -0.0, 1.0, 2.5, -3.0, f32::INFINITY, 7.0][next() as usize % 7];
        let tied: Vec<Vec<f32>> = (0..LANES)
            .map(|_| (0..300).map(|_| few()).collect())
            .collect();
        let distinct: Vec<Vec<f32>> = (0..LANES)
            .map(|l| {
                (0..300)
                    .map(|i| ((i * 7919 + l * 104_729) % 1_009) as f32 - 500.0)
                    .collect()
            })
            .collect();
        for sequences in [&tied, &distinct] {
            for lanes in [1, 3, LANES] {
                for span in [1, 3, 25, 31, 61, 301, 333] {
                    let sequences = &sequences[..lanes];
                    let len = sequences[0].len();
                    let expected = sorted_medians(span, sequences);
                    let bits = |v: &[f32]| v.iter().map(|m| m.to_bits()).collect::<Vec<_>>();
                    // As dispatched (AVX2 where the CPU has it), and compiled for any x86-64.
                    for dispatched in [true, false] {
                        let mut got = vec![vec![0.0; len]; lanes];
                        let value = |l: usize, i: usize| sequences[l][i];
                        let emit = |i: usize, medians: &[f32]| {
                            for (out, &m) in got.iter_mut().zip(medians) {
                                out[i] = m;
                            }
                        };
                        if dispatched {
                            lane_medians(span, lanes, len, value, emit);
                        } else {
                            slide_lanes(span, lanes, len, value, emit);
                        }
                        for (got, expected) in got.iter().zip(&expected) {
                            assert_eq!(bits(got), bits(expected), "span {span}, {lanes} lanes");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn network_sliding_medians_are_the_middle_of_each_clamped_window() {
        let values: Vec<f32> = (0..200).map(|i| ((i * 7919 + 13) % 101) as f32).collect();
        for span in [5, 9] {
            let mut out = vec![0.0; values.len()];
            network_sliding_medians(span, &values, &mut Vec::new(), &mut out);
            assert_eq!(
                out,
                sorted_medians(span, std::slice::from_ref(&values))[0],
                "span {span}"
            );
        }
    }

    #[test]
    fn network_medians_are_the_middle_of_a_sort() {
        let mut seed = 7_u32;
        let mut next = move || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            // Few distinct values, so ties are common; zeros of both signs and infinities too.
            [0.0, -0.0, 1.0, 2.5, -3.0, f32::INFINITY, 7.0][(seed >> 16) as usize % 7]
        };
        let check = |rows: Vec<Vec<f32>>| {
            // As dispatched (AVX2 where the CPU has it), and compiled for any x86-64.
            let mut dispatched = vec![0.0; rows[0].len()];
            network_medians(rows.len(), |k| &rows[k][..], &mut dispatched);
            let mut baseline = vec![0.0; rows[0].len()];
            match rows.len() {
                5 => network_pass::<5>(std::array::from_fn(|k| &rows[k][..]), &mut baseline),
                _ => network_pass::<9>(std::array::from_fn(|k| &rows[k][..]), &mut baseline),
            }
            for out in [dispatched, baseline] {
                for (j, got) in out.iter().enumerate() {
                    let mut column: Vec<f32> = rows.iter().map(|row| row[j]).collect();
                    assert_eq!(got.to_bits(), median(&mut column).to_bits(), "{column:?}");
                }
            }
        };
        for n in [5, 9] {
            check(
                (0..n)
                    .map(|_| (0..5_000).map(|_| next()).collect())
                    .collect(),
            );
        }
    }
}
