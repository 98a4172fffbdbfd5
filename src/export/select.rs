//! Which objects of a frame every exporter writes, and the thresholds the formats
//! share, so KITTI, COCO and BDD100K files of one clip always agree.

use crate::world::labels::{FrameLabels, ObjectLabel, Occlusion};

use super::error::ExportError;

/// Truncation (fraction of the box outside the image) below which an object counts
/// as not truncated: KITTI tracking level 0 and BDD100K `truncated: false`. One
/// percent rather than zero so that a box touching the border only through
/// rasterisation rounding is not called truncated.
pub const TRUNCATION_EPS: f32 = 0.01;

/// The objects of `frame` that go into label files, in the frame's order.
///
/// Objects with [`Occlusion::FullyOccluded`] are left out of every format: no pixel
/// of them is visible, so there is nothing a detector could find, and a ground-truth
/// box there would only count as a miss against it. (KITTI itself has no level for
/// "not visible at all".) Trackers see such an object's track resume with the same
/// id once it reappears.
///
/// Fails if any written number is NaN or infinite: JSON would turn it into `null`
/// and KITTI readers reject it, so it is better caught at the source.
pub fn exported_objects(frame: &FrameLabels) -> Result<Vec<&ObjectLabel>, ExportError> {
    let mut out = Vec::with_capacity(frame.objects.len());
    for object in &frame.objects {
        if object.occlusion == Occlusion::FullyOccluded {
            continue;
        }
        check_finite(frame.frame, object)?;
        out.push(object);
    }
    Ok(out)
}

fn check_finite(frame: u32, o: &ObjectLabel) -> Result<(), ExportError> {
    let b = &o.box2d;
    let d = &o.box3d;
    let fields: [(&'static str, f32); 13] = [
        ("box2d.x1", b.x1),
        ("box2d.y1", b.y1),
        ("box2d.x2", b.x2),
        ("box2d.y2", b.y2),
        ("box3d.dimensions[0]", d.dimensions[0]),
        ("box3d.dimensions[1]", d.dimensions[1]),
        ("box3d.dimensions[2]", d.dimensions[2]),
        ("box3d.location[0]", d.location[0]),
        ("box3d.location[1]", d.location[1]),
        ("box3d.location[2]", d.location[2]),
        ("box3d.rotation_y", d.rotation_y),
        ("truncation", o.truncation),
        ("occluded_fraction", o.occluded_fraction),
    ];
    match fields.iter().find(|(_, v)| !v.is_finite()) {
        Some(&(field, _)) => Err(ExportError::NonFinite { frame, track_id: o.track_id, field }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::fixtures;

    #[test]
    fn drops_only_fully_occluded_objects() {
        let f = fixtures::frame(0);
        let ids: Vec<u32> = exported_objects(&f).unwrap().iter().map(|o| o.track_id).collect();
        assert_eq!(ids, vec![3, 5]);
    }

    #[test]
    fn nan_is_reported_with_frame_track_and_field() {
        let mut f = fixtures::frame(4);
        f.objects[1].box3d.location[2] = f32::NAN;
        let err = exported_objects(&f).unwrap_err();
        assert_eq!(err.to_string(), "frame 4, track 5: `box3d.location[2]` is not a finite number");
    }
}
