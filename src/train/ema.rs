//! Exponential moving average of a model's weights, used for sampling.
//! Parameters are matched by `ParamId`, which optimiser steps and `valid()` keep.

use std::collections::HashMap;

use burn::module::{AutodiffModule, Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};

/// `ema ← d·ema + (1 − d)·live` after every step, with the usual warm-up
/// `d = min(decay, (1 + n) / (10 + n))` at step `n`, so short runs are not dominated
/// by their first weights.
#[derive(Debug, Clone)]
pub struct Ema<M> {
    pub model: M,
    pub decay: f64,
}

impl<M> Ema<M> {
    pub fn new(model: M, decay: f64) -> Self {
        Ema { model, decay }
    }
}

impl<M> Ema<M> {
    /// Decay used after step `step` (0-based).
    pub fn decay_at(&self, step: u64) -> f64 {
        self.decay.min((1.0 + step as f64) / (10.0 + step as f64))
    }

    /// Blends the live (autodiff) model's weights after step `step` into the average.
    pub fn update<B, L>(&mut self, live: &L, step: u64)
    where
        B: AutodiffBackend,
        L: AutodiffModule<B, InnerModule = M>,
        M: Module<B::InnerBackend>,
    {
        let mut collect = Collect::<B>(HashMap::new());
        live.visit(&mut collect);
        let mut blend = Blend { live: collect.0, decay: self.decay_at(step) };
        self.model = self.model.clone().map(&mut blend);
    }
}

/// The live values of the trained parameters. Frozen ones are left out, so their
/// average stays exactly what was loaded (`d·w + (1 − d)·w` is not `w` in floating point).
struct Collect<B: AutodiffBackend>(HashMap<ParamId, Tensor<B::InnerBackend, 1>>);

impl<B: AutodiffBackend> ModuleVisitor<B> for Collect<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if !param.is_require_grad() {
            return;
        }
        let t = param.val().inner();
        let n = t.shape().num_elements();
        self.0.insert(param.id, t.reshape([n]));
    }
}

struct Blend<B: Backend> {
    live: HashMap<ParamId, Tensor<B, 1>>,
    decay: f64,
}

impl<B: Backend> ModuleMapper<B> for Blend<B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let id = param.id;
        let (pid, avg, mapper) = param.consume();
        let blended = match self.live.remove(&id) {
            Some(live) => avg.clone() * self.decay + live.reshape(avg.dims()) * (1.0 - self.decay),
            None => avg,
        };
        Param::from_mapped_value(pid, blended, mapper)
    }
}
