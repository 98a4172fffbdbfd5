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
//! the same way for every format (see [`estimate`]): occluded and truncated fractions are
//! the middles of the sources' levels, the visible pixels are the box's area less that
//! fraction, a 2D-only object gets KITTI's "unknown" 3D box, and a clip's crowdedness
//! comes from its car count, with the thresholds the world's own levels give
//! ([`world_crowdedness`]).

mod bdd;
mod kitti;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use image::RgbImage;

use crate::data::{ClipSpec, ClipStream, DATASET_FORMAT, DatasetIndex, IndexEntry};
use crate::eval::crowd::CountCrowdedness;
use crate::export::{self, AtPath, ExportError, SequenceInfo};
use crate::scenario::{Conditions, TimeOfDay};
use crate::world::labels::{Box2d, Box3d, FrameLabels, ObjectClass, ObjectLabel, Occlusion};

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

    /// The source class names imported as cars unless told.
    pub fn default_car_classes(self) -> Vec<String> {
        vec!["car".to_string()]
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

/// Progress after each source label file.
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

/// Estimates for what the source labels leave out.
mod estimate {
    use crate::world::labels::Occlusion;

    /// The hidden fraction taken for an occlusion level: the middle of the level's
    /// range (under 10 %, 10–50 %, over 50 %; see [`Occlusion`]).
    pub fn occluded_fraction(occlusion: Occlusion) -> f32 {
        match occlusion {
            Occlusion::FullyVisible => 0.0,
            Occlusion::PartlyOccluded => 0.3,
            Occlusion::LargelyOccluded => 0.75,
            Occlusion::FullyOccluded => 1.0,
        }
    }

    /// The truncated fraction taken for a level 0 (not), 1 (partly, up to half) or
    /// 2 (more than half): the middle of its range, so our exporters give the level back.
    pub fn truncation(level: u8) -> f32 {
        match level {
            0 => 0.0,
            1 => 0.25,
            _ => 0.75,
        }
    }
}

/// Where a source frame's output comes from: the centre crop with the output's aspect.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Crop {
    x0: u32,
    y0: u32,
    width: u32,
    height: u32,
}

impl Crop {
    /// The largest `out_w : out_h` window centred in a `w × h` frame.
    fn centre(w: u32, h: u32, out_w: u32, out_h: u32) -> Crop {
        let (w64, h64, ow, oh) = (w as u64, h as u64, out_w as u64, out_h as u64);
        if w64 * oh > h64 * ow {
            let cw = ((h64 * ow + oh / 2) / oh) as u32;
            Crop { x0: (w - cw) / 2, y0: 0, width: cw, height: h }
        } else {
            let ch = ((w64 * oh + ow / 2) / ow) as u32;
            Crop { x0: 0, y0: (h - ch) / 2, width: w, height: ch }
        }
    }

    /// `b` (source pixels) in an `out_w × out_h` output of this crop, clipped to it, and the
    /// fraction of its area kept. `None` when less than a pixel is left in either direction.
    fn map_box(&self, b: &Box2d, out_w: u32, out_h: u32) -> Option<(Box2d, f32)> {
        let s = out_w as f32 / self.width as f32;
        let (x0, y0) = (self.x0 as f32, self.y0 as f32);
        let full = Box2d { x1: (b.x1 - x0) * s, y1: (b.y1 - y0) * s, x2: (b.x2 - x0) * s, y2: (b.y2 - y0) * s };
        let kept = Box2d {
            x1: full.x1.clamp(0.0, out_w as f32),
            y1: full.y1.clamp(0.0, out_h as f32),
            x2: full.x2.clamp(0.0, out_w as f32),
            y2: full.y2.clamp(0.0, out_h as f32),
        };
        (kept.width() >= 1.0 && kept.height() >= 1.0).then(|| (kept, kept.area() / full.area()))
    }
}

/// The crowdedness of a clip.
enum Crowdedness {
    Fixed(u8),
    FromCount(CountCrowdedness),
}

impl Crowdedness {
    /// The level of a clip whose frames show `counts` cars.
    fn level(&self, counts: &[usize]) -> u8 {
        match self {
            Crowdedness::Fixed(level) => *level,
            Crowdedness::FromCount(thresholds) => {
                let mean = counts.iter().sum::<usize>() as f32 / counts.len().max(1) as f32;
                thresholds.level(mean.round() as usize)
            }
        }
    }
}

/// World renders the crowdedness thresholds are fitted on (24 per level on average).
pub const CALIBRATION_WORLDS: usize = 96;

/// Cars are counted for crowdedness when their box is at least this share of the frame's
/// height (2 pixels at 128): far cars that a larger frame resolves and a smaller one loses
/// would otherwise make the count depend on the frame size.
const COUNTED_HEIGHT: f32 = 1.0 / 64.0;

/// The cars of `labels` that count for crowdedness.
fn counted_cars(labels: &FrameLabels) -> usize {
    let min = labels.height as f32 * COUNTED_HEIGHT;
    labels.objects.iter().filter(|o| o.visible_pixels > 0 && o.box2d.height() >= min).count()
}

/// First world seed of the calibration renders (training range; any would do).
const CALIBRATION_SEED: u64 = 0xC0A7;

/// Thresholds between crowdedness levels from the world's own labels: the cars visible in
/// the first frames of `worlds` training-range worlds at 256×128 (those at least
/// [`COUNTED_HEIGHT`] of the frame high), averaged per level, with
/// a threshold halfway between neighbouring levels' means (as `eval` reads crowdedness off
/// a detector's count, [`CountCrowdedness`]). A real frame with that many cars in view is
/// as crowded as the world's frames of that level; the world's camera is not KITTI's or
/// BDD100K's, so this is a calibration by counts, not by traffic density.
pub fn world_crowdedness(worlds: usize) -> Result<CountCrowdedness, ImportError> {
    let spec = ClipSpec { frames: 1, fps: 10.0, width: 256, height: 128, warmup_s: 2.0 };
    let (counts, truth): (Vec<usize>, Vec<Conditions>) = ClipStream::new(spec, CALIBRATION_SEED)
        .take(worlds)
        .map(|clip| (counted_cars(&clip.labels[0]), clip.conditions))
        .unzip();
    CountCrowdedness::from_counts(&counts, &truth).map_err(|e| ImportError::Calibration(e.to_string()))
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
        ImportFormat::Bdd100k => {
            let images = opts
                .images
                .as_deref()
                .ok_or_else(|| ImportError::Source("bdd100k: the image root is needed (--images DIR)".to_string()))?;
            bdd::read_sequences(file, images, &cars)
        }
    }
}

/// Imports `src` into `dir` (which must exist) as a `synth` dataset and writes its index.
pub fn import_dataset(
    src: &Path,
    dir: &Path,
    opts: &ImportOptions,
    mut progress: impl FnMut(ImportProgress),
) -> Result<ImportSummary, ImportError> {
    check_options(opts)?;
    let files = label_files(src, opts.format)?;
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

fn check_options(opts: &ImportOptions) -> Result<(), ImportError> {
    let bad = |m: String| Err(ImportError::Source(m));
    if opts.frames == 0 {
        return bad("frames per clip must be at least 1".into());
    }
    if !(opts.fps.is_finite() && opts.fps > 0.0) {
        return bad(format!("the frame rate must be a positive number, found {}", opts.fps));
    }
    if opts.width == 0 || opts.height == 0 {
        return bad(format!("the output size must not be empty, found {}x{}", opts.width, opts.height));
    }
    if opts.car_classes.is_empty() {
        return bad("no class is imported as car".into());
    }
    if let Some(level) = opts.crowdedness.filter(|&l| l > crate::scenario::MAX_CROWDEDNESS) {
        return bad(format!("crowdedness must be in 0..={}, found {level}", crate::scenario::MAX_CROWDEDNESS));
    }
    Ok(())
}

/// A written clip.
struct WrittenClip {
    entry: IndexEntry,
    cars: usize,
    cars_outside_crop: usize,
}

/// Writes clips into a dataset folder.
struct ClipWriter<'a> {
    dir: &'a Path,
    opts: &'a ImportOptions,
    crowdedness: &'a Crowdedness,
}

impl ClipWriter<'_> {
    /// Writes the frames of one clip and their labels (all formats) under `clips/<id>/`.
    fn write(&self, id: &str, source: &str, frames: &[SourceFrame]) -> Result<WrittenClip, ImportError> {
        let (w, h) = (self.opts.width, self.opts.height);
        let clip_dir = self.dir.join("clips").join(id);
        let frames_dir = clip_dir.join("frames");
        std::fs::create_dir_all(&frames_dir).map_err(|e| ExportError::io(&frames_dir, e))?;
        // Track ids are numbered per clip in order of appearance.
        let mut tracks: HashMap<&str, u32> = HashMap::new();
        let (mut names, mut labels) = (Vec::with_capacity(frames.len()), Vec::with_capacity(frames.len()));
        let mut outside = 0;
        for (i, frame) in frames.iter().enumerate() {
            let img = image::open(&frame.image)
                .map_err(|e| ImportError::Source(format!("{}: cannot read the image: {e}", frame.image.display())))?
                .into_rgb8();
            let crop = Crop::centre(img.width(), img.height(), w, h);
            if crop.width < w || crop.height < h {
                return Err(ImportError::Source(format!(
                    "{}: the {}x{} frame's {w}:{h} centre crop is {}x{}, smaller than the output size {w}x{h} \
                     (frames are only scaled down; choose a smaller --size)",
                    frame.image.display(),
                    img.width(),
                    img.height(),
                    crop.width,
                    crop.height
                )));
            }
            let cropped = image::imageops::crop_imm(&img, crop.x0, crop.y0, crop.width, crop.height).to_image();
            let out: RgbImage = image::imageops::resize(&cropped, w, h, image::imageops::FilterType::Triangle);
            let name = export::frame_file_name(i as u32);
            export::save_png_atomic(&frames_dir.join(&name), &out)?;
            names.push(format!("frames/{name}"));

            let mut objects = Vec::with_capacity(frame.objects.len());
            for object in &frame.objects {
                let Some((box2d, kept)) = crop.map_box(&object.box2d, w, h) else {
                    outside += 1;
                    continue;
                };
                let next = tracks.len() as u32;
                let occluded_fraction = estimate::occluded_fraction(object.occlusion);
                objects.push(ObjectLabel {
                    track_id: *tracks.entry(object.track.as_str()).or_insert(next),
                    class: ObjectClass::Car,
                    box2d,
                    box3d: object.box3d,
                    truncation: 1.0 - (1.0 - object.truncation.clamp(0.0, 1.0)) * kept,
                    occluded_fraction,
                    occlusion: object.occlusion,
                    visible_pixels: (box2d.area() * (1.0 - occluded_fraction)).round().max(1.0) as u32,
                });
            }
            let time_s = i as f32 / self.opts.fps;
            labels.push(FrameLabels { frame: i as u32, time_s, width: w, height: h, objects });
        }
        let time_of_day = frames.iter().find_map(|f| f.time_of_day).unwrap_or(self.opts.time_of_day);
        let crowdedness = self.crowdedness.level(&labels.iter().map(counted_cars).collect::<Vec<_>>());
        let counts: Vec<usize> = labels.iter().map(|l| l.objects.len()).collect();
        let info = SequenceInfo {
            name: id.to_string(),
            time_of_day,
            fps: self.opts.fps,
            metadata: serde_json::json!({ "source": source, "crowdedness": crowdedness }),
        };
        export::write_sequence_labels(&clip_dir.join("labels"), &info, &names, &labels)?;
        let entry = IndexEntry {
            id: id.to_string(),
            seed: id.parse().unwrap_or(0),
            time_of_day,
            crowdedness,
            cars_first_frame: counts[0],
            source: Some(source.to_string()),
        };
        Ok(WrittenClip { entry, cars: counts.iter().sum(), cars_outside_crop: outside })
    }
}
