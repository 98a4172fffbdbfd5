//! Test helpers shared by the exporters' tests: a self-removing scratch folder and
//! hand-built label frames with known numbers.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::world::labels::{Box2d, Box3d, FrameLabels, ObjectClass, ObjectLabel, Occlusion};

static NEXT_DIR: AtomicU64 = AtomicU64::new(0);

/// A fresh folder under the system temp dir, removed with its contents on drop.
pub struct TestDir(PathBuf);

impl TestDir {
    pub fn new(tag: &str) -> Self {
        let n = NEXT_DIR.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("latentdrive-export-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create test dir");
        TestDir(path)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An object with the given id, box and occlusion; the 3D box sits ahead-left.
pub fn object(track_id: u32, box2d: Box2d, occlusion: Occlusion) -> ObjectLabel {
    let occluded_fraction = match occlusion {
        Occlusion::FullyVisible => 0.0,
        Occlusion::PartlyOccluded => 0.3,
        Occlusion::LargelyOccluded => 0.7,
        Occlusion::FullyOccluded => 1.0,
    };
    ObjectLabel {
        track_id,
        class: ObjectClass::Car,
        box2d,
        box3d: Box3d {
            dimensions: [1.52, 1.73, 4.21],
            location: [-3.257, 1.65, 18.4],
            rotation_y: -std::f32::consts::FRAC_PI_2,
        },
        truncation: 0.0,
        occluded_fraction,
        occlusion,
        visible_pixels: if occlusion == Occlusion::FullyOccluded { 0 } else { 900 },
    }
}

/// Frame `frame` (at 10 fps, 640x360) with three cars: track 3 fully visible at a
/// known box, track 5 partly occluded and truncated at the right border, track 9
/// fully occluded (no visible pixel).
pub fn frame(frame: u32) -> FrameLabels {
    let dx = frame as f32 * 2.0;
    let mut truncated =
        object(5, Box2d { x1: 600.25 - dx, y1: 150.5, x2: 640.0, y2: 201.75 }, Occlusion::PartlyOccluded);
    truncated.truncation = 0.42;
    truncated.box3d = Box3d { dimensions: [1.48, 1.6, 3.9], location: [6.1, 1.7, 12.25], rotation_y: 1.6 };
    FrameLabels {
        frame,
        time_s: frame as f32 * 0.1,
        width: 640,
        height: 360,
        objects: vec![
            object(3, Box2d { x1: 10.0 + dx, y1: 20.0, x2: 50.0 + dx, y2: 45.0 }, Occlusion::FullyVisible),
            truncated,
            object(9, Box2d { x1: 300.0, y1: 170.0, x2: 320.0, y2: 182.0 }, Occlusion::FullyOccluded),
        ],
    }
}
