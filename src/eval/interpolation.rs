//! The interpolator on rendered clips. Each held-out clip is rendered at 10 Hz over
//! 0.8 s (9 frames); the autoencoder's frozen encoder gives its latents (posterior mean);
//! the interpolator gets the latents of frames 0, 4 and 8 as its key frames, as `generate`
//! gives it the video LDM's, and fills in the six frames between them. Scored against the
//! renders, next to two references:
//! - `blend`: the straight line between neighbouring keys' latents, the interpolator's
//!   baseline (it beats it only if it models motion);
//! - `moved`: neighbouring keys moved towards each other by the ego's travel and blended
//!   ([`InterpolationGuess::Ego`]), the other guess the interpolation guide can start from;
//! - `ceiling`: the encoder's own latents of the in-between frames, what a perfect
//!   interpolator reaches through this decoder.
//!
//! Every latent decodes with the per-frame image decoder, so only the in-between latents
//! differ. PSNR is over the six in-between frames; the temporal error
//! ([`temporal_error`]) over all nine, keys included.

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use super::decoders::ClipScore;
use crate::data::{EVAL_SEED_BASE, psnr, temporal_error};
use crate::pipeline::generator::{INTERPOLATION_FACTOR, KEYFRAME_FPS, blend_keys};
use crate::pipeline::{GenerateOptions, Generator, PipelineError};
use crate::scenario::InterpolationGuess;
use crate::train::FrameSource;

/// World seed of the first clip: held out, and apart from `eval`'s scenes, the evaluators'
/// accuracy worlds, the decoder clips ([`super::DECODER_CLIP_SEED`]) and the model card's
/// upsampler frames (from `EVAL_SEED_BASE + 200`).
pub const INTERPOLATION_CLIP_SEED: u64 = EVAL_SEED_BASE + 300;

/// The interpolator and its two references on the same clips.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InterpolationComparison {
    pub clips: usize,
    /// DDIM steps of the interpolator.
    pub steps: usize,
    pub interpolator: ClipScore,
    pub blend: ClipScore,
    pub moved: ClipScore,
    pub ceiling: ClipScore,
}

/// One clip of a comparison: the render and the four ways' decoded frames, `[9, 3, h, w]`
/// each in [-1, 1].
pub struct InterpolatedClip<B: Backend> {
    pub render: Tensor<B, 4>,
    pub interpolator: Tensor<B, 4>,
    pub blend: Tensor<B, 4>,
    pub moved: Tensor<B, 4>,
    pub ceiling: Tensor<B, 4>,
}

/// Measures `generator`'s interpolator on `clips` held-out clips (world seeds from
/// [`INTERPOLATION_CLIP_SEED`], the clip's seed also its sampling seed) with `opts`' steps,
/// eta, known-frame handling and interpolation guide, handing each clip to `on_clip`. The ego
/// motion is the clip world's at its start, the cars seen in its first frame held in place (as
/// `generate` holds the requested cars).
pub fn compare_interpolation<B: Backend>(
    generator: &Generator<B>,
    clips: usize,
    opts: &GenerateOptions,
    mut on_clip: impl FnMut(InterpolatedClip<B>),
) -> Result<InterpolationComparison, PipelineError> {
    let m = &generator.models;
    let device = &generator.device;
    let (h, w) = m.frame_size();
    let source = FrameSource::new(h, w, 0);
    let f = INTERPOLATION_FACTOR;
    let n = 2 * f + 1;
    let between: Vec<usize> = (0..n).filter(|j| j % f != 0).collect();
    let fps = KEYFRAME_FPS * f as f32;
    // Per way: in-between frames' PSNRs and each clip's temporal error.
    let mut scores: [(Vec<f64>, Vec<f64>); 4] = Default::default();
    for i in 0..clips as u64 {
        let seed = INTERPOLATION_CLIP_SEED + i;
        let (clip, conditions) = source.clip::<B>(seed, n, fps, device);
        let ego = source.clip_ego_motion(seed, fps, 0);
        let z = m.encode_frames(clip.clone());
        let zs = z.clone().chunk(n, 0);
        let keys = [&zs[0], &zs[f], &zs[2 * f]];
        let sampled = generator.interpolate_keys(keys, conditions, ego.as_ref(), opts, seed)?;
        let blend = blend_keys(&keys, f);
        let moved = generator.interpolation_guess(&keys, InterpolationGuess::Ego, ego.as_ref().map(|e| (e, 0)));
        let ways = [Tensor::cat(sampled, 0), Tensor::cat(blend, 0), Tensor::cat(moved, 0), z];
        let decoded = ways.map(|z| m.decode_frames(z));
        for ((p, e), frames) in scores.iter_mut().zip(&decoded) {
            let frame_psnr = psnr(frames.clone(), clip.clone());
            p.extend(between.iter().map(|&j| frame_psnr[j]));
            e.push(temporal_error(frames, &clip));
        }
        let [interpolator, blend, moved, ceiling] = decoded;
        on_clip(InterpolatedClip { render: clip, interpolator, blend, moved, ceiling });
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let [interpolator, blend, moved, ceiling] =
        scores.map(|(p, e)| ClipScore { psnr: mean(&p), temporal_error: mean(&e) });
    Ok(InterpolationComparison { clips, steps: opts.steps, interpolator, blend, moved, ceiling })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelTier;
    use crate::pipeline::Models;
    use crate::scenario::Scenario;
    use crate::scenario::{Conditions, TimeOfDay};
    use burn::backend::Flex;

    fn options(steps: usize) -> GenerateOptions {
        let mut s: Scenario =
            ron::from_str("Scenario(name: \"t\", seed: 1, conditions: (time_of_day: Day, crowdedness: 1))")
                .expect("a minimal scenario parses");
        (s.sampling.steps, s.sampling.interpolation_guide) = (steps as u32, 0.0);
        GenerateOptions::from_scenario(&s)
    }

    fn values(t: &Tensor<Flex, 4>) -> Vec<f32> {
        t.clone().into_data().to_vec::<f32>().unwrap()
    }

    /// The interpolator keeps its keys in place and fills the rest from its seed; the
    /// comparison's references are what they say.
    #[test]
    fn interpolation_keeps_the_keys_and_scores_three_ways() {
        let device = Default::default();
        let g = Generator::new(Models::<Flex>::seeded(ModelTier::Micro, 3, &device), device);
        let (c, h, w) = g.models.latent_shape();
        let keys: Vec<_> =
            (0..3).map(|i| Tensor::<Flex, 4>::full([1, c, h, w], i as f32 - 1.0, &Default::default())).collect();
        let conditions = Conditions { time_of_day: TimeOfDay::Day, crowdedness: 1 };
        let opts = options(2);
        let run = |seed| g.interpolate_keys([&keys[0], &keys[1], &keys[2]], conditions, None, &opts, seed).unwrap();
        let (a, b, other) = (run(5), run(5), run(6));
        assert_eq!(a.len(), 2 * INTERPOLATION_FACTOR + 1);
        for (k, key) in keys.iter().enumerate() {
            assert_eq!(values(&a[k * INTERPOLATION_FACTOR]), values(key), "key {k} moved");
        }
        assert!(a.iter().zip(&b).all(|(x, y)| values(x) == values(y)), "same seed, other latents");
        assert_ne!(values(&a[1]), values(&other[1]), "another seed gives the same in-between latent");

        // Guided by the blend of the keys for every step, the in-between latents start from
        // it: they end nearer to it than the unguided ones.
        let blend = blend_keys(&[&keys[0], &keys[1], &keys[2]], INTERPOLATION_FACTOR);
        let guided_opts = GenerateOptions { interpolation_guide: 1.0, ..opts.clone() };
        let guided = g.interpolate_keys([&keys[0], &keys[1], &keys[2]], conditions, None, &guided_opts, 5).unwrap();
        let distance = |x: &[Tensor<Flex, 4>]| -> f32 {
            x.iter().zip(&blend).map(|(a, b)| (a.clone() - b.clone()).abs().mean().into_scalar()).sum()
        };
        let (near, far) = (distance(&guided), distance(&a));
        assert!(near < far, "guided {near} vs unguided {far} from the blend");
        for (k, key) in keys.iter().enumerate() {
            assert_eq!(values(&guided[k * INTERPOLATION_FACTOR]), values(key), "key {k} moved under the guide");
        }

        let mut seen = vec![];
        let cmp = compare_interpolation(&g, 1, &opts, |clip| seen.push(clip)).unwrap();
        assert_eq!((cmp.clips, cmp.steps, seen.len()), (1, 2, 1));
        for s in [cmp.interpolator, cmp.blend, cmp.moved, cmp.ceiling] {
            assert!(s.psnr.is_finite() && s.temporal_error.is_finite(), "{cmp:?}");
        }
        // All ways decode the encoder's latents at the keys; between them they differ.
        let frame = |t: &Tensor<Flex, 4>, j: usize| values(&t.clone().slice(j..j + 1));
        let clip = &seen[0];
        for j in 0..2 * INTERPOLATION_FACTOR + 1 {
            let same = [&clip.interpolator, &clip.blend, &clip.moved].map(|t| frame(t, j) == frame(&clip.ceiling, j));
            let key = j % INTERPOLATION_FACTOR == 0;
            assert_eq!(same, [key, key, key], "frame {j}");
        }

        let mut without = Models::<Flex>::seeded(ModelTier::Micro, 3, &Default::default());
        without.interpolator = None;
        let g = Generator::new(without, Default::default());
        let err = compare_interpolation(&g, 1, &opts, |_| {}).unwrap_err();
        assert!(err.to_string().contains("interpolator"), "{err}");
    }
}
