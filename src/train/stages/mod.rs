//! The stages' tasks: which model, which batches, which loss. One file per stage.

mod autoencoder;
mod frames;
mod image_ldm;
mod temporal_decoder;
mod upsampler;
mod video;

pub use autoencoder::{AutoencoderTask, encode_frozen, held_out_psnr};
pub use frames::{EgoState, FrameSource, outline_box, tensor_grid, visible_boxes};
pub use image_ldm::ImageLdmTask;
pub use temporal_decoder::{TemporalDecoderTask, clip_rates as temporal_decoder_rates};
pub use upsampler::{UpsamplerPhase, UpsamplerTask};
pub use video::{GuessNoise, VideoLdmTask, VideoTask, context as video_context};

/// Noise seed of the diffusion stages' `samples.png` (fixed: successive grids differ
/// only by the model).
const SAMPLE_GRID_SEED: u64 = 0x5a3e;
