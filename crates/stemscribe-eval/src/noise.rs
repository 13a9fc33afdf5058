//! Test noise for the denoising evaluation: white and pink hiss and mains hum, deterministic
//! (seeded) and scaled to a signal-to-noise ratio against the signal it is added to.

use stemscribe_audio::{mono, rms, Audio, AudioError};

/// A kind of steady noise.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NoiseKind {
    /// Flat spectrum, independent on each side.
    White,
    /// -3 dB per octave (Paul Kellet's filter on white noise), independent on each side.
    Pink,
    /// Mains hum: the first ten harmonics of `mains_hz` at 1/k amplitude, the same on both
    /// sides.
    Hum {
        /// 50 or 60 Hz.
        mains_hz: f32,
    },
}

impl NoiseKind {
    /// A short name for tables.
    pub fn name(self) -> String {
        match self {
            Self::White => "white".into(),
            Self::Pink => "pink".into(),
            Self::Hum { mains_hz } => format!("hum {mains_hz} Hz"),
        }
    }
}

/// `signal` plus `kind` noise at `snr_db` (RMS over both sides), from generator `seed`.
pub fn add_noise(
    signal: &Audio,
    kind: NoiseKind,
    snr_db: f64,
    seed: u32,
) -> Result<Audio, AudioError> {
    let frames = signal.frames();
    let rate = signal.sample_rate() as f32;
    let mut state = seed.max(1);
    let mut white = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state as f32 / u32::MAX as f32 * 2.0 - 1.0
    };
    let noise: Vec<Vec<f32>> = (0..signal.num_channels())
        .map(|_| match kind {
            NoiseKind::White => (0..frames).map(|_| white()).collect(),
            NoiseKind::Pink => {
                let mut b = [0.0_f32; 7];
                (0..frames)
                    .map(|_| {
                        let w = white();
                        b[0] = 0.99886 * b[0] + w * 0.055_517_9;
                        b[1] = 0.99332 * b[1] + w * 0.075_075_9;
                        b[2] = 0.969 * b[2] + w * 0.153_852;
                        b[3] = 0.8665 * b[3] + w * 0.310_485_6;
                        b[4] = 0.55 * b[4] + w * 0.532_952_2;
                        b[5] = -0.7616 * b[5] - w * 0.016_898;
                        let out = b.iter().sum::<f32>() + w * 0.5362;
                        b[6] = w * 0.115_926;
                        out
                    })
                    .collect()
            }
            NoiseKind::Hum { mains_hz } => (0..frames)
                .map(|i| {
                    let t = i as f32 / rate;
                    (1..=10)
                        .map(|k| {
                            let k = k as f32;
                            (std::f32::consts::TAU * mains_hz * k * t + 0.7 * k).sin() / k
                        })
                        .sum()
                })
                .collect(),
        })
        .collect();
    let gain = level_gain(signal.channels(), &noise, snr_db).unwrap_or(0.0);
    add_scaled(signal, &noise, gain)
}

/// `signal` plus babble at `snr_db`: the `voices` (at the signal's rate) downmixed, each at the
/// same RMS, looped to the signal's length and summed, every voice entering at a different
/// point and the two sides starting apart, as a crowd or a room of talkers.
pub fn add_babble(signal: &Audio, voices: &[Audio], snr_db: f64) -> Result<Audio, AudioError> {
    let frames = signal.frames();
    let rate = signal.sample_rate() as usize;
    let voices: Vec<Vec<f32>> = voices
        .iter()
        .map(|voice| {
            let mono = mono(voice.channels());
            let level = rms(std::slice::from_ref(&mono)) as f32;
            mono.iter().map(|&s| s / level.max(1e-9)).collect()
        })
        .filter(|mono: &Vec<f32>| !mono.is_empty())
        .collect();
    let noise: Vec<Vec<f32>> = (0..signal.num_channels())
        .map(|side| {
            (0..frames)
                .map(|i| {
                    voices
                        .iter()
                        .enumerate()
                        .map(|(k, voice)| {
                            let start = rate * (k * 3 + side * 7) / 2;
                            voice[(i + start) % voice.len()]
                        })
                        .sum()
                })
                .collect()
        })
        .collect();
    let gain = level_gain(signal.channels(), &noise, snr_db).unwrap_or(0.0);
    add_scaled(signal, &noise, gain)
}

/// The gain that puts `other` `level_db` below `signal` in RMS; `None` when `other` is silent.
pub(crate) fn level_gain(signal: &[Vec<f32>], other: &[Vec<f32>], level_db: f64) -> Option<f32> {
    let other_rms = rms(other);
    (other_rms > 0.0).then(|| (rms(signal) / other_rms / 10f64.powf(level_db / 20.0)) as f32)
}

/// `signal` plus `gain` times `other` (one channel each, as long as the signal).
pub(crate) fn add_scaled(
    signal: &Audio,
    other: &[Vec<f32>],
    gain: f32,
) -> Result<Audio, AudioError> {
    let channels = signal
        .channels()
        .iter()
        .zip(other)
        .map(|(s, o)| s.iter().zip(o).map(|(&s, &o)| s + gain * o).collect())
        .collect();
    Audio::new(signal.sample_rate(), channels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::global_sdr;

    #[test]
    fn noise_is_added_at_the_requested_snr() {
        let tone: Vec<f32> = (0..44_100).map(|i| (i as f32 * 0.05).sin()).collect();
        let clean = Audio::new(44_100, vec![tone.clone(), tone]).unwrap();
        for kind in [
            NoiseKind::White,
            NoiseKind::Pink,
            NoiseKind::Hum { mains_hz: 50.0 },
        ] {
            let noisy = add_noise(&clean, kind, 10.0, 7).unwrap();
            let snr = global_sdr(&clean, &noisy);
            assert!((snr - 10.0).abs() < 0.01, "{}: {snr}", kind.name());
        }
    }

    #[test]
    fn babble_is_added_at_the_requested_snr_and_differs_between_sides() {
        let tone: Vec<f32> = (0..44_100).map(|i| (i as f32 * 0.05).sin()).collect();
        let clean = Audio::new(44_100, vec![tone.clone(), tone]).unwrap();
        let talker = |step: f32| {
            let voice = (0..30_000)
                .map(|i| (i as f32 * step).sin() * (i % 9_000) as f32)
                .collect();
            Audio::new(44_100, vec![voice]).unwrap()
        };
        let noisy = add_babble(&clean, &[talker(0.011), talker(0.023)], 10.0).unwrap();
        assert!((global_sdr(&clean, &noisy) - 10.0).abs() < 0.01);
        let sides: Vec<Vec<f32>> = noisy
            .channels()
            .iter()
            .zip(clean.channels())
            .map(|(n, c)| n.iter().zip(c).map(|(n, c)| n - c).collect())
            .collect();
        assert_ne!(sides[0], sides[1]);
    }
}
