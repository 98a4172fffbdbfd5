//! burn modules of the Video LDM, one block family per file. Every module has a
//! burn `Config` with `init`; tier presets live in `tiers`. All `forward`s state
//! their shapes with the axis names `b` batch, `t` frames, `c` channels, `h`, `w`.

pub mod attention;
pub mod autoencoder;
pub mod conditioning;
pub mod discriminator;
pub mod embedding;
pub mod layout;
pub mod norm;
pub mod resnet;
pub mod temporal;
pub mod tiers;
pub mod unet;
pub mod upsampler;

pub use autoencoder::{Autoencoder, AutoencoderConfig};
pub use conditioning::{BoxEncoderConfig, Boxes, Labels, box_cover};
pub use discriminator::{Discriminator3d, Discriminator3dConfig};
pub use tiers::{ModelTier, TierConfig};
pub use unet::{GlobalCondition, UNet, UNetConfig, UNetInput, VideoConfig};
pub use upsampler::{Upsampler, UpsamplerConfig};

#[cfg(test)]
mod tests;
