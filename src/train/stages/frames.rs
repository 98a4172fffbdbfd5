//! Worlds as training samples: frames, clips and their labels, keyed by seed.

use std::cell::RefCell;

use burn::tensor::Tensor;

use crate::data::{EVAL_SEED_BASE, image_to_tensor, random_conditions};
use crate::scenario::Conditions;
use crate::world::{FrameLabels, Renderer, World, mix};

/// Single frames from the procedural world, a pure function of (run seed, step, index).
pub struct FrameSource {
    renderer: RefCell<Renderer>,
    seed: u64,
}

impl FrameSource {
    pub fn new(height: usize, width: usize, seed: u64) -> Self {
        FrameSource { renderer: RefCell::new(Renderer::new(width as u32, height as u32)), seed }
    }

    /// The run seed the training worlds are drawn from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The world seed of sample `i` of `step` (always below the evaluation range).
    pub fn train_seed(&self, step: u64, i: usize) -> u64 {
        mix(self.seed ^ mix(step.wrapping_mul(0x1_0000) + i as u64)) % EVAL_SEED_BASE
    }

    /// A frame of world `seed` at a time drawn from the seed (0..6 s), as `[3, h, w]` in [-1, 1].
    pub fn frame<B: burn::tensor::backend::Backend>(&self, seed: u64, device: &B::Device) -> Tensor<B, 3> {
        self.labelled_frame(seed, device).0
    }

    /// The same frame with its conditions and the normalised boxes of its visible cars
    /// (largest first), as the image LDM is conditioned on them.
    pub fn labelled_frame<B: burn::tensor::backend::Backend>(
        &self,
        seed: u64,
        device: &B::Device,
    ) -> (Tensor<B, 3>, Conditions, Vec<[f32; 4]>) {
        let conditions = random_conditions(seed);
        // A world without requested boxes always builds.
        let mut world = World::new(seed, conditions, &[]).expect("box-free worlds always build");
        world.advance_to((mix(seed ^ 0x7133) % 240) as f32 / 40.0);
        let (img, labels) = self.renderer.borrow_mut().render(&world, 0);
        (image_to_tensor(&img, device), conditions, visible_boxes(&labels))
    }

    /// `frames` consecutive frames of world `seed` at `fps`, after the seed's warm-up,
    /// as `[t, 3, h, w]`, with the world's conditions.
    pub fn clip<B: burn::tensor::backend::Backend>(
        &self,
        seed: u64,
        frames: usize,
        fps: f32,
        device: &B::Device,
    ) -> (Tensor<B, 4>, Conditions) {
        let conditions = random_conditions(seed);
        let mut world = World::new(seed, conditions, &[]).expect("box-free worlds always build");
        let start = (mix(seed ^ 0x7133) % 240) as f32 / 40.0;
        let mut renderer = self.renderer.borrow_mut();
        let clip = (0..frames)
            .map(|i| {
                world.advance_to(start + i as f32 / fps);
                image_to_tensor(&renderer.render(&world, i as u32).0, device)
            })
            .collect();
        (Tensor::stack(clip, 0), conditions)
    }

    /// World seeds of the `n` samples of `step`.
    pub fn train_seeds(&self, step: u64, n: usize) -> Vec<u64> {
        (0..n).map(|i| self.train_seed(step, i)).collect()
    }

    /// The fixed held-out world seeds (the first `n` of the evaluation range).
    pub fn held_out_seeds(n: usize) -> Vec<u64> {
        (0..n as u64).map(|i| EVAL_SEED_BASE + i).collect()
    }

    /// Training batch `[n, 3, h, w]` of `step`.
    pub fn batch<B: burn::tensor::backend::Backend>(&self, step: u64, n: usize, device: &B::Device) -> Tensor<B, 4> {
        Tensor::stack(self.train_seeds(step, n).into_iter().map(|s| self.frame(s, device)).collect(), 0)
    }

    /// The fixed held-out batch `[n, 3, h, w]` (seeds from the evaluation range).
    pub fn held_out<B: burn::tensor::backend::Backend>(&self, n: usize, device: &B::Device) -> Tensor<B, 4> {
        Tensor::stack(Self::held_out_seeds(n).into_iter().map(|s| self.frame(s, device)).collect(), 0)
    }
}

/// Normalised `[x1, y1, x2, y2]` of the visible cars of a frame, largest first.
pub fn visible_boxes(labels: &FrameLabels) -> Vec<[f32; 4]> {
    let (w, h) = (labels.width as f32, labels.height as f32);
    let mut boxes: Vec<(f32, [f32; 4])> = labels
        .objects
        .iter()
        .filter(|o| o.visible_pixels > 0)
        .map(|o| (o.box2d.area(), [o.box2d.x1 / w, o.box2d.y1 / h, o.box2d.x2 / w, o.box2d.y2 / h]))
        .collect();
    boxes.sort_by(|a, b| b.0.total_cmp(&a.0));
    boxes.into_iter().map(|(_, b)| b).collect()
}

/// Rows of frames `[n, 3, h, w]` in [-1, 1] as one picture, 2 px gaps.
pub fn tensor_grid<B: burn::tensor::backend::Backend>(rows: &[Tensor<B, 4>]) -> image::RgbImage {
    let [n, _, h, w] = rows[0].dims();
    let gap = 2;
    let mut img =
        image::RgbImage::from_pixel((n * (w + gap)) as u32, (rows.len() * (h + gap)) as u32, image::Rgb([255; 3]));
    for (r, t) in rows.iter().enumerate() {
        let data = t.clone().clamp(-1.0, 1.0).into_data().convert::<f32>().to_vec::<f32>().unwrap_or_default();
        for k in 0..n {
            for y in 0..h {
                for x in 0..w {
                    let px = |c: usize| ((data[((k * 3 + c) * h + y) * w + x] + 1.0) * 127.5).round() as u8;
                    img.put_pixel(
                        (k * (w + gap) + x) as u32,
                        (r * (h + gap) + y) as u32,
                        image::Rgb([px(0), px(1), px(2)]),
                    );
                }
            }
        }
    }
    img
}
