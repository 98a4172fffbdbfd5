//! COCO object-detection JSON (`instances_*.json` layout) for a set of images.
//!
//! Standard fields only, plus three per-annotation extras that COCO tools ignore:
//! `track_id`, `occluded` (KITTI level 0..=2) and `truncated` (fraction 0..=1).
//! There is no `segmentation`: these are box labels, and box evaluation
//! (pycocotools `iouType="bbox"`) does not read it.
//!
//! Ids are 1-based and dense, in insertion order. Annotation ids must not be 0:
//! pycocotools' `COCOeval` stores the matched ground-truth id per detection and reads
//! 0 as "unmatched".

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::world::labels::{FrameLabels, ObjectClass};

use super::atomic::write_atomic_with;
use super::error::{AtPath, ExportError};
use super::select::exported_objects;

/// A whole COCO detection file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CocoDataset {
    /// Free-form provenance (versions, seeds, scenario names); COCO's `info`.
    #[serde(default)]
    pub info: Map<String, Value>,
    pub images: Vec<CocoImage>,
    pub annotations: Vec<CocoAnnotation>,
    pub categories: Vec<CocoCategory>,
}

/// One image entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CocoImage {
    pub id: u64,
    pub file_name: String,
    pub width: u32,
    pub height: u32,
    /// Non-standard: `true` when the image was never labelled, so its lack of
    /// annotations means "unknown", not "no cars". Absent (false) otherwise.
    /// Standard COCO tools ignore the field and would read such an image as empty;
    /// drop unlabelled images before evaluating with them.
    #[serde(default, skip_serializing_if = "is_false")]
    pub unlabeled: bool,
}

/// One object box.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CocoAnnotation {
    pub id: u64,
    pub image_id: u64,
    pub category_id: u32,
    /// `[x, y, width, height]` in pixels, `(x, y)` the top-left corner.
    pub bbox: [f32; 4],
    /// `width * height` of `bbox`, in square pixels.
    pub area: f32,
    /// Always 0: every box is one object.
    pub iscrowd: u8,
    /// Non-standard: the object's track id within its clip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track_id: Option<u32>,
    /// Non-standard: KITTI occlusion level 0..=2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occluded: Option<u8>,
    /// Non-standard: fraction 0..=1 of the object outside the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated: Option<f32>,
}

/// One category entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CocoCategory {
    pub id: u32,
    pub name: String,
    pub supercategory: String,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Every class the world can render, so that files of different clips share one
/// category list even when a clip lacks some class.
const ALL_CLASSES: [ObjectClass; 1] = [ObjectClass::Car];

/// COCO's supercategory for a class.
fn supercategory(class: ObjectClass) -> &'static str {
    match class {
        ObjectClass::Car => "vehicle",
    }
}

impl CocoDataset {
    /// Writes the dataset as compact JSON to `path`, atomically.
    pub fn write(&self, path: &Path) -> Result<(), ExportError> {
        write_atomic_with(path, |w: &mut dyn Write| serde_json::to_writer(w, self))
    }

    /// Reads a COCO detection file (ours, or any with these fields).
    pub fn read(path: &Path) -> Result<Self, ExportError> {
        let file = std::fs::File::open(path).map_err(|e| ExportError::io(path, e))?;
        serde_json::from_reader(std::io::BufReader::new(file)).map_err(|e| e.at_path(path))
    }
}

/// Builds a [`CocoDataset`] image by image.
#[derive(Debug, Clone)]
pub struct CocoBuilder {
    dataset: CocoDataset,
    file_names: HashSet<String>,
}

impl CocoBuilder {
    /// An empty dataset with the given `info` and the category list of every class.
    pub fn new(info: Map<String, Value>) -> Self {
        let categories = ALL_CLASSES
            .iter()
            .map(|&class| CocoCategory {
                id: class.coco_id(),
                name: class.coco_name().to_string(),
                supercategory: supercategory(class).to_string(),
            })
            .collect();
        CocoBuilder {
            dataset: CocoDataset { info, images: Vec::new(), annotations: Vec::new(), categories },
            file_names: HashSet::new(),
        }
    }

    /// Adds a labelled image and one annotation per exported object (fully occluded
    /// objects are left out, see [`exported_objects`]). Returns the image id.
    ///
    /// File names must be unique within the dataset: prefix frame names with their
    /// clip (`clip_a/000000.png`) when merging clips.
    pub fn add_image(&mut self, file_name: impl Into<String>, labels: &FrameLabels) -> Result<u64, ExportError> {
        let objects = exported_objects(labels)?;
        let image_id = self.push_image(file_name.into(), labels.width, labels.height, false)?;
        for object in objects {
            let b = &object.box2d;
            let (w, h) = (b.width(), b.height());
            let id = self.dataset.annotations.len() as u64 + 1;
            self.dataset.annotations.push(CocoAnnotation {
                id,
                image_id,
                category_id: object.class.coco_id(),
                bbox: [b.x1, b.y1, w, h],
                area: w * h,
                iscrowd: 0,
                track_id: Some(object.track_id),
                occluded: Some(object.occlusion.kitti_level()),
                truncated: Some(object.truncation),
            });
        }
        Ok(image_id)
    }

    /// Adds an image that has no labels, marked `"unlabeled": true`. Returns its id.
    pub fn add_unlabeled_image(
        &mut self,
        file_name: impl Into<String>,
        width: u32,
        height: u32,
    ) -> Result<u64, ExportError> {
        self.push_image(file_name.into(), width, height, true)
    }

    /// The finished dataset.
    pub fn finish(self) -> CocoDataset {
        self.dataset
    }

    fn push_image(&mut self, file_name: String, width: u32, height: u32, unlabeled: bool) -> Result<u64, ExportError> {
        if !self.file_names.insert(file_name.clone()) {
            return Err(ExportError::DuplicateImage { file_name });
        }
        let id = self.dataset.images.len() as u64 + 1;
        self.dataset.images.push(CocoImage { id, file_name, width, height, unlabeled });
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::fixtures::{self, TestDir};

    fn info() -> Map<String, Value> {
        let mut info = Map::new();
        info.insert("latentdrive".into(), Value::from("0.1.0"));
        info.insert("seed".into(), Value::from(42u64));
        info
    }

    fn dataset() -> CocoDataset {
        let mut builder = CocoBuilder::new(info());
        assert_eq!(builder.add_image("clip/000000.png", &fixtures::frame(0)).unwrap(), 1);
        assert_eq!(builder.add_unlabeled_image("clip/000001.png", 640, 360).unwrap(), 2);
        assert_eq!(builder.add_image("clip/000002.png", &fixtures::frame(2)).unwrap(), 3);
        builder.finish()
    }

    #[test]
    fn bbox_is_xywh_in_pixels_with_area() {
        let json = serde_json::to_value(dataset()).unwrap();
        // Fixture track 3 in frame 0: Box2d { x1: 10, y1: 20, x2: 50, y2: 45 }.
        let first = &json["annotations"][0];
        assert_eq!(first["bbox"], serde_json::json!([10.0, 20.0, 40.0, 25.0]));
        assert_eq!(first["area"], 1000.0);
        assert_eq!(first["iscrowd"], 0);
        assert_eq!(first["id"], 1);
        assert_eq!(first["image_id"], 1);
        assert_eq!(first["category_id"], 1);
        assert_eq!(first["track_id"], 3);
        assert_eq!(first["occluded"], 0);
        let second = &json["annotations"][1];
        assert_eq!(second["occluded"], 1);
        assert_eq!(second["truncated"], 0.42f32 as f64);
        assert_eq!(json["categories"], serde_json::json!([{"id": 1, "name": "car", "supercategory": "vehicle"}]));
        assert_eq!(json["info"]["seed"], 42);
    }

    #[test]
    fn fully_occluded_objects_are_left_out() {
        let d = dataset();
        // Two labelled frames with three cars each, of which one is fully occluded.
        assert_eq!(d.annotations.len(), 4);
        assert!(d.annotations.iter().all(|a| a.track_id != Some(9)));
        let ids: Vec<u64> = d.annotations.iter().map(|a| a.id).collect();
        assert_eq!(ids, vec![1, 2, 3, 4]);
    }

    #[test]
    fn unlabeled_image_is_flagged_and_has_no_annotations() {
        let json = serde_json::to_value(dataset()).unwrap();
        assert_eq!(json["images"][1]["unlabeled"], true);
        assert_eq!(json["images"][1]["width"], 640);
        // Labelled images carry no flag at all.
        assert!(json["images"][0].get("unlabeled").is_none());
        assert!(json["annotations"].as_array().unwrap().iter().all(|a| a["image_id"] != 2));
    }

    #[test]
    fn round_trips_through_a_file() {
        let dir = TestDir::new("coco_rt");
        let path = dir.path().join("instances.json");
        let d = dataset();
        d.write(&path).unwrap();
        assert_eq!(CocoDataset::read(&path).unwrap(), d);
    }

    #[test]
    fn duplicate_file_names_are_rejected() {
        let mut builder = CocoBuilder::new(Map::new());
        builder.add_image("000000.png", &fixtures::frame(0)).unwrap();
        let err = builder.add_unlabeled_image("000000.png", 640, 360).unwrap_err();
        assert_eq!(err.to_string(), "duplicate image file name `000000.png` in one dataset");
    }

    #[test]
    fn write_into_missing_folder_names_the_path() {
        let dir = TestDir::new("coco_missing");
        let path = dir.path().join("missing").join("instances.json");
        match dataset().write(&path) {
            Err(ExportError::Io { path: p, .. }) => assert_eq!(p, path),
            other => panic!("expected Io error, got {other:?}"),
        }
    }

    #[test]
    fn malformed_file_is_a_json_error_naming_the_path() {
        let dir = TestDir::new("coco_bad");
        let path = dir.path().join("instances.json");
        std::fs::write(&path, r#"{"images": [}"#).unwrap();
        match CocoDataset::read(&path) {
            Err(ExportError::Json { path: p, .. }) => assert_eq!(p, path),
            other => panic!("expected Json error, got {other:?}"),
        }
    }
}
