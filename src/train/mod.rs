//! Training: one shared loop (`fit`) and one `Task` per stage, streaming clips
//! from the procedural world (no disk). Stages run in order:
//! autoencoder → image LDM → temporal decoder → video LDM → interpolator → upsampler.
//!
//! Run folder (`runs/train/<tier>/<stage>/` by default): `checkpoint/` (model, EMA,
//! optimiser state and step; `--resume` continues bit-exactly), `log.csv`.

mod ema;
mod fit;
pub mod init;
pub mod parallel;
pub mod plot;
mod run;
mod stages;

use std::path::{Path, PathBuf};

pub use ema::Ema;
pub use fit::{Batch, EmaOf, Event, FitSummary, Fitted, LoopConfig, LrDecay, Task, fit};
pub use run::{
    Continuation, KEYFRAME_FPS, LatentNormKind, Stage, StageReport, TrainOptions, continuation, default_run_dir,
    hardware, train_stage, train_stage_on,
};
pub use stages::{
    AutoencoderTask, EgoState, FrameSource, GuessNoise, ImageLdmTask, UpsamplerPhase, UpsamplerTask, VideoLdmTask,
    VideoTask, outline_box, tensor_grid, video_context, visible_boxes,
};

/// Why training stopped.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("checkpoint record: {0}")]
    Record(String),
    /// An on-disk dataset (`--data`) that cannot feed this stage.
    #[error("training data: {0}")]
    Data(String),
    /// Options that do not fit the stage or the weights they name (e.g. `--init-from` on a
    /// stage that cannot start from trained weights).
    #[error("{0}")]
    Options(String),
    #[error(
        "loss became {loss} at step {step}; stopped without saving it. The last good checkpoint is in {} (resume from it with a lower --lr)",
        checkpoint.display()
    )]
    NonFinite { step: u64, loss: f32, checkpoint: PathBuf },
    #[error(transparent)]
    Weights(#[from] crate::weights::WeightsError),
    #[error(transparent)]
    Export(#[from] crate::export::ExportError),
}

impl TrainError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        TrainError::Io { path: path.to_path_buf(), source }
    }
}

#[cfg(test)]
mod tests;
