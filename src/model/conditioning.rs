//! Conditioning encoders: day/night and crowdedness embeddings (with learned null
//! classes for classifier-free guidance), the interpolator's fps flag, and car
//! boxes as GLIGEN-style tokens (Fourier-embedded coordinates + class → MLP) plus
//! layout maps rasterised at latent resolution.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig};
use burn::tensor::activation::silu;
use burn::tensor::{Int, Tensor, TensorData, backend::Backend};

use crate::scenario::{Conditions, MAX_CROWDEDNESS};

/// Index of the null ("dropped") class in each label embedding.
pub const NULL_TIME_OF_DAY: i64 = 2;
pub const NULL_CROWDEDNESS: i64 = MAX_CROWDEDNESS as i64 + 1;
/// Fourier frequencies per box coordinate (GLIGEN uses 8; sin and cos each).
pub const BOX_FREQS: usize = 8;

/// Labels of a batch, as class indices; dropped labels use the null indices.
#[derive(Debug, Clone)]
pub struct Labels<B: Backend> {
    /// `[n]`: 0 day, 1 night, 2 null.
    pub time_of_day: Tensor<B, 1, Int>,
    /// `[n]`: 0..=3, 4 null.
    pub crowdedness: Tensor<B, 1, Int>,
}

impl<B: Backend> Labels<B> {
    /// One entry per sample; `None` is the dropped (unconditional) label.
    pub fn new(conditions: &[Option<Conditions>], device: &B::Device) -> Self {
        let tod: Vec<i64> =
            conditions.iter().map(|c| c.map_or(NULL_TIME_OF_DAY, |c| c.time_of_day.index() as i64)).collect();
        let crowd: Vec<i64> = conditions.iter().map(|c| c.map_or(NULL_CROWDEDNESS, |c| c.crowdedness as i64)).collect();
        let n = conditions.len();
        Labels {
            time_of_day: Tensor::from_data(TensorData::new(tod, [n]), device),
            crowdedness: Tensor::from_data(TensorData::new(crowd, [n]), device),
        }
    }

    /// All labels dropped, for the unconditional branch.
    pub fn null(n: usize, device: &B::Device) -> Self {
        Labels::new(&vec![None; n], device)
    }
}

/// Adds the label embeddings to the timestep embedding (LDM's class conditioning).
#[derive(Module, Debug)]
pub struct LabelEmbedding<B: Backend> {
    pub time_of_day: Embedding<B>,
    pub crowdedness: Embedding<B>,
}

#[derive(Config, Debug)]
pub struct LabelEmbeddingConfig {
    /// Width of the timestep embedding the labels are added to.
    pub dim: usize,
}

impl LabelEmbeddingConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> LabelEmbedding<B> {
        LabelEmbedding {
            time_of_day: EmbeddingConfig::new(NULL_TIME_OF_DAY as usize + 1, self.dim).init(device),
            crowdedness: EmbeddingConfig::new(NULL_CROWDEDNESS as usize + 1, self.dim).init(device),
        }
    }
}

impl<B: Backend> LabelEmbedding<B> {
    /// → `[n, dim]`.
    pub fn forward(&self, labels: &Labels<B>) -> Tensor<B, 2> {
        let lookup = |e: &Embedding<B>, idx: &Tensor<B, 1, Int>| {
            let n = idx.dims()[0];
            let out = e.forward(idx.clone().reshape([n, 1]));
            let d = out.dims()[2];
            out.reshape([n, d])
        };
        lookup(&self.time_of_day, &labels.time_of_day) + lookup(&self.crowdedness, &labels.crowdedness)
    }
}

/// Car boxes of a batch: at most `k` per sample.
#[derive(Debug, Clone)]
pub struct Boxes<B: Backend> {
    /// `[n, k, 4]` normalised `x1, y1, x2, y2`; zeros in empty slots.
    pub coords: Tensor<B, 3>,
    /// `[n, k]`: 1 for a box, 0 for an empty slot.
    pub present: Tensor<B, 2>,
    /// `[n, 1, h, w]`: fraction of each latent cell covered by boxes (clamped to 1).
    pub layout: Tensor<B, 4>,
}

impl<B: Backend> Boxes<B> {
    /// Builds the batch from per-sample box lists (`None`: boxes dropped for CFG),
    /// with `slots` token slots and layout maps of `h × w` cells.
    pub fn new(boxes: &[Option<Vec<[f32; 4]>>], slots: usize, h: usize, w: usize, device: &B::Device) -> Self {
        let n = boxes.len();
        let (mut coords, mut present, mut layout) =
            (vec![0f32; n * slots * 4], vec![0f32; n * slots], vec![0f32; n * h * w]);
        for (i, sample) in boxes.iter().enumerate() {
            for (j, b) in sample.iter().flatten().take(slots).enumerate() {
                coords[(i * slots + j) * 4..(i * slots + j) * 4 + 4].copy_from_slice(b);
                present[i * slots + j] = 1.0;
                rasterise(&mut layout[i * h * w..(i + 1) * h * w], h, w, b);
            }
        }
        Boxes {
            coords: Tensor::from_data(TensorData::new(coords, [n, slots, 4]), device),
            present: Tensor::from_data(TensorData::new(present, [n, slots]), device),
            layout: Tensor::from_data(TensorData::new(layout, [n, 1, h, w]), device),
        }
    }
}

/// `[n, 1, h, w]`: the share of each of `h × w` cells that a sample's boxes cover (clamped to
/// 1), all of its boxes, whatever the token slots: where the cars are in a frame (the image
/// LDM's `--box-weight` loss map).
pub fn box_cover<B: Backend>(boxes: &[Vec<[f32; 4]>], h: usize, w: usize, device: &B::Device) -> Tensor<B, 4> {
    let mut map = vec![0f32; boxes.len() * h * w];
    for (cells, sample) in map.chunks_mut(h * w).zip(boxes) {
        for b in sample {
            rasterise(cells, h, w, b);
        }
    }
    Tensor::from_data(TensorData::new(map, [boxes.len(), 1, h, w]), device)
}

/// Adds the exact area fraction of each cell covered by box `b` (normalised coords).
fn rasterise(map: &mut [f32], h: usize, w: usize, b: &[f32; 4]) {
    let (x1, y1, x2, y2) = (b[0] * w as f32, b[1] * h as f32, b[2] * w as f32, b[3] * h as f32);
    for y in (y1.floor().max(0.0) as usize)..(y2.ceil().min(h as f32) as usize) {
        let cy = (y2.min(y as f32 + 1.0) - y1.max(y as f32)).max(0.0);
        for x in (x1.floor().max(0.0) as usize)..(x2.ceil().min(w as f32) as usize) {
            let cx = (x2.min(x as f32 + 1.0) - x1.max(x as f32)).max(0.0);
            let m = &mut map[y * w + x];
            *m = (*m + cx * cy).min(1.0);
        }
    }
}

#[derive(Config, Debug)]
pub struct BoxEncoderConfig {
    /// Width of box tokens.
    pub token_dim: usize,
    /// Token slots; scenarios with more boxes than this are refused for the tier.
    pub slots: usize,
}

/// Box tokens: `MLP([Fourier(xyxy); class vector])`, or a learned null token in
/// empty slots (GLIGEN's padding).
#[derive(Module, Debug)]
pub struct BoxEncoder<B: Backend> {
    pub class: Param<Tensor<B, 1>>,
    pub null: Param<Tensor<B, 1>>,
    pub mlp1: Linear<B>,
    pub mlp2: Linear<B>,
}

impl BoxEncoderConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> BoxEncoder<B> {
        let d = self.token_dim;
        let fourier = 4 * 2 * BOX_FREQS;
        let init =
            |len| Param::from_tensor(Tensor::random([len], burn::tensor::Distribution::Normal(0.0, 0.02), device));
        BoxEncoder {
            class: init(d),
            null: init(d),
            mlp1: LinearConfig::new(fourier + d, d).init(device),
            mlp2: LinearConfig::new(d, d).init(device),
        }
    }
}

impl<B: Backend> BoxEncoder<B> {
    /// → tokens `[n, k, token_dim]`.
    pub fn forward(&self, boxes: &Boxes<B>) -> Tensor<B, 3> {
        let [n, k, _] = boxes.coords.dims();
        let d = self.class.dims()[0];
        let device = boxes.coords.device();
        // Frequencies 100^(j/8) as GLIGEN, j = 0..8.
        let freqs: Vec<f32> = (0..BOX_FREQS).map(|j| 100f32.powf(j as f32 / BOX_FREQS as f32)).collect();
        let freqs = Tensor::<B, 1>::from_floats(freqs.as_slice(), &device).reshape([1, 1, 1, BOX_FREQS]);
        let args = boxes.coords.clone().unsqueeze_dim::<4>(3) * freqs; // [n, k, 4, F]
        let fourier = Tensor::cat(vec![args.clone().sin(), args.cos()], 3).reshape([n, k, 4 * 2 * BOX_FREQS]);
        let class = self.class.val().reshape([1, 1, d]).repeat_dim(0, n).repeat_dim(1, k);
        let tokens = self.mlp2.forward(silu(self.mlp1.forward(Tensor::cat(vec![fourier, class], 2))));
        let present = boxes.present.clone().unsqueeze_dim::<3>(2);
        let null = self.null.val().reshape([1, 1, d]);
        tokens * present.clone() + null * (present.neg() + 1.0)
    }
}

/// The interpolator's frame-rate flag: stage 0 (T → 4T) or stage 1 (4T → 16T).
#[derive(Module, Debug)]
pub struct FpsEmbedding<B: Backend> {
    pub table: Embedding<B>,
}

#[derive(Config, Debug)]
pub struct FpsEmbeddingConfig {
    pub dim: usize,
}

impl FpsEmbeddingConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> FpsEmbedding<B> {
        FpsEmbedding { table: EmbeddingConfig::new(2, self.dim).init(device) }
    }
}

impl<B: Backend> FpsEmbedding<B> {
    /// `stage`: `[n]` in {0, 1} → `[n, dim]`.
    pub fn forward(&self, stage: Tensor<B, 1, Int>) -> Tensor<B, 2> {
        let n = stage.dims()[0];
        let out = self.table.forward(stage.reshape([n, 1]));
        let d = out.dims()[2];
        out.reshape([n, d])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    #[test]
    fn layout_map_is_the_exact_covered_fraction() {
        let b = Boxes::<Flex>::new(&[Some(vec![[0.25, 0.0, 0.625, 0.5]]), None], 2, 2, 4, &Default::default());
        let m = b.layout.into_data().to_vec::<f32>().unwrap();
        // Width 4 cells: x from 1.0 to 2.5; height 2 cells: y from 0 to 1.
        assert_eq!(&m[..8], &[0.0, 1.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0]);
        assert!(m[8..].iter().all(|&v| v == 0.0), "dropped boxes give an empty map");
        assert_eq!(b.present.into_data().to_vec::<f32>().unwrap(), vec![1.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn box_cover_counts_every_box_once_per_cell() {
        // A 2 × 4 map; the first two boxes overlap in cell 0, the third would be past 2 token slots.
        let boxes = vec![vec![[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.25, 0.5], [0.75, 0.5, 1.0, 1.0]], vec![]];
        let m = box_cover::<Flex>(&boxes, 2, 4, &Default::default()).into_data().to_vec::<f32>().unwrap();
        assert_eq!(&m[..8], &[1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]);
        assert!(m[8..].iter().all(|&v| v == 0.0), "no boxes give an empty map");
    }

    #[test]
    fn empty_slots_get_the_null_token() {
        let dev = Default::default();
        let enc = BoxEncoderConfig::new(8, 3).init::<Flex>(&dev);
        let b = Boxes::<Flex>::new(&[Some(vec![[0.1, 0.5, 0.3, 0.7]])], 3, 4, 8, &dev);
        let t = enc.forward(&b);
        let null = enc.null.val().into_data().to_vec::<f32>().unwrap();
        let slot2 = t.clone().slice([0..1, 2..3, 0..8]).into_data().to_vec::<f32>().unwrap();
        assert_eq!(slot2, null);
        let slot0 = t.slice([0..1, 0..1, 0..8]).into_data().to_vec::<f32>().unwrap();
        assert_ne!(slot0, null);
    }
}
