//! Shared inputs for the benchmarks: a 30 s song clip built from the bundled example.

use stemscribe_engine::{decode_file, Audio, DecodeOptions};

/// Seconds of audio every separation benchmark processes.
pub const CLIP_SECS: usize = 30;

/// The bundled example song, looped to [`CLIP_SECS`] seconds, as 44.1 kHz stereo.
pub fn song_clip() -> Audio {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/spleeter_audio_example.mp3");
    let song = decode_file(&path, &DecodeOptions::default()).expect("the bundled example decodes");
    let frames = CLIP_SECS * song.sample_rate() as usize;
    let channels = song
        .channels()
        .iter()
        .map(|c| c.iter().copied().cycle().take(frames).collect())
        .collect();
    Audio::new(song.sample_rate(), channels).expect("same shape as the song")
}
