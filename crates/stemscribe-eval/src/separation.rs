//! Separation quality: global SDR as the music demixing challenges define it.

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
}
