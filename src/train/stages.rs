//! The stages' tasks: which model, which batches, which loss.

use std::cell::RefCell;

use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::TrainError;
use super::fit::Task;
use crate::data::{EVAL_SEED_BASE, image_to_tensor, random_conditions};
use crate::diffusion::noise::gaussian;
use crate::model::{Autoencoder, AutoencoderConfig};
use crate::world::{Renderer, World, mix};

/// Single frames from the procedural world, a pure function of (run seed, step, index).
pub struct FrameSource {
    renderer: RefCell<Renderer>,
    seed: u64,
}

impl FrameSource {
    pub fn new(height: usize, width: usize, seed: u64) -> Self {
        FrameSource { renderer: RefCell::new(Renderer::new(width as u32, height as u32)), seed }
    }

    /// The world seed of sample `i` of `step` (always below the evaluation range).
    pub fn train_seed(&self, step: u64, i: usize) -> u64 {
        mix(self.seed ^ mix(step.wrapping_mul(0x1_0000) + i as u64)) % EVAL_SEED_BASE
    }

    /// A frame of world `seed` at a time drawn from the seed (0..6 s), as `[3, h, w]` in [-1, 1].
    pub fn frame<B: burn::tensor::backend::Backend>(&self, seed: u64, device: &B::Device) -> Tensor<B, 3> {
        // A world without requested boxes always builds.
        let mut world = World::new(seed, random_conditions(seed), &[]).expect("box-free worlds always build");
        world.advance_to((mix(seed ^ 0x7133) % 240) as f32 / 40.0);
        let (img, _) = self.renderer.borrow_mut().render(&world, 0);
        image_to_tensor(&img, device)
    }

    /// Training batch `[n, 3, h, w]` of `step`.
    pub fn batch<B: burn::tensor::backend::Backend>(&self, step: u64, n: usize, device: &B::Device) -> Tensor<B, 4> {
        Tensor::stack((0..n).map(|i| self.frame(self.train_seed(step, i), device)).collect(), 0)
    }

    /// The fixed held-out batch `[n, 3, h, w]` (seeds from the evaluation range).
    pub fn held_out<B: burn::tensor::backend::Backend>(&self, n: usize, device: &B::Device) -> Tensor<B, 4> {
        Tensor::stack((0..n).map(|i| self.frame(EVAL_SEED_BASE + i as u64, device)).collect(), 0)
    }
}

/// Stage 1: the KL autoencoder on single frames. Loss: L1 + edge (image-gradient
/// L1, standing in for LPIPS, which has no offline weights) + a small KL.
pub struct AutoencoderTask {
    pub config: AutoencoderConfig,
    pub frames: FrameSource,
    pub batch: usize,
    pub seed: u64,
    pub kl_weight: f64,
    pub edge_weight: f64,
}

impl AutoencoderTask {
    pub fn new(config: AutoencoderConfig, frame_size: (usize, usize), batch: usize, seed: u64) -> Self {
        AutoencoderTask {
            config,
            frames: FrameSource::new(frame_size.0, frame_size.1, seed),
            batch,
            seed,
            // LDM's KL-f8 uses 1e-6: the latent stays close to deterministic.
            kl_weight: 1e-6,
            edge_weight: 0.5,
        }
    }

    fn reconstruction_loss<B: burn::tensor::backend::Backend>(&self, rec: Tensor<B, 4>, x: Tensor<B, 4>) -> Tensor<B, 1> {
        let l1 = (rec.clone() - x.clone()).abs().mean();
        let [n, c, h, w] = x.dims();
        let dx = |t: Tensor<B, 4>| t.clone().slice([0..n, 0..c, 0..h, 1..w]) - t.slice([0..n, 0..c, 0..h, 0..w - 1]);
        let dy = |t: Tensor<B, 4>| t.clone().slice([0..n, 0..c, 1..h, 0..w]) - t.slice([0..n, 0..c, 0..h - 1, 0..w]);
        let edge = (dx(rec.clone()) - dx(x.clone())).abs().mean() + (dy(rec) - dy(x)).abs().mean();
        l1 + edge * self.edge_weight
    }
}

impl<B: AutodiffBackend> Task<B> for AutoencoderTask {
    type Model = Autoencoder<B>;

    fn init(&self, device: &B::Device) -> Result<Self::Model, TrainError> {
        Ok(self.config.init(device))
    }

    fn loss(&self, model: &Self::Model, step: u64, device: &B::Device) -> Tensor<B, 1> {
        let x = self.frames.batch::<B>(step, self.batch, device);
        let (mean, logvar) = model.encoder.forward(x.clone());
        let mut rng = ChaCha8Rng::seed_from_u64(mix(self.seed ^ step ^ 0xAE));
        let noise = gaussian::<B, 4, _>(mean.dims(), &mut rng, device);
        let z = Autoencoder::sample(mean.clone(), logvar.clone(), noise);
        let rec = model.decoder.forward(z, 1);
        self.reconstruction_loss(rec, x) + Autoencoder::kl(mean, logvar) * self.kl_weight
    }

    fn held_out_loss(&self, model: &Self::Model, device: &B::Device) -> f32 {
        let x = self.frames.held_out::<B>(self.batch.max(4), device);
        let (mean, _) = model.encoder.forward(x.clone());
        let rec = model.decoder.forward(mean, 1);
        use burn::tensor::ElementConversion;
        (rec - x).abs().mean().into_scalar().elem()
    }
}
