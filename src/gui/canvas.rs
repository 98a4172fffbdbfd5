//! The two editing views: the camera view (the world's reference render as a guide,
//! requested cars as boxes with corner handles) and the top-down BEV schematic (lanes,
//! cars at their distance). Mouse input becomes [`Pointer`] gestures on the
//! [`Composer`](crate::app::Composer), the same calls the driver script makes.

use bevy_egui::egui::{self, Align2, Color32, FontId, Pos2, Rect, Sense, Stroke, StrokeKind, Vec2, pos2};

use super::textures::Textures;
use crate::app::composer::{BEV_LANE_WIDTH_M, BEV_MAX_AHEAD_M, Corner, bev_position};
use crate::app::{Pointer, Studio, View};
use crate::scenario::ImageBox;

const SELECTED: Color32 = Color32::from_rgb(255, 200, 40);
const REQUESTED: Color32 = Color32::from_rgb(60, 220, 120);
const TRAFFIC: Color32 = Color32::from_rgb(170, 170, 170);

/// Turns the response of a canvas into pointer gestures in view coordinates.
fn gestures(ui: &egui::Ui, response: &egui::Response, to_view: impl Fn(Pos2) -> [f32; 2]) -> Vec<Pointer> {
    let mut out = Vec::new();
    if response.drag_started_by(egui::PointerButton::Primary) {
        // egui starts a drag after a few pixels of travel; the gesture starts at the press.
        let origin = ui.input(|i| i.pointer.press_origin()).or(response.interact_pointer_pos());
        if let Some(p) = origin {
            out.push(Pointer::Press(to_view(p)));
        }
    }
    if response.dragged_by(egui::PointerButton::Primary)
        && let Some(p) = response.interact_pointer_pos()
    {
        out.push(Pointer::Drag(to_view(p)));
    }
    if response.drag_stopped_by(egui::PointerButton::Primary) {
        if let Some(p) = response.interact_pointer_pos().or(ui.input(|i| i.pointer.latest_pos())) {
            out.push(Pointer::Release(to_view(p)));
        }
    } else if response.clicked_by(egui::PointerButton::Primary)
        && let Some(p) = response.interact_pointer_pos()
    {
        out.extend([Pointer::Press(to_view(p)), Pointer::Release(to_view(p))]);
    }
    out
}

fn image_rect(canvas: Rect, b: &ImageBox) -> Rect {
    Rect::from_min_max(
        pos2(canvas.left() + b.x1 * canvas.width(), canvas.top() + b.y1 * canvas.height()),
        pos2(canvas.left() + b.x2 * canvas.width(), canvas.top() + b.y2 * canvas.height()),
    )
}

/// The camera view, `width` wide (2:1).
pub fn camera_view(ui: &mut egui::Ui, studio: &mut Studio, textures: &mut Textures, width: f32) {
    let (response, painter) = ui.allocate_painter(Vec2::new(width, width / 2.0), Sense::click_and_drag());
    let rect = response.rect;
    match &studio.layout.reference {
        Some(img) => {
            let id = textures.get(ui.ctx(), "reference", studio.layout_version, img);
            painter.image(id, rect, Rect::from_min_max(pos2(0.0, 0.0), pos2(1.0, 1.0)), Color32::WHITE);
        }
        None => {
            painter.rect_filled(rect, 0.0, Color32::from_gray(30));
            let msg = studio.layout.error.as_deref().unwrap_or("no preview");
            painter.text(rect.center(), Align2::CENTER_CENTER, msg, FontId::proportional(14.0), Color32::LIGHT_RED);
        }
    }
    for b in &studio.layout.traffic {
        painter.rect_stroke(image_rect(rect, b), 0.0, Stroke::new(1.0, TRAFFIC), StrokeKind::Inside);
    }
    let selected = studio.composer.selected;
    for (i, b) in studio.layout.boxes.iter().enumerate() {
        let Some(b) = b else { continue };
        let r = image_rect(rect, b);
        let (color, width) = if selected == Some(i) { (SELECTED, 2.5) } else { (REQUESTED, 1.5) };
        painter.rect_stroke(r, 0.0, Stroke::new(width, color), StrokeKind::Inside);
        let placed = if studio.composer.scenario.boxes[i].road.is_some() { "road" } else { "image" };
        painter.text(r.left_top(), Align2::LEFT_BOTTOM, format!("{i} {placed}"), FontId::monospace(11.0), color);
        if selected == Some(i) {
            for c in Corner::ALL {
                let [x, y] = c.point(b);
                let p = pos2(rect.left() + x * rect.width(), rect.top() + y * rect.height());
                painter.rect_filled(Rect::from_center_size(p, Vec2::splat(7.0)), 1.0, SELECTED);
            }
        }
    }
    if let Some(b) = studio.composer.rubber_band() {
        painter.rect_stroke(image_rect(rect, &b), 0.0, Stroke::new(1.5, Color32::WHITE), StrokeKind::Inside);
    }
    let to_view = |p: Pos2| [(p.x - rect.left()) / rect.width(), (p.y - rect.top()) / rect.height()];
    for g in gestures(ui, &response, to_view) {
        studio.composer.pointer(View::Camera, g, &studio.layout);
        studio.refresh_layout();
    }
    response.on_hover_text(
        "Drag on the road to add a car; drag a box to move it, its corners to resize it.\n\
         Moving a road-placed car here turns it into an image box. Del deletes the selected car.",
    );
}

/// BEV coordinates `(lateral m, ahead m)` of a point on the BEV canvas.
struct BevMap {
    rect: Rect,
    half_width_m: f32,
}

impl BevMap {
    fn to_screen(&self, q: [f32; 2]) -> Pos2 {
        let x = self.rect.center().x + q[0] / self.half_width_m * 0.5 * self.rect.width();
        let y = self.rect.bottom() - q[1] / BEV_MAX_AHEAD_M * self.rect.height();
        pos2(x, y)
    }

    fn to_view(&self, p: Pos2) -> [f32; 2] {
        let x = (p.x - self.rect.center().x) / (0.5 * self.rect.width()) * self.half_width_m;
        let y = (self.rect.bottom() - p.y) / self.rect.height() * BEV_MAX_AHEAD_M;
        [x, y]
    }
}

/// The top-down view, `size` in points.
pub fn bev_view(ui: &mut egui::Ui, studio: &mut Studio, size: Vec2) {
    let (response, painter) = ui.allocate_painter(size, Sense::click_and_drag());
    let map = BevMap { rect: response.rect, half_width_m: 3.5 * BEV_LANE_WIDTH_M };
    painter.rect_filled(map.rect, 0.0, Color32::from_gray(40));
    // Lanes −3..=3 around the ego lane, dashed boundaries every 10 m.
    for edge in -7..=7 {
        let x = (edge as f32 + 0.5) * BEV_LANE_WIDTH_M;
        if x.abs() > map.half_width_m {
            continue;
        }
        let solid = edge == -4 || edge == 3;
        let color = if solid { Color32::from_gray(200) } else { Color32::from_gray(120) };
        let mut ahead = 0.0;
        while ahead < BEV_MAX_AHEAD_M {
            let len = if solid { 10.0 } else { 4.0 };
            painter.line_segment([map.to_screen([x, ahead]), map.to_screen([x, ahead + len])], Stroke::new(1.0, color));
            ahead += 10.0;
        }
    }
    for m in (0..=150).step_by(25) {
        let p = map.to_screen([-map.half_width_m, m as f32]);
        painter.text(p, Align2::LEFT_BOTTOM, format!("{m} m"), FontId::monospace(9.0), Color32::from_gray(150));
    }
    // The ego car at the bottom centre.
    let ego = Rect::from_center_size(map.to_screen([0.0, 2.0]), Vec2::new(8.0, 12.0));
    painter.rect_filled(ego, 2.0, Color32::from_rgb(80, 140, 255));
    let selected = studio.composer.selected;
    for (i, spec) in studio.composer.scenario.boxes.iter().enumerate() {
        let Some(q) = bev_position(spec) else { continue };
        if q[1] > BEV_MAX_AHEAD_M {
            continue;
        }
        let car = Rect::from_center_size(map.to_screen(q), Vec2::new(7.0, 11.0));
        let color = if selected == Some(i) { SELECTED } else { REQUESTED };
        if spec.road.is_some() {
            painter.rect_filled(car, 2.0, color);
        } else {
            // Image boxes: where the world stands them (hollow: placed by the camera view).
            painter.rect_stroke(car, 2.0, Stroke::new(1.5, color), StrokeKind::Inside);
        }
        painter.text(car.right_center(), Align2::LEFT_CENTER, format!(" {i}"), FontId::monospace(10.0), color);
    }
    for g in gestures(ui, &response, |p| map.to_view(p)) {
        studio.composer.pointer(View::Bev, g, &studio.layout);
        studio.refresh_layout();
    }
    response.on_hover_text(
        "Top-down schematic (straight road, lanes −3…3).\n\
         Click a lane to add a car there; drag a car to change its lane and distance.",
    );
}
