//! Float samples to interleaved 16-bit integers, for 16-bit WAV and the lossy encoders.

use stemscribe_audio::Audio;

/// Converts samples to 16 bits and counts those beyond full scale.
#[derive(Debug, Default)]
pub(crate) struct ToI16 {
    /// Samples clipped so far.
    pub clipped: u64,
}

impl ToI16 {
    /// Full scale maps to ±32767; beyond it clips (and is counted); NaN becomes silence.
    pub fn convert(&mut self, sample: f32) -> i16 {
        if sample.abs() > 1.0 {
            self.clipped += 1;
        }
        round_half_away(sample.clamp(-1.0, 1.0) * 32_767.0)
    }
}

/// `y.round() as i16` for `y` within ±32767 (NaN gives 0), without a call into libm: the
/// truncation's remainder `y - trunc(y)` is exact, so comparing it with ±0.5 rounds halves
/// away from zero exactly as `round` does.
#[inline(always)]
fn round_half_away(y: f32) -> i16 {
    // Saturating conversion: NaN becomes 0.
    let truncated = y as i32;
    let remainder = y - truncated as f32;
    (truncated + i32::from(remainder >= 0.5) - i32::from(remainder <= -0.5)) as i16
}

/// The samples of `audio`, frame by frame, channels interleaved.
pub(crate) fn interleaved(audio: &Audio) -> impl Iterator<Item = f32> + '_ {
    (0..audio.frames()).flat_map(move |i| audio.channels().iter().map(move |c| c[i]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_is_that_of_round_at_every_half_and_integer_and_around_them() {
        // Each integer and each half to 32767, and the four floats on either side of each.
        for k in 0..=65_534u32 {
            let centre = k as f32 / 2.0;
            let bits = centre.to_bits();
            for bits in bits.saturating_sub(4)..=bits + 4 {
                let y = f32::from_bits(bits);
                if y > 32_767.0 {
                    continue;
                }
                for v in [y, -y] {
                    assert_eq!(round_half_away(v), v.round() as i16, "{v}");
                }
            }
        }
        assert_eq!(round_half_away(f32::NAN), 0);
        let mut to_i16 = ToI16::default();
        assert_eq!(to_i16.convert(f32::NAN), 0);
        assert_eq!(to_i16.convert(2.0), 32_767);
        assert_eq!(to_i16.convert(-1.5), -32_767);
        assert_eq!(to_i16.clipped, 2);
    }
}
