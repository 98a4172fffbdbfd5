//! How much the video LDM's temporal layers and its context frames lower its held-out
//! denoising loss: whether the prediction model uses what it is given.
//!
//! `cargo run --release --no-default-features --example video_probe -- weights/tiny [clips]`
//!
//! Takes `clips` held-out clips (training's held-out world seeds, default 4) of the tier's
//! window of key frames at 2.5 Hz, encodes them, noises every clip at a few fixed timesteps
//! with one fixed noise, and measures the mean squared error of the model's output against
//! its training target on the frames that no setting gives as context (frames 2..T), for:
//! - `image`: the image LDM alone (every α forced to 1, so no temporal layer and no context),
//! - `S=0`, `S=1`, `S=2`: the video LDM given the first 0, 1 or 2 frames as context,
//! - `copy`: no model: the clean estimate is the last context frame (frame 1) copied to every
//!   frame, turned into the target's parameterisation at `x_t`. At the noisiest timesteps,
//!   where `x_t` says nothing, a prediction model given two context frames should beat it.
//!
//! A prediction model that uses its temporal layers scores below `image` at S = 0, and one
//! that uses its context scores lower from S = 0 to S = 2, most at high noise where the
//! noisy frames themselves say little. The second table splits S = 2 and `image` by frame.

use anyhow::{Context, Result};
use burn::backend::Flex;
use burn::tensor::Tensor;
use latentdrive::diffusion::{gaussian, per_sample_mse};
use latentdrive::model::{Labels, UNetInput};
use latentdrive::pipeline::Models;
use latentdrive::train::{FrameSource, KEYFRAME_FPS, video_context};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::PathBuf;

type B = Flex;

/// Timesteps probed (of the schedule's 1000).
const STEPS: [usize; 6] = [100, 300, 500, 700, 900, 999];

/// Settings: (name, image only, context frames).
const SETTINGS: [(&str, bool, usize); 4] =
    [("image", true, 0), ("S=0", false, 0), ("S=1", false, 1), ("S=2", false, 2)];

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().context("usage: video_probe WEIGHTS_DIR [clips]")?);
    let clips: usize = args.next().map_or(Ok(4), |s| s.parse()).context("clips: a count")?;
    let device = Default::default();
    let models = Models::<B>::load(&dir, &device)?;
    let cfg = models.tier.config();
    let ((h, w), t) = (cfg.frame_size, cfg.window);
    anyhow::ensure!(t > 2, "the window has {t} frames: none is left after 2 context frames");
    let schedule = models.diffusion.schedule()?;
    let frames = FrameSource::new(h, w, 0);
    let (mut latents, mut labels) = (Vec::new(), Vec::new());
    for seed in FrameSource::held_out_seeds(clips) {
        let (clip, conditions) = frames.clip::<B>(seed, t, KEYFRAME_FPS, &device);
        let (mean, _) = models.autoencoder.encoder.forward(clip);
        latents.push(models.latent_norm.normalize(mean));
        labels.extend(std::iter::repeat_n(Some(conditions), t));
    }
    let z0 = Tensor::cat(latents, 0);
    let n = z0.dims()[0];
    let noise = gaussian::<B, 4, _>(z0.dims(), &mut ChaCha8Rng::seed_from_u64(0x5eed), &device);

    // errors[setting][step][frame]: mean squared error of each frame; the last setting is the copy baseline.
    let mut errors = vec![vec![Vec::new(); STEPS.len()]; SETTINGS.len() + 1];
    for (k, &step) in STEPS.iter().enumerate() {
        let ts = vec![step; n];
        let x_t = schedule.add_noise(z0.clone(), noise.clone(), &ts);
        let target = schedule.training_target(z0.clone(), noise.clone(), &ts, models.diffusion.prediction);
        for (s, &(_, image_only, context_frames)) in SETTINGS.iter().enumerate() {
            let known: Vec<bool> = (0..n).map(|i| i % t < context_frames).collect();
            let mut input =
                UNetInput::new(x_t.clone(), Tensor::from_floats(vec![step as f32; n].as_slice(), &device), t);
            input.labels = Some(Labels::new(&labels, &device));
            input.context = Some(video_context(z0.clone(), &known, &device));
            input.image_only = image_only;
            errors[s][k] = per_sample_mse(models.video_ldm.forward(input), target.clone()).into_data().to_vec()?;
        }
        // The copy baseline: x̂_0 = frame 1 of each clip, ε̂ = (x_t − √ᾱ·x̂_0) / √(1 − ᾱ).
        let copied = Tensor::cat((0..clips).map(|k| z0.clone().narrow(0, k * t + 1, 1).repeat_dim(0, t)).collect(), 0);
        let a = schedule.alpha_bar(step);
        let eps = (x_t.clone() - copied.clone() * a.sqrt()) / (1.0 - a).sqrt();
        let guess = schedule.training_target(copied, eps, &ts, models.diffusion.prediction);
        errors[SETTINGS.len()][k] = per_sample_mse(guess, target).into_data().to_vec()?;
        eprint!(".");
    }
    eprintln!();

    let free = |v: &[f32]| mean(v.iter().enumerate().filter(|(i, _)| i % t >= 2).map(|(_, e)| *e));
    println!(
        "{}: {clips} held-out clips × {t} key frames; MSE on frames 2..{t} against the training target",
        dir.display()
    );
    print!("{:>8}", "timestep");
    SETTINGS.iter().for_each(|(name, ..)| print!(" {name:>8}"));
    println!(" {:>8}", "copy");
    for (k, step) in STEPS.iter().enumerate() {
        print!("{step:>8}");
        (0..errors.len()).for_each(|s| print!(" {:>8.4}", free(&errors[s][k])));
        println!();
    }
    print!("{:>8}", "mean");
    for per_step in &errors {
        print!(" {:>8.4}", mean(per_step.iter().map(|e| free(e))));
    }
    println!("\n\nper frame, mean over the timesteps:");
    println!("{:>8} {:>8} {:>8}", "frame", "image", "S=2");
    for f in 0..t {
        let at = |s: usize| {
            mean(errors[s].iter().flat_map(|e| e.iter().enumerate().filter(|(i, _)| i % t == f).map(|(_, e)| *e)))
        };
        println!("{f:>8} {:>8.4} {:>8.4}{}", at(0), at(3), if f < 2 { "  (context at S=2)" } else { "" });
    }
    Ok(())
}

fn mean(values: impl Iterator<Item = f32>) -> f32 {
    let (sum, count) = values.fold((0.0f64, 0usize), |(s, c), v| (s + v as f64, c + 1));
    (sum / count.max(1) as f64) as f32
}
