//! Car geometry: a car is a few cuboids (lower body, cabin, four wheels) placed
//! rigidly in camera space; faces carry a material (paint, glass, lights, tyre).

use super::agents::{Body, BodyKind};
use super::raster::{add, scale};
use super::solid::{Face, Pose, Side, cuboid_faces};
/// What a cuboid is made of; decides the face pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Lower body: paint, lights on front and back.
    Body,
    /// Cabin: glass with painted pillars, painted roof.
    Cabin,
    Wheel,
}

/// Local-frame cuboid `[x0, x1] × [y0, y1] × [z0, z1]` and its part.
type Cuboid = ([f32; 2], [f32; 2], [f32; 2], Part);

/// Height of the body's underside; the wheels fill the gap to the road.
const CLEARANCE: f32 = 0.28;

fn cuboids(b: &Body) -> Vec<Cuboid> {
    let (hw, hl) = (0.5 * b.width, 0.5 * b.length);
    // Cabin fraction of the height and its span along the car, per body kind.
    let (body_frac, cab_back, cab_front, cab_width) = match b.kind {
        BodyKind::Sedan => (0.52, -0.30, 0.20, 0.84),
        BodyKind::Hatchback => (0.50, -0.42, 0.18, 0.86),
        BodyKind::Suv => (0.52, -0.42, 0.24, 0.88),
        BodyKind::Van => (0.42, -0.48, 0.36, 0.94),
    };
    let top_body = CLEARANCE + body_frac * (b.height - CLEARANCE);
    let mut out = vec![
        ([-hw, hw], [CLEARANCE, top_body], [-hl, hl], Part::Body),
        (
            [-hw * cab_width, hw * cab_width],
            [top_body, b.height],
            [cab_back * b.length, cab_front * b.length],
            Part::Cabin,
        ),
    ];
    let wheel_r = 0.33;
    let axle = hl - 0.85;
    for x in [-1.0f32, 1.0] {
        for z in [-axle, axle] {
            let xo = x * (hw - 0.02);
            out.push((
                [xo.min(xo - x * 0.24), xo.max(xo - x * 0.24)],
                [0.0, 2.0 * wheel_r],
                [z - wheel_r, z + wheel_r],
                Part::Wheel,
            ));
        }
    }
    out
}

/// All faces of a car with the part each belongs to.
pub fn faces(body: &Body, pose: &Pose) -> Vec<(Part, Face)> {
    cuboids(body).into_iter().flat_map(|(x, y, z, part)| cuboid_faces(pose, x, y, z).map(|f| (part, f))).collect()
}

/// Surface response at a face point: albedo, emitted light and glossiness.
#[derive(Debug, Clone, Copy)]
pub struct Surface {
    pub albedo: [f32; 3],
    pub emission: [f32; 3],
    /// How much of the sky the surface mirrors (glass, paint).
    pub gloss: f32,
}

const GLASS: [f32; 3] = [0.02, 0.025, 0.03];
const TYRE: [f32; 3] = [0.015, 0.015, 0.015];
const TAIL: [f32; 3] = [0.35, 0.01, 0.01];
const HEAD: [f32; 3] = [0.7, 0.7, 0.6];

/// Where the lights sit on the body's front/back face, in face (u, v).
pub const LIGHT_U: [[f32; 2]; 2] = [[0.05, 0.22], [0.78, 0.95]];
pub const LIGHT_V: [f32; 2] = [0.55, 0.85];

/// Material of a car face at face coordinates `(u, v)`; `lights_on` at night.
pub fn surface(part: Part, face: &Face, paint: [f32; 3], u: f32, v: f32, lights_on: bool) -> Surface {
    let plain = |albedo, gloss| Surface { albedo, emission: [0.0; 3], gloss };
    match (part, face.side) {
        (Part::Wheel, _) => plain(TYRE, 0.0),
        (Part::Cabin, Side::Top) => plain(paint, 0.15),
        (Part::Cabin, side) => {
            // Pillars frame the glass; the side glass has a B-pillar in the middle.
            let pillar = !(0.08..=0.92).contains(&u)
                || v > 0.9
                || (matches!(side, Side::Left | Side::Right) && (0.47..0.53).contains(&u));
            if pillar { plain(paint, 0.15) } else { plain(GLASS, 0.35) }
        }
        (Part::Body, side @ (Side::Front | Side::Back)) => {
            let in_light = (LIGHT_V[0]..LIGHT_V[1]).contains(&v) && LIGHT_U.iter().any(|r| (r[0]..r[1]).contains(&u));
            if in_light {
                let (albedo, glow) =
                    if side == Side::Back { (TAIL, [2.5, 0.05, 0.03]) } else { (HEAD, [3.0, 2.8, 2.2]) };
                Surface { albedo, emission: if lights_on { glow } else { [0.0; 3] }, gloss: 0.2 }
            } else if v < 0.25 {
                plain(scale(paint, 0.5), 0.05) // bumper shadow line
            } else {
                plain(paint, 0.15)
            }
        }
        (Part::Body, _) => plain(paint, 0.15),
    }
}

/// Camera-space centres of the lights on one body face (for night glows).
pub fn light_points(face: &Face) -> [[f32; 3]; 2] {
    let at = |u: f32, v: f32| add(add(face.o, scale(face.eu, u)), scale(face.ev, v));
    let v = 0.5 * (LIGHT_V[0] + LIGHT_V[1]);
    [at(0.5 * (LIGHT_U[0][0] + LIGHT_U[0][1]), v), at(0.5 * (LIGHT_U[1][0] + LIGHT_U[1][1]), v)]
}
