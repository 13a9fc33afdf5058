//! Any conforming N-stem model card runs: a tiny random-weight 4-stem model, generated with
//! its numpy reference outputs by `scripts/test/make_tiny_separator.py` (run by `scripts/setup.sh`),
//! separates its test input as the reference does.

use stemscribe_audio::Audio;
use stemscribe_eval::global_sdr;
use stemscribe_runtime::{Runtime, RuntimeConfig};
use stemscribe_separate::{ModelCard, SeparationOptions, Separator};

mod common;

use common::installed;

fn read_stereo(name: &str) -> Audio {
    common::read_stereo(&installed().join("tiny-4stems").join(name))
}

#[test]
fn a_four_stem_card_separates_like_its_numpy_reference() {
    let dir = installed().join("tiny-4stems");
    let card = ModelCard::read(&dir.join("tiny-4stems.card.toml")).unwrap();
    assert_eq!(card.spec.stems, ["vocals", "drums", "bass", "other"]);
    let runtime = Runtime::new(&RuntimeConfig {
        models_dir: Some(dir),
        library: Some(installed().join("lib/libonnxruntime.so")),
        ..RuntimeConfig::default()
    })
    .unwrap();
    let separator = Separator::new(&runtime, card.spec.clone()).unwrap();
    // Its bin axis is fixed, so a run that needs only a low band still feeds every bin.
    assert_eq!(separator.bins_below(1_000.0), card.spec.bins);
    let input = read_stereo("input.f32");
    let mut windows = 0;
    let stems = separator
        .separate_with(&input, &SeparationOptions::spleeter_reference(), &mut |p| {
            windows = p.total;
        })
        .unwrap();
    assert!(windows > 1, "the input spans several network windows");
    assert_eq!(stems.len(), 4);
    for (stem, name) in stems.iter().zip(&card.spec.stems) {
        assert_eq!(stem.frames(), input.frames());
        let reference = read_stereo(&format!("{name}.f32"));
        let sdr = global_sdr(&reference, stem);
        println!("{name}: {sdr:.1} dB against the numpy reference");
        assert!(
            sdr > 50.0,
            "{name}: {sdr:.1} dB against the numpy reference"
        );
    }
}
