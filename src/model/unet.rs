//! The denoising UNet (assembly only): LDM's image UNet, which becomes the Video LDM
//! when `video` is set — a temporal layer after every spatial layer, stored under
//! fields named `temporal` so its parameters live apart from the spatial ones.
//! The same UNet is the pixel-space upsampler (see `upsampler.rs`).

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::tensor::activation::silu;
use burn::tensor::{Int, Tensor, backend::Backend};
use serde::{Deserialize, Serialize};

use super::attention::{SpatialTransformer, SpatialTransformerConfig};
use super::conditioning::{
    BoxEncoder, BoxEncoderConfig, Boxes, FpsEmbedding, FpsEmbeddingConfig, LabelEmbedding, LabelEmbeddingConfig, Labels,
};
use super::embedding::{TimestepEmbedding, TimestepEmbeddingConfig};
use super::norm::{Norm, NormConfig, NormKind};
use super::resnet::{ResBlock, ResBlockConfig, conv3x3, conv3x3_zero, downsample_conv, upsample_nearest};
use super::temporal::{
    ContextEncoder, ContextEncoderConfig, TemporalAttention, TemporalAttentionConfig, TemporalLayers, TemporalMix,
    VideoContext, new_res_temporal,
};

/// The global (per-frame) condition added to the timestep embedding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum GlobalCondition {
    None,
    /// Day/night and crowdedness embeddings with null classes (image and video LDMs).
    DrivingLabels,
    /// The upsampler's noise-augmentation level, embedded like a timestep.
    NoiseLevel,
}

/// What turns an image UNet into a video UNet.
#[derive(Config, Debug, PartialEq)]
pub struct VideoConfig {
    pub layers: TemporalLayers,
    /// Latent channels of the context frames `c_S = (m ∘ z, m)`; `None`: no context encoder.
    pub context_channels: Option<usize>,
    /// Binary frame-rate flag of the interpolator.
    #[config(default = false)]
    pub fps_flag: bool,
}

#[derive(Config, Debug)]
pub struct UNetConfig {
    /// Channels of the noisy input.
    pub in_channels: usize,
    pub out_channels: usize,
    /// Channels concatenated to the input besides the layout map (the upsampler's low-res frames).
    #[config(default = 0)]
    pub extra_in_channels: usize,
    pub base_channels: usize,
    pub channel_mult: Vec<usize>,
    pub res_blocks: usize,
    /// Levels (0 = full resolution) that get spatial transformers.
    pub attention_levels: Vec<usize>,
    pub heads: usize,
    #[config(default = "NormKind::Group(32)")]
    pub norm: NormKind,
    #[config(default = "GlobalCondition::None")]
    pub global: GlobalCondition,
    /// Box tokens and layout map (image LDM); `None` for models without boxes.
    pub boxes: Option<BoxEncoderConfig>,
    /// Temporal layers; `None` is the image model.
    pub video: Option<VideoConfig>,
}

impl UNetConfig {
    fn emb_dim(&self) -> usize {
        4 * self.base_channels
    }
    fn level_channels(&self) -> Vec<usize> {
        self.channel_mult.iter().map(|m| m * self.base_channels).collect()
    }

    /// The same network without temporal layers (the image model a video model wraps).
    pub fn image_config(&self) -> UNetConfig {
        let mut c = self.clone();
        c.video = None;
        c
    }

    pub fn init<B: Backend>(&self, device: &B::Device) -> UNet<B> {
        let emb = self.emb_dim();
        let chans = self.level_channels();
        let layout_ch = self.boxes.as_ref().map_or(0, |_| 1);
        let token_dim = self.boxes.as_ref().map(|b| b.token_dim);
        let block = |cin: usize, cout: usize, attn: bool| {
            let temporal = self.video.as_ref().map(|v| {
                // Context features enter the 3D-conv layers; attention-only models take them there.
                let ctx = v.context_channels.map(|_| cout);
                BlockTemporal {
                    res: new_res_temporal(v.layers, cout, emb, self.heads, ctx, self.norm, device),
                    attn: attn.then(|| TemporalAttentionConfig::new(cout, self.heads).init(device)),
                }
            });
            Block {
                res: ResBlockConfig::new(cin, cout).with_emb_dim(Some(emb)).with_norm(self.norm).init(device),
                attn: attn.then(|| {
                    SpatialTransformerConfig::new(cout, self.heads)
                        .with_box_token_dim(token_dim)
                        .with_norm(self.norm)
                        .init(device)
                }),
                temporal,
            }
        };
        let mut down = Vec::new();
        let mut skips = vec![chans[0]];
        let mut ch = chans[0];
        for (level, &cout) in chans.iter().enumerate() {
            let attn = self.attention_levels.contains(&level);
            let mut blocks = Vec::new();
            for _ in 0..self.res_blocks {
                blocks.push(block(ch, cout, attn));
                ch = cout;
                skips.push(ch);
            }
            let downsample = (level + 1 < chans.len()).then(|| downsample_conv(ch, ch, device));
            if downsample.is_some() {
                skips.push(ch);
            }
            down.push(DownLevel { blocks, downsample });
        }
        let deepest_attn = !self.attention_levels.is_empty();
        let mid = vec![block(ch, ch, deepest_attn), block(ch, ch, false)];
        let mut up = Vec::new();
        for (level, &cout) in chans.iter().enumerate().rev() {
            let attn = self.attention_levels.contains(&level);
            let mut blocks = Vec::new();
            for _ in 0..=self.res_blocks {
                let skip = skips.pop().unwrap_or(cout);
                blocks.push(block(ch + skip, cout, attn));
                ch = cout;
            }
            let upsample = (level > 0).then(|| conv3x3(ch, ch, device));
            up.push(UpLevel { blocks, upsample });
        }
        let temporal = self.video.as_ref().and_then(|v| {
            let context = v.context_channels.map(|lc| ContextEncoderConfig::new(lc + 1, chans.clone()).init(device));
            let fps = v.fps_flag.then(|| FpsEmbeddingConfig::new(emb).init(device));
            (context.is_some() || fps.is_some()).then_some(UNetTemporal { context, fps })
        });
        UNet {
            time_embed: TimestepEmbeddingConfig::new(self.base_channels, emb).init(device),
            labels: (self.global == GlobalCondition::DrivingLabels)
                .then(|| LabelEmbeddingConfig::new(emb).init(device)),
            noise_level: (self.global == GlobalCondition::NoiseLevel)
                .then(|| TimestepEmbeddingConfig::new(self.base_channels, emb).init(device)),
            box_encoder: self.boxes.as_ref().map(|b| b.init(device)),
            conv_in: conv3x3(self.in_channels + self.extra_in_channels + layout_ch, chans[0], device),
            down,
            mid,
            up,
            norm_out: NormConfig::new(self.norm, ch).init(device),
            // Zero output: a fresh denoiser predicts zero (the mean of ε).
            conv_out: conv3x3_zero(ch, self.out_channels, device),
            temporal,
            box_slots: self.boxes.as_ref().map_or(0, |b| b.slots),
        }
    }
}

/// Temporal half of a block: after the ResBlock, and after the transformer if any.
#[derive(Module, Debug)]
pub struct BlockTemporal<B: Backend> {
    pub res: TemporalMix<B>,
    pub attn: Option<TemporalAttention<B>>,
}

/// ResBlock (+ spatial transformer), each followed by its temporal layer in video models.
#[derive(Module, Debug)]
pub struct Block<B: Backend> {
    pub res: ResBlock<B>,
    pub attn: Option<SpatialTransformer<B>>,
    pub temporal: Option<BlockTemporal<B>>,
}

impl<B: Backend> Block<B> {
    fn forward(
        &self,
        x: Tensor<B, 4>,
        emb: &Tensor<B, 2>,
        tokens: &Option<Tensor<B, 3>>,
        ctx: &VideoContext<B>,
    ) -> Tensor<B, 4> {
        let mut x = self.res.forward(x, Some(emb.clone()));
        if let Some(t) = &self.temporal {
            x = t.res.forward(x, emb.clone(), ctx);
        }
        if let Some(attn) = &self.attn {
            x = attn.forward(x, tokens.clone());
            if let Some(ta) = self.temporal.as_ref().and_then(|t| t.attn.as_ref()) {
                x = ta.forward(x, &VideoContext { context: None, ..ctx.clone() });
            }
        }
        x
    }
}

#[derive(Module, Debug)]
pub struct DownLevel<B: Backend> {
    pub blocks: Vec<Block<B>>,
    pub downsample: Option<Conv2d<B>>,
}

#[derive(Module, Debug)]
pub struct UpLevel<B: Backend> {
    pub blocks: Vec<Block<B>>,
    pub upsample: Option<Conv2d<B>>,
}

/// Video-only parts that are not per block: the context encoder and the fps flag.
#[derive(Module, Debug)]
pub struct UNetTemporal<B: Backend> {
    pub context: Option<ContextEncoder<B>>,
    pub fps: Option<FpsEmbedding<B>>,
}

#[derive(Module, Debug)]
pub struct UNet<B: Backend> {
    pub time_embed: TimestepEmbedding<B>,
    pub labels: Option<LabelEmbedding<B>>,
    pub noise_level: Option<TimestepEmbedding<B>>,
    pub box_encoder: Option<BoxEncoder<B>>,
    pub conv_in: Conv2d<B>,
    pub down: Vec<DownLevel<B>>,
    pub mid: Vec<Block<B>>,
    pub up: Vec<UpLevel<B>>,
    pub norm_out: Norm<B>,
    pub conv_out: Conv2d<B>,
    pub temporal: Option<UNetTemporal<B>>,
    box_slots: usize,
}

/// Everything one denoiser call sees. Per-frame tensors have `b·t` rows.
#[derive(Debug, Clone)]
pub struct UNetInput<B: Backend> {
    /// `[b·t, in_channels, h, w]`.
    pub x: Tensor<B, 4>,
    /// `[b·t]` diffusion timesteps (as floats).
    pub timesteps: Tensor<B, 1>,
    /// Frames per clip `t` (1 for image models).
    pub frames: usize,
    /// `[b·t]` labels; `None`: the null labels.
    pub labels: Option<Labels<B>>,
    /// `[b·t]` boxes; `None`: no boxes (null tokens, empty layout).
    pub boxes: Option<Boxes<B>>,
    /// `[b·t, extra_in_channels, h, w]` concatenated conditioning (upsampler).
    pub extra: Option<Tensor<B, 4>>,
    /// `[b·t]` noise-augmentation level (upsampler).
    pub noise_level: Option<Tensor<B, 1>>,
    /// `[b·t, latent+1, h, w]` context `(m ∘ z, m)`; `None` equals an all-zero mask (S = 0).
    pub context: Option<Tensor<B, 4>>,
    /// `[b·t]` interpolator stage in {0, 1}.
    pub fps_stage: Option<Tensor<B, 1, Int>>,
    /// Pure image samples: every α forced to 1.
    pub image_only: bool,
}

impl<B: Backend> UNetInput<B> {
    /// A plain call: `x` and timesteps, nothing else.
    pub fn new(x: Tensor<B, 4>, timesteps: Tensor<B, 1>, frames: usize) -> Self {
        UNetInput {
            x,
            timesteps,
            frames,
            labels: None,
            boxes: None,
            extra: None,
            noise_level: None,
            context: None,
            fps_stage: None,
            image_only: false,
        }
    }
}

impl<B: Backend> UNet<B> {
    /// Token slots of the box encoder (0 without boxes).
    pub fn box_slots(&self) -> usize {
        self.box_slots
    }

    /// Predicts the model output (ε or v) for `input.x` → `[b·t, out_channels, h, w]`.
    pub fn forward(&self, input: UNetInput<B>) -> Tensor<B, 4> {
        let [n, _, h, w] = input.x.dims();
        let device = input.x.device();
        let mut emb = self.time_embed.forward(input.timesteps);
        if let Some(le) = &self.labels {
            let labels = input.labels.unwrap_or_else(|| Labels::null(n, &device));
            emb = emb + le.forward(&labels);
        }
        if let (Some(ne), Some(level)) = (&self.noise_level, input.noise_level) {
            emb = emb + ne.forward(level);
        }
        let temporal = self.temporal.as_ref();
        if let (Some(fe), Some(stage)) = (temporal.and_then(|t| t.fps.as_ref()), input.fps_stage) {
            emb = emb + fe.forward(stage);
        }
        let mut parts = vec![input.x];
        if let Some(extra) = input.extra {
            parts.push(extra);
        }
        let tokens = self.box_encoder.as_ref().map(|enc| {
            let boxes = input.boxes.unwrap_or_else(|| Boxes::new(&vec![None; n], self.box_slots, h, w, &device));
            parts.push(boxes.layout.clone());
            enc.forward(&boxes)
        });
        let context = temporal.and_then(|t| t.context.as_ref()).map(|enc| {
            let c = input.context.unwrap_or_else(|| {
                let latent = enc.conv_in.weight.dims()[1];
                Tensor::zeros([n, latent, h, w], &device)
            });
            enc.forward(c)
        });
        let ctx_at = |level: usize| VideoContext {
            frames: input.frames,
            image_only: input.image_only,
            context: context.as_ref().map(|c| c[level.min(c.len() - 1)].clone()),
        };

        let mut x = self.conv_in.forward(Tensor::cat(parts, 1));
        let mut skips = vec![x.clone()];
        for (level, d) in self.down.iter().enumerate() {
            let ctx = ctx_at(level);
            for b in &d.blocks {
                x = b.forward(x, &emb, &tokens, &ctx);
                skips.push(x.clone());
            }
            if let Some(ds) = &d.downsample {
                x = ds.forward(x);
                skips.push(x.clone());
            }
        }
        let deepest = self.down.len() - 1;
        let ctx = ctx_at(deepest);
        for b in &self.mid {
            x = b.forward(x, &emb, &tokens, &ctx);
        }
        for (i, u) in self.up.iter().enumerate() {
            let ctx = ctx_at(deepest - i);
            for b in &u.blocks {
                let skip = skips.pop().expect("one skip per up block (built in init)");
                x = b.forward(Tensor::cat(vec![x, skip], 1), &emb, &tokens, &ctx);
            }
            if let Some(us) = &u.upsample {
                x = upsample_nearest(x, us);
            }
        }
        self.conv_out.forward(silu(self.norm_out.forward(x)))
    }

    /// Drops the temporal layers: the image model inside a video model (same spatial weights).
    pub fn into_image_model(self) -> UNet<B> {
        let strip = |b: Block<B>| Block { temporal: None, ..b };
        UNet {
            down: self
                .down
                .into_iter()
                .map(|d| DownLevel { blocks: d.blocks.into_iter().map(strip).collect(), ..d })
                .collect(),
            mid: self.mid.into_iter().map(strip).collect(),
            up: self
                .up
                .into_iter()
                .map(|u| UpLevel { blocks: u.blocks.into_iter().map(strip).collect(), ..u })
                .collect(),
            temporal: None,
            ..self
        }
    }

    /// Applies `f` to every block's temporal part (tests, α surgery, freezing).
    pub fn map_temporal_blocks(self, mut f: impl FnMut(BlockTemporal<B>) -> BlockTemporal<B>) -> UNet<B> {
        let mut map = |b: Block<B>| Block { temporal: b.temporal.map(&mut f), ..b };
        UNet {
            down: self
                .down
                .into_iter()
                .map(|d| DownLevel { blocks: d.blocks.into_iter().map(&mut map).collect(), ..d })
                .collect(),
            mid: self.mid.into_iter().map(&mut map).collect(),
            up: self
                .up
                .into_iter()
                .map(|u| UpLevel { blocks: u.blocks.into_iter().map(&mut map).collect(), ..u })
                .collect(),
            ..self
        }
    }

    /// Maps every temporal parameter (block temporal layers, context encoder, fps flag) with `mapper`.
    pub fn map_temporal<M: burn::module::ModuleMapper<B>>(self, mapper: &mut M) -> UNet<B> {
        let model = self.map_temporal_blocks(|t| t.map(mapper));
        let temporal = model.temporal.clone().map(|t| t.map(mapper));
        UNet { temporal, ..model }
    }

    /// Freezes every spatial parameter (the video stages train temporal layers only):
    /// the whole model stops tracking gradients, then the temporal parts track again.
    pub fn freeze_spatial(self) -> UNet<B> {
        let temporal = self.temporal.clone().map(train_all);
        let model = self.no_grad().map_temporal_blocks(train_all);
        UNet { temporal, ..model }
    }
}

/// Re-enables gradients on every parameter of a module.
fn train_all<B: Backend, M: Module<B>>(module: M) -> M {
    struct Enable;
    impl<B: Backend> burn::module::ModuleMapper<B> for Enable {
        fn map_float<const D: usize>(
            &mut self,
            param: burn::module::Param<Tensor<B, D>>,
        ) -> burn::module::Param<Tensor<B, D>> {
            param.set_require_grad(true)
        }
    }
    module.map(&mut Enable)
}
