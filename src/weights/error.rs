//! The one error type of weight files and manifests. Every variant names the file it is
//! about and, where one is involved, the tensor and both shapes, so a message is
//! actionable without a backtrace:
//!
//! ```text
//! weights/tiny/unet.safetensors: tensor "down.0.res.conv1.weight" has shape [32, 16, 3, 3], the model expects [32, 32, 3, 3]
//! ```

use std::path::PathBuf;

use thiserror::Error;

/// Everything that can go wrong while saving, loading or verifying weights.
#[derive(Debug, Error)]
pub enum WeightsError {
    /// A weight file or manifest does not exist.
    #[error(
        "{}: file not found; run `latentdrive train ...` to produce weights, or use the shipped weights/tiny",
        path.display()
    )]
    MissingFile { path: PathBuf },

    /// Reading, writing or renaming a file failed (permissions, disk full, ...).
    #[error("{}: {action} failed: {source}", path.display())]
    Io {
        path: PathBuf,
        /// What was attempted: "reading", "writing", "renaming to ...".
        action: String,
        #[source]
        source: std::io::Error,
    },

    /// The file is not a readable safetensors file: truncated, corrupt, or not safetensors.
    #[error("{}: not a valid safetensors file (truncated or corrupt?): {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },

    /// The model expects a tensor the file does not hold.
    #[error("{}: tensor \"{tensor}\" (shape {expected:?}) is expected by the model but missing from the file", path.display())]
    MissingTensor { path: PathBuf, tensor: String, expected: Vec<usize> },

    /// The model has temporal parameters, no temporal file was given, and the caller
    /// did not ask to keep their initialisation ([`TemporalInit::Keep`](super::TemporalInit)).
    #[error(
        "{}: no temporal weight file was given, but the model expects temporal tensor \"{tensor}\" (shape {expected:?}); \
         pass the temporal file, or TemporalInit::Keep to keep the temporal layers' initialisation",
        spatial.display()
    )]
    MissingTemporalFile {
        /// The spatial file that was given alone.
        spatial: PathBuf,
        tensor: String,
        expected: Vec<usize>,
    },

    /// The file holds a tensor the model does not use; every tensor in a file must be used.
    #[error("{}: tensor \"{tensor}\" (shape {shape:?}) is not used by the model; every tensor in a weight file must be used", path.display())]
    UnexpectedTensor { path: PathBuf, tensor: String, shape: Vec<usize> },

    /// A tensor's shape differs between the file and the model.
    #[error("{}: tensor \"{tensor}\" has shape {found:?}, the model expects {expected:?}", path.display())]
    ShapeMismatch { path: PathBuf, tensor: String, found: Vec<usize>, expected: Vec<usize> },

    /// A tensor's element type differs between the file and the model.
    #[error("{}: tensor \"{tensor}\" has dtype {found}, the model expects {expected}", path.display())]
    DtypeMismatch { path: PathBuf, tensor: String, found: String, expected: String },

    /// Saving: the module has temporal parameters but no temporal file was given, so
    /// they would be silently dropped.
    #[error(
        "{}: the model has temporal tensor \"{tensor}\" but no temporal file was given to save it to",
        spatial.display()
    )]
    UnsavedTemporal { spatial: PathBuf, tensor: String },

    /// burn-store failed while writing or applying tensors, for a reason not covered above.
    #[error("{}: {message}", path.display())]
    Store { path: PathBuf, message: String },

    /// A file's size differs from the size recorded in the manifest.
    #[error("{}: file has {found} bytes, the manifest records {expected}", path.display())]
    SizeMismatch { path: PathBuf, found: u64, expected: u64 },

    /// A file's SHA-256 differs from the hash recorded in the manifest.
    /// `model` is the entry that lists it: a video model's entry lists the image LDM it was
    /// fitted on, so retraining that image LDM makes the video model's entry stale.
    #[error(
        "{}: SHA-256 is {found}, the manifest's \"{model}\" entry records {expected}; the file changed since \
         that model was saved (retrain it on this file, or restore the file)",
        path.display()
    )]
    HashMismatch { path: PathBuf, model: String, found: String, expected: String },

    /// The manifest is not valid RON for [`Manifest`](super::Manifest). `line` and `col` are 1-based.
    #[error("{}:{line}:{col}: {message}", path.display())]
    ManifestParse { path: PathBuf, line: usize, col: usize, message: String },

    /// The manifest could not be serialised (a config holding a non-finite float, ...).
    #[error("{}: cannot serialise manifest: {message}", path.display())]
    ManifestSerialize { path: PathBuf, message: String },

    /// The manifest was written by a newer (or older) format than this build reads.
    #[error("{}: manifest format version {found} is not supported; this build reads version {supported}", path.display())]
    UnsupportedFormatVersion { path: PathBuf, found: u32, supported: u32 },

    /// A file entry's path must stay inside the manifest's folder.
    #[error("{}: file entry \"{entry}\" must be a relative path inside the manifest's folder", manifest.display())]
    EntryOutsideDir { manifest: PathBuf, entry: PathBuf },

    /// A model entry's latent normalisation does not fit the folder's autoencoder.
    #[error("{}: model \"{model}\": {message}", manifest.display())]
    LatentNorm { manifest: PathBuf, model: String, message: String },

    /// A model entry's config does not deserialise into the type the caller asked for.
    #[error("{}: model \"{model}\": its config does not read as this build's config type: {message}", manifest.display())]
    ModelConfig { manifest: PathBuf, model: String, message: String },
}

impl WeightsError {
    /// A failed read, mapping "not found" to [`WeightsError::MissingFile`] so the message
    /// says how to get weights.
    pub(crate) fn read(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::NotFound {
            WeightsError::MissingFile { path }
        } else {
            WeightsError::Io { path, action: "reading".into(), source }
        }
    }
}

/// Atomic writes are shared with `export`; their failures are I/O errors on the target.
impl From<crate::export::ExportError> for WeightsError {
    fn from(e: crate::export::ExportError) -> Self {
        match e {
            crate::export::ExportError::Io { path, source } => {
                WeightsError::Io { path, action: "writing".into(), source }
            }
            other => WeightsError::Io {
                path: PathBuf::new(),
                action: "writing".into(),
                source: std::io::Error::other(other.to_string()),
            },
        }
    }
}
