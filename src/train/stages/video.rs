//! Stages 4 and 5: the prediction model and the interpolator.

use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::{FrameSource, encode_frozen};
use crate::diffusion::noise::gaussian;
use crate::model::Autoencoder;
use crate::pipeline::generator::{INTERPOLATION_FACTOR, blend_keys};
use crate::pipeline::{decode_latents, encode_frames};
use crate::scenario::{Conditions, InterpolationGuess};
use crate::train::TrainError;
use crate::train::fit::{Batch, Task};
use crate::train::init::seeded_init;

/// Where on the schedule [`VideoLdmTask::guess_share`]'s clips are noised from the guess.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum GuessNoise {
    /// Timesteps from the middle half of the schedule (`T/4..3T/4`): where a guide share
    /// between 0 and 1 hands over to free sampling. The loss is the usual one.
    #[default]
    Middle,
    /// Timesteps `T/100..T/10` (10 to 99 of 1000): where a guide share of 1 leaves the model its
    /// one evaluation (the last DDIM step: timestep 49 at 20 steps, 99 at 10, 19 at 50). The
    /// clip's loss is weighed by `1/(1 + SNR)`, which makes it x̂_0's squared error for
    /// v-prediction (the tiny tier's; for ε-prediction that error times ᾱ_t, 0.89 or more
    /// here): at these levels the v-target of a guess is its error times √SNR (about 3 to 10)
    /// and would swamp the batch.
    Low,
}

impl GuessNoise {
    /// The timesteps guessed clips are drawn from, of `train_steps`.
    pub fn timesteps(self, train_steps: usize) -> std::ops::Range<usize> {
        match self {
            GuessNoise::Middle => train_steps / 4..train_steps * 3 / 4,
            GuessNoise::Low => train_steps / 100..train_steps / 10,
        }
    }

    /// The flag's value (`--guess-noise`).
    pub fn name(self) -> &'static str {
        match self {
            GuessNoise::Middle => "middle",
            GuessNoise::Low => "low",
        }
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
    /// Share of training clips with context whose new frames are noised not from themselves
    /// but from generation's guess for them, at a timestep from the middle half of the
    /// schedule, where a guide hands over to free sampling; the target stays the true clip,
    /// so the model learns to correct the guess (0: off). The prediction model's guess is the
    /// prediction guide's (the last context frame moved on by the ego's travel, its cars held
    /// in their boxes, [`crate::pipeline::ego`]), the interpolator's the interpolation
    /// guide's (`interpolation_guess`). Held-out losses never use it, so runs with and
    /// without it compare.
    pub guess_share: f64,
    /// Where `guess_share`'s clips are noised ([`GuessNoise`]).
    pub guess_noise: GuessNoise,
    /// The interpolator's guess for `guess_share`'s clips: the straight line between the
    /// known frames' latents, or the known frames moved towards each other by the ego's
    /// travel ([`crate::pipeline::ego::EgoMotion::between_latents`]; rendered clips only: on a
    /// dataset, which records no ego motion, the straight line).
    pub interpolation_guess: InterpolationGuess,
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
        train: bool,
        device: &B::Device,
    ) -> Tensor<B, 1> {
        use rand::RngExt;
        // Held-out losses stay on uniform timesteps and the clips' own frames.
        let (high_noise, guess_share) = if train { (self.high_noise, self.guess_share) } else { (0.0, 0.0) };
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
        let mut per_clip =
            crate::diffusion::sample_timesteps_biased(&mut rng, clips, self.schedule.train_steps(), high_noise);
        let context_frames: Vec<usize> = (0..clips).map(|_| rng.random_range(0..=2usize)).collect();
        let keep: Vec<bool> = (0..clips).map(|_| !rng.random_bool(drop_p)).collect();
        // Drawn only when on, so that runs without it draw what they always drew.
        let guessed: Vec<bool> = if guess_share > 0.0 {
            let steps = self.schedule.train_steps();
            (0..clips)
                .map(|k| {
                    let has_context = self.kind == VideoTask::Interpolation || context_frames[k] > 0;
                    let on = rng.random_bool(guess_share) && has_context;
                    if on {
                        per_clip[k] = rng.random_range(self.guess_noise.timesteps(steps));
                    }
                    on
                })
                .collect()
        } else {
            vec![false; clips]
        };
        let timesteps: Vec<usize> = per_clip.iter().flat_map(|&s| std::iter::repeat_n(s, t)).collect();
        let known = |i: usize| match self.kind {
            VideoTask::Prediction => i % t < context_frames[i / t],
            VideoTask::Interpolation => (i % t).is_multiple_of(crate::pipeline::generator::INTERPOLATION_FACTOR),
        };
        let known: Vec<bool> = (0..n).map(known).collect();
        let context = context(z0.clone(), &known, device);
        let (x_t, noise) = if guessed.contains(&true) {
            let start = match self.kind {
                VideoTask::Prediction => self.guessed_start::<B>(z0.clone(), seeds, &context_frames, &guessed, t),
                VideoTask::Interpolation => match self.interpolation_guess {
                    InterpolationGuess::Blend => blended_start(z0.clone(), &guessed),
                    InterpolationGuess::Ego => self.moved_start::<B>(z0.clone(), &requests, &guessed),
                },
            };
            noised_from(&self.schedule, z0.clone(), start, noise, &timesteps)
        } else {
            (self.schedule.add_noise(z0.clone(), noise.clone(), &timesteps), noise)
        };
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
        let prediction = model.forward(input);
        if self.guess_noise == GuessNoise::Low && guessed.contains(&true) {
            // Guessed clips count x̂_0's squared error (see `GuessNoise::Low`).
            let weights: Vec<f32> = (0..n)
                .map(|i| if guessed[i / t] { (1.0 / (1.0 + self.schedule.snr(timesteps[i]))) as f32 } else { 1.0 })
                .collect();
            let weights = Tensor::<B, 1>::from_floats(weights.as_slice(), device).reshape([n, 1, 1, 1]);
            let per_frame = (prediction - target).powi_scalar(2).mean_dim(3).mean_dim(2).mean_dim(1);
            return (per_frame * weights).mean();
        }
        crate::diffusion::mse(prediction, target)
    }

    /// The latents the new frames of `guessed` clips are noised from: generation's
    /// prediction-guide guess (`Run::ego_guess`), the clip's last context latent decoded,
    /// moved on by the ego's travel to each new frame and encoded again, the cars visible in
    /// it held in their boxes as generation holds the requested ones; `z0` elsewhere.
    fn guessed_start<B: AutodiffBackend<InnerBackend = IB>>(
        &self,
        z0: Tensor<B, 4>,
        seeds: &[u64],
        context_frames: &[usize],
        guessed: &[bool],
        t: usize,
    ) -> Tensor<B, 4> {
        let mut parts = z0.chunk(seeds.len(), 0);
        for (k, part) in parts.iter_mut().enumerate() {
            let s = context_frames[k];
            let ego = guessed[k].then(|| self.frames.clip_ego_motion(seeds[k], self.fps, s - 1));
            let Some(ego) = ego.flatten() else { continue };
            let step_m = ego.speed_mps / self.fps;
            let travels: Vec<f32> = (1..=t - s).map(|d| d as f32 * step_m).collect();
            let last = decode_latents(&self.autoencoder, &self.latent, part.clone().inner().slice(s - 1..s));
            let warped = ego.warp(last, (s - 1) as f32 * step_m, &travels);
            let ahead = encode_frozen::<B>(&self.autoencoder, warped, &self.latent);
            *part = Tensor::cat(vec![part.clone().slice(0..s), ahead], 0);
        }
        Tensor::cat(parts, 0)
    }

    /// The latents the in-between frames of `guessed` interpolation clips are noised from
    /// with [`InterpolationGuess::Ego`]: generation's guess
    /// ([`crate::pipeline::ego::EgoMotion::between_latents`]) for the clip's known frames
    /// (every 4th), the cars visible in the clip's first frame held in their boxes as
    /// generation holds the requested ones; the straight line where the clip records no ego
    /// motion; `z0` elsewhere.
    fn moved_start<B: AutodiffBackend<InnerBackend = IB>>(
        &self,
        z0: Tensor<B, 4>,
        requests: &[(u64, usize, f32)],
        guessed: &[bool],
    ) -> Tensor<B, 4> {
        let f = INTERPOLATION_FACTOR;
        let mut parts = z0.chunk(requests.len(), 0);
        for (k, &(seed, t, fps)) in requests.iter().enumerate().filter(|&(k, _)| guessed[k]) {
            let keys: Vec<Tensor<IB, 4>> =
                (0..t).step_by(f).map(|i| parts[k].clone().inner().slice(i..i + 1)).collect();
            let guess = match self.frames.clip_ego_motion(seed, fps, 0) {
                Some(ego) => {
                    let span_m = ego.speed_mps * f as f32 / fps;
                    let decode = |z| decode_latents(&self.autoencoder, &self.latent, z);
                    let encode = |x| encode_frames(&self.autoencoder, &self.latent, x);
                    ego.between_latents(&keys, 0.0, span_m, f, decode, encode)
                }
                None => blend_keys(&keys.iter().collect::<Vec<_>>(), f),
            };
            debug_assert_eq!(guess.len(), t, "interpolation clips end on a known frame");
            parts[k] = Tensor::from_inner(Tensor::cat(guess, 0));
        }
        Tensor::cat(parts, 0)
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
        let train = matches!(batch, Batch::Train { .. });
        self.clip_loss(model, seeds, draw_seed, batch.dropout(self.drop_p), train, device)
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

/// The latents the in-between frames of `guessed` interpolation clips are noised from: the
/// interpolation guide's guess, the straight lines between the clip's known frames (every
/// 4th) as generation draws them; `z0` elsewhere.
fn blended_start<B: burn::tensor::backend::Backend>(z0: Tensor<B, 4>, guessed: &[bool]) -> Tensor<B, 4> {
    let f = crate::pipeline::generator::INTERPOLATION_FACTOR;
    let mut parts = z0.chunk(guessed.len(), 0);
    for part in parts.iter_mut().zip(guessed).filter_map(|(p, &on)| on.then_some(p)) {
        let t = part.dims()[0];
        let keys: Vec<Tensor<B, 4>> = (0..t).step_by(f).map(|i| part.clone().slice(i..i + 1)).collect();
        let blend = crate::pipeline::generator::blend_keys(&keys.iter().collect::<Vec<_>>(), f);
        debug_assert_eq!(blend.len(), t, "interpolation clips end on a known frame");
        *part = Tensor::cat(blend, 0);
    }
    Tensor::cat(parts, 0)
}

/// `x_t` noised from `start` instead of the clean `z0` (`start`'s frames at `timesteps`
/// with `noise`), and the noise that gives the same `x_t` from `z0`:
/// `ε' = (x_t − √ᾱ_t·z0)/√(1 − ᾱ_t) = noise + √(ᾱ_t/(1 − ᾱ_t))·(start − z0)`, so that
/// [`crate::diffusion::NoiseSchedule::training_target`] of `(z0, ε')` asks for the clean
/// frames from a noisy guess. Where `start` is `z0`, `ε'` is `noise`.
pub fn noised_from<B: burn::tensor::backend::Backend>(
    schedule: &crate::diffusion::NoiseSchedule,
    z0: Tensor<B, 4>,
    start: Tensor<B, 4>,
    noise: Tensor<B, 4>,
    timesteps: &[usize],
) -> (Tensor<B, 4>, Tensor<B, 4>) {
    let x_t = schedule.add_noise(start.clone(), noise.clone(), timesteps);
    let ratio: Vec<f32> = timesteps.iter().map(|&s| schedule.snr(s).sqrt() as f32).collect();
    let n = ratio.len();
    let ratio = Tensor::<B, 1>::from_floats(ratio.as_slice(), &z0.device()).reshape([n, 1, 1, 1]);
    (x_t, noise + (start - z0) * ratio)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diffusion::NoiseSchedule;
    use burn::backend::Flex;

    fn values(t: Tensor<Flex, 4>) -> Vec<f32> {
        t.into_data().to_vec::<f32>().unwrap()
    }

    /// The returned noise takes the clean frames to the same `x_t` the guess was noised to,
    /// so the training target asks for the clean frames; with the clean frames as the guess
    /// nothing changes.
    #[test]
    fn noise_from_a_guess_is_the_noise_that_reaches_the_same_point_from_the_clean_frames() {
        let device = Default::default();
        let schedule = NoiseSchedule::ldm();
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let shape = [3, 2, 4, 5];
        let (z0, start, noise) = (
            gaussian::<Flex, 4, _>(shape, &mut rng, &device),
            gaussian::<Flex, 4, _>(shape, &mut rng, &device),
            gaussian::<Flex, 4, _>(shape, &mut rng, &device),
        );
        let timesteps = [250, 500, 749];
        let (x_t, eps) = noised_from(&schedule, z0.clone(), start.clone(), noise.clone(), &timesteps);
        assert_eq!(values(x_t.clone()), values(schedule.add_noise(start, noise.clone(), &timesteps)));
        let again = values(schedule.add_noise(z0.clone(), eps.clone(), &timesteps));
        for (a, b) in again.iter().zip(values(x_t)) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
        assert!(values(eps).iter().zip(values(noise.clone())).any(|(a, b)| (a - b).abs() > 0.1));
        let (x_same, eps_same) = noised_from(&schedule, z0.clone(), z0.clone(), noise.clone(), &timesteps);
        assert_eq!(values(x_same), values(schedule.add_noise(z0, noise.clone(), &timesteps)));
        assert_eq!(values(eps_same), values(noise));
    }

    /// The interpolator's training guess is generation's: a guessed clip's known frames
    /// (every 4th) stay, its in-between frames lie on the straight lines between them; other
    /// clips keep their own frames.
    #[test]
    fn a_blended_start_keeps_the_known_frames_and_draws_straight_lines_between_them() {
        let device = Default::default();
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let z0 = gaussian::<Flex, 4, _>([18, 2, 3, 4], &mut rng, &device);
        let start = blended_start(z0.clone(), &[false, true]);
        let frame = |z: &Tensor<Flex, 4>, i: usize| values(z.clone().slice(i..i + 1));
        for i in 0..9 {
            assert_eq!(frame(&start, i), frame(&z0, i), "unguessed clip, frame {i}");
        }
        for i in 0..9 {
            let (k, r) = (9 + i / 4 * 4, i % 4);
            let want: Vec<f32> = match r {
                0 => frame(&z0, 9 + i),
                _ => {
                    let s = r as f32 / 4.0;
                    frame(&z0, k).iter().zip(frame(&z0, k + 4)).map(|(a, b)| a * (1.0 - s) + b * s).collect()
                }
            };
            for (a, b) in frame(&start, 9 + i).iter().zip(want) {
                assert!((a - b).abs() < 1e-6, "guessed clip, frame {i}: {a} vs {b}");
            }
        }
    }
}
