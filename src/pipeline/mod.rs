//! The inference chain as one [`Generator`]: frame 0 from the box-conditioned image LDM,
//! multi-future prediction rollouts, interpolation, decoding and 4× upsampling, streamed
//! to a [`FrameSink`] with progress events and cancellation. [`output`] writes a run
//! folder (frames, previews, labels, metadata) and replays one.

pub mod denoise;
pub mod ego;
pub mod generator;
pub mod models;
pub mod output;

use std::path::PathBuf;

use image::RgbImage;

pub use generator::{
    DEFAULT_UPSAMPLE_LEVEL, DEFAULT_UPSAMPLE_NOISE, DEFAULT_UPSAMPLE_STEPS, DecoderMode, Event, GenerateOptions,
    Generator, KnownFrames, Phase, Plan, RunSummary, Seeds, Timings, UPSAMPLE_LEVELS, UpsampleMode, requested_labels,
};
pub use models::{Models, Needs, WeightFile, decode_latents, encode_frames};
pub use output::{ReplayReport, RunRequest, export_run, frame_path, generate_to_dir, replay};

/// Where generated frames go as they are produced.
pub trait FrameSink {
    /// Frame 0, shared by every future.
    fn frame0(&mut self, image: &RgbImage) -> Result<(), PipelineError>;
    /// Frame `index` of future `future` (index 0 is frame 0 again).
    fn frame(&mut self, future: usize, index: usize, image: &RgbImage) -> Result<(), PipelineError>;
    /// Future `future` is complete with `frames` frames.
    fn future_done(&mut self, _future: usize, _frames: usize) -> Result<(), PipelineError> {
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(
        "no weights in {dir}: expected {dir}/manifest.ron. The tiny tier ships in weights/tiny; \
         train a tier with `latentdrive train all --tier <tier> --weights {dir}`, or pass --weights DIR"
    )]
    NoWeights { dir: PathBuf },
    #[error(
        "{dir} has no `{model}` model{hint}; train it with `latentdrive train {stage} --tier {tier} --weights {dir}`"
    )]
    MissingModel { dir: PathBuf, model: &'static str, stage: &'static str, tier: &'static str, hint: String },
    #[error(transparent)]
    Weights(#[from] crate::weights::WeightsError),
    #[error("cannot generate this scenario: {0}")]
    Unsupported(String),
    #[error(transparent)]
    World(#[from] crate::world::WorldError),
    #[error(transparent)]
    Diffusion(#[from] crate::diffusion::DiffusionError),
    #[error(transparent)]
    Export(#[from] crate::export::ExportError),
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Metadata { path: PathBuf, message: String },
    #[error("generation cancelled")]
    Cancelled,
}

impl PipelineError {
    pub fn io(path: impl Into<PathBuf>, e: impl std::fmt::Display) -> Self {
        PipelineError::Io { path: path.into(), message: e.to_string() }
    }

    /// Adds "(or run with FLAG)" to a missing-model error.
    fn with_hint(self, flag: &str) -> Self {
        match self {
            PipelineError::MissingModel { dir, model, stage, tier, .. } => {
                PipelineError::MissingModel { dir, model, stage, tier, hint: format!(" (or run with {flag})") }
            }
            other => other,
        }
    }

    /// Whether the error is the user's input (exit code 2) rather than a failure.
    pub fn is_input_error(&self) -> bool {
        matches!(
            self,
            PipelineError::NoWeights { .. }
                | PipelineError::MissingModel { .. }
                | PipelineError::Unsupported(_)
                | PipelineError::World(_)
        )
    }
}
