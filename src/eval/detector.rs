//! A small single-class car detector in the style of CenterNet (Zhou et al. 2019,
//! "Objects as Points"): a convolutional backbone down to 1/4 resolution, and three
//! heads on that grid: a centre heatmap (one logit per cell), the box size and the
//! sub-cell offset of the centre. Training targets and the focal loss live in
//! [`super::centernet`]; decoding reads peaks of the heatmap back into boxes.
//!
//! Boxes are in pixels of the input image; sizes and offsets are predicted in grid
//! cells, as in CenterNet.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::conv::Conv2d;
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::{Tensor, backend::Backend};

use crate::model::resnet::{conv1x1, conv3x3, upsample_nearest};
use crate::world::Box2d;

use super::backbone::{Backbone, BackboneConfig};
use super::detection::Detection;

/// log2 of the output stride: the heads work on a 1/4-resolution grid (CenterNet's).
const OUTPUT_STRIDE_LOG2: usize = 2;

/// Logit bias of a fresh heatmap head: sigmoid(−2.19) ≈ 0.1, the prior of RetinaNet and
/// CenterNet, so the many background cells do not swamp the focal loss at the start.
const HEATMAP_PRIOR_LOGIT: f32 = -2.19;

#[derive(Config, Debug)]
pub struct DetectorConfig {
    /// Backbone stages; at least 2 (the 1/4 grid). Stages past the second are merged
    /// back to the 1/4 grid by upsampling and adding (a small feature pyramid), which
    /// widens the receptive field for near, large cars.
    pub backbone: BackboneConfig,
    /// Hidden width of each head.
    pub head_channels: usize,
}

impl DetectorConfig {
    /// For tests: stride 4 with two narrow stages.
    pub fn micro() -> Self {
        DetectorConfig::new(BackboneConfig::new(vec![8, 16]), 16)
    }

    /// The shipped evaluator: four stages (down to 1/16) merged back to 1/4.
    pub fn tiny() -> Self {
        DetectorConfig::new(BackboneConfig::new(vec![16, 32, 64, 96]).with_convs_per_stage(2), 32)
    }

    /// Output stride: pixels per heatmap cell.
    pub fn stride(&self) -> usize {
        1 << OUTPUT_STRIDE_LOG2
    }

    pub fn init<B: Backend>(&self, device: &B::Device) -> Detector<B> {
        let channels = &self.backbone.channels;
        assert!(channels.len() >= OUTPUT_STRIDE_LOG2, "a detector needs at least {OUTPUT_STRIDE_LOG2} stages");
        // Merging stage s + 1 into stage s, from the deepest down to the 1/4 grid.
        let merges = (OUTPUT_STRIDE_LOG2 - 1..channels.len() - 1)
            .map(|s| conv3x3(channels[s + 1], channels[s], device))
            .collect();
        let feat = channels[OUTPUT_STRIDE_LOG2 - 1];
        let head = |out: usize| Head {
            hidden: conv3x3(feat, self.head_channels, device),
            out: conv1x1(self.head_channels, out, device),
        };
        let mut heatmap = head(1);
        heatmap.out.bias =
            heatmap.out.bias.map(|b| Param::from_tensor(Tensor::full(b.dims(), HEATMAP_PRIOR_LOGIT, device)));
        Detector {
            backbone: self.backbone.init(device),
            merges,
            heatmap,
            size: head(2),
            offset: head(2),
            stride: self.stride(),
        }
    }
}

/// 3×3 conv → ReLU → 1×1 conv to the head's outputs.
#[derive(Module, Debug)]
pub struct Head<B: Backend> {
    pub hidden: Conv2d<B>,
    pub out: Conv2d<B>,
}

impl<B: Backend> Head<B> {
    /// `[b, c, h, w]` → `[b, out, h, w]`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.out.forward(relu(self.hidden.forward(x)))
    }
}

#[derive(Module, Debug)]
pub struct Detector<B: Backend> {
    pub backbone: Backbone<B>,
    pub merges: Vec<Conv2d<B>>,
    pub heatmap: Head<B>,
    pub size: Head<B>,
    pub offset: Head<B>,
    /// Pixels per output cell.
    pub stride: usize,
}

/// The heads' raw outputs on the `h/4 × w/4` grid.
#[derive(Debug, Clone)]
pub struct DetectorOutput<B: Backend> {
    /// Centre logits `[b, 1, h/4, w/4]`.
    pub heatmap: Tensor<B, 4>,
    /// Box width and height in cells `[b, 2, h/4, w/4]`.
    pub size: Tensor<B, 4>,
    /// Centre offset within its cell, x and y `[b, 2, h/4, w/4]`.
    pub offset: Tensor<B, 4>,
}

impl<B: Backend> Detector<B> {
    /// Images `[b, 3, h, w]` in [-1, 1] (`h`, `w` multiples of 2^stages) → head outputs.
    pub fn forward(&self, images: Tensor<B, 4>) -> DetectorOutput<B> {
        let mut levels = self.backbone.forward(images);
        // Deepest first: upsample, project to the shallower width, add.
        let mut feat = levels.pop().expect("the config asserts at least two stages");
        for merge in self.merges.iter().rev() {
            let skip = levels.pop().expect("one level below every merge");
            feat = relu(upsample_nearest(feat, merge) + skip);
        }
        DetectorOutput {
            heatmap: self.heatmap.forward(feat.clone()),
            size: self.size.forward(feat.clone()),
            offset: self.offset.forward(feat),
        }
    }

    /// Forward and decode: the `k` best peaks of each image (see [`DetectorOutput::decode`]).
    pub fn detect(&self, images: Tensor<B, 4>, k: usize) -> Vec<Vec<Detection>> {
        let [_, _, h, w] = images.dims();
        self.forward(images).decode(self.stride, (h, w), k)
    }
}

impl<B: Backend> DetectorOutput<B> {
    /// Boxes of the `k` highest heatmap peaks of each image (a cell is a peak when no
    /// neighbour in its 3×3 window scores higher: CenterNet's max-pool NMS), scores in
    /// (0, 1), boxes in pixels of an `h × w` image and clipped to it, best first.
    pub fn decode(&self, stride: usize, (h, w): (usize, usize), k: usize) -> Vec<Vec<Detection>> {
        let [b, _, gh, gw] = self.heatmap.dims();
        let data = |t: &Tensor<B, 4>| t.clone().into_data().convert::<f32>().to_vec::<f32>().unwrap_or_default();
        let (heat, size, offset) = (data(&sigmoid(self.heatmap.clone())), data(&self.size), data(&self.offset));
        let plane = gh * gw;
        (0..b)
            .map(|n| {
                let heat = &heat[n * plane..(n + 1) * plane];
                let at = |t: &[f32], c: usize, i: usize| t[(n * 2 + c) * plane + i];
                let mut peaks: Vec<(usize, f32)> =
                    (0..plane).filter(|&i| is_peak(heat, gh, gw, i)).map(|i| (i, heat[i])).collect();
                peaks.sort_by(|a, b| b.1.total_cmp(&a.1));
                peaks.truncate(k);
                peaks
                    .into_iter()
                    .map(|(i, score)| {
                        let s = stride as f32;
                        let cx = ((i % gw) as f32 + at(&offset, 0, i)) * s;
                        let cy = ((i / gw) as f32 + at(&offset, 1, i)) * s;
                        let (bw, bh) = (at(&size, 0, i).max(0.0) * s, at(&size, 1, i).max(0.0) * s);
                        let box2d = Box2d {
                            x1: (cx - bw / 2.0).clamp(0.0, w as f32),
                            y1: (cy - bh / 2.0).clamp(0.0, h as f32),
                            x2: (cx + bw / 2.0).clamp(0.0, w as f32),
                            y2: (cy + bh / 2.0).clamp(0.0, h as f32),
                        };
                        Detection { box2d, score }
                    })
                    .collect()
            })
            .collect()
    }
}

/// Whether cell `i` of an `h × w` grid is at least as high as its 8 neighbours.
fn is_peak(heat: &[f32], h: usize, w: usize, i: usize) -> bool {
    let (y, x) = ((i / w) as isize, (i % w) as isize);
    (-1..=1).all(|dy| {
        (-1..=1).all(|dx| {
            let (ny, nx) = (y + dy, x + dx);
            ny < 0 || nx < 0 || ny >= h as isize || nx >= w as isize || heat[ny as usize * w + nx as usize] <= heat[i]
        })
    })
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use burn::backend::{Autodiff, Flex};
    use burn::module::AutodiffModule;
    use burn::optim::{AdamConfig, GradientsParams, Optimizer};
    use burn::tensor::TensorData;

    use super::*;
    use crate::data::image_to_tensor;
    use crate::eval::centernet::{DetectorTargets, detector_loss};
    use crate::scenario::{BoxSpec, Conditions, ImageBox, TimeOfDay};
    use crate::train::init::seeded_init;
    use crate::world::{ObjectClass, Renderer, World};

    type AB = Autodiff<Flex>;

    #[test]
    fn shapes_follow_the_output_stride() {
        let dev = Default::default();
        for cfg in [DetectorConfig::micro(), DetectorConfig::tiny()] {
            let model = cfg.init::<Flex>(&dev);
            let out = model.forward(Tensor::zeros([2, 3, 64, 128], &dev));
            assert_eq!(out.heatmap.dims(), [2, 1, 16, 32]);
            assert_eq!((out.size.dims(), out.offset.dims()), ([2, 2, 16, 32], [2, 2, 16, 32]));
            // A fresh heatmap head starts near the prior (its bias, kept by seeded init).
            let bias = seeded_init(model, 1).heatmap.out.bias.unwrap().val().into_data().to_vec::<f32>().unwrap();
            assert_eq!(bias, vec![HEATMAP_PRIOR_LOGIT]);
        }
    }

    #[test]
    fn decode_reads_peaks_back_into_boxes() {
        let dev = Default::default();
        // One peak at cell (x 3, y 1) of a 4×8 grid, offset (0.5, 0.25), size 2×1 cells.
        let mut heat = vec![-5.0f32; 32];
        heat[8 + 3] = 3.0;
        heat[8 + 2] = 1.0; // a shoulder of the same peak: not a peak itself
        heat[3 * 8 + 7] = 0.0; // a weaker, separate peak
        let mut size = vec![0.0f32; 64];
        let mut offset = vec![0.0f32; 64];
        (size[11], size[32 + 11], offset[11], offset[32 + 11]) = (2.0, 1.0, 0.5, 0.25);
        let t = |v: Vec<f32>, c| Tensor::<Flex, 4>::from_data(TensorData::new(v, [1, c, 4, 8]), &dev);
        let out = DetectorOutput { heatmap: t(heat, 1), size: t(size, 2), offset: t(offset, 2) };
        // The shoulder (logit 1) outscores the second peak (logit 0) but is suppressed;
        // the flat background ties with itself and trails far behind.
        let dets = &out.decode(4, (16, 32), 3)[0];
        assert!(dets[2].score < 0.01, "{dets:?}");
        assert_eq!(dets[0].box2d, Box2d { x1: 10.0, y1: 3.0, x2: 18.0, y2: 7.0 });
        assert!((dets[0].score - sigmoid_f(3.0)).abs() < 1e-6 && (dets[1].score - 0.5).abs() < 1e-6);
        // Size 0 at the second peak: a zero box at its cell corner, clipped to the image.
        assert_eq!(dets[1].box2d, Box2d { x1: 28.0, y1: 12.0, x2: 28.0, y2: 12.0 });
        assert_eq!(out.decode(4, (16, 32), 1)[0].len(), 1);
    }

    fn sigmoid_f(x: f32) -> f32 {
        1.0 / (1.0 + (-x).exp())
    }

    #[test]
    fn micro_detector_overfits_one_render_and_finds_its_car() {
        let t0 = Instant::now();
        let dev = Default::default();
        let request = BoxSpec {
            class: ObjectClass::Car,
            image: Some(ImageBox { x1: 0.36, y1: 0.52, x2: 0.60, y2: 0.80 }),
            road: None,
        };
        let conditions = Conditions { time_of_day: TimeOfDay::Day, crowdedness: 0 };
        let world = World::new(11, conditions, &[request]).unwrap();
        let (img, labels) = Renderer::new(128, 64).render(&world, 0);
        let car = labels.objects.iter().find(|o| o.track_id == world.scenario_tracks[0]).unwrap().box2d;
        let visible: Vec<Box2d> = labels.objects.iter().filter(|o| o.visible_pixels > 0).map(|o| o.box2d).collect();

        let cfg = DetectorConfig::micro();
        let image = image_to_tensor::<AB>(&img, &dev).unsqueeze::<4>();
        let targets = DetectorTargets::new(&[visible], (64, 128), cfg.stride(), &dev);
        let mut model = seeded_init(cfg.init::<AB>(&dev), 5);
        let mut optim = AdamConfig::new().init();
        let mut losses = Vec::new();
        for _ in 0..60 {
            let loss = detector_loss(&model.forward(image.clone()), &targets).total;
            losses.push(loss.clone().into_scalar());
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(1e-2, model, grads);
        }
        let best = &model.valid().detect(image.inner(), 1)[0][0];
        let iou = best.box2d.iou(&car);
        eprintln!(
            "overfit: loss {:.3} → {:.3}, top box {:?} score {:.2} vs car {car:?}: IoU {iou:.3} in {:.1} s",
            losses[0],
            losses[losses.len() - 1],
            best.box2d,
            best.score,
            t0.elapsed().as_secs_f32()
        );
        assert!(losses[losses.len() - 1] < 0.3 * losses[0], "{losses:?}");
        assert!(iou > 0.5, "IoU {iou}");
    }
}
