//! Times a 3×3 convolution's forward + backward on burn-flex (Autodiff<Flex>) at the
//! shapes the tiny models use, next to the same convolution written as an explicit
//! im2col + matmul, and prints GFLOPS. Why the autoencoder has a space-to-depth stem:
//! measured (2 cores, two trainings beside it), a 16-channel conv at 1×128×256 ran at
//! 2.6 GFLOPS, a 32-channel one at 1×64×128 (the same FLOPs) at 15.3; the hand-written
//! im2col was no faster (2.6 and 10.8), so the fix is the shape, not the kernel.
//!
//! `cargo run --release --no-default-features --example conv_probe`

use burn::backend::{Autodiff, Flex};
use burn::module::Param;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2dConfig;
use burn::tensor::{Distribution, Tensor};
use std::time::Instant;
type B = Autodiff<Flex>;

fn unfold_conv(x: Tensor<B, 4>, w: Tensor<B, 2>, b: Tensor<B, 1>) -> Tensor<B, 4> {
    let [n, c, h, ww] = x.dims();
    let cout = w.dims()[0];
    let xp = x.pad((1, 1, 1, 1), burn::tensor::ops::PadMode::Constant(0.0));
    let mut cols = Vec::new();
    for dy in 0..3 {
        for dx in 0..3 {
            cols.push(xp.clone().slice([0..n, 0..c, dy..dy + h, dx..dx + ww]));
        }
    }
    // [n, c, 9, h, w] -> [n, c*9, h*w]
    let cols = Tensor::stack::<5>(cols, 2).reshape([n, c * 9, h * ww]);
    let out = w.unsqueeze::<3>().matmul(cols); // [n, cout, hw]
    (out + b.reshape([1, cout, 1])).reshape([n, cout, h, ww])
}

fn main() {
    let dev = Default::default();
    for &(n, c, h, w) in &[(1usize, 16usize, 128usize, 256usize), (1, 32, 64, 128), (1, 64, 16, 32), (8, 48, 16, 32)] {
        let conv =
            Conv2dConfig::new([c, c], [3, 3]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)).init::<B>(&dev);
        let x = Tensor::<B, 4>::random([n, c, h, w], Distribution::Normal(0.0, 1.0), &dev).require_grad();
        let reps = 5;
        let t = Instant::now();
        for _ in 0..reps {
            let y = conv.forward(x.clone());
            let _g = y.sum().backward();
        }
        let flex = t.elapsed().as_secs_f64() / reps as f64;
        let wmat = Param::from_tensor(Tensor::<B, 2>::from_inner(conv.weight.val().inner().reshape([c, c * 9])));
        let bias = conv.bias.as_ref().unwrap().val();
        let t = Instant::now();
        for _ in 0..reps {
            let y = unfold_conv(x.clone(), wmat.val(), bias.clone());
            let _g = y.sum().backward();
        }
        let unf = t.elapsed().as_secs_f64() / reps as f64;
        let y1 = conv.forward(x.clone());
        let y2 = unfold_conv(x.clone(), wmat.val(), bias.clone());
        let diff: f32 = (y1 - y2).abs().max().into_scalar();
        let gflop = 2.0 * (n * c * c * 9 * h * w) as f64 * 3.0 / 1e9;
        println!(
            "[{n},{c},{h},{w}] flex {:.1} ms ({:.1} GFLOPS)  unfold {:.1} ms ({:.1} GFLOPS)  max diff {diff:e}",
            flex * 1e3,
            gflop / flex,
            unf * 1e3,
            gflop / unf
        );
    }
}
