//! Separation quality: global SDR as the music demixing challenges define it, and how much
//! added noise passes a separator.

use stemscribe_audio::Audio;

/// Global signal-to-distortion ratio in dB of `estimate` against `reference`:
/// `10 log10(Σ s² / Σ (s − ŝ)²)` over every sample of every channel.
///
/// Both buffers are compared over the frames and channels they share. A perfect estimate
/// gives `f64::INFINITY`; a silent reference gives `f64::NEG_INFINITY` unless the estimate
/// is silent too.
pub fn global_sdr(reference: &Audio, estimate: &Audio) -> f64 {
    let mut signal = 0.0f64;
    let mut error = 0.0f64;
    for (s, s_hat) in reference.channels().iter().zip(estimate.channels()) {
        for (&a, &b) in s.iter().zip(s_hat) {
            let (a, b) = (f64::from(a), f64::from(b));
            signal += a * a;
            error += (a - b) * (a - b);
        }
    }
    10.0 * (signal / error).log10()
}

/// How much of the noise added to `clean_mix` (giving `noisy_mix`) reaches a separator's
/// output: `10 log10(Σ (noisy_out − clean_out)² / Σ (noisy_mix − clean_mix)²)` in dB, over the
/// frames and channels all four share.
pub fn noise_passed_db(
    noisy_mix: &Audio,
    clean_mix: &Audio,
    noisy_out: &Audio,
    clean_out: &Audio,
) -> f64 {
    let energy = |a: &Audio, b: &Audio| -> f64 {
        a.channels()
            .iter()
            .zip(b.channels())
            .flat_map(|(x, y)| x.iter().zip(y).map(|(&x, &y)| f64::from(x - y).powi(2)))
            .sum()
    };
    10.0 * (energy(noisy_out, clean_out) / energy(noisy_mix, clean_mix).max(1e-20))
        .max(1e-20)
        .log10()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_ratio() {
        let reference = Audio::new(44_100, vec![vec![1.0, -1.0], vec![1.0, 1.0]]).unwrap();
        let estimate = Audio::new(44_100, vec![vec![0.9, -1.1], vec![1.1, 0.9]]).unwrap();
        // Σs² = 4, Σe² = 4 × 0.01 → 100 → 20 dB.
        assert!((global_sdr(&reference, &estimate) - 20.0).abs() < 1e-5);
        assert_eq!(global_sdr(&reference, &reference), f64::INFINITY);
    }

    #[test]
    fn noise_passed_is_the_output_change_against_the_noise() {
        let clean = Audio::new(44_100, vec![vec![0.5, 0.5]]).unwrap();
        let noisy = Audio::new(44_100, vec![vec![0.6, 0.4]]).unwrap();
        // The output moves by a tenth of the noise: -20 dB.
        let clean_out = Audio::new(44_100, vec![vec![0.2, 0.2]]).unwrap();
        let noisy_out = Audio::new(44_100, vec![vec![0.21, 0.19]]).unwrap();
        let passed = noise_passed_db(&noisy, &clean, &noisy_out, &clean_out);
        assert!((passed + 20.0).abs() < 1e-3, "{passed}");
    }
}
