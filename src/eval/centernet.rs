//! CenterNet training targets and loss (Zhou et al. 2019, "Objects as Points", §3):
//! each car is a peak of a Gaussian on the heatmap grid at its centre cell, and the
//! size and offset heads are supervised at that cell only.

use burn::tensor::activation::log_sigmoid;
use burn::tensor::{Tensor, TensorData, backend::Backend};

use crate::world::Box2d;

use super::detector::DetectorOutput;

/// Weight of the size loss (CenterNet's λ_size); the offset loss has weight 1.
pub const SIZE_WEIGHT: f32 = 0.1;

/// Targets of a batch on the `h/stride × w/stride` grid.
#[derive(Debug, Clone)]
pub struct DetectorTargets<B: Backend> {
    /// Gaussian peaks `[b, 1, gh, gw]`: exactly 1 at each car's centre cell.
    pub heatmap: Tensor<B, 4>,
    /// Width and height in cells at the centre cells `[b, 2, gh, gw]`.
    pub size: Tensor<B, 4>,
    /// Centre minus its cell's corner, x and y in [0, 1) `[b, 2, gh, gw]`.
    pub offset: Tensor<B, 4>,
    /// 1 at centre cells, else 0 `[b, 1, gh, gw]`.
    pub centres: Tensor<B, 4>,
    /// Number of centre cells in the batch.
    pub count: usize,
}

impl<B: Backend> DetectorTargets<B> {
    /// Targets for `boxes[i]` (pixels) of image `i`, images `h × w`, grid `stride`.
    /// Degenerate boxes are skipped; two cars on one centre cell keep the later's size.
    pub fn new(boxes: &[Vec<Box2d>], (h, w): (usize, usize), stride: usize, device: &B::Device) -> Self {
        let (gh, gw) = (h / stride, w / stride);
        let plane = gh * gw;
        let b = boxes.len();
        let mut heat = vec![0.0f32; b * plane];
        let mut size = vec![0.0f32; b * 2 * plane];
        let mut offset = vec![0.0f32; b * 2 * plane];
        let mut centres = vec![0.0f32; b * plane];
        let s = stride as f32;
        for (n, image) in boxes.iter().enumerate() {
            for bx in image.iter().filter(|bx| bx.width() > 0.0 && bx.height() > 0.0) {
                let (cx, cy) = ((bx.x1 + bx.x2) / (2.0 * s), (bx.y1 + bx.y2) / (2.0 * s));
                let (ix, iy) = ((cx as usize).min(gw - 1), (cy as usize).min(gh - 1));
                let (bw, bh) = (bx.width() / s, bx.height() / s);
                // Spread ∝ box size (σ = size / 6, so the Gaussian fades at the box's
                // edges), at least half a cell so that small cars still have a peak.
                let (sx, sy) = ((bw / 6.0).max(0.5), (bh / 6.0).max(0.5));
                for y in 0..gh {
                    for x in 0..gw {
                        let (dx, dy) = (x as f32 - ix as f32, y as f32 - iy as f32);
                        let g = (-(dx * dx) / (2.0 * sx * sx) - (dy * dy) / (2.0 * sy * sy)).exp();
                        let cell = &mut heat[n * plane + y * gw + x];
                        *cell = cell.max(g);
                    }
                }
                let i = iy * gw + ix;
                centres[n * plane + i] = 1.0;
                size[(n * 2) * plane + i] = bw;
                size[(n * 2 + 1) * plane + i] = bh;
                offset[(n * 2) * plane + i] = cx - ix as f32;
                offset[(n * 2 + 1) * plane + i] = cy - iy as f32;
            }
        }
        let count = centres.iter().filter(|&&c| c > 0.0).count();
        let t = |v: Vec<f32>, c: usize| Tensor::from_data(TensorData::new(v, [b, c, gh, gw]), device);
        DetectorTargets { heatmap: t(heat, 1), size: t(size, 2), offset: t(offset, 2), centres: t(centres, 1), count }
    }
}

/// The loss terms of one batch, each `[1]`.
#[derive(Debug, Clone)]
pub struct DetectorLoss<B: Backend> {
    pub total: Tensor<B, 1>,
    pub heatmap: Tensor<B, 1>,
    pub size: Tensor<B, 1>,
    pub offset: Tensor<B, 1>,
}

/// CenterNet's loss: the penalty-reduced focal loss on the heatmap (α = 2, β = 4)
/// plus L1 on size (× [`SIZE_WEIGHT`]) and offset at centre cells, all divided by
/// the number of cars (at least 1).
pub fn detector_loss<B: Backend>(out: &DetectorOutput<B>, targets: &DetectorTargets<B>) -> DetectorLoss<B> {
    let norm = targets.count.max(1) as f32;
    let logits = out.heatmap.clone();
    // log p and log(1 − p) from the logits, stable for confident predictions.
    let (log_p, log_not_p) = (log_sigmoid(logits.clone()), log_sigmoid(logits.neg()));
    let p = log_p.clone().exp();
    let pos = targets.centres.clone();
    let neg_weight = (targets.heatmap.clone().neg() + 1.0).powi_scalar(4) * (pos.clone().neg() + 1.0);
    let pos_loss = (p.clone().neg() + 1.0).powi_scalar(2) * log_p * pos.clone();
    let neg_loss = p.powi_scalar(2) * log_not_p * neg_weight;
    let heatmap = (pos_loss + neg_loss).sum().neg() / norm;
    let l1 = |pred: &Tensor<B, 4>, target: &Tensor<B, 4>| {
        (pred.clone() - target.clone()).abs().mul(pos.clone()).sum() / norm
    };
    let size = l1(&out.size, &targets.size);
    let offset = l1(&out.offset, &targets.offset);
    DetectorLoss { total: heatmap.clone() + size.clone() * SIZE_WEIGHT + offset.clone(), heatmap, size, offset }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    type B = Flex;

    fn values(t: &Tensor<B, 4>) -> Vec<f32> {
        t.clone().into_data().to_vec::<f32>().unwrap()
    }

    #[test]
    fn one_car_gives_one_unit_peak_with_its_size_and_offset() {
        // 32×16 image, stride 4 → 8×4 grid; centre (17, 9) px = (4.25, 2.25) cells.
        let car = Box2d { x1: 9.0, y1: 5.0, x2: 25.0, y2: 13.0 };
        let t = DetectorTargets::<B>::new(&[vec![car]], (16, 32), 4, &Default::default());
        assert_eq!((t.heatmap.dims(), t.size.dims(), t.count), ([1, 1, 4, 8], [1, 2, 4, 8], 1));
        let heat = values(&t.heatmap);
        let centre = 2 * 8 + 4;
        assert_eq!(heat[centre], 1.0);
        assert!(heat.iter().enumerate().all(|(i, &v)| i == centre || v < 1.0));
        let (size, offset) = (values(&t.size), values(&t.offset));
        assert_eq!([size[centre], size[32 + centre]], [4.0, 2.0]);
        assert_eq!([offset[centre], offset[32 + centre]], [0.25, 0.25]);
        // An image without cars has an all-zero heatmap and no centres.
        let empty = DetectorTargets::<B>::new(&[vec![]], (16, 32), 4, &Default::default());
        assert!(values(&empty.heatmap).iter().all(|&v| v == 0.0) && empty.count == 0);
    }

    #[test]
    fn the_right_answer_has_a_lower_loss_than_the_prior() {
        let car = Box2d { x1: 9.0, y1: 5.0, x2: 25.0, y2: 13.0 };
        let dev = Default::default();
        let t = DetectorTargets::<B>::new(&[vec![car]], (16, 32), 4, &dev);
        let prior = DetectorOutput {
            heatmap: Tensor::<B, 4>::full([1, 1, 4, 8], -2.19, &dev),
            size: Tensor::zeros([1, 2, 4, 8], &dev),
            offset: Tensor::zeros([1, 2, 4, 8], &dev),
        };
        // Logits of the target heatmap itself (clamped away from 0 and 1), exact size and offset.
        let right = DetectorOutput {
            heatmap: t.heatmap.clone().clamp(1e-4, 1.0 - 1e-4).log()
                - (t.heatmap.clone().neg() + 1.0).clamp(1e-4, 1.0).log(),
            size: t.size.clone(),
            offset: t.offset.clone(),
        };
        let (a, b) = (detector_loss(&prior, &t), detector_loss(&right, &t));
        let v = |x: Tensor<B, 1>| x.into_scalar();
        assert!(v(b.total.clone()) < 0.1 * v(a.total.clone()), "{} vs {}", v(b.total), v(a.total));
        assert_eq!((v(b.size), v(b.offset)), (0.0, 0.0));
        // Prior size loss: |4| + |2| at the one centre, one car.
        assert!((v(a.size) - 6.0).abs() < 1e-6);
    }
}
