//! `train detector|classifier|clip-encoder` and `eval` end to end on micro weights, through the binary.

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_latentdrive")).args(args).output().expect("the binary runs")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn train_evaluator(name: &str, root: &Path) {
    let (eval, runs) = (root.join("eval"), root.join("runs").join(name));
    let o = run(&[
        "train",
        name,
        "--tier",
        "micro",
        "--steps",
        "2",
        "--batch",
        "2",
        "--warmup",
        "1",
        "--checkpoint-every",
        "2",
        "--eval-every",
        "2",
        "--weights",
        eval.to_str().unwrap(),
        "--run-dir",
        runs.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("held-out"), "{}", text(&o));
}

#[test]
fn eval_writes_a_parseable_report_for_micro_weights() {
    let root = common::tmp("eval-cli");
    let weights = common::micro_weights();
    let (evaluators, report) = (root.join("eval"), root.join("report"));
    let eval_args = |report: &Path| {
        vec![
            "eval".to_string(),
            "--weights".into(),
            weights.display().to_string(),
            "--evaluators".into(),
            evaluators.display().to_string(),
            "--report".into(),
            report.display().to_string(),
            "--scenes".into(),
            "3".into(),
            "--steps".into(),
            "1".into(),
            "--frame-components".into(),
            "2".into(),
            "--clip-components".into(),
            "2".into(),
            "--ablate-steps".into(),
            "1,2".into(),
            "--ablate-prediction-noise".into(),
            "0.9".into(),
            "--drift-seconds".into(),
            "2".into(),
            "--drift-segment".into(),
            "0.8".into(),
        ]
    };
    let args = eval_args(&report);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    // Without evaluators: a clear input error naming the command that makes them.
    let o = run(&args);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("latentdrive train detector --tier micro"), "{}", text(&o));

    train_evaluator("detector", &root);
    train_evaluator("classifier", &root);
    train_evaluator("clip-encoder", &root);
    let manifest = std::fs::read_to_string(evaluators.join("manifest.ron")).unwrap();
    assert!(manifest.contains("\"detector\"") && manifest.contains("held-out AP50"), "{manifest}");
    assert!(manifest.contains("\"classifier\"") && manifest.contains("held-out day/night"), "{manifest}");
    assert!(
        manifest.contains("\"clip_encoder\"") && manifest.contains("held-out order") && manifest.contains("speed MAE"),
        "{manifest}"
    );

    let o = run(&args);
    assert!(o.status.success(), "{}", text(&o));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(report.join("metrics.json")).unwrap()).expect("metrics.json parses");
    assert_eq!(json["options"]["scenes"], 3);
    assert!(json["generated"]["frechet_frames"].as_f64().is_some_and(|v| v >= 0.0), "{}", json["generated"]);
    // With its spread over scene resamples, shown as `± s` in the report.
    assert!(json["generated"]["frechet_frames_sd"].as_f64().is_some_and(|v| v >= 0.0), "{}", json["generated"]);
    // The kernel distance beside it, with its spread.
    let kid = &json["generated"]["kid_frames"];
    assert!(kid["value"].as_f64().is_some_and(f64::is_finite) && kid["sd"].as_f64().is_some_and(|v| v >= 0.0), "{kid}");
    assert!(json["generated"]["kid_clips"]["value"].as_f64().is_some(), "{}", json["generated"]);
    // And where its resamples lie (5th, 95th percentile), in order.
    let range = &json["generated"]["frechet_frames_spread"]["resample_range"];
    assert!(range[0].as_f64().zip(range[1].as_f64()).is_some_and(|(l, h)| 0.0 <= l && l <= h), "{}", json["generated"]);
    assert!(json["evaluators"]["day_night"].as_f64().is_some_and(|v| (0.0..=1.0).contains(&v)));
    assert!(json["generated"]["diversity"].as_f64().is_some(), "{}", json["generated"]);
    // Clip features come from the clip encoder, whose own accuracy is reported.
    assert!(json["generated"]["frechet_clips"].as_f64().is_some_and(|v| v >= 0.0), "{}", json["generated"]);
    assert!(json["evaluators"]["clip_motion"]["samples"].as_u64().is_some_and(|n| n > 0), "{}", json["evaluators"]);
    // The autoencoder's ceiling: world renders through it, measured like a generator.
    let ae = &json["autoencoded"];
    assert!(ae["frechet_frames"].as_f64().is_some_and(|v| v >= 0.0), "{ae}");
    assert!(ae["flicker_static"].as_f64().is_some(), "{ae}");
    let rows = json["ablations"][0]["rows"].as_array().expect("the steps table");
    assert_eq!(rows.len(), 2);
    // A row other than the main setting carries its distances against the main setting's.
    assert!(
        rows.iter().any(|r| r["vs_main"]["frames"][1].as_f64().is_some_and(|sd| sd >= 0.0)),
        "{}",
        json["ablations"][0]
    );
    assert_eq!(json["ablations"][1]["rows"][0]["label"], "noise 0.9", "{}", json["ablations"]);
    // The ego speed read off every video, and the world's own error against itself is 0.
    assert!(json["generated"]["ego_speed_mps"].as_f64().is_some_and(f64::is_finite), "{}", json["generated"]);
    assert!(json["generated"]["ego_speed_error_mps"].as_f64().is_some_and(|v| v >= 0.0));
    assert_eq!(json["reference"]["ego_speed_error_mps"], 0.0);
    assert!(json["drift"]["segments"].as_array().is_some_and(|s| s.len() == 3), "{}", json["drift"]);
    assert!(json["drift"]["segments"][0]["frechet_frames_sd"].as_f64().is_some_and(|v| v >= 0.0), "{}", json["drift"]);
    let md = std::fs::read_to_string(report.join("report.md")).unwrap();
    assert!(md.contains("latentdrive eval --weights") && md.contains("### DDIM steps"), "{md}");
    assert!(md.contains("| Fréchet distance², frames ↓ | ") && md.contains(" ± ") && md.contains("resamples"), "{md}");
    assert!(
        md.contains("Against the main setting (Fréchet², and KID and sharpness where named)")
            && md.contains(": frames "),
        "{md}"
    );
    assert!(
        md.contains("How the distances depend on the scenes")
            && md.contains("- generated, Fréchet² frames: resamples "),
        "{md}"
    );
    assert!(md.contains("| segment (s) | frames (all scenes) | Fréchet² | over the scenes | KID |"), "{md}");
    // Sharpness against the world's renders: the world itself is 1.
    assert!(json["generated"]["sharpness"].as_f64().is_some_and(|v| v > 0.0), "{}", json["generated"]);
    assert!(json["reference"]["sharpness"].as_f64().is_some_and(|v| (v - 1.0).abs() < 1e-6), "{}", json["reference"]);
    assert!(json["generated"]["sharpness_sd"].as_f64().is_some_and(|v| v >= 0.0), "{}", json["generated"]);
    assert!(md.contains("| sharpness: fine detail against the world's renders (1 = as much) | "), "{md}");
    assert!(md.contains("| kernel distance (KID), frames ↓ | ") && md.contains("- generated, KID frames: "), "{md}");
    assert!(json["drift"]["segments"][0]["kid_frames"]["value"].as_f64().is_some(), "{}", json["drift"]);
    assert!(md.contains("### Prediction noise") && md.contains("| ego speed error per future"), "{md}");
    assert!(md.contains("| metric | generated | world through the autoencoder | world renders |"), "{md}");
    assert!(
        md.contains("| clip encoder | ego speed MAE") && md.contains("Clip features are the clip encoder's"),
        "{md}"
    );
    for png in ["samples.png", "drift.png", "ablation_steps_frechet.png"] {
        assert!(image::open(report.join(png)).is_ok(), "{png}");
    }

    // The same scenes and seeds give the same numbers; an existing report needs --force.
    let o = run(&args);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--force"));
    let again = root.join("again");
    let args = eval_args(&again);
    let o = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "{}", text(&o));
    let json2: serde_json::Value = serde_json::from_slice(&std::fs::read(again.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(without_time(&json["generated"]), without_time(&json2["generated"]));
    let _ = std::fs::remove_dir_all(&root);
}

/// A metrics object without its wall time (the one field that differs between runs).
fn without_time(v: &serde_json::Value) -> serde_json::Value {
    let mut v = v.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("generation_s");
    }
    v
}
