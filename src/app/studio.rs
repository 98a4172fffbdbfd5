//! Everything the desktop app knows, as plain data with plain methods: the scene under
//! edit, settings, the background job, the frames it produced and their playback.
//! The bevy/egui layer (`crate::gui`) draws this and calls these methods; tests and the
//! GUI's driver script call the same ones.

use std::path::{Path, PathBuf};

use image::RgbImage;

use super::composer::Composer;
use super::job::{Device, GenerateJob, Job, JobError, JobMsg, JobOutcome, load_preview};
use super::layout::SceneLayout;
use super::recent::RecentFiles;
use crate::pipeline::{DecoderMode, GenerateOptions, Phase, Plan, RunRequest, UpsampleMode, export_run, frame_path};
use crate::scenario::{self, Scenario};

/// Generation settings that are not part of the scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub device: Device,
    /// Weights folder; `None` uses the scenario's (`weights/<tier>` by default).
    pub weights: Option<PathBuf>,
    /// Raise the frame rate ×4 with the interpolator.
    pub interpolate: bool,
    /// 4× upsampling to full size (off: a quick key-frame-size preview).
    pub upsample: bool,
    pub upsample_steps: usize,
    /// Noise level added to the decoded frames before the upsampler samples
    /// (0..[`crate::pipeline::UPSAMPLE_LEVELS`]; `generate --upsample-level`).
    pub upsample_level: usize,
    /// Share of each upsampled frame's noises (start and augmentation) moved on from the frame
    /// before it (`generate --upsample-noise`).
    pub upsample_noise: f32,
    /// Where runs are written: `<runs_dir>/<scenario name>`.
    pub runs_dir: PathBuf,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            device: Device::Cpu,
            weights: None,
            interpolate: true,
            upsample: false,
            upsample_steps: crate::pipeline::DEFAULT_UPSAMPLE_STEPS,
            upsample_level: crate::pipeline::DEFAULT_UPSAMPLE_LEVEL,
            upsample_noise: crate::pipeline::DEFAULT_UPSAMPLE_NOISE,
            runs_dir: PathBuf::from("runs").join("gui"),
        }
    }
}

/// What the background job is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Activity {
    Idle,
    Generating,
    Replaying,
}

/// Progress of a running job, per stage and future.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Progress {
    pub done: usize,
    pub total: usize,
    /// Frame 0: units done of `plan.first_frame_units`.
    pub frame0: usize,
    /// Per future: units done and the stage it is in.
    pub futures: Vec<(usize, Option<Phase>)>,
}

/// Frames of the current run at preview size, and how to play them.
#[derive(Debug, Clone, Default)]
pub struct Results {
    /// Tells one set of results from the next (texture caches key on it).
    pub id: u64,
    pub plan: Option<Plan>,
    pub frame0: Option<RgbImage>,
    /// Per future, frames by index (a slot is `None` until it arrives).
    pub futures: Vec<Vec<Option<RgbImage>>>,
    /// The run folder, once written.
    pub run: Option<PathBuf>,
}

impl Results {
    fn start(plan: Plan, futures: usize) -> Self {
        let n = plan.frames_per_future;
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Results { id, futures: vec![vec![None; n]; futures], plan: Some(plan), frame0: None, run: None }
    }

    /// Frames that have arrived, per future.
    pub fn received(&self) -> Vec<usize> {
        self.futures.iter().map(|f| f.iter().filter(|x| x.is_some()).count()).collect()
    }

    /// Frame `index` of `future`, or the latest earlier one that arrived (so a grid that
    /// plays while frames stream shows each future as far as it got), with the index of
    /// the frame shown (frame 0 stands in until the future's first frame arrives).
    pub fn frame(&self, future: usize, index: usize) -> Option<(usize, &RgbImage)> {
        let frames = self.futures.get(future)?;
        let last = index.min(frames.len().checked_sub(1)?);
        (0..=last)
            .rev()
            .find_map(|i| frames[i].as_ref().map(|f| (i, f)))
            .or_else(|| self.frame0.as_ref().map(|f| (0, f)))
    }

    pub fn fps(&self) -> f32 {
        self.plan.as_ref().map_or(10.0, |p| p.fps)
    }

    pub fn frames_per_future(&self) -> usize {
        self.futures.iter().map(Vec::len).max().unwrap_or(0)
    }

    /// Reads a finished run folder's frames at preview size.
    pub fn load_run(run: &Path) -> Result<Self, String> {
        let meta = crate::pipeline::output::read_metadata(run).map_err(|e| e.to_string())?;
        let mut r = Results::start(meta.plan.clone(), meta.options.futures);
        r.frame0 = load_preview(&run.join("frame0.png"));
        for (k, frames) in r.futures.iter_mut().enumerate() {
            for (i, slot) in frames.iter_mut().enumerate() {
                *slot = load_preview(&frame_path(run, k, i));
            }
        }
        r.run = Some(run.to_path_buf());
        Ok(r)
    }
}

/// Synchronised playback of every future.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Playback {
    /// Seconds from frame 0.
    pub time_s: f32,
    pub playing: bool,
    /// Show one future large instead of the grid.
    pub solo: Option<usize>,
}

impl Default for Playback {
    fn default() -> Self {
        Playback { time_s: 0.0, playing: true, solo: None }
    }
}

impl Playback {
    /// Advances by `dt` seconds, looping over `frames` frames at `fps`.
    pub fn advance(&mut self, dt: f32, frames: usize, fps: f32) {
        if !self.playing || frames == 0 {
            return;
        }
        let duration = frames as f32 / fps;
        self.time_s = (self.time_s + dt) % duration;
    }

    pub fn index(&self, frames: usize, fps: f32) -> usize {
        ((self.time_s * fps).floor() as usize).min(frames.saturating_sub(1))
    }

    pub fn seek(&mut self, index: usize, fps: f32) {
        self.time_s = index as f32 / fps;
    }
}

/// The app's whole state.
pub struct Studio {
    pub composer: Composer,
    pub layout: SceneLayout,
    /// Counts layout recomputations (texture caches key on it).
    pub layout_version: u64,
    /// The scenario `layout` was computed for.
    layout_of: Scenario,
    pub settings: Settings,
    pub activity: Activity,
    job: Option<Job>,
    pub progress: Progress,
    pub results: Results,
    pub playback: Playback,
    /// The last outcome or error, for the status bar.
    pub status: String,
    /// The last error (shown prominently until the next action).
    pub error: Option<String>,
    pub recent: RecentFiles,
}

impl Studio {
    pub fn new(scenario: Scenario, path: Option<PathBuf>, recent: RecentFiles) -> Self {
        let layout = SceneLayout::compute(&scenario);
        Studio {
            layout_of: scenario.clone(),
            composer: Composer::new(scenario, path),
            layout,
            layout_version: 0,
            settings: Settings::default(),
            activity: Activity::Idle,
            job: None,
            progress: Progress::default(),
            results: Results::default(),
            playback: Playback::default(),
            status: "ready".into(),
            error: None,
            recent,
        }
    }

    /// Recomputes the world's layout when the scenario changed (once per UI frame).
    pub fn refresh_layout(&mut self) {
        if self.composer.scenario != self.layout_of {
            self.layout = SceneLayout::compute(&self.composer.scenario);
            self.layout_of = self.composer.scenario.clone();
            self.layout_version += 1;
        }
    }

    fn fail(&mut self, message: String) {
        self.status = message.clone();
        self.error = Some(message);
    }

    /// Opens a scenario file; errors (with file, line and field) go to the status bar.
    pub fn open(&mut self, path: &Path) {
        match scenario::load(path) {
            Ok(s) => {
                self.composer.open(s, Some(path.to_path_buf()));
                self.recent.add(path);
                self.error = None;
                self.status = format!("opened {}", path.display());
                self.refresh_layout();
            }
            Err(e) => self.fail(e.to_string()),
        }
    }

    /// Saves the scenario (RON) atomically.
    pub fn save(&mut self, path: &Path) {
        self.composer.settle();
        let text = scenario::to_ron_string(&self.composer.scenario);
        match crate::export::write_atomic(path, text.as_bytes()) {
            Ok(()) => {
                self.composer.mark_saved(path.to_path_buf());
                self.recent.add(path);
                self.error = None;
                self.status = format!("saved {}", path.display());
            }
            Err(e) => self.fail(format!("cannot save: {e}")),
        }
    }

    /// The folder runs of the current scenario are written to.
    pub fn run_dir(&self) -> PathBuf {
        self.settings.runs_dir.join(&self.composer.scenario.name)
    }

    pub fn weights_dir(&self) -> PathBuf {
        let s = &self.composer.scenario;
        self.settings
            .weights
            .clone()
            .or_else(|| s.model.weights.clone())
            .unwrap_or_else(|| Path::new("weights").join(s.model.tier.dir_name()))
    }

    pub fn options(&self) -> GenerateOptions {
        let mut o = GenerateOptions::from_scenario(&self.composer.scenario);
        o.interpolate = self.settings.interpolate;
        o.decoder = DecoderMode::Temporal;
        o.upsample = if self.settings.upsample { UpsampleMode::Video } else { UpsampleMode::Off };
        o.upsample_steps = self.settings.upsample_steps;
        o.upsample_level = self.settings.upsample_level;
        o.upsample_noise = self.settings.upsample_noise;
        o
    }

    /// Starts generating the current scenario in the background.
    pub fn generate(&mut self) {
        if self.activity != Activity::Idle {
            return;
        }
        self.composer.settle();
        let scenario = self.composer.scenario.clone();
        if let Some((path, msg)) = scenario::validate(&scenario).first() {
            return self.fail(format!("cannot generate: {path}: {msg}"));
        }
        let request = RunRequest { scenario, options: self.options(), scenario_file: self.composer.path.clone() };
        let job =
            GenerateJob { request, weights: self.weights_dir(), out: self.run_dir(), device: self.settings.device };
        self.results = Results::default();
        self.progress = Progress::default();
        self.playback = Playback::default();
        self.error = None;
        self.status = format!("generating into {}", job.out.display());
        self.job = Some(Job::generate(job));
        self.activity = Activity::Generating;
    }

    /// Replays a run folder in the background and reports whether it is bit-identical.
    pub fn replay(&mut self, run: &Path) {
        if self.activity != Activity::Idle {
            return;
        }
        match Results::load_run(run) {
            Ok(r) => self.results = r,
            Err(e) => return self.fail(e),
        }
        self.progress = Progress::default();
        self.error = None;
        self.status = format!("replaying {}", run.display());
        self.job = Some(Job::replay(run.to_path_buf(), self.settings.weights.clone(), self.settings.device));
        self.activity = Activity::Replaying;
    }

    /// Shows a finished run folder without regenerating it.
    pub fn show_run(&mut self, run: &Path) {
        match Results::load_run(run) {
            Ok(r) => {
                self.results = r;
                self.playback = Playback::default();
                self.status = format!("showing {}", run.display());
                self.error = None;
            }
            Err(e) => self.fail(e),
        }
    }

    pub fn cancel(&mut self) {
        if let Some(job) = &self.job {
            job.cancel();
            self.status = "cancelling…".into();
        }
    }

    /// Copies the current run folder to `dest` (same layout as `generate`).
    pub fn export(&mut self, dest: &Path) {
        let Some(run) = self.results.run.clone() else {
            return self.fail("nothing to export: generate a run first".into());
        };
        match export_run(&run, dest) {
            Ok(n) => {
                self.error = None;
                self.status = format!("exported {n} files to {}", dest.display());
            }
            Err(e) => self.fail(format!("export failed: {e}")),
        }
    }

    /// Takes in what the job reported since the last call; returns whether anything changed.
    pub fn poll(&mut self) -> bool {
        let Some(job) = &mut self.job else { return false };
        let msgs = job.poll();
        let changed = !msgs.is_empty();
        for m in msgs {
            self.take(m);
        }
        changed
    }

    fn take(&mut self, m: JobMsg) {
        match m {
            JobMsg::Planned(plan) => {
                let futures = self.composer.scenario.rollout.futures as usize;
                if self.activity == Activity::Generating {
                    self.results = Results::start(plan, futures);
                }
                self.progress.futures = vec![(0, None); self.results.futures.len()];
            }
            JobMsg::Progress { future, phase, done, total } => {
                self.progress.done = done;
                self.progress.total = total;
                match future {
                    None => self.progress.frame0 += 1,
                    Some(k) => {
                        if let Some(f) = self.progress.futures.get_mut(k) {
                            f.0 += 1;
                            f.1 = Some(phase);
                        }
                    }
                }
            }
            JobMsg::FirstFrame(image) => self.results.frame0 = Some(image),
            JobMsg::Frame { future, index, image } => {
                if let Some(slot) = self.results.futures.get_mut(future).and_then(|f| f.get_mut(index)) {
                    *slot = Some(image);
                }
            }
            JobMsg::Finished(result) => {
                self.job = None;
                self.activity = Activity::Idle;
                match result {
                    Ok(JobOutcome::Generated { run, summary }) => {
                        self.status = format!(
                            "generated {} future(s) x {} frames in {:.1} s: {}",
                            self.results.futures.len(),
                            summary.plan.frames_per_future,
                            summary.timings.total,
                            run.display()
                        );
                        self.results.run = Some(run);
                    }
                    Ok(JobOutcome::Replayed { run, report }) => {
                        self.status = if report.identical() {
                            format!("replay of {}: all {} files bit-identical", run.display(), report.compared)
                        } else {
                            format!(
                                "replay of {}: {} of {} files differ, {} missing, {} extra",
                                run.display(),
                                report.differing.len(),
                                report.compared,
                                report.missing.len(),
                                report.extra.len()
                            )
                        };
                    }
                    Err(JobError::Cancelled) => self.status = "cancelled (the run folder is incomplete)".into(),
                    Err(JobError::Failed(e)) => self.fail(e),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_show_the_latest_frame_that_arrived() {
        let img = |v: u8| RgbImage::from_pixel(2, 1, image::Rgb([v; 3]));
        let mut r = Results { futures: vec![vec![None; 4]], frame0: Some(img(0)), ..Default::default() };
        assert_eq!(r.frame(0, 3).unwrap().1[(0, 0)].0[0], 0);
        r.futures[0][1] = Some(img(1));
        assert_eq!(r.frame(0, 3).map(|(i, f)| (i, f[(0, 0)].0[0])), Some((1, 1)));
        assert_eq!(r.frame(0, 0).unwrap().1[(0, 0)].0[0], 0);
        assert_eq!(r.received(), vec![1]);
    }

    #[test]
    fn playback_loops_and_seeks() {
        let mut p = Playback::default();
        p.advance(0.25, 10, 10.0);
        assert_eq!(p.index(10, 10.0), 2);
        p.advance(1.0, 10, 10.0);
        assert_eq!(p.index(10, 10.0), 2);
        p.seek(7, 10.0);
        assert_eq!(p.index(10, 10.0), 7);
        p.playing = false;
        p.advance(0.5, 10, 10.0);
        assert_eq!(p.index(10, 10.0), 7);
    }
}
