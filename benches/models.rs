//! Parameter counts and CPU forward / forward+backward times of every model of a
//! tier (`cargo bench --no-default-features --bench models [-- tiny|base|micro]`).
//! Inputs are the shapes training and sampling use: one 128×256 frame for the
//! autoencoder, a window of T latent frames for the LDMs, a clip of two 256×512
//! high-resolution patches for the upsampler.

use std::time::Instant;

use burn::backend::{Autodiff, Flex};
use burn::module::{AutodiffModule, Module};
use burn::tensor::{Distribution, Tensor, backend::Backend};

use latentdrive::model::{ModelTier, UNet, UNetInput, Upsampler};

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

fn bench_unet(name: &str, cfg: &latentdrive::model::UNetConfig, n: usize, t: usize, hw: (usize, usize)) {
    let dev = Default::default();
    let model: UNet<AB> = cfg.init(&dev);
    let params = model.num_params();
    let inference: UNet<B> = model.valid();
    let fwd = time(3, || inference.forward(unet_input::<B>(n, t, cfg.in_channels, hw.0, hw.1, &dev)));
    let fb = time(2, || model.forward(unet_input::<AB>(n, t, cfg.in_channels, hw.0, hw.1, &dev)).mean().backward());
    println!(
        "{name:<18} {:>10.2} M {:>12} {:>10.0} ms {:>12.0} ms",
        params as f64 / 1e6,
        format!("{n}×{}×{}", hw.0, hw.1),
        fwd * 1e3,
        fb * 1e3
    );
}

/// Parameter counts of every model of every tier (no timing).
fn print_params() {
    let dev = Default::default();
    println!(
        "{:<8} {:>12} {:>10} {:>10} {:>10} {:>13} {:>10} {:>14}",
        "tier", "autoencoder", "temp. dec.", "image LDM", "video LDM", "interpolator", "upsampler", "discriminator"
    );
    for tier in [ModelTier::Micro, ModelTier::Tiny, ModelTier::Base] {
        let c = tier.config();
        let m = |n: usize| format!("{:.2} M", n as f64 / 1e6);
        println!(
            "{:<8} {:>12} {:>10} {:>10} {:>10} {:>13} {:>10} {:>14}",
            format!("{tier:?}"),
            m(c.autoencoder.init::<B>(&dev).num_params()),
            m(c.autoencoder.clone().with_temporal_decoder(true).init::<B>(&dev).decoder.num_params()),
            m(c.image_ldm.init::<B>(&dev).num_params()),
            m(c.video_ldm.init::<B>(&dev).num_params()),
            m(c.interpolator.init::<B>(&dev).num_params()),
            m(c.upsampler.init::<B>(&dev).num_params()),
            m(c.discriminator.init::<B>(&dev).num_params()),
        );
    }
}

fn main() {
    if std::env::args().any(|a| a == "params") {
        return print_params();
    }
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
    println!(
        "tier {tier:?}: frames {}×{}, latents {}×{h}×{w}, window T = {t}",
        cfg.frame_size.0,
        cfg.frame_size.1,
        cfg.latent_channels()
    );
    println!("{:<18} {:>12} {:>12} {:>13} {:>15}", "model", "params", "input", "forward", "fwd+backward");

    let ae = cfg.autoencoder.init::<AB>(&dev);
    let ae_inf = ae.valid();
    let frames = |dev: &_| {
        Tensor::<B, 4>::random([1, 3, cfg.frame_size.0, cfg.frame_size.1], Distribution::Normal(0.0, 1.0), dev)
    };
    let fwd = time(3, || {
        let (m, _) = ae_inf.encoder.forward(frames(&dev));
        ae_inf.decoder.forward(m, 1)
    });
    let fb = time(2, || {
        let x =
            Tensor::<AB, 4>::random([1, 3, cfg.frame_size.0, cfg.frame_size.1], Distribution::Normal(0.0, 1.0), &dev);
        let (m, _) = ae.encoder.forward(x);
        ae.decoder.forward(m, 1).mean().backward()
    });
    println!(
        "{:<18} {:>10.2} M {:>12} {:>10.0} ms {:>12.0} ms",
        "autoencoder",
        ae.num_params() as f64 / 1e6,
        format!("1×{}×{}", cfg.frame_size.0, cfg.frame_size.1),
        fwd * 1e3,
        fb * 1e3
    );

    bench_unet("image LDM", &cfg.image_ldm, t, 1, (h, w));
    bench_unet("video LDM", &cfg.video_ldm, t, t, (h, w));
    bench_unet("interpolator", &cfg.interpolator, t, t, (h, w));
    let (ph, pw) = if tier == ModelTier::Micro { (32, 64) } else { (256, 512) };
    bench_upsampler(&cfg.upsampler, 2, (ph, pw));
}

/// The upsampler on a clip of `t` high-resolution patches (3-channel frames in, space-to-depth inside).
fn bench_upsampler(cfg: &latentdrive::model::UpsamplerConfig, t: usize, hw: (usize, usize)) {
    let dev = Default::default();
    let model: Upsampler<AB> = cfg.init(&dev);
    let inference: Upsampler<B> = model.valid();
    fn run<Bk: Backend>(m: &Upsampler<Bk>, t: usize, hw: (usize, usize), dev: &Bk::Device) -> Tensor<Bk, 4> {
        let x = || Tensor::random([t, 3, hw.0, hw.1], Distribution::Normal(0.0, 1.0), dev);
        m.forward(x(), Tensor::full([t], 500.0, dev), x(), Tensor::full([t], 100.0, dev), t)
    }
    let fwd = time(3, || run(&inference, t, hw, &dev));
    let fb = time(2, || run(&model, t, hw, &dev).mean().backward());
    println!(
        "{:<18} {:>10.2} M {:>12} {:>10.0} ms {:>12.0} ms",
        "upsampler (patch)",
        model.num_params() as f64 / 1e6,
        format!("{t}×{}×{}", hw.0, hw.1),
        fwd * 1e3,
        fb * 1e3
    );
}
