//! Stage 2: the box- and label-conditioned image LDM.

use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::{FrameSource, encode_frozen};
use crate::diffusion::noise::gaussian;
use crate::model::Autoencoder;
use crate::train::TrainError;
use crate::train::fit::{Batch, Task};
use crate::train::init::seeded_init;

/// Stage 2: the box- and label-conditioned image LDM on frozen latents.
/// Labels and boxes are each dropped with probability `drop_p` (classifier-free guidance).
pub struct ImageLdmTask<IB: burn::tensor::backend::Backend> {
    pub config: crate::model::UNetConfig,
    pub autoencoder: Autoencoder<IB>,
    /// Autoencoder latents → the denoiser's.
    pub latent: crate::diffusion::LatentNorm,
    /// Schedule and parameterisation (recorded in the manifest; the video stages take it over).
    pub diffusion: crate::diffusion::DiffusionConfig,
    /// `diffusion`'s schedule.
    pub schedule: crate::diffusion::NoiseSchedule,
    pub frames: FrameSource,
    pub batch: usize,
    pub drop_p: f64,
    /// Extra training-loss weight on car boxes: each latent cell's squared error counts
    /// `1 + box_weight × ` the fraction of it the frame's boxes cover (requested or dropped
    /// for CFG alike: the cars are in the target either way). 0: uniform. Held-out losses
    /// stay uniform, so runs compare.
    pub box_weight: f64,
    /// Start from these trained image LDM weights instead of a seeded init.
    pub init_from: Option<std::path::PathBuf>,
}

/// Condition dropout and noise of one diffusion batch, drawn from the step's seed.
struct DiffusionDraws<B: burn::tensor::backend::Backend> {
    noise: Tensor<B, 4>,
    timesteps: Vec<usize>,
    keep_labels: Vec<bool>,
    keep_boxes: Vec<bool>,
}

fn draws<B: burn::tensor::backend::Backend>(
    seed: u64,
    n: usize,
    shape: [usize; 4],
    drop_p: f64,
    train_steps: usize,
    device: &B::Device,
) -> DiffusionDraws<B> {
    use rand::RngExt;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let noise = gaussian::<B, 4, _>(shape, &mut rng, device);
    let timesteps = crate::diffusion::noise::sample_timesteps(&mut rng, n, train_steps);
    let keep_labels = (0..n).map(|_| !rng.random_bool(drop_p)).collect();
    let keep_boxes = (0..n).map(|_| !rng.random_bool(drop_p)).collect();
    DiffusionDraws { noise, timesteps, keep_labels, keep_boxes }
}

impl<IB: burn::tensor::backend::Backend> ImageLdmTask<IB> {
    fn diffusion_loss<B: AutodiffBackend<InnerBackend = IB>>(
        &self,
        model: &crate::model::UNet<B>,
        seeds: &[u64],
        draw_seed: u64,
        drop_p: f64,
        box_weight: f64,
        device: &B::Device,
    ) -> Tensor<B, 1> {
        let (frames, conds, boxes) = self.frames.labelled_frames::<B>(seeds, device);
        let z0 = encode_frozen::<B>(&self.autoencoder, frames.inner(), &self.latent);
        let [n, c, h, w] = z0.dims();
        let d = draws::<B>(draw_seed, n, [n, c, h, w], drop_p, self.schedule.train_steps(), device);
        let x_t = self.schedule.add_noise(z0.clone(), d.noise.clone(), &d.timesteps);
        let mut input = crate::model::UNetInput::new(
            x_t,
            Tensor::from_floats(d.timesteps.iter().map(|&t| t as f32).collect::<Vec<_>>().as_slice(), device),
            1,
        );
        input.labels = Some(crate::model::Labels::new(
            &conds.iter().zip(&d.keep_labels).map(|(c, k)| k.then_some(*c)).collect::<Vec<_>>(),
            device,
        ));
        let slots = self.config.boxes.as_ref().map_or(0, |b| b.slots);
        let weight_map =
            (box_weight > 0.0).then(|| crate::model::box_cover::<B>(&boxes, h, w, device) * box_weight + 1.0);
        input.boxes = Some(crate::model::Boxes::new(
            &boxes.into_iter().zip(&d.keep_boxes).map(|(b, k)| k.then_some(b)).collect::<Vec<_>>(),
            slots,
            h,
            w,
            device,
        ));
        let target = self.schedule.training_target(z0, d.noise, &d.timesteps, self.diffusion.prediction);
        match weight_map {
            Some(map) => crate::diffusion::spatially_weighted_mse(model.forward(input), target, map),
            None => crate::diffusion::mse(model.forward(input), target),
        }
    }
}

impl<B: AutodiffBackend> Task<B> for ImageLdmTask<B::InnerBackend> {
    type Model = crate::model::UNet<B>;

    fn init(&self, device: &B::Device, seed: u64) -> Result<Self::Model, TrainError> {
        let model = seeded_init(self.config.init(device), seed);
        Ok(match &self.init_from {
            Some(path) => crate::weights::load_parts(model, path, None, crate::weights::TemporalInit::Require)?,
            None => model,
        })
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
        let box_weight = if matches!(batch, Batch::Train { .. }) { self.box_weight } else { 0.0 };
        self.diffusion_loss(model, seeds, draw_seed, batch.dropout(self.drop_p), box_weight, device)
    }

    /// Held-out renders (top row) over samples of the model for their labels and boxes
    /// (bottom row; boxes outlined in red on both): 10 DDIM steps, label guidance 2,
    /// decoded by the frozen autoencoder.
    fn sample_grid(&self, model: &Self::Model, device: &B::Device) -> Option<image::RgbImage> {
        use crate::diffusion::{Ddim, Guidance, Sampler};
        use crate::pipeline::denoise::{ImageCond, ImageDenoiser};
        use burn::module::AutodiffModule;
        let unet = model.valid();
        let n = SAMPLE_GRID_FRAMES;
        let (mut frames, mut conds, mut boxes) = (Vec::new(), Vec::new(), Vec::new());
        for s in FrameSource::held_out_seeds(n) {
            let (f, c, b) = self.frames.labelled_frame::<B::InnerBackend>(s, device);
            frames.push(f);
            conds.push(Some(c));
            boxes.push(Some(b));
        }
        let x = Tensor::stack(frames, 0);
        let [_, _, fh, fw] = x.dims();
        let f = self.autoencoder.factor();
        let (h, w) = (fh / f, fw / f);
        let slots = self.config.boxes.as_ref().map_or(0, |b| b.slots);
        let cond = ImageCond {
            labels: Some(crate::model::Labels::new(&conds, device)),
            boxes: Some(crate::model::Boxes::new(&boxes, slots, h, w, device)),
        };
        // Labels and boxes guided jointly at 2, as `generate` does by default.
        let sampler = Sampler::new(Ddim::for_model(&self.diffusion, 10, 0.0).ok()?, Guidance::new(2.0, 2.0));
        let mut rng = ChaCha8Rng::seed_from_u64(super::SAMPLE_GRID_SEED);
        let z_t = gaussian::<B::InnerBackend, 4, _>([n, self.config.in_channels, h, w], &mut rng, device);
        let z = sampler.sample(&ImageDenoiser(&unet), z_t, &cond, &mut rng);
        let samples = self.autoencoder.decoder.forward(self.latent.denormalize(z), 1);
        let mut grid = super::tensor_grid(&[x, samples]);
        let gap = 2;
        for (i, b) in boxes.iter().flatten().enumerate() {
            for row in 0..2 {
                let (ox, oy) = ((i * (fw + gap)) as u32, (row * (fh + gap)) as u32);
                for &[x1, y1, x2, y2] in b {
                    let (sx, sy) = (fw as f32, fh as f32);
                    super::outline_box(&mut grid, (ox, oy), [x1 * sx, y1 * sy, x2 * sx, y2 * sy]);
                }
            }
        }
        Some(grid)
    }
}

/// Frames in the image LDM's `samples.png`.
const SAMPLE_GRID_FRAMES: usize = 4;
