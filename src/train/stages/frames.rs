//! Worlds as training samples: frames, clips and their labels, keyed by seed.

use std::sync::{Mutex, TryLockError};

use burn::tensor::{Tensor, backend::Backend};
use image::RgbImage;

use std::path::{Path, PathBuf};

use crate::data::{DatasetIndex, EVAL_SEED_BASE, IndexEntry, image_to_tensor, images_to_tensor, random_conditions};
use crate::pipeline::ego::EgoMotion;
use crate::scenario::Conditions;
use crate::train::TrainError;
use crate::world::{FrameLabels, Renderer, World, mix};

/// The ego car's motion at one frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EgoState {
    /// Forward speed, m/s.
    pub speed_mps: f32,
    /// Lateral offset from the road's reference line, m (a lane change moves it by a lane width).
    pub offset_m: f32,
}

/// Frames and clips for training, a pure function of (run seed, step, index): rendered
/// by the procedural world, or read from an on-disk dataset (`synth` output).
pub struct FrameSource {
    /// Reused render buffers (data-parallel replicas share the source, see `with_renderer`).
    renderer: Mutex<Renderer>,
    seed: u64,
    size: (usize, usize),
    dataset: Option<Dataset>,
}

/// An on-disk dataset: every tenth clip (and at least one) is held out.
struct Dataset {
    dir: PathBuf,
    index: DatasetIndex,
    train: Vec<usize>,
    held_out: Vec<usize>,
}

impl FrameSource {
    pub fn new(height: usize, width: usize, seed: u64) -> Self {
        FrameSource {
            renderer: Mutex::new(Renderer::new(width as u32, height as u32)),
            seed,
            size: (height, width),
            dataset: None,
        }
    }

    /// Reads frames from the dataset in `dir` (written by `synth`) instead of rendering
    /// them. Its frames must be at least `height × width` with the same aspect ratio
    /// (larger ones are scaled down), and every `(frames, fps)` clip in `clips` must be
    /// cut from its clips by whole-frame strides.
    pub fn with_dataset(mut self, dir: &Path, clips: &[(usize, f32)]) -> Result<Self, TrainError> {
        let index = DatasetIndex::read(dir).map_err(|e| TrainError::Data(e.to_string()))?;
        let bad = |why: String| Err(TrainError::Data(format!("{}: {why}", dir.display())));
        let (h, w) = self.size;
        let (dw, dh) = (index.width as usize, index.height as usize);
        if dw < w || dh < h || dw * h != dh * w {
            return bad(format!("frames are {dw}×{dh}; this stage needs {w}×{h} or a larger multiple of it"));
        }
        if index.clips.len() < 2 {
            return bad("needs at least 2 clips (one is held out)".into());
        }
        for &(frames, fps) in clips {
            if frames > 1 && clip_stride(&index, frames, fps).is_none() {
                return bad(format!(
                    "this stage needs clips of {frames} frames at {fps} Hz; the dataset has {} frames at {} Hz \
                     per clip (its rate must be a whole multiple of {fps} Hz with enough frames)",
                    index.frames_per_clip, index.fps
                ));
            }
        }
        let (held_out, train) = (0..index.clips.len()).partition(|k| k % 10 == 9 || *k == index.clips.len() - 1);
        self.dataset = Some(Dataset { dir: dir.to_path_buf(), index, train, held_out });
        Ok(self)
    }

    /// The dataset clip and frame that stand for world `seed` (held-out clips for
    /// seeds from the evaluation range).
    fn dataset_pick(d: &Dataset, seed: u64) -> &IndexEntry {
        let k = if seed >= EVAL_SEED_BASE {
            d.held_out[((seed - EVAL_SEED_BASE) % d.held_out.len() as u64) as usize]
        } else {
            d.train[(mix(seed) % d.train.len() as u64) as usize]
        };
        &d.index.clips[k]
    }

    /// Frame `i` of a dataset clip at this source's size.
    fn dataset_image(&self, d: &Dataset, entry: &IndexEntry, i: usize) -> RgbImage {
        let (h, w) = self.size;
        let path = &d.index.frame_paths(&d.dir, entry)[i];
        // Files were checked when the dataset was written; a frame that vanished since is
        // replaced by a blank one rather than stopping a long run.
        let img = match image::open(path) {
            Ok(img) => img.into_rgb8(),
            Err(e) => {
                tracing::warn!(path = %path.display(), "unreadable dataset frame ({e}); using a blank frame");
                RgbImage::new(w as u32, h as u32)
            }
        };
        if img.dimensions() == (w as u32, h as u32) {
            img
        } else {
            image::imageops::resize(&img, w as u32, h as u32, image::imageops::FilterType::Triangle)
        }
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
    pub fn frame<B: Backend>(&self, seed: u64, device: &B::Device) -> Tensor<B, 3> {
        self.labelled_frame(seed, device).0
    }

    /// The frames of worlds `seeds` as [`FrameSource::frame`] draws them, `[n, 3, h, w]`
    /// (see [`FrameSource::labelled_frames`]).
    pub fn frames<B: Backend>(&self, seeds: &[u64], device: &B::Device) -> Tensor<B, 4> {
        self.labelled_frames(seeds, device).0
    }

    /// The same frame with its conditions and the normalised boxes of its visible cars
    /// (largest first), as the image LDM is conditioned on them.
    pub fn labelled_frame<B: Backend>(
        &self,
        seed: u64,
        device: &B::Device,
    ) -> (Tensor<B, 3>, Conditions, Vec<[f32; 4]>) {
        let (img, conditions, boxes) = self.labelled_image(seed);
        (image_to_tensor(&img, device), conditions, boxes)
    }

    /// [`FrameSource::labelled_frame`] of each of `seeds`, the frames stacked `[n, 3, h, w]`.
    /// They are drawn on up to one thread per core (each is a pure function of its seed, so
    /// the result does not depend on the threads) and reach the device in one upload.
    pub fn labelled_frames<B: Backend>(
        &self,
        seeds: &[u64],
        device: &B::Device,
    ) -> (Tensor<B, 4>, Vec<Conditions>, Vec<Vec<[f32; 4]>>) {
        let drawn = parallel_map(seeds, |&s| self.labelled_image(s));
        let frames = images_to_tensor(drawn.iter().map(|d| &d.0), device);
        let (conditions, boxes) = drawn.into_iter().map(|(_, c, b)| (c, b)).unzip();
        (frames, conditions, boxes)
    }

    fn labelled_image(&self, seed: u64) -> (RgbImage, Conditions, Vec<[f32; 4]>) {
        if let Some(d) = &self.dataset {
            let entry = Self::dataset_pick(d, seed);
            let i = (mix(seed ^ 0x7133) % d.index.frames_per_clip as u64) as usize;
            // Only single frames need the labels; clips (below) read none.
            let boxes = DatasetIndex::labels(&d.dir, entry).ok().and_then(|l| l.get(i).map(visible_boxes));
            return (self.dataset_image(d, entry, i), entry.conditions(), boxes.unwrap_or_default());
        }
        // A single frame is the first frame of the seed's clip.
        let (mut world, start) = clip_world(seed);
        world.advance_to(start);
        let (img, labels) = self.with_renderer(|r| r.render(&world, 0));
        (img, world.conditions, visible_boxes(&labels))
    }

    /// `frames` consecutive frames of world `seed` at `fps`, after the seed's warm-up,
    /// as `[t, 3, h, w]`, with the world's conditions.
    pub fn clip<B: Backend>(
        &self,
        seed: u64,
        frames: usize,
        fps: f32,
        device: &B::Device,
    ) -> (Tensor<B, 4>, Conditions) {
        let (images, conditions) = self.clip_images(seed, frames, fps);
        (images_to_tensor(&images, device), conditions)
    }

    /// The clips `(seed, frames, fps)` as [`FrameSource::clip`] cuts them, one after another
    /// along the first axis (`[Σ frames, 3, h, w]`), with each clip's conditions. Drawn on up
    /// to one thread per core (each clip is a pure function of its seed, so the result does
    /// not depend on the threads) and uploaded to the device at once.
    pub fn clips<B: Backend>(
        &self,
        requests: &[(u64, usize, f32)],
        device: &B::Device,
    ) -> (Tensor<B, 4>, Vec<Conditions>) {
        let drawn = parallel_map(requests, |&(seed, frames, fps)| self.clip_images(seed, frames, fps));
        let clips = images_to_tensor(drawn.iter().flat_map(|d| &d.0), device);
        (clips, drawn.into_iter().map(|d| d.1).collect())
    }

    fn clip_images(&self, seed: u64, frames: usize, fps: f32) -> (Vec<RgbImage>, Conditions) {
        if let Some(d) = &self.dataset {
            let entry = Self::dataset_pick(d, seed);
            // `with_dataset` checked that the stride exists.
            let stride = clip_stride(&d.index, frames, fps).unwrap_or(1);
            let span = (frames - 1) * stride;
            let start = (mix(seed ^ 0x7133) % (d.index.frames_per_clip - span) as u64) as usize;
            let clip = (0..frames).map(|k| self.dataset_image(d, entry, start + k * stride)).collect();
            return (clip, entry.conditions());
        }
        let (clip, conditions, _) = self.rendered_clip_images(seed, frames, fps);
        (clip, conditions)
    }

    /// A rendered clip as [`FrameSource::clip`] cuts it, with the ego's motion at each
    /// frame: what the clip encoder learns to read off the pixels. Always rendered (an
    /// on-disk dataset records no ego motion).
    pub fn rendered_clip<B: Backend>(
        &self,
        seed: u64,
        frames: usize,
        fps: f32,
        device: &B::Device,
    ) -> (Tensor<B, 4>, Conditions, Vec<EgoState>) {
        let (clip, conditions, ego) = self.rendered_clip_images(seed, frames, fps);
        (images_to_tensor(&clip, device), conditions, ego)
    }

    fn rendered_clip_images(&self, seed: u64, frames: usize, fps: f32) -> (Vec<RgbImage>, Conditions, Vec<EgoState>) {
        let (mut world, start) = clip_world(seed);
        let conditions = world.conditions;
        let (clip, ego) = self.with_renderer(|renderer| {
            (0..frames)
                .map(|i| {
                    world.advance_to(start + i as f32 / fps);
                    let ego = EgoState { speed_mps: world.traffic.ego.v, offset_m: world.traffic.ego.d };
                    (renderer.render(&world, i as u32).0, ego)
                })
                .unzip()
        });
        (clip, conditions, ego)
    }

    /// The ego's motion at the first frame of world `seed`'s rendered clip at `fps` (what
    /// generation's prediction guide moves a frame by; see [`crate::pipeline::ego`]), holding
    /// in place the boxes of the cars visible in the clip's frame `held_frame`, as generation
    /// holds the requested cars. `None` for an on-disk dataset, which records no ego motion.
    pub fn clip_ego_motion(&self, seed: u64, fps: f32, held_frame: usize) -> Option<EgoMotion> {
        if self.dataset.is_some() {
            return None;
        }
        let (mut world, start) = clip_world(seed);
        world.advance_to(start);
        let mut ego = EgoMotion::from_world(&world, vec![]);
        world.advance_to(start + held_frame as f32 / fps);
        ego.held = self.with_renderer(|r| visible_boxes(&r.render(&world, held_frame as u32).1));
        Some(ego)
    }

    /// Runs `f` with the shared renderer, or with a fresh one while another thread holds it
    /// (renders do not depend on the buffers' history, so both give the same pixels).
    fn with_renderer<R>(&self, f: impl FnOnce(&mut Renderer) -> R) -> R {
        match self.renderer.try_lock() {
            Ok(mut renderer) => f(&mut renderer),
            Err(TryLockError::Poisoned(poisoned)) => f(&mut poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => {
                let (h, w) = self.size;
                f(&mut Renderer::new(w as u32, h as u32))
            }
        }
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
    pub fn batch<B: Backend>(&self, step: u64, n: usize, device: &B::Device) -> Tensor<B, 4> {
        self.frames(&self.train_seeds(step, n), device)
    }

    /// The fixed held-out batch `[n, 3, h, w]` (seeds from the evaluation range).
    pub fn held_out<B: Backend>(&self, n: usize, device: &B::Device) -> Tensor<B, 4> {
        self.frames(&Self::held_out_seeds(n), device)
    }
}

/// `f` over `items` on up to one scoped thread per core, the results in order.
fn parallel_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(items.len());
    if threads <= 1 {
        return items.iter().map(f).collect();
    }
    let f = &f;
    std::thread::scope(|scope| {
        let parts: Vec<_> = items
            .chunks(items.len().div_ceil(threads))
            .map(|part| scope.spawn(move || part.iter().map(f).collect::<Vec<R>>()))
            .collect();
        parts.into_iter().flat_map(|p| p.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
    })
}

/// Frames to skip between clip frames for `frames` frames at `fps` from a dataset:
/// its rate over `fps`, if whole and the clip fits.
fn clip_stride(index: &DatasetIndex, frames: usize, fps: f32) -> Option<usize> {
    let ratio = index.fps / fps;
    let stride = ratio.round();
    let ok = stride >= 1.0 && (ratio - stride).abs() < 1e-3;
    ok.then_some(stride as usize).filter(|s| frames == 0 || (frames - 1) * s < index.frames_per_clip)
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

/// Outlines the box `b` (`[x1, y1, x2, y2]`, pixels of a picture placed at `origin` in
/// `img`) in red, clamped to `img`.
pub fn outline_box(img: &mut image::RgbImage, origin: (u32, u32), b: [f32; 4]) {
    let (w, h) = img.dimensions();
    let px = |v: f32, o: u32, n: u32| ((o as f32 + v.max(0.0)) as u32).min(n.saturating_sub(1));
    let (x1, x2) = (px(b[0], origin.0, w), px(b[2], origin.0, w));
    let (y1, y2) = (px(b[1], origin.1, h), px(b[3], origin.1, h));
    let red = image::Rgb([255, 40, 40]);
    for x in x1..=x2 {
        img.put_pixel(x, y1, red);
        img.put_pixel(x, y2, red);
    }
    for y in y1..=y2 {
        img.put_pixel(x1, y, red);
        img.put_pixel(x2, y, red);
    }
}

/// World `seed` of a rendered clip, unadvanced, and the time of the clip's first frame
/// (a seeded 0–6 s warm-up).
fn clip_world(seed: u64) -> (World, f32) {
    let world = World::new(seed, random_conditions(seed), &[]).expect("box-free worlds always build");
    (world, (mix(seed ^ 0x7133) % 240) as f32 / 40.0)
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
