//! Stage 3: the temporal decoder against a 3D patch discriminator.

use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;

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
/// changes against the video's (temporal reconstruction), plus after
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
    /// Weight of the temporal reconstruction term: L1 between the reconstruction's
    /// frame-to-frame changes and the video's (the model card's temporal error).
    pub temporal_weight: f64,
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
        let rec = model.decoder.forward(Tensor::from_inner(mean), t);
        let [n, c, h, w] = x.dims();
        let dx = |v: Tensor<B, 4>| v.clone().slice([0..n, 0..c, 0..h, 1..w]) - v.slice([0..n, 0..c, 0..h, 0..w - 1]);
        let dy = |v: Tensor<B, 4>| v.clone().slice([0..n, 0..c, 1..h, 0..w]) - v.slice([0..n, 0..c, 0..h - 1, 0..w]);
        let edge = (dx(rec.clone()) - dx(x.clone())).abs().mean() + (dy(rec.clone()) - dy(x.clone())).abs().mean();
        // Temporal reconstruction: each clip's frame-to-frame changes against the video's.
        let dt = |v: Tensor<B, 4>| {
            let v = v.reshape([n / t, t, c * h * w]);
            v.clone().slice([0..n / t, 1..t]) - v.slice([0..n / t, 0..t - 1])
        };
        let temporal = (dt(rec.clone()) - dt(x.clone())).abs().mean();
        let mut loss =
            (rec.clone() - x.clone()).abs().mean() + edge * self.edge_weight + temporal * self.temporal_weight;
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

    fn init(&self, device: &B::Device, seed: u64) -> Result<Self::Model, TrainError> {
        let ae = crate::weights::load_parts(
            seeded_init(self.config.init::<B>(device), seed),
            &self.autoencoder_weights,
            None,
            crate::weights::TemporalInit::Keep,
        )?;
        Ok(DecoderGan { decoder: ae.decoder, discriminator: seeded_init(self.discriminator.init(device), seed ^ 1) })
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
