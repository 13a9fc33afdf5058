//! `stemscribe models`: the models this installation serves and the cards that describe them.

use anyhow::Result;
use stemscribe_engine::{
    installed_cards, ModelCard, Runtime, RuntimeConfig, SeparationModel, FOUR_STEMS,
};

/// Prints every API model with the card that serves it, then every installed card.
pub fn run() -> Result<()> {
    let runtime = Runtime::new(&RuntimeConfig::default())?;
    let dir = runtime.models_dir();
    let cards = installed_cards(dir);
    let broken = cards.iter().any(Result::is_err);
    let four_stem = cards
        .iter()
        .flatten()
        .find(|card| card.has_stems(&FOUR_STEMS));
    let spleeter = ModelCard::spleeter_2stems();
    println!("models directory: {}", dir.display());
    println!();
    for model in SeparationModel::ALL {
        let served_by = match (&four_stem, model) {
            (_, SeparationModel::TwoTrackVocal | SeparationModel::TwoTrackAcc) => {
                format!("{} (bundled card)", spleeter.id)
            }
            (Some(card), SeparationModel::FourTrackVocal) => {
                format!("{} vocals (installed card)", card.id)
            }
            (Some(card), SeparationModel::FourTrackAcc) => format!(
                "noise suppression + {} drums + bass + other (installed card)",
                card.id
            ),
            (None, SeparationModel::FourTrackVocal) => {
                format!("{} vocals (no four-stem card installed)", spleeter.id)
            }
            (None, SeparationModel::FourTrackAcc) => format!(
                "noise suppression + {} + derived drums/bass/other (no four-stem card installed)",
                spleeter.id
            ),
        };
        println!("{:<16} {served_by}", model.name());
    }
    println!("{:<16} swift-f0 (MIDI namespace)", "MIDI");
    println!();
    print_card(&spleeter, runtime.model_path(&spleeter.spec.file).is_ok());
    for card in &cards {
        match card {
            Ok(card) => print_card(card, runtime.model_path(&card.spec.file).is_ok()),
            Err(error) => println!("invalid card: {error}"),
        }
    }
    if cards.is_empty() {
        println!("no installed cards (*.card.toml) in {}", dir.display());
    }
    if broken {
        println!("the engine will not load until the invalid cards are fixed or removed");
    }
    Ok(())
}

fn print_card(card: &ModelCard, installed: bool) {
    let spec = &card.spec;
    println!("card {}: {}", card.id, spec.name);
    println!(
        "  file {} ({}), stems {}",
        spec.file,
        if installed { "installed" } else { "MISSING" },
        spec.stems.join(", ")
    );
    println!(
        "  STFT {}/{}, {} bins × {} frames into `{}`, masks: ratio of squares",
        spec.fft_size, spec.hop, spec.bins, spec.segment_frames, spec.input
    );
    println!("  licence: {}; source: {}", card.licence, card.source);
}
