//! Weight files: safetensors through burn-store, the `manifest.ron` beside them, and
//! load errors that name the file, the tensor and both shapes.
//!
//! A weights folder (`weights/<tier>/`, see `docs/architecture.md`, "Weights") holds per
//! model one spatial `.safetensors` file, for video models one temporal file, and a
//! [`Manifest`] with each model's config, file sizes and SHA-256 hashes and training
//! facts.
//!
//! - [`save_parts`] / [`load_parts`] write and read any burn module. Tensor names are
//!   the module's hierarchical parameter paths; parameters under a `temporal` path
//!   segment go to the temporal file ([`Part`]). Loading checks every key both ways and
//!   fails on the first mismatch; [`TemporalInit::Keep`] is the one explicit way to load
//!   an image model's spatial weights into a video model whose temporal layers are new.
//! - [`Manifest::read`], [`Manifest::write`] (atomic) and [`Manifest::verify`] (sizes and
//!   hashes) handle the folder's manifest.
//!
//! ```no_run
//! # use std::path::Path;
//! # use burn::nn::{Linear, LinearConfig};
//! # type B = burn::backend::Flex;
//! use latentdrive::weights::{Manifest, Part, TemporalInit, load_parts};
//! # fn main() -> Result<(), latentdrive::weights::WeightsError> {
//! let dir = Path::new("weights/tiny");
//! let manifest = Manifest::read(dir)?;
//! manifest.verify(dir)?;
//! let entry = manifest.model("unet").expect("listed");
//! # let model: Linear<B> = LinearConfig::new(2, 2).init(&Default::default());
//! let spatial = entry.file_path(dir, Part::Spatial)?.expect("a spatial file");
//! let temporal = entry.file_path(dir, Part::Temporal)?;
//! let model = load_parts(model, &spatial, temporal.as_deref(), TemporalInit::Require)?;
//! # Ok(()) }
//! ```

mod error;
mod manifest;
mod precision;
mod store;

pub use error::WeightsError;
pub use manifest::{FORMAT_VERSION, FileEntry, MANIFEST_FILE, Manifest, ModelEntry, TrainingFacts};
pub use precision::{FileConversion, FolderConversion, StorageDtype, convert_file, convert_folder};
pub use store::{
    Part, TEMPORAL_SEGMENT, TemporalInit, TensorInfo, file_tensors, load_parts, module_tensors, save_parts, sha256_file,
};
