//! Traffic: cars that follow lanes with car-following dynamics and make stochastic
//! decisions (brake, accelerate, change lane; the ego changes lanes too), so one
//! start state has many plausible futures.

use rand::{Rng, RngExt};

use super::road::{AHEAD_M, BEHIND_M, Road};

/// Cars per lane per 100 m for crowdedness 0..=3.
pub const DENSITY_PER_100M: [f32; 4] = [0.0, 0.6, 1.6, 3.2];
/// Range around the ego where traffic lives, metres (inside the road table).
const LIVE_BEHIND: f32 = BEHIND_M - 5.0;
const LIVE_AHEAD: f32 = AHEAD_M - 10.0;
/// Bumper-to-bumper gap kept when placing cars, metres.
const MIN_GAP_M: f32 = 4.0;

/// Body shapes; dimensions and proportions differ per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    Sedan,
    Hatchback,
    Suv,
    Van,
}

/// A car's size and paint.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Body {
    pub kind: BodyKind,
    pub length: f32,
    pub width: f32,
    pub height: f32,
    /// Linear RGB paint colour.
    pub color: [f32; 3],
}

/// Linear-RGB car paints: common real-world colours, weighted towards greys.
const PAINTS: [[f32; 3]; 12] = [
    [0.80, 0.80, 0.80],
    [0.55, 0.56, 0.58],
    [0.30, 0.31, 0.33],
    [0.03, 0.03, 0.035],
    [0.70, 0.70, 0.72],
    [0.50, 0.04, 0.03],
    [0.05, 0.12, 0.45],
    [0.04, 0.20, 0.08],
    [0.60, 0.52, 0.35],
    [0.75, 0.55, 0.02],
    [0.12, 0.25, 0.40],
    [0.90, 0.90, 0.88],
];

impl Body {
    pub fn random(rng: &mut impl Rng) -> Body {
        let kind = [BodyKind::Sedan, BodyKind::Sedan, BodyKind::Hatchback, BodyKind::Suv, BodyKind::Suv, BodyKind::Van]
            [rng.random_range(0..6usize)];
        let (length, width, height) = match kind {
            BodyKind::Sedan => (rng.random_range(4.4..4.9), rng.random_range(1.75..1.85), rng.random_range(1.40..1.50)),
            BodyKind::Hatchback => {
                (rng.random_range(3.8..4.3), rng.random_range(1.65..1.78), rng.random_range(1.45..1.55))
            }
            BodyKind::Suv => (rng.random_range(4.5..4.9), rng.random_range(1.85..1.95), rng.random_range(1.65..1.80)),
            BodyKind::Van => (rng.random_range(4.8..5.3), rng.random_range(1.90..2.00), rng.random_range(1.90..2.10)),
        };
        let color = PAINTS[rng.random_range(0..PAINTS.len())];
        Body { kind, length, width, height, color }
    }
}

/// A lateral move between two offsets over `duration` seconds (smoothstep profile).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LaneChange {
    pub from_d: f32,
    pub to_d: f32,
    pub elapsed: f32,
    pub duration: f32,
}

impl LaneChange {
    fn offset(&self) -> f32 {
        let t = (self.elapsed / self.duration).clamp(0.0, 1.0);
        self.from_d + (self.to_d - self.from_d) * t * t * (3.0 - 2.0 * t)
    }
}

/// Longitudinal and lateral state shared by traffic cars and the ego.
#[derive(Debug, Clone, PartialEq)]
pub struct Motion {
    /// Arclength along the road, metres.
    pub s: f32,
    /// Lateral offset, metres.
    pub d: f32,
    /// Speed, m/s (always ≥ 0; `dir` gives the direction).
    pub v: f32,
    /// +1 drives with increasing `s` (ego direction), −1 oncoming.
    pub dir: f32,
    /// Speed the driver normally keeps.
    pub cruise_v: f32,
    /// Speed currently aimed at (differs from cruise while braking or hurrying).
    pub target_v: f32,
    /// Seconds left of a brake or hurry episode.
    pub episode_s: f32,
    pub lane_change: Option<LaneChange>,
}

impl Motion {
    /// Rate of change of the lateral offset, m/s (non-zero during lane changes).
    pub fn lateral_speed(&self) -> f32 {
        match &self.lane_change {
            Some(lc) => {
                let t = (lc.elapsed / lc.duration).clamp(0.0, 1.0);
                (lc.to_d - lc.from_d) * 6.0 * t * (1.0 - t) / lc.duration
            }
            None => 0.0,
        }
    }

    fn new(s: f32, d: f32, dir: f32, cruise_v: f32) -> Self {
        Motion { s, d, v: cruise_v, dir, cruise_v, target_v: cruise_v, episode_s: 0.0, lane_change: None }
    }
}

/// One traffic car.
#[derive(Debug, Clone, PartialEq)]
pub struct Agent {
    pub track_id: u32,
    pub body: Body,
    pub motion: Motion,
}

/// Stochastic decision rates, per second.
#[derive(Debug, Clone, Copy)]
pub struct Behaviour {
    pub brake_rate: f32,
    pub hurry_rate: f32,
    pub lane_change_rate: f32,
    pub ego_lane_change_rate: f32,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour { brake_rate: 0.05, hurry_rate: 0.05, lane_change_rate: 0.05, ego_lane_change_rate: 0.03 }
    }
}

/// All moving things: the ego and the traffic around it.
#[derive(Debug, Clone, PartialEq)]
pub struct Traffic {
    pub ego: Motion,
    pub agents: Vec<Agent>,
    pub next_track_id: u32,
    /// Cars per lane per 100 m that respawning keeps up.
    pub density: f32,
}

impl Traffic {
    pub fn new(ego: Motion, density: f32) -> Self {
        Traffic { ego, agents: Vec::new(), next_track_id: 1, density }
    }

    pub fn ego_motion(s: f32, d: f32, cruise_v: f32) -> Motion {
        Motion::new(s, d, 1.0, cruise_v)
    }

    /// Adds a car at `(s, d)` if nothing occupies that spot; returns its track id.
    pub fn add(&mut self, road: &Road, body: Body, s: f32, d: f32, cruise_v: f32, force: bool) -> Option<u32> {
        if !force && !self.is_free(road, s, d, body.length) {
            return None;
        }
        let dir = if d < 0.0 { -1.0 } else { 1.0 };
        let track_id = self.next_track_id;
        self.next_track_id += 1;
        self.agents.push(Agent { track_id, body, motion: Motion::new(s, d, dir, cruise_v) });
        Some(track_id)
    }

    fn is_free(&self, road: &Road, s: f32, d: f32, length: f32) -> bool {
        let same_lane = |other_d: f32| (other_d - d).abs() < 0.8 * road.lane_width;
        let ego_clear = !same_lane(self.ego.d) || (self.ego.s - s).abs() > 0.5 * length + 2.5 + MIN_GAP_M;
        ego_clear
            && self
                .agents
                .iter()
                .all(|a| !same_lane(a.motion.d) || (a.motion.s - s).abs() > 0.5 * (length + a.body.length) + MIN_GAP_M)
    }

    /// Fills every lane to the density, over the live range around the ego.
    pub fn populate(&mut self, road: &Road, rng: &mut impl Rng) {
        let lanes = (road.lanes_same + road.lanes_opposite) as f32;
        let span = LIVE_BEHIND + LIVE_AHEAD;
        let count = (self.density / 100.0 * span * lanes).round() as usize;
        let target = self.agents.len() + count;
        for _ in 0..count * 4 {
            if self.agents.len() >= target {
                break;
            }
            let ds = rng.random_range(-LIVE_BEHIND..LIVE_AHEAD);
            self.spawn(road, rng, ds);
        }
    }

    fn spawn(&mut self, road: &Road, rng: &mut impl Rng, ds: f32) -> bool {
        let slot = rng.random_range(-road.lanes_opposite..road.lanes_same);
        let body = Body::random(rng);
        let cruise =
            if slot < 0 { rng.random_range(10.0..22.0) } else { self.ego.cruise_v * rng.random_range(0.8..1.2) };
        self.add(road, body, self.ego.s + ds, road.lane_center(slot), cruise, false).is_some()
    }

    /// Advances everything by `dt` seconds, drawing decisions from `rng`.
    pub fn step(&mut self, road: &Road, behaviour: &Behaviour, dt: f32, rng: &mut impl Rng) {
        // 1. Decisions. Order is fixed (ego, then agents by index) for determinism.
        decide(&mut self.ego, road, behaviour.ego_lane_change_rate, behaviour, dt, rng);
        for i in 0..self.agents.len() {
            let rate = if self.agents[i].motion.dir > 0.0 { behaviour.lane_change_rate } else { 0.0 };
            let mut m = self.agents[i].motion.clone();
            decide(&mut m, road, rate, behaviour, dt, rng);
            if let Some(lc) = m.lane_change {
                let changing_now = self.agents[i].motion.lane_change.is_none();
                let len = self.agents[i].body.length;
                if changing_now && !self.target_lane_clear(road, i, lc.to_d, len) {
                    m.lane_change = None;
                }
            }
            self.agents[i].motion = m;
        }
        // 2. Car following (IDM), computed from the state before anyone moves.
        let ego_acc = self.acceleration(road, &self.ego, None);
        let accs: Vec<f32> =
            (0..self.agents.len()).map(|i| self.acceleration(road, &self.agents[i].motion, Some(i))).collect();
        integrate(&mut self.ego, ego_acc, dt);
        for (a, acc) in self.agents.iter_mut().zip(accs) {
            integrate(&mut a.motion, acc, dt);
        }
        // 3. Cars that left the live range come back at its far ends, as new tracks.
        let ego_s = self.ego.s;
        let before = self.agents.len();
        self.agents.retain(|a| (-LIVE_BEHIND..LIVE_AHEAD).contains(&(a.motion.s - ego_s)));
        for _ in 0..(before - self.agents.len()) * 3 {
            if self.agents.len() >= before {
                break;
            }
            let ds = if rng.random_bool(0.7) {
                rng.random_range(LIVE_AHEAD - 60.0..LIVE_AHEAD - 1.0)
            } else {
                rng.random_range(-LIVE_BEHIND + 1.0..-LIVE_BEHIND + 10.0)
            };
            self.spawn(road, rng, ds);
        }
    }

    fn target_lane_clear(&self, road: &Road, me: usize, to_d: f32, length: f32) -> bool {
        let s = self.agents[me].motion.s;
        let near = |od: f32, os: f32, ol: f32| {
            (od - to_d).abs() < 0.8 * road.lane_width && (os - s).abs() < 0.5 * (length + ol) + 12.0
        };
        !near(self.ego.d, self.ego.s, 4.5)
            && self.agents.iter().enumerate().all(|(j, a)| j == me || !near(a.motion.d, a.motion.s, a.body.length))
    }

    /// Intelligent Driver Model acceleration towards the car ahead in the same lane.
    fn acceleration(&self, road: &Road, m: &Motion, me: Option<usize>) -> f32 {
        const A_MAX: f32 = 1.5;
        const B_COMF: f32 = 3.0;
        const T_HEADWAY: f32 = 1.3;
        let mut gap = f32::INFINITY;
        let mut lead_v = m.v;
        let mut consider = |s: f32, d: f32, v: f32, dir: f32, half_len: f32| {
            if dir != m.dir || (d - m.d).abs() > 0.75 * road.lane_width {
                return;
            }
            let ahead = (s - m.s) * m.dir - half_len - 2.4;
            if ahead > 0.0 && ahead < gap {
                gap = ahead;
                lead_v = v;
            }
        };
        if me.is_some() {
            consider(self.ego.s, self.ego.d, self.ego.v, self.ego.dir, 2.25);
        }
        for (j, a) in self.agents.iter().enumerate() {
            if Some(j) != me {
                consider(a.motion.s, a.motion.d, a.motion.v, a.motion.dir, 0.5 * a.body.length);
            }
        }
        let v0 = m.target_v.max(0.1);
        let free = A_MAX * (1.0 - (m.v / v0).powi(4));
        if !gap.is_finite() {
            return free;
        }
        let s_star = 2.0 + m.v * T_HEADWAY + m.v * (m.v - lead_v) / (2.0 * (A_MAX * B_COMF).sqrt());
        (free - A_MAX * (s_star.max(0.0) / gap.max(0.1)).powi(2)).max(-9.0)
    }
}

/// Draws this step's stochastic decisions for one driver.
fn decide(m: &mut Motion, road: &Road, lane_change_rate: f32, b: &Behaviour, dt: f32, rng: &mut impl Rng) {
    // One uniform draw per decision keeps the random stream aligned across runs.
    let (u_brake, u_hurry, u_lane, u_dir) =
        (rng.random::<f32>(), rng.random::<f32>(), rng.random::<f32>(), rng.random::<f32>());
    if m.episode_s > 0.0 {
        m.episode_s -= dt;
        if m.episode_s <= 0.0 {
            m.target_v = m.cruise_v;
        }
    } else if u_brake < b.brake_rate * dt {
        m.target_v = m.cruise_v * (0.25 + 0.5 * u_hurry);
        m.episode_s = 2.0 + 4.0 * u_lane;
    } else if u_hurry < b.hurry_rate * dt {
        m.target_v = m.cruise_v * (1.1 + 0.2 * u_brake);
        m.episode_s = 3.0 + 5.0 * u_lane;
    }
    if m.lane_change.is_none() && u_lane < lane_change_rate * dt {
        let slot = road.slot_at(m.d);
        let to = if u_dir < 0.5 { slot - 1 } else { slot + 1 };
        // Only into existing lanes of the same direction.
        if road.has_slot(to) && (to >= 0) == (slot >= 0) {
            m.lane_change = Some(LaneChange {
                from_d: m.d,
                to_d: road.lane_center(to),
                elapsed: 0.0,
                duration: 3.0 + 2.0 * u_hurry,
            });
        }
    }
}

fn integrate(m: &mut Motion, acc: f32, dt: f32) {
    m.v = (m.v + acc * dt).max(0.0);
    m.s += m.dir * m.v * dt;
    if let Some(lc) = &mut m.lane_change {
        lc.elapsed += dt;
        m.d = lc.offset();
        if lc.elapsed >= lc.duration {
            m.d = lc.to_d;
            m.lane_change = None;
        }
    }
}
