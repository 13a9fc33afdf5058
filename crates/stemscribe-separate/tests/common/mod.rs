//! What the separation tests share: where `scripts/setup.sh` installed the models, and the
//! raw audio files the reference scripts write.

use std::path::{Path, PathBuf};

use stemscribe_audio::Audio;

/// The checkout's `models/installed/`.
pub fn installed() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/installed")
}

/// Interleaved little-endian f32 stereo at 44.1 kHz.
pub fn read_stereo(path: &Path) -> Audio {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let samples: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Audio::from_interleaved(44_100, 2, &samples).unwrap()
}
