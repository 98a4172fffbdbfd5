//! Clips to burn tensors, values in [-1, 1] (the diffusion models' data range).

use burn::tensor::{ElementConversion, Tensor, TensorData, backend::Backend};
use image::RgbImage;

use super::Clip;

/// One image as `[c, h, w]` = `[3, h, w]`, values in [-1, 1].
pub fn image_to_tensor<B: Backend>(img: &RgbImage, device: &B::Device) -> Tensor<B, 3> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    Tensor::from_data(TensorData::new(planar(img), [3, h, w]), device)
}

/// Images of one size as `[n, 3, h, w]`, values in [-1, 1], in one upload.
///
/// # Panics
/// If the images differ in size or there are none.
pub fn images_to_tensor<'a, B: Backend>(
    imgs: impl IntoIterator<Item = &'a RgbImage>,
    device: &B::Device,
) -> Tensor<B, 4> {
    let mut imgs = imgs.into_iter().peekable();
    let (w, h) = imgs.peek().expect("images_to_tensor needs at least one image").dimensions();
    let mut data = Vec::new();
    let mut n = 0;
    for img in imgs {
        assert_eq!(img.dimensions(), (w, h), "images_to_tensor needs images of one size");
        data.extend(planar(img));
        n += 1;
    }
    Tensor::from_data(TensorData::new(data, [n, 3, h as usize, w as usize]), device)
}

/// One clip as `[t, c, h, w]`, values in [-1, 1].
pub fn clip_to_tensor<B: Backend>(clip: &Clip, device: &B::Device) -> Tensor<B, 4> {
    images_to_tensor(&clip.frames, device)
}

/// Clips of one shape as `[b, t, c, h, w]`.
pub fn clips_to_batch<B: Backend>(clips: &[Clip], device: &B::Device) -> Tensor<B, 5> {
    Tensor::stack(clips.iter().map(|c| clip_to_tensor(c, device)).collect(), 0)
}

fn planar(img: &RgbImage) -> Vec<f32> {
    let n = (img.width() * img.height()) as usize;
    let mut out = vec![0.0f32; 3 * n];
    for (i, px) in img.pixels().enumerate() {
        for c in 0..3 {
            out[c * n + i] = px.0[c] as f32 / 127.5 - 1.0;
        }
    }
    out
}

/// Frames `[n, 3, h, w]` in [-1, 1] (clamped) → `n` RGB images (the inverse of
/// [`image_to_tensor`] up to rounding).
pub fn tensor_to_images<B: Backend>(frames: Tensor<B, 4>) -> Vec<RgbImage> {
    let [n, c, h, w] = frames.dims();
    assert_eq!(c, 3, "tensor_to_images needs RGB frames, got {c} channels");
    let data = frames.clamp(-1.0, 1.0).into_data().convert::<f32>().to_vec::<f32>().unwrap_or_default();
    let plane = h * w;
    (0..n)
        .map(|k| {
            let base = k * 3 * plane;
            RgbImage::from_fn(w as u32, h as u32, |x, y| {
                let i = base + y as usize * w + x as usize;
                let px = |ch: usize| ((data[i + ch * plane] + 1.0) * 127.5).round() as u8;
                image::Rgb([px(0), px(1), px(2)])
            })
        })
        .collect()
}

/// Temporal error of a clip's reconstruction `rec` `[t, 3, h, w]` against `reference`, both
/// in [-1, 1]: the mean absolute difference of their frame-to-frame changes,
/// `mean |Δrec − Δreference|` over consecutive frames, in 8-bit levels. A decoder that
/// flickers where the video is still, or smears its motion, scores high; 0 for `t < 2`.
pub fn temporal_error<B: Backend>(rec: &Tensor<B, 4>, reference: &Tensor<B, 4>) -> f64 {
    let t = rec.dims()[0];
    if t < 2 {
        return 0.0;
    }
    let delta = |x: &Tensor<B, 4>| x.clone().slice(1..t) - x.clone().slice(0..t - 1);
    let v: f32 = (delta(rec) - delta(reference)).abs().mean().into_scalar().elem();
    f64::from(v) * 127.5
}

/// PSNR (dB) of each frame of `x` `[n, 3, h, w]` against `reference`, both in [-1, 1]
/// (`x` clamped to it), with peak 1 on the [0, 1] scale.
pub fn psnr<B: Backend>(x: Tensor<B, 4>, reference: Tensor<B, 4>) -> Vec<f64> {
    let n = x.dims()[0];
    let d = ((x.clamp(-1.0, 1.0) - reference) * 0.5).powi_scalar(2);
    let mse = d.reshape([n as i32, -1]).mean_dim(1).into_data().convert::<f32>().to_vec::<f32>().unwrap_or_default();
    mse.iter().map(|&m| 10.0 * (1.0 / f64::from(m).max(1e-12)).log10()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{ClipSpec, ClipStream};
    use burn::backend::Flex;

    #[test]
    fn batch_has_video_layout_and_pixel_values() {
        let spec = ClipSpec { frames: 3, fps: 10.0, width: 32, height: 16, warmup_s: 0.0 };
        let clips: Vec<_> = ClipStream::new(spec, 5).take(2).collect();
        let batch = clips_to_batch::<Flex>(&clips, &Default::default());
        assert_eq!(batch.dims(), [2, 3, 3, 16, 32]);
        // Pixel (x=4, y=10) of clip 1, frame 2, green channel.
        let px = clips[1].frames[2].get_pixel(4, 10).0[1] as f32 / 127.5 - 1.0;
        let v: f32 = batch.slice([1..2, 2..3, 1..2, 10..11, 4..5]).into_scalar();
        assert!((v - px).abs() < 1e-6);
        let data = clip_to_tensor::<Flex>(&clips[0], &Default::default()).into_data();
        assert!(data.as_slice::<f32>().unwrap().iter().all(|x| (-1.0..=1.0).contains(x)));
    }
}
