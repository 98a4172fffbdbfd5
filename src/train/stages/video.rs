//! Stages 4 and 5: the prediction model and the interpolator.

use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::{FrameSource, encode_frozen};
use crate::diffusion::noise::gaussian;
use crate::model::Autoencoder;
use crate::scenario::Conditions;
use crate::train::TrainError;
use crate::train::fit::{Batch, Task};
use crate::train::init::seeded_init;

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
    /// Autoencoder latents → the denoiser's.
    pub latent: crate::diffusion::LatentNorm,
    /// The image LDM's schedule and parameterisation (its frozen layers were trained on them).
    pub diffusion: crate::diffusion::DiffusionConfig,
    /// `diffusion`'s schedule.
    pub schedule: crate::diffusion::NoiseSchedule,
    pub frames: FrameSource,
    pub window: usize,
    pub fps: f32,
    pub clips: usize,
    pub drop_p: f64,
    /// Share of training clips whose timestep comes from the noisier half of the schedule
    /// (see [`crate::diffusion::sample_timesteps_biased`]; 0: uniform). Held-out losses stay
    /// uniform, so runs with and without it compare.
    pub high_noise: f64,
    /// Start the temporal layers from these trained ones instead of a seeded init.
    pub temporal_from: Option<std::path::PathBuf>,
}

impl<IB: burn::tensor::backend::Backend> VideoLdmTask<IB> {
    fn clip_loss<B: AutodiffBackend<InnerBackend = IB>>(
        &self,
        model: &crate::model::UNet<B>,
        seeds: &[u64],
        draw_seed: u64,
        drop_p: f64,
        high_noise: f64,
        device: &B::Device,
    ) -> Tensor<B, 1> {
        use rand::RngExt;
        let mut rng = ChaCha8Rng::seed_from_u64(draw_seed);
        let clips = seeds.len();
        let (t, fps_stage): (usize, Vec<i64>) = match self.kind {
            VideoTask::Prediction => (self.window, vec![]),
            VideoTask::Interpolation => (self.window + 1, (0..clips).map(|_| rng.random_range(0..=1i64)).collect()),
        };
        let requests: Vec<(u64, usize, f32)> = seeds
            .iter()
            .enumerate()
            .map(|(k, &s)| {
                let fps = match self.kind {
                    VideoTask::Prediction => self.fps,
                    // Stage 0 fills 2.5 Hz key frames up to 10 Hz, stage 1 10 Hz up to 40 Hz.
                    VideoTask::Interpolation => self.fps * if fps_stage[k] == 0 { 4.0 } else { 16.0 },
                };
                (s, t, fps)
            })
            .collect();
        let (frames, conds) = self.frames.clips::<B>(&requests, device);
        let z0 = encode_frozen::<B>(&self.autoencoder, frames.inner(), &self.latent);
        let [n, c, h, w] = z0.dims();
        let noise = gaussian::<B, 4, _>([n, c, h, w], &mut rng, device);
        // One timestep per clip, shared by its frames.
        let per_clip =
            crate::diffusion::sample_timesteps_biased(&mut rng, clips, self.schedule.train_steps(), high_noise);
        let timesteps: Vec<usize> = per_clip.iter().flat_map(|&s| std::iter::repeat_n(s, t)).collect();
        let context_frames: Vec<usize> = (0..clips).map(|_| rng.random_range(0..=2usize)).collect();
        let keep: Vec<bool> = (0..clips).map(|_| !rng.random_bool(drop_p)).collect();
        let known = |i: usize| match self.kind {
            VideoTask::Prediction => i % t < context_frames[i / t],
            VideoTask::Interpolation => (i % t).is_multiple_of(4),
        };
        let known: Vec<bool> = (0..n).map(known).collect();
        let context = context(z0.clone(), &known, device);
        let x_t = self.schedule.add_noise(z0.clone(), noise.clone(), &timesteps);
        let steps: Vec<f32> = timesteps.iter().map(|&s| s as f32).collect();
        let mut input = crate::model::UNetInput::new(x_t, Tensor::from_floats(steps.as_slice(), device), t);
        let labels: Vec<Option<Conditions>> = (0..n).map(|i| keep[i / t].then_some(conds[i / t])).collect();
        input.labels = Some(crate::model::Labels::new(&labels, device));
        input.context = Some(context);
        if self.kind == VideoTask::Interpolation {
            let stages: Vec<i64> = (0..n).map(|i| fps_stage[i / t]).collect();
            input.fps_stage = Some(Tensor::from_data(burn::tensor::TensorData::new(stages, [n]), device));
        }
        let target = self.schedule.training_target(z0, noise, &timesteps, self.diffusion.prediction);
        crate::diffusion::mse(model.forward(input), target)
    }
}

impl<B: AutodiffBackend> Task<B> for VideoLdmTask<B::InnerBackend> {
    type Model = crate::model::UNet<B>;

    fn init(&self, device: &B::Device, seed: u64) -> Result<Self::Model, TrainError> {
        let model = crate::weights::load_parts(
            seeded_init(self.config.init(device), seed),
            &self.image_weights,
            self.temporal_from.as_deref(),
            match self.temporal_from {
                Some(_) => crate::weights::TemporalInit::Require,
                None => crate::weights::TemporalInit::Keep,
            },
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
        let high_noise = if matches!(batch, Batch::Train { .. }) { self.high_noise } else { 0.0 };
        self.clip_loss(model, seeds, draw_seed, batch.dropout(self.drop_p), high_noise, device)
    }

    /// A held-out clip (top row) over the model's sample of it (bottom row) given the
    /// frames a generation knows — the first two (prediction) or every 4th (interpolation,
    /// 2.5 → 10 Hz), held in the sample as generation holds them — and the clip's labels:
    /// 10 DDIM steps, decoded per frame.
    fn sample_grid(&self, model: &Self::Model, device: &B::Device) -> Option<image::RgbImage> {
        use crate::diffusion::{Ddim, Guidance, Sampler};
        use crate::pipeline::denoise::{VideoCond, VideoDenoiser};
        use burn::module::AutodiffModule;
        type IB<B> = <B as AutodiffBackend>::InnerBackend;
        let unet = model.valid();
        let (t, fps, stage) = match self.kind {
            VideoTask::Prediction => (self.window, self.fps, None),
            VideoTask::Interpolation => (self.window + 1, 4.0 * self.fps, Some(0i64)),
        };
        let seed = FrameSource::held_out_seeds(1)[0];
        let (clip, conditions) = self.frames.clip::<IB<B>>(seed, t, fps, device);
        let (mean, _) = self.autoencoder.encoder.forward(clip.clone());
        let z0 = self.latent.normalize(mean);
        let [n, c, h, w] = z0.dims();
        let known: Vec<bool> = (0..n)
            .map(|i| match self.kind {
                VideoTask::Prediction => i < 2,
                VideoTask::Interpolation => i % 4 == 0,
            })
            .collect();
        let held = crate::diffusion::Known::new(frame_mask(&known, [n, c, h, w], device), z0.clone());
        let cond = VideoCond {
            frames: t,
            labels: Some(crate::model::Labels::new(&vec![Some(conditions); n], device)),
            context: Some(context(z0, &known, device)),
            fps_stage: stage.map(|s| Tensor::from_data(burn::tensor::TensorData::new(vec![s; n], [n]), device)),
        };
        let sampler = Sampler::new(Ddim::for_model(&self.diffusion, 10, 0.0).ok()?, Guidance::NONE);
        let mut rng = ChaCha8Rng::seed_from_u64(super::SAMPLE_GRID_SEED);
        let z_t = gaussian::<IB<B>, 4, _>([n, c, h, w], &mut rng, device);
        let z = sampler
            .sample_known_with_progress(&VideoDenoiser(&unet), z_t, Some(&held), &cond, &mut rng, |_| {
                std::ops::ControlFlow::Continue(())
            })
            .ok()?;
        let samples = self.autoencoder.decoder.forward(self.latent.denormalize(z), 1);
        Some(super::tensor_grid(&[clip, samples]))
    }
}

/// The context `(m ∘ z0, m)` of latents `z0` `[n, c, h, w]` whose frames `known` are given
/// (what the video models see as `UNetInput::context`).
pub fn context<B: burn::tensor::backend::Backend>(
    z0: Tensor<B, 4>,
    known: &[bool],
    device: &B::Device,
) -> Tensor<B, 4> {
    let [n, c, h, w] = z0.dims();
    let m = frame_mask(known, [n, 1, h, w], device);
    Tensor::cat(vec![z0 * m.clone().repeat_dim(1, c), m], 1)
}

/// 1 over the frames `known` (the first axis of `shape`), 0 elsewhere.
fn frame_mask<B: burn::tensor::backend::Backend>(
    known: &[bool],
    shape: [usize; 4],
    device: &B::Device,
) -> Tensor<B, 4> {
    let [n, c, h, w] = shape;
    let mask: Vec<f32> = known.iter().map(|&k| if k { 1.0 } else { 0.0 }).collect();
    Tensor::<B, 1>::from_floats(mask.as_slice(), device)
        .reshape([n, 1, 1, 1])
        .repeat_dim(1, c)
        .repeat_dim(2, h)
        .repeat_dim(3, w)
}
