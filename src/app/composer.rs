//! Scene editing as plain data: the scenario being composed, the selected car, the
//! pointer gestures of the camera view and the top-down (BEV) view, and undo/redo.
//!
//! The GUI maps mouse positions to view coordinates and calls [`Composer::pointer`];
//! tests and the GUI's driver script call the same function, so every edit a user can
//! make with the mouse is testable without a window.

use std::path::PathBuf;

use crate::scenario::{BoxSpec, ImageBox, MIN_BOX_SIZE, ObjectClass, RoadPlacement, Scenario, validate};
use crate::world::camera::{CAMERA_HEIGHT_M, Camera, HORIZON_Y};

use super::layout::SceneLayout;

/// Pointer gestures over a view, in that view's coordinates: normalised image
/// coordinates (0..1, origin top-left) for the camera view, metres `(lateral, ahead)`
/// for the BEV view.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pointer {
    Press([f32; 2]),
    Drag([f32; 2]),
    Release([f32; 2]),
}

/// The two views a car can be edited in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum View {
    Camera,
    Bev,
}

/// Corner handles of the selected box in the camera view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Corner {
    TopLeft,
    TopRight,
    BottomLeft,
    BottomRight,
}

impl Corner {
    pub const ALL: [Corner; 4] = [Corner::TopLeft, Corner::TopRight, Corner::BottomLeft, Corner::BottomRight];

    /// The corner's point on `b`.
    pub fn point(self, b: &ImageBox) -> [f32; 2] {
        match self {
            Corner::TopLeft => [b.x1, b.y1],
            Corner::TopRight => [b.x2, b.y1],
            Corner::BottomLeft => [b.x1, b.y2],
            Corner::BottomRight => [b.x2, b.y2],
        }
    }
}

/// Half size of a corner handle's hit area, normalised image units.
pub const HANDLE_RADIUS: f32 = 0.02;
/// Lane width of the BEV schematic, metres (the world's roads vary around it).
pub const BEV_LANE_WIDTH_M: f32 = 3.5;
/// Distance range of the BEV view, metres ahead of the camera.
pub const BEV_MAX_AHEAD_M: f32 = 150.0;
const BEV_MIN_AHEAD_M: f32 = 3.0;
/// Size of a car seen from behind, for snapping boxes to the road's perspective (metres).
const CAR_WIDTH_M: f32 = 1.8;
const CAR_HEIGHT_M: f32 = 1.5;
/// Undo steps kept.
const HISTORY: usize = 200;

/// A gesture in progress.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Gesture {
    /// Dragging out a new box from `start`.
    Create {
        start: [f32; 2],
        now: [f32; 2],
    },
    /// Moving box `index` (camera view) by the pointer's travel from `grab`.
    Move {
        index: usize,
        grab: [f32; 2],
        original: ImageBox,
    },
    Resize {
        index: usize,
        corner: Corner,
        original: ImageBox,
    },
    /// Dragging car `index` in the BEV view.
    Place {
        index: usize,
    },
}

/// The scenario under edit with its selection, gesture and history.
#[derive(Debug, Clone)]
pub struct Composer {
    pub scenario: Scenario,
    pub selected: Option<usize>,
    /// Snap camera-view boxes to the size of a car at the depth of their bottom edge.
    pub snap: bool,
    /// The file the scenario was opened from or saved to.
    pub path: Option<PathBuf>,
    /// Last committed state: the baseline of the next undo step.
    committed: Scenario,
    /// Scenario as saved (or opened) last, to tell whether there are unsaved edits.
    saved: Scenario,
    undo: Vec<Scenario>,
    redo: Vec<Scenario>,
    gesture: Option<Gesture>,
    /// The last edit that was refused, for the status line.
    pub message: Option<String>,
}

impl Composer {
    pub fn new(scenario: Scenario, path: Option<PathBuf>) -> Self {
        Composer {
            committed: scenario.clone(),
            saved: scenario.clone(),
            scenario,
            selected: None,
            snap: false,
            path,
            undo: Vec::new(),
            redo: Vec::new(),
            gesture: None,
            message: None,
        }
    }

    /// A new scene: day, light traffic, one car ahead in the ego lane.
    pub fn default_scenario() -> Scenario {
        Scenario {
            name: "untitled".into(),
            seed: 1,
            conditions: Default::default(),
            boxes: vec![BoxSpec {
                class: ObjectClass::Car,
                image: None,
                road: Some(RoadPlacement { lane: 0, ahead_m: 20.0 }),
            }],
            rollout: crate::scenario::Rollout { futures: 2, seconds: 4.0, context_frames: 2 },
            sampling: crate::scenario::Sampling { steps: 20, ..Default::default() },
            model: Default::default(),
        }
    }

    /// Replaces the whole scenario (open a file): history starts afresh.
    pub fn open(&mut self, scenario: Scenario, path: Option<PathBuf>) {
        *self = Composer { snap: self.snap, ..Composer::new(scenario, path) };
    }

    /// Records that the current scenario was written to `path`.
    pub fn mark_saved(&mut self, path: PathBuf) {
        self.settle();
        self.saved = self.scenario.clone();
        self.path = Some(path);
    }

    /// True when the scenario differs from the file it came from.
    pub fn unsaved(&self) -> bool {
        self.scenario != self.saved
    }

    pub fn can_undo(&self) -> bool {
        !self.undo.is_empty()
    }

    pub fn can_redo(&self) -> bool {
        !self.redo.is_empty()
    }

    /// Commits pending edits (side-panel widgets change `scenario` directly) as one undo
    /// step. The GUI calls it whenever no pointer button is held, so a slider drag
    /// becomes one step. An edit that makes the scenario invalid is reverted with a
    /// message; a scenario that was invalid when opened stays editable.
    pub fn settle(&mut self) {
        if self.gesture.is_some() || self.scenario == self.committed {
            return;
        }
        let problems = validate(&self.scenario);
        if !problems.is_empty() && validate(&self.committed).is_empty() {
            let (path, msg) = &problems[0];
            self.message = Some(format!("{path}: {msg}"));
            self.scenario = self.committed.clone();
            self.clamp_selection();
            return;
        }
        let before = std::mem::replace(&mut self.committed, self.scenario.clone());
        self.undo.push(before);
        if self.undo.len() > HISTORY {
            self.undo.remove(0);
        }
        self.redo.clear();
    }

    pub fn undo(&mut self) {
        self.settle();
        if let Some(prev) = self.undo.pop() {
            self.redo.push(std::mem::replace(&mut self.scenario, prev));
            self.committed = self.scenario.clone();
            self.clamp_selection();
        }
    }

    pub fn redo(&mut self) {
        self.settle();
        if let Some(next) = self.redo.pop() {
            self.undo.push(std::mem::replace(&mut self.scenario, next));
            self.committed = self.scenario.clone();
            self.clamp_selection();
        }
    }

    /// Deletes the selected car.
    pub fn delete_selected(&mut self) {
        if let Some(i) = self.selected.take()
            && i < self.scenario.boxes.len()
        {
            self.scenario.boxes.remove(i);
            self.settle();
        }
    }

    fn clamp_selection(&mut self) {
        if self.selected.is_some_and(|i| i >= self.scenario.boxes.len()) {
            self.selected = None;
        }
    }

    /// The box being dragged out, for drawing (camera view).
    pub fn rubber_band(&self) -> Option<ImageBox> {
        match self.gesture {
            Some(Gesture::Create { start, now }) => Some(rect(start, now)),
            _ => None,
        }
    }

    /// Whether a gesture is in progress.
    pub fn dragging(&self) -> bool {
        self.gesture.is_some()
    }

    /// Handles a pointer gesture in `view`. `layout` holds where the world put each car
    /// in the camera view (road-placed cars have no rectangle of their own).
    pub fn pointer(&mut self, view: View, event: Pointer, layout: &SceneLayout) {
        match view {
            View::Camera => self.camera_pointer(event, layout),
            View::Bev => self.bev_pointer(event),
        }
    }

    fn camera_pointer(&mut self, event: Pointer, layout: &SceneLayout) {
        match event {
            Pointer::Press(p) => {
                self.message = None;
                let p = clamp01(p);
                // A corner of the selected box, then the topmost box under the pointer.
                let corner = self.selected.and_then(|i| {
                    let b = layout.camera_box(i)?;
                    Corner::ALL.into_iter().find(|c| near(c.point(&b), p)).map(|c| (i, c, b))
                });
                self.gesture = Some(if let Some((index, corner, original)) = corner {
                    Gesture::Resize { index, corner, original }
                } else if let Some(index) = layout.hit_camera(p) {
                    self.selected = Some(index);
                    let original = layout.camera_box(index).expect("hit boxes have a rectangle");
                    Gesture::Move { index, grab: p, original }
                } else {
                    self.selected = None;
                    Gesture::Create { start: p, now: p }
                });
            }
            Pointer::Drag(p) => {
                let p = clamp01(p);
                match self.gesture {
                    Some(Gesture::Create { start, .. }) => self.gesture = Some(Gesture::Create { start, now: p }),
                    Some(Gesture::Move { index, grab, original }) => {
                        let (dx, dy) = (p[0] - grab[0], p[1] - grab[1]);
                        // Keep the whole box inside the image.
                        let dx = dx.clamp(-original.x1, 1.0 - original.x2);
                        let dy = dy.clamp(-original.y1, 1.0 - original.y2);
                        let moved = ImageBox {
                            x1: original.x1 + dx,
                            y1: original.y1 + dy,
                            x2: original.x2 + dx,
                            y2: original.y2 + dy,
                        };
                        self.set_image_box(index, moved);
                    }
                    Some(Gesture::Resize { index, corner, original }) => {
                        let fixed = match corner {
                            Corner::TopLeft => Corner::BottomRight,
                            Corner::TopRight => Corner::BottomLeft,
                            Corner::BottomLeft => Corner::TopRight,
                            Corner::BottomRight => Corner::TopLeft,
                        }
                        .point(&original);
                        self.set_image_box(index, rect(fixed, p));
                    }
                    _ => {}
                }
            }
            Pointer::Release(p) => {
                self.camera_pointer(Pointer::Drag(p), layout);
                if let Some(Gesture::Create { start, now }) = self.gesture.take() {
                    let b = rect(start, now);
                    if b.x2 - b.x1 >= 2.0 * MIN_BOX_SIZE && b.y2 - b.y1 >= 2.0 * MIN_BOX_SIZE {
                        let b = if self.snap { snap_to_road(b) } else { b };
                        self.scenario.boxes.push(BoxSpec { class: ObjectClass::Car, image: Some(b), road: None });
                        self.selected = Some(self.scenario.boxes.len() - 1);
                    }
                }
                self.gesture = None;
                self.settle();
                self.clamp_selection();
            }
        }
    }

    /// Moving or resizing a car in the camera view makes it an image-placed box.
    fn set_image_box(&mut self, index: usize, b: ImageBox) {
        let b = if self.snap { snap_to_road(b) } else { b };
        if let Some(spec) = self.scenario.boxes.get_mut(index) {
            spec.image = Some(b);
            spec.road = None;
        }
    }

    fn bev_pointer(&mut self, event: Pointer) {
        match event {
            Pointer::Press(p) => {
                self.message = None;
                let hit = (0..self.scenario.boxes.len()).rev().find(|&i| {
                    bev_position(&self.scenario.boxes[i])
                        .is_some_and(|q| (q[0] - p[0]).abs() < 1.2 && (q[1] - p[1]).abs() < 3.0)
                });
                let index = match hit {
                    Some(i) => i,
                    None => {
                        self.scenario.boxes.push(BoxSpec {
                            class: ObjectClass::Car,
                            image: None,
                            road: Some(road_at(p)),
                        });
                        self.scenario.boxes.len() - 1
                    }
                };
                self.selected = Some(index);
                self.gesture = Some(Gesture::Place { index });
            }
            Pointer::Drag(p) => {
                if let Some(Gesture::Place { index }) = self.gesture
                    && let Some(spec) = self.scenario.boxes.get_mut(index)
                {
                    spec.road = Some(road_at(p));
                    spec.image = None;
                }
            }
            Pointer::Release(p) => {
                self.bev_pointer(Pointer::Drag(p));
                self.gesture = None;
                self.settle();
                self.clamp_selection();
            }
        }
    }
}

fn clamp01(p: [f32; 2]) -> [f32; 2] {
    [p[0].clamp(0.0, 1.0), p[1].clamp(0.0, 1.0)]
}

fn near(a: [f32; 2], b: [f32; 2]) -> bool {
    // Image coordinates are 2:1, so the x tolerance is halved to keep handles square.
    (a[0] - b[0]).abs() <= 0.5 * HANDLE_RADIUS * 2.0 && (a[1] - b[1]).abs() <= HANDLE_RADIUS * 2.0
}

/// The rectangle spanned by two points.
fn rect(a: [f32; 2], b: [f32; 2]) -> ImageBox {
    ImageBox { x1: a[0].min(b[0]), y1: a[1].min(b[1]), x2: a[0].max(b[0]), y2: a[1].max(b[1]) }
}

/// Keeps the bottom centre of `b` and gives it the size of a car seen from behind at
/// the depth where its bottom edge meets the road (the reference camera's geometry).
pub fn snap_to_road(b: ImageBox) -> ImageBox {
    let cam = Camera::reference();
    let (w, h) = (cam.width as f32, cam.height as f32);
    let bottom = b.y2.max(HORIZON_Y + 2.0 * MIN_BOX_SIZE);
    let Some(z) = cam.ground_z(bottom * h) else { return b };
    let (bw, bh) = (cam.f * CAR_WIDTH_M / z / w, cam.f * CAR_HEIGHT_M / z / h);
    let cx = 0.5 * (b.x1 + b.x2);
    ImageBox {
        x1: (cx - 0.5 * bw).max(0.0),
        y1: (bottom - bh).max(0.0),
        x2: (cx + 0.5 * bw).min(1.0),
        y2: bottom.min(1.0),
    }
}

/// The road placement under a BEV point `(lateral m, ahead m)`: the nearest lane.
pub fn road_at(p: [f32; 2]) -> RoadPlacement {
    let lane = (p[0] / BEV_LANE_WIDTH_M).round().clamp(-3.0, 3.0) as i8;
    let ahead_m = p[1].clamp(BEV_MIN_AHEAD_M, BEV_MAX_AHEAD_M);
    // Half-metre steps keep files readable.
    RoadPlacement { lane, ahead_m: (ahead_m * 2.0).round() / 2.0 }
}

/// Where a car sits in the BEV schematic, `(lateral m, ahead m)`: road cars at their
/// lane centre, image boxes where their bottom edge meets the road (as the world
/// places them, on a straight road).
pub fn bev_position(b: &BoxSpec) -> Option<[f32; 2]> {
    if let Some(r) = b.road {
        return Some([r.lane as f32 * BEV_LANE_WIDTH_M, r.ahead_m]);
    }
    let img = b.image?;
    let cam = Camera::reference();
    let (w, h) = (cam.width as f32, cam.height as f32);
    let z = cam.ground_z(img.y2 * h)?;
    let x = (0.5 * (img.x1 + img.x2) * w - cam.cx) * z / cam.f;
    Some([x, z])
}

/// Camera height, re-exported for the BEV drawing's horizon maths.
pub const EYE_HEIGHT_M: f32 = CAMERA_HEIGHT_M;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::TimeOfDay;

    fn empty() -> Composer {
        let mut s = Composer::default_scenario();
        s.boxes.clear();
        Composer::new(s, None)
    }

    fn drag(c: &mut Composer, view: View, from: [f32; 2], to: [f32; 2]) {
        let layout = SceneLayout::compute(&c.scenario);
        c.pointer(view, Pointer::Press(from), &layout);
        c.pointer(view, Pointer::Drag([(from[0] + to[0]) / 2.0, (from[1] + to[1]) / 2.0]), &layout);
        c.pointer(view, Pointer::Release(to), &layout);
    }

    #[test]
    fn dragging_on_empty_image_adds_a_box_and_undo_redo_restore_it() {
        let mut c = empty();
        drag(&mut c, View::Camera, [0.6, 0.7], [0.4, 0.55]);
        assert_eq!(c.scenario.boxes.len(), 1);
        let b = c.scenario.boxes[0].image.expect("an image box");
        assert_eq!((b.x1, b.y1, b.x2, b.y2), (0.4, 0.55, 0.6, 0.7));
        assert_eq!(c.selected, Some(0));
        assert!(c.unsaved());
        c.undo();
        assert!(c.scenario.boxes.is_empty());
        assert_eq!(c.selected, None);
        c.redo();
        assert_eq!(c.scenario.boxes.len(), 1);
    }

    #[test]
    fn a_click_without_travel_adds_nothing() {
        let mut c = empty();
        drag(&mut c, View::Camera, [0.5, 0.7], [0.5, 0.7]);
        assert!(c.scenario.boxes.is_empty());
        assert!(!c.can_undo());
    }

    #[test]
    fn moving_and_resizing_select_and_edit_the_box_under_the_pointer() {
        let mut c = empty();
        drag(&mut c, View::Camera, [0.4, 0.6], [0.5, 0.7]);
        // Move by (+0.1, +0.05) grabbing the middle.
        drag(&mut c, View::Camera, [0.45, 0.65], [0.55, 0.7]);
        let b = c.scenario.boxes[0].image.unwrap();
        assert!((b.x1 - 0.5).abs() < 1e-6 && (b.y2 - 0.75).abs() < 1e-6, "{b:?}");
        // Resize by the bottom-right corner.
        drag(&mut c, View::Camera, [b.x2, b.y2], [0.7, 0.9]);
        let b = c.scenario.boxes[0].image.unwrap();
        assert!((b.x2 - 0.7).abs() < 1e-6 && (b.y2 - 0.9).abs() < 1e-6 && (b.x1 - 0.5).abs() < 1e-6, "{b:?}");
        assert_eq!(c.scenario.boxes.len(), 1);
        // Three gestures, three undo steps.
        c.undo();
        c.undo();
        c.undo();
        assert!(c.scenario.boxes.is_empty());
    }

    #[test]
    fn a_box_above_the_horizon_is_refused_with_a_message() {
        let mut c = empty();
        drag(&mut c, View::Camera, [0.4, 0.1], [0.5, 0.3]);
        assert!(c.scenario.boxes.is_empty());
        assert!(c.message.as_deref().unwrap_or("").contains("horizon"), "{:?}", c.message);
    }

    #[test]
    fn bev_clicks_place_road_cars_and_camera_moves_turn_them_into_image_boxes() {
        let mut c = empty();
        drag(&mut c, View::Bev, [3.4, 30.0], [3.6, 40.2]);
        assert_eq!(c.scenario.boxes[0].road, Some(RoadPlacement { lane: 1, ahead_m: 40.0 }));
        let layout = SceneLayout::compute(&c.scenario);
        let b = layout.camera_box(0).expect("a road car 40 m ahead is in view");
        let mid = [0.5 * (b.x1 + b.x2), 0.5 * (b.y1 + b.y2)];
        drag(&mut c, View::Camera, mid, [mid[0] - 0.05, mid[1]]);
        let spec = &c.scenario.boxes[0];
        assert!(spec.road.is_none() && spec.image.is_some());
        // And back: its BEV position is where the world would stand it.
        let q = bev_position(spec).unwrap();
        assert!(q[1] > 20.0 && q[1] < 60.0, "{q:?}");
    }

    #[test]
    fn delete_and_panel_edits_are_undoable_steps() {
        let mut c = Composer::new(Composer::default_scenario(), None);
        c.selected = Some(0);
        c.delete_selected();
        assert!(c.scenario.boxes.is_empty());
        c.scenario.conditions.time_of_day = TimeOfDay::Night;
        c.settle();
        c.undo();
        assert_eq!(c.scenario.conditions.time_of_day, TimeOfDay::Day);
        c.undo();
        assert_eq!(c.scenario.boxes.len(), 1);
    }

    #[test]
    fn snapping_gives_a_car_sized_box_on_the_road() {
        let b = snap_to_road(ImageBox { x1: 0.4, y1: 0.5, x2: 0.6, y2: 0.8 });
        let cam = Camera::reference();
        let z = cam.ground_z(0.8 * cam.height as f32).unwrap();
        assert!((b.y2 - 0.8).abs() < 1e-6);
        let width_px = (b.x2 - b.x1) * cam.width as f32;
        assert!((width_px - cam.f * 1.8 / z).abs() < 1e-3, "{width_px}");
    }
}
