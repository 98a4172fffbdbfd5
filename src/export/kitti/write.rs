//! Writing KITTI tracking and object label files.

use std::fmt::{self, Write as _};
use std::path::Path;

use crate::world::labels::FrameLabels;

use super::{KittiGeometry, KittiObjectRow, KittiTrackingRow};
use crate::export::atomic::write_atomic;
use crate::export::error::ExportError;
use crate::export::select::exported_objects;

/// The tracking label text of one sequence: one line per exported object per frame
/// (see [`exported_objects`] for which objects), frames in the given order.
///
/// `frames` are the *labelled* frames of the sequence, with strictly increasing
/// indices. KITTI tracking has no way to mark a frame as unlabelled: a frame with no
/// line reads as "no objects here". Callers with unlabelled frames must therefore
/// keep them out of the sequence's images too (or end the sequence there), rather
/// than let an evaluator count every detection in them as a false positive.
pub fn tracking_text(frames: &[FrameLabels]) -> Result<String, ExportError> {
    let mut out = String::new();
    let mut previous: Option<u32> = None;
    for frame in frames {
        if let Some(previous) = previous.filter(|&p| frame.frame <= p) {
            return Err(ExportError::FramesOutOfOrder { previous, found: frame.frame });
        }
        previous = Some(frame.frame);
        for object in exported_objects(frame)? {
            let row = KittiTrackingRow::from_label(frame.frame, object);
            // Writing into a String cannot fail.
            let _ = writeln!(out, "{row}");
        }
    }
    Ok(out)
}

/// Writes [`tracking_text`] of `frames` to `path` atomically (KITTI names these
/// files by sequence: `label_02/0000.txt`).
pub fn write_tracking(path: &Path, frames: &[FrameLabels]) -> Result<(), ExportError> {
    write_atomic(path, tracking_text(frames)?.as_bytes())
}

/// The object label text of one frame: one line per exported object. A frame
/// without objects gives an empty text (an empty file, as in KITTI).
pub fn object_text(frame: &FrameLabels) -> Result<String, ExportError> {
    let mut out = String::new();
    for object in exported_objects(frame)? {
        let _ = writeln!(out, "{}", KittiObjectRow::from_label(object));
    }
    Ok(out)
}

/// Writes [`object_text`] of `frame` to `path` atomically (KITTI names these files
/// by frame: `label_2/000012.txt`).
pub fn write_object(path: &Path, frame: &FrameLabels) -> Result<(), ExportError> {
    write_atomic(path, object_text(frame)?.as_bytes())
}

/// A float with 2 decimals; never `-0.00`, which some readers parse oddly and which
/// makes otherwise equal files differ.
struct F2(f32);

impl fmt::Display for F2 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = format!("{:.2}", self.0);
        f.write_str(if text == "-0.00" { "0.00" } else { &text })
    }
}

impl fmt::Display for KittiGeometry {
    /// The 12 trailing columns `alpha x1 y1 x2 y2 h w l x y z rotation_y`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.box2d;
        let [h, w, l] = self.box3d.dimensions;
        let [x, y, z] = self.box3d.location;
        write!(
            f,
            "{} {} {} {} {} {} {} {} {} {} {} {}",
            F2(self.alpha),
            F2(b.x1),
            F2(b.y1),
            F2(b.x2),
            F2(b.y2),
            F2(h),
            F2(w),
            F2(l),
            F2(x),
            F2(y),
            F2(z),
            F2(self.box3d.rotation_y),
        )
    }
}

impl fmt::Display for KittiTrackingRow {
    /// One 17-column line, without the newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {} {} {}",
            self.frame, self.track_id, self.object_type, self.truncated, self.occluded, self.geometry
        )
    }
}

impl fmt::Display for KittiObjectRow {
    /// One 15-column line, without the newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {} {}", self.object_type, F2(self.truncated), self.occluded, self.geometry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::fixtures::{self, TestDir};

    #[test]
    fn two_decimals_and_no_negative_zero() {
        assert_eq!(F2(1.0).to_string(), "1.00");
        assert_eq!(F2(-1.234).to_string(), "-1.23");
        assert_eq!(F2(18.4).to_string(), "18.40");
        assert_eq!(F2(-0.004).to_string(), "0.00");
        assert_eq!(F2(-0.0).to_string(), "0.00");
    }

    #[test]
    fn tracking_lines_have_17_columns_and_known_values() {
        let text = tracking_text(&[fixtures::frame(0), fixtures::frame(1)]).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        // Two visible cars per frame; the fully occluded track 9 is left out.
        assert_eq!(lines.len(), 4);
        for line in &lines {
            assert_eq!(line.split(' ').count(), 17, "{line}");
        }
        // alpha = −π/2 − atan2(−3.257, 18.4) = −1.5708 + 0.1752 = −1.3956
        assert_eq!(lines[0], "0 3 Car 0 0 -1.40 10.00 20.00 50.00 45.00 1.52 1.73 4.21 -3.26 1.65 18.40 -1.57");
        // Truncation 0.42 → level 1; partly occluded → 1.
        assert!(lines[1].starts_with("0 5 Car 1 1 "), "{}", lines[1]);
        assert!(lines[2].starts_with("1 3 Car "));
        assert!(!text.contains(" 9 Car "));
    }

    #[test]
    fn object_lines_have_15_columns_and_fractional_truncation() {
        let text = object_text(&fixtures::frame(0)).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        for line in &lines {
            assert_eq!(line.split(' ').count(), 15, "{line}");
        }
        assert_eq!(lines[0], "Car 0.00 0 -1.40 10.00 20.00 50.00 45.00 1.52 1.73 4.21 -3.26 1.65 18.40 -1.57");
        assert!(lines[1].starts_with("Car 0.42 1 "), "{}", lines[1]);
    }

    #[test]
    fn frames_must_strictly_increase() {
        let err = tracking_text(&[fixtures::frame(2), fixtures::frame(2)]).unwrap_err();
        assert!(matches!(err, ExportError::FramesOutOfOrder { previous: 2, found: 2 }));
        // Gaps (unlabelled frames left out by the caller) are fine.
        assert!(tracking_text(&[fixtures::frame(0), fixtures::frame(5)]).is_ok());
    }

    #[test]
    fn empty_frame_gives_empty_object_file() {
        let dir = TestDir::new("kitti_empty");
        let mut frame = fixtures::frame(0);
        frame.objects.clear();
        let path = dir.path().join("000000.txt");
        write_object(&path, &frame).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"");
    }
}
