//! KITTI label text files: the **tracking** format (one file per sequence, 17
//! columns) and the **object** format (one file per frame, 15 columns).
//!
//! ```text
//! tracking: frame track_id type truncated occluded alpha x1 y1 x2 y2 h w l x y z rotation_y
//! object:               type truncated occluded alpha x1 y1 x2 y2 h w l x y z rotation_y
//! ```
//!
//! Columns are separated by one space, one object per line. Every float is written
//! with 2 decimals (pixels, metres and radians alike, as in KITTI's own files), so a
//! parsed value is within 0.005 of the label. Boxes use KITTI's continuous pixel
//! coordinates, the same as [`Box2d`]; `x y z` is the bottom-face centre in camera
//! coordinates and `h w l` the dimensions, exactly [`Box3d`].
//!
//! The two formats differ in `truncated`: the tracking benchmark stores an integer
//! level (see [`truncation_level`]), the object benchmark the fraction itself.

mod parse;
mod write;

pub use parse::{parse_object, parse_tracking, read_object, read_tracking};
pub use write::{object_text, tracking_text, write_object, write_tracking};

use crate::world::labels::{Box2d, Box3d, ObjectLabel};

use super::select::TRUNCATION_EPS;

/// Column names of the tracking format, in order (17).
pub const TRACKING_COLUMNS: [&str; 17] = [
    "frame",
    "track_id",
    "type",
    "truncated",
    "occluded",
    "alpha",
    "x1",
    "y1",
    "x2",
    "y2",
    "h",
    "w",
    "l",
    "x",
    "y",
    "z",
    "rotation_y",
];

/// Column names of the object format, in order (15): the tracking columns without
/// `frame` and `track_id`.
pub const OBJECT_COLUMNS: [&str; 15] =
    ["type", "truncated", "occluded", "alpha", "x1", "y1", "x2", "y2", "h", "w", "l", "x", "y", "z", "rotation_y"];

/// KITTI tracking's integer truncation level from the truncated fraction (0..=1):
/// `0` below [`TRUNCATION_EPS`] (1 %), `1` up to and including 0.5, `2` above.
///
/// KITTI's tracking readme names the levels only ("0 = not, 1 = partially, 2 =
/// heavily truncated"); 50 % as the partial/heavy line mirrors its occlusion levels.
pub fn truncation_level(truncation: f32) -> i8 {
    if truncation < TRUNCATION_EPS {
        0
    } else if truncation <= 0.5 {
        1
    } else {
        2
    }
}

/// The columns both formats end with: observation angle, 2D box and 3D box.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KittiGeometry {
    /// Observation angle, radians in `[-π, π]`.
    pub alpha: f32,
    pub box2d: Box2d,
    pub box3d: Box3d,
}

impl KittiGeometry {
    /// The geometry of a label; `alpha` comes from [`Box3d::alpha`].
    pub fn from_label(object: &ObjectLabel) -> Self {
        KittiGeometry { alpha: object.box3d.alpha(), box2d: object.box2d, box3d: object.box3d }
    }
}

/// One line of a KITTI tracking label file.
#[derive(Debug, Clone, PartialEq)]
pub struct KittiTrackingRow {
    pub frame: u32,
    /// Track id; KITTI's own files use −1 for `DontCare` regions.
    pub track_id: i32,
    /// `Car`, `Pedestrian`, `DontCare`, … (KITTI's `type`).
    pub object_type: String,
    /// Truncation level 0..=2 ([`truncation_level`]); −1 for `DontCare`.
    pub truncated: i8,
    /// Occlusion level 0..=3 (3 = unknown); −1 for `DontCare`.
    pub occluded: i8,
    pub geometry: KittiGeometry,
}

impl KittiTrackingRow {
    /// The row for `object` in frame `frame`.
    pub fn from_label(frame: u32, object: &ObjectLabel) -> Self {
        KittiTrackingRow {
            frame,
            // Track ids are small counters within a clip; saturate rather than wrap
            // into KITTI's reserved −1 if one ever exceeds i32.
            track_id: i32::try_from(object.track_id).unwrap_or(i32::MAX),
            object_type: object.class.kitti_name().to_string(),
            truncated: truncation_level(object.truncation),
            occluded: object.occlusion.kitti_level() as i8,
            geometry: KittiGeometry::from_label(object),
        }
    }
}

/// One line of a KITTI object label file.
#[derive(Debug, Clone, PartialEq)]
pub struct KittiObjectRow {
    /// `Car`, `Pedestrian`, `DontCare`, … (KITTI's `type`).
    pub object_type: String,
    /// Fraction 0..=1 of the object outside the image; −1 for `DontCare`.
    pub truncated: f32,
    /// Occlusion level 0..=3 (3 = unknown); −1 for `DontCare`.
    pub occluded: i8,
    pub geometry: KittiGeometry,
}

impl KittiObjectRow {
    /// The row for `object`.
    pub fn from_label(object: &ObjectLabel) -> Self {
        KittiObjectRow {
            object_type: object.class.kitti_name().to_string(),
            truncated: object.truncation,
            occluded: object.occlusion.kitti_level() as i8,
            geometry: KittiGeometry::from_label(object),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_levels_at_their_edges() {
        assert_eq!(truncation_level(0.0), 0);
        assert_eq!(truncation_level(0.0099), 0);
        assert_eq!(truncation_level(0.01), 1);
        assert_eq!(truncation_level(0.5), 1);
        assert_eq!(truncation_level(0.5001), 2);
        assert_eq!(truncation_level(1.0), 2);
    }

    #[test]
    fn object_columns_are_tracking_columns_without_frame_and_id() {
        assert_eq!(&TRACKING_COLUMNS[2..], &OBJECT_COLUMNS[..]);
    }
}
