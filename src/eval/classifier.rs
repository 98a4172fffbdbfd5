//! Condition classifier: reads the time of day and the traffic density (crowdedness
//! 0..=3) off one frame, for the condition accuracy of generated scenes. Its pooled
//! backbone features are also the frame features of the Fréchet distance.

use burn::config::Config;
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Int, Tensor, TensorData, backend::Backend};

use crate::scenario::{Conditions, MAX_CROWDEDNESS, TimeOfDay};

use super::backbone::{Backbone, BackboneConfig};

/// Crowdedness levels 0..=3.
const CROWD_LEVELS: usize = MAX_CROWDEDNESS as usize + 1;

#[derive(Config, Debug)]
pub struct ClassifierConfig {
    pub backbone: BackboneConfig,
}

impl ClassifierConfig {
    /// For tests.
    pub fn micro() -> Self {
        ClassifierConfig::new(BackboneConfig::new(vec![8, 16, 16]))
    }

    /// The shipped evaluator: down to 1/16, 96 features per frame.
    pub fn tiny() -> Self {
        ClassifierConfig::new(BackboneConfig::new(vec![16, 32, 64, 96]).with_convs_per_stage(2))
    }

    /// Width of [`ClassifierOutput::features`].
    pub fn feature_dims(&self) -> usize {
        self.backbone.channels.last().copied().unwrap_or(0)
    }

    pub fn init<B: Backend>(&self, device: &B::Device) -> ConditionClassifier<B> {
        let d = self.feature_dims();
        ConditionClassifier {
            backbone: self.backbone.init(device),
            time_of_day: LinearConfig::new(d, 2).init(device),
            crowdedness: LinearConfig::new(d, CROWD_LEVELS).init(device),
        }
    }
}

#[derive(Module, Debug)]
pub struct ConditionClassifier<B: Backend> {
    pub backbone: Backbone<B>,
    pub time_of_day: Linear<B>,
    pub crowdedness: Linear<B>,
}

#[derive(Debug, Clone)]
pub struct ClassifierOutput<B: Backend> {
    /// Globally average-pooled last-stage features `[b, d]`.
    pub features: Tensor<B, 2>,
    /// Day, night logits `[b, 2]`.
    pub time_of_day: Tensor<B, 2>,
    /// Crowdedness 0..=3 logits `[b, 4]`.
    pub crowdedness: Tensor<B, 2>,
}

impl<B: Backend> ConditionClassifier<B> {
    /// Images `[b, 3, h, w]` in [-1, 1] (`h`, `w` multiples of `2^stages`) → features and logits.
    pub fn forward(&self, images: Tensor<B, 4>) -> ClassifierOutput<B> {
        let features = self.backbone.pooled(images);
        ClassifierOutput {
            time_of_day: self.time_of_day.forward(features.clone()),
            crowdedness: self.crowdedness.forward(features.clone()),
            features,
        }
    }

    /// The most likely conditions of each image.
    pub fn predict(&self, images: Tensor<B, 4>) -> Vec<Conditions> {
        self.forward(images).conditions()
    }
}

impl<B: Backend> ClassifierOutput<B> {
    /// Arg-max conditions of each image.
    pub fn conditions(&self) -> Vec<Conditions> {
        let argmax =
            |t: &Tensor<B, 2>| t.clone().argmax(1).into_data().convert::<i64>().to_vec::<i64>().unwrap_or_default();
        argmax(&self.time_of_day)
            .into_iter()
            .zip(argmax(&self.crowdedness))
            .map(|(t, c)| Conditions {
                time_of_day: if t == 0 { TimeOfDay::Day } else { TimeOfDay::Night },
                crowdedness: c as u8,
            })
            .collect()
    }

    /// Cross-entropy of both heads against the true conditions, summed, `[1]`.
    pub fn loss(&self, truth: &[Conditions]) -> Tensor<B, 1> {
        let device = self.features.device();
        let labels = |f: &dyn Fn(&Conditions) -> i64| {
            let v: Vec<i64> = truth.iter().map(f).collect();
            Tensor::<B, 1, Int>::from_data(TensorData::new(v, [truth.len()]), &device)
        };
        let ce = CrossEntropyLossConfig::new().init(&device);
        let time = labels(&|c| (c.time_of_day == TimeOfDay::Night) as i64);
        let crowd = labels(&|c| c.crowdedness.min(MAX_CROWDEDNESS) as i64);
        ce.forward(self.time_of_day.clone(), time) + ce.forward(self.crowdedness.clone(), crowd)
    }
}

#[cfg(test)]
mod tests {
    use burn::backend::{Autodiff, Flex};
    use burn::module::AutodiffModule;
    use burn::optim::{AdamConfig, GradientsParams, Optimizer};

    use super::*;
    use crate::data::image_to_tensor;
    use crate::train::init::seeded_init;
    use crate::world::{Renderer, World};

    type AB = Autodiff<Flex>;

    #[test]
    fn features_and_logits_have_their_shapes() {
        let dev = Default::default();
        for cfg in [ClassifierConfig::micro(), ClassifierConfig::tiny()] {
            let out = cfg.init::<Flex>(&dev).forward(Tensor::zeros([3, 3, 32, 64], &dev));
            assert_eq!(out.features.dims(), [3, cfg.feature_dims()]);
            assert_eq!((out.time_of_day.dims(), out.crowdedness.dims()), ([3, 2], [3, 4]));
        }
    }

    #[test]
    fn micro_classifier_learns_four_renders() {
        let dev = Default::default();
        let mut renderer = Renderer::new(64, 32);
        let truth: Vec<Conditions> =
            [(TimeOfDay::Day, 0), (TimeOfDay::Night, 3), (TimeOfDay::Day, 3), (TimeOfDay::Night, 0)]
                .into_iter()
                .map(|(time_of_day, crowdedness)| Conditions { time_of_day, crowdedness })
                .collect();
        let frames: Vec<Tensor<AB, 3>> = truth
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let world = World::new(20 + i as u64, *c, &[]).unwrap();
                image_to_tensor(&renderer.render(&world, 0).0, &dev)
            })
            .collect();
        let images = Tensor::stack(frames, 0);
        let mut model = seeded_init(ClassifierConfig::micro().init::<AB>(&dev), 2);
        let mut optim = AdamConfig::new().init();
        let first: f32 = model.forward(images.clone()).loss(&truth).into_scalar();
        for _ in 0..40 {
            let loss = model.forward(images.clone()).loss(&truth);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(1e-2, model, grads);
        }
        let model = model.valid();
        let last: f32 = model.forward(images.clone().inner()).loss(&truth).into_scalar();
        assert!(last < 0.2 * first, "{first} → {last}");
        assert_eq!(model.predict(images.inner()), truth);
    }
}
