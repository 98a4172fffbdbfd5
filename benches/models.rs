//! Parameter counts and CPU forward / forward+backward times of every model of a
//! tier (`cargo bench --no-default-features --bench models [-- tiny|base|micro]`).
//! Inputs are the shapes training and sampling use: one 128×256 frame for the
//! autoencoder, a window of T latent frames for the LDMs, a 64×128 → 256×512 patch
//! clip of 2 frames for the upsampler.

use std::time::Instant;

use burn::backend::{Autodiff, Flex};
use burn::module::{AutodiffModule, Module};
use burn::tensor::{Distribution, Tensor, backend::Backend};

use latentdrive::model::{LATENT_CHANNELS, ModelTier, UNet, UNetInput};

type B = Flex;
type AB = Autodiff<Flex>;

fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> f64 {
    std::hint::black_box(f()); // warm-up
    let t0 = Instant::now();
    for _ in 0..runs {
        std::hint::black_box(f());
    }
    t0.elapsed().as_secs_f64() / runs as f64
}

fn unet_input<Bk: Backend>(n: usize, t: usize, c: usize, h: usize, w: usize, dev: &Bk::Device) -> UNetInput<Bk> {
    let x = Tensor::random([n, c, h, w], Distribution::Normal(0.0, 1.0), dev);
    UNetInput::new(x, Tensor::full([n], 500.0, dev), t)
}

fn bench_unet(name: &str, cfg: &latentdrive::model::UNetConfig, n: usize, t: usize, hw: (usize, usize), extra: usize) {
    let dev = Default::default();
    let model: UNet<AB> = cfg.init(&dev);
    let params = model.num_params();
    let inference: UNet<B> = model.valid();
    let mk = |dev: &_| {
        let mut i = unet_input::<B>(n, t, cfg.in_channels, hw.0, hw.1, dev);
        if extra > 0 {
            i.extra = Some(Tensor::random([n, extra, hw.0, hw.1], Distribution::Normal(0.0, 1.0), dev));
            i.noise_level = Some(Tensor::full([n], 100.0, dev));
        }
        i
    };
    let fwd = time(3, || inference.forward(mk(&dev)));
    let fb = time(2, || {
        let mut i = unet_input::<AB>(n, t, cfg.in_channels, hw.0, hw.1, &dev);
        if extra > 0 {
            i.extra = Some(Tensor::random([n, extra, hw.0, hw.1], Distribution::Normal(0.0, 1.0), &dev));
            i.noise_level = Some(Tensor::full([n], 100.0, &dev));
        }
        model.forward(i).mean().backward()
    });
    println!("{name:<18} {:>10.2} M {:>12} {:>10.0} ms {:>12.0} ms", params as f64 / 1e6, format!("{n}×{}×{}", hw.0, hw.1), fwd * 1e3, fb * 1e3);
}

fn main() {
    let tier = match std::env::args().skip(1).find(|a| !a.starts_with('-')).as_deref() {
        Some("base") => ModelTier::Base,
        Some("micro") => ModelTier::Micro,
        _ => ModelTier::Tiny,
    };
    let cfg = tier.config();
    let dev = Default::default();
    let f = cfg.autoencoder.factor();
    let (h, w) = (cfg.frame_size.0 / f, cfg.frame_size.1 / f);
    let t = cfg.window;
    println!("tier {tier:?}: frames {}×{}, latents {LATENT_CHANNELS}×{h}×{w}, window T = {t}", cfg.frame_size.0, cfg.frame_size.1);
    println!("{:<18} {:>12} {:>12} {:>13} {:>15}", "model", "params", "input", "forward", "fwd+backward");

    let ae = cfg.autoencoder.init::<AB>(&dev);
    let ae_inf = ae.valid();
    let frames = |dev: &_| Tensor::<B, 4>::random([1, 3, cfg.frame_size.0, cfg.frame_size.1], Distribution::Normal(0.0, 1.0), dev);
    let fwd = time(3, || {
        let (m, _) = ae_inf.encoder.forward(frames(&dev));
        ae_inf.decoder.forward(m, 1)
    });
    let fb = time(2, || {
        let x = Tensor::<AB, 4>::random([1, 3, cfg.frame_size.0, cfg.frame_size.1], Distribution::Normal(0.0, 1.0), &dev);
        let (m, _) = ae.encoder.forward(x);
        ae.decoder.forward(m, 1).mean().backward()
    });
    println!("{:<18} {:>10.2} M {:>12} {:>10.0} ms {:>12.0} ms", "autoencoder", ae.num_params() as f64 / 1e6, format!("1×{}×{}", cfg.frame_size.0, cfg.frame_size.1), fwd * 1e3, fb * 1e3);

    bench_unet("image LDM", &cfg.image_ldm, t, 1, (h, w), 0);
    bench_unet("video LDM", &cfg.video_ldm, t, t, (h, w), 0);
    bench_unet("interpolator", &cfg.interpolator, t, t, (h, w), 0);
    let (ph, pw) = if tier == ModelTier::Micro { (32, 64) } else { (256, 512) };
    bench_unet("upsampler (patch)", &cfg.upsampler.unet, 2, 2, (ph, pw), 3);
}
