//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::AtomicBool;

use latentdrive::model::ModelTier;
use latentdrive::train::{LoopConfig, Stage, TrainOptions, train_stage};

/// A fresh scratch folder for this test process.
pub fn tmp(tag: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("latentdrive-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    p
}

/// A micro weights folder with every stage trained for two steps (built once per run).
///
/// Use it, not freshly seeded models, where a test needs the conditions to matter: a seeded UNet's output
/// convolution starts at zero (`conv3x3_zero`), so it predicts the same for every label, box and context frame,
/// and guidance at any scale gives the same sample. Two steps move that layer off zero.
pub fn micro_weights() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = tmp("micro-weights");
        let never = AtomicBool::new(false);
        for stage in Stage::ALL {
            let opts = TrainOptions {
                stage,
                tier: ModelTier::Micro,
                loop_config: LoopConfig {
                    steps: 2,
                    lr: 1e-3,
                    warmup_steps: 1,
                    grad_clip: 1.0,
                    ema_decay: 0.5,
                    checkpoint_every: 2,
                    eval_every: 2,
                    init_seed: 3,
                    data_parallel: 1,
                    lr_decay: Default::default(),
                },
                batch: 1,
                seed: 9,
                run_dir: root.join("runs").join(stage.run_name()),
                weights_dir: root.join("w"),
                resume: false,
                data: None,
                init_from: None,
                disc_start: None,
                high_noise: None,
                guess_share: None,
                guess_noise: None,
                interpolation_guess: None,
                box_weight: None,
                edge_weight: None,
                latent_channels: None,
                diffusion: None,
                latent_norm: None,
            };
            train_stage(&opts, &never, |_| {}).expect("micro stage trains");
        }
        root.join("w")
    })
}
