//! `train <stage>`: runs a stage's task through `fit`, then writes the EMA weights
//! into the weights folder and records them (config, hashes, training facts) in its
//! manifest, replacing that stage's earlier entry.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use burn::backend::{Autodiff, Flex};
use serde::{Deserialize, Serialize};

use super::fit::{Event, FitSummary, LoopConfig, fit};
use super::stages::AutoencoderTask;
use super::TrainError;
use crate::model::ModelTier;
use crate::weights::{FileEntry, Manifest, ModelEntry, Part, TrainingFacts, save_parts};

/// Stages that `train` can run today (later stages land with their tasks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stage {
    Autoencoder,
}

impl Stage {
    /// Model name in the manifest and the weights file stem.
    pub fn model_name(self) -> &'static str {
        match self {
            Stage::Autoencoder => "autoencoder",
        }
    }
}

#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub stage: Stage,
    pub tier: ModelTier,
    pub loop_config: LoopConfig,
    pub batch: usize,
    pub seed: u64,
    /// Checkpoints and logs.
    pub run_dir: PathBuf,
    /// Where the finished weights and manifest go (`weights/<tier>`).
    pub weights_dir: PathBuf,
    pub resume: bool,
}

/// What a finished (or interrupted) run produced.
#[derive(Debug, Clone)]
pub struct StageReport {
    pub summary: FitSummary,
    /// The weights file written (absent when interrupted before any step).
    pub weights: Option<PathBuf>,
}

/// Runs one stage on the CPU (`Autodiff<Flex>`).
pub fn train_stage(opts: &TrainOptions, cancel: &AtomicBool, on_event: impl FnMut(Event)) -> Result<StageReport, TrainError> {
    type B = Autodiff<Flex>;
    let device = Default::default();
    let cfg = opts.tier.config();
    match opts.stage {
        Stage::Autoencoder => {
            let task = AutoencoderTask::new(cfg.autoencoder.clone(), cfg.frame_size, opts.batch, opts.seed);
            let (_, ema, summary) =
                fit::<B, _>(&task, &opts.loop_config, &opts.run_dir, opts.resume, &device, cancel, on_event)?;
            if summary.last_step == 0 {
                return Ok(StageReport { summary, weights: None });
            }
            std::fs::create_dir_all(&opts.weights_dir).map_err(|e| TrainError::io(&opts.weights_dir, e))?;
            let file_name = format!("{}.safetensors", opts.stage.model_name());
            let path = opts.weights_dir.join(&file_name);
            save_parts(&ema.model, &path, None)?;
            let data = format!(
                "procedural world, {}×{} frames, world seeds from run seed {} (training range < 2^40), batch {}",
                cfg.frame_size.0, cfg.frame_size.1, opts.seed, opts.batch
            );
            let facts = TrainingFacts {
                steps: summary.last_step,
                wall_time_s: summary.seconds,
                hardware: format!("CPU ({} threads available), burn Flex", std::thread::available_parallelism().map_or(1, |n| n.get())),
                data,
                notes: match summary.held_out.last() {
                    Some((step, loss)) => format!("held-out L1 {loss:.4} of the live weights at step {step}; the file holds their EMA (decay {})", opts.loop_config.ema_decay),
                    None => String::new(),
                },
            };
            let mut entry = ModelEntry::new(
                opts.stage.model_name(),
                &cfg.autoencoder,
                vec![FileEntry::describe(&opts.weights_dir, &file_name, Part::Spatial)?],
            )?;
            entry.training = Some(facts);
            let mut manifest = match Manifest::read(&opts.weights_dir) {
                Ok(m) => m,
                Err(crate::weights::WeightsError::MissingFile { .. }) => Manifest::new(opts.tier),
                Err(e) => return Err(e.into()),
            };
            manifest.models.retain(|m| m.name != entry.name);
            manifest.models.push(entry);
            manifest.write(&opts.weights_dir)?;
            Ok(StageReport { summary, weights: Some(path) })
        }
    }
}
