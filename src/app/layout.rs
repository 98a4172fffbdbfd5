//! Where the procedural world puts a scenario's cars: the reference render shown as a
//! guide behind the camera view, and each requested car's rectangle in it.

use image::RgbImage;

use crate::scenario::{ImageBox, Scenario};
use crate::world::{Camera, Renderer, World};

/// The world's view of one scenario at the reference camera size.
#[derive(Debug, Clone)]
pub struct SceneLayout {
    /// The world's render of frame 0 (256×128), or `None` when the scenario cannot be
    /// built (the reason is in `error`).
    pub reference: Option<RgbImage>,
    /// Each requested car's rectangle in normalised image coordinates, by scenario
    /// index: image boxes as requested, road cars as the world draws them (`None` when
    /// out of view or hidden).
    pub boxes: Vec<Option<ImageBox>>,
    /// Other traffic the world adds for the crowdedness, as rendered.
    pub traffic: Vec<ImageBox>,
    pub error: Option<String>,
}

impl SceneLayout {
    /// Builds the world of `scenario` and renders its first frame at the reference size.
    pub fn compute(scenario: &Scenario) -> Self {
        let world = match World::from_scenario(scenario) {
            Ok(w) => w,
            Err(e) => {
                return SceneLayout {
                    reference: None,
                    boxes: vec![None; scenario.boxes.len()],
                    traffic: Vec::new(),
                    error: Some(e.to_string()),
                };
            }
        };
        let cam = Camera::reference();
        let (image, labels) = Renderer::new(cam.width, cam.height).render(&world, 0);
        let (w, h) = (cam.width as f32, cam.height as f32);
        let norm =
            |b: &crate::world::labels::Box2d| ImageBox { x1: b.x1 / w, y1: b.y1 / h, x2: b.x2 / w, y2: b.y2 / h };
        // The world gives every placed car a track, in order; a box without a placement
        // (invalid, never validated here) gets none.
        let mut tracks = world.scenario_tracks.iter();
        let boxes = scenario
            .boxes
            .iter()
            .map(|spec| {
                if spec.image.is_none() && spec.road.is_none() {
                    return None;
                }
                let track = tracks.next()?;
                match spec.image {
                    Some(b) => Some(b),
                    None => labels.objects.iter().find(|o| o.track_id == *track).map(|o| norm(&o.box2d)),
                }
            })
            .collect();
        let traffic = labels
            .objects
            .iter()
            .filter(|o| !world.scenario_tracks.contains(&o.track_id))
            .map(|o| norm(&o.box2d))
            .collect();
        SceneLayout { reference: Some(image), boxes, traffic, error: None }
    }

    /// Car `index`'s rectangle in the camera view.
    pub fn camera_box(&self, index: usize) -> Option<ImageBox> {
        self.boxes.get(index).copied().flatten()
    }

    /// The topmost (last drawn) requested car under `p`.
    pub fn hit_camera(&self, p: [f32; 2]) -> Option<usize> {
        (0..self.boxes.len())
            .rev()
            .find(|&i| self.camera_box(i).is_some_and(|b| b.x1 <= p[0] && p[0] <= b.x2 && b.y1 <= p[1] && p[1] <= b.y2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::Composer;
    use crate::scenario::{BoxSpec, ObjectClass, RoadPlacement};

    #[test]
    fn road_cars_get_the_rectangle_the_world_draws_and_nearer_cars_are_larger() {
        let mut s = Composer::default_scenario();
        s.conditions.crowdedness = 0;
        s.boxes = [15.0, 40.0]
            .map(|ahead_m| BoxSpec {
                class: ObjectClass::Car,
                image: None,
                road: Some(RoadPlacement { lane: 0, ahead_m }),
            })
            .to_vec();
        let layout = SceneLayout::compute(&s);
        assert!(layout.error.is_none());
        let (near, far) = (layout.camera_box(0).unwrap(), layout.camera_box(1).unwrap());
        assert!(near.x2 - near.x1 > 1.5 * (far.x2 - far.x1), "{near:?} vs {far:?}");
        assert!(near.y2 > far.y2);
        let centre = [0.5 * (near.x1 + near.x2), 0.5 * (near.y1 + near.y2)];
        assert_eq!(layout.hit_camera(centre), Some(0));
        assert_eq!(layout.reference.as_ref().map(|i| i.dimensions()), Some((256, 128)));
    }
}
