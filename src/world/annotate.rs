//! Labels read off a rendered frame: tight 2D boxes, 3D boxes, truncation and
//! occlusion measured on the pixel buffers rather than estimated.

use super::agents::Agent;
use super::camera::Camera;
use super::car;
use super::labels::{Box2d, Box3d, FrameLabels, ObjectClass, ObjectLabel, Occlusion};
use super::raster::{CAR_ID_BASE, Canvas, for_each_covered_pixel, project_polygon};
use super::solid::Pose;

/// Labels of every car that covers at least one pixel centre of the image.
pub fn annotate(cam: &Camera, canvas: &Canvas, cars: &[(&Agent, Pose)], frame: u32, time_s: f32) -> FrameLabels {
    let (w, h) = (cam.width as f32, cam.height as f32);
    let mut objects = Vec::new();
    for (i, (agent, pose)) in cars.iter().enumerate() {
        let id = CAR_ID_BASE + i as u32;
        let faces = car::faces(&agent.body, pose);
        // Silhouette bounds from every face (near-clipped), before image clipping.
        let (mut lo, mut hi) = ([f32::INFINITY; 2], [f32::NEG_INFINITY; 2]);
        for (_, face) in &faces {
            for p in project_polygon(cam, &face.corners()) {
                for k in 0..2 {
                    lo[k] = lo[k].min(p[k]);
                    hi[k] = hi[k].max(p[k]);
                }
            }
        }
        if !(lo[0] < hi[0] && lo[1] < hi[1]) {
            continue;
        }
        let clipped = Box2d { x1: lo[0].max(0.0), y1: lo[1].max(0.0), x2: hi[0].min(w), y2: hi[1].min(h) };
        if clipped.x1 >= clipped.x2 || clipped.y1 >= clipped.y2 {
            continue;
        }
        let full_area = (hi[0] - lo[0]) * (hi[1] - lo[1]);
        let truncation = (1.0 - clipped.area() / full_area).clamp(0.0, 1.0);

        // The object's own silhouette (as if alone) and its visible part.
        let (x0, y0) = (clipped.x1.floor() as usize, clipped.y1.floor() as usize);
        let bw = (clipped.x2.ceil() as usize).min(cam.width as usize) - x0;
        let bh = (clipped.y2.ceil() as usize).min(cam.height as usize) - y0;
        let mut mask = vec![false; bw * bh];
        for (_, face) in faces.iter().filter(|(_, f)| f.faces_camera()) {
            for_each_covered_pixel(cam, &face.corners(), |x, y| {
                if (x0..x0 + bw).contains(&x) && (y0..y0 + bh).contains(&y) {
                    mask[(y - y0) * bw + (x - x0)] = true;
                }
            });
        }
        let alone = mask.iter().filter(|&&m| m).count() as u32;
        if alone == 0 {
            continue;
        }
        let mut visible = 0u32;
        for y in y0..y0 + bh {
            for x in x0..x0 + bw {
                visible += (canvas.id[y * canvas.width + x] == id) as u32;
            }
        }
        let hidden = 1.0 - visible as f32 / alone as f32;
        let body = &agent.body;
        objects.push(ObjectLabel {
            track_id: agent.track_id,
            class: ObjectClass::Car,
            box2d: clipped,
            box3d: Box3d {
                dimensions: [body.height, body.width, body.length],
                location: pose.position,
                rotation_y: pose.rotation_y(),
            },
            truncation,
            occluded_fraction: hidden.clamp(0.0, 1.0),
            occlusion: Occlusion::from_fraction(hidden, visible > 0),
            visible_pixels: visible,
        });
    }
    FrameLabels { frame, time_s, width: cam.width, height: cam.height, objects }
}
