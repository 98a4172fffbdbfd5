//! Stage 1: the KL autoencoder.

use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{FrameSource, tensor_grid};
use crate::diffusion::noise::gaussian;
use crate::model::{Autoencoder, AutoencoderConfig};
use crate::train::TrainError;
use crate::train::fit::{Batch, Task};
use crate::train::init::seeded_init;

/// Stage 1: the KL autoencoder on single frames. Loss: L1 + edge (image-gradient
/// L1, standing in for LPIPS, which has no offline weights) + a small KL.
pub struct AutoencoderTask {
    pub config: AutoencoderConfig,
    pub frames: FrameSource,
    pub batch: usize,
    pub kl_weight: f64,
    pub edge_weight: f64,
    /// Training crop `(height, width)` (multiples of 8, at offsets on the latent grid);
    /// held-out losses always use whole frames.
    pub crop: Option<(usize, usize)>,
    /// Start from these trained autoencoder weights instead of a seeded init.
    pub init_from: Option<std::path::PathBuf>,
    /// Train the decoder only: the encoder, and so the latent space every later stage
    /// was trained on, stays exactly as loaded (Video LDM fine-tunes decoders the same way).
    pub freeze_encoder: bool,
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
            crop: None,
            init_from: None,
            freeze_encoder: false,
        }
    }

    /// Fine-tunes the decoder of the autoencoder in `weights`, its encoder frozen.
    pub fn decoder_only(mut self, weights: std::path::PathBuf) -> Self {
        self.init_from = Some(weights);
        self.freeze_encoder = true;
        self
    }

    pub fn with_crop(mut self, crop: Option<(usize, usize)>) -> Self {
        self.crop = crop;
        self
    }

    /// `x` cropped to `self.crop` at offsets (multiples of 8) drawn from `rng`.
    fn crop<B: burn::tensor::backend::Backend>(&self, x: Tensor<B, 4>, rng: &mut ChaCha8Rng) -> Tensor<B, 4> {
        let [n, c, h, w] = x.dims();
        match self.crop {
            Some((ch, cw)) if ch < h || cw < w => {
                let (ch, cw) = (ch.min(h), cw.min(w));
                let y = rng.random_range(0..=(h - ch) / 8) * 8;
                let xo = rng.random_range(0..=(w - cw) / 8) * 8;
                x.slice([0..n, 0..c, y..y + ch, xo..xo + cw])
            }
            _ => x,
        }
    }

    fn reconstruction_loss<B: burn::tensor::backend::Backend>(
        &self,
        rec: Tensor<B, 4>,
        x: Tensor<B, 4>,
    ) -> Tensor<B, 1> {
        let l1 = (rec.clone() - x.clone()).abs().mean();
        l1 + crate::diffusion::edge_l1(rec, x) * self.edge_weight
    }
}

impl<B: AutodiffBackend> Task<B> for AutoencoderTask {
    type Model = Autoencoder<B>;

    fn init(&self, device: &B::Device, seed: u64) -> Result<Self::Model, TrainError> {
        let mut model = seeded_init(self.config.init(device), seed);
        if let Some(path) = &self.init_from {
            model = crate::weights::load_parts(model, path, None, crate::weights::TemporalInit::Require)?;
        }
        if self.freeze_encoder {
            use burn::module::Module;
            model.encoder = model.encoder.no_grad();
        }
        Ok(model)
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
        let x = self.frames.frames::<B>(seeds, device);
        let mut rng = ChaCha8Rng::seed_from_u64(draw_seed);
        let x = match batch {
            Batch::Train { .. } => self.crop(x, &mut rng),
            Batch::HeldOut => x,
        };
        let (mean, logvar) = model.encoder.forward(x.clone());
        match batch {
            Batch::Train { .. } => {
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

/// Encodes frames `[n, 3, H, W]` with a frozen autoencoder into scaled latents
/// `[n, z, h, w]` (the posterior mean, normalised by `latent`), outside the autograd graph.
pub fn encode_frozen<B: AutodiffBackend>(
    ae: &Autoencoder<B::InnerBackend>,
    frames: Tensor<B::InnerBackend, 4>,
    latent: &crate::diffusion::LatentNorm,
) -> Tensor<B, 4> {
    Tensor::from_inner(crate::pipeline::encode_frames(ae, latent, frames))
}

/// Mean PSNR (dB) of `ae`'s reconstructions (posterior mean) of the `n` held-out frames,
/// decoded four at a time.
pub fn held_out_psnr<B: burn::tensor::backend::Backend>(
    ae: &Autoencoder<B>,
    frames: &FrameSource,
    n: usize,
    device: &B::Device,
) -> f64 {
    let seeds = FrameSource::held_out_seeds(n);
    let per_frame: Vec<f64> = seeds
        .chunks(4)
        .flat_map(|part| {
            let x = frames.frames::<B>(part, device);
            let (mean, _) = ae.encoder.forward(x.clone());
            crate::data::psnr(ae.decoder.forward(mean, 1), x)
        })
        .collect();
    per_frame.iter().sum::<f64>() / per_frame.len().max(1) as f64
}
