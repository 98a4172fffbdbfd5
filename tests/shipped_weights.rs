//! The shipped tiny weights end to end: they load and verify against their manifest,
//! and `generate` (1 future, 1 window, 2 DDIM steps, 1 upsampler step) writes a complete
//! run at 512×1024 whose replay is bit-identical; the shipped evaluators load.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use latentdrive::export::{BddDataset, CocoDataset, kitti};
use latentdrive::weights::Manifest;

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

fn tiny() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("weights/tiny")
}

#[test]
fn shipped_tiny_weights_are_complete_and_within_budget() {
    let dir = tiny();
    let manifest = Manifest::read(&dir).expect("weights/tiny/manifest.ron is shipped");
    manifest.verify(&dir).expect("every file matches its recorded size and SHA-256");
    let names: Vec<&str> = manifest.models.iter().map(|m| m.name.as_str()).collect();
    for model in ["autoencoder", "temporal_decoder", "image_ldm", "video_ldm", "interpolator", "upsampler"] {
        assert!(names.contains(&model), "{model} missing from {names:?}");
    }
    let total: u64 = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum();
    assert!(total <= 50 * 1024 * 1024, "weights/tiny is {total} bytes, over the 50 MB budget");
    assert!(dir.join("MODEL_CARD.md").is_file());
}

#[test]
fn generate_with_the_shipped_tiny_weights_writes_a_run_that_replays() {
    let out = std::env::temp_dir().join(format!("latentdrive-shipped-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    // 2 s: 6 key frames, all from the first window (T = 8); key frames only (no interpolation).
    let o = run(&[
        "generate",
        "scenarios/quickstart.ron",
        "--out",
        out.to_str().unwrap(),
        "--futures",
        "1",
        "--seconds",
        "2",
        "--steps",
        "2",
        "--upsample-steps",
        "1",
        "--no-interpolate",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let dir = out.join("quickstart");
    for f in ["scenario.ron", "metadata.json", "frame0.png", "contact_sheet.png", "future_00/preview.gif"] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    for i in 0..6 {
        let img = image::open(dir.join(format!("future_00/frames/{i:06}.png"))).unwrap();
        assert_eq!((img.width(), img.height()), (1024, 512), "frame {i}");
    }
    assert!(!dir.join("future_00/frames/000006.png").exists());
    let coco = CocoDataset::read(&dir.join("labels/coco.json")).unwrap();
    assert_eq!(coco.annotations.len(), 2, "the two requested cars");
    assert_eq!(BddDataset::read(&dir.join("labels/bdd100k.json")).unwrap().frames.len(), 1);
    assert_eq!(kitti::read_tracking(&dir.join("labels/kitti_tracking.txt")).unwrap().len(), 2);
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("metadata.json")).unwrap()).unwrap();
    assert_eq!(meta["tier"], "tiny");
    assert!(meta["weights"].as_array().unwrap().iter().all(|w| w["sha256"].as_str().is_some_and(|h| h.len() == 64)));

    let o = run(&["replay", dir.to_str().unwrap()]);
    assert!(o.status.success() && text(&o).contains("bit-identical"), "{}", text(&o));
    let _ = std::fs::remove_dir_all(&out);
}

/// The shipped evaluators (`weights/eval/tiny`) load with this build's configs: a config
/// field added without a default would break every report of the shipped weights.
#[test]
fn shipped_evaluators_load() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("weights/eval/tiny");
    let evaluators = latentdrive::eval::Evaluators::<burn::backend::Flex>::load(&dir, &Default::default())
        .expect("weights/eval/tiny loads");
    assert_eq!(evaluators.tier.config().frame_size, (128, 256));
    assert!(evaluators.facts.iter().all(Option::is_some));
    assert!(evaluators.clip_encoder.is_some(), "the clip encoder is shipped with the evaluators");
}

/// The shipped clip encoder's speed reading (`eval`'s ego-speed rows) tells the world's
/// moving renders from a held frame, and reads a 10 Hz video, spaced as `eval` spaces it,
/// as it reads the same scene's 2.5 Hz key frames.
#[test]
fn the_shipped_clip_encoder_reads_the_ego_speed_off_spaced_frames() {
    let dev = Default::default();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("weights/eval/tiny");
    let evaluators = latentdrive::eval::Evaluators::<burn::backend::Flex>::load(&dir, &dev).expect("loads");
    let encoder = evaluators.clip_encoder.expect("shipped");
    let mean = |m: Vec<latentdrive::eval::EgoMotion>| {
        assert!(!m.is_empty());
        m.iter().map(|m| m.speed_mps).sum::<f32>() / m.len() as f32
    };
    for i in 0..3 {
        let scene = latentdrive::eval::EvalScene::new(i, (128, 256), 8);
        let keys = scene.reference(0, 8, 2.5, (128, 256));
        let moving = mean(encoder.video_motion(&keys, 1, &dev));
        let held = mean(encoder.video_motion(&vec![keys[0].clone(); 8], 1, &dev));
        // Measured on scenes 0–11: moving 10.0–18.0 m/s, held 2.5–7.2.
        assert!(moving > held + 4.0, "scene {i}: moving {moving} vs held {held}");
        let video = scene.reference(0, 29, 10.0, (128, 256));
        let spaced = mean(encoder.video_motion(&video, 4, &dev));
        assert!((spaced - moving).abs() < 1.5, "scene {i}: 10 Hz spaced {spaced} vs 2.5 Hz {moving}");
    }
}
