//! The trained networks as the sampler's [`Denoiser`]s, with the conditions their
//! training dropped for classifier-free and context guidance.

use burn::tensor::{Int, Tensor, backend::Backend};

use crate::diffusion::{Condition, Denoiser};
use crate::model::{Boxes, Labels, UNet, UNetInput, Upsampler};

fn timesteps<B: Backend>(t: usize, n: usize, device: &B::Device) -> Tensor<B, 1> {
    Tensor::full([n], t as f32, device)
}

/// The image LDM's condition: labels and box layout. Its training dropped each on its own,
/// so guidance can scale them apart: the boxes take the place of the video models' context
/// (kept when only the labels are dropped), and equal weights guide both jointly
/// ([`crate::pipeline::GenerateOptions::first_frame_guidance`]).
#[derive(Debug, Clone)]
pub struct ImageCond<B: Backend> {
    pub labels: Option<Labels<B>>,
    pub boxes: Option<Boxes<B>>,
}

impl<B: Backend> Condition for ImageCond<B> {
    fn without_labels(&self) -> Self {
        ImageCond { labels: None, boxes: self.boxes.clone() }
    }
    fn unconditional(&self) -> Self {
        ImageCond { labels: None, boxes: None }
    }
}

/// The box-conditioned image LDM.
pub struct ImageDenoiser<'a, B: Backend>(pub &'a UNet<B>);

impl<B: Backend> Denoiser<B, 4> for ImageDenoiser<'_, B> {
    type Cond = ImageCond<B>;

    fn predict(&self, x_t: Tensor<B, 4>, t: usize, cond: &ImageCond<B>) -> Tensor<B, 4> {
        let [n, ..] = x_t.dims();
        let device = x_t.device();
        let mut input = UNetInput::new(x_t, timesteps(t, n, &device), 1);
        input.labels = cond.labels.clone();
        input.boxes = cond.boxes.clone();
        self.0.forward(input)
    }
}

/// A video model's condition: labels, the context `(m ∘ z, m)` and, for the
/// interpolator, the fps stage.
#[derive(Debug, Clone)]
pub struct VideoCond<B: Backend> {
    /// Frames per clip.
    pub frames: usize,
    pub labels: Option<Labels<B>>,
    /// `[b·t, z + 1, h, w]`; `None` is the all-zero mask (no context).
    pub context: Option<Tensor<B, 4>>,
    pub fps_stage: Option<Tensor<B, 1, Int>>,
}

impl<B: Backend> Condition for VideoCond<B> {
    fn without_labels(&self) -> Self {
        VideoCond { labels: None, ..self.clone() }
    }
    fn unconditional(&self) -> Self {
        VideoCond { labels: None, context: None, ..self.clone() }
    }
}

/// The prediction model or the interpolator.
pub struct VideoDenoiser<'a, B: Backend>(pub &'a UNet<B>);

impl<B: Backend> Denoiser<B, 4> for VideoDenoiser<'_, B> {
    type Cond = VideoCond<B>;

    fn predict(&self, x_t: Tensor<B, 4>, t: usize, cond: &VideoCond<B>) -> Tensor<B, 4> {
        let [n, ..] = x_t.dims();
        let device = x_t.device();
        let mut input = UNetInput::new(x_t, timesteps(t, n, &device), cond.frames);
        input.labels = cond.labels.clone();
        input.context = cond.context.clone();
        input.fps_stage = cond.fps_stage.clone();
        self.0.forward(input)
    }
}

/// The upsampler's condition: the noise-augmented, bilinearly upsampled low-resolution
/// frames and their augmentation level. Nothing is dropped (no guidance).
#[derive(Debug, Clone)]
pub struct UpsampleCond<B: Backend> {
    pub frames: usize,
    pub low: Tensor<B, 4>,
    pub level: Tensor<B, 1>,
}

impl<B: Backend> Condition for UpsampleCond<B> {
    fn without_labels(&self) -> Self {
        self.clone()
    }
    fn unconditional(&self) -> Self {
        self.clone()
    }
}

pub struct UpsampleDenoiser<'a, B: Backend>(pub &'a Upsampler<B>);

impl<B: Backend> Denoiser<B, 4> for UpsampleDenoiser<'_, B> {
    type Cond = UpsampleCond<B>;

    fn predict(&self, x_t: Tensor<B, 4>, t: usize, cond: &UpsampleCond<B>) -> Tensor<B, 4> {
        let [n, ..] = x_t.dims();
        let device = x_t.device();
        self.0.forward(x_t, timesteps(t, n, &device), cond.low.clone(), cond.level.clone(), cond.frames)
    }
}
