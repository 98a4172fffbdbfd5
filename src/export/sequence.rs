//! The label set of one sequence of frames, in every format at once:
//!
//! ```text
//! DIR/kitti_tracking.txt   KITTI tracking, 17 columns, one file for the sequence
//! DIR/kitti/000000.txt     KITTI object, 15 columns, one file per frame
//! DIR/coco.json            COCO detection
//! DIR/bdd100k.json         BDD100K frame list
//! DIR/labels.json          our own FrameLabels, exact (what `data` reads back)
//! ```

use std::path::Path;

use serde_json::{Map, Value};

use super::bdd::{BddBuilder, BddClip};
use super::coco::CocoBuilder;
use super::error::{AtPath, ExportError};
use super::{atomic, kitti};
use crate::scenario::TimeOfDay;
use crate::world::FrameLabels;

/// File name of our native, exact label file.
pub const NATIVE_LABELS_FILE: &str = "labels.json";

/// What every label file says about its sequence.
#[derive(Debug, Clone)]
pub struct SequenceInfo {
    /// Sequence name (BDD `videoName`).
    pub name: String,
    pub time_of_day: TimeOfDay,
    pub fps: f32,
    /// Extra facts recorded in COCO's `info` (seeds, versions).
    pub metadata: Value,
}

/// Writes all label formats for `labels` into `dir` (created if missing).
/// `image_names[i]` is frame i's image path as the label files should cite it.
pub fn write_sequence_labels(
    dir: &Path,
    info: &SequenceInfo,
    image_names: &[String],
    labels: &[FrameLabels],
) -> Result<(), ExportError> {
    if image_names.len() != labels.len() {
        return Err(ExportError::io(
            dir,
            std::io::Error::other(format!("{} image names for {} labelled frames", image_names.len(), labels.len())),
        ));
    }
    let kitti_dir = dir.join("kitti");
    std::fs::create_dir_all(&kitti_dir).map_err(|e| ExportError::io(&kitti_dir, e))?;
    kitti::write_tracking(&dir.join("kitti_tracking.txt"), labels)?;
    for frame in labels {
        kitti::write_object(&dir.join("kitti").join(format!("{:06}.txt", frame.frame)), frame)?;
    }

    let mut coco_info = Map::new();
    coco_info.insert("description".into(), Value::String(format!("latentdrive sequence {}", info.name)));
    coco_info.insert("version".into(), Value::String(env!("CARGO_PKG_VERSION").into()));
    coco_info.insert("fps".into(), Value::from(info.fps));
    coco_info.insert("timeofday".into(), Value::String(info.time_of_day.bdd_name().into()));
    coco_info.insert("metadata".into(), info.metadata.clone());
    let mut coco = CocoBuilder::new(coco_info);
    let clip = BddClip { video_name: info.name.clone(), time_of_day: info.time_of_day };
    let mut bdd = BddBuilder::new();
    for (frame, name) in labels.iter().zip(image_names) {
        coco.add_image(name.clone(), frame)?;
        bdd.add_frame(&clip, name.clone(), frame)?;
    }
    coco.finish().write(&dir.join("coco.json"))?;
    bdd.finish().write(&dir.join("bdd100k.json"))?;

    let native = dir.join(NATIVE_LABELS_FILE);
    let json = serde_json::to_vec(labels).map_err(|e| e.at_path(&native))?;
    atomic::write_atomic(&native, &json)
}
