//! The stage chain on micro models: each stage trains a few steps, writes its EMA
//! weights and manifest entry, and the next stage builds on them.

use std::sync::atomic::AtomicBool;

use burn::backend::Flex;
use latentdrive::model::ModelTier;
use latentdrive::train::{LoopConfig, Stage, TrainOptions, train_stage};
use latentdrive::weights::{Manifest, Part, TemporalInit, load_parts};

#[test]
fn every_stage_builds_on_the_previous_ones() {
    let root = std::env::temp_dir().join(format!("latentdrive-stages-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let weights = root.join("weights");
    let never = AtomicBool::new(false);
    for stage in [
        Stage::Autoencoder,
        Stage::TemporalDecoder,
        Stage::ImageLdm,
        Stage::VideoLdm,
        Stage::Interpolator,
        Stage::Upsampler,
        Stage::UpsamplerVideo,
    ] {
        let opts = TrainOptions {
            stage,
            tier: ModelTier::Micro,
            loop_config: LoopConfig {
                steps: 3,
                lr: 1e-3,
                warmup_steps: 1,
                grad_clip: 1.0,
                ema_decay: 0.5,
                checkpoint_every: 2,
                eval_every: 3,
                init_seed: 1,
            },
            batch: 2,
            seed: 5,
            run_dir: root.join(stage.run_name()),
            weights_dir: weights.clone(),
            resume: false,
        };
        let report = train_stage(&opts, &never, |_| {}).unwrap();
        assert_eq!(report.summary.last_step, 3);
        assert!(report.summary.held_out.last().is_some_and(|(_, l)| l.is_finite()));
        assert!(report.weights.unwrap().exists());
    }
    let manifest = Manifest::read(&weights).unwrap();
    manifest.verify(&weights).unwrap();
    let names: Vec<&str> = manifest.models.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["autoencoder", "temporal_decoder", "image_ldm", "video_ldm", "interpolator", "upsampler"]);
    let scale = manifest.model("autoencoder").unwrap().latent_scale.unwrap();
    assert!(scale.is_finite() && scale > 0.0);
    // The temporal decoder: its fine-tuned decoder and temporal blocks, in two files.
    let td = manifest.model("temporal_decoder").unwrap();
    let (spatial, temporal) = (
        td.file_path(&weights, Part::Spatial).unwrap().unwrap(),
        td.file_path(&weights, Part::Temporal).unwrap().unwrap(),
    );
    let decoder =
        ModelTier::Micro.config().autoencoder.with_temporal_decoder(true).init::<Flex>(&Default::default()).decoder;
    load_parts(decoder, &spatial, Some(&temporal), TemporalInit::Require).unwrap();
    // The video model is the image LDM's spatial file plus its own temporal file.
    let video = manifest.model("video_ldm").unwrap();
    let spatial = video.file_path(&weights, Part::Spatial).unwrap().unwrap();
    let temporal = video.file_path(&weights, Part::Temporal).unwrap().unwrap();
    assert!(spatial.ends_with("image_ldm.safetensors"));
    let cfg = ModelTier::Micro.config().video_ldm;
    load_parts(cfg.init::<Flex>(&Default::default()), &spatial, Some(&temporal), TemporalInit::Require).unwrap();
    let interp = manifest.model("interpolator").unwrap();
    let temporal = interp.file_path(&weights, Part::Temporal).unwrap().unwrap();
    let cfg = ModelTier::Micro.config().interpolator;
    load_parts(cfg.init::<Flex>(&Default::default()), &spatial, Some(&temporal), TemporalInit::Require).unwrap();
    // The upsampler's entry: its image-phase spatial file plus the video phase's temporal file.
    let up = manifest.model("upsampler").unwrap();
    let (spatial, temporal) = (
        up.file_path(&weights, Part::Spatial).unwrap().unwrap(),
        up.file_path(&weights, Part::Temporal).unwrap().unwrap(),
    );
    let cfg = ModelTier::Micro.config().upsampler;
    load_parts(cfg.init::<Flex>(&Default::default()), &spatial, Some(&temporal), TemporalInit::Require).unwrap();
    std::fs::remove_dir_all(&root).unwrap();
}
