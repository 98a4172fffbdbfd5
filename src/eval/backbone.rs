//! The evaluators' shared convolutional backbone: stages of conv → norm → ReLU blocks,
//! each stage starting with a stride-2 convolution, returning every stage's features.

use burn::config::Config;
use burn::module::Module;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Tensor, backend::Backend};

use crate::model::norm::{Norm, NormConfig, NormKind};

#[derive(Config, Debug)]
pub struct BackboneConfig {
    /// Channels of each stage; stage `s` has stride `2^(s+1)`.
    pub channels: Vec<usize>,
    /// 3×3 convolutions per stage after its strided one.
    #[config(default = 1)]
    pub convs_per_stage: usize,
    #[config(default = "NormKind::Group(8)")]
    pub norm: NormKind,
}

impl BackboneConfig {
    /// A backbone reading RGB frames.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Backbone<B> {
        self.init_with_inputs(3, device)
    }

    /// A backbone reading `in_channels` input channels (`3·t` for `t` stacked frames).
    pub fn init_with_inputs<B: Backend>(&self, in_channels: usize, device: &B::Device) -> Backbone<B> {
        let block = |cin: usize, cout: usize, stride: usize| ConvBlock {
            conv: Conv2dConfig::new([cin, cout], [3, 3])
                .with_stride([stride, stride])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device),
            norm: NormConfig::new(self.norm, cout).init(device),
        };
        let mut cin = in_channels;
        let stages = self
            .channels
            .iter()
            .map(|&c| {
                let mut convs = vec![block(cin, c, 2)];
                convs.extend((0..self.convs_per_stage).map(|_| block(c, c, 1)));
                cin = c;
                Stage { convs }
            })
            .collect();
        Backbone { stages }
    }
}

/// conv → norm → ReLU.
#[derive(Module, Debug)]
pub struct ConvBlock<B: Backend> {
    pub conv: Conv2d<B>,
    pub norm: Norm<B>,
}

impl<B: Backend> ConvBlock<B> {
    /// `[b, c_in, h, w]` → `[b, c_out, h / stride, w / stride]`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        relu(self.norm.forward(self.conv.forward(x)))
    }
}

/// One resolution level: a strided block, then same-size blocks.
#[derive(Module, Debug)]
pub struct Stage<B: Backend> {
    pub convs: Vec<ConvBlock<B>>,
}

#[derive(Module, Debug)]
pub struct Backbone<B: Backend> {
    pub stages: Vec<Stage<B>>,
}

impl<B: Backend> Backbone<B> {
    /// Images `[b, 3, h, w]` (`h`, `w` multiples of `2^stages`) → one map per stage,
    /// stage `s` `[b, c_s, h / 2^(s+1), w / 2^(s+1)]`.
    pub fn forward(&self, images: Tensor<B, 4>) -> Vec<Tensor<B, 4>> {
        let mut x = images;
        let mut levels = Vec::with_capacity(self.stages.len());
        for stage in &self.stages {
            x = stage.convs.iter().fold(x, |x, block| block.forward(x));
            levels.push(x.clone());
        }
        levels
    }

    /// Inputs `[b, c_in, h, w]` → the last stage's features averaged over the image, `[b, c_last]`.
    pub fn pooled(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        let last = self.forward(x).pop().expect("a backbone has at least one stage");
        let [b, c, _, _] = last.dims();
        last.mean_dim(3).mean_dim(2).reshape([b, c])
    }
}
