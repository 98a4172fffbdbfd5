//! Seeded initial weights. burn's initialisers draw from one process-wide backend RNG,
//! which any other thread (a parallel test, a second model) also advances, so
//! `B::seed` + `init` is not reproducible. Instead every randomly initialised tensor
//! is redrawn from our own seeded stream as a Kaiming-style uniform `U(−b, b)` with
//! `b = 1/√fan_in` computed from its shape alone (burn's default for convolutions and
//! linear layers), and constant tensors (zero-initialised outputs, norm scales, α
//! logits) are kept exactly. Parameter order is fixed by the module tree, so the
//! result is a pure function of the seed. A one-element tensor always looks constant,
//! so a model must not leave one to burn's random initialiser (the discriminator's
//! logit bias is set to 0 for this); a test inits every model under two burn seeds.

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Redraws `module`'s random parameters from `seed` (see the module docs).
pub fn seeded_init<B: Backend, M: Module<B>>(module: M, seed: u64) -> M {
    module.map(&mut Redraw { rng: ChaCha8Rng::seed_from_u64(crate::world::mix(seed ^ 0x1417)) })
}

struct Redraw {
    rng: ChaCha8Rng,
}

impl<B: Backend> ModuleMapper<B> for Redraw {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, t, mapper) = param.consume();
        let values = t.clone().into_data().convert::<f32>().to_vec::<f32>().unwrap_or_default();
        // Constant tensors do not depend on the RNG: keep them.
        if values.windows(2).all(|w| w[0] == w[1]) {
            return Param::from_mapped_value(id, t, mapper);
        }
        let dims = t.dims();
        // burn stores linear weights as [in, out] and convolutions as [out, in, k…].
        let fan_in: usize = if D <= 2 { dims[0] } else { dims[1..].iter().product() };
        let b = 1.0 / (fan_in.max(1) as f64).sqrt();
        let drawn: Vec<f32> = (0..values.len()).map(|_| (b * (2.0 * self.rng.random::<f64>() - 1.0)) as f32).collect();
        // A new leaf tensor: carry over whether the original tracked gradients.
        let tensor =
            Tensor::from_data(TensorData::new(drawn, t.dims()), &t.device()).set_require_grad(t.is_require_grad());
        Param::from_mapped_value(id, tensor, mapper)
    }
}
