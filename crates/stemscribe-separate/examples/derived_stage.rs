//! Times the derived stems' stage alone: the noise search, the learned split and the mask
//! passes of `bs_4track_*`, on an accompaniment file (for instance the
//! `accompaniment.wav` of `stemscribe separate song.mp3 --stems DIR`), five times; prints the
//! fastest and the median run.
//!
//! `cargo run --release -p stemscribe-separate --example derived_stage -- accompaniment.wav`

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::Instant;

use stemscribe_separate::{derive_clean_stems_each, DerivedStemsOptions, NoiseOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path: PathBuf = std::env::args_os()
        .nth(1)
        .ok_or("usage: derived_stage ACCOMPANIMENT")?
        .into();
    let accompaniment = stemscribe_decode::decode_file(&path, &Default::default())?;
    let (noise, split) = (NoiseOptions::default(), DerivedStemsOptions::default());
    let mut seconds: Vec<f64> = (0..5)
        .map(|_| {
            let start = Instant::now();
            derive_clean_stems_each(&accompaniment, &noise, &split, &mut |stem| {
                std::hint::black_box(stem);
                ControlFlow::Continue(())
            });
            start.elapsed().as_secs_f64()
        })
        .collect();
    seconds.sort_by(f64::total_cmp);
    println!(
        "derived stems of {:.1} s: fastest {:.3} s, median {:.3} s (5 runs)",
        accompaniment.frames() as f64 / f64::from(accompaniment.sample_rate()),
        seconds[0],
        seconds[2]
    );
    Ok(())
}
