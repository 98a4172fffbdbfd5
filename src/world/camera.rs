//! Pinhole camera on the ego car. Camera coordinates follow KITTI: `x` right,
//! `y` down, `z` forward, metres. The camera looks level along the road; the
//! horizon sits above the image centre through an off-centre principal point
//! (a level camera keeps ground-plane maths exact without a pitch rotation).

/// Normalised image row of the horizon (principal point `cy / height`).
pub const HORIZON_Y: f32 = 0.42;
/// Camera height above the road, metres (KITTI's is 1.65 m).
pub const CAMERA_HEIGHT_M: f32 = 1.6;
/// Focal length as a fraction of image width: a 70° horizontal field of view.
pub const FOCAL_PER_WIDTH: f32 = 0.714;
/// Near clipping plane, metres.
pub const NEAR_M: f32 = 0.5;

/// Intrinsics for one image size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Camera {
    pub width: u32,
    pub height: u32,
    /// Focal length in pixels (square pixels).
    pub f: f32,
    pub cx: f32,
    pub cy: f32,
}

impl Camera {
    pub fn new(width: u32, height: u32) -> Self {
        Camera {
            width,
            height,
            f: FOCAL_PER_WIDTH * width as f32,
            cx: 0.5 * width as f32,
            cy: HORIZON_Y * height as f32,
        }
    }

    /// The 2:1 camera that normalised scenario coordinates refer to.
    pub fn reference() -> Self {
        Camera::new(256, 128)
    }

    /// Projects a camera-space point (z > 0) to pixel coordinates.
    pub fn project(&self, p: [f32; 3]) -> [f32; 2] {
        [self.cx + self.f * p[0] / p[2], self.cy + self.f * p[1] / p[2]]
    }

    /// Direction (z = 1) of the ray through pixel coordinates `(u, v)`.
    pub fn ray(&self, u: f32, v: f32) -> [f32; 3] {
        [(u - self.cx) / self.f, (v - self.cy) / self.f, 1.0]
    }

    /// Distance ahead (z) where the ray through row `v` meets the road, if below the horizon.
    pub fn ground_z(&self, v: f32) -> Option<f32> {
        let dy = v - self.cy;
        (dy > 1e-3).then(|| CAMERA_HEIGHT_M * self.f / dy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ground_ray_round_trips_through_projection() {
        let cam = Camera::new(256, 128);
        let p = [2.0, CAMERA_HEIGHT_M, 20.0];
        let [u, v] = cam.project(p);
        let z = cam.ground_z(v).unwrap();
        assert!((z - 20.0).abs() < 1e-3);
        let r = cam.ray(u, v);
        assert!((r[0] * z - 2.0).abs() < 1e-3);
        assert!(cam.ground_z(cam.cy - 1.0).is_none());
    }
}
