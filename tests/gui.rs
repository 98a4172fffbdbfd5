//! The real desktop app, headless under Xvfb with software rendering (llvmpipe): it
//! opens a scenario, adds a car by dragging in the camera view (the mouse's code path),
//! generates with tiny settings on the shipped tiny weights, waits, and saves a
//! screenshot and its state. `.ci/run` installs Xvfb and Mesa's software Vulkan.
#![cfg(feature = "gui")]

use std::path::Path;
use std::process::Command;

mod common;

#[test]
fn app_composes_generates_and_shows_futures_headless() {
    let dir = common::tmp("gui");
    std::fs::create_dir_all(&dir).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let quickstart = root.join("scenarios/quickstart.ron");
    let requested = latentdrive::scenario::load(&quickstart).unwrap().boxes.len();
    let script = format!(
        r#"[
            Open({quickstart:?}),
            Drag(view: Camera, from: (0.12, 0.74), to: (0.3, 0.94)),
            Set(futures: Some(2), seconds: Some(1.2), steps: Some(2), upsample: Some(false), runs_dir: Some({runs:?})),
            Generate,
            Frames(3),
            WaitIdle(timeout_s: 600.0),
            Frames(10),
            Screenshot({shot:?}),
            Frames(2),
            State({state:?}),
            Quit,
        ]"#,
        runs = dir.join("runs"),
        shot = dir.join("app.png"),
        state = dir.join("state.json"),
    );
    std::fs::write(dir.join("script.ron"), script).unwrap();

    let xvfb = Command::new("xvfb-run").arg("--help").output();
    assert!(xvfb.is_ok(), "xvfb-run is missing: `apt-get install xvfb mesa-vulkan-drivers libvulkan1` (see .ci/run)");
    let out = Command::new("xvfb-run")
        .args(["-a", "-s", "-screen 0 1280x800x24"])
        .arg(env!("CARGO_BIN_EXE_latentdrive"))
        .args(["gui", "--weights", "weights/tiny", "--drive"])
        .arg(dir.join("script.ron"))
        .current_dir(root)
        .env("LATENTDRIVE_CONFIG_DIR", dir.join("config"))
        .output()
        .expect("xvfb-run starts");
    let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "app failed: {log}");

    let state: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("state.json")).unwrap()).unwrap();
    assert_eq!(state["boxes"], requested + 1, "the dragged car was added: {state}");
    assert_eq!(state["selected"], requested, "and selected");
    assert_eq!(state["activity"], "Idle");
    assert!(state["error"].is_null(), "{state}");
    let per_future = state["frames_per_future"].as_u64().unwrap();
    assert!(per_future >= 2);
    assert_eq!(state["frames_received"], serde_json::json!([per_future, per_future]), "{state}");
    let run = Path::new(state["run"].as_str().expect("a run folder"));
    assert!(run.join("metadata.json").is_file());
    // The dragged box is part of the generated scenario.
    assert!(std::fs::read_to_string(run.join("scenario.ron")).unwrap().contains("x1: 0.12"));
    assert!(state["ui"]["busy_frames"].as_u64().unwrap() > 0, "the UI kept drawing during generation");

    let shot = image::open(dir.join("app.png")).expect("screenshot written").into_rgb8();
    assert_eq!(shot.dimensions(), (1280, 800));
    // Not blank: many distinct colours and real contrast.
    let mut colours: Vec<[u8; 3]> = shot.pixels().map(|p| p.0).collect();
    colours.sort();
    colours.dedup();
    assert!(colours.len() > 500, "screenshot looks blank ({} colours)", colours.len());
    let _ = std::fs::remove_dir_all(dir);
}
