//! A run folder (ARCHITECTURE.md, "Outputs of `generate`"):
//!
//! ```text
//! OUT/scenario.ron  metadata.json  frame0.png  contact_sheet.png
//! OUT/future_00/frames/000000.png …  OUT/future_00/preview.gif
//! OUT/labels/kitti_tracking.txt  labels/kitti/000000.txt  labels/coco.json  labels/bdd100k.json  labels/labels.json
//! ```
//!
//! Every file is written to a temporary name and renamed. `metadata.json` is written
//! last, so a folder without it is an interrupted run. Labels cover frame 0 (the
//! requested cars); generated future frames are unlabeled, never given invented labels.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use burn::tensor::backend::Backend;
use image::RgbImage;
use serde::{Deserialize, Serialize};

use super::generator::{Event, GenerateOptions, Generator, Plan, RunSummary, Seeds, Timings, requested_labels};
use super::models::{Models, WeightFile};
use super::{FrameSink, PipelineError};
use crate::export::{
    SequenceInfo, frame_file_name, save_png_atomic, write_atomic, write_gif_atomic, write_sequence_labels,
};
use crate::scenario::{Scenario, to_ron_string};

pub const METADATA_FILE: &str = "metadata.json";
/// Time points per future in the contact sheet.
const SHEET_COLUMNS: usize = 5;
/// Width of contact-sheet thumbnails and GIF previews.
const THUMB_WIDTH: u32 = 256;

/// What to generate.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub scenario: Scenario,
    pub options: GenerateOptions,
    /// Where the scenario came from (recorded only).
    pub scenario_file: Option<PathBuf>,
}

/// `metadata.json`: everything needed to reproduce the run, and what it cost.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Metadata {
    pub latentdrive_version: String,
    pub git_commit: Option<String>,
    pub scenario_file: Option<PathBuf>,
    /// The scenario exactly as generated (RON).
    pub scenario: String,
    pub options: GenerateOptions,
    pub seeds: Seeds,
    pub plan: Plan,
    pub tier: String,
    pub weights_dir: Option<PathBuf>,
    pub weights: Vec<WeightFile>,
    pub device: String,
    pub timings_s: Timings,
    pub labels: LabelsInfo,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabelsInfo {
    /// Images the label files annotate.
    pub labeled: Vec<String>,
    /// Images that carry no labels (generated frames are not annotated).
    pub unlabeled: String,
}

/// Generates `request` into the run folder `out` (which must exist and be writable).
pub fn generate_to_dir<B: Backend>(
    generator: &Generator<B>,
    request: &RunRequest,
    out: &Path,
    device_name: &str,
    on_event: &mut dyn FnMut(Event),
    cancel: &AtomicBool,
) -> Result<RunSummary, PipelineError> {
    let (scenario, opts) = (&request.scenario, &request.options);
    let plan = generator.plan(scenario, opts)?;
    let mkdir = |p: &Path| std::fs::create_dir_all(p).map_err(|e| PipelineError::io(p, e));
    mkdir(out)?;
    for k in 0..opts.futures {
        mkdir(&future_dir(out, k).join("frames"))?;
    }
    write_atomic(&out.join("scenario.ron"), to_ron_string(scenario).as_bytes())?;

    // Frame 0's labels: the requested cars at the output size.
    let (h, w) = plan.frame_size;
    let labels = requested_labels(scenario, w as u32, h as u32)?;
    let info = SequenceInfo {
        name: scenario.name.clone(),
        time_of_day: scenario.conditions.time_of_day,
        fps: plan.fps,
        metadata: serde_json::json!({
            "seed": scenario.seed,
            "labeled": ["frame0.png"],
            "unlabeled": "future_*/frames/* (generated frames are not annotated)",
        }),
    };
    write_sequence_labels(&out.join("labels"), &info, &["frame0.png".to_string()], &[labels])?;

    let mut sink = RunWriter::new(out, &plan, opts.futures);
    let summary = generator.run(scenario, opts, &mut sink, on_event, cancel)?;
    save_png_atomic(&out.join("contact_sheet.png"), &sink.contact_sheet())?;

    let metadata = Metadata {
        latentdrive_version: env!("CARGO_PKG_VERSION").to_string(),
        git_commit: git_commit(),
        scenario_file: request.scenario_file.clone(),
        scenario: to_ron_string(scenario),
        options: opts.clone(),
        seeds: summary.seeds.clone(),
        plan: summary.plan.clone(),
        tier: generator.models.tier.dir_name().to_string(),
        weights_dir: generator.models.dir.clone(),
        weights: generator.models.files.clone(),
        device: device_name.to_string(),
        timings_s: summary.timings.clone(),
        labels: LabelsInfo {
            labeled: vec!["frame0.png".into()],
            unlabeled: "future_*/frames/* (generated frames are not annotated)".into(),
        },
    };
    let path = out.join(METADATA_FILE);
    let json = serde_json::to_vec_pretty(&metadata).map_err(|e| PipelineError::io(&path, e))?;
    write_atomic(&path, &json)?;
    Ok(summary)
}

fn future_dir(out: &Path, k: usize) -> PathBuf {
    out.join(format!("future_{k:02}"))
}

/// Where frame `index` of future `future` lies in the run folder `run`.
pub fn frame_path(run: &Path, future: usize, index: usize) -> PathBuf {
    future_dir(run, future).join("frames").join(frame_file_name(index as u32))
}

/// Copies the finished run folder `run` to `dest` (which must not exist), through a
/// temporary sibling folder renamed at the end: an interrupted export leaves no
/// half-written `dest`. Returns the number of files copied.
pub fn export_run(run: &Path, dest: &Path) -> Result<usize, PipelineError> {
    read_metadata(run)?;
    if dest.exists() {
        return Err(PipelineError::io(dest, "already exists; choose a new folder"));
    }
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "run".into());
    let tmp = dest.with_file_name(format!(".{name}.partial"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| PipelineError::io(&tmp, e))?;
    }
    let files = files_under(run)?;
    let copy = || -> Result<(), PipelineError> {
        for rel in &files {
            let to = tmp.join(rel);
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent).map_err(|e| PipelineError::io(parent, e))?;
            }
            std::fs::copy(run.join(rel), &to).map_err(|e| PipelineError::io(&to, e))?;
        }
        std::fs::rename(&tmp, dest).map_err(|e| PipelineError::io(dest, e))
    };
    copy().inspect_err(|_| {
        let _ = std::fs::remove_dir_all(&tmp);
    })?;
    Ok(files.len())
}

/// The commit this binary was built from (`build.rs`), if it was built in a git checkout.
pub fn git_commit() -> Option<String> {
    option_env!("LATENTDRIVE_GIT_COMMIT").map(str::to_string)
}

/// Writes frames as they come, previews when a future is complete, and keeps only the
/// contact sheet's thumbnails in memory.
struct RunWriter {
    out: PathBuf,
    fps: f32,
    /// Frame indices shown in the contact sheet.
    columns: Vec<usize>,
    thumbs: Vec<Vec<Option<RgbImage>>>,
}

impl RunWriter {
    fn new(out: &Path, plan: &Plan, futures: usize) -> Self {
        let n = plan.frames_per_future;
        let columns = (0..SHEET_COLUMNS).map(|i| i * (n - 1) / (SHEET_COLUMNS - 1)).collect();
        RunWriter { out: out.to_path_buf(), fps: plan.fps, columns, thumbs: vec![vec![None; SHEET_COLUMNS]; futures] }
    }

    fn frame_path(&self, future: usize, index: usize) -> PathBuf {
        frame_path(&self.out, future, index)
    }

    /// Futures as rows, time points as columns, 4 px gaps.
    fn contact_sheet(&self) -> RgbImage {
        let gap = 4;
        let first = self.thumbs.iter().flatten().flatten().next();
        let (tw, th) = first.map_or((THUMB_WIDTH, THUMB_WIDTH / 2), |t| t.dimensions());
        let cols = self.columns.len() as u32;
        let rows = self.thumbs.len() as u32;
        let mut sheet = RgbImage::from_pixel(cols * (tw + gap) + gap, rows * (th + gap) + gap, image::Rgb([255; 3]));
        for (r, row) in self.thumbs.iter().enumerate() {
            for (c, thumb) in row.iter().enumerate() {
                if let Some(t) = thumb {
                    let (x, y) = (gap + c as u32 * (tw + gap), gap + r as u32 * (th + gap));
                    image::imageops::replace(&mut sheet, t, x as i64, y as i64);
                }
            }
        }
        sheet
    }
}

fn thumbnail(image: &RgbImage) -> RgbImage {
    let (w, h) = image.dimensions();
    if w <= THUMB_WIDTH {
        return image.clone();
    }
    let th = (h * THUMB_WIDTH / w).max(1);
    image::imageops::resize(image, THUMB_WIDTH, th, image::imageops::FilterType::Triangle)
}

impl FrameSink for RunWriter {
    fn frame0(&mut self, image: &RgbImage) -> Result<(), PipelineError> {
        Ok(save_png_atomic(&self.out.join("frame0.png"), image)?)
    }

    fn frame(&mut self, future: usize, index: usize, image: &RgbImage) -> Result<(), PipelineError> {
        save_png_atomic(&self.frame_path(future, index), image)?;
        if let Some(c) = self.columns.iter().position(|&i| i == index) {
            self.thumbs[future][c] = Some(thumbnail(image));
        }
        Ok(())
    }

    /// The GIF preview, from the frames on disk (read back one at a time).
    fn future_done(&mut self, future: usize, frames: usize) -> Result<(), PipelineError> {
        let failed: RefCell<Option<PipelineError>> = RefCell::new(None);
        let images = (0..frames).map_while(|i| {
            let path = self.frame_path(future, i);
            match image::open(&path) {
                Ok(img) => Some(thumbnail(&img.into_rgb8())),
                Err(e) => {
                    *failed.borrow_mut() = Some(PipelineError::io(&path, e));
                    None
                }
            }
        });
        let gif = future_dir(&self.out, future).join("preview.gif");
        write_gif_atomic(&gif, images, self.fps)?;
        match failed.into_inner() {
            Some(e) => {
                let _ = std::fs::remove_file(&gif);
                Err(e)
            }
            None => Ok(()),
        }
    }
}

/// Reads a run folder's `metadata.json`.
pub fn read_metadata(run: &Path) -> Result<Metadata, PipelineError> {
    let path = run.join(METADATA_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| PipelineError::Metadata {
        path: path.clone(),
        message: format!("cannot read ({e}); is this a finished run folder?"),
    })?;
    serde_json::from_str(&text).map_err(|e| PipelineError::Metadata { path, message: e.to_string() })
}

/// The outcome of [`replay`].
#[derive(Debug, Clone, Default)]
pub struct ReplayReport {
    /// Files compared byte for byte (all but `metadata.json`).
    pub compared: usize,
    /// Files whose bytes differ.
    pub differing: Vec<PathBuf>,
    /// Files of the run that the replay did not produce, and the reverse.
    pub missing: Vec<PathBuf>,
    pub extra: Vec<PathBuf>,
}

impl ReplayReport {
    pub fn identical(&self) -> bool {
        self.differing.is_empty() && self.missing.is_empty() && self.extra.is_empty()
    }
}

/// Regenerates the run in `run` from its metadata (with the weights of `weights`, or
/// the folder the metadata names) into a scratch folder beside it and compares every
/// file byte for byte. The weights must hash as recorded.
pub fn replay<B: Backend>(
    run: &Path,
    weights: Option<&Path>,
    device: B::Device,
    device_name: &str,
    on_event: &mut dyn FnMut(Event),
    cancel: &AtomicBool,
) -> Result<ReplayReport, PipelineError> {
    let meta = read_metadata(run)?;
    let meta_path = run.join(METADATA_FILE);
    let scenario = crate::scenario::parse_str(&meta.scenario, &meta_path)
        .map_err(|e| PipelineError::Metadata { path: meta_path.clone(), message: e.to_string() })?;
    let dir = weights.map(Path::to_path_buf).or(meta.weights_dir.clone()).ok_or_else(|| PipelineError::Metadata {
        path: meta_path.clone(),
        message: "the run names no weights folder; pass --weights".into(),
    })?;
    let needs = super::Needs::of(&meta.options);
    let models = Models::<B>::load_for(&dir, &device, needs)?;
    // Runs made before `Needs` recorded every model of the folder, used or not.
    for recorded in meta.weights.iter().filter(|r| needs.wants(&r.model)) {
        if !models.files.iter().any(|f| f.sha256 == recorded.sha256 && f.model == recorded.model) {
            return Err(PipelineError::Metadata {
                path: meta_path,
                message: format!(
                    "the run used {} ({}, sha256 {}), which {} does not hold: replay needs the same weights",
                    recorded.path.display(),
                    recorded.model,
                    recorded.sha256,
                    dir.display()
                ),
            });
        }
    }
    let generator = Generator::new(models, device);
    let name = run.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "run".into());
    let scratch = run.with_file_name(format!(".{name}.replay"));
    if scratch.exists() {
        std::fs::remove_dir_all(&scratch).map_err(|e| PipelineError::io(&scratch, e))?;
    }
    let request = RunRequest { scenario, options: meta.options.clone(), scenario_file: meta.scenario_file.clone() };
    let result = generate_to_dir(&generator, &request, &scratch, device_name, on_event, cancel)
        .and_then(|_| compare_trees(run, &scratch));
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

/// Relative paths of every file under `root`, sorted.
fn files_under(root: &Path) -> Result<Vec<PathBuf>, PipelineError> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| PipelineError::io(&dir, e))? {
            let path = entry.map_err(|e| PipelineError::io(&dir, e))?.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(rel) = path.strip_prefix(root) {
                out.push(rel.to_path_buf());
            }
        }
    }
    out.sort();
    Ok(out)
}

fn compare_trees(run: &Path, replayed: &Path) -> Result<ReplayReport, PipelineError> {
    let skip = |p: &PathBuf| p.as_os_str() == METADATA_FILE;
    let a: Vec<_> = files_under(run)?.into_iter().filter(|p| !skip(p)).collect();
    let b: Vec<_> = files_under(replayed)?.into_iter().filter(|p| !skip(p)).collect();
    let mut report = ReplayReport::default();
    for rel in &a {
        if !b.contains(rel) {
            report.missing.push(rel.clone());
            continue;
        }
        let read = |root: &Path| std::fs::read(root.join(rel)).map_err(|e| PipelineError::io(root.join(rel), e));
        report.compared += 1;
        if read(run)? != read(replayed)? {
            report.differing.push(rel.clone());
        }
    }
    report.extra = b.into_iter().filter(|p| !a.contains(p)).collect();
    Ok(report)
}
