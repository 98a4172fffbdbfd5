//! The fixed held-out scene set of `eval`: procedural worlds from the evaluation seed
//! range, each turned into a scenario (its visible cars as requested image boxes, its
//! conditions) for the generator, and rendered by the world itself as the reference.

use image::RgbImage;

use crate::data::{EVAL_SEED_BASE, random_conditions};
use crate::scenario::{BoxSpec, Conditions, ImageBox, ModelSpec, Rollout, Sampling, Scenario};
use crate::world::{Box2d, ObjectClass, Renderer, World, WorldError, mix};

use super::tasks::MIN_CAR_PX;

/// First world seed of the scene set: inside the evaluation range, and past the
/// `FrameSource::held_out_seeds` the evaluators' own accuracy is measured on, so the two
/// sets never share a world.
pub const SCENE_SEED_BASE: u64 = EVAL_SEED_BASE + (1 << 20);

/// Seconds the world runs before frame 0, so traffic has left its start layout (as the
/// training clips' warm-up, `ClipSpec::keyframes`).
pub const WARMUP_S: f32 = 2.0;

/// One held-out scene.
#[derive(Debug, Clone)]
pub struct EvalScene {
    pub seed: u64,
    pub conditions: Conditions,
    /// What the generator is asked for: these conditions and boxes, seed `seed`.
    pub scenario: Scenario,
    /// The requested boxes in pixels of the key-frame size that the detector can find
    /// (at least [`MIN_CAR_PX`] wide and high): the ground truth of layout fidelity.
    pub requested: Vec<Box2d>,
    /// The world at frame 0 (after the warm-up); futures are rendered from clones of it.
    world: World,
}

impl EvalScene {
    /// Scene `index` of the set at key-frame size `(h, w)`, requesting at most `slots`
    /// boxes (the image model's box slots), largest first.
    pub fn new(index: usize, (h, w): (usize, usize), slots: usize) -> Self {
        let seed = SCENE_SEED_BASE + index as u64;
        let conditions = random_conditions(seed);
        let mut world = World::new(seed, conditions, &[]).expect("box-free worlds always build");
        world.advance_to(WARMUP_S);
        let (_, labels) = Renderer::new(w as u32, h as u32).render(&world, 0);
        let mut cars: Vec<Box2d> = labels.objects.iter().filter(|o| o.visible_pixels > 0).map(|o| o.box2d).collect();
        cars.sort_by(|a, b| b.area().total_cmp(&a.area()));
        cars.truncate(slots);
        let (fw, fh) = (w as f32, h as f32);
        let mut boxes: Vec<BoxSpec> = cars
            .iter()
            .filter(|b| b.width() > 0.0 && b.height() > 0.0)
            .map(|b| BoxSpec {
                class: ObjectClass::Car,
                image: Some(ImageBox { x1: b.x1 / fw, y1: b.y1 / fh, x2: b.x2 / fw, y2: b.y2 / fh }),
                road: None,
            })
            .collect();
        // The generator places image boxes in a world of its own (`requested_labels`);
        // a box it cannot place (its bottom above that world's horizon) is dropped, so
        // every requested box is one the generator was actually given.
        loop {
            match World::new(seed, conditions, &boxes) {
                Ok(_) => break,
                Err(WorldError::AboveHorizon { index }) => {
                    boxes.remove(index);
                }
            }
        }
        let requested = boxes
            .iter()
            .filter_map(|b| b.image)
            .map(|b| Box2d { x1: b.x1 * fw, y1: b.y1 * fh, x2: b.x2 * fw, y2: b.y2 * fh })
            .filter(|b| b.width() >= MIN_CAR_PX && b.height() >= MIN_CAR_PX)
            .collect();
        let scenario = Scenario {
            name: format!("eval_{index:04}"),
            seed,
            conditions,
            boxes,
            rollout: Rollout::default(),
            sampling: Sampling::default(),
            model: ModelSpec::default(),
        };
        EvalScene { seed, conditions, scenario, requested, world }
    }

    /// The world's own `frames` frames of future `future` at `fps` and size `(h, w)`,
    /// from frame 0: the scene's state with its own behaviour seed per future.
    pub fn reference(&self, future: usize, frames: usize, fps: f32, (h, w): (usize, usize)) -> Vec<RgbImage> {
        let mut world = self.world.clone();
        world.reseed_behaviour(mix(self.seed ^ mix(0xF07E + future as u64)));
        let mut renderer = Renderer::new(w as u32, h as u32);
        (0..frames)
            .map(|i| {
                world.advance_to(WARMUP_S + i as f32 / fps);
                renderer.render(&world, i as u32).0
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenes_are_held_out_deterministic_and_request_what_the_world_shows() {
        let a = EvalScene::new(3, (64, 128), 8);
        let b = EvalScene::new(3, (64, 128), 8);
        assert!(a.seed >= EVAL_SEED_BASE);
        assert_eq!((a.scenario.seed, &a.requested), (b.scenario.seed, &b.requested));
        assert!(a.scenario.boxes.len() <= 8 && a.requested.len() <= a.scenario.boxes.len());
        let frames = a.reference(0, 3, 2.5, (64, 128));
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[0].dimensions(), (128, 64));
        // Frame 0 of every future is the same scene; later frames come from the world moving on.
        assert_eq!(frames[0], a.reference(1, 1, 2.5, (64, 128))[0]);
        assert_ne!(frames[0], frames[2]);
    }
}
