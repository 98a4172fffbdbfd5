//! Stage 3: the temporal decoder against a 3D patch discriminator.

use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{ElementConversion, Tensor};

use super::FrameSource;
use crate::model::AutoencoderConfig;
use crate::train::TrainError;
use crate::train::fit::{Batch, Task};
use crate::train::init::seeded_init;

/// The temporal decoder and its adversary, trained together (one optimiser).
#[derive(burn::module::Module, Debug)]
pub struct DecoderGan<B: burn::tensor::backend::Backend> {
    pub decoder: crate::model::autoencoder::Decoder<B>,
    pub discriminator: crate::model::Discriminator3d<B>,
}

/// Stage 3: the temporal decoder. The trained decoder gains 3D-conv temporal blocks and
/// is fine-tuned on clips with the encoder frozen: L1 + edge loss + L1 of the frame-to-frame
/// changes against the video's (temporal reconstruction), plus after `disc_start` steps a
/// hinge GAN against a 3D patch discriminator. The generator term carries LDM's adaptive
/// weight ([`adaptive_weight`]: ‖∇rec‖/‖∇gan‖ at the decoder's last layer) times `gan_weight`.
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
    /// Factor on the adaptive weight (LDM's `disc_weight`).
    pub gan_weight: f64,
    pub edge_weight: f64,
    /// Weight of the temporal reconstruction term: L1 between the reconstruction's
    /// frame-to-frame changes and the video's (the model card's temporal error).
    pub temporal_weight: f64,
    /// The adaptive weights of the training steps so far (for the manifest's note).
    pub adaptive: std::sync::Mutex<AdaptiveStats>,
    /// A trained temporal decoder to start from (`--init-from`): its decoder file and
    /// temporal file, instead of the autoencoder's decoder with fresh temporal blocks.
    pub init_from: Option<(std::path::PathBuf, Option<std::path::PathBuf>)>,
}

/// Running summary of the adaptive GAN weights λ the training batches used.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct AdaptiveStats {
    pub batches: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
}

impl AdaptiveStats {
    fn add(&mut self, lambda: f64) {
        (self.min, self.max) = match self.batches {
            0 => (lambda, lambda),
            _ => (self.min.min(lambda), self.max.max(lambda)),
        };
        self.batches += 1;
        self.sum += lambda;
    }

    pub fn mean(&self) -> Option<f64> {
        (self.batches > 0).then(|| self.sum / self.batches as f64)
    }
}

/// LDM's (taming-transformers') adaptive weight of the generator term:
/// `‖∇_W L_rec‖ / (‖∇_W L_gan‖ + 1e-4)` at the decoder's last layer `W` (`conv_out`'s
/// kernel), clamped to [0, 1e4]. It balances the two gradients where they meet the image,
/// whatever the discriminator's current scale.
///
/// Both losses reach `W` only through the decoder's output, so each gradient at `W` follows
/// from the loss's gradient at that output (`rec_grad`, `gan_grad`, shaped like the output)
/// and the layer's input `features` ([`Decoder::features`](crate::model::autoencoder::Decoder::features)):
/// one backward pass through that single layer each. LDM takes both from the full graph
/// with `autograd.grad(..., retain_graph=True)`; burn's backward consumes the graph, and
/// this needs no second forward through the decoder.
pub fn adaptive_weight<B: AutodiffBackend>(
    decoder: &crate::model::autoencoder::Decoder<B>,
    features: Tensor<B, 4>,
    rec_grad: Tensor<B::InnerBackend, 4>,
    gan_grad: Tensor<B::InnerBackend, 4>,
) -> f64 {
    let features = features.detach();
    let kernel_grad_norm = |out_grad: Tensor<B::InnerBackend, 4>| -> f64 {
        let mut last = decoder.clone();
        last.conv_out.weight = burn::module::Param::from_tensor(decoder.conv_out.weight.val().detach().require_grad());
        let grads = (last.head(features.clone()) * Tensor::from_inner(out_grad)).sum().backward();
        // The kernel is a fresh leaf that requires gradients, so backward always reaches it.
        last.conv_out
            .weight
            .val()
            .grad(&grads)
            .map_or(0.0, |g| g.powi_scalar(2).sum().into_scalar().elem::<f64>().sqrt())
    };
    let (rec, gan) = (kernel_grad_norm(rec_grad), kernel_grad_norm(gan_grad));
    (rec / (gan + 1e-4)).clamp(0.0, 1e4)
}

/// The gradient of `loss(leaf)` at a leaf copy of `x`, through a graph of its own.
fn output_grad<B: AutodiffBackend>(
    x: &Tensor<B, 4>,
    loss: impl FnOnce(Tensor<B, 4>) -> Tensor<B, 1>,
) -> Tensor<B::InnerBackend, 4> {
    let leaf = x.clone().detach().require_grad();
    let grads = loss(leaf.clone()).backward();
    leaf.grad(&grads).unwrap_or_else(|| leaf.inner().zeros_like())
}

/// The rate of the clip drawn for world seed `seed`: the rates the decoder's output comes at,
/// three clips in four at the interpolated 10 Hz (the default output) and one in four at
/// the key frames' 2.5 Hz (`--no-interpolate`). Frame-to-frame motion differs fourfold
/// between them, and the temporal layers see both.
fn clip_fps(seed: u64) -> f32 {
    let [key, interpolated] = clip_rates();
    if seed.is_multiple_of(4) { key } else { interpolated }
}

/// The rates of [`clip_fps`]: the key frames' and the interpolator's first ×4 stage's.
pub fn clip_rates() -> [f32; 2] {
    [crate::train::KEYFRAME_FPS, 4.0 * crate::train::KEYFRAME_FPS]
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
    /// L1 + edge + temporal reconstruction of clips of `self.window` frames, `[n, 3, h, w]`.
    fn reconstruction<B: burn::tensor::backend::Backend>(&self, rec: Tensor<B, 4>, x: Tensor<B, 4>) -> Tensor<B, 1> {
        let t = self.window;
        let [n, c, h, w] = x.dims();
        let edge = crate::diffusion::edge_l1(rec.clone(), x.clone());
        // Temporal reconstruction: each clip's frame-to-frame changes against the video's.
        let dt = |v: Tensor<B, 4>| {
            let v = v.reshape([n / t, t, c * h * w]);
            v.clone().slice([0..n / t, 1..t]) - v.slice([0..n / t, 0..t - 1])
        };
        let temporal = (dt(rec.clone()) - dt(x.clone())).abs().mean();
        (rec - x).abs().mean() + edge * self.edge_weight + temporal * self.temporal_weight
    }

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
        let requests: Vec<_> = seeds.iter().map(|&s| (s, t, clip_fps(s))).collect();
        let x_inner = self.frames.clips::<B>(&requests, device).0.inner();
        let (mean, _) = self.encoder.forward(x_inner.clone());
        let x: Tensor<B, 4> = Tensor::from_inner(x_inner);
        let features = model.decoder.features(Tensor::from_inner(mean), t);
        let rec = model.decoder.head(features.clone());
        let loss = self.reconstruction(rec.clone(), x.clone());
        if !gan {
            return loss;
        }
        let d_loss = relu(model.discriminator.forward(to_video(x.clone(), t)).neg() + 1.0).mean()
            + relu(model.discriminator.forward(to_video(rec.clone(), t).detach()) + 1.0).mean();
        // The generator term's gradient at the output, through a discriminator that it does
        // not train; the same gradient then reaches the decoder through `rec · gan_grad`.
        let frozen = model.discriminator.clone().map(&mut Detach);
        let generator = |r: Tensor<B, 4>| frozen.forward(to_video(r, t)).mean().neg();
        let mut g_value = None;
        let gan_grad = output_grad(&rec, |r| {
            let g = generator(r);
            g_value = Some(g.clone().detach());
            g
        });
        let rec_grad = output_grad(&rec, |r| self.reconstruction(r, x.clone()));
        let lambda = adaptive_weight(&model.decoder, features, rec_grad, gan_grad.clone());
        if let Ok(mut stats) = self.adaptive.lock() {
            stats.add(lambda);
        }
        tracing::debug!(lambda, "temporal decoder: adaptive GAN weight");
        let linear = (rec * Tensor::from_inner(gan_grad)).sum();
        // Gradient of the linear term, value of the generator loss (for the log).
        let g_loss = match g_value {
            Some(g) => linear.clone() + (g - linear.detach()),
            None => linear,
        };
        loss + g_loss * (lambda * self.gan_weight) + d_loss
    }
}

impl<B: AutodiffBackend> Task<B> for TemporalDecoderTask<B::InnerBackend> {
    type Model = DecoderGan<B>;

    fn init(&self, device: &B::Device, seed: u64) -> Result<Self::Model, TrainError> {
        let ae = crate::weights::load_parts(
            seeded_init(self.config.init::<B>(device), seed),
            &self.autoencoder_weights,
            None,
            crate::weights::TemporalInit::Keep,
        )?;
        let decoder = match &self.init_from {
            Some((spatial, temporal)) => crate::weights::load_parts(
                ae.decoder,
                spatial,
                temporal.as_deref(),
                crate::weights::TemporalInit::Require,
            )?,
            None => ae.decoder,
        };
        Ok(DecoderGan { decoder, discriminator: seeded_init(self.discriminator.init(device), seed ^ 1) })
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

    /// A held-out clip (top row) over its reconstruction by the temporal decoder (bottom).
    fn sample_grid(&self, model: &Self::Model, device: &B::Device) -> Option<image::RgbImage> {
        use burn::module::AutodiffModule;
        let seed = FrameSource::held_out_seeds(1)[0];
        let (clip, _) = self.frames.clip::<B::InnerBackend>(seed, self.window, crate::train::KEYFRAME_FPS, device);
        let (mean, _) = self.encoder.forward(clip.clone());
        let rec = model.decoder.valid().forward(mean, self.window);
        Some(super::tensor_grid(&[clip, rec]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::generator::{INTERPOLATION_FACTOR, KEYFRAME_FPS};

    type AB = burn::backend::Autodiff<burn::backend::Flex>;

    fn l2(t: Tensor<burn::backend::Flex, 4>) -> f64 {
        t.powi_scalar(2).sum().into_scalar().elem::<f64>().sqrt()
    }

    /// The adaptive weight from output gradients equals LDM's, taken from two full backward
    /// passes through the decoder; and the linear stand-in for the generator term sends
    /// every decoder parameter the generator loss's own gradient.
    #[test]
    fn adaptive_weight_matches_full_backward_passes() {
        use burn::tensor::Distribution;
        let device = Default::default();
        let cfg = crate::model::ModelTier::Micro.config().autoencoder.with_temporal_decoder(true);
        let decoder = seeded_init(cfg.init::<AB>(&device), 5).decoder;
        let frames = 3;
        let f = cfg.factor();
        let (h, w) = (4, 8);
        let z =
            Tensor::<AB, 4>::random([2 * frames, cfg.latent_channels, h, w], Distribution::Normal(0.0, 1.0), &device);
        let target = Tensor::<AB, 4>::random([2 * frames, 3, h * f, w * f], Distribution::Uniform(-1.0, 1.0), &device);
        let rec_loss = |r: Tensor<AB, 4>| (r - target.clone()).abs().mean();
        // A non-linear stand-in for the discriminator's score, ten times the reconstruction's scale.
        let gan_loss = |r: Tensor<AB, 4>| (r.clone() * r).mean().mul_scalar(-10.0);
        let kernel_grad = |loss: &dyn Fn(Tensor<AB, 4>) -> Tensor<AB, 1>| {
            let grads = loss(decoder.forward(z.clone(), frames)).backward();
            decoder.conv_out.weight.val().grad(&grads).unwrap()
        };
        let expected = l2(kernel_grad(&rec_loss)) / (l2(kernel_grad(&gan_loss)) + 1e-4);

        let features = decoder.features(z.clone(), frames);
        let rec = decoder.head(features.clone());
        let gan_grad = output_grad(&rec, gan_loss);
        let got = adaptive_weight(&decoder, features.clone(), output_grad(&rec, rec_loss), gan_grad.clone());
        assert!((got - expected).abs() <= 1e-4 * expected, "adaptive weight {got}, full backward passes {expected}");
        assert!(got > 0.0 && got < 1.0, "{got}: the stand-in's gradient should outweigh the reconstruction's");

        // The linear stand-in `rec · gan_grad` against the generator loss itself, at a middle block.
        let probe = |loss: Tensor<AB, 1>| {
            let grads = loss.backward();
            decoder.mid[0].res.conv1.weight.val().grad(&grads).unwrap()
        };
        let direct = probe(gan_loss(decoder.forward(z.clone(), frames)));
        let linear = probe((decoder.head(decoder.features(z, frames)) * Tensor::from_inner(gan_grad)).sum());
        let diff = l2(direct.clone() - linear);
        assert!(diff <= 1e-4 * l2(direct), "gradient differs by {diff}");
    }

    #[test]
    fn adaptive_stats_track_mean_and_range() {
        let mut stats = AdaptiveStats::default();
        assert_eq!(stats.mean(), None);
        for l in [0.5, 0.1, 0.3] {
            stats.add(l);
        }
        assert_eq!((stats.batches, stats.min, stats.max), (3, 0.1, 0.5));
        assert!((stats.mean().unwrap() - 0.3).abs() < 1e-12);
    }

    /// The decoder trains on the rates `generate` decodes: key frames and interpolated frames.
    #[test]
    fn clips_come_at_the_rates_generate_decodes() {
        assert_eq!(clip_rates(), [KEYFRAME_FPS, KEYFRAME_FPS * INTERPOLATION_FACTOR as f32]);
        let seeds: Vec<u64> = (0..400).map(|i| i * 7919 + 13).collect();
        let key = seeds.iter().filter(|&&s| clip_fps(s) == KEYFRAME_FPS).count();
        assert!((80..=120).contains(&key), "{key} of 400 clips at the key frames' rate, expected about 100");
        assert!(seeds.iter().all(|&s| clip_rates().contains(&clip_fps(s))));
    }
}
