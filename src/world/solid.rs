//! Rigid solids in camera space: poses and cuboid faces with face coordinates.
//! Cars and buildings are built from these.

use super::raster::{add, cross, scale, sub};

/// Which way a cuboid face points, in the car's own frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Right,
    Left,
    Top,
    Front,
    Back,
}

/// One parallelogram face: origin corner `o`, edges `eu` (across, left→right as seen from outside)
/// and `ev` (bottom→top, or back→front on the roof), all in camera space.
#[derive(Debug, Clone, Copy)]
pub struct Face {
    pub side: Side,
    pub o: [f32; 3],
    pub eu: [f32; 3],
    pub ev: [f32; 3],
    /// Outward normal (not normalised).
    pub n: [f32; 3],
}

impl Face {
    pub fn corners(&self) -> [[f32; 3]; 4] {
        [self.o, add(self.o, self.eu), add(add(self.o, self.eu), self.ev), add(self.o, self.ev)]
    }
    /// Face coordinates `(u, v)` in [0, 1]² of a point on the face.
    pub fn uv(&self, p: [f32; 3]) -> (f32, f32) {
        let q = sub(p, self.o);
        let d = |a: [f32; 3], b: [f32; 3]| a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
        (d(q, self.eu) / d(self.eu, self.eu), d(q, self.ev) / d(self.ev, self.ev))
    }
    /// Faces seen from their front by a camera at the origin.
    pub fn faces_camera(&self) -> bool {
        let n = self.n;
        n[0] * self.o[0] + n[1] * self.o[1] + n[2] * self.o[2] < 0.0
    }
}

/// A car's pose in camera space: bottom-centre position and heading ψ, the angle
/// of its forward axis from the camera's +z towards +x.
#[derive(Debug, Clone, Copy)]
pub struct Pose {
    pub position: [f32; 3],
    pub heading: f32,
}

impl Pose {
    /// Camera-space point of car-local `(x right, y up, z forward)`.
    pub fn to_camera(self, local: [f32; 3]) -> [f32; 3] {
        let (s, c) = self.heading.sin_cos();
        let right = [c, 0.0, -s];
        let fwd = [s, 0.0, c];
        add(add(self.position, scale(right, local[0])), add(scale(fwd, local[2]), [0.0, -local[1], 0.0]))
    }
    /// KITTI `rotation_y` of this heading.
    pub fn rotation_y(self) -> f32 {
        super::labels::wrap_angle(self.heading - std::f32::consts::FRAC_PI_2)
    }
}

/// The five faces of the local cuboid `x × y × z` (no bottom: never seen from a
/// camera above the road), placed by `pose`.
pub fn cuboid_faces(pose: &Pose, x: [f32; 2], y: [f32; 2], z: [f32; 2]) -> [Face; 5] {
    let p = |lx: f32, ly: f32, lz: f32| pose.to_camera([lx, ly, lz]);
    let (x0, x1, y0, y1, z0, z1) = (x[0], x[1], y[0], y[1], z[0], z[1]);
    let corner = p(x0, y0, z0);
    let ex = sub(p(x1, y0, z0), corner);
    let ey = sub(p(x0, y1, z0), corner);
    let ez = sub(p(x0, y0, z1), corner);
    let centre = p(0.5 * (x0 + x1), 0.5 * (y0 + y1), 0.5 * (z0 + z1));
    // `eu` runs left→right as seen from outside the face, `ev` upwards.
    let quads = [
        (Side::Back, p(x0, y0, z0), ex, ey),
        (Side::Front, p(x1, y0, z1), scale(ex, -1.0), ey),
        (Side::Left, p(x0, y0, z1), scale(ez, -1.0), ey),
        (Side::Right, p(x1, y0, z0), ez, ey),
        (Side::Top, p(x0, y1, z0), ex, ez),
    ];
    quads.map(|(side, o, eu, ev)| {
        // The local→camera map flips handedness (y turns down), so orient by geometry.
        let mut n = cross(eu, ev);
        let mid = add(o, scale(add(eu, ev), 0.5));
        if n[0] * (mid[0] - centre[0]) + n[1] * (mid[1] - centre[1]) + n[2] * (mid[2] - centre[2]) < 0.0 {
            n = scale(n, -1.0);
        }
        Face { side, o, eu, ev, n }
    })
}
