//! `synth`: an on-disk dataset of procedural clips, their labels, and an index.
//!
//! ```text
//! DIR/index.json                      conditions and seed of every clip
//! DIR/clips/000000/frames/000000.png  frames
//! DIR/clips/000000/labels/…           KITTI tracking, COCO, BDD100K, labels.json
//! ```
//! The index is written last (atomically): a folder with an index is complete.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{ClipSpec, ClipStream};
use crate::export::{self, AtPath, ExportError, SequenceInfo};
use crate::scenario::{Conditions, TimeOfDay};
use crate::world::FrameLabels;

/// Version of the dataset layout; bumped on any incompatible change.
pub const DATASET_FORMAT: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SynthOptions {
    pub clips: usize,
    pub frames: usize,
    pub fps: f32,
    pub width: u32,
    pub height: u32,
    pub first_seed: u64,
}

/// Progress reported after each clip.
#[derive(Debug, Clone, Copy)]
pub struct SynthProgress {
    pub clips_done: usize,
    pub clips_total: usize,
}

/// `index.json`: what a dataset holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetIndex {
    pub format: u32,
    pub generator: String,
    pub frames_per_clip: usize,
    pub fps: f32,
    pub width: u32,
    pub height: u32,
    pub clips: Vec<IndexEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// Folder name under `clips/`.
    pub id: String,
    pub seed: u64,
    pub time_of_day: TimeOfDay,
    pub crowdedness: u8,
    /// Labelled cars in the first frame.
    pub cars_first_frame: usize,
    /// Where an imported clip came from (`import`: source sequence and frames); absent for
    /// rendered clips. An imported clip's `seed` is its number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl IndexEntry {
    pub fn conditions(&self) -> Conditions {
        Conditions { time_of_day: self.time_of_day, crowdedness: self.crowdedness }
    }
}

impl DatasetIndex {
    pub fn read(dir: &Path) -> Result<Self, ExportError> {
        let path = dir.join("index.json");
        let text = std::fs::read_to_string(&path).map_err(|e| ExportError::io(&path, e))?;
        serde_json::from_str(&text).map_err(|e| e.at_path(&path))
    }

    /// Folder of one clip.
    pub fn clip_dir(dir: &Path, entry: &IndexEntry) -> PathBuf {
        dir.join("clips").join(&entry.id)
    }

    /// Frame file paths of one clip, in order.
    pub fn frame_paths(&self, dir: &Path, entry: &IndexEntry) -> Vec<PathBuf> {
        let frames = Self::clip_dir(dir, entry).join("frames");
        (0..self.frames_per_clip).map(|i| frames.join(export::frame_file_name(i as u32))).collect()
    }

    /// Labels of one clip (our native JSON, exact).
    pub fn labels(dir: &Path, entry: &IndexEntry) -> Result<Vec<FrameLabels>, ExportError> {
        let path = Self::clip_dir(dir, entry).join("labels").join(export::NATIVE_LABELS_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| ExportError::io(&path, e))?;
        serde_json::from_str(&text).map_err(|e| e.at_path(&path))
    }
}

/// Renders `opts.clips` clips into `dir` (which must exist) and writes the index.
pub fn write_dataset(
    dir: &Path,
    opts: &SynthOptions,
    mut progress: impl FnMut(SynthProgress),
) -> Result<DatasetIndex, ExportError> {
    let spec = ClipSpec { frames: opts.frames, fps: opts.fps, width: opts.width, height: opts.height, warmup_s: 2.0 };
    let mut stream = ClipStream::new(spec, opts.first_seed);
    let mut entries = Vec::with_capacity(opts.clips);
    for k in 0..opts.clips {
        let seed = opts.first_seed + k as u64;
        let clip = stream.clip(seed).map_err(|e| ExportError::io(dir, std::io::Error::other(e.to_string())))?;
        let id = format!("{k:06}");
        let clip_dir = dir.join("clips").join(&id);
        let frames_dir = clip_dir.join("frames");
        std::fs::create_dir_all(&frames_dir).map_err(|e| ExportError::io(&frames_dir, e))?;
        let mut names = Vec::with_capacity(clip.frames.len());
        for (i, frame) in clip.frames.iter().enumerate() {
            let name = export::frame_file_name(i as u32);
            export::save_png_atomic(&frames_dir.join(&name), frame)?;
            names.push(format!("frames/{name}"));
        }
        let info = SequenceInfo {
            name: id.clone(),
            time_of_day: clip.conditions.time_of_day,
            fps: clip.fps,
            metadata: serde_json::json!({ "seed": seed, "crowdedness": clip.conditions.crowdedness }),
        };
        export::write_sequence_labels(&clip_dir.join("labels"), &info, &names, &clip.labels)?;
        entries.push(IndexEntry {
            id,
            seed,
            time_of_day: clip.conditions.time_of_day,
            crowdedness: clip.conditions.crowdedness,
            cars_first_frame: clip.labels.first().map_or(0, |l| l.objects.len()),
            source: None,
        });
        progress(SynthProgress { clips_done: k + 1, clips_total: opts.clips });
    }
    let index = DatasetIndex {
        format: DATASET_FORMAT,
        generator: format!("latentdrive {}", env!("CARGO_PKG_VERSION")),
        frames_per_clip: opts.frames,
        fps: opts.fps,
        width: opts.width,
        height: opts.height,
        clips: entries,
    };
    let json = serde_json::to_vec_pretty(&index).map_err(|e| e.at_path(&dir.join("index.json")))?;
    export::write_atomic(&dir.join("index.json"), &json)?;
    Ok(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dataset_round_trips_through_its_index() {
        let dir = std::env::temp_dir().join(format!("latentdrive-synth-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let opts = SynthOptions { clips: 3, frames: 2, fps: 5.0, width: 64, height: 32, first_seed: 40 };
        let mut seen = Vec::new();
        let index = write_dataset(&dir, &opts, |p| seen.push(p.clips_done)).unwrap();
        assert_eq!(seen, vec![1, 2, 3]);
        let back = DatasetIndex::read(&dir).unwrap();
        assert_eq!(back, index);
        for entry in &back.clips {
            for p in back.frame_paths(&dir, entry) {
                let img = image::open(&p).unwrap();
                assert_eq!((img.width(), img.height()), (64, 32));
            }
            // Labels on disk equal a fresh render of the same seed.
            let stored = DatasetIndex::labels(&dir, entry).unwrap();
            let spec = ClipSpec { frames: 2, fps: 5.0, width: 64, height: 32, warmup_s: 2.0 };
            let fresh = ClipStream::new(spec, 0).clip(entry.seed).unwrap();
            assert_eq!(stored, fresh.labels);
            assert_eq!(entry.conditions(), fresh.conditions);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
