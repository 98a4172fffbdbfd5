//! Static roadside scenery, generated on demand from a hash of (seed, side, slot):
//! the road is endless, yet every metre of it looks the same each time it is seen.

use super::road::Road;

/// Spacing of scenery slots along the road, metres.
pub const SLOT_M: f32 = 14.0;
/// Spacing of street lamps along the road, metres.
pub const LAMP_SPACING_M: f32 = 36.0;
/// Street-lamp height, metres.
pub const LAMP_HEIGHT_M: f32 = 7.0;

/// Deterministic 64-bit mix (SplitMix64 finaliser).
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Uniform numbers in [0, 1) drawn from one hash.
pub struct HashRng(u64);

impl HashRng {
    pub fn new(parts: &[u64]) -> Self {
        HashRng(parts.iter().fold(0x5EED, |h, p| mix(h ^ p)))
    }
    pub fn next(&mut self) -> f32 {
        self.0 = mix(self.0);
        (self.0 >> 40) as f32 / (1u64 << 24) as f32
    }
    pub fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.next()
    }
}

/// How built-up the roadside is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Landscape {
    pub seed: u64,
    /// Probability that a slot holds a building (else maybe a tree).
    pub building_p: f32,
    pub tree_p: f32,
    /// Street lamps on the left / right side.
    pub lamps: (bool, bool),
}

/// One scenery item in road coordinates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Item {
    /// Box from `s0..s1` along the road, `d0..d1` across, `height` metres tall.
    Building { s0: f32, s1: f32, d0: f32, d1: f32, height: f32, wall: [f32; 3], window_seed: u64 },
    /// Trunk foot at `(s, d)`, crown sphere of `radius` at `crown_up` metres.
    Tree { s: f32, d: f32, trunk_up: f32, radius: f32, crown_up: f32, leaf: [f32; 3] },
    /// Pole foot at `(s, d)`, arm reaching `arm` metres towards the road (signed).
    Lamp { s: f32, d: f32, arm: f32 },
}

const WALLS: [[f32; 3]; 6] = [
    [0.45, 0.20, 0.14],
    [0.55, 0.50, 0.42],
    [0.35, 0.35, 0.36],
    [0.62, 0.58, 0.50],
    [0.25, 0.22, 0.20],
    [0.50, 0.40, 0.30],
];

impl Landscape {
    /// Scenery whose extent overlaps `s_lo..s_hi`.
    pub fn items(&self, road: &Road, s_lo: f32, s_hi: f32) -> Vec<Item> {
        let mut out = Vec::new();
        let (left, right) = road.edges();
        let curb = road.shoulder + road.sidewalk;
        for (side, edge, sign) in [(0u64, left, -1.0f32), (1, right, 1.0)] {
            let first = (s_lo / SLOT_M).floor() as i64 - 1;
            let last = (s_hi / SLOT_M).ceil() as i64;
            for k in first..=last {
                let mut h = HashRng::new(&[self.seed, side, k as u64]);
                let s = k as f32 * SLOT_M;
                let u = h.next();
                if u < self.building_p {
                    let setback = h.range(1.0, 6.0);
                    let depth = h.range(8.0, 16.0);
                    let near = edge + sign * (curb + setback);
                    let far = near + sign * depth;
                    out.push(Item::Building {
                        s0: s + h.range(0.0, 1.5),
                        s1: s + SLOT_M - h.range(0.5, 2.0),
                        d0: near.min(far),
                        d1: near.max(far),
                        height: h.range(6.0, 24.0),
                        wall: WALLS[(h.next() * WALLS.len() as f32) as usize % WALLS.len()],
                        window_seed: mix(self.seed ^ (k as u64) << 1 ^ side),
                    });
                } else if u < self.building_p + self.tree_p {
                    let radius = h.range(1.4, 3.0);
                    let trunk_up = h.range(1.5, 3.0);
                    out.push(Item::Tree {
                        s: s + h.range(2.0, SLOT_M - 2.0),
                        d: edge + sign * (curb + radius + h.range(0.5, 4.0)),
                        trunk_up,
                        radius,
                        crown_up: trunk_up + radius * 0.8,
                        leaf: [h.range(0.05, 0.12), h.range(0.16, 0.30), h.range(0.03, 0.08)],
                    });
                }
            }
            let lamps_here = if side == 0 { self.lamps.0 } else { self.lamps.1 };
            if lamps_here {
                let offset = if side == 0 { 0.0 } else { 0.5 * LAMP_SPACING_M };
                let first = ((s_lo - offset) / LAMP_SPACING_M).floor() as i64;
                let last = ((s_hi - offset) / LAMP_SPACING_M).ceil() as i64;
                for k in first..=last {
                    out.push(Item::Lamp {
                        s: offset + k as f32 * LAMP_SPACING_M,
                        d: edge + sign * (road.shoulder + 0.4),
                        arm: -sign * 1.8,
                    });
                }
            }
        }
        out
    }
}
