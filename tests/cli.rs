//! The command line as users run it: exit codes, output layout, label files that
//! parse back, deterministic bytes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use latentdrive::export::{BddDataset, CocoDataset, kitti};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_latentdrive"))
}

fn run(args: &[&str]) -> Output {
    bin().args(args).current_dir(env!("CARGO_MANIFEST_DIR")).output().expect("binary runs")
}

fn tmp(tag: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("latentdrive-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    p
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn validate_accepts_the_examples_and_exits_2_on_errors() {
    let ok = run(&["validate", "scenarios"]);
    assert!(ok.status.success(), "{}", text(&ok));
    assert!(text(&ok).contains("0 invalid"));

    let dir = tmp("validate");
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.ron");
    std::fs::write(
        &bad,
        "Scenario(\n  name: \"b\",\n  seed: 1,\n  conditions: (time_of_day: Day, crowdedness: 9),\n)\n",
    )
    .unwrap();
    let out = run(&["validate", bad.to_str().unwrap(), "scenarios/day_empty.ron"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("bad.ron:4:47: conditions.crowdedness: expected 0..=3"), "{}", text(&out));
    assert!(text(&out).contains("1 valid, 1 invalid"));

    let missing = run(&["validate", "no-such.ron"]);
    assert_eq!(missing.status.code(), Some(2));
    std::fs::remove_dir_all(&dir).unwrap();
}

fn render_into(dir: &Path) -> Output {
    run(&[
        "render",
        "scenarios/night_merge.ron",
        "--out",
        dir.to_str().unwrap(),
        "--seconds",
        "1",
        "--fps",
        "5",
        "--size",
        "128x64",
    ])
}

#[test]
fn render_writes_frames_and_labels_in_every_format_deterministically() {
    let (a, b) = (tmp("render-a"), tmp("render-b"));
    let out = render_into(&a);
    assert!(out.status.success(), "{}", text(&out));
    assert!(render_into(&b).status.success());

    for i in 0..5 {
        let name = format!("frames/{i:06}.png");
        let img = image::open(a.join(&name)).unwrap();
        assert_eq!((img.width(), img.height()), (128, 64));
        assert_eq!(std::fs::read(a.join(&name)).unwrap(), std::fs::read(b.join(&name)).unwrap(), "{name}");
    }
    let tracking = kitti::read_tracking(&a.join("labels/kitti_tracking.txt")).unwrap();
    assert!(!tracking.is_empty());
    let lines = std::fs::read_to_string(a.join("labels/kitti_tracking.txt")).unwrap();
    assert!(lines.lines().all(|l| l.split_whitespace().count() == 17));
    let object = std::fs::read_to_string(a.join("labels/kitti/000000.txt")).unwrap();
    assert!(object.lines().all(|l| l.split_whitespace().count() == 15));
    let coco = CocoDataset::read(&a.join("labels/coco.json")).unwrap();
    assert_eq!(coco.images.len(), 5);
    assert!(!coco.annotations.is_empty());
    let bdd = BddDataset::read(&a.join("labels/bdd100k.json")).unwrap();
    let raw: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("labels/bdd100k.json")).unwrap()).unwrap();
    assert_eq!(raw[0]["attributes"]["timeofday"], "night");
    assert_eq!(bdd.frames.len(), 5);
    for f in ["labels/kitti_tracking.txt", "labels/coco.json", "labels/bdd100k.json", "metadata.json", "scenario.ron"] {
        assert_eq!(std::fs::read(a.join(f)).unwrap(), std::fs::read(b.join(f)).unwrap(), "{f}");
    }
    // The copy of the scenario is itself a valid scenario.
    assert!(run(&["validate", a.join("scenario.ron").to_str().unwrap()]).status.success());
    // No temporary files are left behind.
    let leftovers: Vec<_> = walk(&a).into_iter().filter(|p| p.to_string_lossy().contains(".tmp-")).collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // An existing output folder is refused without --force.
    let again = render_into(&a);
    assert_eq!(again.status.code(), Some(2));
    assert!(text(&again).contains("already exists"));
    std::fs::remove_dir_all(&a).unwrap();
    std::fs::remove_dir_all(&b).unwrap();
}

#[test]
fn synth_writes_an_index_and_bad_arguments_exit_2() {
    let dir = tmp("synth");
    let out = run(&["synth", "--out", dir.to_str().unwrap(), "--clips", "2", "--frames", "2", "--size", "64x32"]);
    assert!(out.status.success(), "{}", text(&out));
    let index = latentdrive::data::DatasetIndex::read(&dir).unwrap();
    assert_eq!(index.clips.len(), 2);
    assert!(dir.join("clips/000001/frames/000001.png").exists());
    std::fs::remove_dir_all(&dir).unwrap();

    for args in [
        &["synth", "--out", "x", "--size", "0x0"][..],
        &["synth", "--out", "x", "--clips", "0"],
        &["render", "scenarios/day_empty.ron", "--out", "x", "--fps", "0"],
    ] {
        let o = run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
    }
}

/// The boxes of every frame of a dataset clip's or a render's native labels, those of at
/// least 2 pixels each way (BDD100K's inclusive corners cannot carry a box under a pixel).
fn boxes(labels: &Path) -> Vec<Vec<[f32; 4]>> {
    let frames: Vec<latentdrive::world::FrameLabels> =
        serde_json::from_str(&std::fs::read_to_string(labels).unwrap()).unwrap();
    // Label files leave out the cars no pixel of which is visible.
    let shown = |o: &&latentdrive::world::ObjectLabel| {
        o.occlusion != latentdrive::world::Occlusion::FullyOccluded && o.box2d.width() >= 2.0 && o.box2d.height() >= 2.0
    };
    let corners = |o: &latentdrive::world::ObjectLabel| [o.box2d.x1, o.box2d.y1, o.box2d.x2, o.box2d.y2];
    frames.iter().map(|f| f.objects.iter().filter(shown).map(corners).collect()).collect()
}

fn assert_close(a: &[Vec<[f32; 4]>], b: &[Vec<[f32; 4]>], tolerance: f32) {
    assert_eq!(a.len(), b.len());
    for (fa, fb) in a.iter().zip(b) {
        assert_eq!(fa.len(), fb.len(), "{fa:?} vs {fb:?}");
        for (ba, bb) in fa.iter().zip(fb) {
            assert!(ba.iter().zip(bb).all(|(x, y)| (x - y).abs() <= tolerance), "{ba:?} vs {bb:?}");
        }
    }
}

#[test]
fn import_reads_back_what_render_wrote_and_bad_labels_exit_2() {
    // A render's own BDD100K and KITTI tracking files, imported at the render's size, give
    // its boxes back (KITTI's 2 decimals within 0.005).
    let render = tmp("import-render");
    assert!(render_into(&render).status.success());
    let rendered = boxes(&render.join("labels/labels.json"));
    assert!(rendered.iter().any(|f| !f.is_empty()), "the night_merge render shows cars");

    let from_bdd = tmp("import-bdd");
    let o = run(&[
        "import",
        "bdd100k",
        render.join("labels/bdd100k.json").to_str().unwrap(),
        "--images",
        render.to_str().unwrap(),
        "--out",
        from_bdd.to_str().unwrap(),
        "--size",
        "128x64",
        "--frames",
        "5",
        "--crowdedness",
        "2",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("imported 1 clips × 5 frames"), "{}", text(&o));
    let index = latentdrive::data::DatasetIndex::read(&from_bdd).unwrap();
    // night_merge is at night, and its BDD100K file says so.
    assert_eq!(index.clips[0].time_of_day, latentdrive::scenario::TimeOfDay::Night);
    assert_close(&boxes(&from_bdd.join("clips/000000/labels/labels.json")), &rendered, 1e-4);

    let kitti = tmp("import-kitti");
    std::fs::create_dir_all(kitti.join("label_02")).unwrap();
    std::fs::create_dir_all(kitti.join("image_02/0007")).unwrap();
    std::fs::copy(render.join("labels/kitti_tracking.txt"), kitti.join("label_02/0007.txt")).unwrap();
    for i in 0..5 {
        let name = format!("{i:06}.png");
        std::fs::copy(render.join("frames").join(&name), kitti.join("image_02/0007").join(&name)).unwrap();
    }
    let from_kitti = tmp("import-from-kitti");
    let out = from_kitti.to_str().unwrap();
    let args = ["import", "kitti-tracking", kitti.to_str().unwrap(), "--out", out, "--size", "128x64", "--frames", "5"];
    let o = run(&args);
    assert!(o.status.success(), "{}", text(&o));
    assert_close(&boxes(&from_kitti.join("clips/000000/labels/labels.json")), &rendered, 0.005);
    let index = latentdrive::data::DatasetIndex::read(&from_kitti).unwrap();
    assert_eq!(index.clips[0].source.as_deref(), Some("0007 frames 0–4"));
    // KITTI gives no time of day: the default (day) unless told.
    assert_eq!(index.clips[0].time_of_day, latentdrive::scenario::TimeOfDay::Day);

    // An existing output folder, a malformed label line, a size the frames cannot give: exit 2.
    assert_eq!(run(&args).status.code(), Some(2));
    std::fs::write(kitti.join("label_02/0007.txt"), "0 1 Car 0 0\n").unwrap();
    let bad = tmp("import-bad");
    let o = run(&["import", "kitti-tracking", kitti.to_str().unwrap(), "--out", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("0007.txt:1: expected 17 columns"), "{}", text(&o));
    let o = run(&["import", "bdd100k", "no-such.json", "--images", ".", "--out", bad.to_str().unwrap(), "--force"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(!bad.join("index.json").exists());
    // Options no import can run with are refused before the output folder is made.
    let unmade = tmp("import-unmade");
    for args in [
        &["import", "bdd100k", "labels.json", "--out", unmade.to_str().unwrap()][..],
        &["import", "kitti-tracking", ".", "--out", unmade.to_str().unwrap(), "--crowdedness", "4"],
        &["import", "kitti-object", ".", "--out", unmade.to_str().unwrap(), "--frames", "0"],
    ] {
        let o = run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(!unmade.exists(), "{args:?}");
    }
    for dir in [render, from_bdd, kitti, from_kitti, bad] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out
}

#[test]
fn train_writes_weights_and_refuses_a_resume_without_checkpoint() {
    let dir = tmp("train");
    let (run_dir, weights) = (dir.join("run"), dir.join("weights"));
    let args = ["train", "autoencoder", "--tier", "micro", "--steps", "2", "--batch", "1", "--warmup", "1"];
    let mut with_dirs: Vec<&str> = args.to_vec();
    let (r, w) = (run_dir.to_str().unwrap().to_string(), weights.to_str().unwrap().to_string());
    with_dirs.extend(["--run-dir", &r, "--weights", &w]);
    let out = run(&with_dirs);
    assert!(out.status.success(), "{}", text(&out));
    assert!(weights.join("autoencoder.safetensors").exists() && weights.join("manifest.ron").exists());
    assert!(run_dir.join("log.csv").exists() && run_dir.join("loss.png").exists());
    // Held-out frames over their reconstructions: 4 micro frames (32×16) with 2 px gaps, 2 rows.
    let grid = image::open(run_dir.join("samples.png")).unwrap();
    assert_eq!((grid.width(), grid.height()), (4 * 34, 2 * 18));
    let missing = dir.join("nothing");
    let m = missing.to_str().unwrap().to_string();
    let mut resume: Vec<&str> = args.to_vec();
    resume.extend(["--run-dir", &m, "--resume"]);
    let out = run(&resume);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("no checkpoint"));
    assert!(text(&run(&with_dirs)).contains("held-out PSNR"), "the autoencoder reports its PSNR");
    // Options that do not fit the stage: exit 2 with the reason.
    let wrong_options: [(&[&str], &str); 7] = [
        (&["decoder", "--init-from", &w], "--init-from is not supported for the decoder stage"),
        (&["autoencoder", "--lr-decay", "cosine", "--final-lr", "2"], "--final-lr is a fraction of --lr"),
        (&["autoencoder", "--final-lr", "0.2"], "--final-lr applies to --lr-decay cosine only"),
        (&["image-ldm", "--latent-channels", "8"], "applies to the autoencoder stage only"),
        (&["image-ldm", "--zero-terminal-snr"], "needs v- or x_0-prediction"),
        (&["video-ldm", "--prediction", "v"], "apply to the image-ldm stage only"),
        (&["interpolator", "--latent-norm", "channel"], "--latent-norm applies to the image-ldm stage only"),
    ];
    for (extra, says) in wrong_options {
        let mut wrong: Vec<&str> = vec!["train", extra[0], "--tier", "micro", "--steps", "1", "--run-dir", &m];
        wrong.extend(["--weights", &w]);
        wrong.extend(&extra[1..]);
        let out = run(&wrong);
        assert_eq!(out.status.code(), Some(2), "{wrong:?}: {}", text(&out));
        assert!(text(&out).contains(says), "{wrong:?}: {}", text(&out));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `train all` trains every missing stage in order and hands each stage-specific flag to
/// its own stage only (the autoencoder would refuse `--prediction`, the image LDM
/// `--latent-channels`).
#[test]
fn train_all_gives_each_stage_the_flags_that_apply_to_it() {
    let dir = tmp("train-all");
    std::fs::create_dir_all(&dir).unwrap();
    let w = dir.join("weights").to_str().unwrap().to_string();
    let args = ["train", "all", "--tier", "micro", "--steps", "1", "--batch", "1", "--warmup", "1", "--weights", &w];
    let flags = ["--latent-channels", "6", "--prediction", "v", "--zero-terminal-snr", "--latent-norm", "channel"];
    // Run folders default to runs/train/<tier>/<stage> under the working directory.
    let out = bin().args(args).args(flags).current_dir(&dir).output().expect("binary runs");
    assert!(out.status.success(), "{}", text(&out));
    let weights = dir.join("weights");
    let manifest = latentdrive::weights::Manifest::read(&weights).unwrap();
    let config: latentdrive::model::AutoencoderConfig =
        manifest.model("autoencoder").unwrap().config(&latentdrive::weights::Manifest::path(&weights)).unwrap();
    assert_eq!(config.latent_channels, 6);
    for name in ["image_ldm", "video_ldm", "interpolator"] {
        let entry = manifest.model(name).unwrap();
        assert_eq!(entry.diffusion, Some(latentdrive::diffusion::DiffusionConfig::v_zero_snr()), "{name}");
        assert!(entry.latent_norm.as_ref().is_some_and(|n| n.channels() == 6), "{name}: {:?}", entry.latent_norm);
    }
    assert!(manifest.model("upsampler").is_some());
    let again = bin().args(args).current_dir(&dir).output().expect("binary runs");
    assert!(text(&again).contains("every stage is already trained"), "{}", text(&again));
    std::fs::remove_dir_all(&dir).unwrap();
}
