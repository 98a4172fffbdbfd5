//! Clip datasets: clips streamed straight from the procedural world (training needs
//! no disk), `synth` datasets on disk, and batching of clips into burn tensors.
//!
//! Seed ranges keep training and evaluation apart: training clips use seeds below
//! [`EVAL_SEED_BASE`], held-out evaluation scenes use seeds from it upwards.

mod clips;
mod synth;
mod tensor;

pub use clips::{Clip, ClipSpec, ClipStream, random_conditions, render_clip};
pub use synth::{DATASET_FORMAT, DatasetIndex, IndexEntry, SynthOptions, SynthProgress, write_dataset};
pub use tensor::{
    clip_to_tensor, clips_to_batch, image_to_tensor, images_to_tensor, psnr, temporal_error, tensor_to_images,
};

/// First seed of the held-out evaluation range; training seeds stay below it.
pub const EVAL_SEED_BASE: u64 = 1 << 40;
