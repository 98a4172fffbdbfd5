//! BDD100K label JSON, the per-image list of the Scalabel format that BDD100K's
//! toolkit reads:
//!
//! ```text
//! [{ "name", "videoName", "frameIndex",
//!    "attributes": { "weather", "timeofday", "scene" },
//!    "labels": [{ "id", "category", "attributes": { "occluded", "truncated" },
//!                 "box2d": { "x1", "y1", "x2", "y2" } }] }]
//! ```
//!
//! Decisions where the format leaves room:
//! - `box2d` uses Scalabel's *inclusive* corners: `x2`, `y2` are the last pixel inside
//!   the box, i.e. our continuous right/bottom edge minus one. Scalabel's converters
//!   add the 1 back (`width = x2 - x1 + 1`), so a BDD→COCO conversion by the official
//!   tools gives the same boxes as our own COCO export.
//! - `occluded` is true when at least 10 % of the object is hidden, i.e. its KITTI
//!   occlusion level is 1 or more; `truncated` is true when at least
//!   [`TRUNCATION_EPS`] (1 %) of its box lies outside the image (KITTI tracking level ≥ 1).
//! - Unlabelled frames keep their entry but have **no `labels` key** and carry the
//!   frame attribute `"unlabeled": true`. Scalabel declares `labels` optional and its
//!   tools skip frames without it; a labelled frame with no cars has `"labels": []`,
//!   so the two never look alike.
//! - `weather` is always `clear` and `scene` always `highway`: the renderer draws
//!   nothing else.

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::scenario::TimeOfDay;
use crate::world::labels::{FrameLabels, ObjectLabel, Occlusion};

use super::atomic::write_atomic_with;
use super::error::{AtPath, ExportError};
use super::select::{TRUNCATION_EPS, exported_objects};

/// BDD100K `weather` of every rendered frame.
const WEATHER: &str = "clear";
/// BDD100K `scene` of every rendered frame.
const SCENE: &str = "highway";

/// A whole BDD100K label file: a JSON list of frames.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BddDataset {
    pub frames: Vec<BddFrame>,
}

/// One image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BddFrame {
    /// Image file name.
    pub name: String,
    /// The clip the frame belongs to.
    pub video_name: String,
    /// Frame index within the clip, from 0.
    pub frame_index: u32,
    pub attributes: BddFrameAttributes,
    /// `None` (key absent) for an unlabelled frame; `Some(vec![])` for a labelled
    /// frame without objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<BddLabel>>,
}

/// Frame-level attributes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BddFrameAttributes {
    pub weather: String,
    /// `daytime` or `night` ([`TimeOfDay::bdd_name`]).
    pub timeofday: String,
    pub scene: String,
    /// Non-standard: `true` on frames that were never labelled; absent otherwise.
    #[serde(default, skip_serializing_if = "is_false")]
    pub unlabeled: bool,
}

/// One object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BddLabel {
    /// The track id as a string (BDD100K ids are strings), stable within a clip.
    pub id: String,
    pub category: String,
    pub attributes: BddLabelAttributes,
    pub box2d: BddBox2d,
}

/// Object-level attributes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BddLabelAttributes {
    pub occluded: bool,
    pub truncated: bool,
}

/// Box corners in pixels, Scalabel convention: `(x2, y2)` is the last pixel inside.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BddBox2d {
    pub x1: f32,
    pub y1: f32,
    pub x2: f32,
    pub y2: f32,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl BddLabel {
    /// The BDD100K label of `object`.
    pub fn from_label(object: &ObjectLabel) -> Self {
        let b = &object.box2d;
        BddLabel {
            id: object.track_id.to_string(),
            category: object.class.coco_name().to_string(),
            attributes: BddLabelAttributes {
                occluded: object.occlusion != Occlusion::FullyVisible,
                truncated: object.truncation >= TRUNCATION_EPS,
            },
            // Inclusive last pixel; `max` keeps sub-pixel boxes from inverting.
            box2d: BddBox2d { x1: b.x1, y1: b.y1, x2: (b.x2 - 1.0).max(b.x1), y2: (b.y2 - 1.0).max(b.y1) },
        }
    }
}

impl BddDataset {
    /// Writes the dataset as compact JSON to `path`, atomically.
    pub fn write(&self, path: &Path) -> Result<(), ExportError> {
        write_atomic_with(path, |w: &mut dyn Write| serde_json::to_writer(w, self))
    }

    /// Reads a label file written by [`BddDataset::write`].
    pub fn read(path: &Path) -> Result<Self, ExportError> {
        let file = std::fs::File::open(path).map_err(|e| ExportError::io(path, e))?;
        serde_json::from_reader(std::io::BufReader::new(file)).map_err(|e| e.at_path(path))
    }
}

/// The clip a frame comes from: its BDD `videoName` and time of day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BddClip {
    pub video_name: String,
    pub time_of_day: TimeOfDay,
}

impl BddClip {
    fn attributes(&self, unlabeled: bool) -> BddFrameAttributes {
        BddFrameAttributes {
            weather: WEATHER.to_string(),
            timeofday: self.time_of_day.bdd_name().to_string(),
            scene: SCENE.to_string(),
            unlabeled,
        }
    }
}

/// Builds a [`BddDataset`] frame by frame, from one or more clips.
#[derive(Debug, Clone, Default)]
pub struct BddBuilder {
    dataset: BddDataset,
    names: HashSet<String>,
}

impl BddBuilder {
    /// An empty dataset.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a labelled frame of `clip`; its `frameIndex` is `labels.frame`. Fully
    /// occluded objects are left out (see [`exported_objects`]). Names must be
    /// unique within the dataset.
    pub fn add_frame(
        &mut self,
        clip: &BddClip,
        name: impl Into<String>,
        labels: &FrameLabels,
    ) -> Result<(), ExportError> {
        let objects = exported_objects(labels)?.into_iter().map(BddLabel::from_label).collect();
        self.push(BddFrame {
            name: name.into(),
            video_name: clip.video_name.clone(),
            frame_index: labels.frame,
            attributes: clip.attributes(false),
            labels: Some(objects),
        })
    }

    /// Adds frame `frame_index` of `clip` as unlabelled: no `labels` key and the
    /// attribute `"unlabeled": true`.
    pub fn add_unlabeled_frame(
        &mut self,
        clip: &BddClip,
        name: impl Into<String>,
        frame_index: u32,
    ) -> Result<(), ExportError> {
        self.push(BddFrame {
            name: name.into(),
            video_name: clip.video_name.clone(),
            frame_index,
            attributes: clip.attributes(true),
            labels: None,
        })
    }

    /// The finished dataset.
    pub fn finish(self) -> BddDataset {
        self.dataset
    }

    fn push(&mut self, frame: BddFrame) -> Result<(), ExportError> {
        if !self.names.insert(frame.name.clone()) {
            return Err(ExportError::DuplicateImage { file_name: frame.name });
        }
        self.dataset.frames.push(frame);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::fixtures::{self, TestDir};
    use serde_json::json;

    fn dataset(time_of_day: TimeOfDay) -> BddDataset {
        let clip = BddClip { video_name: "clip-a".into(), time_of_day };
        let mut b = BddBuilder::new();
        b.add_frame(&clip, "clip-a/000000.png", &fixtures::frame(0)).unwrap();
        b.add_unlabeled_frame(&clip, "clip-a/000001.png", 1).unwrap();
        let mut empty = fixtures::frame(2);
        empty.objects.clear();
        b.add_frame(&clip, "clip-a/000002.png", &empty).unwrap();
        b.finish()
    }

    #[test]
    fn frame_and_label_fields_match_the_bdd_layout() {
        let json = serde_json::to_value(dataset(TimeOfDay::Night)).unwrap();
        let first = &json[0];
        assert_eq!(first["name"], "clip-a/000000.png");
        assert_eq!(first["videoName"], "clip-a");
        assert_eq!(first["frameIndex"], 0);
        assert_eq!(first["attributes"], json!({"weather": "clear", "timeofday": "night", "scene": "highway"}));
        // Fixture track 3: Box2d { x1: 10, y1: 20, x2: 50, y2: 45 } → inclusive corners.
        assert_eq!(
            first["labels"][0],
            json!({
                "id": "3",
                "category": "car",
                "attributes": {"occluded": false, "truncated": false},
                "box2d": {"x1": 10.0, "y1": 20.0, "x2": 49.0, "y2": 44.0}
            })
        );
        // Track 5 is partly occluded and 42 % truncated.
        assert_eq!(first["labels"][1]["attributes"], json!({"occluded": true, "truncated": true}));
    }

    #[test]
    fn timeofday_follows_the_clip() {
        let json = serde_json::to_value(dataset(TimeOfDay::Day)).unwrap();
        assert_eq!(json[0]["attributes"]["timeofday"], "daytime");
    }

    #[test]
    fn fully_occluded_objects_are_left_out() {
        let d = dataset(TimeOfDay::Day);
        let ids: Vec<&str> = d.frames[0].labels.as_ref().unwrap().iter().map(|l| l.id.as_str()).collect();
        assert_eq!(ids, vec!["3", "5"]);
    }

    #[test]
    fn unlabeled_frame_differs_from_empty_frame() {
        let json = serde_json::to_value(dataset(TimeOfDay::Day)).unwrap();
        let unlabeled = &json[1];
        assert!(unlabeled.get("labels").is_none());
        assert_eq!(unlabeled["attributes"]["unlabeled"], true);
        assert_eq!(unlabeled["frameIndex"], 1);
        let empty = &json[2];
        assert_eq!(empty["labels"], json!([]));
        assert!(empty["attributes"].get("unlabeled").is_none());
    }

    #[test]
    fn round_trips_through_a_file() {
        let dir = TestDir::new("bdd_rt");
        let path = dir.path().join("labels.json");
        let d = dataset(TimeOfDay::Night);
        d.write(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with('['), "a BDD file is a JSON list");
        assert_eq!(BddDataset::read(&path).unwrap(), d);
    }

    #[test]
    fn duplicate_names_are_rejected() {
        let clip = BddClip { video_name: "v".into(), time_of_day: TimeOfDay::Day };
        let mut b = BddBuilder::new();
        b.add_unlabeled_frame(&clip, "000000.png", 0).unwrap();
        assert!(matches!(
            b.add_frame(&clip, "000000.png", &fixtures::frame(0)),
            Err(ExportError::DuplicateImage { .. })
        ));
    }

    #[test]
    fn write_into_missing_folder_names_the_path() {
        let dir = TestDir::new("bdd_missing");
        let path = dir.path().join("missing").join("labels.json");
        match dataset(TimeOfDay::Day).write(&path) {
            Err(ExportError::Io { path: p, .. }) => assert_eq!(p, path),
            other => panic!("expected Io error, got {other:?}"),
        }
    }
}
