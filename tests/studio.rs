//! The desktop app's state machine without a window: generation in the background with
//! streamed frames and progress, cancellation, export, replay and file errors. The GUI
//! calls exactly these methods (tests/gui.rs runs the real window on top).

use std::path::Path;
use std::time::{Duration, Instant};

use latentdrive::app::drive::{self, SetFields, Step};
use latentdrive::app::{Activity, Composer, RecentFiles, Studio, View};
use latentdrive::scenario;

mod common;
use common::{micro_weights, tmp};

fn studio(tag: &str) -> (Studio, std::path::PathBuf) {
    let dir = tmp(&format!("studio-{tag}"));
    let s = scenario::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/day_overtake.ron")).unwrap();
    let mut st = Studio::new(s, None, RecentFiles::default());
    st.settings.weights = Some(micro_weights().to_path_buf());
    st.settings.runs_dir = dir.join("runs");
    st.settings.upsample = true;
    st.settings.upsample_steps = 1;
    st.settings.upsample_level = 35;
    (st, dir)
}

fn set(st: &mut Studio, futures: u32, seconds: f32) {
    let f = SetFields { futures: Some(futures), seconds: Some(seconds), steps: Some(2), ..Default::default() };
    assert!(drive::apply(st, &Step::Set(f)));
}

/// Polls like the UI does, until the job ends; returns how many polls saw news.
fn wait(st: &mut Studio) -> usize {
    let start = Instant::now();
    let mut news = 0;
    while st.activity != Activity::Idle {
        news += st.poll() as usize;
        assert!(start.elapsed() < Duration::from_secs(300), "job did not finish");
        std::thread::sleep(Duration::from_millis(5));
    }
    news
}

#[test]
fn background_generation_streams_frames_then_exports_and_replays_bit_identically() {
    let (mut st, dir) = studio("gen");
    set(&mut st, 2, 1.2);
    st.generate();
    assert_eq!(st.activity, Activity::Generating);
    // The call returned at once; the work happens while we poll.
    let news = wait(&mut st);
    assert!(news >= 2, "progress arrived over several polls, not at the end only ({news})");
    assert!(st.error.is_none(), "{:?}", st.error);
    let per_future = st.results.frames_per_future();
    assert!(per_future >= 2);
    assert_eq!(st.results.received(), vec![per_future; 2], "every frame of both futures arrived");
    let f0 = st.results.frame0.as_ref().expect("frame 0 arrived");
    assert_eq!(f0.width(), latentdrive::app::job::PREVIEW_WIDTH.min(f0.width()));
    assert_eq!(st.progress.done, st.progress.total);
    let run = st.results.run.clone().expect("run folder recorded");
    assert!(run.join("metadata.json").is_file() && run.join("future_01/preview.gif").is_file());
    // The app's upsampler settings reach the run (and its replay).
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("metadata.json")).unwrap()).unwrap();
    assert_eq!((&meta["options"]["upsample_steps"], &meta["options"]["upsample_level"]), (&1.into(), &35.into()));

    // Export copies the folder; a second export to the same place is refused.
    let dest = dir.join("exported");
    st.export(&dest);
    assert!(st.error.is_none(), "{:?}", st.error);
    assert!(dest.join("metadata.json").is_file() && dest.join("labels/coco.json").is_file());
    st.export(&dest);
    assert!(st.error.as_deref().unwrap_or("").contains("already exists"), "{:?}", st.error);

    // Replay regenerates the exported run and finds it identical.
    st.replay(&dest);
    assert_eq!(st.activity, Activity::Replaying);
    wait(&mut st);
    assert!(st.error.is_none(), "{:?}", st.error);
    assert!(st.status.contains("bit-identical"), "{}", st.status);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn cancelling_stops_the_job_and_says_so() {
    let (mut st, dir) = studio("cancel");
    set(&mut st, 4, 8.0);
    st.generate();
    st.cancel();
    wait(&mut st);
    assert!(st.status.contains("cancelled"), "{}", st.status);
    assert!(st.error.is_none());
    assert!(st.results.run.is_none());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_files_and_missing_weights_are_errors_in_the_ui_not_panics() {
    let (mut st, dir) = studio("errors");
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.ron");
    std::fs::write(&bad, "(name: \"x\", seed: 1, conditions: (time_of_day: Dusk, crowdedness: 1))").unwrap();
    let before = st.composer.scenario.clone();
    st.open(&bad);
    let e = st.error.clone().expect("an error");
    assert!(e.contains("bad.ron:1:") && e.contains("time_of_day"), "{e}");
    assert_eq!(st.composer.scenario, before, "the scene under edit is kept");

    st.settings.weights = Some(dir.join("no-such-weights"));
    st.generate();
    wait(&mut st);
    let e = st.error.clone().expect("an error");
    assert!(e.contains("no-such-weights"), "{e}");

    // Saving and reopening round-trips the edited scene.
    let saved = dir.join("saved.ron");
    drive::apply(&mut st, &Step::Drag { view: View::Bev, from: (-3.5, 60.0), to: (-3.5, 60.0) });
    st.save(&saved);
    assert!(!st.composer.unsaved());
    let edited = st.composer.scenario.clone();
    st.composer.open(Composer::default_scenario(), None);
    st.open(&saved);
    assert_eq!(st.composer.scenario, edited);
    let _ = std::fs::remove_dir_all(dir);
}
