//! The one training loop every stage shares, flat and visible:
//! batch(step) → forward → loss → backward → clip → AdamW step → EMA → log → checkpoint.
//!
//! Batches are a pure function of the step (every random draw is seeded from the
//! run seed and the step), so a checkpoint holds just the model, its EMA, the
//! optimiser state and the step; `--resume` then continues bit-exactly.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::module::{AutodiffModule, Module};
use burn::optim::{AdamWConfig, GradientsParams, Optimizer, grad_clipping::GradientClippingConfig};
use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, Recorder};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{ElementConversion, Tensor};
use serde::{Deserialize, Serialize};

use super::TrainError;
use super::ema::Ema;
use super::stages::FrameSource;
use crate::export::write_atomic;
use crate::world::mix;

/// Which batch a loss is computed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batch {
    /// Training batch of this step: condition dropout, latent sampling and step-dependent
    /// schedules (the temporal decoder's GAN warm-up) apply.
    Train { step: u64 },
    /// The fixed held-out batch: no dropout, deterministic encoding, reconstruction terms only.
    HeldOut,
}

impl Batch {
    /// Condition-dropout probability for this batch: `p` in training, 0 when held out.
    pub fn dropout(self, p: f64) -> f64 {
        if matches!(self, Batch::Train { .. }) { p } else { 0.0 }
    }
}

/// One stage's model and how a batch turns into a loss.
pub trait Task<B: AutodiffBackend> {
    type Model: AutodiffModule<B> + Clone;

    /// The model at step 0: fresh parameters drawn from `seed` (`train::init::seeded_init`,
    /// applied before any earlier stage's weights are loaded over them).
    fn init(&self, device: &B::Device, seed: u64) -> Result<Self::Model, TrainError>;
    /// Where the stage's worlds come from.
    fn frames(&self) -> &FrameSource;
    /// Samples (frames or clips) per batch.
    fn batch_size(&self) -> usize;
    /// Loss over the samples of worlds `seeds`; every other random draw comes from `draw_seed`.
    fn batch_loss(
        &self,
        model: &Self::Model,
        seeds: &[u64],
        draw_seed: u64,
        batch: Batch,
        device: &B::Device,
    ) -> Tensor<B, 1>;

    /// Training loss of step `step`: a pure function of the run seed and the step.
    fn loss(&self, model: &Self::Model, step: u64, device: &B::Device) -> Tensor<B, 1> {
        let frames = self.frames();
        let seeds = frames.train_seeds(step, self.batch_size());
        self.batch_loss(model, &seeds, mix(frames.seed() ^ mix(step)), Batch::Train { step }, device)
    }

    /// A picture of what the model does now on held-out data (`samples.png`, redrawn at
    /// every checkpoint); `None` for stages that have none yet.
    fn sample_grid(&self, _model: &Self::Model, _device: &B::Device) -> Option<image::RgbImage> {
        None
    }

    /// Mean loss on the fixed held-out set (`HELD_OUT_ITEMS` world seeds from the
    /// evaluation range), in batches of `HELD_OUT_CHUNK` with fixed noise draws: the
    /// same number whatever `--batch` is.
    ///
    /// The model's parameters stop requiring gradients for it, so the autodiff backend
    /// keeps no graph: held-out clips cost a forward pass's memory, not a training step's
    /// (the base tier's temporal decoder ran out of 24 GB here when they kept one).
    fn held_out_loss(&self, model: &Self::Model, device: &B::Device) -> f32 {
        let model = &model.clone().no_grad();
        let seeds = FrameSource::held_out_seeds(HELD_OUT_ITEMS);
        let total: f64 = seeds
            .chunks(HELD_OUT_CHUNK)
            .enumerate()
            .map(|(i, part)| {
                let loss: f32 = self
                    .batch_loss(model, part, HELD_OUT_DRAWS ^ i as u64, Batch::HeldOut, device)
                    .into_scalar()
                    .elem();
                f64::from(loss) * part.len() as f64
            })
            .sum();
        (total / seeds.len() as f64) as f32
    }
}

/// Frames (or clips) in the held-out set. It does not follow `--batch`, so runs with
/// different batch sizes, and the parts of one, report the same held-out loss.
pub const HELD_OUT_ITEMS: usize = 8;

/// Held-out items per forward pass (each pass draws its own noise and timesteps).
pub(crate) const HELD_OUT_CHUNK: usize = 2;

/// Seed of the held-out batch's noise and timesteps: the same at every evaluation.
pub(crate) const HELD_OUT_DRAWS: u64 = 0xE7A1;

/// Optimisation settings shared by all stages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoopConfig {
    /// Total optimiser steps of the run (a resumed run continues towards it).
    pub steps: u64,
    pub lr: f64,
    /// Linear warm-up from 0 to `lr` over this many steps.
    pub warmup_steps: u64,
    /// Global gradient-norm clip.
    pub grad_clip: f32,
    pub ema_decay: f64,
    pub checkpoint_every: u64,
    pub eval_every: u64,
    /// Seed of the initial weights (`train::init`): a fresh run's start is a function of it.
    pub init_seed: u64,
    /// Model replicas the batch of each step is split over, one per device and thread
    /// (`train::parallel`); 1 trains without data parallelism.
    #[serde(default = "one")]
    pub data_parallel: usize,
    /// How the learning rate moves after the warm-up.
    #[serde(default)]
    pub lr_decay: LrDecay,
}

/// The learning rate after the warm-up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub enum LrDecay {
    /// Stays at the peak.
    #[default]
    Constant,
    /// Half a cosine from the peak at the end of the warm-up to `final_fraction` of it at
    /// the run's last step (SGDR without restarts, Loshchilov & Hutter 2017). The schedule
    /// follows `steps`: a run resumed with another `--steps` reshapes what is left of it.
    Cosine { final_fraction: f64 },
}

fn one() -> usize {
    1
}

impl LoopConfig {
    /// The learning rate of optimiser step `step` (0-based).
    pub fn lr_at(&self, step: u64) -> f64 {
        if step < self.warmup_steps {
            return self.lr * (step + 1) as f64 / self.warmup_steps as f64;
        }
        match self.lr_decay {
            LrDecay::Constant => self.lr,
            LrDecay::Cosine { final_fraction } => {
                // The first step after the warm-up is at the peak, the run's last at the floor.
                let span = self.steps.saturating_sub(self.warmup_steps + 1).max(1);
                let t = ((step - self.warmup_steps) as f64 / span as f64).min(1.0);
                let cos = 0.5 * (1.0 + (std::f64::consts::PI * t).cos());
                self.lr * (final_fraction + (1.0 - final_fraction) * cos)
            }
        }
    }
}

/// What the loop reports as it goes (the CLI turns it into a progress bar).
#[derive(Debug, Clone, Copy)]
pub enum Event {
    Step { step: u64, steps: u64, loss: f32, lr: f64 },
    HeldOut { step: u64, loss: f32 },
    Checkpoint { step: u64 },
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct FitSummary {
    pub first_step: u64,
    pub last_step: u64,
    pub interrupted: bool,
    pub held_out: Vec<(u64, f32)>,
    pub seconds: f64,
}

/// `state.json` of a checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CheckpointState {
    step: u64,
    config: LoopConfig,
}

const CHECKPOINT_DIR: &str = "checkpoint";

/// The EMA of a task's model (on the inner, non-autodiff backend).
pub type EmaOf<B, T> = Ema<<<T as Task<B>>::Model as AutodiffModule<B>>::InnerModule>;

/// What `fit` returns: the live model, its EMA and how the run went.
#[derive(Debug)]
pub struct Fitted<M, E> {
    pub model: M,
    pub ema: E,
    pub summary: FitSummary,
}

/// Runs `task` until `cfg.steps` (or `cancel`), checkpointing into `run_dir`.
/// Returns the EMA model and the summary.
pub fn fit<B: AutodiffBackend, T: Task<B> + Sync>(
    task: &T,
    cfg: &LoopConfig,
    run_dir: &Path,
    resume: bool,
    device: &B::Device,
    cancel: &AtomicBool,
    mut on_event: impl FnMut(Event),
) -> Result<Fitted<T::Model, EmaOf<B, T>>, TrainError> {
    std::fs::create_dir_all(run_dir.join(CHECKPOINT_DIR)).map_err(|e| TrainError::io(run_dir, e))?;
    let mut optim = AdamWConfig::new()
        .with_weight_decay(0.0)
        .with_grad_clipping(Some(GradientClippingConfig::Norm(cfg.grad_clip)))
        .init::<B, T::Model>();
    let mut model = task.init(device, cfg.init_seed)?;
    let mut ema = Ema::new(model.valid(), cfg.ema_decay);
    let mut step = 0;
    if resume {
        let ck = run_dir.join(CHECKPOINT_DIR);
        let state: CheckpointState = read_json(&ck.join("state.json"))?;
        model = model.load_record(load_record(&ck.join("model.mpk"), device)?);
        ema.model = ema.model.clone().load_record(load_record(&ck.join("ema.mpk"), device)?);
        optim = optim.load_record(load_record(&ck.join("optim.mpk"), device)?);
        step = state.step;
        tracing::info!(step, "resumed from checkpoint");
    }
    let first_step = step;
    let devices = super::parallel::devices::<B>(device, cfg.data_parallel);
    let log_path = run_dir.join("log.csv");
    let mut log = open_log(&log_path, resume)?;
    let t0 = Instant::now();
    let mut held_out = Vec::new();
    let mut interrupted = false;
    while step < cfg.steps {
        if cancel.load(Ordering::Relaxed) {
            interrupted = true;
            break;
        }
        let (value, grads) = if devices.len() > 1 {
            super::parallel::step_grads(task, &model, step, &devices)?
        } else {
            let loss = task.loss(&model, step, device);
            let value: f32 = loss.clone().into_scalar().elem();
            (value, GradientsParams::from_grads(loss.backward(), &model))
        };
        if !value.is_finite() {
            // The last checkpoint stays as it was: nothing of this step is kept.
            return Err(TrainError::NonFinite { step, loss: value, checkpoint: run_dir.join(CHECKPOINT_DIR) });
        }
        let lr = cfg.lr_at(step);
        model = optim.step(lr, model, grads);
        ema.update(&model, step);
        step += 1;
        on_event(Event::Step { step, steps: cfg.steps, loss: value, lr });
        let mut eval = String::new();
        if step % cfg.eval_every == 0 || step == cfg.steps {
            let h = task.held_out_loss(&model, device);
            held_out.push((step, h));
            eval = format!("{h}");
            on_event(Event::HeldOut { step, loss: h });
        }
        writeln!(log, "{step},{value},{lr},{eval},{:.3}", t0.elapsed().as_secs_f64())
            .map_err(|e| TrainError::io(&log_path, e))?;
        if step % cfg.checkpoint_every == 0 {
            log.flush().map_err(|e| TrainError::io(&log_path, e))?;
            save_checkpoint(run_dir, step, cfg, &model, &ema, &optim)?;
            save_samples(task, &model, run_dir, device)?;
            on_event(Event::Checkpoint { step });
        }
    }
    log.flush().map_err(|e| TrainError::io(&log_path, e))?;
    if step > first_step {
        save_checkpoint(run_dir, step, cfg, &model, &ema, &optim)?;
        save_samples(task, &model, run_dir, device)?;
        on_event(Event::Checkpoint { step });
    }
    let summary =
        FitSummary { first_step, last_step: step, interrupted, held_out, seconds: t0.elapsed().as_secs_f64() };
    Ok(Fitted { model, ema, summary })
}

fn save_checkpoint<B: AutodiffBackend, M: AutodiffModule<B>, O: Optimizer<M, B>>(
    run_dir: &Path,
    step: u64,
    cfg: &LoopConfig,
    model: &M,
    ema: &Ema<M::InnerModule>,
    optim: &O,
) -> Result<(), TrainError> {
    let ck = run_dir.join(CHECKPOINT_DIR);
    // Files first, state last: a crash between them leaves the previous state.json,
    // which then points at newer weights only if all three were written.
    save_record::<B, _>(&ck.join("model.mpk"), model.clone().into_record())?;
    save_record::<B::InnerBackend, _>(&ck.join("ema.mpk"), ema.model.clone().into_record())?;
    save_record::<B, _>(&ck.join("optim.mpk"), optim.to_record())?;
    let state = serde_json::to_vec_pretty(&CheckpointState { step, config: cfg.clone() })
        .map_err(|e| TrainError::Record(e.to_string()))?;
    write_atomic(&ck.join("state.json"), &state)?;
    // The loss curve is redrawn with every checkpoint (log.csv is flushed before).
    let rows = super::plot::read_log(&run_dir.join("log.csv"))?;
    let title = run_dir.file_name().map_or_else(String::new, |n| format!("{} loss", n.to_string_lossy()));
    super::plot::write_loss_plot(&rows, &title, &run_dir.join("loss.png"))?;
    Ok(())
}

fn save_samples<B: AutodiffBackend, T: Task<B>>(
    task: &T,
    model: &T::Model,
    run_dir: &Path,
    device: &B::Device,
) -> Result<(), TrainError> {
    if let Some(grid) = task.sample_grid(model, device) {
        crate::export::save_png_atomic(&run_dir.join("samples.png"), &grid)?;
    }
    Ok(())
}

fn recorder() -> NamedMpkBytesRecorder<FullPrecisionSettings> {
    NamedMpkBytesRecorder::<FullPrecisionSettings>::default()
}

fn save_record<B: burn::tensor::backend::Backend, R: burn::record::Record<B>>(
    path: &Path,
    record: R,
) -> Result<(), TrainError> {
    let bytes = Recorder::<B>::record(&recorder(), record, ())
        .map_err(|e| TrainError::Record(format!("{}: {e}", path.display())))?;
    write_atomic(path, &bytes)?;
    Ok(())
}

fn load_record<B: burn::tensor::backend::Backend, R: burn::record::Record<B>>(
    path: &Path,
    device: &B::Device,
) -> Result<R, TrainError> {
    let bytes = std::fs::read(path).map_err(|e| TrainError::io(path, e))?;
    Recorder::<B>::load(&recorder(), bytes, device).map_err(|e| TrainError::Record(format!("{}: {e}", path.display())))
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, TrainError> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| TrainError::Record(format!("{}: {e}", path.display())))
}

fn open_log(path: &PathBuf, append: bool) -> Result<std::io::BufWriter<std::fs::File>, TrainError> {
    let exists = path.exists();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(append)
        .write(true)
        .truncate(!append)
        .open(path)
        .map_err(|e| TrainError::io(path, e))?;
    let mut w = std::io::BufWriter::new(file);
    if !(append && exists) {
        writeln!(w, "step,loss,lr,held_out_loss,seconds").map_err(|e| TrainError::io(path, e))?;
    }
    Ok(w)
}
