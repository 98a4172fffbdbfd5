//! Clip encoder: reads the ego car's motion off a short clip of key frames (its mean
//! speed and its sideways travel, which a lane change makes a lane wide) and tells
//! whether the clip plays forward, backward or shuffled (the arrow of time, a
//! self-supervised target that needs motion to be coherent). Trained on the world's
//! renders, whose ego motion is known exactly; its pooled features are the clip
//! features of the Fréchet distance and of multi-future diversity (an FVD-style video
//! feature: appearance and motion together, learnt rather than hand-made).
//!
//! The frames of a clip are stacked on the channel axis (early fusion): motion between
//! frames is visible to the first convolution.

use burn::config::Config;
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Int, Tensor, TensorData, backend::Backend};
use image::RgbImage;

use crate::data::image_to_tensor;
use crate::train::EgoState;

use super::backbone::{Backbone, BackboneConfig};

/// Targets are scaled to about unit size: speeds by 10 m/s, sideways travel by a lane.
const SPEED_SCALE: f32 = 10.0;
pub const LANE_WIDTH_M: f32 = 3.5;

#[derive(Config, Debug)]
pub struct ClipEncoderConfig {
    /// Frames per clip (consecutive key frames); the backbone reads `3·frames` channels.
    pub frames: usize,
    pub backbone: BackboneConfig,
}

impl ClipEncoderConfig {
    /// For tests: 2 frames.
    pub fn micro() -> Self {
        ClipEncoderConfig::new(2, BackboneConfig::new(vec![8, 16]))
    }

    /// The shipped evaluator: 4 key frames (1.2 s at 2.5 Hz), down to 1/16, 96 features.
    pub fn tiny() -> Self {
        ClipEncoderConfig::new(4, BackboneConfig::new(vec![32, 48, 64, 96]))
    }

    /// Width of [`ClipOutput::features`].
    pub fn feature_dims(&self) -> usize {
        self.backbone.channels.last().copied().unwrap_or(0)
    }

    pub fn init<B: Backend>(&self, device: &B::Device) -> ClipEncoder<B> {
        ClipEncoder {
            backbone: self.backbone.init_with_inputs(3 * self.frames, device),
            motion: LinearConfig::new(self.feature_dims(), 2).init(device),
            order: LinearConfig::new(self.feature_dims(), ClipOrder::ALL.len()).init(device),
            frames: self.frames,
        }
    }
}

#[derive(Module, Debug)]
pub struct ClipEncoder<B: Backend> {
    pub backbone: Backbone<B>,
    /// Ego speed and sideways travel, scaled to about unit size (by `SPEED_SCALE` and a lane).
    pub motion: Linear<B>,
    /// Logits of the [`ClipOrder`] the frames are shown in.
    pub order: Linear<B>,
    frames: usize,
}

/// The order a clip's frames are shown in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClipOrder {
    Forward,
    Reversed,
    /// Any other permutation.
    Shuffled,
}

impl ClipOrder {
    pub const ALL: [ClipOrder; 3] = [ClipOrder::Forward, ClipOrder::Reversed, ClipOrder::Shuffled];

    /// Frame indices of a `t`-frame clip shown in this order; `pick` (any number) chooses
    /// the shuffle. `None` for a shuffle of fewer than 3 frames (there is none that is
    /// neither forward nor reversed).
    pub fn indices(self, t: usize, pick: u64) -> Option<Vec<usize>> {
        match self {
            ClipOrder::Forward => Some((0..t).collect()),
            ClipOrder::Reversed => Some((0..t).rev().collect()),
            ClipOrder::Shuffled if t < 3 => None,
            ClipOrder::Shuffled => {
                // Fisher–Yates driven by `pick`, redrawn until neither forward nor reversed.
                let mut state = pick;
                loop {
                    let mut idx: Vec<usize> = (0..t).collect();
                    for i in (1..t).rev() {
                        state = crate::world::mix(state.wrapping_add(i as u64));
                        idx.swap(i, (state % (i as u64 + 1)) as usize);
                    }
                    let monotone = idx.windows(2).all(|w| w[0] < w[1]) || idx.windows(2).all(|w| w[0] > w[1]);
                    if !monotone {
                        return Some(idx);
                    }
                }
            }
        }
    }

    fn class(self) -> i64 {
        ClipOrder::ALL.iter().position(|&o| o == self).unwrap_or(0) as i64
    }
}

/// What a clip shows of the ego's motion.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EgoMotion {
    /// Mean forward speed over the clip, m/s.
    pub speed_mps: f32,
    /// Lateral offset at the last frame minus at the first, m (left positive).
    pub sideways_m: f32,
}

impl EgoMotion {
    /// The motion of the ego states of a clip's frames.
    pub fn of(states: &[EgoState]) -> Self {
        let n = states.len().max(1) as f32;
        let speed_mps = states.iter().map(|s| s.speed_mps).sum::<f32>() / n;
        let sideways_m = match (states.first(), states.last()) {
            (Some(a), Some(b)) => b.offset_m - a.offset_m,
            _ => 0.0,
        };
        EgoMotion { speed_mps, sideways_m }
    }

    /// Whether the ego moved by at least half a lane sideways (a lane change under way).
    pub fn changes_lane(&self) -> bool {
        self.sideways_m.abs() >= 0.5 * LANE_WIDTH_M
    }
}

#[derive(Debug, Clone)]
pub struct ClipOutput<B: Backend> {
    /// Globally average-pooled last-stage features `[b, d]`.
    pub features: Tensor<B, 2>,
    /// Scaled (speed, sideways travel) `[b, 2]`.
    pub motion: Tensor<B, 2>,
    /// [`ClipOrder`] logits `[b, 3]`.
    pub order: Tensor<B, 2>,
}

impl<B: Backend> ClipEncoder<B> {
    /// Frames per clip.
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// Clips `[b, t, 3, h, w]` in [-1, 1] (`t` = [`ClipEncoder::frames`]) → features and motion.
    pub fn forward(&self, clips: Tensor<B, 5>) -> ClipOutput<B> {
        let [b, t, c, h, w] = clips.dims();
        assert_eq!(t, self.frames, "the clip encoder reads clips of {} frames", self.frames);
        let features = self.backbone.pooled(clips.reshape([b, t * c, h, w]));
        ClipOutput {
            motion: self.motion.forward(features.clone()),
            order: self.order.forward(features.clone()),
            features,
        }
    }

    /// The ego motion each clip shows, in m/s and m, and the order it seems to play in.
    pub fn predict(&self, clips: Tensor<B, 5>) -> Vec<(EgoMotion, ClipOrder)> {
        let out = self.forward(clips);
        let v = out.motion.into_data().convert::<f32>().to_vec::<f32>().unwrap_or_default();
        let order = out.order.argmax(1).into_data().convert::<i64>().to_vec::<i64>().unwrap_or_default();
        v.chunks(2)
            .zip(order)
            .map(|(m, o)| {
                let motion = EgoMotion { speed_mps: m[0] * SPEED_SCALE, sideways_m: m[1] * LANE_WIDTH_M };
                (motion, ClipOrder::ALL[(o as usize).min(ClipOrder::ALL.len() - 1)])
            })
            .collect()
    }

    /// One feature vector per video: the mean over its windows of [`ClipEncoder::frames`]
    /// consecutive frames (stride 1) of their features. `None` for a video shorter than
    /// one window.
    pub fn video_feature(&self, video: &[RgbImage], device: &B::Device) -> Option<Vec<f32>> {
        let windows = self.windows(video, 1, device);
        let mut sum: Option<Tensor<B, 1>> = None;
        let n = windows.len();
        for chunk in windows.chunks(WINDOWS_PER_PASS) {
            let f = self.forward(Tensor::stack(chunk.to_vec(), 0)).features.sum_dim(0);
            let [_, d] = f.dims();
            let f = f.reshape([d]);
            sum = Some(match sum {
                Some(s) => s + f,
                None => f,
            });
        }
        let mean = sum? / n as f64;
        mean.into_data().convert::<f32>().to_vec::<f32>().ok()
    }

    /// The ego motion the encoder reads off every window of [`ClipEncoder::frames`] frames
    /// `spacing` apart in `video` (stride 1), in window order: `spacing` = the video's frame
    /// rate over the key-frame rate the encoder was trained at, so that a 10 Hz video is read
    /// as the 2.5 Hz clips it learnt speeds on. Empty for a video shorter than one window.
    pub fn video_motion(&self, video: &[RgbImage], spacing: usize, device: &B::Device) -> Vec<EgoMotion> {
        self.windows(video, spacing, device)
            .chunks(WINDOWS_PER_PASS)
            .flat_map(|chunk| self.predict(Tensor::stack(chunk.to_vec(), 0)))
            .map(|(motion, _)| motion)
            .collect()
    }

    /// Every window of [`ClipEncoder::frames`] frames `spacing` apart in `video` (stride 1),
    /// `[frames, 3, h, w]` each; none for a video shorter than one window.
    fn windows(&self, video: &[RgbImage], spacing: usize, device: &B::Device) -> Vec<Tensor<B, 4>> {
        let (t, spacing) = (self.frames, spacing.max(1));
        let span = (t - 1) * spacing + 1;
        if video.len() < span {
            return vec![];
        }
        let frames: Vec<Tensor<B, 3>> = video.iter().map(|f| image_to_tensor(f, device)).collect();
        (0..=video.len() - span)
            .map(|start| Tensor::stack((0..t).map(|i| frames[start + i * spacing].clone()).collect(), 0))
            .collect()
    }
}

/// Windows per forward pass of [`ClipEncoder::video_feature`] and [`ClipEncoder::video_motion`].
const WINDOWS_PER_PASS: usize = 4;

impl<B: Backend> ClipOutput<B> {
    /// Mean squared error of the scaled motion plus the order's cross-entropy, `[1]`.
    pub fn loss(&self, truth: &[(EgoMotion, ClipOrder)]) -> Tensor<B, 1> {
        let device = self.motion.device();
        let n = truth.len();
        let v: Vec<f32> =
            truth.iter().flat_map(|(m, _)| [m.speed_mps / SPEED_SCALE, m.sideways_m / LANE_WIDTH_M]).collect();
        let target = Tensor::<B, 2>::from_data(TensorData::new(v, [n, 2]), &device);
        let order: Vec<i64> = truth.iter().map(|(_, o)| o.class()).collect();
        let order = Tensor::<B, 1, Int>::from_data(TensorData::new(order, [n]), &device);
        let ce = CrossEntropyLossConfig::new().init(&device).forward(self.order.clone(), order);
        (self.motion.clone() - target).square().mean() + ce
    }
}

#[cfg(test)]
mod tests {
    use burn::backend::Flex;

    use super::*;
    use crate::train::init::seeded_init;

    #[test]
    fn features_and_motion_have_their_shapes() {
        let dev = Default::default();
        for cfg in [ClipEncoderConfig::micro(), ClipEncoderConfig::tiny()] {
            let t = cfg.frames;
            let out = cfg.init::<Flex>(&dev).forward(Tensor::zeros([3, t, 3, 32, 64], &dev));
            assert_eq!(out.features.dims(), [3, cfg.feature_dims()]);
            assert_eq!(out.motion.dims(), [3, 2]);
            assert_eq!(out.order.dims(), [3, 3]);
        }
    }

    #[test]
    fn ego_motion_is_mean_speed_and_sideways_travel() {
        let s = |v, d| EgoState { speed_mps: v, offset_m: d };
        let m = EgoMotion::of(&[s(10.0, 1.0), s(12.0, 2.0), s(14.0, 4.5)]);
        assert_eq!(m, EgoMotion { speed_mps: 12.0, sideways_m: 3.5 });
        assert!(m.changes_lane());
        assert!(!EgoMotion::of(&[s(10.0, 1.0), s(10.0, 1.5)]).changes_lane());
    }

    #[test]
    fn orders_are_permutations_and_shuffles_are_neither_way() {
        assert_eq!(ClipOrder::Forward.indices(4, 0).unwrap(), [0, 1, 2, 3]);
        assert_eq!(ClipOrder::Reversed.indices(4, 0).unwrap(), [3, 2, 1, 0]);
        assert!(ClipOrder::Shuffled.indices(2, 0).is_none());
        let mut seen = std::collections::HashSet::new();
        for pick in 0..200 {
            let mut idx = ClipOrder::Shuffled.indices(4, pick).unwrap();
            seen.insert(idx.clone());
            assert!(idx != [0, 1, 2, 3] && idx != [3, 2, 1, 0], "{idx:?}");
            idx.sort();
            assert_eq!(idx, [0, 1, 2, 3]);
        }
        assert!(seen.len() > 10, "only {} shuffles", seen.len());
    }

    #[test]
    fn a_video_feature_averages_its_windows() {
        let dev = Default::default();
        let model = ClipEncoderConfig::micro().init::<Flex>(&dev);
        let frame = |v: u8| RgbImage::from_pixel(64, 32, image::Rgb([v, v / 2, 255 - v]));
        let video: Vec<RgbImage> = (0..4).map(|i| frame(40 * i)).collect();
        let f = model.video_feature(&video, &dev).unwrap();
        let windows: Vec<Tensor<Flex, 4>> = video
            .windows(2)
            .map(|w| Tensor::stack(w.iter().map(|f| image_to_tensor::<Flex>(f, &dev)).collect(), 0))
            .collect();
        let expected = model.forward(Tensor::stack(windows, 0)).features.mean_dim(0);
        let expected = expected.into_data().convert::<f32>().to_vec::<f32>().unwrap();
        for (a, b) in f.iter().zip(&expected) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        assert!(model.video_feature(&video[..1], &dev).is_none());
    }

    #[test]
    fn video_motion_reads_every_window_of_spaced_frames() {
        let dev = Default::default();
        let model = seeded_init(ClipEncoderConfig::micro().init::<Flex>(&dev), 4);
        let frame = |v: u8| RgbImage::from_pixel(64, 32, image::Rgb([v, v / 2, 255 - v]));
        let video: Vec<RgbImage> = (0..7).map(|i| frame(30 * i)).collect();
        let clip = |a: usize, b: usize| -> Tensor<Flex, 4> {
            Tensor::stack([a, b].map(|i| image_to_tensor::<Flex>(&video[i], &dev)).to_vec(), 0)
        };
        // Two frames 3 apart: windows (0, 3), (1, 4), (2, 5), (3, 6).
        let read = model.video_motion(&video, 3, &dev);
        let expected = model.predict(Tensor::stack(vec![clip(0, 3), clip(1, 4), clip(2, 5), clip(3, 6)], 0));
        assert_eq!(read.len(), 4);
        for (r, (e, _)) in read.iter().zip(&expected) {
            assert!((r.speed_mps - e.speed_mps).abs() < 1e-4, "{r:?} vs {e:?}");
        }
        assert_eq!(model.video_motion(&video, 1, &dev).len(), 6);
        assert!(model.video_motion(&video[..3], 3, &dev).is_empty());
    }
}
