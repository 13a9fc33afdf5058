//! Source separation in the STFT domain: a network estimates each stem's magnitude, the
//! estimates become ratio masks, and the masked spectra are inverted back to audio.
//!
//! Every model family implements [`Separate`], which returns stems keyed by [`SourceStem`].
//! [`ModelSpec`] says what a mask model reads and returns, [`Separator`] runs one through ONNX
//! Runtime, and [`Stft`] is the transform both sides of the network share. [`MdxModel`] runs
//! UVR's MDX-Net models, which estimate a stem's complex spectrogram instead of a mask, and
//! [`DemucsModel`] HT-Demucs exported to ONNX (waveform in, stems out); [`ModelFile`] opens
//! either from a file users bring; [`Ensemble`] combines several models' stems.

mod demucs;
mod denoise;
mod derived;
mod ensemble;
mod family;
mod hum;
mod mdx;
mod roformer;
mod separator;
mod spec;
mod spectral;
mod stft;
mod wiener;

pub use demucs::{DemucsModel, DEMUCS_SEGMENT};
pub use denoise::{find_noise, suppress_noise, NoiseGains, NoiseOptions};
pub use derived::{
    derive_clean_stems_each, derive_stems, derive_stems_each, DerivedStemsOptions, MedianSplit,
};
pub use ensemble::{Ensemble, EnsembleMethod, UnknownEnsembleMethod};
pub use family::{
    convert_checkpoint, install_ensemble, install_model_file, is_checkpoint, is_ensemble,
    open_ensemble, read_ensemble, user_model_files, ConvertError, InstallError, ModelFile,
    ModelFileError, Separate, SourceStem, ENSEMBLE_EXTENSION, USER_MODELS_DIR,
};
pub use hum::{detect_hum, remove_hum, Hum, HumOptions};
pub use mdx::{
    uvr_hash, MdxModel, MdxOptions, MdxParams, MdxParamsError, MdxStem, MdxStems, MDX_HOP,
    UVR_HASH_BYTES,
};
pub use roformer::{RoformerFamily, RoformerModel, RoformerParams, RoformerParamsError};
pub use separator::{
    EndPadding, HighBand, SeparationError, SeparationOptions, Separator, LOUD_LEVEL_DBFS,
};
pub use spec::{installed_cards, CardError, ModelCard, ModelSpec};
pub use stemscribe_runtime::Progress;
pub use stft::Stft;
