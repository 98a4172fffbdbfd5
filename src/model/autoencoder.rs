//! The KL autoencoder (LDM's first stage): frames `[n, 3, H, W]` in [-1, 1] ↔
//! latents `[n, z, H/f, W/f]` with `f = 2^(levels−1)`. With `temporal_decoder`,
//! every decoder ResBlock is followed by a 3D-conv temporal block with an α blend
//! (Video LDM §3.1.1: the decoder is fine-tuned on video, the encoder stays per-frame).

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::tensor::activation::silu;
use burn::tensor::{Tensor, backend::Backend};

use super::norm::{Norm, NormConfig, NormKind};
use super::resnet::{ResBlock, ResBlockConfig, conv3x3, downsample_conv, upsample_nearest};
use super::temporal::{TemporalResBlock, TemporalResBlockConfig, VideoContext};

#[derive(Config, Debug)]
pub struct AutoencoderConfig {
    #[config(default = 3)]
    pub image_channels: usize,
    pub latent_channels: usize,
    pub base_channels: usize,
    /// Width multiplier per level; each level after the first halves the resolution.
    pub channel_mult: Vec<usize>,
    pub res_blocks: usize,
    #[config(default = "NormKind::Group(32)")]
    pub norm: NormKind,
    /// Temporal layers in the decoder (the temporal decoder).
    #[config(default = false)]
    pub temporal_decoder: bool,
}

impl AutoencoderConfig {
    /// Spatial downsampling factor `f`.
    pub fn factor(&self) -> usize {
        1 << (self.channel_mult.len() - 1)
    }

    pub fn init<B: Backend>(&self, device: &B::Device) -> Autoencoder<B> {
        let chans: Vec<usize> = self.channel_mult.iter().map(|m| m * self.base_channels).collect();
        let res = |cin, cout| ResBlockConfig::new(cin, cout).with_norm(self.norm).init(device);
        let mut levels = Vec::new();
        let mut ch = chans[0];
        for (i, &c) in chans.iter().enumerate() {
            let blocks = (0..self.res_blocks).map(|k| res(if k == 0 { ch } else { c }, c)).collect();
            ch = c;
            let downsample = (i + 1 < chans.len()).then(|| downsample_conv(c, c, device));
            levels.push(EncoderLevel { blocks, downsample });
        }
        let encoder = Encoder {
            conv_in: conv3x3(self.image_channels, chans[0], device),
            levels,
            mid: vec![res(ch, ch), res(ch, ch)],
            norm_out: NormConfig::new(self.norm, ch).init(device),
            conv_out: conv3x3(ch, 2 * self.latent_channels, device),
        };
        let dblock = |cin, cout| DecoderBlock {
            res: res(cin, cout),
            temporal: self
                .temporal_decoder
                .then(|| TemporalResBlockConfig::new(cout).with_norm(self.norm).init(device)),
        };
        let top = *chans.last().unwrap_or(&self.base_channels);
        let mut dlevels = Vec::new();
        let mut ch = top;
        for (i, &c) in chans.iter().enumerate().rev() {
            let blocks = (0..=self.res_blocks).map(|k| dblock(if k == 0 { ch } else { c }, c)).collect();
            ch = c;
            dlevels.push(DecoderLevel { blocks, upsample: (i > 0).then(|| conv3x3(c, c, device)) });
        }
        let decoder = Decoder {
            conv_in: conv3x3(self.latent_channels, top, device),
            mid: vec![dblock(top, top), dblock(top, top)],
            levels: dlevels,
            norm_out: NormConfig::new(self.norm, ch).init(device),
            conv_out: conv3x3(ch, self.image_channels, device),
        };
        Autoencoder { encoder, decoder }
    }
}

#[derive(Module, Debug)]
pub struct EncoderLevel<B: Backend> {
    pub blocks: Vec<ResBlock<B>>,
    pub downsample: Option<Conv2d<B>>,
}

#[derive(Module, Debug)]
pub struct Encoder<B: Backend> {
    pub conv_in: Conv2d<B>,
    pub levels: Vec<EncoderLevel<B>>,
    pub mid: Vec<ResBlock<B>>,
    pub norm_out: Norm<B>,
    pub conv_out: Conv2d<B>,
}

impl<B: Backend> Encoder<B> {
    /// `x`: `[n, 3, H, W]` → `(mean, logvar)`, each `[n, z, H/f, W/f]`.
    pub fn forward(&self, x: Tensor<B, 4>) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let mut h = self.conv_in.forward(x);
        for level in &self.levels {
            for b in &level.blocks {
                h = b.forward(h, None);
            }
            if let Some(ds) = &level.downsample {
                h = ds.forward(h);
            }
        }
        for b in &self.mid {
            h = b.forward(h, None);
        }
        let moments = self.conv_out.forward(silu(self.norm_out.forward(h)));
        let [n, c2, hh, ww] = moments.dims();
        let z = c2 / 2;
        let mean = moments.clone().slice([0..n, 0..z, 0..hh, 0..ww]);
        // Clamp as LDM does: keeps exp(logvar) finite early in training.
        let logvar = moments.slice([0..n, z..c2, 0..hh, 0..ww]).clamp(-30.0, 20.0);
        (mean, logvar)
    }
}

#[derive(Module, Debug)]
pub struct DecoderBlock<B: Backend> {
    pub res: ResBlock<B>,
    pub temporal: Option<TemporalResBlock<B>>,
}

#[derive(Module, Debug)]
pub struct DecoderLevel<B: Backend> {
    pub blocks: Vec<DecoderBlock<B>>,
    pub upsample: Option<Conv2d<B>>,
}

#[derive(Module, Debug)]
pub struct Decoder<B: Backend> {
    pub conv_in: Conv2d<B>,
    pub mid: Vec<DecoderBlock<B>>,
    pub levels: Vec<DecoderLevel<B>>,
    pub norm_out: Norm<B>,
    pub conv_out: Conv2d<B>,
}

impl<B: Backend> Decoder<B> {
    /// `z`: `[b·t, z, h, w]` → frames `[b·t, 3, h·f, w·f]`; temporal layers mix the
    /// `frames` of each clip (pass `frames = 1` to decode single images).
    pub fn forward(&self, z: Tensor<B, 4>, frames: usize) -> Tensor<B, 4> {
        let ctx = VideoContext { frames, image_only: frames == 1, context: None };
        let block = |b: &DecoderBlock<B>, h: Tensor<B, 4>| {
            let h = b.res.forward(h, None);
            match &b.temporal {
                Some(t) => t.forward(h, None, &ctx),
                None => h,
            }
        };
        let mut h = self.conv_in.forward(z);
        for b in &self.mid {
            h = block(b, h);
        }
        for level in &self.levels {
            for b in &level.blocks {
                h = block(b, h);
            }
            if let Some(us) = &level.upsample {
                h = upsample_nearest(h, us);
            }
        }
        self.conv_out.forward(silu(self.norm_out.forward(h)))
    }
}

#[derive(Module, Debug)]
pub struct Autoencoder<B: Backend> {
    pub encoder: Encoder<B>,
    pub decoder: Decoder<B>,
}

impl<B: Backend> Autoencoder<B> {
    /// Spatial downsampling factor `f` (frames are `f` times the latents' size).
    pub fn factor(&self) -> usize {
        1 << self.decoder.levels.len().saturating_sub(1)
    }

    /// Reparameterised sample `mean + σ·noise` (`noise` drawn by the caller's seeded RNG).
    pub fn sample(mean: Tensor<B, 4>, logvar: Tensor<B, 4>, noise: Tensor<B, 4>) -> Tensor<B, 4> {
        mean + (logvar * 0.5).exp() * noise
    }

    /// KL divergence to N(0, I), mean over elements.
    pub fn kl(mean: Tensor<B, 4>, logvar: Tensor<B, 4>) -> Tensor<B, 1> {
        ((mean.powi_scalar(2) + logvar.clone().exp() - logvar - 1.0) * 0.5).mean()
    }
}
