//! The procedural driving world: training data, ground truth and test fixture.
//!
//! A [`World`] is built from a [`Scenario`]: the layout (road, scenery, lighting,
//! initial traffic) is drawn from the scenario's seed, the scenario's boxes become
//! its first cars, and behaviour (brake, accelerate, change lanes) is drawn from a
//! separate behaviour seed, so that one start state has many futures
//! ([`World::reseed_behaviour`]). Time advances in fixed ticks of [`TICK_S`], so
//! frames rendered at 2.5, 10 or 40 Hz show the same states at shared times.

mod agents;
mod annotate;
pub mod camera;
mod car;
mod color;
mod ground;
pub mod labels;
mod raster;
mod render;
mod road;
mod scenery;
mod solid;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub use agents::{Agent, Behaviour, Body, BodyKind, DENSITY_PER_100M, Motion, Traffic};
pub use camera::Camera;
pub use labels::{Box2d, Box3d, FrameLabels, ObjectClass, ObjectLabel, Occlusion};
pub use render::{Lighting, Renderer};
pub use road::{Road, RoadFrame};
pub use scenery::Landscape;

use crate::scenario::{BoxSpec, Conditions, ImageBox, Scenario};
use scenery::HashRng;
pub use scenery::mix;
use solid::Pose;

/// Simulation tick: 1/40 s, so 2.5, 5, 10, 20 and 40 Hz frames fall on ticks.
pub const TICK_S: f32 = 1.0 / 40.0;

/// Domain tags that keep the seed's random streams apart.
const LAYOUT_STREAM: u64 = 0x4C41_594F_5554;
const BEHAVIOUR_STREAM: u64 = 0x4245_4841_5649;

#[derive(Debug, thiserror::Error)]
pub enum WorldError {
    #[error("boxes[{index}]: cannot place an image box whose bottom edge is above the horizon")]
    AboveHorizon { index: usize },
}

/// The state of one driving scene.
#[derive(Debug, Clone)]
pub struct World {
    seed: u64,
    pub conditions: Conditions,
    pub road: Road,
    pub landscape: Landscape,
    pub lighting: Lighting,
    pub traffic: Traffic,
    pub behaviour: Behaviour,
    rng: ChaCha8Rng,
    ticks: u64,
    /// Seconds since the start.
    pub time_s: f32,
    /// Track id given to each of the scenario's boxes, in order.
    pub scenario_tracks: Vec<u32>,
}

impl World {
    /// Builds the start state of a (validated) scenario.
    pub fn from_scenario(s: &Scenario) -> Result<World, WorldError> {
        World::new(s.seed, s.conditions, &s.boxes)
    }

    /// Builds a start state from a layout seed, conditions and requested cars.
    pub fn new(seed: u64, conditions: Conditions, boxes: &[BoxSpec]) -> Result<World, WorldError> {
        let mut rng = ChaCha8Rng::seed_from_u64(mix(seed ^ LAYOUT_STREAM));
        let lanes: Vec<i32> = boxes.iter().filter_map(|b| b.road.map(|r| r.lane as i32)).collect();
        let (road, ego_slot) = Road::random(&mut rng, &lanes);
        let urban = rng.random_bool(0.5);
        let night = conditions.time_of_day == crate::scenario::TimeOfDay::Night;
        let landscape = Landscape {
            seed: mix(seed ^ 0x5CE9),
            building_p: if urban { 0.6 } else { 0.05 },
            tree_p: if urban { 0.25 } else { 0.6 },
            lamps: (rng.random_bool(if night { 0.6 } else { 0.4 }), rng.random_bool(if night { 0.9 } else { 0.5 })),
        };
        let lighting = Lighting::new(conditions.time_of_day, &mut HashRng::new(&[seed, 0x119]));
        let crowd = conditions.crowdedness.min(3) as usize;
        let cruise = rng.random_range(12.0..26.0) - 2.5 * crowd as f32;
        let ego = Traffic::ego_motion(1000.0, road.lane_center(ego_slot), cruise);
        let mut traffic = Traffic::new(ego, DENSITY_PER_100M[crowd]);

        let mut scenario_tracks = Vec::with_capacity(boxes.len());
        let rf = RoadFrame::new(&road, traffic.ego.s, traffic.ego.d);
        for (index, b) in boxes.iter().enumerate() {
            let mut body = Body::random(&mut rng);
            let speed = cruise * rng.random_range(0.85..1.15);
            let (s, d) = match (b.road, b.image) {
                (Some(r), _) => (traffic.ego.s + r.ahead_m, road.lane_center(ego_slot + r.lane as i32)),
                (None, Some(img)) => place_image_box(&img, &mut body, &rf).ok_or(WorldError::AboveHorizon { index })?,
                (None, None) => continue,
            };
            if let Some(id) = traffic.add(&road, body, s, d, speed, true) {
                scenario_tracks.push(id);
            }
        }
        traffic.populate(&road, &mut rng);
        Ok(World {
            seed,
            conditions,
            road,
            landscape,
            lighting,
            traffic,
            behaviour: Behaviour::default(),
            rng: ChaCha8Rng::seed_from_u64(mix(seed ^ BEHAVIOUR_STREAM)),
            ticks: 0,
            time_s: 0.0,
            scenario_tracks,
        })
    }

    /// The layout seed this world was built from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Restarts the behaviour stream: the same state then unfolds into another future.
    pub fn reseed_behaviour(&mut self, seed: u64) {
        self.rng = ChaCha8Rng::seed_from_u64(mix(seed ^ BEHAVIOUR_STREAM));
    }

    /// Advances whole ticks until the clock reaches `t` seconds (never backwards).
    pub fn advance_to(&mut self, t: f32) {
        let target = (t / TICK_S).round() as u64;
        while self.ticks < target {
            self.traffic.step(&self.road, &self.behaviour, TICK_S, &mut self.rng);
            self.ticks += 1;
        }
        self.time_s = self.ticks as f32 * TICK_S;
    }

    /// The road relative to the ego camera now.
    pub fn road_frame(&self) -> RoadFrame {
        RoadFrame::new(&self.road, self.traffic.ego.s, self.traffic.ego.d)
    }

    /// Camera-space poses of the cars that may be in view.
    fn car_poses(&self, rf: &RoadFrame) -> Vec<(&Agent, Pose)> {
        self.traffic
            .agents
            .iter()
            .filter_map(|a| {
                let m = &a.motion;
                let position = rf.to_camera(m.s, m.d, 0.0);
                if position[2] < -a.body.length {
                    return None;
                }
                let heading = rf.heading(m.s) + m.lateral_speed().atan2(m.dir * m.v.max(0.1));
                Some((a, Pose { position, heading }))
            })
            .collect()
    }
}

/// Stands a car on the road so that it fills a normalised image box of the
/// reference camera: the box's bottom edge meets the road at the car's rear.
/// Returns its road coordinates and sets its width and height from the box.
fn place_image_box(b: &ImageBox, body: &mut Body, rf: &RoadFrame) -> Option<(f32, f32)> {
    let cam = Camera::reference();
    let (w, h) = (cam.width as f32, cam.height as f32);
    let z_rear = cam.ground_z(b.y2 * h)?;
    let metres_per_px = z_rear / cam.f;
    body.width = ((b.x2 - b.x1) * w * metres_per_px).clamp(1.5, 2.1);
    body.height = ((b.y2 - b.y1) * h * metres_per_px).clamp(1.3, 2.2);
    let x = (0.5 * (b.x1 + b.x2) * w - cam.cx) * metres_per_px;
    Some(rf.to_road(x, z_rear + 0.5 * body.length))
}

#[cfg(test)]
mod tests;
