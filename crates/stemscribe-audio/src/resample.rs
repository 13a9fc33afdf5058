//! Sample-rate conversion with rubato.
//!
//! Rate pairs whose reduced ratio is small use rubato's synchronous FFT resampler; other
//! pairs (e.g. 44 101 → 44 100 Hz) use its asynchronous sinc resampler at a fixed ratio.
//! Either way the output has exactly `round(frames * rate_out / rate_in)` frames, aligned
//! with the input (rubato's delay is trimmed).

use rubato::audioadapter_buffers::direct::SequentialSliceOfVecs;
use rubato::{
    Async, Fft, FixedAsync, FixedSync, Resampler, SincInterpolationParameters,
    SincInterpolationType, WindowFunction,
};

use crate::AudioError;

/// The largest reduced input or output factor for which the FFT resampler is used.
const MAX_FFT_FACTOR: u32 = 4_096;
/// Frames handed to the resampler per call.
const CHUNK: usize = 1_024;

/// Resamples every channel from `rate_in` to `rate_out`.
pub(crate) fn resample(
    channels: &[Vec<f32>],
    rate_in: u32,
    rate_out: u32,
) -> Result<Vec<Vec<f32>>, AudioError> {
    let num_channels = channels.len();
    let frames_in = channels[0].len();
    let frames_out =
        ((frames_in as u128 * rate_out as u128 + rate_in as u128 / 2) / rate_in as u128) as usize;
    if frames_in == 0 {
        return Ok(vec![Vec::new(); num_channels]);
    }
    let divisor = gcd(rate_in, rate_out);
    let mut resampler: Box<dyn Resampler<f32>> =
        if rate_in / divisor <= MAX_FFT_FACTOR && rate_out / divisor <= MAX_FFT_FACTOR {
            Box::new(
                Fft::<f32>::new(
                    rate_in as usize,
                    rate_out as usize,
                    CHUNK,
                    num_channels,
                    FixedSync::Input,
                )
                .map_err(|e| AudioError::Resample(e.to_string()))?,
            )
        } else {
            let parameters = SincInterpolationParameters {
                sinc_len: 256,
                f_cutoff: None,
                oversampling_factor: 256,
                interpolation: SincInterpolationType::Cubic,
                window: WindowFunction::BlackmanHarris2,
            };
            Box::new(
                Async::<f32>::new_sinc(
                    f64::from(rate_out) / f64::from(rate_in),
                    1.0,
                    &parameters,
                    CHUNK,
                    num_channels,
                    FixedAsync::Input,
                )
                .map_err(|e| AudioError::Resample(e.to_string()))?,
            )
        };
    let input = SequentialSliceOfVecs::new(channels, num_channels, frames_in)
        .map_err(|e| AudioError::Resample(e.to_string()))?;
    let capacity = resampler.process_all_needed_output_len(frames_in);
    let mut output = vec![vec![0.0f32; capacity]; num_channels];
    let mut output_adapter = SequentialSliceOfVecs::new_mut(&mut output, num_channels, capacity)
        .map_err(|e| AudioError::Resample(e.to_string()))?;
    resampler
        .process_all_into_buffer(&input, &mut output_adapter, frames_in, None)
        .map_err(|e| AudioError::Resample(e.to_string()))?;
    for channel in &mut output {
        channel.resize(frames_out, 0.0);
    }
    Ok(output)
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}
