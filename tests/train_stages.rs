//! The stage chain on micro models: each stage trains a few steps, writes its EMA
//! weights and manifest entry, and the next stage builds on them.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use burn::backend::Flex;
use latentdrive::diffusion::DiffusionConfig;
use latentdrive::model::ModelTier;
use latentdrive::pipeline::Models;
use latentdrive::scenario::InterpolationGuess;
use latentdrive::train::{
    Continuation, GuessNoise, LatentNormKind, LoopConfig, Stage, TrainOptions, continuation, train_stage,
};
use latentdrive::weights::{Manifest, Part, TemporalInit, load_parts};

/// Micro-tier options: `steps` steps of batch 2 (run seed 5, init seed 1) from `run_dir`
/// into `weights`, a held-out loss and a checkpoint at the last step; tests change the rest.
fn micro(stage: Stage, steps: u64, run_dir: PathBuf, weights: PathBuf) -> TrainOptions {
    TrainOptions {
        stage,
        tier: ModelTier::Micro,
        loop_config: LoopConfig {
            steps,
            lr: 1e-3,
            warmup_steps: 1,
            grad_clip: 1.0,
            ema_decay: 0.5,
            checkpoint_every: steps,
            eval_every: steps,
            init_seed: 1,
            data_parallel: 1,
            lr_decay: Default::default(),
        },
        batch: 2,
        seed: 5,
        run_dir,
        weights_dir: weights,
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
    }
}

/// The error message of a run that `opts` must make fail.
fn refusal(opts: &TrainOptions) -> String {
    train_stage(opts, &AtomicBool::new(false), |_| {}).unwrap_err().to_string()
}

/// Trains `opts` to the end and returns the training loss of each step it ran.
fn step_losses(opts: &TrainOptions) -> Vec<f32> {
    let mut losses = Vec::new();
    train_stage(opts, &AtomicBool::new(false), |e| {
        if let latentdrive::train::Event::Step { loss, .. } = e {
            losses.push(loss);
        }
    })
    .unwrap();
    losses
}

#[test]
fn every_stage_builds_on_the_previous_ones() {
    // A latent wider than the tier's 4 channels: every later stage follows the autoencoder's.
    const Z: usize = 6;
    let tier = || ModelTier::Micro.config().with_latent_channels(Z);
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
        let mut opts = micro(stage, 3, root.join(stage.run_name()), weights.clone());
        opts.loop_config.checkpoint_every = 2;
        opts.latent_channels = (stage == Stage::Autoencoder).then_some(Z);
        // v-prediction on a zero-terminal-SNR schedule; the video stages take it over.
        opts.diffusion = (stage == Stage::ImageLdm).then(DiffusionConfig::v_zero_snr);
        // Per-channel latent statistics; the video stages take them over too.
        opts.latent_norm = (stage == Stage::ImageLdm).then_some(LatentNormKind::Channel);
        let report = train_stage(&opts, &never, |_| {}).unwrap();
        assert_eq!(report.summary.last_step, 3);
        assert!(report.summary.held_out.last().is_some_and(|(_, l)| l.is_finite()));
        assert!(report.weights.unwrap().exists());
        // Every stage draws what it does on held-out data at its checkpoints.
        let grid = image::open(root.join(stage.run_name()).join("samples.png"));
        assert!(grid.is_ok_and(|g| g.width() > 0), "{stage:?}: no samples.png");
    }
    let manifest = Manifest::read(&weights).unwrap();
    manifest.verify(&weights).unwrap();
    let names: Vec<&str> = manifest.models.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["autoencoder", "temporal_decoder", "image_ldm", "video_ldm", "interpolator", "upsampler"]);
    let ae = manifest.model("autoencoder").unwrap();
    let scale = ae.latent_scale.unwrap();
    assert!(scale.is_finite() && scale > 0.0);
    assert!(ae.training.as_ref().unwrap().notes.contains("held-out PSNR"), "{:?}", ae.training);
    // The temporal decoder: its fine-tuned decoder and temporal blocks, in two files.
    let td = manifest.model("temporal_decoder").unwrap();
    let (spatial, temporal) = (
        td.file_path(&weights, Part::Spatial).unwrap().unwrap(),
        td.file_path(&weights, Part::Temporal).unwrap().unwrap(),
    );
    let decoder = tier().autoencoder.with_temporal_decoder(true).init::<Flex>(&Default::default()).decoder;
    load_parts(decoder, &spatial, Some(&temporal), TemporalInit::Require).unwrap();
    // The video model is the image LDM's spatial file plus its own temporal file.
    let video = manifest.model("video_ldm").unwrap();
    let spatial = video.file_path(&weights, Part::Spatial).unwrap().unwrap();
    let temporal = video.file_path(&weights, Part::Temporal).unwrap().unwrap();
    assert!(spatial.ends_with("image_ldm.safetensors"));
    let cfg = tier().video_ldm;
    load_parts(cfg.init::<Flex>(&Default::default()), &spatial, Some(&temporal), TemporalInit::Require).unwrap();
    let interp = manifest.model("interpolator").unwrap();
    let temporal = interp.file_path(&weights, Part::Temporal).unwrap().unwrap();
    let cfg = tier().interpolator;
    load_parts(cfg.init::<Flex>(&Default::default()), &spatial, Some(&temporal), TemporalInit::Require).unwrap();
    // The upsampler's entry: its image-phase spatial file plus the video phase's temporal file.
    let up = manifest.model("upsampler").unwrap();
    let (spatial, temporal) = (
        up.file_path(&weights, Part::Spatial).unwrap().unwrap(),
        up.file_path(&weights, Part::Temporal).unwrap().unwrap(),
    );
    let cfg = ModelTier::Micro.config().upsampler;
    load_parts(cfg.init::<Flex>(&Default::default()), &spatial, Some(&temporal), TemporalInit::Require).unwrap();
    // The pipeline draws latents of the autoencoder's width and samples with the LDMs' diffusion.
    for name in ["image_ldm", "video_ldm", "interpolator"] {
        assert_eq!(manifest.model(name).unwrap().diffusion, Some(DiffusionConfig::v_zero_snr()), "{name}");
    }
    let models = Models::<Flex>::load(&weights, &Default::default()).unwrap();
    assert_eq!(models.latent_shape(), (Z, 4, 8));
    assert_eq!(models.diffusion, DiffusionConfig::v_zero_snr());
    // The image LDM's per-channel latent normalisation: recorded, one shift and scale per
    // channel, the same in the video entries, and the one generation decodes with.
    let norm = manifest.model("image_ldm").unwrap().latent_norm.clone().expect("recorded");
    assert!(norm.check(Z).is_ok() && !norm.is_uniform(), "{norm:?}");
    for name in ["video_ldm", "interpolator"] {
        assert_eq!(manifest.model(name).unwrap().latent_norm.as_ref(), Some(&norm), "{name}");
    }
    assert_eq!(models.latent_norm, norm);
    // A video model trained on latents normalised otherwise cannot load.
    let mut edited = manifest.clone();
    edited.models.iter_mut().find(|m| m.name == "video_ldm").unwrap().latent_norm = None;
    edited.write(&weights).unwrap();
    let err = Models::<Flex>::load(&weights, &Default::default()).err().unwrap().to_string();
    assert!(err.contains("video_ldm") && err.contains("normalised otherwise"), "{err}");
    manifest.write(&weights).unwrap();
    // A video model trained with another diffusion than its image LDM's cannot load.
    let mut edited = manifest.clone();
    edited.models.iter_mut().find(|m| m.name == "interpolator").unwrap().diffusion = None;
    edited.write(&weights).unwrap();
    let err = Models::<Flex>::load(&weights, &Default::default()).err().unwrap().to_string();
    assert!(err.contains("interpolator") && err.contains("spatial layers"), "{err}");
    manifest.write(&weights).unwrap();
    // A continued image LDM keeps the latent normalisation it was trained on (a copy of the
    // folder, so that the video stages here stay fitted to their image LDM).
    let continued = root.join("continued");
    std::fs::create_dir_all(&continued).unwrap();
    for f in std::fs::read_dir(&weights).unwrap().flatten() {
        std::fs::copy(f.path(), continued.join(f.file_name())).unwrap();
    }
    let mut opts = micro(Stage::ImageLdm, 1, root.join("continue"), continued.clone());
    opts.init_from = Some(weights.clone());
    opts.latent_norm = Some(LatentNormKind::Global);
    let err = refusal(&opts);
    assert!(err.contains("--latent-norm global") && err.contains("trained with channel"), "{err}");
    opts.latent_norm = None;
    train_stage(&opts, &never, |_| {}).unwrap();
    let again = Manifest::read(&continued).unwrap();
    assert_eq!(again.model("image_ldm").unwrap().latent_norm.as_ref(), Some(&norm));
    // --latent-channels is the autoencoder's alone.
    let mut opts = micro(Stage::ImageLdm, 1, root.join("refused"), weights.clone());
    opts.latent_channels = Some(8);
    let err = refusal(&opts);
    assert!(err.contains("autoencoder stage only"), "{err}");
    // An autoencoder of another width makes the folder's LDMs unusable: loading says so.
    (opts.stage, opts.latent_channels, opts.run_dir) = (Stage::Autoencoder, None, root.join("ae4"));
    train_stage(&opts, &never, |_| {}).unwrap();
    let err = Models::<Flex>::load(&weights, &Default::default()).err().unwrap().to_string();
    assert!(err.contains("6-channel latents") && err.contains("4-channel ones"), "{err}");
    std::fs::remove_dir_all(&root).unwrap();
}

/// `--data`: stages read an on-disk `synth` dataset instead of rendering; a dataset that
/// cannot feed a stage is refused before training with the reason.
#[test]
fn stages_train_from_an_on_disk_dataset() {
    use latentdrive::data::{SynthOptions, write_dataset};
    let root = std::env::temp_dir().join(format!("latentdrive-data-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let data = root.join("data");
    std::fs::create_dir_all(&data).unwrap();
    // 64×32 frames: twice the micro key-frame size, scaled down when read.
    let synth = SynthOptions { clips: 3, frames: 6, fps: 10.0, width: 64, height: 32, first_seed: 100 };
    write_dataset(&data, &synth, |_| {}).unwrap();
    let never = AtomicBool::new(false);
    let opts = |stage: Stage| TrainOptions {
        data: Some(data.clone()),
        ..micro(stage, 2, root.join(stage.run_name()), root.join("weights"))
    };
    let report = train_stage(&opts(Stage::Autoencoder), &never, |_| {}).unwrap();
    assert_eq!(report.summary.last_step, 2);
    assert!(report.summary.held_out.last().is_some_and(|(_, l)| l.is_finite()));
    // The temporal decoder cuts 4 frames at 2.5 Hz: stride 4 needs 13 frames, the clips have 6.
    let err = refusal(&opts(Stage::TemporalDecoder));
    assert!(err.contains("clips of 4 frames at 2.5 Hz") && err.contains("6 frames at 10 Hz"), "{err}");
    // The upsampler needs frames 4× the key frames (64×128); these are 64×32.
    let err = refusal(&opts(Stage::Upsampler));
    assert!(err.contains("frames are 64×32"), "{err}");
    let _ = std::fs::remove_dir_all(&root);
}

/// `train decoder`: the autoencoder's decoder changes, its encoder and latent scale stay
/// exactly as they were (later stages were trained on that latent space), and the
/// training facts add up without counting a repeated fine-tuning twice.
#[test]
fn decoder_fine_tuning_keeps_the_encoder_and_the_latent_scale() {
    use burn::tensor::{Distribution, Tensor};
    let root = std::env::temp_dir().join(format!("latentdrive-decoder-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let weights = root.join("weights");
    let never = AtomicBool::new(false);
    let opts = |stage: Stage, steps: u64| {
        let mut o = micro(stage, steps, root.join(format!("{}-{steps}", stage.run_name())), weights.clone());
        o.loop_config.checkpoint_every = 100;
        o
    };
    let device = Default::default();
    let load = || {
        let file = weights.join("autoencoder.safetensors");
        let init = ModelTier::Micro.config().autoencoder.init::<Flex>(&device);
        load_parts(init, &file, None, TemporalInit::Require).unwrap()
    };
    let x = Tensor::<Flex, 4>::random([2, 3, 16, 32], Distribution::Normal(0.0, 0.5), &device);
    let z = Tensor::<Flex, 4>::random([2, 4, 4, 8], Distribution::Normal(0.0, 1.0), &device);

    train_stage(&opts(Stage::Autoencoder, 3), &never, |_| {}).unwrap();
    let before = load();
    let entry_before = Manifest::read(&weights).unwrap().model("autoencoder").unwrap().clone();
    // Fine-tuned twice, the second run starting from the first's decoder: 3 + 4, then 3 + 4 + 2 steps.
    let mut trained = 3;
    for steps in [4, 2] {
        let report = train_stage(&opts(Stage::Decoder, steps), &never, |_| {}).unwrap();
        assert_eq!(report.summary.last_step, steps);
        let after = load();
        let (mean_before, _) = before.encoder.forward(x.clone());
        let (mean_after, _) = after.encoder.forward(x.clone());
        assert_eq!(mean_before.into_data(), mean_after.into_data(), "the encoder changed");
        let (dec_before, dec_after) = (before.decoder.forward(z.clone(), 1), after.decoder.forward(z.clone(), 1));
        assert_ne!(dec_before.into_data(), dec_after.into_data(), "the decoder did not train");
        let manifest = Manifest::read(&weights).unwrap();
        manifest.verify(&weights).unwrap();
        let entry = manifest.model("autoencoder").unwrap();
        assert_eq!(entry.latent_scale, entry_before.latent_scale);
        let facts = entry.training.as_ref().unwrap();
        assert_eq!(facts.base.as_ref().unwrap().steps, trained);
        trained += steps;
        assert_eq!(facts.steps, trained, "{facts:?}");
        assert!(
            facts
                .notes
                .starts_with(&format!("decoder fine-tuned with the encoder frozen (latent scale kept): {steps} steps")),
            "{}",
            facts.notes
        );
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn init_from_continues_a_trained_model_and_adds_up_its_training() {
    let root = std::env::temp_dir().join(format!("latentdrive-init-from-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let never = AtomicBool::new(false);
    let opts = |stage: Stage, weights: &str, init_from: Option<&str>| {
        let mut o = micro(stage, 2, root.join(format!("{weights}-{}", stage.run_name())), root.join(weights));
        o.loop_config.checkpoint_every = 100;
        o.init_from = init_from.map(|d| root.join(d));
        o
    };
    let device = Default::default();
    let cfg = ModelTier::Micro.config();
    let ae = |dir: &str| {
        let init = cfg.autoencoder.init::<Flex>(&device);
        load_parts(init, &root.join(dir).join("autoencoder.safetensors"), None, TemporalInit::Require).unwrap()
    };
    let distance = |a: &latentdrive::model::Autoencoder<Flex>, b: &latentdrive::model::Autoencoder<Flex>| {
        let (wa, wb) = (a.decoder.conv_out.weight.val(), b.decoder.conv_out.weight.val());
        (wa - wb).abs().max().into_scalar()
    };

    // A trained folder A (autoencoder, temporal decoder, image LDM, video LDM) from other initial weights.
    for stage in [Stage::Autoencoder, Stage::TemporalDecoder, Stage::ImageLdm, Stage::VideoLdm] {
        let mut o = opts(stage, "a", None);
        o.loop_config.init_seed = 7;
        train_stage(&o, &never, |_| {}).unwrap();
    }
    // B continues A's autoencoder; C starts fresh with B's seeds.
    train_stage(&opts(Stage::Autoencoder, "b", Some("a")), &never, |_| {}).unwrap();
    train_stage(&opts(Stage::Autoencoder, "c", None), &never, |_| {}).unwrap();
    let (a, b, c) = (ae("a"), ae("b"), ae("c"));
    // Two steps of lr 1e-3 move B a little from A; C is another model altogether.
    let (ab, ac) = (distance(&a, &b), distance(&a, &c));
    assert!(ab < 1e-2 && ac > 10.0 * ab, "B starts from A, C from a fresh init: |A−B| {ab}, |A−C| {ac}");
    let facts = Manifest::read(&root.join("b")).unwrap().model("autoencoder").unwrap().training.clone().unwrap();
    assert_eq!(facts.steps, 4, "{facts:?}");
    assert_eq!(facts.base.as_ref().map(|f| f.steps), Some(2));
    assert!(facts.notes.starts_with("continued from the weights in"), "{}", facts.notes);

    // Continuing B again counts B's own steps too; a run stopped and resumed does not
    // count its first part twice.
    train_stage(&opts(Stage::Autoencoder, "e", Some("b")), &never, |_| {}).unwrap();
    let facts = Manifest::read(&root.join("e")).unwrap().model("autoencoder").unwrap().training.clone().unwrap();
    assert_eq!((facts.steps, facts.base.as_ref().map(|f| f.steps)), (6, Some(4)), "{facts:?}");
    let stop_at_one = AtomicBool::new(false);
    let mut first = opts(Stage::Autoencoder, "d", Some("a"));
    first.loop_config.checkpoint_every = 1;
    let report = train_stage(&first, &stop_at_one, |e| {
        if matches!(e, latentdrive::train::Event::Step { step: 1, .. }) {
            stop_at_one.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    })
    .unwrap();
    assert_eq!(report.summary.last_step, 1, "stopped after one step");
    let mut rest = opts(Stage::Autoencoder, "d", Some("d"));
    rest.resume = true;
    rest.run_dir = first.run_dir.clone();
    train_stage(&rest, &never, |_| {}).unwrap();
    let facts = Manifest::read(&root.join("d")).unwrap().model("autoencoder").unwrap().training.clone().unwrap();
    assert_eq!((facts.steps, facts.base.as_ref().map(|f| f.steps)), (4, Some(2)), "{facts:?}");
    // The same from a folder that is itself a continuation (B: 4 steps on top of 2): the
    // resumed run counts all of B, not B's base.
    let stop_at_one = AtomicBool::new(false);
    let mut first = opts(Stage::Autoencoder, "f", Some("b"));
    first.loop_config.checkpoint_every = 1;
    train_stage(&first, &stop_at_one, |e| {
        if matches!(e, latentdrive::train::Event::Step { step: 1, .. }) {
            stop_at_one.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    })
    .unwrap();
    let mut rest = first.clone();
    rest.resume = true;
    train_stage(&rest, &never, |_| {}).unwrap();
    let facts = Manifest::read(&root.join("f")).unwrap().model("autoencoder").unwrap().training.clone().unwrap();
    assert_eq!((facts.steps, facts.base.as_ref().map(|f| f.steps)), (6, Some(4)), "{facts:?}");
    // Weights whose training was not recorded (a hand-made folder): the continuation says
    // so and counts its own steps only.
    let g = root.join("g");
    std::fs::create_dir_all(&g).unwrap();
    std::fs::copy(root.join("a/autoencoder.safetensors"), g.join("autoencoder.safetensors")).unwrap();
    let mut manifest = Manifest::read(&root.join("a")).unwrap();
    manifest.models.retain(|m| m.name == "autoencoder");
    manifest.models[0].training = None;
    manifest.write(&g).unwrap();
    train_stage(&opts(Stage::Autoencoder, "h", Some("g")), &never, |_| {}).unwrap();
    let facts = Manifest::read(&root.join("h")).unwrap().model("autoencoder").unwrap().training.clone().unwrap();
    assert_eq!((facts.steps, facts.base.is_none()), (2, true), "{facts:?}");
    assert_eq!(continuation(&facts), Some(Continuation::Unrecorded), "{}", facts.notes);

    // The temporal decoder, the image LDM and the video LDM's temporal layers continue too.
    train_stage(&opts(Stage::TemporalDecoder, "b", Some("a")), &never, |_| {}).unwrap();
    train_stage(&opts(Stage::ImageLdm, "b", Some("a")), &never, |_| {}).unwrap();
    train_stage(&opts(Stage::VideoLdm, "b", Some("a")), &never, |_| {}).unwrap();
    let manifest = Manifest::read(&root.join("b")).unwrap();
    for name in ["temporal_decoder", "image_ldm", "video_ldm"] {
        let facts = manifest.model(name).unwrap().training.as_ref().unwrap();
        assert_eq!(facts.steps, 4, "{name}");
        assert_eq!(continuation(facts), Some(Continuation::Recorded), "{name}: {}", facts.notes);
    }

    // The upsampler: A's video phase counts its image phase as its base; B's image phase
    // continues A's (counting A's image phase, not its video phase), then B's video phase
    // starts its temporal layers from A's and counts B's image phase.
    for (stage, init) in [(Stage::Upsampler, None), (Stage::UpsamplerVideo, None)] {
        let mut o = opts(stage, "a", init);
        o.loop_config.init_seed = 7;
        train_stage(&o, &never, |_| {}).unwrap();
    }
    let upsampler = |dir: &str| Manifest::read(&root.join(dir)).unwrap().model("upsampler").unwrap().clone();
    let facts = upsampler("a").training.unwrap();
    assert_eq!((facts.steps, facts.base.as_ref().map(|f| f.steps)), (4, Some(2)), "{facts:?}");
    assert!(facts.notes.starts_with("temporal layers video-fine-tuned"), "{}", facts.notes);
    assert_eq!(continuation(&facts), None, "a video phase on its image phase continues nothing: {}", facts.notes);
    assert!(facts.data.contains(" crops of "), "{}", facts.data);
    train_stage(&opts(Stage::Upsampler, "b", Some("a")), &never, |_| {}).unwrap();
    train_stage(&opts(Stage::Upsampler, "c", None), &never, |_| {}).unwrap();
    // B's upsampler has no temporal layers yet to start a video phase from.
    let err = train_stage(&opts(Stage::UpsamplerVideo, "c", Some("b")), &never, |_| {}).unwrap_err();
    assert!(err.to_string().contains("its upsampler has no temporal layers yet"), "{err}");
    let facts = upsampler("b").training.unwrap();
    assert_eq!((facts.steps, facts.base.as_ref().map(|f| f.steps)), (4, Some(2)), "{facts:?}");
    assert!(facts.notes.starts_with("continued from the image phase's weights in"), "{}", facts.notes);
    assert_eq!(continuation(&facts), Some(Continuation::Recorded), "{}", facts.notes);
    let image_upsampler = |dir: &str| {
        let mut config = cfg.upsampler.clone();
        config.unet = config.unet.image_config();
        let path = root.join(dir).join("upsampler.safetensors");
        load_parts(config.init::<Flex>(&device), &path, None, TemporalInit::Require).unwrap()
    };
    let conv_in = |dir: &str| image_upsampler(dir).unet.conv_in.weight.val();
    let (ab, ac) = (
        (conv_in("a") - conv_in("b")).abs().max().into_scalar(),
        (conv_in("a") - conv_in("c")).abs().max().into_scalar(),
    );
    assert!(ac > 10.0 * ab, "B's upsampler starts from A's, C's from a fresh init: |A−B| {ab}, |A−C| {ac}");
    train_stage(&opts(Stage::UpsamplerVideo, "b", Some("a")), &never, |_| {}).unwrap();
    let entry = upsampler("b");
    let facts = entry.training.clone().unwrap();
    assert_eq!((facts.steps, facts.base.as_ref().map(|f| f.steps)), (6, Some(4)), "{facts:?}");
    assert!(facts.notes.contains("temporal layers started from the ones in"), "{}", facts.notes);
    assert_eq!(continuation(&facts), Some(Continuation::TemporalLayers), "{}", facts.notes);
    assert!(entry.file(Part::Temporal).is_some());

    // A stage it cannot start, and a folder of another tier, are clear errors.
    let err = train_stage(&opts(Stage::Decoder, "b", Some("a")), &never, |_| {}).unwrap_err();
    assert!(err.to_string().contains("--init-from is not supported for the decoder stage"), "{err}");
    let mut other = opts(Stage::Autoencoder, "b", Some("a"));
    other.tier = ModelTier::Tiny;
    let err = train_stage(&other, &never, |_| {}).unwrap_err();
    assert!(err.to_string().contains("its weights are tier Micro"), "{err}");
    let err = train_stage(&opts(Stage::Autoencoder, "d", Some("missing")), &never, |_| {}).unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
    let _ = std::fs::remove_dir_all(&root);
}

/// `--resume` rebuilds the model its run started with: the flags that shape it
/// (`--latent-channels`, the diffusion, `--init-from`) are kept in the run folder, and one
/// given again with another value is refused before any work.
#[test]
fn resume_continues_the_model_its_run_started_with() {
    let root = std::env::temp_dir().join(format!("latentdrive-resume-options-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let (run, weights) = (root.join("ae"), root.join("weights"));
    let never = AtomicBool::new(false);
    let mut opts = micro(Stage::Autoencoder, 2, run.clone(), weights.clone());
    opts.latent_channels = Some(6);
    train_stage(&opts, &never, |_| {}).unwrap();
    // Resumed without the flag: the 6-channel model goes on (the tier's preset has 4).
    let mut resumed = micro(Stage::Autoencoder, 4, run, weights.clone());
    resumed.resume = true;
    let report = train_stage(&resumed, &never, |_| {}).unwrap();
    assert_eq!((report.summary.first_step, report.summary.last_step), (2, 4));
    let manifest = Manifest::read(&weights).unwrap();
    let entry = manifest.model("autoencoder").unwrap();
    let config: latentdrive::model::AutoencoderConfig = entry.config(&Manifest::path(&weights)).unwrap();
    assert_eq!(config.latent_channels, 6);
    assert_eq!(entry.training.as_ref().unwrap().steps, 4);
    resumed.latent_channels = Some(5);
    let err = refusal(&resumed);
    assert!(err.contains("--latent-channels 6, not 5"), "{err}");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn disc_start_sets_the_step_the_adversary_joins() {
    let root = std::env::temp_dir().join(format!("latentdrive-disc-start-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let weights = root.join("weights");
    let never = AtomicBool::new(false);
    train_stage(&micro(Stage::Autoencoder, 2, root.join("ae"), weights.clone()), &never, |_| {}).unwrap();
    // The training losses of 2 temporal-decoder steps, the adversary joining at `disc_start`.
    let losses = |disc_start: u64| {
        let mut opts = micro(Stage::TemporalDecoder, 2, root.join(format!("td{disc_start}")), weights.clone());
        opts.disc_start = Some(disc_start);
        step_losses(&opts)
    };
    let (reconstruction, adversarial) = (losses(100), losses(1));
    // Step 0 is reconstruction in both runs, so step 1 starts from the same weights; there
    // the discriminator's hinge loss (about 2 for an untrained one) joins the second run's.
    assert_eq!(reconstruction[0], adversarial[0]);
    assert!(adversarial[1] > reconstruction[1] + 1.0, "{reconstruction:?} vs {adversarial:?}");
    // A run resumed without the flag keeps its own: stopped after step 0 and resumed with
    // more steps (whose default would be later), the adversary still joins at step 1.
    let mut first = micro(Stage::TemporalDecoder, 1, root.join("td-resumed"), weights.clone());
    first.disc_start = Some(1);
    train_stage(&first, &never, |_| {}).unwrap();
    let mut resumed = micro(Stage::TemporalDecoder, 2, root.join("td-resumed"), weights.clone());
    resumed.resume = true;
    assert_eq!(step_losses(&resumed), [adversarial[1]]);
    resumed.disc_start = Some(5);
    let err = refusal(&resumed);
    assert!(err.contains("--disc-start 1, not 5"), "{err}");
    // Other stages refuse the flag.
    let mut opts = micro(Stage::ImageLdm, 1, root.join("ldm"), weights);
    opts.disc_start = Some(1);
    let err = refusal(&opts);
    assert!(err.contains("--disc-start applies to the temporal-decoder stage only"), "{err}");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn high_noise_and_guess_share_change_the_video_stages_training_and_are_kept_on_resume() {
    let root = std::env::temp_dir().join(format!("latentdrive-high-noise-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let weights = root.join("weights");
    let never = AtomicBool::new(false);
    for stage in [Stage::Autoencoder, Stage::ImageLdm] {
        train_stage(&micro(stage, 2, root.join(stage.run_name()), weights.clone()), &never, |_| {}).unwrap();
    }
    // The training losses of 2 video-LDM steps with a high-noise share.
    let losses = |name: &str, share: Option<f64>| {
        let mut opts = micro(Stage::VideoLdm, 2, root.join(name), weights.clone());
        opts.high_noise = share;
        step_losses(&opts)
    };
    let uniform = losses("uniform", None);
    // A share of 0 draws exactly the uniform timesteps; a share of 1 draws other ones.
    assert_eq!(losses("zero", Some(0.0)), uniform);
    let high = losses("high", Some(1.0));
    assert_ne!(high[0], uniform[0], "the first step's timesteps did not move");
    // Recorded in the run folder: a resume with another share is refused.
    let mut resumed = micro(Stage::VideoLdm, 3, root.join("high"), weights.clone());
    resumed.resume = true;
    resumed.high_noise = Some(0.5);
    let err = refusal(&resumed);
    assert!(err.contains("--high-noise 1, not 0.5"), "{err}");
    // Stages other than the video LDM and interpolator refuse it, and so does a share outside [0, 1].
    let mut opts = micro(Stage::ImageLdm, 1, root.join("ldm"), weights.clone());
    opts.high_noise = Some(0.5);
    let err = refusal(&opts);
    assert!(err.contains("--high-noise applies to the video-ldm and interpolator stages only"), "{err}");
    let mut opts = micro(Stage::Interpolator, 1, root.join("interp"), weights.clone());
    opts.high_noise = Some(1.5);
    let err = refusal(&opts);
    assert!(err.contains("--high-noise takes a share in [0, 1], not 1.5"), "{err}");

    // The guess share: 0 trains exactly as without it; 1 noises the clips with context from
    // generation's guess (other inputs, other losses): the prediction guide's for the video
    // LDM, for the interpolator the straight line between the known frames or (the default)
    // the known frames moved by the ego's travel; recorded for resumes.
    let guessed_by = |stage: Stage, name: &str, share: Option<f64>, guess: Option<InterpolationGuess>| {
        let mut opts = micro(stage, 2, root.join(name), weights.clone());
        (opts.guess_share, opts.interpolation_guess) = (share, guess);
        step_losses(&opts)
    };
    let guessed = |stage: Stage, name: &str, share: Option<f64>| guessed_by(stage, name, share, None);
    assert_eq!(guessed(Stage::VideoLdm, "guess-zero", Some(0.0)), uniform);
    let guess = guessed(Stage::VideoLdm, "guess-all", Some(1.0));
    assert!(guess.iter().all(|l| l.is_finite()), "{guess:?}");
    assert_ne!(guess, uniform, "no step's clips were noised from the guess");
    let interpolated = guessed(Stage::Interpolator, "blend-none", None);
    assert_eq!(guessed(Stage::Interpolator, "blend-zero", Some(0.0)), interpolated);
    let blended = guessed_by(Stage::Interpolator, "blend-all", Some(1.0), Some(InterpolationGuess::Blend));
    assert!(blended.iter().all(|l| l.is_finite()), "{blended:?}");
    assert_ne!(blended, interpolated, "no step's clips were noised from the blend");
    // The default is generation's, the straight line.
    assert_eq!(guessed(Stage::Interpolator, "blend-default", Some(1.0)), blended);
    // The ego guess fits the travel to the keys (`pipeline::ego`'s tests check it on renders):
    // the micro autoencoder, trained 2 steps, decodes every key to nearly the same picture,
    // which no travel moves nearer the next, so here it is the straight line exactly.
    let moved = guessed_by(Stage::Interpolator, "moved-all", Some(1.0), Some(InterpolationGuess::Ego));
    assert_eq!(moved, blended, "keys that show no motion trained off the straight line");
    let mut resumed = micro(Stage::Interpolator, 3, root.join("moved-all"), weights.clone());
    (resumed.resume, resumed.interpolation_guess) = (true, Some(InterpolationGuess::Blend));
    let err = refusal(&resumed);
    assert!(err.contains("--interpolation-guess ego, not blend"), "{err}");
    // A run recorded before the option trained on the straight line and resumes so.
    let record = root.join("blend-default").join("options.json");
    let mut json: serde_json::Value = serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    assert_eq!(json.as_object_mut().unwrap().remove("interpolation_guess"), Some("Blend".into()));
    std::fs::write(&record, serde_json::to_vec(&json).unwrap()).unwrap();
    let mut resumed = micro(Stage::Interpolator, 3, root.join("blend-default"), weights.clone());
    (resumed.resume, resumed.interpolation_guess) = (true, Some(InterpolationGuess::Ego));
    let err = refusal(&resumed);
    assert!(err.contains("--interpolation-guess blend, not ego"), "{err}");
    for (stage, share, expected) in [
        (Stage::VideoLdm, Some(1.0), "--interpolation-guess applies to the interpolator stage only"),
        (Stage::Interpolator, None, "--interpolation-guess needs a --guess-share above 0"),
    ] {
        let mut opts = micro(stage, 1, root.join("guess-kind-refused"), weights.clone());
        (opts.guess_share, opts.interpolation_guess) = (share, Some(InterpolationGuess::Ego));
        let err = refusal(&opts);
        assert!(err.contains(expected), "{err}");
    }
    // Where the guessed clips are noised: `middle` is the default; `low` draws other
    // timesteps and takes those clips' loss on x̂_0; recorded for resumes.
    let noised = |name: &str, noise: Option<GuessNoise>| {
        let mut opts = micro(Stage::Interpolator, 2, root.join(name), weights.clone());
        (opts.guess_share, opts.guess_noise) = (Some(1.0), noise);
        opts.interpolation_guess = Some(InterpolationGuess::Blend);
        step_losses(&opts)
    };
    assert_eq!(noised("blend-middle", Some(GuessNoise::Middle)), blended);
    let low = noised("blend-low", Some(GuessNoise::Low));
    assert!(low.iter().all(|l| l.is_finite()), "{low:?}");
    assert_ne!(low, blended, "the low-noise clips trained as the middle ones");
    let mut resumed = micro(Stage::Interpolator, 3, root.join("blend-low"), weights.clone());
    (resumed.resume, resumed.guess_share, resumed.guess_noise) = (true, Some(1.0), Some(GuessNoise::Middle));
    let err = refusal(&resumed);
    assert!(err.contains("--guess-noise low, not middle"), "{err}");
    let mut opts = micro(Stage::Interpolator, 1, root.join("noise-refused"), weights.clone());
    opts.guess_noise = Some(GuessNoise::Low);
    let err = refusal(&opts);
    assert!(err.contains("--guess-noise needs a --guess-share above 0"), "{err}");
    let mut resumed = micro(Stage::VideoLdm, 3, root.join("guess-all"), weights.clone());
    resumed.resume = true;
    resumed.guess_share = Some(0.5);
    let err = refusal(&resumed);
    assert!(err.contains("--guess-share 1, not 0.5"), "{err}");
    for (stage, share, data, expected) in [
        (Stage::ImageLdm, 0.5, None, "--guess-share applies to the video-ldm and interpolator stages only"),
        (Stage::VideoLdm, -0.1, None, "--guess-share takes a share in [0, 1], not -0.1"),
        (Stage::VideoLdm, 0.5, Some(root.join("dataset")), "only rendered clips record"),
    ] {
        let mut opts = micro(stage, 1, root.join("guess-refused"), weights.clone());
        (opts.guess_share, opts.data) = (Some(share), data);
        let err = refusal(&opts);
        assert!(err.contains(expected), "{err}");
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn edge_weight_changes_the_upsampler_training_loss_only_and_is_kept_on_resume() {
    let root = std::env::temp_dir().join(format!("latentdrive-edge-weight-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let weights = root.join("weights");
    // At lr 0 the weights stay put, so the held-out loss after the step compares the losses.
    let run = |name: &str, weight: Option<f64>| {
        let mut opts = micro(Stage::Upsampler, 1, root.join(name), weights.clone());
        (opts.loop_config.lr, opts.edge_weight) = (0.0, weight);
        let (mut steps, mut held_out) = (Vec::new(), Vec::new());
        train_stage(&opts, &AtomicBool::new(false), |e| match e {
            latentdrive::train::Event::Step { loss, .. } => steps.push(loss),
            latentdrive::train::Event::HeldOut { loss, .. } => held_out.push(loss),
            _ => {}
        })
        .unwrap();
        (steps, held_out)
    };
    let plain = run("plain", None);
    assert_eq!(plain.1.len(), 1, "one held-out evaluation: {plain:?}");
    assert_eq!(run("zero", Some(0.0)), plain, "a weight of 0 is the plain loss");
    let edged = run("edged", Some(1.0));
    assert!(edged.0[0] > plain.0[0], "the training loss did not add the edge term: {edged:?} vs {plain:?}");
    assert_eq!(edged.1, plain.1, "the held-out loss must stay the squared error");
    // Recorded in the run folder: a resume with another weight is refused.
    let mut resumed = micro(Stage::Upsampler, 2, root.join("edged"), weights.clone());
    (resumed.resume, resumed.edge_weight) = (true, Some(0.5));
    let err = refusal(&resumed);
    assert!(err.contains("--edge-weight 1, not 0.5"), "{err}");
    for (stage, weight, expected) in [
        (Stage::ImageLdm, 0.1, "--edge-weight applies to the upsampler and upsampler-video stages only"),
        (Stage::UpsamplerVideo, f64::NAN, "--edge-weight takes a weight ≥ 0, not NaN"),
        (Stage::Upsampler, -1.0, "--edge-weight takes a weight ≥ 0, not -1"),
    ] {
        let mut opts = micro(stage, 1, root.join("edge-refused"), weights.clone());
        opts.edge_weight = Some(weight);
        let err = refusal(&opts);
        assert!(err.contains(expected), "{err}");
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn box_weight_changes_the_image_ldm_training_and_is_kept_on_resume() {
    let root = std::env::temp_dir().join(format!("latentdrive-box-weight-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let weights = root.join("weights");
    train_stage(&micro(Stage::Autoencoder, 2, root.join("ae"), weights.clone()), &AtomicBool::new(false), |_| {})
        .unwrap();
    let losses = |name: &str, weight: Option<f64>| {
        let mut opts = micro(Stage::ImageLdm, 2, root.join(name), weights.clone());
        opts.box_weight = weight;
        step_losses(&opts)
    };
    let uniform = losses("uniform", None);
    // A weight of 0 is the uniform loss; a weight on the boxes moves the same step's loss.
    assert_eq!(losses("zero", Some(0.0)), uniform);
    let boxed = losses("boxed", Some(4.0));
    assert!(boxed.iter().all(|l| l.is_finite()), "{boxed:?}");
    assert_ne!(boxed[0], uniform[0], "the first step's loss did not weigh the boxes");
    // Recorded in the run folder: a resume with another weight is refused.
    let mut resumed = micro(Stage::ImageLdm, 3, root.join("boxed"), weights.clone());
    (resumed.resume, resumed.box_weight) = (true, Some(1.0));
    let err = refusal(&resumed);
    assert!(err.contains("--box-weight 4, not 1"), "{err}");
    for (stage, weight, expected) in [
        (Stage::VideoLdm, 4.0, "--box-weight applies to the image-ldm stage only"),
        (Stage::ImageLdm, -1.0, "--box-weight takes a weight ≥ 0, not -1"),
    ] {
        let mut opts = micro(stage, 1, root.join("box-refused"), weights.clone());
        opts.box_weight = Some(weight);
        let err = refusal(&opts);
        assert!(err.contains(expected), "{err}");
    }
    let _ = std::fs::remove_dir_all(&root);
}
