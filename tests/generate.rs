//! `generate` and `replay` end to end on micro models trained for a few steps (the
//! pictures are meaningless; the files, sizes, labels, determinism and errors are not).
//! `tests/shipped_weights.rs` runs the same chain on the shipped tiny weights.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};

use burn::backend::Flex;
use image::RgbImage;
use latentdrive::export::{BddDataset, CocoDataset, kitti};
use latentdrive::model::ModelTier;
use latentdrive::pipeline::{
    DecoderMode, Event, FrameSink, GenerateOptions, Generator, Models, PipelineError, UpsampleMode,
};
use latentdrive::scenario::InterpolationGuess;

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_latentdrive"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("binary runs")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

mod common;
use common::micro_weights;

fn tmp(tag: &str) -> PathBuf {
    common::tmp(&format!("gen-{tag}"))
}

fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

fn png(path: &Path) -> RgbImage {
    image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).into_rgb8()
}

fn mean_abs_diff(a: &RgbImage, b: &RgbImage) -> f64 {
    a.as_raw().iter().zip(b.as_raw()).map(|(&x, &y)| (x as f64 - y as f64).abs()).sum::<f64>() / a.as_raw().len() as f64
}

#[test]
fn generate_writes_a_complete_run_that_replays_bit_identically() {
    let weights = micro_weights().to_str().unwrap().to_string();
    let (a, b) = (tmp("a"), tmp("b"));
    let args = |out: &Path| {
        let out = out.to_str().unwrap().to_string();
        vec![
            "generate".to_string(),
            "scenarios/night_merge.ron".into(),
            "--out".into(),
            out,
            "--weights".into(),
            weights.clone(),
            "--futures".into(),
            "2".into(),
            "--seconds".into(),
            "2".into(),
            "--steps".into(),
            "3".into(),
            "--upsample-steps".into(),
            "2".into(),
            "--upsample-level".into(),
            "35".into(),
        ]
    };
    for out in [&a, &b] {
        let argv = args(out);
        let o = run(&argv.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(o.status.success(), "{}", text(&o));
    }
    let dir = a.join("night_merge");
    // 2 s at 2.5 Hz: 6 key frames → 5 intervals × 4 + 1 = 21 frames at 10 Hz, 64×128 (micro ×4).
    for f in ["scenario.ron", "metadata.json", "frame0.png", "contact_sheet.png", "labels/coco.json"] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    let frame0 = png(&dir.join("frame0.png"));
    assert_eq!(frame0.dimensions(), (128, 64));
    for k in 0..2 {
        let fd = dir.join(format!("future_{k:02}"));
        assert!(fd.join("preview.gif").is_file());
        let frames = files_under(&fd.join("frames"));
        assert_eq!(frames.len(), 21, "future {k}");
        for (i, f) in frames.iter().enumerate() {
            assert_eq!(f, Path::new(&format!("{i:06}.png")));
            assert_eq!(png(&fd.join("frames").join(f)).dimensions(), (128, 64));
        }
        // Frame 0 is shared by every future.
        assert_eq!(
            std::fs::read(fd.join("frames/000000.png")).unwrap(),
            std::fs::read(dir.join("frame0.png")).unwrap()
        );
    }
    // The futures differ (different noise per future).
    let last = |k: usize| png(&dir.join(format!("future_{k:02}/frames/000020.png")));
    assert!(mean_abs_diff(&last(0), &last(1)) > 0.0);

    // Labels: frame 0 carries the two requested cars; the future frames are unlabeled.
    let coco = CocoDataset::read(&dir.join("labels/coco.json")).unwrap();
    assert_eq!(coco.images.len(), 1);
    assert_eq!(coco.images[0].file_name, "frame0.png");
    assert!(!coco.annotations.is_empty() && coco.annotations.len() <= 2, "{:?}", coco.annotations);
    let bdd = BddDataset::read(&dir.join("labels/bdd100k.json")).unwrap();
    assert_eq!(bdd.frames.len(), 1);
    let rows = kitti::read_tracking(&dir.join("labels/kitti_tracking.txt")).unwrap();
    assert!(rows.iter().all(|r| r.frame == 0));
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("metadata.json")).unwrap()).unwrap();
    assert_eq!(meta["seeds"]["futures"].as_array().unwrap().len(), 2);
    // Replay takes the upsampler's level (like every option) from here.
    assert_eq!(meta["options"]["upsample_level"], 35);
    // autoencoder 1, temporal decoder 2, image LDM 1, video LDM and interpolator 2 each (spatial = the
    // image LDM's), upsampler 2.
    assert_eq!(meta["weights"].as_array().unwrap().len(), 10, "every weights file with its hash");
    assert!(meta["latentdrive_version"].is_string() && meta["timings_s"]["total"].as_f64().unwrap() > 0.0);

    // Twice the same command: the same bytes (metadata differs only in timings).
    let (fa, fb) = (files_under(&dir), files_under(&b.join("night_merge")));
    assert_eq!(fa, fb);
    for f in fa.iter().filter(|f| f.as_os_str() != "metadata.json") {
        assert!(std::fs::read(dir.join(f)).unwrap() == std::fs::read(b.join("night_merge").join(f)).unwrap(), "{f:?}");
    }

    let o = run(&["replay", dir.to_str().unwrap()]);
    assert!(o.status.success() && text(&o).contains("bit-identical"), "{}", text(&o));
    // A changed frame is reported, and replay exits 1.
    std::fs::write(dir.join("future_01/frames/000003.png"), b"not a png").unwrap();
    let o = run(&["replay", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("future_01/frames/000003.png"), "{}", text(&o));
    assert!(!text(&o).contains("made by latentdrive"), "same build: no note\n{}", text(&o));
    // A run made by another build says so (rounding may differ between builds).
    let meta = std::fs::read_to_string(dir.join("metadata.json")).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&meta).unwrap();
    json["git_commit"] = serde_json::Value::String("0123456789abcdef".into());
    std::fs::write(dir.join("metadata.json"), serde_json::to_string_pretty(&json).unwrap()).unwrap();
    let o = run(&["replay", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("the run was made by latentdrive 0.1.0 (commit 0123456789ab)"), "{}", text(&o));
}

#[test]
fn generate_errors_are_clear_and_exit_2() {
    let weights = micro_weights().to_str().unwrap();
    let out = tmp("errors");
    let o =
        run(&["generate", "scenarios/day_empty.ron", "--out", out.to_str().unwrap(), "--weights", "/nonexistent/w"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("no weights in /nonexistent/w") && text(&o).contains("train all"), "{}", text(&o));

    // More boxes than the micro image model has slots (4).
    std::fs::create_dir_all(&out).unwrap();
    let many = out.join("many.ron");
    let boxes = (0..5).map(|i| format!("(class: Car, road: (lane: 0, ahead_m: {}.0))", 10 + 8 * i)).collect::<Vec<_>>();
    std::fs::write(
        &many,
        format!(
            "Scenario(name: \"many\", seed: 1, conditions: (time_of_day: Day, crowdedness: 0), boxes: [{}])",
            boxes.join(", ")
        ),
    )
    .unwrap();
    let o = run(&["generate", many.to_str().unwrap(), "--out", out.to_str().unwrap(), "--weights", weights]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("5 boxes requested") && text(&o).contains("at most 4"), "{}", text(&o));

    // An output root that cannot be created.
    let file = out.join("a-file");
    std::fs::write(&file, "x").unwrap();
    let o = run(&[
        "generate",
        "scenarios/day_empty.ron",
        "--out",
        file.join("sub").to_str().unwrap(),
        "--weights",
        weights,
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("cannot create output folder"), "{}", text(&o));

    // A bad scenario file: file, line and field, nothing generated.
    let bad = out.join("bad.ron");
    std::fs::write(&bad, "Scenario(name: \"b\", seed: 1, conditions: (time_of_day: Dusk, crowdedness: 1))").unwrap();
    let o = run(&["generate", bad.to_str().unwrap(), "--out", out.to_str().unwrap(), "--weights", weights]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("bad.ron:1:"), "{}", text(&o));
}

#[test]
fn a_run_checks_and_loads_only_the_models_it_uses() {
    // A weights folder whose upsampler file is truncated.
    let dir = tmp("broken-upsampler");
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(micro_weights()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
        }
    }
    let upsampler = dir.join("upsampler.safetensors");
    let bytes = std::fs::read(&upsampler).unwrap();
    std::fs::write(&upsampler, &bytes[..bytes.len() / 2]).unwrap();
    let out = dir.join("runs");
    let args = |extra: &[&'static str]| {
        let mut a = vec!["generate", "scenarios/day_empty.ron", "--futures", "1", "--seconds", "0.4", "--steps", "1"];
        a.extend_from_slice(&["--upsample-steps", "1", "--force", "--weights", dir.to_str().unwrap()]);
        a.extend_from_slice(&["--out", out.to_str().unwrap()]);
        a.extend_from_slice(extra);
        a
    };
    // A level the upsampler never trained on is refused before any work.
    let o = run(&args(&["--upsample-level", "350"]));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("expected a level from 0 to 349"), "{}", text(&o));
    // The preview never touches the upsampler…
    let o = run(&args(&["--no-upsample"]));
    assert!(o.status.success(), "{}", text(&o));
    let meta = std::fs::read_to_string(out.join("day_empty/metadata.json")).unwrap();
    assert!(!meta.contains("upsampler.safetensors"), "only the weights used are recorded");
    let o = run(&["replay", out.join("day_empty").to_str().unwrap()]);
    assert!(o.status.success() && text(&o).contains("bit-identical"), "{}", text(&o));
    // …a full run needs it and names the broken file.
    let o = run(&args(&[]));
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("upsampler.safetensors"), "{}", text(&o));
}

/// Records what reaches the sink, in order.
#[derive(Default)]
struct Recorder {
    frame0: Option<RgbImage>,
    frames: Vec<(usize, usize)>,
    done: Vec<(usize, usize)>,
}

impl FrameSink for Recorder {
    fn frame0(&mut self, image: &RgbImage) -> Result<(), PipelineError> {
        self.frame0 = Some(image.clone());
        Ok(())
    }
    fn frame(&mut self, future: usize, index: usize, _: &RgbImage) -> Result<(), PipelineError> {
        self.frames.push((future, index));
        Ok(())
    }
    fn future_done(&mut self, future: usize, frames: usize) -> Result<(), PipelineError> {
        self.done.push((future, frames));
        Ok(())
    }
}

/// Keeps every future's frames, in order.
struct Keep(Vec<Vec<RgbImage>>);

impl FrameSink for Keep {
    fn frame0(&mut self, _: &RgbImage) -> Result<(), PipelineError> {
        Ok(())
    }
    fn frame(&mut self, future: usize, _: usize, image: &RgbImage) -> Result<(), PipelineError> {
        self.0[future].push(image.clone());
        Ok(())
    }
}

/// The frames of future 0 of `s` under `opts`.
fn one_future(
    generator: &Generator<Flex>,
    s: &latentdrive::scenario::Scenario,
    opts: &GenerateOptions,
) -> Vec<RgbImage> {
    let mut keep = Keep(vec![vec![]; opts.futures]);
    generator.run(s, opts, &mut keep, &mut |_| {}, &AtomicBool::new(false)).unwrap();
    keep.0.remove(0)
}

/// The untrained micro models (seed 8) on the CPU.
fn micro_generator() -> Generator<Flex> {
    Generator::new(Models::<Flex>::seeded(ModelTier::Micro, 8, &Default::default()), Default::default())
}

fn scenario() -> latentdrive::scenario::Scenario {
    latentdrive::scenario::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/day_overtake.ron")).unwrap()
}

#[test]
fn frames_stream_in_order_and_generation_can_be_cancelled() {
    let generator =
        Generator::new(Models::<Flex>::seeded(ModelTier::Micro, 4, &Default::default()), Default::default())
            .with_threads(1);
    let s = scenario();
    let mut opts = GenerateOptions::from_scenario(&s);
    (opts.futures, opts.seconds, opts.steps, opts.upsample_steps) = (2, 3.2, 2, 1);
    opts.upsample = UpsampleMode::Off;
    let plan = generator.plan(&s, &opts).unwrap();
    // 3.2 s: 9 key frames, 8 intervals → 33 frames at 10 Hz, key-frame size (16×32).
    assert_eq!((plan.key_frames, plan.frames_per_future, plan.frame_size), (9, 33, (16, 32)));
    let never = AtomicBool::new(false);
    let mut sink = Recorder::default();
    let mut events = Vec::new();
    let summary = generator.run(&s, &opts, &mut sink, &mut |e| events.push(e), &never).unwrap();
    assert_eq!(sink.frame0.as_ref().map(|f| f.dimensions()), Some((32, 16)));
    let want: Vec<(usize, usize)> = (0..2).flat_map(|k| (0..33).map(move |i| (k, i))).collect();
    assert_eq!(sink.frames, want, "every frame once, in order, future by future");
    assert_eq!(sink.done, [(0, 33), (1, 33)]);
    // Progress counts up to the plan's total.
    let steps: Vec<usize> =
        events.iter().filter_map(|e| if let Event::Step { done, .. } = e { Some(*done) } else { None }).collect();
    assert_eq!(steps, (1..=plan.total_units).collect::<Vec<_>>());
    assert_eq!(summary.seeds.futures.len(), 2);

    // Cancelling after the first frame of future 0 stops the run with `Cancelled`.
    assert!(frames_before_cancel(&generator, &s, &opts) < 33);

    // Futures on parallel threads: each future's frames still in order, progress still
    // counts 1..=total on the caller's thread, and cancelling still stops every thread.
    let parallel = generator.with_threads(3);
    let mut sink = Recorder::default();
    let mut events = Vec::new();
    parallel.run(&s, &opts, &mut sink, &mut |e| events.push(e), &never).unwrap();
    for k in 0..2 {
        let frames: Vec<usize> = sink.frames.iter().filter(|f| f.0 == k).map(|f| f.1).collect();
        assert_eq!(frames, (0..33).collect::<Vec<_>>(), "future {k}");
    }
    sink.done.sort();
    assert_eq!(sink.done, [(0, 33), (1, 33)]);
    let steps: Vec<usize> =
        events.iter().filter_map(|e| if let Event::Step { done, .. } = e { Some(*done) } else { None }).collect();
    assert_eq!(steps, (1..=plan.total_units).collect::<Vec<_>>());
    assert!(frames_before_cancel(&parallel, &s, &opts) < 2 * 33);
}

/// Runs `opts`, cancelling when a future's first new frame arrives; the run must end
/// `Cancelled`. Returns the frames the sink received.
fn frames_before_cancel(
    generator: &Generator<Flex>,
    s: &latentdrive::scenario::Scenario,
    opts: &GenerateOptions,
) -> usize {
    let cancel = AtomicBool::new(false);
    let mut sink = Recorder::default();
    let mut on_event = |e| {
        if let Event::Frame { index: 1, .. } = e {
            cancel.store(true, Ordering::Relaxed);
        }
    };
    let result = generator.run(s, opts, &mut sink, &mut on_event, &cancel);
    assert!(matches!(result, Err(PipelineError::Cancelled)), "{result:?}");
    sink.frames.len()
}

#[test]
fn a_sink_error_on_a_parallel_run_stops_it_with_that_error() {
    struct FailAt(usize);
    impl FrameSink for FailAt {
        fn frame0(&mut self, _: &RgbImage) -> Result<(), PipelineError> {
            Ok(())
        }
        fn frame(&mut self, _: usize, index: usize, _: &RgbImage) -> Result<(), PipelineError> {
            if index == self.0 { Err(PipelineError::io("disk", "full")) } else { Ok(()) }
        }
    }
    let generator =
        Generator::new(Models::<Flex>::seeded(ModelTier::Micro, 4, &Default::default()), Default::default())
            .with_threads(2);
    let s = scenario();
    let mut opts = GenerateOptions::from_scenario(&s);
    (opts.futures, opts.seconds, opts.steps, opts.interpolate, opts.upsample) = (3, 2.0, 1, false, UpsampleMode::Off);
    let result = generator.run(&s, &opts, &mut FailAt(2), &mut |_| {}, &AtomicBool::new(false));
    assert!(matches!(&result, Err(PipelineError::Io { message, .. }) if message == "full"), "{result:?}");
}

/// Models with a latent wider than the tier's (`train autoencoder --latent-channels`) and
/// trained with v-prediction on a zero-terminal-SNR schedule generate like the default ones:
/// the pipeline takes the width from the autoencoder and the diffusion from the manifest.
#[test]
fn a_wider_latent_generates() {
    let cfg = ModelTier::Micro.config().with_latent_channels(6);
    let mut models = Models::<Flex>::seeded_from(cfg, 5, &Default::default());
    // With v-prediction on a zero-terminal-SNR schedule (trailing DDIM steps from pure noise).
    models.diffusion = latentdrive::diffusion::DiffusionConfig::v_zero_snr();
    let generator = Generator::new(models, Default::default());
    let s = scenario();
    let mut opts = GenerateOptions::from_scenario(&s);
    (opts.futures, opts.seconds, opts.steps, opts.upsample_steps) = (1, 1.2, 1, 1);
    let mut sink = Recorder::default();
    let never = AtomicBool::new(false);
    generator.run(&s, &opts, &mut sink, &mut |_| {}, &never).unwrap();
    assert_eq!(sink.done.len(), 1);
    assert!(sink.frames.len() > 4, "{} frames", sink.frames.len());
}

#[test]
fn seeds_and_frames_are_reproducible_and_futures_differ() {
    let generator = micro_generator();
    let s = scenario();
    let mut opts = GenerateOptions::from_scenario(&s);
    (opts.futures, opts.seconds, opts.steps, opts.upsample_steps, opts.interpolate) = (2, 1.2, 2, 1, false);
    let never = AtomicBool::new(false);
    let mut first = Keep(vec![vec![]; 2]);
    let mut second = Keep(vec![vec![]; 2]);
    generator.run(&s, &opts, &mut first, &mut |_| {}, &never).unwrap();
    // Futures on one thread or on several: the same bytes.
    let other = if generator.threads() == 1 { 2 } else { 1 };
    let generator = generator.with_threads(other);
    generator.run(&s, &opts, &mut second, &mut |_| {}, &never).unwrap();
    assert!(first.0 == second.0, "same scenario and seed, same frames");
    assert_eq!(first.0[0][0], first.0[1][0], "frame 0 is shared");
    // Futures differ where they are made, in the rollout's key frames. (Seeded micro models are
    // untrained: their x_0-predicting upsampler outputs a constant, which hides any difference.)
    opts.upsample = UpsampleMode::Off;
    let mut keys = Keep(vec![vec![]; 2]);
    generator.run(&s, &opts, &mut keys, &mut |_| {}, &never).unwrap();
    assert_eq!(keys.0[0][0], keys.0[1][0], "frame 0 is shared");
    let last = keys.0[0].len() - 1;
    assert!(mean_abs_diff(&keys.0[0][last], &keys.0[1][last]) > 0.5, "futures differ");
}

#[test]
fn f16_weights_from_weights_convert_generate_nearly_the_same_frames_and_replay() {
    let root = tmp("f16");
    let half = root.join("w16");
    let o = run(&["weights", "convert", micro_weights().to_str().unwrap(), half.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("to f16"), "{}", text(&o));
    let o = run(&["weights", "convert", micro_weights().to_str().unwrap(), half.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "an existing folder is not overwritten\n{}", text(&o));

    let generate = |weights: &Path, out: &str| {
        let out = root.join(out);
        let o = run(&[
            "generate",
            "scenarios/day_empty.ron",
            "--futures",
            "1",
            "--seconds",
            "0.8",
            "--steps",
            "2",
            "--no-upsample",
            "--weights",
            weights.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", text(&o));
        out.join("day_empty")
    };
    let (wide, narrow) = (generate(micro_weights(), "f32"), generate(&half, "f16"));
    let frames = files_under(&wide.join("future_00/frames"));
    assert_eq!(frames, files_under(&narrow.join("future_00/frames")));
    for f in &frames {
        let (a, b) = (png(&wide.join("future_00/frames").join(f)), png(&narrow.join("future_00/frames").join(f)));
        // F16 storage rounds each weight by at most 2^-11 of its size: the frames move by
        // a fraction of one 8-bit level on average.
        assert!(mean_abs_diff(&a, &b) < 1.0, "{f:?}: {}", mean_abs_diff(&a, &b));
    }
    let meta = std::fs::read_to_string(narrow.join("metadata.json")).unwrap();
    assert!(meta.contains(&latentdrive::weights::sha256_file(&half.join("image_ldm.safetensors")).unwrap()));
    let o = run(&["replay", narrow.to_str().unwrap()]);
    assert!(o.status.success() && text(&o).contains("bit-identical"), "{}", text(&o));
}

/// Known frames held in the sample are the default and are recorded; `--context-only` runs the
/// paper's sampler (the same frame 0; the sampler test checks what changes), and a run recorded before the option
/// existed (no `known_frames` in its metadata) replays as context-only, bit-identically.
#[test]
fn known_frames_option_is_recorded_and_replayed() {
    let out = tmp("known-frames");
    let args = |name: &str, extra: &[&'static str]| {
        let mut a: Vec<String> = ["generate", "scenarios/day_empty.ron", "--futures", "1", "--seconds", "1.2"]
            .iter()
            .chain(&["--steps", "2", "--no-upsample", "--force", "--weights"])
            .map(|s| s.to_string())
            .collect();
        a.push(micro_weights().to_str().unwrap().into());
        a.extend(["--out".into(), out.join(name).to_str().unwrap().into()]);
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    for (name, extra) in [("held", &[][..]), ("context", &["--context-only"][..])] {
        let a = args(name, extra);
        let o = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(o.status.success(), "{}", text(&o));
    }
    let dir = |name: &str| out.join(name).join("day_empty");
    let meta = |name: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(dir(name).join("metadata.json")).unwrap()).unwrap()
    };
    assert_eq!(meta("held")["options"]["known_frames"], "Replace");
    assert_eq!(meta("context")["options"]["known_frames"], "ContextOnly");
    let read = |name: &str, f: &str| std::fs::read(dir(name).join(f)).unwrap();
    assert_eq!(read("held", "frame0.png"), read("context", "frame0.png"));
    // An older run's metadata: the field absent.
    let mut old = meta("context");
    old["options"].as_object_mut().unwrap().remove("known_frames");
    std::fs::write(dir("context").join("metadata.json"), serde_json::to_vec_pretty(&old).unwrap()).unwrap();
    let o = run(&["replay", dir("context").to_str().unwrap()]);
    assert!(o.status.success() && text(&o).contains("bit-identical"), "{}", text(&o));
}

/// The prediction guide starts each new frame from the last context frame moved on by the
/// ego's travel, the same guess for every future: at 1 the futures differ only by the last
/// DDIM step, at 0 the untrained micro model's futures are far apart, and a share in between
/// lies between them. Out of range is an input error; metadata without the field reads as 0.
/// (Without the falloff, which frees the cells the guess magnifies: every cell is held.)
#[test]
fn the_prediction_guide_starts_every_future_from_the_same_guess() {
    let generator = micro_generator();
    let s = scenario();
    let mut opts = GenerateOptions::from_scenario(&s);
    (opts.futures, opts.seconds, opts.steps, opts.interpolate) = (2, 2.0, 10, false);
    opts.prediction_guide_falloff = 0.0;
    (opts.upsample, opts.decoder) = (UpsampleMode::Off, DecoderMode::PerFrame);
    let never = AtomicBool::new(false);
    let spread = |guide: f32| {
        let opts = GenerateOptions { prediction_guide: guide, ..opts.clone() };
        let mut keep = Keep(vec![vec![]; 2]);
        generator.run(&s, &opts, &mut keep, &mut |_| {}, &never).unwrap();
        let [a, b] = [&keep.0[0], &keep.0[1]];
        assert_eq!(a.len(), 6, "2 s at 2.5 Hz: frame 0 and 5 more");
        a[1..].iter().zip(&b[1..]).map(|(x, y)| mean_abs_diff(x, y)).sum::<f64>() / (a.len() - 1) as f64
    };
    let (free, half, held) = (spread(0.0), spread(0.5), spread(1.0));
    assert!(held < 0.25 * free, "futures apart at guide 1: {held:.2}, at guide 0: {free:.2}");
    assert!(held < half && half < free, "guide 0.5 in between: {held:.2} < {half:.2} < {free:.2}");
    let bad = GenerateOptions { prediction_guide: 1.5, ..opts.clone() };
    let err = generator.plan(&s, &bad).unwrap_err();
    assert!(err.is_input_error() && err.to_string().contains("prediction guide"), "{err}");
    let mut old = serde_json::to_value(&opts).unwrap();
    old.as_object_mut().unwrap().remove("prediction_guide");
    assert_eq!(serde_json::from_value::<GenerateOptions>(old).unwrap().prediction_guide, 0.0);
}

/// The prediction noise moves the last context frame's noise on to the new frames: it leaves
/// frame 0 alone, changes the frames after it (the micro model draws what its noise says),
/// and 0 is the default and what metadata without the field reads as. Out of range is an
/// input error. (`pipeline::ego` checks the moved noise itself.)
#[test]
fn the_prediction_noise_changes_the_predicted_frames_only() {
    let generator = micro_generator();
    let s = scenario();
    let mut opts = GenerateOptions::from_scenario(&s);
    (opts.futures, opts.seconds, opts.steps, opts.interpolate) = (1, 2.0, 4, false);
    (opts.upsample, opts.decoder) = (UpsampleMode::Off, DecoderMode::PerFrame);
    assert_eq!(opts.prediction_noise, 0.0, "the scenario default");
    let frames = |rho: f32| one_future(&generator, &s, &GenerateOptions { prediction_noise: rho, ..opts.clone() });
    let (own, moved) = (frames(0.0), frames(0.9));
    assert_eq!(own, frames(0.0), "deterministic");
    assert_eq!(own[0], moved[0], "frame 0 is the image LDM's");
    for (i, (a, b)) in own.iter().zip(&moved).enumerate().skip(1) {
        assert!(mean_abs_diff(a, b) > 0.5, "frame {i} did not change: {}", mean_abs_diff(a, b));
    }
    let bad = GenerateOptions { prediction_noise: -0.2, ..opts.clone() };
    let err = generator.plan(&s, &bad).unwrap_err();
    assert!(err.is_input_error() && err.to_string().contains("prediction noise"), "{err}");
    let mut old = serde_json::to_value(GenerateOptions { prediction_noise: 0.9, ..opts }).unwrap();
    old.as_object_mut().unwrap().remove("prediction_noise");
    assert_eq!(serde_json::from_value::<GenerateOptions>(old).unwrap().prediction_noise, 0.0);
}

/// The prediction guide's falloff frees the cells its guess magnifies earlier: it leaves frame
/// 0 alone, changes every predicted frame, changes nothing without the guide; 0.25 is the
/// scenario default, 0 what metadata without the field (runs made before the option) reads as.
/// Out of range is an input error.
/// (`pipeline::ego` checks the trust map, `diffusion::sampler` the per-entry hold.)
#[test]
fn the_prediction_guide_falloff_changes_the_predicted_frames_only() {
    let generator = micro_generator();
    let s = scenario();
    let mut opts = GenerateOptions::from_scenario(&s);
    (opts.futures, opts.seconds, opts.steps, opts.interpolate) = (1, 2.0, 4, false);
    (opts.upsample, opts.decoder) = (UpsampleMode::Off, DecoderMode::PerFrame);
    assert_eq!(opts.prediction_guide_falloff, 0.25, "the scenario default");
    assert!(opts.prediction_guide > 0.0);
    let frames = |guide: f32, falloff: f32| {
        one_future(
            &generator,
            &s,
            &GenerateOptions { prediction_guide: guide, prediction_guide_falloff: falloff, ..opts.clone() },
        )
    };
    let (held, falling) = (frames(opts.prediction_guide, 0.0), frames(opts.prediction_guide, 2.0));
    assert_eq!(falling, frames(opts.prediction_guide, 2.0), "deterministic");
    assert_eq!(held[0], falling[0], "frame 0 is the image LDM's");
    for (i, (a, b)) in held.iter().zip(&falling).enumerate().skip(1) {
        assert!(mean_abs_diff(a, b) > 0.0, "frame {i} did not change");
    }
    assert_eq!(frames(0.0, 0.0), frames(0.0, 2.0), "no guide, nothing to fall off");
    let bad = GenerateOptions { prediction_guide_falloff: 4.5, ..opts.clone() };
    let err = generator.plan(&s, &bad).unwrap_err();
    assert!(err.is_input_error() && err.to_string().contains("prediction guide falloff"), "{err}");
    let mut old = serde_json::to_value(GenerateOptions { prediction_guide_falloff: 0.5, ..opts }).unwrap();
    old.as_object_mut().unwrap().remove("prediction_guide_falloff");
    assert_eq!(serde_json::from_value::<GenerateOptions>(old).unwrap().prediction_guide_falloff, 0.0);
}

/// The interpolation noise moves each key's noise on to the in-between frames after it: with
/// the per-frame decoder the key frames stay as they were and every in-between frame changes;
/// 0.9 is the scenario default, 0 what metadata without the field (runs made before the
/// option) reads as; out of range is an input error.
#[test]
fn the_interpolation_noise_changes_the_in_between_frames_only() {
    let generator = micro_generator();
    let s = scenario();
    let mut opts = GenerateOptions::from_scenario(&s);
    (opts.futures, opts.seconds, opts.steps) = (1, 0.8, 4);
    (opts.upsample, opts.decoder) = (UpsampleMode::Off, DecoderMode::PerFrame);
    assert_eq!(opts.interpolation_noise, 0.9, "the scenario default");
    assert_eq!(opts.interpolation_noise, latentdrive::scenario::DEFAULT_INTERPOLATION_NOISE);
    let frames = |rho: f32| one_future(&generator, &s, &GenerateOptions { interpolation_noise: rho, ..opts.clone() });
    let (own, moved) = (frames(0.0), frames(0.9));
    assert_eq!(own.len(), 9, "0.8 s at 10 Hz: frame 0 and 8 more");
    assert_eq!(moved, frames(0.9), "deterministic");
    for (i, (a, b)) in own.iter().zip(&moved).enumerate() {
        if i % 4 == 0 {
            assert!(a == b, "key frame {i} changed");
        } else {
            assert!(a != b, "in-between frame {i} did not change");
        }
    }
    let bad = GenerateOptions { interpolation_noise: 1.5, ..opts.clone() };
    let err = generator.plan(&s, &bad).unwrap_err();
    assert!(err.is_input_error() && err.to_string().contains("interpolation noise"), "{err}");
    let mut old = serde_json::to_value(GenerateOptions { interpolation_noise: 0.9, ..opts }).unwrap();
    old.as_object_mut().unwrap().remove("interpolation_noise");
    assert_eq!(serde_json::from_value::<GenerateOptions>(old).unwrap().interpolation_noise, 0.0);
}

/// The upsample noise moves each upsampled frame's start noise on from the frame before it,
/// across chunks: frame 0 (upsampled on its own) stays as it was, every later frame changes,
/// the same share gives the same frames; out of range is an input error; 0.9 is the default,
/// 0 what metadata without the field (runs made before the option) reads as.
#[test]
fn the_upsample_noise_changes_the_upsampled_frames_after_frame_0() {
    // The micro weights of `tests/common` (the seeded micro upsampler draws one flat colour).
    let device = Default::default();
    let generator = Generator::new(Models::<Flex>::load(micro_weights(), &device).unwrap(), device);
    let s = scenario();
    let mut opts = GenerateOptions::from_scenario(&s);
    (opts.futures, opts.seconds, opts.steps, opts.upsample_steps) = (1, 1.6, 2, 2);
    assert_eq!(opts.upsample_noise, 0.9, "the default");
    let frames = |share: f32| one_future(&generator, &s, &GenerateOptions { upsample_noise: share, ..opts.clone() });
    let (own, moved) = (frames(0.0), frames(0.9));
    assert_eq!(own.len(), 17, "1.6 s at 10 Hz in two chunks: frame 0 and 16 more");
    let (h, w) = generator.models.frame_size();
    assert_eq!(own[0].dimensions(), (4 * w as u32, 4 * h as u32));
    assert!(own[0] == moved[0], "frame 0 changed");
    let same: Vec<usize> = (1..own.len()).filter(|&i| own[i] == moved[i]).collect();
    assert!(same.is_empty(), "frames {same:?} did not change");
    assert!(moved == frames(0.9), "the same share: other frames");
    let bad = GenerateOptions { upsample_noise: -0.5, ..opts.clone() };
    let err = generator.plan(&s, &bad).unwrap_err();
    assert!(err.is_input_error() && err.to_string().contains("upsample noise"), "{err}");
    let mut old = serde_json::to_value(GenerateOptions { upsample_noise: 0.9, ..opts }).unwrap();
    old.as_object_mut().unwrap().remove("upsample_noise");
    assert_eq!(serde_json::from_value::<GenerateOptions>(old).unwrap().upsample_noise, 0.0);
}

/// The interpolation guess: `Blend` is the scenario default; at guide 1, `Ego` (the keys moved
/// by the ego's travel; `pipeline::ego`'s tests check its frames) gives the same key frames;
/// the choice is recorded, and metadata without the field reads as `Blend`, what runs made
/// before the choice did.
#[test]
fn the_interpolation_guess_keeps_the_keys_and_is_recorded() {
    let generator = micro_generator();
    let s = scenario();
    let mut opts = GenerateOptions::from_scenario(&s);
    (opts.futures, opts.seconds, opts.steps, opts.interpolation_guide) = (1, 0.8, 4, 1.0);
    (opts.upsample, opts.decoder) = (UpsampleMode::Off, DecoderMode::PerFrame);
    assert_eq!(opts.interpolation_guess, InterpolationGuess::Blend, "the scenario default");
    let frames = |guess| one_future(&generator, &s, &GenerateOptions { interpolation_guess: guess, ..opts.clone() });
    let (ego, blend) = (frames(InterpolationGuess::Ego), frames(InterpolationGuess::Blend));
    assert_eq!(ego.len(), 9, "0.8 s at 10 Hz: frame 0 and 8 more");
    assert_eq!(blend.len(), 9);
    for j in [0, 4, 8] {
        assert!(ego[j] == blend[j], "key frame {j} differs");
    }
    let opts = GenerateOptions { interpolation_guess: InterpolationGuess::Ego, ..opts };
    let mut old = serde_json::to_value(&opts).unwrap();
    assert_eq!(old["interpolation_guess"], "Ego");
    old.as_object_mut().unwrap().remove("interpolation_guess");
    let read = serde_json::from_value::<GenerateOptions>(old).unwrap();
    assert_eq!(read.interpolation_guess, InterpolationGuess::Blend);
}

/// Box guidance scales the boxes apart from the labels in frame 0: equal to the label
/// guidance it is the joint guidance of runs without the option, bit for bit; another scale
/// draws another frame 0. Negative is an input error; metadata without the field reads as
/// joint guidance.
#[test]
fn box_guidance_apart_from_the_labels_changes_frame_0_only_where_it_differs() {
    // Trained weights: a seeded model's zero output layer ignores every condition.
    let device = Default::default();
    let generator = Generator::new(Models::<Flex>::load(micro_weights(), &device).unwrap(), device);
    // An image box, requested whatever the world's cars.
    let s =
        latentdrive::scenario::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/quickstart.ron")).unwrap();
    let mut opts = GenerateOptions::from_scenario(&s);
    (opts.futures, opts.steps, opts.label_guidance) = (1, 6, 2.0);
    (opts.upsample, opts.interpolate) = (UpsampleMode::Off, false);
    let never = AtomicBool::new(false);
    let frame0 = |box_guidance: Option<f64>| {
        let opts = GenerateOptions { box_guidance, ..opts.clone() };
        generator.first_frame(&s, &opts, &mut |_| {}, &never).unwrap().into_raw()
    };
    let joint = frame0(None);
    assert_eq!(joint, frame0(Some(2.0)), "box guidance equal to the label guidance is the joint guidance");
    let apart = frame0(Some(5.0));
    assert_ne!(joint, apart, "a stronger box guidance draws another frame 0");
    assert_ne!(apart, frame0(Some(1.0)));
    let bad = GenerateOptions { box_guidance: Some(-1.0), ..opts.clone() };
    let err = generator.plan(&s, &bad).unwrap_err();
    assert!(err.is_input_error() && err.to_string().contains("box guidance"), "{err}");
    let mut old = serde_json::to_value(&opts).unwrap();
    old.as_object_mut().unwrap().remove("box_guidance");
    assert_eq!(serde_json::from_value::<GenerateOptions>(old).unwrap().box_guidance, None);
}

/// The upsampler alone (what `tools/upsampler_probe.rs` measures): 4× the size, the same
/// bytes from the same seed, other bytes from another seed or step count, bad options refused.
#[test]
fn the_upsampler_alone_upsamples_a_clip_reproducibly() {
    let device = Default::default();
    let generator = Generator::new(Models::<Flex>::load(micro_weights(), &device).unwrap(), device);
    let (h, w) = generator.models.frame_size();
    let frames = burn::tensor::Tensor::<Flex, 4>::random(
        [3, 3, h, w],
        burn::tensor::Distribution::Uniform(-1.0, 1.0),
        &generator.device,
    );
    let mut opts = GenerateOptions::from_scenario(&scenario());
    opts.upsample_steps = 2;
    let bytes = |opts: &GenerateOptions, seed| {
        let out = generator.upsample_frames(frames.clone(), None, opts, seed).unwrap();
        assert_eq!(out.dims(), [3, 3, 4 * h, 4 * w]);
        out.into_data().to_vec::<f32>().unwrap()
    };
    let first = bytes(&opts, 1);
    assert!(first.iter().all(|v| v.is_finite()));
    assert!(first.iter().any(|&v| v != 0.0), "the micro upsampler drew nothing");
    assert!(first == bytes(&opts, 1), "same frames, seed and steps: same output");
    assert!(first != bytes(&opts, 2), "another seed: the same output");
    let mut three = opts.clone();
    three.upsample_steps = 3;
    assert!(first != bytes(&three, 1), "another step count: the same output");
    let mut level = opts.clone();
    level.upsample_level = 349;
    assert!(first != bytes(&level, 1), "another augmentation level: the same output");
    let mut none = opts.clone();
    none.upsample_steps = 0;
    let err = generator.upsample_frames(frames.clone(), None, &none, 1).unwrap_err();
    assert!(matches!(err, PipelineError::Unsupported(_)), "{err:?}");
    // Levels the upsampler never trained on are refused.
    level.upsample_level = 350;
    let err = generator.upsample_frames(frames.clone(), None, &level, 1).unwrap_err();
    assert!(err.to_string().contains("below 350"), "{err}");
    let mut without = Models::<Flex>::load(micro_weights(), &Default::default()).unwrap();
    without.upsampler = None;
    let err = Generator::new(without, Default::default()).upsample_frames(frames, None, &opts, 1).unwrap_err();
    assert!(matches!(err, PipelineError::MissingModel { .. }), "{err:?}");
}
