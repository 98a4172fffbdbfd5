//! The stages' tasks: which model, which batches, which loss.

use std::cell::RefCell;

use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::TrainError;
use super::fit::{Batch, Task};
use crate::data::{EVAL_SEED_BASE, image_to_tensor, random_conditions};
use crate::diffusion::noise::gaussian;
use crate::model::{Autoencoder, AutoencoderConfig};
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

/// Stage 1: the KL autoencoder on single frames. Loss: L1 + edge (image-gradient
/// L1, standing in for LPIPS, which has no offline weights) + a small KL.
pub struct AutoencoderTask {
    pub config: AutoencoderConfig,
    pub frames: FrameSource,
    pub batch: usize,
    pub kl_weight: f64,
    pub edge_weight: f64,
}

impl AutoencoderTask {
    pub fn new(config: AutoencoderConfig, frame_size: (usize, usize), batch: usize, seed: u64) -> Self {
        AutoencoderTask {
            config,
            frames: FrameSource::new(frame_size.0, frame_size.1, seed),
            batch,
            // LDM's KL-f8 uses 1e-6: the latent stays close to deterministic.
            kl_weight: 1e-6,
            edge_weight: 0.5,
        }
    }

    fn reconstruction_loss<B: burn::tensor::backend::Backend>(
        &self,
        rec: Tensor<B, 4>,
        x: Tensor<B, 4>,
    ) -> Tensor<B, 1> {
        let l1 = (rec.clone() - x.clone()).abs().mean();
        let [n, c, h, w] = x.dims();
        let dx = |t: Tensor<B, 4>| t.clone().slice([0..n, 0..c, 0..h, 1..w]) - t.slice([0..n, 0..c, 0..h, 0..w - 1]);
        let dy = |t: Tensor<B, 4>| t.clone().slice([0..n, 0..c, 1..h, 0..w]) - t.slice([0..n, 0..c, 0..h - 1, 0..w]);
        let edge = (dx(rec.clone()) - dx(x.clone())).abs().mean() + (dy(rec) - dy(x)).abs().mean();
        l1 + edge * self.edge_weight
    }
}

impl<B: AutodiffBackend> Task<B> for AutoencoderTask {
    type Model = Autoencoder<B>;

    fn init(&self, device: &B::Device) -> Result<Self::Model, TrainError> {
        Ok(self.config.init(device))
    }

    fn frames(&self) -> &FrameSource {
        &self.frames
    }

    fn batch_size(&self) -> usize {
        self.batch
    }

    fn batch_loss(
        &self,
        model: &Self::Model,
        seeds: &[u64],
        draw_seed: u64,
        batch: Batch,
        device: &B::Device,
    ) -> Tensor<B, 1> {
        let x = Tensor::stack(seeds.iter().map(|&s| self.frames.frame::<B>(s, device)).collect(), 0);
        let (mean, logvar) = model.encoder.forward(x.clone());
        match batch {
            Batch::Train { .. } => {
                let mut rng = ChaCha8Rng::seed_from_u64(draw_seed);
                let noise = gaussian::<B, 4, _>(mean.dims(), &mut rng, device);
                let z = Autoencoder::sample(mean.clone(), logvar.clone(), noise);
                let rec = model.decoder.forward(z, 1);
                self.reconstruction_loss(rec, x) + Autoencoder::kl(mean, logvar) * self.kl_weight
            }
            // Held out: the posterior mean, plain L1 (the number the model card quotes).
            Batch::HeldOut => (model.decoder.forward(mean, 1) - x).abs().mean(),
        }
    }

    /// Held-out frames (top row) over their reconstructions (bottom row).
    fn sample_grid(&self, model: &Self::Model, device: &B::Device) -> Option<image::RgbImage> {
        let x = self.frames.held_out::<B>(4, device);
        let (mean, _) = model.encoder.forward(x.clone());
        let rec = model.decoder.forward(mean, 1);
        Some(tensor_grid(&[x.inner(), rec.inner()]))
    }
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

/// Encodes frames `[n, 3, H, W]` with a frozen autoencoder into scaled latents
/// `[n, z, h, w]` (the posterior mean × `latent_scale`), outside the autograd graph.
pub fn encode_frozen<B: AutodiffBackend>(
    ae: &Autoencoder<B::InnerBackend>,
    frames: Tensor<B::InnerBackend, 4>,
    latent_scale: f32,
) -> Tensor<B, 4> {
    let (mean, _) = ae.encoder.forward(frames);
    Tensor::from_inner(mean * latent_scale)
}

/// Stage 2: the box- and label-conditioned image LDM on frozen latents.
/// Labels and boxes are each dropped with probability `drop_p` (classifier-free guidance).
pub struct ImageLdmTask<IB: burn::tensor::backend::Backend> {
    pub config: crate::model::UNetConfig,
    pub autoencoder: Autoencoder<IB>,
    pub latent_scale: f32,
    pub schedule: crate::diffusion::NoiseSchedule,
    pub frames: FrameSource,
    pub batch: usize,
    pub drop_p: f64,
}

/// Condition dropout and noise of one diffusion batch, drawn from the step's seed.
struct DiffusionDraws<B: burn::tensor::backend::Backend> {
    noise: Tensor<B, 4>,
    timesteps: Vec<usize>,
    keep_labels: Vec<bool>,
    keep_boxes: Vec<bool>,
}

fn draws<B: burn::tensor::backend::Backend>(
    seed: u64,
    n: usize,
    shape: [usize; 4],
    drop_p: f64,
    train_steps: usize,
    device: &B::Device,
) -> DiffusionDraws<B> {
    use rand::RngExt;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let noise = gaussian::<B, 4, _>(shape, &mut rng, device);
    let timesteps = crate::diffusion::noise::sample_timesteps(&mut rng, n, train_steps);
    let keep_labels = (0..n).map(|_| !rng.random_bool(drop_p)).collect();
    let keep_boxes = (0..n).map(|_| !rng.random_bool(drop_p)).collect();
    DiffusionDraws { noise, timesteps, keep_labels, keep_boxes }
}

impl<IB: burn::tensor::backend::Backend> ImageLdmTask<IB> {
    fn diffusion_loss<B: AutodiffBackend<InnerBackend = IB>>(
        &self,
        model: &crate::model::UNet<B>,
        seeds: &[u64],
        draw_seed: u64,
        drop_p: f64,
        device: &B::Device,
    ) -> Tensor<B, 1> {
        let inner = |t: Tensor<B, 3>| t.inner();
        let mut frames = Vec::new();
        let (mut conds, mut boxes) = (Vec::new(), Vec::new());
        for &s in seeds {
            let (f, c, b) = self.frames.labelled_frame::<B>(s, device);
            frames.push(inner(f));
            conds.push(c);
            boxes.push(b);
        }
        let z0 = encode_frozen::<B>(&self.autoencoder, Tensor::stack(frames, 0), self.latent_scale);
        let [n, c, h, w] = z0.dims();
        let d = draws::<B>(draw_seed, n, [n, c, h, w], drop_p, self.schedule.train_steps(), device);
        let x_t = self.schedule.add_noise(z0, d.noise.clone(), &d.timesteps);
        let mut input = crate::model::UNetInput::new(
            x_t,
            Tensor::from_floats(d.timesteps.iter().map(|&t| t as f32).collect::<Vec<_>>().as_slice(), device),
            1,
        );
        input.labels = Some(crate::model::Labels::new(
            &conds.iter().zip(&d.keep_labels).map(|(c, k)| k.then_some(*c)).collect::<Vec<_>>(),
            device,
        ));
        let slots = self.config.boxes.as_ref().map_or(0, |b| b.slots);
        input.boxes = Some(crate::model::Boxes::new(
            &boxes.into_iter().zip(&d.keep_boxes).map(|(b, k)| k.then_some(b)).collect::<Vec<_>>(),
            slots,
            h,
            w,
            device,
        ));
        crate::diffusion::mse(model.forward(input), d.noise)
    }
}

impl<B: AutodiffBackend> Task<B> for ImageLdmTask<B::InnerBackend> {
    type Model = crate::model::UNet<B>;

    fn init(&self, device: &B::Device) -> Result<Self::Model, TrainError> {
        Ok(self.config.init(device))
    }

    fn frames(&self) -> &FrameSource {
        &self.frames
    }

    fn batch_size(&self) -> usize {
        self.batch
    }

    fn batch_loss(
        &self,
        model: &Self::Model,
        seeds: &[u64],
        draw_seed: u64,
        batch: Batch,
        device: &B::Device,
    ) -> Tensor<B, 1> {
        let drop_p = if matches!(batch, Batch::Train { .. }) { self.drop_p } else { 0.0 };
        self.diffusion_loss(model, seeds, draw_seed, drop_p, device)
    }
}

/// Which video model a [`VideoLdmTask`] trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoTask {
    /// Stage 4, prediction: clips of `T` key frames (2.5 Hz); each clip gets S ∈ {0, 1, 2}
    /// context frames at its start (S = 0 trains the unconditional branch of context guidance).
    Prediction,
    /// Stage 5, interpolation ×4: clips of `T + 1` frames at 10 Hz (fps flag 0, from 2.5 Hz
    /// key frames) or 40 Hz (flag 1, from 10 Hz); every 4th frame is known.
    Interpolation,
}

/// Stages 4 and 5: the image LDM's spatial weights, frozen, with new temporal layers;
/// labels are dropped with probability `drop_p`.
pub struct VideoLdmTask<IB: burn::tensor::backend::Backend> {
    pub kind: VideoTask,
    pub config: crate::model::UNetConfig,
    /// Spatial weights of the trained image LDM.
    pub image_weights: std::path::PathBuf,
    pub autoencoder: Autoencoder<IB>,
    pub latent_scale: f32,
    pub schedule: crate::diffusion::NoiseSchedule,
    pub frames: FrameSource,
    pub window: usize,
    pub fps: f32,
    pub clips: usize,
    pub drop_p: f64,
}

impl<IB: burn::tensor::backend::Backend> VideoLdmTask<IB> {
    fn clip_loss<B: AutodiffBackend<InnerBackend = IB>>(
        &self,
        model: &crate::model::UNet<B>,
        seeds: &[u64],
        draw_seed: u64,
        drop_p: f64,
        device: &B::Device,
    ) -> Tensor<B, 1> {
        use rand::RngExt;
        let mut rng = ChaCha8Rng::seed_from_u64(draw_seed);
        let clips = seeds.len();
        let (t, fps_stage): (usize, Vec<i64>) = match self.kind {
            VideoTask::Prediction => (self.window, vec![]),
            VideoTask::Interpolation => (self.window + 1, (0..clips).map(|_| rng.random_range(0..=1i64)).collect()),
        };
        let (mut frames, mut conds) = (Vec::new(), Vec::new());
        for (k, &s) in seeds.iter().enumerate() {
            let fps = match self.kind {
                VideoTask::Prediction => self.fps,
                // Stage 0 fills 2.5 Hz key frames up to 10 Hz, stage 1 10 Hz up to 40 Hz.
                VideoTask::Interpolation => self.fps * if fps_stage[k] == 0 { 4.0 } else { 16.0 },
            };
            let (clip, c) = self.frames.clip::<B>(s, t, fps, device);
            frames.push(clip.inner());
            conds.push(c);
        }
        let z0 = encode_frozen::<B>(&self.autoencoder, Tensor::cat(frames, 0), self.latent_scale);
        let [n, c, h, w] = z0.dims();
        let noise = gaussian::<B, 4, _>([n, c, h, w], &mut rng, device);
        // One timestep per clip, shared by its frames.
        let per_clip = crate::diffusion::noise::sample_timesteps(&mut rng, clips, self.schedule.train_steps());
        let timesteps: Vec<usize> = per_clip.iter().flat_map(|&s| std::iter::repeat_n(s, t)).collect();
        let context_frames: Vec<usize> = (0..clips).map(|_| rng.random_range(0..=2usize)).collect();
        let keep: Vec<bool> = (0..clips).map(|_| !rng.random_bool(drop_p)).collect();
        let known = |i: usize| match self.kind {
            VideoTask::Prediction => i % t < context_frames[i / t],
            VideoTask::Interpolation => (i % t).is_multiple_of(4),
        };
        let mask: Vec<f32> = (0..n).map(|i| if known(i) { 1.0 } else { 0.0 }).collect();
        let m = Tensor::<B, 1>::from_floats(mask.as_slice(), device)
            .reshape([n, 1, 1, 1])
            .repeat_dim(2, h)
            .repeat_dim(3, w);
        let context = Tensor::cat(vec![z0.clone() * m.clone().repeat_dim(1, c), m], 1);
        let x_t = self.schedule.add_noise(z0, noise.clone(), &timesteps);
        let steps: Vec<f32> = timesteps.iter().map(|&s| s as f32).collect();
        let mut input = crate::model::UNetInput::new(x_t, Tensor::from_floats(steps.as_slice(), device), t);
        let labels: Vec<Option<Conditions>> = (0..n).map(|i| keep[i / t].then_some(conds[i / t])).collect();
        input.labels = Some(crate::model::Labels::new(&labels, device));
        input.context = Some(context);
        if self.kind == VideoTask::Interpolation {
            let stages: Vec<i64> = (0..n).map(|i| fps_stage[i / t]).collect();
            input.fps_stage = Some(Tensor::from_data(burn::tensor::TensorData::new(stages, [n]), device));
        }
        crate::diffusion::mse(model.forward(input), noise)
    }
}

impl<B: AutodiffBackend> Task<B> for VideoLdmTask<B::InnerBackend> {
    type Model = crate::model::UNet<B>;

    fn init(&self, device: &B::Device) -> Result<Self::Model, TrainError> {
        let model = crate::weights::load_parts(
            self.config.init(device),
            &self.image_weights,
            None,
            crate::weights::TemporalInit::Keep,
        )?;
        Ok(model.freeze_spatial())
    }

    fn frames(&self) -> &FrameSource {
        &self.frames
    }

    fn batch_size(&self) -> usize {
        self.clips
    }

    fn batch_loss(
        &self,
        model: &Self::Model,
        seeds: &[u64],
        draw_seed: u64,
        batch: Batch,
        device: &B::Device,
    ) -> Tensor<B, 1> {
        let drop_p = if matches!(batch, Batch::Train { .. }) { self.drop_p } else { 0.0 };
        self.clip_loss(model, seeds, draw_seed, drop_p, device)
    }
}

/// Which half of the upsampler's training a [`UpsamplerTask`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpsamplerPhase {
    /// Spatial layers on single-frame patches (the model has no temporal layers).
    Image,
    /// Temporal layers on clips of patches, spatial layers frozen (video fine-tuning).
    Video,
}

/// Stage 6: the pixel-space 4× upsampler, trained on patches: a random crop of a
/// high-resolution render is the target; its 4×4 area average is the low-resolution
/// input, bilinearly upsampled and noise-augmented at a random level below
/// `max_level` with its own linear schedule (SD x4-upscaler recipe).
pub struct UpsamplerTask {
    pub phase: UpsamplerPhase,
    pub config: crate::model::UpsamplerConfig,
    /// Spatial weights of the image phase (video phase only).
    pub image_weights: Option<std::path::PathBuf>,
    pub schedule: crate::diffusion::NoiseSchedule,
    pub augmentation: crate::diffusion::NoiseSchedule,
    pub max_level: usize,
    /// High-resolution frames to crop from.
    pub frames: FrameSource,
    pub patch: (usize, usize),
    pub frame_size: (usize, usize),
    /// Frames per clip in the video phase.
    pub window: usize,
    pub batch: usize,
}

impl UpsamplerTask {
    fn patch_loss<B: AutodiffBackend>(
        &self,
        model: &crate::model::Upsampler<B>,
        seeds: &[u64],
        draw_seed: u64,
        device: &B::Device,
    ) -> Tensor<B, 1> {
        use rand::RngExt;
        let mut rng = ChaCha8Rng::seed_from_u64(draw_seed);
        let t = if self.phase == UpsamplerPhase::Video { self.window } else { 1 };
        let (ph, pw) = self.patch;
        let (fh, fw) = self.frame_size;
        // Crops on the space-to-depth × downsampling grid keep patches aligned with whole frames.
        let grid = 4 * self.config.unshuffle * (1 << (self.config.unet.channel_mult.len() - 1));
        let mut patches = Vec::new();
        for &s in seeds {
            let (y0, x0) =
                (grid * rng.random_range(0..=(fh - ph) / grid), grid * rng.random_range(0..=(fw - pw) / grid));
            let (clip, _) = self.frames.clip::<B>(s, t, crate::train::KEYFRAME_FPS * 4.0, device);
            patches.push(clip.slice([0..t, 0..3, y0..y0 + ph, x0..x0 + pw]));
        }
        let x0 = Tensor::cat(patches, 0);
        let low = burn::tensor::module::avg_pool2d(x0.clone(), [4, 4], [4, 4], [0, 0], true, false);
        let cond = model.upsample_condition(low);
        // One augmentation level and one timestep per clip.
        let clips = seeds.len();
        let levels: Vec<usize> =
            (0..clips).map(|_| rng.random_range(0..self.max_level)).flat_map(|l| std::iter::repeat_n(l, t)).collect();
        let steps: Vec<usize> = crate::diffusion::noise::sample_timesteps(&mut rng, clips, self.schedule.train_steps())
            .into_iter()
            .flat_map(|s| std::iter::repeat_n(s, t))
            .collect();
        let cond_noise = gaussian::<B, 4, _>(cond.dims(), &mut rng, device);
        let cond = self.augmentation.add_noise(cond, cond_noise, &levels);
        let noise = gaussian::<B, 4, _>(x0.dims(), &mut rng, device);
        let x_t = self.schedule.add_noise(x0, noise.clone(), &steps);
        let as_floats = |v: &[usize]| {
            Tensor::<B, 1>::from_floats(v.iter().map(|&x| x as f32).collect::<Vec<_>>().as_slice(), device)
        };
        let pred = model.forward(x_t, as_floats(&steps), cond, as_floats(&levels), t);
        crate::diffusion::mse(pred, noise)
    }
}

impl<B: AutodiffBackend> Task<B> for UpsamplerTask {
    type Model = crate::model::Upsampler<B>;

    fn init(&self, device: &B::Device) -> Result<Self::Model, TrainError> {
        match (self.phase, &self.image_weights) {
            (UpsamplerPhase::Image, _) => {
                let mut cfg = self.config.clone();
                cfg.unet = cfg.unet.image_config();
                Ok(cfg.init(device))
            }
            (UpsamplerPhase::Video, Some(path)) => {
                let model = crate::weights::load_parts(
                    self.config.init(device),
                    path,
                    None,
                    crate::weights::TemporalInit::Keep,
                )?;
                Ok(crate::model::Upsampler { unet: model.unet.freeze_spatial(), ..model })
            }
            (UpsamplerPhase::Video, None) => {
                Err(TrainError::Record("the video phase needs the image phase's weights".into()))
            }
        }
    }

    fn frames(&self) -> &FrameSource {
        &self.frames
    }

    fn batch_size(&self) -> usize {
        self.batch
    }

    fn batch_loss(
        &self,
        model: &Self::Model,
        seeds: &[u64],
        draw_seed: u64,
        _: Batch,
        device: &B::Device,
    ) -> Tensor<B, 1> {
        self.patch_loss(model, seeds, draw_seed, device)
    }
}

/// The temporal decoder and its adversary, trained together (one optimiser).
#[derive(burn::module::Module, Debug)]
pub struct DecoderGan<B: burn::tensor::backend::Backend> {
    pub decoder: crate::model::autoencoder::Decoder<B>,
    pub discriminator: crate::model::Discriminator3d<B>,
}

/// Stage 3: the temporal decoder. The trained decoder gains 3D-conv temporal blocks and
/// is fine-tuned on clips with the encoder frozen: L1 + edge loss, plus after
/// `disc_start` steps a hinge GAN against a 3D patch discriminator. The generator term
/// has a fixed weight `gan_weight` (LDM's adaptive weight, ‖∇rec‖/‖∇gan‖ at the last
/// layer, needs a second backward pass per step and is left out here).
pub struct TemporalDecoderTask<IB: burn::tensor::backend::Backend> {
    pub config: AutoencoderConfig,
    pub discriminator: crate::model::Discriminator3dConfig,
    /// The trained (image) autoencoder's weights.
    pub autoencoder_weights: std::path::PathBuf,
    pub encoder: crate::model::autoencoder::Encoder<IB>,
    pub frames: FrameSource,
    pub window: usize,
    pub clips: usize,
    pub disc_start: u64,
    pub gan_weight: f64,
    pub edge_weight: f64,
}

/// Replaces every parameter with a detached copy: the generator's loss then reaches the
/// decoder through the discriminator without training the discriminator to be fooled.
struct Detach;

impl<B: burn::tensor::backend::Backend> burn::module::ModuleMapper<B> for Detach {
    fn map_float<const D: usize>(&mut self, p: burn::module::Param<Tensor<B, D>>) -> burn::module::Param<Tensor<B, D>> {
        let (id, t, mapper) = p.consume();
        burn::module::Param::from_mapped_value(id, t.detach(), mapper)
    }
}

impl<IB: burn::tensor::backend::Backend> TemporalDecoderTask<IB> {
    fn clip_loss<B: AutodiffBackend<InnerBackend = IB>>(
        &self,
        model: &DecoderGan<B>,
        seeds: &[u64],
        gan: bool,
        device: &B::Device,
    ) -> Tensor<B, 1> {
        use crate::model::layout::to_video;
        use burn::module::Module;
        use burn::tensor::activation::relu;
        let t = self.window;
        let clips: Vec<Tensor<IB, 4>> =
            seeds.iter().map(|&s| self.frames.clip::<B>(s, t, crate::train::KEYFRAME_FPS, device).0.inner()).collect();
        let x_inner = Tensor::cat(clips, 0);
        let (mean, _) = self.encoder.forward(x_inner.clone());
        let x: Tensor<B, 4> = Tensor::from_inner(x_inner);
        let rec = model.decoder.forward(Tensor::from_inner(mean), t);
        let [n, c, h, w] = x.dims();
        let dx = |v: Tensor<B, 4>| v.clone().slice([0..n, 0..c, 0..h, 1..w]) - v.slice([0..n, 0..c, 0..h, 0..w - 1]);
        let dy = |v: Tensor<B, 4>| v.clone().slice([0..n, 0..c, 1..h, 0..w]) - v.slice([0..n, 0..c, 0..h - 1, 0..w]);
        let edge = (dx(rec.clone()) - dx(x.clone())).abs().mean() + (dy(rec.clone()) - dy(x.clone())).abs().mean();
        let mut loss = (rec.clone() - x.clone()).abs().mean() + edge * self.edge_weight;
        if gan {
            let (real, fake) = (to_video(x, t), to_video(rec, t));
            let d_loss = relu(model.discriminator.forward(real).neg() + 1.0).mean()
                + relu(model.discriminator.forward(fake.clone().detach()) + 1.0).mean();
            let frozen = model.discriminator.clone().map(&mut Detach);
            let g_loss = frozen.forward(fake).mean().neg();
            loss = loss + g_loss * self.gan_weight + d_loss;
        }
        loss
    }
}

impl<B: AutodiffBackend> Task<B> for TemporalDecoderTask<B::InnerBackend> {
    type Model = DecoderGan<B>;

    fn init(&self, device: &B::Device) -> Result<Self::Model, TrainError> {
        let ae = crate::weights::load_parts(
            self.config.init::<B>(device),
            &self.autoencoder_weights,
            None,
            crate::weights::TemporalInit::Keep,
        )?;
        Ok(DecoderGan { decoder: ae.decoder, discriminator: self.discriminator.init(device) })
    }

    fn frames(&self) -> &FrameSource {
        &self.frames
    }

    fn batch_size(&self) -> usize {
        self.clips
    }

    fn batch_loss(&self, model: &Self::Model, seeds: &[u64], _: u64, batch: Batch, device: &B::Device) -> Tensor<B, 1> {
        let gan = matches!(batch, Batch::Train { step } if step >= self.disc_start);
        self.clip_loss(model, seeds, gan, device)
    }
}
