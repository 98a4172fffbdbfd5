//! The temporal decoder against the per-frame image decoder on held-out renders: the
//! one measurement behind the model card's decoder row and `tools/decoder_probe.rs`.
//!
//! Both decoders get the latents the autoencoder's frozen encoder gives (posterior mean)
//! of the same held-out clips. Per decoder: mean reconstruction PSNR over every frame and
//! mean temporal error ([`temporal_error`]: `mean |Δrec − Δvideo|` between consecutive
//! frames, 8-bit levels, lower is better).

use burn::tensor::backend::Backend;

use crate::data::{EVAL_SEED_BASE, psnr, temporal_error};
use crate::pipeline::Models;
use crate::train::FrameSource;

/// World seed of the first clip: held out, and apart from `eval`'s scenes and the
/// evaluators' accuracy worlds (the model card has measured these clips since it existed).
pub const DECODER_CLIP_SEED: u64 = EVAL_SEED_BASE + 100;

/// Decoded clips against their renders: one decoder's scores over the clips of a
/// [`DecoderComparison`], or one way of filling in frames in an
/// [`InterpolationComparison`](super::InterpolationComparison).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClipScore {
    /// Mean PSNR (dB) of the frames scored against the render.
    pub psnr: f64,
    /// Mean over clips of [`temporal_error`] (8-bit levels).
    pub temporal_error: f64,
}

/// The temporal and the per-frame decoder on the same clips.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecoderComparison {
    pub clips: usize,
    pub frames: usize,
    pub fps: f32,
    pub temporal: ClipScore,
    pub per_frame: ClipScore,
}

/// Measures `models`' temporal decoder against its autoencoder's per-frame decoder on
/// `clips` held-out clips of `frames` frames at `fps` (world seeds from
/// [`DECODER_CLIP_SEED`]), calling `on_clip` after each. `None` when `models` has no
/// temporal decoder.
pub fn compare_decoders<B: Backend>(
    models: &Models<B>,
    clips: usize,
    frames: usize,
    fps: f32,
    device: &B::Device,
    mut on_clip: impl FnMut(),
) -> Option<DecoderComparison> {
    let td = models.temporal_decoder.as_ref()?;
    let (h, w) = models.frame_size();
    let source = FrameSource::new(h, w, 0);
    let (mut p_td, mut p_img, mut e_td, mut e_img) = (vec![], vec![], vec![], vec![]);
    for i in 0..clips as u64 {
        let (clip, _) = source.clip::<B>(DECODER_CLIP_SEED + i, frames, fps, device);
        let (z, _) = models.autoencoder.encoder.forward(clip.clone());
        let a = td.forward(z.clone(), frames).clamp(-1.0, 1.0);
        let b = models.autoencoder.decoder.forward(z, 1).clamp(-1.0, 1.0);
        p_td.extend(psnr(a.clone(), clip.clone()));
        p_img.extend(psnr(b.clone(), clip.clone()));
        e_td.push(temporal_error(&a, &clip));
        e_img.push(temporal_error(&b, &clip));
        on_clip();
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    Some(DecoderComparison {
        clips,
        frames,
        fps,
        temporal: ClipScore { psnr: mean(&p_td), temporal_error: mean(&e_td) },
        per_frame: ClipScore { psnr: mean(&p_img), temporal_error: mean(&e_img) },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelTier;
    use burn::backend::Flex;

    #[test]
    fn equal_decoders_score_equal_and_a_different_one_does_not() {
        let device = Default::default();
        let mut models = Models::<Flex>::seeded(ModelTier::Micro, 7, &device);
        let mut calls = 0;
        let seeded = compare_decoders(&models, 2, 3, 10.0, &device, || calls += 1).expect("a temporal decoder");
        assert_eq!(calls, 2);
        assert_eq!((seeded.clips, seeded.frames), (2, 3));
        // Two differently seeded decoders reconstruct differently.
        assert_ne!(seeded.temporal, seeded.per_frame);
        for s in [seeded.temporal, seeded.per_frame] {
            assert!(s.psnr.is_finite() && s.psnr > 0.0, "{s:?}");
            assert!(s.temporal_error.is_finite() && s.temporal_error >= 0.0, "{s:?}");
        }

        // The image decoder standing in for the temporal one: the same numbers.
        models.temporal_decoder = Some(models.autoencoder.decoder.clone());
        let same = compare_decoders(&models, 2, 3, 10.0, &device, || {}).expect("a temporal decoder");
        assert_eq!(same.temporal, same.per_frame);
        assert_eq!(same.per_frame, seeded.per_frame, "the per-frame side does not depend on the other");

        models.temporal_decoder = None;
        assert!(compare_decoders(&models, 2, 3, 10.0, &device, || {}).is_none());
    }
}
