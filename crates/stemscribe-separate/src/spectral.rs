//! Mask passes over a whole signal without a network: the magnitude spectrogram of a stereo
//! signal, and the signals left by any number of per-bin masks applied to it. Shared by the
//! derived stems and the noise suppressor.

use rayon::prelude::*;
use realfft::num_complex::Complex32;
use stemscribe_audio::Audio;

use crate::stft::{magnitude, written_zeros, Stft};

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

/// Writes into `out[i]` the median of `value` over the `span` (odd) positions centred on `i`,
/// positions past either end clamped to the first or last of `out.len()`. Spans of 5 and 9
/// take each median by a network of exchanges ([`network_medians`]), longer ones slide a
/// sorted window; both pick the value a sort by `total_cmp` puts in the middle.
pub(crate) fn sliding_medians(
    span: usize,
    value: impl Fn(usize) -> f32,
    window: &mut SortedWindow,
    out: &mut [f32],
) {
    let len = out.len();
    if len == 0 {
        return;
    }
    let half = span / 2;
    let at = |i: isize| value(i.clamp(0, len as isize - 1) as usize);
    if has_median_network(span) {
        let padded = &mut window.padded;
        padded.clear();
        padded.extend((0..(len + span - 1) as isize).map(|i| at(i - half as isize)));
        network_medians(span, |k| &padded[k..k + len], out);
        return;
    }
    window.fill((-(half as isize)..=half as isize).map(at));
    for (i, median) in out.iter_mut().enumerate() {
        *median = window.median();
        window.replace(
            at(i as isize - half as isize),
            at(i as isize + half as isize + 1),
        );
    }
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

/// [`network_medians`] of `N` rows.
fn medians_by_network<const N: usize>(rows: [&[f32]; N], out: &mut [f32]) {
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

/// The values of a sliding window kept sorted (as [`order_key`]s, integers that compare as
/// `f32::total_cmp`), so each step costs two branch-free counts the compiler vectorises and a
/// short move, not a selection.
#[derive(Debug, Default, Clone)]
pub(crate) struct SortedWindow {
    keys: Vec<i32>,
    /// The clamped values a network median reads.
    padded: Vec<f32>,
}

impl SortedWindow {
    /// Holds exactly `values` (an odd count).
    pub fn fill(&mut self, values: impl Iterator<Item = f32>) {
        self.keys.clear();
        self.keys.extend(values.map(order_key));
        self.keys.sort_unstable();
    }

    /// The middle value.
    pub fn median(&self) -> f32 {
        from_order_key(self.keys[self.keys.len() / 2])
    }

    /// Takes out one value equal to `leaving` (which must be held) and puts in `entering`.
    pub fn replace(&mut self, leaving: f32, entering: f32) {
        let (leaving, entering) = (order_key(leaving), order_key(entering));
        // `leaving` is at `gone` (the first of its equals); `entering` belongs after the
        // `place` keys below it, one fewer once `leaving` is out if it was among them.
        let (gone, place) = self.keys.iter().fold((0_u32, 0_u32), |(gone, place), &k| {
            (
                gone + u32::from(k < leaving),
                place + u32::from(k < entering),
            )
        });
        let (gone, place) = (gone as usize, place as usize);
        let keys = &mut self.keys;
        if place > gone {
            keys.copy_within(gone + 1..place, gone);
            keys[place - 1] = entering;
        } else {
            keys.copy_within(place..gone, place + 1);
            keys[place] = entering;
        }
    }
}

/// An integer that orders as `f32::total_cmp` orders `value` (its sign bit kept, the other
/// bits of a negative value flipped), so the sliding window compares integers.
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

    #[test]
    fn sliding_medians_match_a_median_of_each_clamped_window() {
        let values: Vec<f32> = (0..200).map(|i| ((i * 7919 + 13) % 101) as f32).collect();
        for span in [1, 3, 5, 7, 9, 25, 61] {
            let mut out = vec![0.0; values.len()];
            sliding_medians(span, |i| values[i], &mut SortedWindow::default(), &mut out);
            for (i, &got) in out.iter().enumerate() {
                let mut window: Vec<f32> = (0..span)
                    .map(|k| values[(i + k).saturating_sub(span / 2).min(values.len() - 1)])
                    .collect();
                assert_eq!(got, median(&mut window), "span {span}, position {i}");
            }
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
            let mut out = vec![0.0; rows[0].len()];
            network_medians(rows.len(), |k| &rows[k][..], &mut out);
            for (j, got) in out.iter().enumerate() {
                let mut column: Vec<f32> = rows.iter().map(|row| row[j]).collect();
                assert_eq!(got.to_bits(), median(&mut column).to_bits(), "{column:?}");
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
