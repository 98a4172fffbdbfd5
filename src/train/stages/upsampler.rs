//! Stage 6: the pixel-space 4× upsampler, image then video phase.

use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::FrameSource;
use crate::diffusion::noise::gaussian;
use crate::train::TrainError;
use crate::train::fit::{Batch, Task};
use crate::train::init::seeded_init;

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
    /// Weight of an edge loss ([`crate::diffusion::edge_l1`]) between the prediction's x̂_0
    /// and the high-resolution target, added to the training batches' squared error
    /// (`train upsampler --edge-weight`; 0: the plain diffusion loss). A squared error is
    /// minimised by the conditional mean, which blurs what the low-resolution input leaves
    /// uncertain; the edge term pulls the prediction's neighbour differences towards the
    /// target's. Held-out losses stay the plain squared error, so runs compare.
    pub edge_weight: f64,
    /// Trained weights to start from instead of a seeded init (`--init-from`): the image
    /// phase's spatial file in the image phase, the temporal file in the video phase (whose
    /// spatial layers are always `image_weights`).
    pub init_from: Option<std::path::PathBuf>,
}

impl UpsamplerTask {
    /// Crops lie on the space-to-depth × downsampling grid, which keeps patches aligned
    /// with whole frames.
    fn crop_grid(&self) -> usize {
        4 * self.config.unshuffle * (1 << (self.config.unet.channel_mult.len() - 1))
    }

    fn patch_loss<B: AutodiffBackend>(
        &self,
        model: &crate::model::Upsampler<B>,
        seeds: &[u64],
        draw_seed: u64,
        edge_weight: f64,
        device: &B::Device,
    ) -> Tensor<B, 1> {
        use rand::RngExt;
        let mut rng = ChaCha8Rng::seed_from_u64(draw_seed);
        let t = if self.phase == UpsamplerPhase::Video { self.window } else { 1 };
        let (ph, pw) = self.patch;
        let (fh, fw) = self.frame_size;
        let grid = self.crop_grid();
        let corners: Vec<(usize, usize)> = seeds
            .iter()
            .map(|_| (grid * rng.random_range(0..=(fh - ph) / grid), grid * rng.random_range(0..=(fw - pw) / grid)))
            .collect();
        let requests: Vec<_> = seeds.iter().map(|&s| (s, t, crate::train::KEYFRAME_FPS * 4.0)).collect();
        let clips = self.frames.clips::<B>(&requests, device).0;
        let patches = corners
            .iter()
            .enumerate()
            .map(|(k, &(y0, x0))| clips.clone().slice([k * t..(k + 1) * t, 0..3, y0..y0 + ph, x0..x0 + pw]))
            .collect();
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
        let x_t = self.schedule.add_noise(x0.clone(), noise.clone(), &steps);
        let prediction = self.config.prediction;
        let target = self.schedule.training_target(x0.clone(), noise, &steps, prediction);
        let as_floats = |v: &[usize]| {
            Tensor::<B, 1>::from_floats(v.iter().map(|&x| x as f32).collect::<Vec<_>>().as_slice(), device)
        };
        let pred = model.forward(x_t.clone(), as_floats(&steps), cond, as_floats(&levels), t);
        let loss = crate::diffusion::mse(pred.clone(), target);
        match edge_weight > 0.0 {
            true => {
                let x0_hat = self.schedule.estimate(x_t, pred, &steps, prediction).x0;
                loss + crate::diffusion::edge_l1(x0_hat, x0) * edge_weight
            }
            false => loss,
        }
    }
}

impl<B: AutodiffBackend> Task<B> for UpsamplerTask {
    type Model = crate::model::Upsampler<B>;

    fn init(&self, device: &B::Device, seed: u64) -> Result<Self::Model, TrainError> {
        match (self.phase, &self.image_weights) {
            (UpsamplerPhase::Image, _) => {
                let mut cfg = self.config.clone();
                cfg.unet = cfg.unet.image_config();
                let model = seeded_init(cfg.init(device), seed);
                Ok(match &self.init_from {
                    Some(spatial) => {
                        crate::weights::load_parts(model, spatial, None, crate::weights::TemporalInit::Require)?
                    }
                    None => model,
                })
            }
            (UpsamplerPhase::Video, Some(path)) => {
                let model = crate::weights::load_parts(
                    seeded_init(self.config.init(device), seed),
                    path,
                    self.init_from.as_deref(),
                    match self.init_from {
                        Some(_) => crate::weights::TemporalInit::Require,
                        None => crate::weights::TemporalInit::Keep,
                    },
                )?;
                // The bypass is a spatial layer: frozen with the rest of them.
                Ok(crate::model::Upsampler {
                    unet: model.unet.freeze_spatial(),
                    bypass: burn::module::Module::no_grad(model.bypass),
                    ..model
                })
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
        batch: Batch,
        device: &B::Device,
    ) -> Tensor<B, 1> {
        let edge_weight = if matches!(batch, Batch::Train { .. }) { self.edge_weight } else { 0.0 };
        self.patch_loss(model, seeds, draw_seed, edge_weight, device)
    }

    /// Crops of a held-out high-resolution render, per frame: bilinear from its 4×4
    /// average | the model's sample (10 DDIM steps, augmentation level 20, as generation
    /// uses) | the render itself.
    fn sample_grid(&self, model: &Self::Model, device: &B::Device) -> Option<image::RgbImage> {
        use crate::diffusion::{Ddim, Guidance, Sampler};
        use crate::pipeline::denoise::{UpsampleCond, UpsampleDenoiser};
        use burn::module::AutodiffModule;
        let up = model.valid();
        let (ph, pw) = self.patch;
        let (fh, fw) = self.frame_size;
        let seed = FrameSource::held_out_seeds(1)[0];
        let frame = self.frames.frame::<B::InnerBackend>(seed, device).unsqueeze::<4>();
        // The middle of the frame, on the training grid.
        let grid = self.crop_grid();
        let (y0, x0) = ((fh - ph) / 2 / grid * grid, (fw - pw) / 2 / grid * grid);
        let hi = frame.slice([0..1, 0..3, y0..y0 + ph, x0..x0 + pw]);
        let low = burn::tensor::module::avg_pool2d(hi.clone(), [4, 4], [4, 4], [0, 0], true, false);
        let bilinear = up.upsample_condition(low);
        let level = 20;
        let mut rng = ChaCha8Rng::seed_from_u64(super::SAMPLE_GRID_SEED);
        let noise = gaussian::<B::InnerBackend, 4, _>(bilinear.dims(), &mut rng, device);
        let cond = UpsampleCond {
            frames: 1,
            low: self.augmentation.add_noise(bilinear.clone(), noise, &[level]),
            level: Tensor::full([1], level as f32, device),
        };
        let sampler = Sampler::new(Ddim::new(&self.schedule, up.prediction, 10, 0.0).ok()?, Guidance::NONE);
        let x = gaussian::<B::InnerBackend, 4, _>(bilinear.dims(), &mut rng, device);
        let out = sampler.sample(&UpsampleDenoiser(&up), x, &cond, &mut rng);
        Some(super::tensor_grid(&[Tensor::cat(vec![bilinear, out, hi], 0)]))
    }
}
