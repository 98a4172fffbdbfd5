//! Road layout and geometry: lanes, markings, and a smoothly curving centre line.
//!
//! Road coordinates: `s` is arclength along the road (metres), `d` the lateral
//! offset (metres, positive to the right) from the reference line, which is the
//! median between the oncoming and the ego-direction carriageways. Lane slot `L`
//! has its centre at `d = (L + ½)·lane_width`; slots `L < 0` carry oncoming traffic.

use rand::{Rng, RngExt};

/// Static description of one road, drawn from the layout seed.
#[derive(Debug, Clone, PartialEq)]
pub struct Road {
    /// Lanes in the ego direction (slots `0..lanes_same`).
    pub lanes_same: i32,
    /// Oncoming lanes (slots `-lanes_opposite..0`).
    pub lanes_opposite: i32,
    pub lane_width: f32,
    /// Asphalt beyond the outer edge lines.
    pub shoulder: f32,
    /// Pavement width beyond the shoulder.
    pub sidewalk: f32,
    /// Curvature `k(s) = amplitude · sin(2π s / wavelength + phase)`, 1/m.
    pub curve_amplitude: f32,
    pub curve_wavelength: f32,
    pub curve_phase: f32,
    /// Lane dash and gap lengths, metres.
    pub dash: f32,
    pub gap: f32,
    /// Asphalt grey level (linear), per road.
    pub asphalt: f32,
}

impl Road {
    /// Draws a road that has every slot in `ego_slot + lanes` (scenario lanes are
    /// relative to the ego lane). Returns the road and the ego slot.
    pub fn random(rng: &mut impl Rng, requested_lanes: &[i32]) -> (Road, i32) {
        let lo = requested_lanes.iter().copied().min().unwrap_or(0).min(0);
        let hi = requested_lanes.iter().copied().max().unwrap_or(0).max(0);
        let mut lanes_same = rng.random_range(2..=4);
        let mut lanes_opposite = [0, 1, 1, 2][rng.random_range(0..4usize)];
        let ego_slot = rng.random_range(0..lanes_same);
        lanes_same = lanes_same.max(ego_slot + hi + 1);
        lanes_opposite = lanes_opposite.max(-(ego_slot + lo));
        let curved = rng.random_bool(0.65);
        let road = Road {
            lanes_same,
            lanes_opposite,
            lane_width: rng.random_range(3.2..3.8),
            shoulder: rng.random_range(0.4..1.5),
            sidewalk: rng.random_range(1.5..3.5),
            curve_amplitude: if curved { rng.random_range(0.0008..0.0025) } else { 0.0 },
            curve_wavelength: rng.random_range(300.0..900.0),
            curve_phase: rng.random_range(0.0..std::f32::consts::TAU),
            dash: rng.random_range(2.5..4.0),
            gap: rng.random_range(5.0..9.0),
            asphalt: rng.random_range(0.05..0.11),
        };
        (road, ego_slot)
    }

    pub fn lane_center(&self, slot: i32) -> f32 {
        (slot as f32 + 0.5) * self.lane_width
    }

    /// Slot whose lane contains lateral offset `d` (clamped to existing lanes).
    pub fn slot_at(&self, d: f32) -> i32 {
        ((d / self.lane_width).floor() as i32).clamp(-self.lanes_opposite, self.lanes_same - 1)
    }

    pub fn has_slot(&self, slot: i32) -> bool {
        (-self.lanes_opposite..self.lanes_same).contains(&slot)
    }

    /// Lateral offsets of the carriageway's outer edge lines (left, right).
    pub fn edges(&self) -> (f32, f32) {
        (-(self.lanes_opposite as f32) * self.lane_width, self.lanes_same as f32 * self.lane_width)
    }

    pub fn curvature(&self, s: f32) -> f32 {
        self.curve_amplitude * (std::f32::consts::TAU * s / self.curve_wavelength + self.curve_phase).sin()
    }
}

/// Step of the geometry table, metres.
const TABLE_STEP: f32 = 1.0;
/// Table range relative to the ego, metres.
pub const BEHIND_M: f32 = 40.0;
pub const AHEAD_M: f32 = 260.0;

/// The road's centre line relative to the camera for one ego pose, tabulated
/// every metre: where a road point `(s, d)` is in camera space, and back.
#[derive(Debug, Clone)]
pub struct RoadFrame {
    ego_s: f32,
    /// Per table entry: reference-line point (x, z) in camera space and heading θ
    /// (radians, relative to the camera's forward axis, positive turning right).
    x: Vec<f32>,
    z: Vec<f32>,
    theta: Vec<f32>,
}

impl RoadFrame {
    /// Camera at arclength `ego_s`, lateral offset `ego_d`, looking along the road tangent.
    pub fn new(road: &Road, ego_s: f32, ego_d: f32) -> Self {
        let n = ((BEHIND_M + AHEAD_M) / TABLE_STEP) as usize + 1;
        let i0 = (BEHIND_M / TABLE_STEP) as usize;
        let (mut x, mut z, mut theta) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        // The reference line passes ego_d to the camera's left.
        x[i0] = -ego_d;
        // Integrate heading and position forwards and backwards (midpoint rule).
        for i in i0 + 1..n {
            let s_mid = ego_s + ((i - i0) as f32 - 0.5) * TABLE_STEP;
            theta[i] = theta[i - 1] + road.curvature(s_mid) * TABLE_STEP;
            let th = 0.5 * (theta[i] + theta[i - 1]);
            x[i] = x[i - 1] + th.sin() * TABLE_STEP;
            z[i] = z[i - 1] + th.cos() * TABLE_STEP;
        }
        for i in (0..i0).rev() {
            let s_mid = ego_s - ((i0 - i) as f32 - 0.5) * TABLE_STEP;
            theta[i] = theta[i + 1] - road.curvature(s_mid) * TABLE_STEP;
            let th = 0.5 * (theta[i] + theta[i + 1]);
            x[i] = x[i + 1] - th.sin() * TABLE_STEP;
            z[i] = z[i + 1] - th.cos() * TABLE_STEP;
        }
        RoadFrame { ego_s, x, z, theta }
    }

    fn sample(&self, ds: f32) -> (f32, f32, f32) {
        let f = ((ds + BEHIND_M) / TABLE_STEP).clamp(0.0, (self.x.len() - 1) as f32);
        let i = (f as usize).min(self.x.len() - 2);
        let t = f - i as f32;
        let lerp = |v: &[f32]| v[i] + (v[i + 1] - v[i]) * t;
        (lerp(&self.x), lerp(&self.z), lerp(&self.theta))
    }

    /// Road heading at arclength `s`, relative to the camera axis.
    pub fn heading(&self, s: f32) -> f32 {
        self.sample(s - self.ego_s).2
    }

    /// Camera-space point of road coordinates `(s, d)` at height `up` above the road.
    pub fn to_camera(&self, s: f32, d: f32, up: f32) -> [f32; 3] {
        let (x, z, th) = self.sample(s - self.ego_s);
        // The right-hand normal of tangent (sin θ, cos θ) is (cos θ, −sin θ).
        [x + d * th.cos(), super::camera::CAMERA_HEIGHT_M - up, z - d * th.sin()]
    }

    /// Road coordinates `(s, d)` of the ground point `(x, z)` in camera space.
    /// Exact on straight roads; on curves it refines the foot point twice.
    pub fn to_road(&self, x: f32, z: f32) -> (f32, f32) {
        let mut ds = z;
        let mut d = 0.0;
        for _ in 0..3 {
            let (rx, rz, th) = self.sample(ds);
            let (dx, dz) = (x - rx, z - rz);
            // Split the offset into along-tangent and along-normal parts.
            let along = dx * th.sin() + dz * th.cos();
            d = dx * th.cos() - dz * th.sin();
            ds += along;
        }
        (self.ego_s + ds, d)
    }

    /// Row-constant data for ground shading: `(x, z, θ)` of the reference line at `ds` ahead.
    pub fn reference(&self, ds: f32) -> (f32, f32, f32) {
        self.sample(ds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn road(curved: bool) -> Road {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let (mut r, _) = Road::random(&mut rng, &[]);
        r.curve_amplitude = if curved { 0.002 } else { 0.0 };
        r
    }

    #[test]
    fn road_to_camera_and_back_round_trips_on_curves() {
        for curved in [false, true] {
            let road = road(curved);
            let frame = RoadFrame::new(&road, 100.0, 5.0);
            for (s, d) in [(110.0, 5.0), (160.0, -3.0), (250.0, 9.0), (95.0, 1.0)] {
                let p = frame.to_camera(s, d, 0.0);
                let (s2, d2) = frame.to_road(p[0], p[2]);
                assert!((s - s2).abs() < 0.05 && (d - d2).abs() < 0.05, "{curved} {s},{d} -> {s2},{d2}");
            }
        }
    }

    #[test]
    fn ego_sits_at_the_camera() {
        let road = road(true);
        let frame = RoadFrame::new(&road, 42.0, 5.25);
        let p = frame.to_camera(42.0, 5.25, super::super::camera::CAMERA_HEIGHT_M);
        assert!(p.iter().all(|v| v.abs() < 1e-4), "{p:?}");
    }

    #[test]
    fn requested_lanes_always_exist() {
        for seed in 0..200 {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let (road, ego) = Road::random(&mut rng, &[-3, 3]);
            assert!(road.has_slot(ego - 3) && road.has_slot(ego + 3) && ego >= 0);
        }
    }
}
