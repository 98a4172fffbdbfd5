//! `import`: real driving data — KITTI tracking or object labels, BDD100K (Scalabel)
//! JSON — into the on-disk dataset layout `synth` writes, so `train --data` trains on it.
//!
//! ```text
//! label files ──kitti / bdd reader──▶ sequences of labelled frames (source pixels)
//!   ──cut into clips of N consecutive frames──▶ centre crop to the output aspect, resize
//!   ──▶ DIR/clips/<id>/frames/*.png + labels (KITTI, COCO, BDD100K, labels.json)
//!   ──▶ DIR/index.json, written last: a folder with an index is complete
//! ```
//!
//! The sources say less than the world's exact labels; what they leave out is estimated
//! the same way for every format (`clip::estimate`): occluded and truncated fractions are
//! the middles of the sources' levels, the visible pixels are the box's area less that
//! fraction, a 2D-only object gets KITTI's "unknown" 3D box, and a clip's crowdedness
//! comes from its car count, with the thresholds the world's own levels give
//! ([`world_crowdedness`]).

mod bdd;
mod clip;
mod crowd;
mod kitti;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use crate::data::{DATASET_FORMAT, DatasetIndex};
use crate::export::{self, AtPath, ExportError};
use crate::scenario::TimeOfDay;
use crate::world::labels::{Box2d, Box3d, Occlusion};

use clip::ClipWriter;
#[cfg(test)]
use clip::Crop;
use crowd::Crowdedness;
pub use crowd::{CALIBRATION_WORLDS, world_crowdedness};

/// The label formats `import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportFormat {
    /// KITTI tracking: `label_02/<seq>.txt` and `image_02/<seq>/<frame>.png`.
    KittiTracking,
    /// KITTI object detection: `label_2/<id>.txt` and `image_2/<id>.png`, single images.
    KittiObject,
    /// BDD100K / Scalabel JSON: a file or a folder of files, each a list of frames
    /// (`{"frames": [...]}` also read), with the images under a separate root.
    Bdd100k,
}

impl ImportFormat {
    /// The format's name on the command line and in the index.
    pub fn name(self) -> &'static str {
        match self {
            ImportFormat::KittiTracking => "kitti-tracking",
            ImportFormat::KittiObject => "kitti-object",
            ImportFormat::Bdd100k => "bdd100k",
        }
    }

    /// The source frame rate unless told: KITTI's cameras record at 10 Hz; BDD100K's
    /// tracking labels (`box_track_20`) are at 5 Hz.
    pub fn default_fps(self) -> f32 {
        match self {
            ImportFormat::KittiTracking | ImportFormat::KittiObject => 10.0,
            ImportFormat::Bdd100k => 5.0,
        }
    }

    /// Frames per clip unless told: 32 for video (3.2 s of KITTI, 6.4 s of BDD100K: room
    /// for the video LDM's 8 frames at 2.5 Hz), 1 for KITTI's single images.
    pub fn default_frames(self) -> usize {
        match self {
            ImportFormat::KittiObject => 1,
            ImportFormat::KittiTracking | ImportFormat::Bdd100k => 32,
        }
    }
}

/// What to import and how to cut it.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportOptions {
    pub format: ImportFormat,
    /// BDD100K only: the image root; a frame is `<root>/<videoName>/<name>` or `<root>/<name>`.
    pub images: Option<PathBuf>,
    /// Consecutive source frames per clip (a sequence's remainder is left out).
    pub frames: usize,
    /// The source's frame rate, recorded in the index.
    pub fps: f32,
    /// Output frame size; frames are centre-cropped to its aspect and scaled down to it.
    pub width: u32,
    pub height: u32,
    /// Source class names imported as cars, compared without case.
    pub car_classes: Vec<String>,
    /// Time of day of clips whose labels do not give one (KITTI never does).
    pub time_of_day: TimeOfDay,
    /// Every clip's crowdedness; `None`: from its car count ([`world_crowdedness`]).
    pub crowdedness: Option<u8>,
    /// Stop after this many clips.
    pub max_clips: Option<usize>,
}

/// Progress: once the label files are listed, then after each.
#[derive(Debug, Clone, Copy)]
pub struct ImportProgress {
    pub files_done: usize,
    pub files_total: usize,
    pub clips: usize,
}

/// What an import wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportSummary {
    pub index: DatasetIndex,
    /// Source frames read into clips.
    pub frames: usize,
    /// Cars written, over all frames.
    pub cars: usize,
    /// Cars of the source frames left out because less than a pixel of them was left
    /// inside the crop.
    pub cars_outside_crop: usize,
    /// Source sequences, after splitting at gaps and unlabelled frames.
    pub sequences: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The source is not what its format needs: a missing folder or image, a malformed
    /// label file, frames smaller than the output size. The message names the file.
    #[error("{0}")]
    Source(String),
    /// Fitting the crowdedness thresholds on the world's renders failed.
    #[error("crowdedness calibration: {0}")]
    Calibration(String),
    /// Writing the dataset failed.
    #[error(transparent)]
    Write(#[from] ExportError),
}

/// One object of a source frame, in that frame's pixels.
#[derive(Debug, Clone, PartialEq)]
struct SourceObject {
    /// Identity within its sequence (KITTI's track id, BDD100K's `id`).
    track: String,
    box2d: Box2d,
    /// Fraction of the object outside the source frame.
    truncation: f32,
    occlusion: Occlusion,
    box3d: Box3d,
}

/// One labelled source frame.
#[derive(Debug, Clone, PartialEq)]
struct SourceFrame {
    /// The frame's number in its source video (0 for a single image).
    number: u32,
    image: PathBuf,
    /// Only the objects of the imported classes.
    objects: Vec<SourceObject>,
    /// What the labels say, if anything.
    time_of_day: Option<TimeOfDay>,
}

/// Consecutive labelled frames of one source video (or one image).
#[derive(Debug, Clone, PartialEq)]
struct SourceSequence {
    name: String,
    frames: Vec<SourceFrame>,
}

/// The label files of `src` for `format`, in the order they are imported.
fn label_files(src: &Path, format: ImportFormat) -> Result<Vec<PathBuf>, ImportError> {
    match format {
        ImportFormat::KittiTracking => kitti::label_files(src, "label_02", "image_02"),
        ImportFormat::KittiObject => kitti::label_files(src, "label_2", "image_2"),
        ImportFormat::Bdd100k => bdd::label_files(src),
    }
}

/// The labelled sequences of one label file.
fn read_sequences(file: &Path, opts: &ImportOptions) -> Result<Vec<SourceSequence>, ImportError> {
    let cars = |class: &str| opts.car_classes.iter().any(|c| c.eq_ignore_ascii_case(class));
    match opts.format {
        ImportFormat::KittiTracking => kitti::read_tracking_sequences(file, &cars),
        ImportFormat::KittiObject => kitti::read_object_frame(file, &cars),
        // `ImportOptions::check` asked for the image root.
        ImportFormat::Bdd100k => bdd::read_sequences(file, opts.images.as_deref().unwrap_or(Path::new(".")), &cars),
    }
}

/// Imports `src` into `dir` (which must exist) as a `synth` dataset and writes its index.
pub fn import_dataset(
    src: &Path,
    dir: &Path,
    opts: &ImportOptions,
    mut progress: impl FnMut(ImportProgress),
) -> Result<ImportSummary, ImportError> {
    opts.check()?;
    let files = label_files(src, opts.format)?;
    progress(ImportProgress { files_done: 0, files_total: files.len(), clips: 0 });
    let crowdedness = match opts.crowdedness {
        Some(level) => Crowdedness::Fixed(level),
        None => Crowdedness::FromCount(world_crowdedness(CALIBRATION_WORLDS)?),
    };
    let mut entries = Vec::new();
    let (mut frames, mut cars, mut cars_outside_crop, mut sequences) = (0, 0, 0, 0);
    let max_clips = opts.max_clips.unwrap_or(usize::MAX);
    let mut longest = 0;
    'files: for (done, file) in files.iter().enumerate() {
        for sequence in read_sequences(file, opts)? {
            sequences += 1;
            longest = longest.max(sequence.frames.len());
            for chunk in sequence.frames.chunks_exact(opts.frames) {
                if entries.len() == max_clips {
                    break 'files;
                }
                let id = format!("{:06}", entries.len());
                let (first, last) = (chunk[0].number, chunk[chunk.len() - 1].number);
                let source = if first == last {
                    format!("{} frame {first}", sequence.name)
                } else {
                    format!("{} frames {first}–{last}", sequence.name)
                };
                let clip = ClipWriter { dir, opts, crowdedness: &crowdedness }.write(&id, &source, chunk)?;
                frames += chunk.len();
                cars += clip.cars;
                cars_outside_crop += clip.cars_outside_crop;
                entries.push(clip.entry);
            }
        }
        progress(ImportProgress { files_done: done + 1, files_total: files.len(), clips: entries.len() });
    }
    if entries.is_empty() {
        return Err(ImportError::Source(format!(
            "{}: no sequence of {} consecutive labelled frames (the longest has {longest}){}",
            src.display(),
            opts.frames,
            if longest > 0 { "; lower --frames" } else { "" }
        )));
    }
    let index = DatasetIndex {
        format: DATASET_FORMAT,
        generator: format!("latentdrive {} import {} {}", env!("CARGO_PKG_VERSION"), opts.format.name(), src.display()),
        frames_per_clip: opts.frames,
        fps: opts.fps,
        width: opts.width,
        height: opts.height,
        clips: entries,
    };
    let path = dir.join("index.json");
    let json = serde_json::to_vec_pretty(&index).map_err(|e| e.at_path(&path))?;
    export::write_atomic(&path, &json)?;
    Ok(ImportSummary { index, frames, cars, cars_outside_crop, sequences })
}

impl ImportOptions {
    /// Refuses options no import can run with (before anything is read or written).
    pub fn check(&self) -> Result<(), ImportError> {
        let bad = |m: String| Err(ImportError::Source(m));
        if self.frames == 0 || self.max_clips == Some(0) {
            return bad("--frames and --max-clips must be at least 1".into());
        }
        if !(self.fps.is_finite() && self.fps > 0.0) {
            return bad(format!("--fps must be a positive number, found {}", self.fps));
        }
        if self.width == 0 || self.height == 0 {
            return bad(format!("the output size must not be empty, found {}x{}", self.width, self.height));
        }
        if self.car_classes.iter().all(|c| c.trim().is_empty()) {
            return bad("--cars names no class".into());
        }
        if let Some(level) = self.crowdedness.filter(|&l| l > crate::scenario::MAX_CROWDEDNESS) {
            return bad(format!("--crowdedness must be in 0..={}, found {level}", crate::scenario::MAX_CROWDEDNESS));
        }
        if self.format == ImportFormat::Bdd100k && self.images.is_none() {
            return bad("bdd100k needs --images DIR (the root of the frames' images)".into());
        }
        Ok(())
    }
}
