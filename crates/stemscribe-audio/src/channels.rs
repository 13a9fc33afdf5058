//! Channel-layout conversion.

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

fn mix(channels: &[Vec<f32>], gains: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0f32; channels[0].len()];
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
