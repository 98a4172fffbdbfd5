//! Per-frame ground truth produced by the renderer: exact 2D/3D boxes, track ids,
//! KITTI-style occlusion and truncation.
//!
//! Camera coordinates follow KITTI: `x` right, `y` down, `z` forward, metres; the
//! origin is the camera centre. Pixel coordinates have their origin at the top-left
//! corner of the top-left pixel, so a pixel `(u, v)` covers `[u, u+1) × [v, v+1)`.

use serde::{Deserialize, Serialize};

/// Object classes the world renders. Only cars for now; the enum keeps label
/// writers honest about the class string they emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ObjectClass {
    Car,
}

impl ObjectClass {
    /// KITTI `type` column.
    pub fn kitti_name(self) -> &'static str {
        match self {
            ObjectClass::Car => "Car",
        }
    }
    /// COCO / BDD100K category name.
    pub fn coco_name(self) -> &'static str {
        match self {
            ObjectClass::Car => "car",
        }
    }
    /// COCO category id (1-based, as COCO requires).
    pub fn coco_id(self) -> u32 {
        match self {
            ObjectClass::Car => 1,
        }
    }
}

/// Axis-aligned 2D box in pixels, `x1 < x2`, `y1 < y2`, already clipped to the image.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Box2d {
    pub x1: f32,
    pub y1: f32,
    pub x2: f32,
    pub y2: f32,
}

impl Box2d {
    pub fn width(&self) -> f32 {
        self.x2 - self.x1
    }
    pub fn height(&self) -> f32 {
        self.y2 - self.y1
    }
    pub fn area(&self) -> f32 {
        self.width().max(0.0) * self.height().max(0.0)
    }
    /// Intersection over union; 0 for disjoint or degenerate boxes.
    pub fn iou(&self, other: &Box2d) -> f32 {
        let ix = (self.x2.min(other.x2) - self.x1.max(other.x1)).max(0.0);
        let iy = (self.y2.min(other.y2) - self.y1.max(other.y1)).max(0.0);
        let inter = ix * iy;
        let union = self.area() + other.area() - inter;
        if union > 0.0 { inter / union } else { 0.0 }
    }
}

/// 3D box in camera coordinates, KITTI convention: `location` is the centre of the
/// box's bottom face; `rotation_y` is the yaw around the camera's y axis in
/// `[-π, π]` (0 = facing the camera's +x; a car driving away along +z has −π/2).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Box3d {
    /// Height, width, length in metres (KITTI order).
    pub dimensions: [f32; 3],
    pub location: [f32; 3],
    pub rotation_y: f32,
}

impl Box3d {
    /// KITTI's values for an object without a 3D box (its `DontCare` rows; objects imported
    /// from 2D-only labels such as BDD100K's): dimensions −1, location −1000, `rotation_y` −10.
    pub const UNKNOWN: Box3d = Box3d { dimensions: [-1.0; 3], location: [-1000.0; 3], rotation_y: -10.0 };

    /// KITTI observation angle `alpha = rotation_y − atan2(x, z)`, wrapped to `[-π, π]`;
    /// KITTI's −10 for [`Box3d::UNKNOWN`].
    pub fn alpha(&self) -> f32 {
        if *self == Self::UNKNOWN {
            return -10.0;
        }
        wrap_angle(self.rotation_y - self.location[0].atan2(self.location[2]))
    }
}

/// Wraps an angle to `[-π, π]`.
pub fn wrap_angle(a: f32) -> f32 {
    let two_pi = std::f32::consts::TAU;
    let mut a = (a + std::f32::consts::PI).rem_euclid(two_pi) - std::f32::consts::PI;
    if a < -std::f32::consts::PI {
        a += two_pi;
    }
    a
}

/// KITTI occlusion levels. KITTI has no level for "not visible at all"; we keep
/// it apart so that callers can drop such objects, and map it to KITTI's 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Occlusion {
    /// Less than 10% of the object's own silhouette is hidden.
    FullyVisible,
    /// 10% up to 50% hidden.
    PartlyOccluded,
    /// More than 50% hidden, but some pixels visible.
    LargelyOccluded,
    /// No pixel of the object is visible.
    FullyOccluded,
}

impl Occlusion {
    /// Level from the hidden fraction of the object's silhouette (0..=1) and
    /// whether any pixel is visible.
    pub fn from_fraction(hidden: f32, any_visible: bool) -> Self {
        if !any_visible {
            Occlusion::FullyOccluded
        } else if hidden < 0.1 {
            Occlusion::FullyVisible
        } else if hidden <= 0.5 {
            Occlusion::PartlyOccluded
        } else {
            Occlusion::LargelyOccluded
        }
    }
    /// KITTI `occluded` column: 0 fully visible, 1 partly, 2 largely (fully hidden → 2).
    pub fn kitti_level(self) -> u8 {
        match self {
            Occlusion::FullyVisible => 0,
            Occlusion::PartlyOccluded => 1,
            Occlusion::LargelyOccluded | Occlusion::FullyOccluded => 2,
        }
    }
}

/// One labelled object in one frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectLabel {
    /// Stable across the frames of one clip; never reused within a clip.
    pub track_id: u32,
    pub class: ObjectClass,
    /// Tight box of the object's rendered silhouette, clipped to the image.
    pub box2d: Box2d,
    pub box3d: Box3d,
    /// Fraction (0..=1) of the unclipped 2D box that lies outside the image.
    pub truncation: f32,
    /// Fraction (0..=1) of the object's own in-image silhouette hidden by nearer geometry.
    pub occluded_fraction: f32,
    pub occlusion: Occlusion,
    /// Number of pixels where this object is the nearest surface.
    pub visible_pixels: u32,
}

/// All labels of one rendered frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameLabels {
    /// Frame index within its clip, from 0.
    pub frame: u32,
    /// Time of the frame in seconds from the clip start.
    pub time_s: f32,
    pub width: u32,
    pub height: u32,
    pub objects: Vec<ObjectLabel>,
}
