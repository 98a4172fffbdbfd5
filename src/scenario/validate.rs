//! Value checks that serde's types cannot express: ranges, box geometry, exclusivity.
//! Every check reports the field path; `load` adds the file and position.

use super::locate::FieldPath;
use super::types::*;
use crate::world::camera::HORIZON_Y;

/// Most boxes a scenario may hold. A tier's box encoder may take fewer; that limit
/// is checked against the weights' manifest before generation.
pub const MAX_BOXES: usize = 64;
/// Smallest box side in normalised units (about 1.3 px at 128×256).
pub const MIN_BOX_SIZE: f32 = 0.01;
/// Longest scenario name (it names the output folder).
const MAX_NAME_LEN: usize = 64;
/// Two road-placed cars in one lane closer than this would overlap (metres).
const MIN_ROAD_GAP_M: f32 = 5.0;

/// Returns every problem found as `(field path, message)`; empty when valid.
pub fn validate(s: &Scenario) -> Vec<(FieldPath, String)> {
    let mut v = Checks(Vec::new());
    let root = FieldPath::root();

    check_name(&mut v, &root.field("name"), &s.name);

    let cond = root.field("conditions");
    if s.conditions.crowdedness > MAX_CROWDEDNESS {
        v.err(
            cond.field("crowdedness"),
            format!("expected 0..={MAX_CROWDEDNESS} (0 empty, 3 dense), found {}", s.conditions.crowdedness),
        );
    }

    let boxes = root.field("boxes");
    if s.boxes.len() > MAX_BOXES {
        v.err(boxes.clone(), format!("at most {MAX_BOXES} boxes, found {}", s.boxes.len()));
    }
    for (i, b) in s.boxes.iter().enumerate() {
        check_box(&mut v, &boxes.index(i), b);
    }
    check_box_overlaps(&mut v, &boxes, &s.boxes);

    let r = root.field("rollout");
    v.range_u(r.field("futures"), s.rollout.futures as u64, 1, 64);
    v.finite_in(r.field("seconds"), s.rollout.seconds, Bound::Open(0.0), 600.0);
    v.range_u(r.field("context_frames"), s.rollout.context_frames as u64, 0, 2);

    let sm = root.field("sampling");
    v.range_u(sm.field("steps"), s.sampling.steps as u64, 1, 1000);
    v.finite_in(sm.field("eta"), s.sampling.eta, Bound::Closed(0.0), 1.0);
    v.non_negative(sm.field("label_guidance"), s.sampling.label_guidance);
    if let Some(w) = s.sampling.box_guidance {
        v.non_negative(sm.field("box_guidance"), w);
    }
    v.non_negative(sm.field("context_guidance"), s.sampling.context_guidance);
    v.finite_in(sm.field("interpolation_guide"), s.sampling.interpolation_guide, Bound::Closed(0.0), 1.0);
    v.finite_in(sm.field("prediction_guide"), s.sampling.prediction_guide, Bound::Closed(0.0), 1.0);
    let falloff = s.sampling.prediction_guide_falloff;
    v.finite_in(sm.field("prediction_guide_falloff"), falloff, Bound::Closed(0.0), MAX_PREDICTION_GUIDE_FALLOFF);
    v.finite_in(sm.field("prediction_noise"), s.sampling.prediction_noise, Bound::Closed(0.0), 1.0);
    v.finite_in(sm.field("interpolation_noise"), s.sampling.interpolation_noise, Bound::Closed(0.0), 1.0);

    if let Some(w) = &s.model.weights
        && w.as_os_str().is_empty()
    {
        v.err(root.field("model").field("weights"), "expected a folder path, found an empty string".into());
    }
    v.0
}

enum Bound {
    Open(f32),
    Closed(f32),
}

struct Checks(Vec<(FieldPath, String)>);

impl Checks {
    fn err(&mut self, path: FieldPath, msg: String) {
        self.0.push((path, msg));
    }

    fn range_u(&mut self, path: FieldPath, x: u64, lo: u64, hi: u64) {
        if x < lo || x > hi {
            self.err(path, format!("expected {lo}..={hi}, found {x}"));
        }
    }

    /// Checks `x` is finite, above `lo` (open or closed) and at most `hi`.
    fn finite_in(&mut self, path: FieldPath, x: f32, lo: Bound, hi: f32) -> bool {
        let (ok_lo, lo_text) = match lo {
            Bound::Open(l) => (x > l, format!("({l}")),
            Bound::Closed(l) => (x >= l, format!("[{l}")),
        };
        if !x.is_finite() {
            self.err(path, format!("expected a finite number in {lo_text}, {hi}], found {x}"));
            false
        } else if !ok_lo || x > hi {
            self.err(path, format!("expected a number in {lo_text}, {hi}], found {x}"));
            false
        } else {
            true
        }
    }

    fn non_negative(&mut self, path: FieldPath, x: f32) {
        if !x.is_finite() || x < 0.0 {
            self.err(path, format!("expected a finite number ≥ 0, found {x}"));
        }
    }
}

fn check_name(v: &mut Checks, path: &FieldPath, name: &str) {
    if name.is_empty() {
        v.err(path.clone(), "expected a non-empty name (it names the output folder)".into());
        return;
    }
    if name.chars().count() > MAX_NAME_LEN {
        v.err(path.clone(), format!("expected at most {MAX_NAME_LEN} characters, found {}", name.chars().count()));
    }
    if let Some(bad) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))) {
        v.err(
            path.clone(),
            format!("expected only letters, digits, `_`, `-` and `.` (it names the output folder), found {bad:?}"),
        );
    } else if name.starts_with('.') {
        v.err(path.clone(), "must not start with `.` (it names the output folder)".into());
    }
}

fn check_box(v: &mut Checks, path: &FieldPath, b: &BoxSpec) {
    match (&b.image, &b.road) {
        (Some(_), Some(_)) => {
            v.err(path.clone(), "has both `image` and `road`; expected exactly one placement".into());
        }
        (None, None) => {
            v.err(path.clone(), "has neither `image` nor `road`; expected exactly one placement".into());
        }
        (Some(img), None) => check_image_box(v, &path.field("image"), img),
        (None, Some(road)) => {
            let p = path.field("road");
            if !(-3..=3).contains(&road.lane) {
                v.err(p.field("lane"), format!("expected -3..=3 (0 ego lane, -1 left, +1 right), found {}", road.lane));
            }
            v.finite_in(p.field("ahead_m"), road.ahead_m, Bound::Open(0.0), 150.0);
        }
    }
}

fn check_image_box(v: &mut Checks, path: &FieldPath, b: &ImageBox) {
    let mut ok = true;
    for (name, x) in [("x1", b.x1), ("y1", b.y1), ("x2", b.x2), ("y2", b.y2)] {
        ok &= v.finite_in(path.field(name), x, Bound::Closed(0.0), 1.0);
    }
    if !ok {
        return;
    }
    if b.x1 >= b.x2 {
        v.err(path.field("x2"), format!("expected x2 > x1 = {}, found {}", b.x1, b.x2));
    } else if b.x2 - b.x1 < MIN_BOX_SIZE {
        v.err(path.field("x2"), format!("box is degenerate: width {} < {MIN_BOX_SIZE}", b.x2 - b.x1));
    }
    if b.y1 >= b.y2 {
        v.err(path.field("y2"), format!("expected y2 > y1 = {}, found {}", b.y1, b.y2));
    } else if b.y2 - b.y1 < MIN_BOX_SIZE {
        v.err(path.field("y2"), format!("box is degenerate: height {} < {MIN_BOX_SIZE}", b.y2 - b.y1));
    } else if b.y2 <= HORIZON_Y + MIN_BOX_SIZE {
        // The world places an image box by casting its bottom edge onto the road.
        v.err(
            path.field("y2"),
            format!(
                "the box's bottom edge must be below the horizon (y2 > {:.2}) so the car stands on the road, found {}",
                HORIZON_Y + MIN_BOX_SIZE,
                b.y2
            ),
        );
    }
}

/// Identical image boxes and road cars that would overlap are errors: the world
/// cannot place two cars in one spot.
fn check_box_overlaps(v: &mut Checks, path: &FieldPath, boxes: &[BoxSpec]) {
    for j in 0..boxes.len() {
        for i in 0..j {
            let (a, b) = (&boxes[i], &boxes[j]);
            if let (Some(ia), Some(ib)) = (&a.image, &b.image)
                && ia == ib
            {
                v.err(path.index(j), format!("duplicates boxes[{i}]"));
            }
            if let (Some(ra), Some(rb)) = (&a.road, &b.road)
                && ra.lane == rb.lane
                && (ra.ahead_m - rb.ahead_m).abs() < MIN_ROAD_GAP_M
            {
                v.err(
                    path.index(j).field("road"),
                    format!(
                        "overlaps boxes[{i}] (same lane {}, {:.1} m apart); expected at least {MIN_ROAD_GAP_M} m",
                        ra.lane,
                        (ra.ahead_m - rb.ahead_m).abs()
                    ),
                );
            }
        }
    }
}
