//! The power spectrum of each frame of a pitch track: the Hann-windowed two hops
//! `[(t − 1)·hop, (t + 1)·hop)` of the signal (the span of [`crate::PitchTrack::loudness_db`]),
//! which the harmonic levels and the spectral envelope both read.

use std::sync::Arc;

use realfft::num_complex::Complex32;
use realfft::{RealFftPlanner, RealToComplex};

/// One FFT and its buffers, reused frame after frame.
pub(crate) struct FrameSpectra {
    hop: usize,
    fft: Arc<dyn RealToComplex<f32>>,
    window: Vec<f32>,
    frame: Vec<f32>,
    spectrum: Vec<Complex32>,
    scratch: Vec<Complex32>,
    power: Vec<f64>,
    bin_hz: f64,
}

impl FrameSpectra {
    /// Spectra of frames `hop` samples apart of a signal at `sample_rate`.
    pub(crate) fn new(sample_rate: u32, hop: usize) -> Self {
        let size = 2 * hop.max(1);
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(size);
        let window = (0..size)
            .map(|i| {
                let phase = std::f32::consts::TAU * i as f32 / size as f32;
                0.5 - 0.5 * phase.cos()
            })
            .collect();
        Self {
            hop,
            frame: fft.make_input_vec(),
            spectrum: fft.make_output_vec(),
            scratch: fft.make_scratch_vec(),
            power: vec![0.0; size / 2 + 1],
            bin_hz: f64::from(sample_rate) / size as f64,
            fft,
            window,
        }
    }

    /// Hz between bins.
    pub(crate) fn bin_hz(&self) -> f64 {
        self.bin_hz
    }

    /// The sum of the window (a full-scale sine's bin reads its square over 4).
    pub(crate) fn window_sum(&self) -> f64 {
        f64::from(self.window.iter().sum::<f32>())
    }

    /// The power of each bin of frame `t` of `signal` (zero outside it).
    pub(crate) fn power(&mut self, signal: &[f32], t: usize) -> &[f64] {
        let start = (t * self.hop) as isize - self.hop as isize;
        for (i, (x, w)) in self.frame.iter_mut().zip(&self.window).enumerate() {
            *x = usize::try_from(start + i as isize)
                .ok()
                .and_then(|at| signal.get(at))
                .map_or(0.0, |s| s * w);
        }
        match self
            .fft
            .process_with_scratch(&mut self.frame, &mut self.spectrum, &mut self.scratch)
        {
            Ok(()) => {
                for (p, c) in self.power.iter_mut().zip(&self.spectrum) {
                    *p = f64::from(c.norm_sqr());
                }
            }
            // Only a buffer of the wrong length fails, which these never are: read as silence.
            Err(_) => self.power.fill(0.0),
        }
        &self.power
    }
}

/// The strongest of the three bins of `power` nearest `hz`.
pub(crate) fn peak_near(power: &[f64], hz: f64, bin_hz: f64) -> f64 {
    let bin = (hz / bin_hz).round() as usize;
    power[bin.saturating_sub(1)..(bin + 2).min(power.len())]
        .iter()
        .fold(0.0f64, |a, &b| a.max(b))
}
