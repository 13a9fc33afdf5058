//! Shared inputs and checks for the benchmarks: song clips of any length built from the bundled
//! example, and the real-time target every end-to-end benchmark asserts.

use std::time::Instant;

use stemscribe_engine::{
    decode_file, encode_to_vec, Audio, DecodeOptions, OutputFormat, OutputSpec, WavSampleFormat,
};

/// Seconds of audio every separation benchmark processes.
pub const CLIP_SECS: usize = 30;

/// The bundled example song, looped to [`CLIP_SECS`] seconds, as 44.1 kHz stereo.
pub fn song_clip() -> Audio {
    song_of(CLIP_SECS)
}

/// [`song_clip`] as a 16-bit stereo WAV file in memory: the input of end-to-end benchmarks.
pub fn song_clip_wav() -> Vec<u8> {
    song_wav_of(CLIP_SECS)
}

/// The bundled example song, looped to `seconds`, as 44.1 kHz stereo.
pub fn song_of(seconds: usize) -> Audio {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/spleeter_audio_example.mp3");
    let song = decode_file(&path, &DecodeOptions::default()).expect("the bundled example decodes");
    let frames = seconds * song.sample_rate() as usize;
    let channels = song
        .channels()
        .iter()
        .map(|c| c.iter().copied().cycle().take(frames).collect())
        .collect();
    Audio::new(song.sample_rate(), channels).expect("same shape as the song")
}

/// [`song_of`] `seconds` as a 16-bit stereo WAV file in memory.
pub fn song_wav_of(seconds: usize) -> Vec<u8> {
    let spec = OutputSpec {
        sample_rate: 44_100,
        channels: 2,
        format: OutputFormat::Wav(WavSampleFormat::Pcm16),
    };
    encode_to_vec(song_of(seconds), &spec).expect("encodes").0
}

/// Times three more runs of `run` on `seconds` of audio and panics when the median is slower
/// than `target` times real time (after criterion has reported its measurement).
pub fn assert_real_time(task: &str, seconds: usize, target: f64, mut run: impl FnMut()) {
    let mut runs: Vec<f64> = (0..3)
        .map(|_| {
            let start = Instant::now();
            run();
            start.elapsed().as_secs_f64()
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    let factor = seconds as f64 / runs[1];
    println!(
        "{task} end to end, {seconds} s: {:.2} s, {factor:.1}x real time (target >= {target}x)",
        runs[1]
    );
    assert!(
        factor >= target,
        "{task} runs at {factor:.1}x real time, below the {target}x target"
    );
}
