//! The KL autoencoder (LDM's first stage): frames `[n, 3, H, W]` in [-1, 1] ↔
//! latents `[n, z, H/f, W/f]` with `f = r·2^(levels−1)` (`r` the stem's block size). With
//! `temporal_decoder`, every decoder ResBlock is followed by a 3D-conv temporal block with
//! an α blend (Video LDM §3.1.1: the decoder is fine-tuned on video, the encoder stays
//! per-frame).
//!
//! With `patch`, frames enter and leave as pixel blocks on channels (a lossless stem, no
//! convolution at full resolution). With `shortcuts`, every change of resolution also
//! carries a parameter-free path (DC-AE's residual autoencoding, Chen et al. 2024, §3.1):
//! space-to-channel then channel-group averaging on the way down, channel repetition then
//! channel-to-space on the way up, and the same averaging / repetition between the
//! encoder's last features and the latent, so the learned layers fit a residual on top of
//! a path that already carries the frame. Measured on the tiny tier (docs/autoencoder.md):
//! the stem made a training step 2.75× cheaper at the same loss per step; the shortcuts
//! changed the loss per step little at this size (DC-AE reports their gain at high
//! compression ratios).

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::tensor::activation::silu;
use burn::tensor::{Tensor, backend::Backend};

use super::norm::{Norm, NormConfig, NormKind};
use super::resnet::{ResBlock, ResBlockConfig, conv3x3, downsample_conv, nearest_2x, upsample_nearest};
use super::temporal::{TemporalResBlock, TemporalResBlockConfig, VideoContext};
use super::upsampler::{depth_to_space, space_to_depth};

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
    /// Parameter-free shortcuts around every down- and upsampling and the latent (see the
    /// module doc). An `Option` so that manifests written before the field existed still
    /// parse: absent (`None`) means none, as those autoencoders were trained. The latent
    /// shortcut needs the top width to be a multiple of `latent_channels`; where it is not,
    /// only the resolution shortcuts are used.
    #[config(default = "None")]
    pub shortcuts: Option<bool>,
    /// Space-to-depth stem: frames enter as `r×r` pixel blocks on channels (`3·r²` channels
    /// at `H/r × W/r`) and leave the same way, so no convolution runs at full resolution,
    /// where burn-flex's narrow convolutions are slowest (measured: a 16-channel 3×3 conv
    /// at 128×256 ran at a sixth of the GFLOPS of a 32-channel one at 64×128). `f` becomes
    /// `r · 2^(levels−1)`. The stem is lossless (a reshape), so it loses no detail. `None`
    /// (manifests written before the field) = 1.
    #[config(default = "None")]
    pub patch: Option<usize>,
}

impl AutoencoderConfig {
    /// Spatial downsampling factor `f`.
    pub fn factor(&self) -> usize {
        self.patch_size() << (self.channel_mult.len() - 1)
    }

    /// The stem's block size `r` (see [`AutoencoderConfig::patch`]).
    pub fn patch_size(&self) -> usize {
        self.patch.unwrap_or(1).max(1)
    }

    /// Whether the residual shortcuts are on (see [`AutoencoderConfig::shortcuts`]).
    pub fn has_shortcuts(&self) -> bool {
        self.shortcuts == Some(true)
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
        let r = self.patch_size();
        let encoder = Encoder {
            conv_in: conv3x3(self.image_channels * r * r, chans[0], device),
            levels,
            mid: vec![res(ch, ch), res(ch, ch)],
            norm_out: NormConfig::new(self.norm, ch).init(device),
            conv_out: conv3x3(ch, 2 * self.latent_channels, device),
            shortcuts: self.has_shortcuts(),
            patch: r,
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
            conv_out: conv3x3(ch, self.image_channels * r * r, device),
            shortcuts: self.has_shortcuts(),
            patch: r,
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
    #[module(skip)]
    pub shortcuts: bool,
    /// Stem block size `r`.
    #[module(skip)]
    pub patch: usize,
}

impl<B: Backend> Encoder<B> {
    /// `x`: `[n, 3, H, W]` → `(mean, logvar)`, each `[n, z, H/f, W/f]`.
    pub fn forward(&self, x: Tensor<B, 4>) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let mut h = self.conv_in.forward(space_to_depth(x, self.patch));
        for level in &self.levels {
            for b in &level.blocks {
                h = b.forward(h, None);
            }
            if let Some(ds) = &level.downsample {
                h = match self.shortcuts {
                    true => {
                        let c = h_channels(&h);
                        ds.forward(h.clone()) + channel_average(space_to_depth(h, 2), c)
                    }
                    false => ds.forward(h),
                };
            }
        }
        for b in &self.mid {
            h = b.forward(h, None);
        }
        let moments = self.conv_out.forward(silu(self.norm_out.forward(h.clone())));
        let [n, c2, hh, ww] = moments.dims();
        let z = c2 / 2;
        let mut mean = moments.clone().slice([0..n, 0..z, 0..hh, 0..ww]);
        if self.shortcuts && h_channels(&h).is_multiple_of(z) {
            mean = mean + channel_average(h, z);
        }
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
    #[module(skip)]
    pub shortcuts: bool,
    /// Stem block size `r`.
    #[module(skip)]
    pub patch: usize,
}

impl<B: Backend> Decoder<B> {
    /// `z`: `[b·t, z, h, w]` → frames `[b·t, 3, h·f, w·f]`; temporal layers mix the
    /// `frames` of each clip (pass `frames = 1` to decode single images).
    pub fn forward(&self, z: Tensor<B, 4>, frames: usize) -> Tensor<B, 4> {
        self.head(self.features(z, frames))
    }

    /// The input of the last layer (`conv_out`): everything [`Self::forward`] computes
    /// before [`Self::head`]. The GAN's adaptive weight measures gradients at that layer.
    pub fn features(&self, z: Tensor<B, 4>, frames: usize) -> Tensor<B, 4> {
        let ctx = VideoContext { frames, image_only: frames == 1, context: None };
        let block = |b: &DecoderBlock<B>, h: Tensor<B, 4>| {
            let h = b.res.forward(h, None);
            match &b.temporal {
                Some(t) => t.forward(h, None, &ctx),
                None => h,
            }
        };
        let mut h = self.conv_in.forward(z.clone());
        let top = h_channels(&h);
        if self.shortcuts && top.is_multiple_of(h_channels(&z)) {
            h = h + channel_repeat(z, top);
        }
        for b in &self.mid {
            h = block(b, h);
        }
        for level in &self.levels {
            for b in &level.blocks {
                h = block(b, h);
            }
            if let Some(us) = &level.upsample {
                h = match self.shortcuts {
                    // The shortcut is the nearest-neighbour ×2 the conv reads: upsample once.
                    true => {
                        let up = nearest_2x(h);
                        us.forward(up.clone()) + up
                    }
                    false => upsample_nearest(h, us),
                };
            }
        }
        silu(self.norm_out.forward(h))
    }

    /// The last layer on [`Self::features`]: `conv_out`, then the stem's depth-to-space.
    pub fn head(&self, features: Tensor<B, 4>) -> Tensor<B, 4> {
        depth_to_space(self.conv_out.forward(features), self.patch)
    }
}

fn h_channels<B: Backend>(x: &Tensor<B, 4>) -> usize {
    x.dims()[1]
}

/// `[n, c, h, w]` → `[n, c_out, h, w]`: the mean of each run of `c / c_out` consecutive
/// channels (`c` a multiple of `c_out`). DC-AE's space-to-channel shortcut averages the
/// unshuffled channels down to the block's width this way.
fn channel_average<B: Backend>(x: Tensor<B, 4>, c_out: usize) -> Tensor<B, 4> {
    let [n, c, h, w] = x.dims();
    x.reshape([n, c_out, c / c_out, h, w]).mean_dim(2).reshape([n, c_out, h, w])
}

/// `[n, c, h, w]` → `[n, c_out, h, w]`: each channel repeated `c_out / c` times in place
/// (`c_out` a multiple of `c`); the inverse shortcut of [`channel_average`].
fn channel_repeat<B: Backend>(x: Tensor<B, 4>, c_out: usize) -> Tensor<B, 4> {
    let [n, c, h, w] = x.dims();
    x.reshape([n, c, 1, h, w]).repeat_dim(2, c_out / c).reshape([n, c_out, h, w])
}

#[derive(Module, Debug)]
pub struct Autoencoder<B: Backend> {
    pub encoder: Encoder<B>,
    pub decoder: Decoder<B>,
}

impl<B: Backend> Autoencoder<B> {
    /// Spatial downsampling factor `f` (frames are `f` times the latents' size).
    pub fn factor(&self) -> usize {
        self.decoder.patch << self.decoder.levels.len().saturating_sub(1)
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

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::{Distribution, Tolerance};

    type B = Flex;

    fn random(shape: [usize; 4], seed: u64) -> Tensor<B, 4> {
        let dev = Default::default();
        B::seed(&dev, seed);
        Tensor::random(shape, Distribution::Normal(0.0, 1.0), &dev)
    }

    #[test]
    fn the_down_shortcut_is_average_pooling_and_the_up_shortcut_nearest_neighbour() {
        let x = random([2, 3, 8, 12], 1);
        let down = channel_average(space_to_depth(x.clone(), 2), 3);
        let pooled = burn::tensor::module::avg_pool2d(x.clone(), [2, 2], [2, 2], [0, 0], true, false);
        down.into_data().assert_approx_eq::<f32>(&pooled.into_data(), Tolerance::absolute(1e-6));
        let up = depth_to_space(channel_repeat(x.clone(), 12), 2);
        assert_eq!(up.into_data(), nearest_2x(x.clone()).into_data());
        // Averaging undoes repetition exactly (the latent shortcut's pair).
        assert_eq!(channel_average(channel_repeat(x.clone(), 6), 3).into_data(), x.into_data());
    }

    #[test]
    fn shortcuts_add_a_path_to_the_same_weights() {
        let dev = Default::default();
        let cfg = AutoencoderConfig::new(4, 8, vec![1, 2, 2], 1).with_norm(NormKind::Group(4));
        let plain = cfg.init::<B>(&dev);
        // Same parameters (the shortcuts have none), so the same weights load into both.
        let short = cfg.clone().with_shortcuts(Some(true)).init::<B>(&dev).load_record(plain.clone().into_record());
        assert_eq!(plain.num_params(), short.num_params());
        let x = random([1, 3, 16, 32], 2);
        let (m_plain, _) = plain.encoder.forward(x.clone());
        let (m_short, _) = short.encoder.forward(x);
        let gap: f32 = (m_plain.clone() - m_short.clone()).abs().max().into_scalar();
        assert!(gap > 1e-3, "the latent shortcut must add to the mean (gap {gap})");
        let gap: f32 =
            (plain.decoder.forward(m_plain.clone(), 1) - short.decoder.forward(m_plain, 1)).abs().max().into_scalar();
        assert!(gap > 1e-3, "the decoder's shortcuts must add to its output (gap {gap})");
    }

    #[test]
    fn the_stem_moves_pixel_blocks_to_channels_and_keeps_the_factor() {
        let dev = Default::default();
        let cfg = AutoencoderConfig::new(4, 8, vec![2, 2], 1).with_norm(NormKind::Group(4)).with_patch(Some(2));
        assert_eq!(cfg.factor(), 4);
        let ae = cfg.init::<B>(&dev);
        assert_eq!(ae.factor(), 4);
        assert_eq!(ae.encoder.conv_in.weight.dims(), [16, 12, 3, 3]);
        let x = random([2, 3, 16, 32], 3);
        let (mean, _) = ae.encoder.forward(x);
        assert_eq!(mean.dims(), [2, 4, 4, 8]);
        assert_eq!(ae.decoder.forward(mean, 1).dims(), [2, 3, 16, 32]);
    }

    #[test]
    fn configs_written_before_shortcuts_read_without_them() {
        // An autoencoder entry of the shipped tiny manifest, as written before the field existed.
        let old = "(latent_channels: 4, base_channels: 16, channel_mult: [1, 2, 4, 4], res_blocks: 1, \
                   image_channels: 3, norm: Group(8), temporal_decoder: false)";
        let old: AutoencoderConfig = ron::from_str(old).expect("an old config parses");
        assert!(!old.has_shortcuts());
        assert_eq!((old.patch_size(), old.factor()), (1, 8));
        let new = AutoencoderConfig::new(4, 8, vec![1, 2, 2], 1).with_shortcuts(Some(true));
        let text = ron::to_string(&new).expect("config serialises");
        let back: AutoencoderConfig = ron::from_str(&text).expect("it reads back");
        assert!(back.has_shortcuts());
    }
}
