//! The loop's promises on micro configs: resume is bit-exact, loss falls, NaN stops.

use std::sync::atomic::AtomicBool;

use burn::backend::{Autodiff, Flex};
use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use super::*;
use crate::model::ModelTier;

type AB = Autodiff<Flex>;

fn weights<B: Backend, M: Module<B>>(m: &M) -> Vec<Vec<f32>> {
    struct C(Vec<Vec<f32>>);
    impl<B: Backend> ModuleVisitor<B> for C {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<B, D>>) {
            self.0.push(p.val().into_data().convert::<f32>().to_vec::<f32>().unwrap());
        }
    }
    let mut c = C(Vec::new());
    m.visit(&mut c);
    c.0
}

fn task() -> AutoencoderTask {
    let cfg = ModelTier::Micro.config();
    AutoencoderTask::new(cfg.autoencoder, cfg.frame_size, 2, 7)
}

/// The initial weights of the runs below (same seed as `loop_config`).
fn task_init() -> crate::model::Autoencoder<AB> {
    init::seeded_init(ModelTier::Micro.config().autoencoder.init(&Default::default()), 3)
}

fn loop_config(steps: u64) -> LoopConfig {
    LoopConfig {
        steps,
        lr: 1e-3,
        warmup_steps: 2,
        grad_clip: 1.0,
        ema_decay: 0.9,
        checkpoint_every: 100,
        eval_every: 2,
        init_seed: 3,
    }
}

fn run_dir(tag: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("latentdrive-train-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    p
}

#[test]
fn resuming_half_way_gives_bit_identical_weights() {
    let dev = Default::default();
    let never = AtomicBool::new(false);
    let (a, b) = (run_dir("straight"), run_dir("resumed"));
    let Fitted { model: straight, ema: straight_ema, .. } =
        fit::<AB, _>(&task(), &loop_config(4), &a, false, &dev, &never, |_| {}).unwrap();
    let Fitted { summary: first, .. } =
        fit::<AB, _>(&task(), &loop_config(2), &b, false, &dev, &never, |_| {}).unwrap();
    assert_eq!(first.last_step, 2);
    let Fitted { model: resumed, ema: resumed_ema, summary: second } =
        fit::<AB, _>(&task(), &loop_config(4), &b, true, &dev, &never, |_| {}).unwrap();
    assert_eq!((second.first_step, second.last_step), (2, 4));
    // (Compared as booleans: a failure would otherwise print every weight.)
    assert!(weights(&straight) == weights(&resumed), "weights differ after resume");
    assert!(weights(&straight_ema.model) == weights(&resumed_ema.model), "EMA weights differ after resume");
    assert!(weights(&straight) != weights(&task_init()), "training changed the weights");
    // The start is a function of the seed alone, whatever else uses burn's global RNG.
    assert!(weights(&task_init()) == weights(&task_init()));
    // The log continues rather than restarting.
    let log = std::fs::read_to_string(b.join("log.csv")).unwrap();
    assert_eq!(log.lines().count(), 1 + 4, "{log}");
    std::fs::remove_dir_all(&a).unwrap();
    std::fs::remove_dir_all(&b).unwrap();
}

#[test]
fn cancelling_checkpoints_and_stops() {
    let dev = Default::default();
    let cancel = AtomicBool::new(true);
    let dir = run_dir("cancel");
    let Fitted { summary: s, .. } = fit::<AB, _>(&task(), &loop_config(4), &dir, false, &dev, &cancel, |_| {}).unwrap();
    assert!(s.interrupted);
    assert_eq!(s.last_step, 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_non_finite_loss_stops_the_run_and_names_the_checkpoint() {
    let dev = Default::default();
    let never = AtomicBool::new(false);
    let dir = run_dir("nan");
    let mut cfg = loop_config(3);
    cfg.lr = f64::NAN;
    let err = fit::<AB, _>(&task(), &cfg, &dir, false, &dev, &never, |_| {}).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("loss became NaN at step 1") && msg.contains("checkpoint"), "{msg}");
    std::fs::remove_dir_all(&dir).unwrap();
}
