//! A burn-cubecl backend against the CPU backend, op by op and model by model: where
//! burn-cuda's (or burn-wgpu's) results leave burn `Flex`'s.
//!
//! On a GPU machine (see `tools/gpu_session.sh` for the build):
//! `cargo build --release --no-default-features --features cuda --example backend_parity`
//! then `backend_parity weights/tiny`.
//!
//! Without a GPU, the same cubecl kernels run on Vulkan through Mesa's lavapipe (software):
//! `cargo run --release --no-default-features --features wgpu --example backend_parity -- weights/tiny`
//! (11 minutes on the 2-core machine beside a training run).
//!
//! Why it exists: the video LDM continued on CUDA from the shipped weights started at a
//! training loss of 0.58 where the same continuation on the CPU starts at 0.38, and the
//! weights it came back with were worse on the CPU (`video_probe` mean 0.58 against 0.35).
//! So some op computes something else on CUDA. The ops here are the ones the models use, at
//! the tiny tier's shapes, on the same seeded inputs; the fused attention is run as burn
//! calls it and, with an explicit scale, through burn-cubecl's unfused fallback. The models
//! run on one held-out clip with the weights in the folder given.
//!
//! Each line: max |gpu − cpu|, max |cpu|, and ‖gpu − cpu‖ / ‖cpu‖ (f32 rounding and TF32
//! matmuls give about 1e-6 to 1e-3; a broken op gives 1e-1 and more).

#![cfg_attr(not(any(feature = "cuda", feature = "wgpu")), allow(dead_code, unused_imports))]

use anyhow::{Context, Result};
use burn::backend::Flex;
use burn::tensor::module::{attention, avg_pool2d, conv2d, conv3d, interpolate};
use burn::tensor::ops::{AttentionModuleOptions, ConvOptions, InterpolateMode, InterpolateOptions};
use burn::tensor::{Tensor, TensorData, activation::softmax, backend::Backend};
use latentdrive::diffusion::gaussian;
use latentdrive::model::{Labels, UNetInput};
use latentdrive::pipeline::Models;
use latentdrive::train::{FrameSource, KEYFRAME_FPS, video_context};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};

type Outputs = Vec<(String, Vec<f32>)>;

#[cfg(feature = "cuda")]
type Gpu = burn::backend::Cuda;
#[cfg(all(feature = "wgpu", not(feature = "cuda")))]
type Gpu = burn::backend::Wgpu;

#[cfg(not(any(feature = "cuda", feature = "wgpu")))]
fn main() -> Result<()> {
    anyhow::bail!(
        "backend_parity compares a GPU backend with the CPU: build it with `--features cuda` or `--features wgpu`"
    )
}

#[cfg(any(feature = "cuda", feature = "wgpu"))]
fn main() -> Result<()> {
    let dir = PathBuf::from(std::env::args().nth(1).context("usage: backend_parity WEIGHTS_DIR")?);
    #[cfg(feature = "cuda")]
    latentdrive::app::Device::Cuda.ready().map_err(anyhow::Error::msg)?;
    let cpu = outputs::<Flex>(&dir, &Default::default())?;
    let gpu = outputs::<Gpu>(&dir, &Default::default())?;
    println!("{} against Flex", std::any::type_name::<Gpu>().split('<').next().unwrap_or("gpu"));
    println!("{:<40} {:>12} {:>12} {:>12}", "output", "max|diff|", "max|cpu|", "rel L2");
    for ((name, a), (_, b)) in cpu.iter().zip(&gpu) {
        let max_diff = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        let max_ref = a.iter().map(|x| x.abs()).fold(0.0f32, f32::max);
        let diff2: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
        let ref2: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum();
        println!("{name:<40} {max_diff:>12.3e} {max_ref:>12.3e} {:>12.3e}", (diff2 / ref2.max(1e-30)).sqrt());
    }
    Ok(())
}

/// A seeded standard-normal tensor made on the host (the same numbers on every backend).
fn randn<B: Backend, const D: usize>(shape: [usize; D], seed: u64, device: &B::Device) -> Tensor<B, D> {
    let host = gaussian::<Flex, D, _>(shape, &mut ChaCha8Rng::seed_from_u64(seed), &Default::default());
    Tensor::from_data(TensorData::new(host.into_data().to_vec::<f32>().expect("f32"), shape), device)
}

fn host<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec::<f32>().expect("f32 data")
}

fn outputs<B: Backend>(dir: &Path, device: &B::Device) -> Result<Outputs> {
    let mut out: Outputs = Vec::new();
    let mut put = |name: &str, v: Vec<f32>| out.push((name.to_string(), v));

    // Ops at the tiny tier's shapes.
    put(
        "matmul [8,512,64]x[8,64,96]",
        host(randn::<B, 3>([8, 512, 64], 1, device).matmul(randn([8, 64, 96], 2, device))),
    );
    let x = randn::<B, 4>([8, 64, 16, 32], 3, device);
    let w = randn::<B, 4>([64, 64, 3, 3], 4, device) * 0.05;
    let b = Some(randn::<B, 1>([64], 5, device));
    put("conv2d 3x3 64->64 [8,64,16,32]", host(conv2d(x.clone(), w, b, ConvOptions::new([1, 1], [1, 1], [1, 1], 1))));
    let w1 = randn::<B, 4>([128, 64, 1, 1], 6, device) * 0.1;
    put("conv2d 1x1 64->128", host(conv2d(x.clone(), w1, None, ConvOptions::new([1, 1], [0, 0], [1, 1], 1))));
    let x3 = randn::<B, 5>([2, 64, 8, 16, 32], 7, device);
    let w3 = randn::<B, 5>([64, 64, 3, 1, 1], 8, device) * 0.1;
    put(
        "conv3d 3x1x1 [2,64,8,16,32]",
        host(conv3d(x3.clone(), w3, None, ConvOptions::new([1; 3], [1, 0, 0], [1; 3], 1))),
    );
    let w33 = randn::<B, 5>([64, 64, 3, 3, 3], 9, device) * 0.03;
    put("conv3d 3x3x3", host(conv3d(x3, w33, None, ConvOptions::new([1; 3], [1; 3], [1; 3], 1))));
    put("mean/var over [8, 32768]", {
        let (var, mean) = x.clone().reshape([8, -1]).var_mean(1);
        [host(var), host(mean)].concat()
    });
    put("softmax [16,4,512,512] (x3)", host(softmax(randn::<B, 4>([16, 4, 512, 512], 10, device) * 3.0, 3)));
    let near = InterpolateOptions::new(InterpolateMode::Nearest);
    put("interpolate nearest 2x", host(interpolate(x.clone(), [32, 64], near)));
    put("avg_pool2d 4x4", host(avg_pool2d(x.clone(), [4, 4], [4, 4], [0, 0], true, false)));
    put(
        "silu, gelu",
        [host(burn::tensor::activation::silu(x.clone())), host(burn::tensor::activation::gelu(x.clone()))].concat(),
    );
    let group = burn::nn::GroupNormConfig::new(32, 64).init::<B>(device);
    put("group norm 32 over 64 channels", host(group.forward(x.clone() * 3.0 + 1.0)));
    let layer = burn::nn::LayerNormConfig::new(32).init::<B>(device);
    put("layer norm over 32", host(layer.forward(x * 3.0 + 1.0)));
    // The timestep embedding's arguments reach 999 rad: fast-math sin/cos lose accuracy there.
    let steps: Vec<f32> = (0..1000).map(|t| t as f32).collect();
    put(
        "sinusoidal embedding t=0..999, 128",
        host(latentdrive::model::embedding::sinusoidal(Tensor::<B, 1>::from_floats(steps.as_slice(), device), 128)),
    );
    for (name, [n, s, dh], scale) in [
        ("attention spatial [16,4,512,16]", [16, 512, 16], None),
        ("attention spatial, unfused", [16, 512, 16], Some(0.25)),
        ("attention temporal [1024,4,8,16]", [1024, 8, 16], None),
        ("attention temporal, unfused", [1024, 8, 16], Some(0.25)),
        ("attention boxes [16,4,512x9,16]", [16, 512, 16], None),
    ] {
        let q = randn::<B, 4>([n, 4, s, dh], 11, device);
        let kv = if name.contains("boxes") { 9 } else { s };
        let (k, v) = (randn::<B, 4>([n, 4, kv, dh], 12, device), randn::<B, 4>([n, 4, kv, dh], 13, device));
        let options = AttentionModuleOptions { scale, ..Default::default() };
        put(name, host(attention(q, k, v, None, None, options)));
    }

    // The models on one held-out clip.
    let models = Models::<B>::load(dir, device)?;
    let cfg = models.tier.config();
    let ((h, w), t) = (cfg.frame_size, cfg.window);
    let seed = FrameSource::held_out_seeds(1)[0];
    let (clip, conditions) = FrameSource::new(h, w, 0).clip::<B>(seed, t, KEYFRAME_FPS, device);
    let (mean, _) = models.autoencoder.encoder.forward(clip.clone());
    put("autoencoder encoder (mean)", host(mean.clone()));
    put("autoencoder decoder", host(models.autoencoder.decoder.forward(mean.clone(), 1)));
    if let Some(d) = &models.temporal_decoder {
        put("temporal decoder", host(d.forward(mean.clone(), t)));
    }
    let z0 = models.latent_norm.normalize(mean);
    let schedule = models.diffusion.schedule()?;
    let noise = randn::<B, 4>(z0.dims(), 14, device);
    let labels = vec![Some(conditions); t];
    let x_t = schedule.add_noise(z0.clone(), noise.clone(), &vec![500; t]);
    let mut input = UNetInput::new(x_t, Tensor::from_floats(vec![500.0; t].as_slice(), device), 1);
    input.labels = Some(Labels::new(&labels, device));
    put("image LDM file, t=500", host(models.image_ldm.forward(input)));
    for (name, step, image_only, context) in [
        ("video LDM as image LDM, t=500", 500, true, 0),
        ("video LDM, S=0, t=500", 500, false, 0),
        ("video LDM, S=2, t=500", 500, false, 2),
        ("video LDM, S=2, t=999", 999, false, 2),
    ] {
        let x_t = schedule.add_noise(z0.clone(), noise.clone(), &vec![step; t]);
        let mut input = UNetInput::new(x_t, Tensor::from_floats(vec![step as f32; t].as_slice(), device), t);
        input.labels = Some(Labels::new(&labels, device));
        let known: Vec<bool> = (0..t).map(|i| i < context).collect();
        input.context = Some(video_context(z0.clone(), &known, device));
        input.image_only = image_only;
        put(name, host(models.video_ldm.forward(input)));
    }
    if let Some(interp) = &models.interpolator {
        // 2.5 → 10 Hz: every 4th of t + 1 frames known (fps flag 0).
        let (clip, conditions) = FrameSource::new(h, w, 0).clip::<B>(seed, t + 1, 4.0 * KEYFRAME_FPS, device);
        let z0 = models.latent_norm.normalize(models.autoencoder.encoder.forward(clip).0);
        let noise = randn::<B, 4>(z0.dims(), 16, device);
        let x_t = schedule.add_noise(z0.clone(), noise, &vec![500; t + 1]);
        let mut input = UNetInput::new(x_t, Tensor::from_floats(vec![500.0; t + 1].as_slice(), device), t + 1);
        input.labels = Some(Labels::new(&vec![Some(conditions); t + 1], device));
        let known: Vec<bool> = (0..=t).map(|i| i % 4 == 0).collect();
        input.context = Some(video_context(z0, &known, device));
        input.fps_stage = Some(Tensor::from_data(TensorData::new(vec![0i64; t + 1], [t + 1]), device));
        put("interpolator, t=500", host(interp.forward(input)));
    }
    if let Some(up) = &models.upsampler {
        // Fully convolutional: the key frame stands for a high-resolution one.
        let cond = clip.narrow(0, 0, 1);
        let x_t = randn::<B, 4>([1, 3, h, w], 15, device);
        let ts = Tensor::from_floats([500.0], device);
        put("upsampler (one frame, t=500)", host(up.forward(x_t, ts, cond, Tensor::from_floats([0.0], device), 1)));
    }
    Ok(out)
}
