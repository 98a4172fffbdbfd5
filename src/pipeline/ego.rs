//! The prediction guide's guess ([`GenerateOptions::prediction_guide`]): the window's last
//! context latent moved on by the ego car's forward travel, as the world's level pinhole
//! camera sees a driving corridor — the road plane below the horizon and two vertical walls
//! (the roadside scenery) beside it. Latent cells inside the requested boxes stay in place:
//! cars that drive along with the ego hold their place in the image.
//!
//! The warp is exact for static points on that geometry and a straight road: a point at
//! depth `Z'` in the new frame was at depth `Z' + d` in the context frame, in the same
//! direction from the horizon's centre, scaled by `Z' / (Z' + d)`.
//!
//! [`GenerateOptions::prediction_guide`]: super::GenerateOptions::prediction_guide

use burn::tensor::ops::{GridSampleOptions, GridSamplePaddingMode, InterpolateMode};
use burn::tensor::{Tensor, TensorData, backend::Backend};

use crate::world::World;
use crate::world::camera::Camera;

/// Depth given to points that neither the road nor the walls bound (sky, far away).
const FAR_M: f32 = 400.0;
/// How far beyond the curb the roadside walls stand: scenery is set back 1–6 m (buildings)
/// or 0.5–4 m plus a crown radius (trees).
const WALL_SETBACK_M: f32 = 3.0;

/// The ego's motion and the scene geometry the guess moves the last context frame by.
#[derive(Debug, Clone, PartialEq)]
pub struct EgoMotion {
    /// Forward speed, metres per second.
    pub speed_mps: f32,
    /// Lateral distances from the camera to the left and right roadside walls, metres.
    pub walls_m: (f32, f32),
    /// Normalised `[x1, y1, x2, y2]` image boxes held in place (the requested cars).
    pub held: Vec<[f32; 4]>,
}

impl EgoMotion {
    /// The ego of `world` at its start, with `held` boxes kept in place.
    pub fn from_world(world: &World, held: Vec<[f32; 4]>) -> Self {
        let road = &world.road;
        let (left, right) = road.edges();
        let curb = road.shoulder + road.sidewalk + WALL_SETBACK_M;
        let d = world.traffic.ego.d;
        EgoMotion {
            speed_mps: world.traffic.ego.v.max(0.0),
            walls_m: ((d - left + curb).max(1.0), (right - d + curb).max(1.0)),
            held,
        }
    }

    /// `grid_sample` coordinates (`[h, w, 2]`, x then y in [-1, 1], pixel centres as with
    /// `align_corners = false`) that pull a latent of `h × w` cells forward by `travel_m` metres.
    pub fn grid(&self, h: usize, w: usize, travel_m: f32) -> Vec<f32> {
        let cam = Camera::reference();
        let (width, height) = (cam.width as f32, cam.height as f32);
        let mut grid = Vec::with_capacity(h * w * 2);
        for i in 0..h {
            for j in 0..w {
                let (x, y) = ((j as f32 + 0.5) / w as f32, (i as f32 + 0.5) / h as f32);
                let held = self.held.iter().any(|b| (b[0]..=b[2]).contains(&x) && (b[1]..=b[3]).contains(&y));
                let (u, v) = (x * width, y * height);
                let (su, sv) = if held { (u, v) } else { self.source(&cam, u, v, travel_m) };
                grid.push(2.0 * su / width - 1.0);
                grid.push(2.0 * sv / height - 1.0);
            }
        }
        grid
    }

    /// Where pixel `(u, v)` of the frame `travel_m` metres on was in the frame before.
    fn source(&self, cam: &Camera, u: f32, v: f32, travel_m: f32) -> (f32, f32) {
        let (dx, dy) = (u - cam.cx, v - cam.cy);
        let ground = cam.ground_z(v).unwrap_or(f32::INFINITY);
        let wall = match dx {
            dx if dx < 0.0 => cam.f * self.walls_m.0 / -dx,
            dx if dx > 0.0 => cam.f * self.walls_m.1 / dx,
            _ => f32::INFINITY,
        };
        let z = ground.min(wall).min(FAR_M);
        let scale = z / (z + travel_m.max(0.0));
        (cam.cx + dx * scale, cam.cy + dy * scale)
    }

    /// `image` (`[1, c, h, w]`) moved on by each of `travels_m` metres → `[travels, c, h, w]`;
    /// pixels pulled from outside the frame take the nearest border pixel.
    pub fn warp<B: Backend>(&self, image: Tensor<B, 4>, travels_m: &[f32]) -> Tensor<B, 4> {
        let [_, _, h, w] = image.dims();
        let n = travels_m.len();
        let grid: Vec<f32> = travels_m.iter().flat_map(|&d| self.grid(h, w, d)).collect();
        let grid = Tensor::<B, 4>::from_data(TensorData::new(grid, [n, h, w, 2]), &image.device());
        let options =
            GridSampleOptions::new(InterpolateMode::Bilinear).with_padding_mode(GridSamplePaddingMode::Border);
        image.repeat_dim(0, n).grid_sample_2d(grid, options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::camera::CAMERA_HEIGHT_M;
    use burn::backend::Flex;

    fn ego(held: Vec<[f32; 4]>) -> EgoMotion {
        EgoMotion { speed_mps: 15.0, walls_m: (6.0, 9.0), held }
    }

    /// A road point `d` metres nearer projects where the grid says the new pixel comes from.
    #[test]
    fn road_points_come_from_where_the_camera_saw_them_before() {
        let cam = Camera::reference();
        let e = ego(vec![]);
        // A point on the road 1 m right of the camera, 12 m ahead in the new frame (wall
        // depth there is larger, so the road bounds it).
        let p_new = cam.project([1.0, CAMERA_HEIGHT_M, 12.0]);
        let p_old = cam.project([1.0, CAMERA_HEIGHT_M, 12.0 + 5.0]);
        let (u, v) = e.source(&cam, p_new[0], p_new[1], 5.0);
        assert!((u - p_old[0]).abs() < 1e-3 && (v - p_old[1]).abs() < 1e-3, "{:?} vs {p_old:?}", (u, v));
        // A point on the right wall above the horizon.
        let p_new = cam.project([9.0, -3.0, 20.0]);
        let p_old = cam.project([9.0, -3.0, 25.0]);
        let (u, v) = e.source(&cam, p_new[0], p_new[1], 5.0);
        assert!((u - p_old[0]).abs() < 1e-3 && (v - p_old[1]).abs() < 1e-3, "{:?} vs {p_old:?}", (u, v));
    }

    #[test]
    fn no_travel_and_held_boxes_leave_the_latent_as_it_is() {
        let device = Default::default();
        let z = Tensor::<Flex, 4>::random([1, 3, 16, 32], burn::tensor::Distribution::Default, &device);
        let e = ego(vec![[0.25, 0.5, 0.5, 1.0]]);
        let moved = e.warp(z.clone(), &[0.0, 8.0]);
        assert_eq!(moved.dims(), [2, 3, 16, 32]);
        let same: f32 = (moved.clone().narrow(0, 0, 1) - z.clone()).abs().max().into_scalar();
        assert!(same < 1e-5, "no travel: {same}");
        let moved = moved.narrow(0, 1, 1);
        // Rows 8..16, columns 8..16 are the held box's pixels; the rest of the road moved.
        let cells = |t: Tensor<Flex, 4>| t.slice([0..1, 0..3, 8..16, 8..16]);
        let held: f32 = (cells(moved.clone()) - cells(z.clone())).abs().max().into_scalar();
        assert!(held < 1e-5, "{held}");
        let road = |t: Tensor<Flex, 4>| t.slice([0..1, 0..3, 10..16, 20..32]);
        let changed: f32 = (road(moved) - road(z)).abs().mean().into_scalar();
        assert!(changed > 0.05, "{changed}");
    }
}

#[cfg(test)]
mod world_tests {
    use super::*;
    use crate::data::{images_to_tensor, tensor_to_images};
    use crate::scenario::{Conditions, TimeOfDay};
    use crate::world::Renderer;
    use burn::backend::Flex;

    /// On the procedural world (no traffic), the warped frame is nearer the world's own
    /// render 0.4 s later than the frame itself is.
    #[test]
    fn the_warp_predicts_the_world_better_than_holding_the_frame() {
        let conditions = Conditions { time_of_day: TimeOfDay::Day, crowdedness: 0 };
        let mut world = World::new(7, conditions, &[]).unwrap();
        let mut renderer = Renderer::new(256, 128);
        let (before, _) = renderer.render(&world, 0);
        let (s0, ego) = (world.traffic.ego.s, EgoMotion::from_world(&world, vec![]));
        world.advance_to(0.4);
        let (after, _) = renderer.render(&world, 1);
        let travel = world.traffic.ego.s - s0;
        let x = images_to_tensor::<Flex>(&[before.clone()], &Default::default());
        let warped = tensor_to_images(ego.warp(x, &[travel]).clamp(-1.0, 1.0)).remove(0);
        let err = |a: &image::RgbImage| {
            a.pixels()
                .zip(after.pixels())
                .map(|(p, q)| (0..3).map(|c| (p[c] as f64 - q[c] as f64).abs()).sum::<f64>())
                .sum::<f64>()
                / (3 * 256 * 128) as f64
        };
        let (held, moved) = (err(&before), err(&warped));
        assert!(moved < 0.8 * held, "travel {travel:.1} m: warped {moved:.2}, held {held:.2} (8-bit levels)");
    }
}
