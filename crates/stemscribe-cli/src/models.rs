//! `stemscribe models`: the models this installation serves and the cards that describe them.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use stemscribe_engine::runtime::setup::cache_dir;
use stemscribe_engine::runtime::Runtime;
use stemscribe_engine::separate::{
    convert_checkpoint, install_ensemble, install_model_file, installed_cards, is_checkpoint,
    user_model_files, EnsembleMethod, ModelCard, ModelFile, Separate,
};
use stemscribe_engine::{SeparationModel, SourceStem, FOUR_STEMS};

use crate::io::Hardware;

/// Arguments of `stemscribe models`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Option<Subcommand>,
}

/// What `stemscribe models` can do besides listing.
#[derive(Debug, clap::Subcommand)]
enum Subcommand {
    /// Install a model file (UVR MDX-Net or HT-Demucs ONNX, or a BS-RoFormer, Mel-Band
    /// RoFormer or MDX23C checkpoint, converted) into the models directory's `user/` folder
    /// with its card; a four-stem model then serves bs_4track_*.
    Add {
        /// The ONNX file (an MDX-Net file needs NAME.json or MODEL.json beside it unless UVR's
        /// hash is known) or the checkpoint (.ckpt).
        file: PathBuf,
        /// A checkpoint's YAML config [default: MODEL.yaml beside it].
        #[arg(long, value_name = "FILE.yaml")]
        config: Option<PathBuf>,
        /// Name to install it under [default: the file's name].
        #[arg(long)]
        name: Option<String>,
    },
    /// Install an ensemble: installed models run as one, their stems of the same name
    /// combined as audio-separator's ensembler does. It is then served by NAME wherever an
    /// installed model is (--two-stem-model, bs_4track_* when its stems are four, the jobs API
    /// and Python).
    Ensemble {
        /// Name to install the ensemble under.
        name: String,
        /// Two or more installed models, by the names `models add` gave them.
        #[arg(required = true, num_args = 2..)]
        members: Vec<String>,
        /// How stems of the same name are combined: avg_wave (the mean) or median_wave.
        #[arg(long, default_value = "avg_wave")]
        method: EnsembleMethod,
    },
}

/// Runs `stemscribe models` or `stemscribe models add`.
pub fn run(args: &Args, hardware: Hardware, quiet: bool) -> Result<()> {
    let runtime = Runtime::new(&hardware.runtime())?;
    match &args.command {
        None => list(&runtime),
        Some(Subcommand::Add { file, config, name }) => {
            let name = match name {
                Some(name) => name.clone(),
                None => file
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .map(str::to_owned)
                    .context("the file has no usable name; give --name")?,
            };
            let converted;
            let source = if is_checkpoint(file) {
                converted =
                    convert_checkpoint(file, config.as_deref(), &cache_dir(), &mut |line| {
                        if !quiet {
                            eprintln!("{line}");
                        }
                    })
                    .with_context(|| format!("cannot convert {}", file.display()))?;
                converted.as_path()
            } else {
                if config.is_some() {
                    bail!("--config applies to checkpoints (.ckpt) only");
                }
                file.as_path()
            };
            let installed = install_model_file(&runtime, source, &name)
                .with_context(|| format!("cannot install {}", file.display()))?;
            if !quiet {
                eprintln!("installed {}", installed.display());
            }
            Ok(())
        }
        Some(Subcommand::Ensemble {
            name,
            members,
            method,
        }) => {
            let installed = install_ensemble(&runtime, name, members, *method)
                .with_context(|| format!("cannot install the ensemble {name}"))?;
            if !quiet {
                eprintln!("installed {}", installed.display());
            }
            Ok(())
        }
    }
}

/// Prints every API model with the card or file that serves it, then every installed card
/// and model file.
fn list(runtime: &Runtime) -> Result<()> {
    let dir = runtime.models_dir();
    let cards = installed_cards(dir);
    let broken = cards.iter().any(Result::is_err);
    let four_stem = cards
        .iter()
        .flatten()
        .find(|card| card.has_stems(&FOUR_STEMS.map(SourceStem::name)));
    let users: Vec<(PathBuf, Result<ModelFile, String>)> = user_model_files(dir)
        .into_iter()
        .map(|file| {
            let model = ModelFile::open(runtime, &file).map_err(|e| e.to_string());
            (file, model)
        })
        .collect();
    let four_stem_file = users
        .iter()
        .filter(|_| four_stem.is_none())
        .find_map(|(file, model)| {
            let four = model.as_ref().is_ok_and(|m| m.has_stems(&FOUR_STEMS));
            four.then(|| file.file_stem().unwrap_or_default().to_string_lossy())
        });
    let spleeter = ModelCard::spleeter_2stems();
    println!("models directory: {}", dir.display());
    println!(
        "device: {} (--device {})",
        runtime.device_use(),
        runtime.device()
    );
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
            (None, SeparationModel::FourTrackVocal) if four_stem_file.is_some() => format!(
                "{} vocals (installed model file)",
                four_stem_file.as_deref().unwrap_or_default()
            ),
            (None, SeparationModel::FourTrackAcc) if four_stem_file.is_some() => format!(
                "noise suppression + {} drums + bass + other (installed model file)",
                four_stem_file.as_deref().unwrap_or_default()
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
    for (file, model) in &users {
        let model = match model {
            Ok(model) => model,
            Err(error) => {
                println!("unusable model file {}: {error}", file.display());
                continue;
            }
        };
        let stems: Vec<&str> = model.stems().iter().map(|s| s.name()).collect();
        let stems = stems.join(", ");
        match model {
            ModelFile::Ensemble(ensemble) => {
                let members: Vec<_> = ensemble
                    .members()
                    .filter_map(|m| m.file_stem()?.to_str())
                    .collect();
                println!(
                    "ensemble {}: {} of {}, stems {stems} (served by its name)",
                    file.display(),
                    ensemble.method(),
                    members.join(", ")
                );
            }
            _ => println!(
                "model file {}: {}, stems {stems} (separate --model-file runs it)",
                file.display(),
                model.family()
            ),
        }
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
