//! The one place where video tensors change layout. Axis names everywhere: `b`
//! batch, `t` frames, `c` channels, `h`, `w`. Spatial layers see frames as batch
//! (`[b·t, c, h, w]`); temporal layers see `[b, c, t, h, w]` (3D convolutions) or
//! tokens `[b·h·w, t, c]` (attention over frames).

use burn::tensor::{Tensor, backend::Backend};

/// `[b, t, c, h, w]` → `[b·t, c, h, w]`.
pub fn frames_as_batch<B: Backend>(x: Tensor<B, 5>) -> Tensor<B, 4> {
    let [b, t, c, h, w] = x.dims();
    x.reshape([b * t, c, h, w])
}

/// `[b·t, c, h, w]` → `[b, t, c, h, w]`.
pub fn batch_as_frames<B: Backend>(x: Tensor<B, 4>, t: usize) -> Tensor<B, 5> {
    let [bt, c, h, w] = x.dims();
    x.reshape([bt / t, t, c, h, w])
}

/// `[g, p, q, r]` → `[g, q, p, r]`, the same values as `swap_dims(1, 2)`.
///
/// Without autodiff the result is materialised from `p` slices (each a 2D copy) and one
/// concatenation of `r`-long runs: burn-flex copies a swapped 4D view, and runs every
/// element-wise op on one, element by element through a strided walk — about a quarter
/// of the upsampler's CPU time. Under autodiff a slice's backward pass allocates a full
/// zero tensor, so the plain view is kept there.
fn swap_middle<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    if B::ad_enabled(&x.device()) {
        return x.swap_dims(1, 2);
    }
    let [g, p, q, r] = x.dims();
    let rows = (0..p).map(|i| x.clone().narrow(1, i, 1).reshape([g, q, 1, r])).collect();
    Tensor::cat(rows, 2)
}

/// `[n, a, b]` → `[n, b, a]`, the same values as `swap_dims(1, 2)`; without autodiff
/// materialised as `n` 2D transposes (burn-flex copies those tiled, but walks a 3D
/// swapped view element by element, see `swap_middle`).
pub fn transpose_last<B: Backend>(x: Tensor<B, 3>) -> Tensor<B, 3> {
    let n = x.dims()[0];
    if n == 1 || B::ad_enabled(&x.device()) {
        return x.swap_dims(1, 2);
    }
    Tensor::cat((0..n).map(|i| x.clone().narrow(0, i, 1).swap_dims(1, 2)).collect(), 0)
}

/// A per-sample, per-channel term `[n, c]` as `[n, c, 1, 1]`, to add over every pixel.
///
/// One reshape, never `unsqueeze_dim(2).unsqueeze_dim(3)`: on CUDA, burn-cubecl pads the
/// rows of a new `[n, c]` tensor to an alignment (`c = 96` f32 gets row stride 128), and
/// burn-std 0.21's stride update for the second unsqueeze, `[n, c, 1]` → `[n, c, 1, 1]`,
/// mishandles the trailing unit dimension and sets the row stride to `c`: every sample but
/// the first then reads another's values: the likely cause of the UNet ResBlocks' CUDA
/// departure (`docs/train/tiny/gpu-2026-12-04b/`; found in the sources, still to be confirmed
/// on a GPU). The direct reshape keeps the padded stride; on the CPU both are the same
/// contiguous reshape.
pub fn per_channel<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 4> {
    let [n, c] = x.dims();
    x.reshape([n, c, 1, 1])
}

/// A per-frame, per-channel term `[b·t, c]` in the video layout `[b, c, t, 1, 1]`.
///
/// Not `to_video(per_channel(x), t)`: under autodiff that reshapes a swapped `[b, c, t, 1]`
/// view, and burn-std 0.21 gets the strides of a view that ends in a unit dimension wrong
/// on the same path as [`per_channel`]'s (on every burn-cubecl backend; measured on
/// burn-wgpu: 0.98 relative error). Here the swapped view ends in `t`.
pub fn per_channel_video<B: Backend>(x: Tensor<B, 2>, t: usize) -> Tensor<B, 5> {
    let [bt, c] = x.dims();
    x.reshape([bt / t, t, c]).swap_dims(1, 2).reshape([bt / t, c, t, 1, 1])
}

/// `[b·t, c, h, w]` → `[b, c, t, h, w]` (for 3D convolutions).
pub fn to_video<B: Backend>(x: Tensor<B, 4>, t: usize) -> Tensor<B, 5> {
    let [bt, c, h, w] = x.dims();
    swap_middle(x.reshape([bt / t, t, c, h * w])).reshape([bt / t, c, t, h, w])
}

/// `[b, c, t, h, w]` → `[b·t, c, h, w]`.
pub fn from_video<B: Backend>(x: Tensor<B, 5>) -> Tensor<B, 4> {
    let [b, c, t, h, w] = x.dims();
    swap_middle(x.reshape([b, c, t, h * w])).reshape([b * t, c, h, w])
}

/// `[b·t, c, h, w]` → tokens `[b·h·w, t, c]` (attention over frames per pixel).
pub fn to_frame_tokens<B: Backend>(x: Tensor<B, 4>, t: usize) -> Tensor<B, 3> {
    let [bt, c, h, w] = x.dims();
    let b = bt / t;
    // [b, t, c, h, w] → [b, h, w, t, c]
    x.reshape([b, t, c, h * w]).permute([0, 3, 1, 2]).reshape([b * h * w, t, c])
}

/// Tokens `[b·h·w, t, c]` → `[b·t, c, h, w]`.
pub fn from_frame_tokens<B: Backend>(x: Tensor<B, 3>, h: usize, w: usize) -> Tensor<B, 4> {
    let [bhw, t, c] = x.dims();
    let b = bhw / (h * w);
    x.reshape([b, h * w, t, c]).permute([0, 2, 3, 1]).reshape([b * t, c, h, w])
}

/// `[n, c, h, w]` → tokens `[n, h·w, c]` (attention over pixels of one frame).
pub fn to_pixel_tokens<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 3> {
    let [n, c, h, w] = x.dims();
    transpose_last(x.reshape([n, c, h * w]))
}

/// Tokens `[n, h·w, c]` → `[n, c, h, w]`.
pub fn from_pixel_tokens<B: Backend>(x: Tensor<B, 3>, h: usize, w: usize) -> Tensor<B, 4> {
    let [n, _, c] = x.dims();
    transpose_last(x).reshape([n, c, h, w])
}

/// Repeats a per-clip tensor `[b, …]` for every frame: `[b·t, …]`, frames of one
/// clip adjacent (the order of `frames_as_batch`).
pub fn repeat_per_frame<B: Backend, const D: usize>(x: Tensor<B, D>, t: usize) -> Tensor<B, D> {
    let mut dims = x.dims();
    let b = dims[0];
    let rest: usize = dims[1..].iter().product();
    dims[0] = b * t;
    x.reshape([b, 1, rest]).repeat_dim(1, t).reshape(dims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::{Distribution, Tensor};

    type B = Flex;

    #[test]
    fn layouts_round_trip_and_keep_frames_apart() {
        let dev = Default::default();
        let x = Tensor::<B, 5>::random([2, 3, 4, 5, 6], Distribution::Default, &dev);
        let bt = frames_as_batch(x.clone());
        assert_eq!(batch_as_frames(bt.clone(), 3).into_data(), x.clone().into_data());
        assert_eq!(from_video(to_video(bt.clone(), 3)).into_data(), bt.clone().into_data());
        let video = to_video(bt.clone(), 3);
        assert_eq!(video.clone().into_data(), x.clone().swap_dims(1, 2).into_data());
        assert_eq!(from_video(video.clone()).into_data(), frames_as_batch(video.swap_dims(1, 2)).into_data());
        // Under autodiff (views) the layouts are the same.
        type A = burn::backend::Autodiff<B>;
        let ad = Tensor::<A, 4>::from_data(bt.clone().into_data(), &dev);
        assert_eq!(to_video(ad.clone(), 3).into_data(), x.clone().swap_dims(1, 2).into_data());
        assert_eq!(from_video(to_video(ad, 3)).into_data(), bt.clone().into_data());
        let tok = to_frame_tokens(bt.clone(), 3);
        assert_eq!(tok.dims(), [2 * 5 * 6, 3, 4]);
        assert_eq!(from_frame_tokens(tok.clone(), 5, 6).into_data(), bt.clone().into_data());
        // Token (b=1, y=2, x=3), frame 2, channel 1 is x[1, 2, 1, 2, 3].
        let v: f32 = tok.slice([(5 * 6) + 2 * 6 + 3..(5 * 6) + 2 * 6 + 4, 2..3, 1..2]).into_scalar();
        let want: f32 = x.slice([1..2, 2..3, 1..2, 2..3, 3..4]).into_scalar();
        assert_eq!(v, want);
        let p = to_pixel_tokens(bt.clone());
        assert_eq!(p.clone().into_data(), bt.clone().reshape([6, 4, 30]).swap_dims(1, 2).into_data());
        assert_eq!(from_pixel_tokens(p, 5, 6).into_data(), bt.into_data());
    }

    /// The strides burn-std gives a row-padded `[8, 96]` (burn-cubecl's CUDA layout): the
    /// single reshape of `per_channel` keeps the padded row stride, two unsqueezes lose it;
    /// and likewise for the video layout. burn-std is pinned with burn; should a "bug"
    /// assertion fail, burn fixed its stride update.
    #[test]
    fn per_channel_forms_keep_the_strides_burn_std_loses() {
        use burn_std::tensor::{ReshapeAction, Shape, Strides, reshape_action};
        let strides_after = |shape: &[usize], strides: &[usize], new: &[usize]| match reshape_action(
            &Shape::from(shape.to_vec()),
            &Strides::from(strides.to_vec()),
            &Shape::from(new.to_vec()),
        ) {
            ReshapeAction::UpdateStrides { strides } => strides.to_vec(),
            other => panic!("expected a stride update, got {other:?}"),
        };
        assert_eq!(strides_after(&[8, 96], &[128, 1], &[8, 96, 1, 1]), [128, 1, 1, 1]);
        let first = strides_after(&[8, 96], &[128, 1], &[8, 96, 1]);
        assert_eq!(first, [128, 1, 1]);
        assert_eq!(strides_after(&[8, 96, 1], &first, &[8, 96, 1, 1]), [96, 1, 1, 1], "burn-std's bug");
        // The video layout: `to_video` of `[8, 96, 1, 1]` reshapes the swapped view
        // `[2, 96, 4, 1]` (strides `[384, 1, 96, 1]`), `per_channel_video` the view `[2, 96, 4]`.
        assert_eq!(strides_after(&[2, 96, 4], &[384, 1, 96], &[2, 96, 4, 1, 1])[..3], [384, 1, 96]);
        assert_eq!(
            strides_after(&[2, 96, 4, 1], &[384, 1, 96, 1], &[2, 96, 4, 1, 1])[..3],
            [384, 4, 1],
            "burn-std's bug"
        );
        // On the CPU (which copies such views) every form gives the same values, with and
        // without autodiff.
        let x = Tensor::<B, 2>::random([8, 96], Distribution::Default, &Default::default());
        let twice = x.clone().unsqueeze_dim::<3>(2).unsqueeze_dim::<4>(3);
        assert_eq!(per_channel(x.clone()).into_data(), twice.clone().into_data());
        assert_eq!(per_channel_video(x.clone(), 4).into_data(), to_video(twice, 4).into_data());
        type A = burn::backend::Autodiff<B>;
        let ad = Tensor::<A, 2>::from_data(x.into_data(), &Default::default());
        assert_eq!(per_channel_video(ad.clone(), 4).into_data(), to_video(per_channel(ad), 4).into_data());
    }

    #[test]
    fn repeat_per_frame_is_clip_major() {
        let x = Tensor::<B, 2>::from_floats([[1.0, 2.0], [3.0, 4.0]], &Default::default());
        let r = repeat_per_frame(x, 3);
        assert_eq!(
            r.into_data().to_vec::<f32>().unwrap(),
            vec![1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 3.0, 4.0, 3.0, 4.0, 3.0, 4.0]
        );
    }
}
