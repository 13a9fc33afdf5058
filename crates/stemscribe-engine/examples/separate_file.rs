//! Separates a file into vocals and accompaniment with the library API.
//!
//! ```text
//! cargo run --release -p stemscribe-engine --example separate_file -- song.mp3 out_dir
//! ```

use std::error::Error;
use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;

use stemscribe_engine::{
    decode_file, encode, DecodeOptions, Engine, EngineConfig, OutputFormat, OutputSpec,
    SeparationModel, WavSampleFormat,
};

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args_os().skip(1);
    let (Some(input), Some(out_dir)) = (args.next(), args.next()) else {
        return Err("usage: separate_file INPUT OUT_DIR".into());
    };
    let out_dir = PathBuf::from(out_dir);
    std::fs::create_dir_all(&out_dir)?;

    // Load once; an Engine can then serve any number of songs, from any thread.
    let engine = Engine::new(&EngineConfig::default())?;
    let song = decode_file(input.as_ref(), &DecodeOptions::default())?;
    let stems = engine.separate_all(&song, SeparationModel::TwoTrackVocal, &mut |p| {
        eprintln!("window {}/{}", p.done, p.total);
    })?;

    let spec = OutputSpec {
        sample_rate: 44_100,
        channels: 2,
        format: OutputFormat::Wav(WavSampleFormat::Pcm16),
    };
    for stem in stems {
        let path = out_dir.join(format!("{}.wav", stem.name()));
        let report = encode(stem.audio, &spec, BufWriter::new(File::create(&path)?))?;
        println!("{}: {} frames", path.display(), report.frames);
    }
    Ok(())
}
