//! The desktop app (feature `gui`): bevy runs the window and the frame loop, egui draws
//! the [`Studio`](crate::app::Studio). The app holds no model logic: it edits a
//! scenario and drives `crate::pipeline` through `crate::app`.
//!
//! Plugins, one feature each: [`StudioPlugin`] (state, job polling, playback clock),
//! [`ui::UiPlugin`] (all egui drawing and input), [`driver::DriverPlugin`] (scripted
//! actions, screenshots and state dumps for headless tests), [`FrameStatsPlugin`]
//! (UI frame rate while a job runs).

mod canvas;
mod driver;
mod results;
mod textures;
mod ui;

use std::path::PathBuf;

use bevy::prelude::*;
use bevy::window::{PresentMode, WindowResolution};
use bevy_egui::EguiPlugin;

use crate::app::{Activity, Composer, Device, RecentFiles, Studio};

/// How `latentdrive gui` was started.
#[derive(Debug, Clone, Default)]
pub struct GuiOptions {
    /// A scenario file to open at start.
    pub file: Option<PathBuf>,
    /// A driver script (see `crate::app::drive`).
    pub drive: Option<PathBuf>,
    pub weights: Option<PathBuf>,
    pub device: Device,
    pub runs_dir: Option<PathBuf>,
}

/// The app state as a bevy resource.
#[derive(Resource, Deref, DerefMut)]
pub struct StudioRes(pub Studio);

/// Runs the app until its window closes (or a driver script quits). Returns an error
/// message when a driver script failed.
pub fn run(opts: GuiOptions) -> Result<(), String> {
    let mut studio = Studio::new(Composer::default_scenario(), None, RecentFiles::load_default());
    if let Some(w) = &opts.weights {
        studio.settings.weights = Some(w.clone());
    }
    if let Some(r) = &opts.runs_dir {
        studio.settings.runs_dir = r.clone();
    }
    studio.settings.device = opts.device;
    if let Some(f) = &opts.file {
        studio.open(f);
    }
    let script = match &opts.drive {
        Some(p) => Some(crate::app::drive::load(p)?),
        None => None,
    };

    let mut app = App::new();
    // Logging is set up by the binary (tracing-subscriber); bevy must not install its own.
    app.add_plugins(DefaultPlugins.build().disable::<bevy::log::LogPlugin>().set(WindowPlugin {
        primary_window: Some(Window {
            title: "latentdrive".into(),
            resolution: WindowResolution::new(1280, 800),
            // The frame loop must not wait on vsync: playback and progress keep moving.
            present_mode: PresentMode::AutoNoVsync,
            ..default()
        }),
        ..default()
    }))
    .add_plugins(EguiPlugin::default())
    .insert_resource(StudioRes(studio))
    .add_plugins((StudioPlugin, ui::UiPlugin, FrameStatsPlugin));
    if let Some(steps) = script {
        app.add_plugins(driver::DriverPlugin { steps });
    }
    let exit = app.run();
    let failure = app.world().get_resource::<driver::DriverFailure>().and_then(|f| f.0.clone());
    match (failure, exit) {
        (Some(msg), _) => Err(msg),
        (None, AppExit::Success) => Ok(()),
        (None, AppExit::Error(code)) => Err(format!("the app exited with code {code}")),
    }
}

/// State, background-job polling and the playback clock.
struct StudioPlugin;

impl Plugin for StudioPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(Startup, |mut commands: Commands| {
            // No multisampling: egui draws its own anti-aliased edges, and on a software
            // renderer (llvmpipe) 4× MSAA multiplies the fill cost of every frame.
            commands.spawn((Camera2d, Msaa::Off));
        })
        .add_systems(Update, (poll_job, advance_playback).chain())
        .init_resource::<FramePacer>()
        .add_systems(Last, pace_frames);
    }
}

/// Frames per second the UI draws at most: enough for smooth playback, and no more,
/// so that the frame loop (which does not wait for vsync) leaves the cores to a job.
const MAX_FPS: f64 = 60.0;
/// The same while a job runs: above the 30 frames/s the UI must keep, and every frame
/// not drawn is CPU time for the job. (On a software renderer a frame costs tens of ms
/// of CPU: measured, a cap of 32 left the job little more time and the UI under 30.)
const MAX_FPS_BUSY: f64 = 40.0;

#[derive(Resource)]
struct FramePacer {
    last: std::time::Instant,
}

impl Default for FramePacer {
    fn default() -> Self {
        FramePacer { last: std::time::Instant::now() }
    }
}

/// Sleeps out the rest of the frame's time budget (the main schedule's last system).
fn pace_frames(mut pacer: ResMut<FramePacer>, studio: Res<StudioRes>) {
    let fps = if studio.activity == Activity::Idle { MAX_FPS } else { MAX_FPS_BUSY };
    let budget = std::time::Duration::from_secs_f64(1.0 / fps);
    let spent = pacer.last.elapsed();
    if spent < budget {
        std::thread::sleep(budget - spent);
    }
    pacer.last = std::time::Instant::now();
}

fn poll_job(mut studio: ResMut<StudioRes>) {
    studio.poll();
    studio.refresh_layout();
}

fn advance_playback(mut studio: ResMut<StudioRes>, time: Res<Time>) {
    let (frames, fps) = (studio.results.frames_per_future(), studio.results.fps());
    studio.playback.advance(time.delta_secs(), frames, fps);
}

/// UI frame times, overall and while a job runs (the app must stay responsive).
#[derive(Resource, Default, Debug, Clone, serde::Serialize)]
pub struct FrameStats {
    pub frames: u64,
    /// Frame durations (seconds) recorded while a job ran.
    #[serde(skip)]
    pub busy: Vec<f32>,
    /// Frame durations (seconds) recorded while no job ran (the baseline).
    #[serde(skip)]
    pub idle: Vec<f32>,
}

impl FrameStats {
    /// Mean frames per second while a job ran, and the 5th-percentile frame rate.
    pub fn busy_fps(&self) -> Option<(f32, f32)> {
        rates(&self.busy)
    }

    /// The same while no job ran.
    pub fn idle_fps(&self) -> Option<(f32, f32)> {
        rates(&self.idle)
    }
}

/// Mean frames per second over frame durations, and the 5th-percentile frame rate.
fn rates(durations: &[f32]) -> Option<(f32, f32)> {
    if durations.len() < 10 {
        return None;
    }
    let mean = durations.len() as f32 / durations.iter().sum::<f32>();
    let mut sorted = durations.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let p95_time = sorted[sorted.len() / 20];
    Some((mean, 1.0 / p95_time))
}

struct FrameStatsPlugin;

impl Plugin for FrameStatsPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<FrameStats>().add_systems(Update, record_frame);
    }
}

fn record_frame(mut stats: ResMut<FrameStats>, time: Res<Time<Real>>, studio: Res<StudioRes>) {
    stats.frames += 1;
    // The first frames include window and pipeline start-up.
    if stats.frames > 5 {
        let dt = time.delta_secs();
        if studio.activity == Activity::Idle { stats.idle.push(dt) } else { stats.busy.push(dt) }
    }
}

/// The app's state as JSON, for driver scripts and tests.
pub fn state_json(studio: &Studio, stats: &FrameStats) -> serde_json::Value {
    let c = &studio.composer;
    let (busy, idle) = (stats.busy_fps(), stats.idle_fps());
    serde_json::json!({
        "scenario": crate::scenario::to_ron_string(&c.scenario),
        "boxes": c.scenario.boxes.len(),
        "selected": c.selected,
        "file": c.path,
        "unsaved": c.unsaved(),
        "can_undo": c.can_undo(),
        "activity": studio.activity,
        "status": studio.status,
        "error": studio.error,
        "composer_message": c.message,
        "layout_error": studio.layout.error,
        "frame0": studio.results.frame0.as_ref().map(|f| f.dimensions()),
        "frames_received": studio.results.received(),
        "frames_per_future": studio.results.frames_per_future(),
        "run": studio.results.run,
        "playback": studio.playback,
        "ui": {
            "frames": stats.frames,
            "busy_frames": stats.busy.len(),
            "busy_mean_fps": busy.map(|b| b.0),
            "busy_p5_fps": busy.map(|b| b.1),
            "idle_frames": stats.idle.len(),
            "idle_mean_fps": idle.map(|b| b.0),
            "idle_p5_fps": idle.map(|b| b.1),
        },
    })
}
