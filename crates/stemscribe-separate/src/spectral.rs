//! Mask passes over a whole signal without a network: the magnitude spectrogram of a stereo
//! signal, and the signals left by any number of per-bin masks applied to it. Shared by the
//! derived stems and the noise suppressor.

use rayon::prelude::*;
use realfft::num_complex::Complex32;
use stemscribe_audio::Audio;

use crate::stft::Stft;

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
    let mut values = vec![0.0; frames * bins];
    values.par_chunks_mut(bins).enumerate().for_each_init(
        || (vec![0.0; stft.fft_size()], vec![Complex32::default(); bins]),
        |(scratch, spectrum), (t, out)| {
            for channel in audio.channels() {
                stft.forward_frame(channel, t, scratch, spectrum);
                for (o, s) in out.iter_mut().zip(spectrum.iter()) {
                    *o += s.norm() / audio.num_channels() as f32;
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
            let mut outputs = vec![vec![0.0; stft.padded_len(len)]; count];
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
