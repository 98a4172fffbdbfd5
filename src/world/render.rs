//! Draws one frame of the world: sky, road surface with markings, scenery, cars,
//! shadows by day and lights by night; then reads the labels off the buffers.

use image::RgbImage;

use super::World;
use super::annotate::annotate;
use super::camera::{CAMERA_HEIGHT_M, Camera};
use super::car::{self, Part};
use super::color::{add_into, lerp3, mul3, to_srgb8};
use super::ground::{ground_albedo, lamp_pool};
use super::labels::FrameLabels;
use super::raster::{CAR_ID_BASE, Canvas, ID_GROUND, ID_SCENERY, dot, norm, normalize, scale};
use super::road::{AHEAD_M, RoadFrame};
use super::scenery::{HashRng, Item, LAMP_HEIGHT_M};
use super::solid::{Face, Pose, Side, cuboid_faces};
use crate::scenario::TimeOfDay;

/// Lighting of one clip, drawn from the layout seed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lighting {
    pub time_of_day: TimeOfDay,
    /// Unit vector towards the sun, camera space (y down, so its y is negative).
    pub sun_dir: [f32; 3],
    pub sun: [f32; 3],
    pub ambient: [f32; 3],
    pub sky_top: [f32; 3],
    pub sky_horizon: [f32; 3],
    /// Distance at which haze reaches 63 %, metres.
    pub fog_m: f32,
}

impl Lighting {
    pub fn new(time_of_day: TimeOfDay, h: &mut HashRng) -> Self {
        match time_of_day {
            TimeOfDay::Day => {
                let overcast = h.next() < 0.3;
                let (elev, azim) = (h.range(0.35, 1.0), h.range(-2.2, 2.2));
                let sun_dir = [elev.cos() * azim.sin(), -elev.sin(), elev.cos() * azim.cos()];
                let k = if overcast { 0.35 } else { 1.0 };
                Lighting {
                    time_of_day,
                    sun_dir,
                    sun: [1.0 * k, 0.95 * k, 0.85 * k],
                    ambient: if overcast { [0.55, 0.57, 0.6] } else { [0.32, 0.36, 0.45] },
                    sky_top: if overcast { [0.45, 0.48, 0.52] } else { [0.16, 0.32, 0.72] },
                    sky_horizon: if overcast { [0.70, 0.72, 0.74] } else { [0.62, 0.72, 0.85] },
                    fog_m: h.range(250.0, 600.0),
                }
            }
            TimeOfDay::Night => Lighting {
                time_of_day,
                sun_dir: [0.0, -1.0, 0.0],
                sun: [0.0; 3],
                ambient: [0.010, 0.012, 0.020],
                sky_top: [0.0, 0.0, 0.004],
                sky_horizon: [0.012, 0.014, 0.03],
                fog_m: h.range(150.0, 300.0),
            },
        }
    }

    fn night(&self) -> bool {
        self.time_of_day == TimeOfDay::Night
    }
}

/// Warm sodium-white of street lamps and its strength on the road below.
const LAMP_LIGHT: [f32; 3] = [1.0, 0.78, 0.5];
const LAMP_POOL: f32 = 0.55;

/// Reusable buffers for rendering frames of one size.
pub struct Renderer {
    pub camera: Camera,
    canvas: Canvas,
    /// Track id of each car drawn in the last frame, by draw index.
    drawn_tracks: Vec<u32>,
}

impl Renderer {
    pub fn new(width: u32, height: u32) -> Self {
        Renderer { camera: Camera::new(width, height), canvas: Canvas::new(width, height), drawn_tracks: Vec::new() }
    }

    /// Renders the world's current state; `frame` and `time_s` go into the labels.
    pub fn render(&mut self, world: &World, frame: u32) -> (RgbImage, FrameLabels) {
        let cam = self.camera;
        self.canvas.clear();
        let rf = world.road_frame();
        let light = &world.lighting;
        self.draw_ground_and_sky(world, &rf);
        self.draw_scenery(world, &rf);
        let cars = world.car_poses(&rf);
        if !light.night() {
            for (agent, pose) in &cars {
                self.car_shadow(&agent.body, pose, light);
            }
        }
        for (i, (agent, pose)) in cars.iter().enumerate() {
            self.draw_car(&agent.body, pose, CAR_ID_BASE + i as u32, light);
        }
        if light.night() {
            self.night_glows(world, &rf, &cars);
        }
        let labels = annotate(&cam, &self.canvas, &cars, frame, world.time_s);
        self.drawn_tracks = cars.iter().map(|(a, _)| a.track_id).collect();
        (self.to_image(), labels)
    }

    /// Instance mask of the last frame: `true` where the car with `track_id` is
    /// the nearest surface (row-major, `width × height`). `None` if it was not drawn.
    pub fn instance_mask(&self, track_id: u32) -> Option<Vec<bool>> {
        let index = self.drawn_tracks.iter().position(|&t| t == track_id)?;
        let id = CAR_ID_BASE + index as u32;
        Some(self.canvas.id.iter().map(|&i| i == id).collect())
    }

    fn draw_ground_and_sky(&mut self, world: &World, rf: &RoadFrame) {
        let cam = self.camera;
        let light = &world.lighting;
        let road = &world.road;
        let (left_edge, right_edge) = road.edges();
        let ego_d = world.traffic.ego.d;
        let night = light.night();
        let grass = world.landscape.building_p < 0.3;
        let w = self.canvas.width;
        for y in 0..self.canvas.height {
            let v = y as f32 + 0.5;
            let Some(z) = cam.ground_z(v) else {
                // Sky: gradient from the horizon up.
                let t = ((cam.cy - v) / cam.cy).clamp(0.0, 1.0).sqrt();
                let c = lerp3(light.sky_horizon, light.sky_top, t);
                for x in 0..w {
                    let i = y * w + x;
                    self.canvas.color[i] = c;
                    if night && HashRng::new(&[world.seed(), x as u64, y as u64]).next() < 0.002 {
                        self.canvas.color[i] = [0.3, 0.3, 0.35];
                    }
                }
                continue;
            };
            // Per row: the reference line at this distance, and the pixel footprint.
            let mut ds = z;
            let (mut rx, mut rz, mut th) = rf.reference(ds);
            for _ in 0..2 {
                ds += z - rz;
                (rx, rz, th) = rf.reference(ds);
            }
            let (sin_t, cos_t) = th.sin_cos();
            let foot_d = z / cam.f;
            let foot_s = z * z / (cam.f * CAMERA_HEIGHT_M);
            let haze = 1.0 - (-z / light.fog_m).exp();
            let fog = if night { [0.0, 0.0, 0.0] } else { light.sky_horizon };
            for x in 0..w {
                let gx = (x as f32 + 0.5 - cam.cx) * z / cam.f;
                let (dx, dz) = (gx - rx, z - rz);
                let d = dx * cos_t - dz * sin_t;
                let s = world.traffic.ego.s + ds + dx * sin_t + dz * cos_t;
                let albedo = ground_albedo(world, s, d, foot_d, foot_s, (left_edge, right_edge), grass);
                let mut lit = if night {
                    let mut l = light.ambient;
                    add_into(&mut l, scale(LAMP_LIGHT, LAMP_POOL * lamp_pool(world, s, d)));
                    // Ego headlights: a cone ahead of the car.
                    let lateral = (d - ego_d).abs();
                    if z > 3.0 && lateral < 0.3 * z + 1.0 {
                        let k = 1.1 * (-z / 30.0).exp() * (1.0 - lateral / (0.3 * z + 1.0));
                        add_into(&mut l, [k, k * 0.95, k * 0.85]);
                    }
                    l
                } else {
                    let sun = (-light.sun_dir[1]).max(0.0);
                    [
                        light.ambient[0] + light.sun[0] * sun,
                        light.ambient[1] + light.sun[1] * sun,
                        light.ambient[2] + light.sun[2] * sun,
                    ]
                };
                lit = mul3(albedo, lit);
                let i = y * w + x;
                self.canvas.color[i] = lerp3(lit, fog, haze);
                self.canvas.depth[i] = z;
                self.canvas.id[i] = ID_GROUND;
            }
        }
    }

    fn draw_scenery(&mut self, world: &World, rf: &RoadFrame) {
        let ego_s = world.traffic.ego.s;
        let light = world.lighting;
        for item in world.landscape.items(&world.road, ego_s - 10.0, ego_s + AHEAD_M - 10.0) {
            match item {
                Item::Building { s0, s1, d0, d1, height, wall, window_seed } => {
                    let (sm, dm) = (0.5 * (s0 + s1), 0.5 * (d0 + d1));
                    let pose = Pose { position: rf.to_camera(sm, dm, 0.0), heading: rf.heading(sm) };
                    let (hw, hl) = (0.5 * (d1 - d0), 0.5 * (s1 - s0));
                    for face in cuboid_faces(&pose, [-hw, hw], [0.0, height], [-hl, hl]) {
                        if !face.faces_camera() {
                            continue;
                        }
                        let (width_m, height_m) = (norm(face.eu), norm(face.ev));
                        self.fill_face(&face, ID_SCENERY, &light, |u, v| {
                            building_surface(face.side, wall, window_seed, u * width_m, v * height_m, light.night())
                        });
                    }
                }
                Item::Tree { s, d, trunk_up, radius, crown_up, leaf } => {
                    let pose = Pose { position: rf.to_camera(s, d, 0.0), heading: rf.heading(s) };
                    for face in cuboid_faces(&pose, [-0.15, 0.15], [0.0, trunk_up + 0.3], [-0.15, 0.15]) {
                        if face.faces_camera() {
                            self.fill_face(&face, ID_SCENERY, &light, |_, _| plain([0.08, 0.05, 0.03]));
                        }
                    }
                    let centre = rf.to_camera(s, d, crown_up);
                    let sun = light.sun;
                    let (ambient, sun_dir) = (light.ambient, light.sun_dir);
                    let cam = self.camera;
                    self.canvas.fill_sphere(&cam, centre, radius, ID_SCENERY, |n| {
                        let k = dot(n, sun_dir).max(0.0);
                        mul3(leaf, [ambient[0] + sun[0] * k, ambient[1] + sun[1] * k, ambient[2] + sun[2] * k])
                    });
                }
                Item::Lamp { s, d, arm } => {
                    let pose = Pose { position: rf.to_camera(s, d, 0.0), heading: rf.heading(s) };
                    let grey = plain([0.2, 0.2, 0.21]);
                    let pole = cuboid_faces(&pose, [-0.08, 0.08], [0.0, LAMP_HEIGHT_M], [-0.08, 0.08]);
                    let (a0, a1) = if arm < 0.0 { (arm, 0.0) } else { (0.0, arm) };
                    let bar = cuboid_faces(&pose, [a0, a1], [LAMP_HEIGHT_M - 0.1, LAMP_HEIGHT_M], [-0.06, 0.06]);
                    for face in pole.iter().chain(bar.iter()) {
                        if face.faces_camera() {
                            self.fill_face(face, ID_SCENERY, &light, |_, _| grey);
                        }
                    }
                }
            }
        }
    }

    /// Fills a face with depth test, lit by the clip's light; `surface(u, v)` gives its material.
    fn fill_face(&mut self, face: &Face, id: u32, light: &Lighting, surface: impl Fn(f32, f32) -> car::Surface) {
        let cam = self.camera;
        let n = normalize(face.n);
        let diffuse = if light.night() { 0.0 } else { dot(n, light.sun_dir).max(0.0) };
        // Faces looking up see more sky.
        let sky_view = 0.5 + 0.5 * (-n[1]);
        let mut l = [
            light.ambient[0] * (0.6 + 0.4 * sky_view) + light.sun[0] * diffuse,
            light.ambient[1] * (0.6 + 0.4 * sky_view) + light.sun[1] * diffuse,
            light.ambient[2] * (0.6 + 0.4 * sky_view) + light.sun[2] * diffuse,
        ];
        let fog = if light.night() { [0.0; 3] } else { light.sky_horizon };
        let (haze_m, reflect) = (light.fog_m, lerp3(light.sky_horizon, light.sky_top, 0.5));
        if light.night() {
            // Street lamps light what is near the road, a little.
            add_into(&mut l, scale(LAMP_LIGHT, 0.025));
        }
        self.canvas.fill_polygon(&cam, &face.corners(), id, |p| {
            let (u, v) = face.uv(p);
            let s = surface(u, v);
            let mut c = mul3(s.albedo, l);
            add_into(&mut c, scale(reflect, s.gloss * 0.35));
            add_into(&mut c, s.emission);
            lerp3(c, fog, 1.0 - (-p[2] / haze_m).exp())
        });
    }

    fn draw_car(&mut self, body: &super::agents::Body, pose: &Pose, id: u32, light: &Lighting) {
        for (part, face) in car::faces(body, pose) {
            if face.faces_camera() {
                let paint = body.color;
                let night = light.night();
                self.fill_face(&face, id, light, |u, v| car::surface(part, &face, paint, u, v, night));
            }
        }
    }

    fn car_shadow(&mut self, body: &super::agents::Body, pose: &Pose, light: &Lighting) {
        // The footprint pushed away from the sun by a fraction of the car's height.
        let (sx, sz) = (-light.sun_dir[0], -light.sun_dir[2]);
        let up = (-light.sun_dir[1]).max(0.2);
        let push = 0.5 * body.height / up;
        let (hw, hl) = (0.5 * body.width + 0.1, 0.5 * body.length + 0.1);
        let mut poly: Vec<[f32; 3]> = [[-hw, -hl], [hw, -hl], [hw, hl], [-hw, hl]]
            .iter()
            .map(|&[x, z]| {
                let p = pose.to_camera([x, 0.0, z]);
                [p[0] + sx * push.min(3.0) * 0.5, p[1], p[2] + sz * push.min(3.0) * 0.5]
            })
            .collect();
        poly.dedup();
        let cam = self.camera;
        self.canvas.darken_ground(&cam, &poly, 0.45);
    }

    fn night_glows(&mut self, world: &World, rf: &RoadFrame, cars: &[(&super::agents::Agent, Pose)]) {
        let cam = self.camera;
        for (agent, pose) in cars {
            for (part, face) in car::faces(&agent.body, pose) {
                if part != Part::Body || !face.faces_camera() {
                    continue;
                }
                let color = match face.side {
                    Side::Back => [0.9, 0.02, 0.01],
                    Side::Front => [1.6, 1.5, 1.2],
                    _ => continue,
                };
                for p in car::light_points(&face) {
                    self.canvas.add_glow(&cam, p, 0.18, color);
                }
            }
        }
        let ego_s = world.traffic.ego.s;
        for item in world.landscape.items(&world.road, ego_s, ego_s + AHEAD_M - 10.0) {
            if let Item::Lamp { s, d, arm } = item {
                let p = rf.to_camera(s, d + arm, LAMP_HEIGHT_M - 0.15);
                self.canvas.add_glow(&cam, p, 0.35, scale(LAMP_LIGHT, 1.5));
            }
        }
    }

    fn to_image(&self) -> RgbImage {
        let mut img = RgbImage::new(self.canvas.width as u32, self.canvas.height as u32);
        for (px, c) in img.pixels_mut().zip(&self.canvas.color) {
            px.0 = [to_srgb8(c[0]), to_srgb8(c[1]), to_srgb8(c[2])];
        }
        img
    }
}

fn building_surface(side: Side, wall: [f32; 3], seed: u64, x_m: f32, y_m: f32, night: bool) -> car::Surface {
    let wall_plain = car::Surface { albedo: wall, emission: [0.0; 3], gloss: 0.0 };
    if side == Side::Top || y_m < 1.0 {
        return wall_plain;
    }
    // Windows on a 3 m × 3 m grid, 1.6 m × 1.5 m each.
    let (bx, by) = (x_m.rem_euclid(3.0), y_m.rem_euclid(3.0));
    let in_window = (0.7..2.3).contains(&bx) && (0.9..2.4).contains(&by);
    if !in_window {
        return wall_plain;
    }
    let lit = night && HashRng::new(&[seed, (x_m / 3.0) as u64, (y_m / 3.0) as u64]).next() < 0.3;
    car::Surface { albedo: [0.05, 0.06, 0.08], emission: if lit { [0.45, 0.33, 0.15] } else { [0.0; 3] }, gloss: 0.5 }
}

fn plain(albedo: [f32; 3]) -> car::Surface {
    car::Surface { albedo, emission: [0.0; 3], gloss: 0.0 }
}
