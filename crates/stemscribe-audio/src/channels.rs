//! Channel-layout conversion.

use rayon::prelude::*;
use std::f32::consts::FRAC_1_SQRT_2;

/// Converts planar channels to `num_channels` channels.
///
/// - to mono: the mean of all input channels;
/// - mono to N: the channel is copied N times;
/// - more than two channels to stereo: a downmix assuming the WAVE/SMPTE order
///   (FL, FR, FC, LFE, then surround pairs left/right): FL and FR at unity, FC at −3 dB to
///   both sides, LFE dropped, each further channel at −3 dB to its side (even index left,
///   odd right). Each side is normalised by the sum of its gains, so the mix cannot exceed
///   the loudest input;
/// - otherwise: the first `num_channels` channels are kept.
pub fn remix(channels: Vec<Vec<f32>>, num_channels: usize) -> Vec<Vec<f32>> {
    let inputs = channels.len();
    match (inputs, num_channels) {
        (_, 1) => vec![mono(&channels)],
        (1, n) => vec![channels[0].clone(); n],
        (i, 2) if i > 2 => {
            let (left, right) = stereo_gains(i);
            vec![mix(&channels, &left), mix(&channels, &right)]
        }
        _ => channels.into_iter().take(num_channels).collect(),
    }
}

fn stereo_gains(inputs: usize) -> (Vec<f32>, Vec<f32>) {
    let mut left = vec![0.0; inputs];
    let mut right = vec![0.0; inputs];
    for i in 0..inputs {
        match i {
            0 => left[i] = 1.0,
            1 => right[i] = 1.0,
            2 => {
                left[i] = FRAC_1_SQRT_2;
                right[i] = FRAC_1_SQRT_2;
            }
            3 => {}
            i if i % 2 == 0 => left[i] = FRAC_1_SQRT_2,
            _ => right[i] = FRAC_1_SQRT_2,
        }
    }
    for gains in [&mut left, &mut right] {
        let total: f32 = gains.iter().sum();
        gains.iter_mut().for_each(|g| *g /= total);
    }
    (left, right)
}

/// `len` zeros written into fresh memory, for buffers that are added into (`+=`).
///
/// `vec![0.0; len]` takes memory the kernel has not yet mapped: the first read of each page
/// maps the shared zero page and the first write then copies it, a second fault that also
/// flushes the page from every core's TLB. Writing the zeros first maps each page once.
pub fn written_zeros(len: usize) -> Vec<f32> {
    let mut zeros = Vec::with_capacity(len);
    zeros.resize(len, 0.0);
    zeros
}

/// The mean of `channels` (at least one, all as long as the first).
pub fn mono(channels: &[Vec<f32>]) -> Vec<f32> {
    mix(channels, &vec![1.0 / channels.len() as f32; channels.len()])
}

/// Root mean square over every sample of every channel (0 for none).
pub fn rms(channels: &[Vec<f32>]) -> f64 {
    let count: usize = channels.iter().map(Vec::len).sum();
    let energy: f64 = channels
        .iter()
        .flatten()
        .map(|&s| f64::from(s).powi(2))
        .sum();
    (energy / count.max(1) as f64).sqrt()
}

/// Share of blocks at or below the level [`loud_level_db`] reports.
const LOUD_QUANTILE: f64 = 0.9;

/// The level of the loud part of `channels`, in dB relative to full scale: blocks of
/// `block_frames` frames (the last one possibly shorter) each get the mean power of their
/// samples over every channel, and the block at the 90th percentile of those powers gives
/// the level. Silence between phrases and a few loud peaks hardly move it, and a gain `g`
/// applied to the signal moves it by exactly `20 log10 g`. `None` when every block is
/// digital silence, or there are no samples.
pub fn loud_level_db(channels: &[Vec<f32>], block_frames: usize) -> Option<f64> {
    let frames = channels.iter().map(Vec::len).max().unwrap_or(0);
    let block_frames = block_frames.max(1);
    // Blocks in parallel, each summed in order: the same powers as one after the other.
    let mut powers: Vec<f64> = (0..frames.div_ceil(block_frames))
        .into_par_iter()
        .map(|b| {
            let range = b * block_frames..((b + 1) * block_frames).min(frames);
            let (energy, count) = channels.iter().filter_map(|c| c.get(range.clone())).fold(
                (0.0f64, 0usize),
                |(e, n), part| {
                    let sum: f64 = part.iter().map(|&s| f64::from(s).powi(2)).sum();
                    (e + sum, n + part.len())
                },
            );
            energy / count.max(1) as f64
        })
        .collect();
    powers.sort_by(f64::total_cmp);
    let last = powers.len().checked_sub(1)?;
    let power = powers[(last as f64 * LOUD_QUANTILE).round() as usize];
    (power > 0.0 && power.is_finite()).then(|| 10.0 * power.log10())
}

fn mix(channels: &[Vec<f32>], gains: &[f32]) -> Vec<f32> {
    let mut out = written_zeros(channels[0].len());
    for (channel, &gain) in channels.iter().zip(gains) {
        if gain != 0.0 {
            out.iter_mut()
                .zip(channel)
                .for_each(|(o, s)| *o += gain * s);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn loud_level_reads_the_loud_part_and_follows_gain_exactly() {
        // 9 s of a full-scale sine's power (-3 dB) and 1 s of silence, in 100 ms blocks:
        // the silence and a single full-scale click do not move the level.
        let rate = 1000;
        let mut signal: Vec<f32> = (0..9 * rate).map(|i| (i as f32 * 0.37).sin()).collect();
        signal.extend(vec![0.0; rate]);
        signal[9 * rate + 10] = 1.0;
        let level = loud_level_db(&[signal.clone(), signal.clone()], rate / 10);
        let level = level.expect("not silent");
        assert!((level + 3.01).abs() < 0.1, "{level}");
        let quiet: Vec<f32> = signal.iter().map(|s| s * 0.01).collect();
        let quieter = loud_level_db(&[quiet], rate / 10).expect("not silent");
        assert!((quieter - (level - 40.0)).abs() < 1e-4, "{quieter}");
    }

    #[test]
    fn loud_level_of_silence_is_none() {
        assert_eq!(loud_level_db(&[vec![0.0; 500]], 100), None);
        assert_eq!(loud_level_db(&[], 100), None);
        assert_eq!(loud_level_db(&[Vec::new()], 100), None);
    }

    #[test]
    fn mono_is_mean_and_duplicates_back() {
        let mono = remix(vec![vec![1.0, 0.0], vec![0.0, -1.0]], 1);
        assert_eq!(mono, vec![vec![0.5, -0.5]]);
        assert_eq!(remix(mono, 2), vec![vec![0.5, -0.5], vec![0.5, -0.5]]);
    }

    #[test]
    fn surround_downmix_is_bounded() {
        let six = vec![vec![1.0f32; 4]; 6];
        let stereo = remix(six, 2);
        assert_eq!(stereo.len(), 2);
        for side in stereo {
            assert!(side.iter().all(|s| (s - 1.0).abs() < 1e-6));
        }
    }
}
