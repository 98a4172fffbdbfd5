//! A small software rasteriser: colour, depth and object-id buffers, convex planar
//! polygons with exact per-pixel depth, screen-space discs and additive glows.
//!
//! A pixel is covered when its centre `(u + ½, v + ½)` lies inside the projected
//! polygon; depth is the camera-space `z` of the polygon's plane along that pixel's ray.

use super::camera::{Camera, NEAR_M};

/// Object ids in the id buffer. Cars get `CAR_ID_BASE + index`.
pub const ID_SKY: u32 = 0;
pub const ID_GROUND: u32 = 1;
pub const ID_SCENERY: u32 = 2;
pub const CAR_ID_BASE: u32 = 16;

/// Frame buffers in linear RGB.
#[derive(Debug, Clone)]
pub struct Canvas {
    pub width: usize,
    pub height: usize,
    pub color: Vec<[f32; 3]>,
    pub depth: Vec<f32>,
    pub id: Vec<u32>,
}

impl Canvas {
    pub fn new(width: u32, height: u32) -> Self {
        let n = (width * height) as usize;
        Canvas {
            width: width as usize,
            height: height as usize,
            color: vec![[0.0; 3]; n],
            depth: vec![f32::INFINITY; n],
            id: vec![ID_SKY; n],
        }
    }

    /// Resets every buffer for a new frame (keeps the allocations).
    pub fn clear(&mut self) {
        self.color.fill([0.0; 3]);
        self.depth.fill(f32::INFINITY);
        self.id.fill(ID_SKY);
    }

    /// Draws a convex planar polygon (camera space, any winding) with depth test.
    /// `shade(point)` gives the linear colour at a covered pixel's surface point.
    pub fn fill_polygon(
        &mut self,
        cam: &Camera,
        poly: &[[f32; 3]],
        id: u32,
        mut shade: impl FnMut([f32; 3]) -> [f32; 3],
    ) {
        let Some(plane) = Plane::through(poly) else { return };
        let w = self.width;
        for_each_covered_pixel(cam, poly, |x, y| {
            let r = cam.ray(x as f32 + 0.5, y as f32 + 0.5);
            let Some(z) = plane.depth_along(r) else { return };
            let i = y * w + x;
            if z < self.depth[i] && z > NEAR_M * 0.99 {
                self.depth[i] = z;
                self.id[i] = id;
                self.color[i] = shade([r[0] * z, r[1] * z, z]);
            }
        });
    }

    /// Multiplies the colour of ground pixels inside a ground polygon (shadows).
    pub fn darken_ground(&mut self, cam: &Camera, poly: &[[f32; 3]], factor: f32) {
        let w = self.width;
        for_each_covered_pixel(cam, poly, |x, y| {
            let i = y * w + x;
            if self.id[i] == ID_GROUND {
                for c in &mut self.color[i] {
                    *c *= factor;
                }
            }
        });
    }

    /// A sphere seen as a disc: centre in camera space, radius in metres; `shade`
    /// gets the sphere's surface normal (camera space) at each pixel.
    pub fn fill_sphere(
        &mut self,
        cam: &Camera,
        center: [f32; 3],
        radius: f32,
        id: u32,
        mut shade: impl FnMut([f32; 3]) -> [f32; 3],
    ) {
        if center[2] - radius < NEAR_M {
            return;
        }
        let [cu, cv] = cam.project(center);
        let rp = cam.f * radius / center[2];
        let (x0, x1) = (((cu - rp).floor().max(0.0)) as usize, ((cu + rp).ceil().min(self.width as f32)) as usize);
        let (y0, y1) = (((cv - rp).floor().max(0.0)) as usize, ((cv + rp).ceil().min(self.height as f32)) as usize);
        for y in y0..y1 {
            for x in x0..x1 {
                let (dx, dy) = ((x as f32 + 0.5 - cu) / rp, (y as f32 + 0.5 - cv) / rp);
                let rr = dx * dx + dy * dy;
                if rr > 1.0 {
                    continue;
                }
                let dz = (1.0 - rr).sqrt();
                let z = center[2] - radius * dz;
                let i = y * self.width + x;
                if z < self.depth[i] {
                    self.depth[i] = z;
                    self.id[i] = id;
                    self.color[i] = shade([dx, dy, -dz]);
                }
            }
        }
    }

    /// Adds a soft light halo around a camera-space point if that point is not
    /// hidden (depth test at its pixel). Halos do not touch depth or ids.
    pub fn add_glow(&mut self, cam: &Camera, p: [f32; 3], radius_m: f32, color: [f32; 3]) {
        if p[2] < NEAR_M {
            return;
        }
        let [cu, cv] = cam.project(p);
        let (w, h) = (self.width as f32, self.height as f32);
        if cu < -8.0 || cv < -8.0 || cu > w + 8.0 || cv > h + 8.0 {
            return;
        }
        let (px, py) = (cu.clamp(0.0, w - 1.0) as usize, cv.clamp(0.0, h - 1.0) as usize);
        if self.depth[py * self.width + px] < p[2] - 0.6 {
            return;
        }
        let r = (cam.f * radius_m / p[2]).max(0.8);
        let reach = 3.0 * r;
        let (x0, x1) = ((cu - reach).floor().max(0.0) as usize, (cu + reach).ceil().min(w) as usize);
        let (y0, y1) = ((cv - reach).floor().max(0.0) as usize, (cv + reach).ceil().min(h) as usize);
        for y in y0..y1 {
            for x in x0..x1 {
                let (dx, dy) = ((x as f32 + 0.5 - cu) / r, (y as f32 + 0.5 - cv) / r);
                let k = (-(dx * dx + dy * dy)).exp();
                let c = &mut self.color[y * self.width + x];
                for ch in 0..3 {
                    c[ch] += color[ch] * k;
                }
            }
        }
    }
}

/// Plane `n·p = c` in camera space.
#[derive(Debug, Clone, Copy)]
pub struct Plane {
    n: [f32; 3],
    c: f32,
}

impl Plane {
    /// Plane through a polygon (from its first non-degenerate corner triple).
    pub fn through(poly: &[[f32; 3]]) -> Option<Plane> {
        if poly.len() < 3 {
            return None;
        }
        let p0 = poly[0];
        for k in 2..poly.len() {
            let n = cross(sub(poly[k - 1], p0), sub(poly[k], p0));
            if dot(n, n) > 1e-12 {
                return Some(Plane { n, c: dot(n, p0) });
            }
        }
        None
    }

    /// Depth `z` where the ray `r` (with `r.z = 1`) meets the plane.
    pub fn depth_along(&self, r: [f32; 3]) -> Option<f32> {
        let den = dot(self.n, r);
        (den.abs() > 1e-12).then(|| self.c / den).filter(|z| *z > 0.0)
    }
}

/// Clips a camera-space polygon to `z ≥ NEAR_M` (Sutherland–Hodgman, one plane).
pub fn clip_near(poly: &[[f32; 3]]) -> Vec<[f32; 3]> {
    let mut out = Vec::with_capacity(poly.len() + 2);
    for i in 0..poly.len() {
        let (a, b) = (poly[i], poly[(i + 1) % poly.len()]);
        let (ia, ib) = (a[2] >= NEAR_M, b[2] >= NEAR_M);
        if ia {
            out.push(a);
        }
        if ia != ib {
            let t = (NEAR_M - a[2]) / (b[2] - a[2]);
            out.push([a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, NEAR_M]);
        }
    }
    out
}

/// Projected, near-clipped polygon in pixel coordinates (empty if fully behind).
pub fn project_polygon(cam: &Camera, poly: &[[f32; 3]]) -> Vec<[f32; 2]> {
    clip_near(poly).into_iter().map(|p| cam.project(p)).collect()
}

/// Calls `f(x, y)` for every pixel whose centre lies inside the projected polygon.
pub fn for_each_covered_pixel(cam: &Camera, poly: &[[f32; 3]], mut f: impl FnMut(usize, usize)) {
    let pts = project_polygon(cam, poly);
    if pts.len() < 3 {
        return;
    }
    let (w, h) = (cam.width as f32, cam.height as f32);
    let (mut lo, mut hi) = ([f32::INFINITY; 2], [f32::NEG_INFINITY; 2]);
    for p in &pts {
        for k in 0..2 {
            lo[k] = lo[k].min(p[k]);
            hi[k] = hi[k].max(p[k]);
        }
    }
    // Pixel x covers centre x + ½, so x ranges over ceil(lo − ½) ..= floor(hi − ½).
    let x0 = (lo[0] - 0.5).ceil().max(0.0);
    let x1 = (hi[0] - 0.5).floor().min(w - 1.0);
    let y0 = (lo[1] - 0.5).ceil().max(0.0);
    let y1 = (hi[1] - 0.5).floor().min(h - 1.0);
    if x0 > x1 || y0 > y1 {
        return;
    }
    let area: f32 = (0..pts.len())
        .map(|i| {
            let (a, b) = (pts[i], pts[(i + 1) % pts.len()]);
            a[0] * b[1] - b[0] * a[1]
        })
        .sum();
    if area.abs() < 1e-9 {
        return;
    }
    let sign = area.signum();
    // Edge functions e(x, y) = A x + B y + C, positive inside for either winding.
    let edges: Vec<[f32; 3]> = (0..pts.len())
        .map(|i| {
            let (a, b) = (pts[i], pts[(i + 1) % pts.len()]);
            let (ea, eb) = (-(b[1] - a[1]) * sign, (b[0] - a[0]) * sign);
            [ea, eb, -(ea * a[0] + eb * a[1])]
        })
        .collect();
    for y in y0 as usize..=y1 as usize {
        let py = y as f32 + 0.5;
        for x in x0 as usize..=x1 as usize {
            let px = x as f32 + 0.5;
            if edges.iter().all(|e| e[0] * px + e[1] * py + e[2] >= 0.0) {
                f(x, y);
            }
        }
    }
}

pub fn sub(a: [f32; 3], b: [f32; 3]) -> [f32; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}
pub fn add(a: [f32; 3], b: [f32; 3]) -> [f32; 3] {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}
pub fn scale(a: [f32; 3], k: f32) -> [f32; 3] {
    [a[0] * k, a[1] * k, a[2] * k]
}
pub fn dot(a: [f32; 3], b: [f32; 3]) -> f32 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}
/// Euclidean length.
pub fn norm(a: [f32; 3]) -> f32 {
    dot(a, a).sqrt()
}
/// Unit vector along `a` (zero stays zero).
pub fn normalize(a: [f32; 3]) -> [f32; 3] {
    scale(a, 1.0 / norm(a).max(1e-12))
}

pub fn cross(a: [f32; 3], b: [f32; 3]) -> [f32; 3] {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn square_covers_exactly_the_pixels_whose_centres_it_contains() {
        let cam = Camera::new(64, 32);
        // A fronto-parallel square at z = 10 spanning pixels [10, 20) × [5, 15).
        let z = 10.0;
        let to_cam = |u: f32, v: f32| [(u - cam.cx) * z / cam.f, (v - cam.cy) * z / cam.f, z];
        let poly = [to_cam(10.0, 5.0), to_cam(20.0, 5.0), to_cam(20.0, 15.0), to_cam(10.0, 15.0)];
        let mut canvas = Canvas::new(64, 32);
        canvas.fill_polygon(&cam, &poly, 7, |_| [1.0; 3]);
        let covered: Vec<(usize, usize)> =
            (0..32).flat_map(|y| (0..64).map(move |x| (x, y))).filter(|&(x, y)| canvas.id[y * 64 + x] == 7).collect();
        assert_eq!(covered.len(), 100);
        assert!(covered.iter().all(|&(x, y)| (10..20).contains(&x) && (5..15).contains(&y)));
        assert!((canvas.depth[10 * 64 + 15] - z).abs() < 1e-4);
    }

    #[test]
    fn nearer_polygon_wins_the_depth_test() {
        let cam = Camera::new(32, 16);
        let quad = |z: f32| [[-5.0, -5.0, z], [5.0, -5.0, z], [5.0, 5.0, z], [-5.0, 5.0, z]];
        let mut canvas = Canvas::new(32, 16);
        canvas.fill_polygon(&cam, &quad(5.0), 20, |_| [1.0; 3]);
        canvas.fill_polygon(&cam, &quad(8.0), 21, |_| [1.0; 3]);
        assert!(canvas.id.iter().all(|&i| i == 20));
    }

    #[test]
    fn near_clipping_keeps_the_visible_part() {
        let poly = [[0.0, 0.0, -1.0], [1.0, 0.0, 2.0], [0.0, 1.0, 2.0]];
        let clipped = clip_near(&poly);
        assert!(clipped.iter().all(|p| p[2] >= NEAR_M - 1e-6));
        assert_eq!(clipped.len(), 4);
    }
}
