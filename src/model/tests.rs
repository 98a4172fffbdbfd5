//! What the Video LDM design promises, on micro configs: α = 1 is the image model
//! frame by frame; temporal training leaves spatial weights untouched; context
//! frames reach the model and S = 0 is the unconditional branch; the upsampler is
//! fully convolutional; shapes of every model.

use burn::backend::{Autodiff, Flex};
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::tensor::{Int, Tensor, TensorData, backend::Backend};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::tiers::ModelTier;
use super::unet::{UNet, UNetInput};
use super::{Boxes, Labels};
use crate::scenario::{Conditions, TimeOfDay};

type B = Flex;

fn randn<Bk: Backend, const D: usize>(
    shape: [usize; D],
    rng: &mut ChaCha8Rng,
    scale: f32,
    dev: &Bk::Device,
) -> Tensor<Bk, D> {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| (rng.random::<f32>() * 2.0 - 1.0) * scale).collect();
    Tensor::from_data(TensorData::new(v, shape), dev)
}

/// Replaces every float parameter with seeded random values (rank-1 `[1]` α logits
/// get `alpha_logit`); with `spatial_only`, parameters under a `temporal` field are kept.
struct Randomise {
    rng: ChaCha8Rng,
    alpha_logit: f32,
    spatial_only: bool,
    in_temporal: usize,
}

impl Randomise {
    fn new(seed: u64, alpha_logit: f32) -> Self {
        Randomise { rng: ChaCha8Rng::seed_from_u64(seed), alpha_logit, spatial_only: false, in_temporal: 0 }
    }
}

impl<Bk: Backend> ModuleMapper<Bk> for Randomise {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.in_temporal += (name == "temporal") as usize;
    }
    fn exit_module(&mut self, name: &str, _: &str) {
        self.in_temporal -= (name == "temporal") as usize;
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<Bk, D>>) -> Param<Tensor<Bk, D>> {
        if self.spatial_only && self.in_temporal > 0 {
            return param;
        }
        let (id, t, mapper) = param.consume();
        let dims = t.dims();
        let dev = t.device();
        let v = if D == 1 && dims[0] == 1 {
            Tensor::full(dims, self.alpha_logit, &dev)
        } else {
            randn::<Bk, D>(dims, &mut self.rng, 0.2, &dev)
        };
        Param::from_mapped_value(id, v, mapper)
    }
}

/// Makes every layer non-trivial (zero-initialised outputs would hide everything)
/// and sets every α logit (and, harmlessly, the box gates) to `alpha_logit`.
fn with_random_temporal<Bk: Backend>(model: UNet<Bk>, alpha_logit: f32, seed: u64) -> UNet<Bk> {
    let model = model.map(&mut Randomise::new(seed + 1000, alpha_logit));
    model.map_temporal(&mut Randomise::new(seed, alpha_logit))
}

/// All float parameters by path.
fn params<Bk: Backend, M: Module<Bk>>(m: &M) -> Vec<(String, Vec<f32>)> {
    struct Collect(Vec<String>, Vec<(String, Vec<f32>)>);
    impl<Bk: Backend> ModuleVisitor<Bk> for Collect {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.0.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.0.pop();
        }
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<Bk, D>>) {
            self.1.push((self.0.join("."), p.val().into_data().convert::<f32>().to_vec::<f32>().unwrap()));
        }
    }
    let mut c = Collect(Vec::new(), Vec::new());
    m.visit(&mut c);
    c.1
}

/// Latent channels of the micro tier.
fn micro_z() -> usize {
    ModelTier::Micro.config().latent_channels()
}

struct Batch<Bk: Backend> {
    input: UNetInput<Bk>,
}

/// `clips` clips of `t` frames of micro latents with labels, boxes and timesteps.
fn batch<Bk: Backend>(clips: usize, t: usize, seed: u64, dev: &Bk::Device) -> Batch<Bk> {
    let cfg = ModelTier::Micro.config();
    let (h, w) = (cfg.frame_size.0 / cfg.autoencoder.factor(), cfg.frame_size.1 / cfg.autoencoder.factor());
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = clips * t;
    let x = randn::<Bk, 4>([n, micro_z(), h, w], &mut rng, 1.0, dev);
    let steps: Vec<f32> = (0..n).map(|i| (100 + 37 * (i / t)) as f32).collect();
    let cond = Conditions { time_of_day: TimeOfDay::Night, crowdedness: 2 };
    let mut input = UNetInput::new(x, Tensor::from_floats(steps.as_slice(), dev), t);
    input.labels = Some(Labels::new(&vec![Some(cond); n], dev));
    input.boxes = Some(Boxes::new(
        &vec![Some(vec![[0.2, 0.5, 0.4, 0.8]]); n],
        cfg.image_ldm.boxes.as_ref().unwrap().slots,
        h,
        w,
        dev,
    ));
    Batch { input }
}

fn max_abs_diff<const D: usize>(a: Tensor<B, D>, b: Tensor<B, D>) -> f32 {
    (a - b).abs().max().into_scalar()
}

fn frame(x: &Tensor<B, 4>, i: usize) -> Tensor<B, 4> {
    let [_, c, h, w] = x.dims();
    x.clone().slice([i..i + 1, 0..c, 0..h, 0..w])
}

#[test]
fn alpha_one_is_the_image_model_frame_by_frame() {
    let dev = Default::default();
    let cfg = ModelTier::Micro.config();
    let video = with_random_temporal(cfg.video_ldm.init::<B>(&dev), 30.0, 1);
    let image = video.clone().into_image_model();
    let Batch { input } = batch::<B>(2, 4, 7, &dev);
    let out_video = video.forward(input.clone());
    let mut as_images = input.clone();
    as_images.frames = 1;
    as_images.context = None;
    let out_image = image.forward(as_images);
    assert!(max_abs_diff(out_video.clone(), out_image) <= 1e-5);

    // Perturbing frame 2 of clip 0 changes that frame's output only.
    let mut perturbed = input.clone();
    perturbed.x =
        perturbed.x.clone().slice_assign([2..3, 0..micro_z(), 0..4, 0..8], Tensor::ones([1, micro_z(), 4, 8], &dev));
    let out_p = video.forward(perturbed.clone());
    for i in 0..8 {
        let d = max_abs_diff(frame(&out_video, i), frame(&out_p, i));
        if i == 2 {
            assert!(d > 1e-4, "the perturbed frame must change")
        } else {
            assert_eq!(d, 0.0, "frame {i} changed")
        }
    }

    // With α < 1 the temporal layers mix frames: the perturbation reaches its neighbours only within its clip.
    let mixing = with_random_temporal(cfg.video_ldm.init::<B>(&dev), 0.0, 1);
    let (a, b) = (mixing.forward(input), mixing.forward(perturbed));
    assert!(max_abs_diff(frame(&a, 1), frame(&b, 1)) > 1e-5, "α < 1 must let frames interact");
    for i in 4..8 {
        assert_eq!(max_abs_diff(frame(&a, i), frame(&b, i)), 0.0, "clip 1 frame {i} must not see clip 0");
    }
}

#[test]
fn new_video_model_starts_as_its_image_model() {
    // Zero-initialised temporal outputs: any α gives the image model at initialisation.
    let dev = Default::default();
    let mut spatial = Randomise::new(5, 0.0);
    spatial.spatial_only = true;
    let video = ModelTier::Micro.config().video_ldm.init::<B>(&dev).map(&mut spatial);
    let image = video.clone().into_image_model();
    let Batch { input } = batch::<B>(1, 3, 2, &dev);
    let mut as_images = input.clone();
    as_images.frames = 1;
    let out = video.forward(input);
    assert!(out.clone().abs().max().into_scalar() > 1e-3, "a randomised image model predicts something");
    assert!(max_abs_diff(out, image.forward(as_images)) <= 1e-5);
}

#[test]
fn temporal_training_leaves_spatial_weights_bit_identical() {
    type AB = Autodiff<Flex>;
    let dev = Default::default();
    let cfg = ModelTier::Micro.config();
    let model = with_random_temporal(cfg.video_ldm.init::<AB>(&dev), 0.0, 3).freeze_spatial();
    let before = params(&model);
    let Batch { input } = batch::<AB>(1, 4, 5, &dev);
    let target = Tensor::<AB, 4>::ones(input.x.dims(), &dev);
    let loss = (model.forward(input) - target).powi_scalar(2).mean();
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let mut optim = AdamWConfig::new().init::<AB, UNet<AB>>();
    let model = optim.step(1e-2, model, grads);
    let after = params(&model);
    assert_eq!(before.len(), after.len());
    let (mut spatial, mut temporal_changed, mut alpha_changed) = (0, 0, 0);
    for ((path, a), (_, b)) in before.iter().zip(&after) {
        if path.split('.').any(|s| s == "temporal") {
            temporal_changed += (a != b) as usize;
            alpha_changed += (path.ends_with("alpha.mix") && a != b) as usize;
        } else {
            assert_eq!(a, b, "spatial parameter {path} changed");
            spatial += 1;
        }
    }
    assert!(spatial > 20 && temporal_changed > 10 && alpha_changed > 4, "{spatial} {temporal_changed} {alpha_changed}");
    assert!(before.iter().any(|(p, _)| p == "down.0.blocks.0.temporal.res.Conv.alpha.mix"), "{:?}", &before[..5]);
}

/// `c_S = (m ∘ z, m)` for clips of `t` frames whose first `s` frames are known.
fn context(z: &Tensor<B, 4>, t: usize, s: usize) -> Tensor<B, 4> {
    let [n, c, h, w] = z.dims();
    let mask: Vec<f32> = (0..n).map(|i| if i % t < s { 1.0 } else { 0.0 }).collect();
    let m = Tensor::<B, 1>::from_floats(mask.as_slice(), &z.device())
        .reshape([n, 1, 1, 1])
        .repeat_dim(2, h)
        .repeat_dim(3, w);
    Tensor::cat(vec![z.clone() * m.clone().repeat_dim(1, c), m], 1)
}

#[test]
fn context_frames_reach_the_model_and_s0_is_the_unconditional_branch() {
    let dev = Default::default();
    let model = with_random_temporal(ModelTier::Micro.config().video_ldm.init::<B>(&dev), 0.0, 9);
    let Batch { input } = batch::<B>(1, 4, 11, &dev);
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let z = randn::<B, 4>(input.x.dims(), &mut rng, 1.0, &dev);
    let run = |ctx: Option<Tensor<B, 4>>| {
        let mut i = input.clone();
        i.context = ctx;
        model.forward(i)
    };
    let uncond = run(None);
    let s0 = run(Some(context(&z, 4, 0)));
    assert_eq!(max_abs_diff(uncond.clone(), s0), 0.0, "S = 0 must equal the unconditional branch");
    let s2 = run(Some(context(&z, 4, 2)));
    assert!(max_abs_diff(uncond, s2.clone()) > 1e-4, "two context frames must change the prediction");
    // The known latents themselves matter, not just the mask.
    let z2 = randn::<B, 4>(input.x.dims(), &mut rng, 1.0, &dev);
    assert!(max_abs_diff(s2, run(Some(context(&z2, 4, 2)))) > 1e-4);
}

#[test]
fn upsampler_is_fully_convolutional_in_space() {
    let dev = Default::default();
    let cfg = ModelTier::Micro.config();
    let up = cfg.upsampler.init::<B>(&dev);
    let up = super::upsampler::Upsampler { unet: with_random_temporal(up.unet, 0.0, 2), ..up };
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let (h, w, t) = (128, 256, 2);
    assert_eq!(up.unshuffle, 2, "the micro upsampler exercises space-to-depth");
    let x = randn::<B, 4>([t, 3, h, w], &mut rng, 1.0, &dev);
    let cond = randn::<B, 4>([t, 3, h, w], &mut rng, 1.0, &dev);
    let steps = Tensor::<B, 1>::from_floats([500.0, 500.0], &dev);
    let level = Tensor::<B, 1>::from_floats([100.0, 100.0], &dev);
    let full = up.forward(x.clone(), steps.clone(), cond.clone(), level.clone(), t);
    // A 96×192 patch at an offset aligned with space-to-depth × downsampling (multiples of r·2^(levels−1) = 4).
    let (y0, x0, ph, pw) = (16, 32, 96, 192);
    let crop = |a: Tensor<B, 4>| a.slice([0..t, 0..3, y0..y0 + ph, x0..x0 + pw]);
    let patch = up.forward(crop(x), steps, crop(cond), level, t);
    // Away from the patch border by more than the receptive-field radius (~30 px) the outputs agree.
    let m = 32;
    let inner = |a: Tensor<B, 4>| a.slice([0..t, 0..3, m..ph - m, m..pw - m]);
    let d = max_abs_diff(inner(crop(full)), inner(patch));
    assert!(d <= 1e-4, "patch vs crop of full frame: max diff {d}");
}

#[test]
fn space_to_depth_round_trips_and_keeps_blocks_together() {
    use super::upsampler::{depth_to_space, space_to_depth};
    let dev = Default::default();
    let x = randn::<B, 4>([2, 3, 8, 12], &mut ChaCha8Rng::seed_from_u64(3), 1.0, &dev);
    let s = space_to_depth(x.clone(), 4);
    assert_eq!(s.dims(), [2, 48, 2, 3]);
    assert_eq!(depth_to_space(s.clone(), 4).into_data(), x.clone().into_data());
    // Channel (c=1, dy=2, dx=3) of block (1, 2) is pixel (1·4+2, 2·4+3) of channel 1.
    let v: f32 = s.slice([0..1, 16 + 2 * 4 + 3..16 + 2 * 4 + 4, 1..2, 2..3]).into_scalar();
    let want: f32 = x.slice([0..1, 1..2, 6..7, 11..12]).into_scalar();
    assert_eq!(v, want);
}

#[test]
fn every_micro_model_has_the_documented_shapes() {
    let dev = Default::default();
    let cfg = ModelTier::Micro.config();
    let ae = cfg.autoencoder.init::<B>(&dev);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let frames = randn::<B, 4>([4, 3, 16, 32], &mut rng, 1.0, &dev);
    let (mean, logvar) = ae.encoder.forward(frames);
    assert_eq!(mean.dims(), [4, micro_z(), 4, 8]);
    assert_eq!(logvar.dims(), [4, micro_z(), 4, 8]);
    assert_eq!(ae.decoder.forward(mean.clone(), 1).dims(), [4, 3, 16, 32]);
    let tdec = cfg.autoencoder.clone().with_temporal_decoder(true).init::<B>(&dev);
    assert_eq!(tdec.decoder.forward(mean, 4).dims(), [4, 3, 16, 32]);
    let disc = cfg.discriminator.init::<B>(&dev);
    assert_eq!(disc.forward(randn::<B, 5>([1, 3, 4, 16, 32], &mut rng, 1.0, &dev)).dims(), [1, 1, 4, 4, 8]);
    let interp = cfg.interpolator.init::<B>(&dev);
    let Batch { mut input } = batch::<B>(1, 4, 3, &dev);
    input.fps_stage = Some(Tensor::<B, 1, Int>::from_ints([1, 1, 1, 1], &dev));
    assert_eq!(interp.forward(input).dims(), [4, micro_z(), 4, 8]);
}
