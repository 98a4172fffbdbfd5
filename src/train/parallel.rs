//! Data-parallel training steps: the batch of a step is split over replicas of the model,
//! one per device and thread, and their gradients are averaged on the first device
//! before the one optimiser step (synchronous data parallelism, as DDP does).
//!
//! The devices are `LoopConfig::data_parallel` consecutive device ids starting at the
//! training device (`cuda:0, cuda:1, …`). burn's CPU backend has a single device, so on the
//! CPU the replicas share it and run on their own threads: burn `Flex` runs these
//! convolutions on one core, so two replicas use two cores.
//!
//! A data-parallel run is deterministic (every shard's draws are a function of the run
//! seed, the step and the shard) and resumes exactly, but it is not the same run as a
//! single-device one: the shards draw their noise and timesteps separately.

use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::ElementConversion;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::backend::Device as _;

use super::TrainError;
use super::fit::{Batch, Task};
use crate::world::mix;

/// `n` devices of the training device's kind, from its id upwards.
pub fn devices<B: AutodiffBackend>(first: &B::Device, n: usize) -> Vec<B::Device> {
    let id = first.to_id();
    (0..n.max(1))
        .map(|i| {
            if i == 0 {
                first.clone()
            } else {
                B::Device::from_id(burn::tensor::backend::DeviceId { index_id: id.index_id + i as u16, ..id })
            }
        })
        .collect()
}

/// Splits `seeds` into at most `n` contiguous shards of near-equal size (none empty).
pub fn shards(seeds: &[u64], n: usize) -> Vec<&[u64]> {
    let n = n.clamp(1, seeds.len().max(1));
    let (base, extra) = (seeds.len() / n, seeds.len() % n);
    let mut rest = seeds;
    (0..n)
        .map(|i| {
            let (shard, tail) = rest.split_at(base + usize::from(i < extra));
            rest = tail;
            shard
        })
        .collect()
}

/// The batch loss of `step` and its gradients, the batch split over one replica of
/// `model` per device. Each shard's loss is weighted by its share of the batch, so the
/// summed gradients are those of the batch mean; the returned loss is that mean.
pub fn step_grads<B, T>(
    task: &T,
    model: &T::Model,
    step: u64,
    devices: &[B::Device],
) -> Result<(f32, GradientsParams), TrainError>
where
    B: AutodiffBackend,
    T: Task<B> + Sync,
{
    let frames = task.frames();
    let seeds = frames.train_seeds(step, task.batch_size());
    let shards = shards(&seeds, devices.len());
    let draws = mix(frames.seed() ^ mix(step));
    let results = std::thread::scope(|scope| {
        let handles: Vec<_> = shards
            .iter()
            .zip(devices)
            .enumerate()
            .map(|(i, (&shard, device))| {
                // `fork` gives the replica its own autodiff leaves (same parameter ids).
                let replica = model.clone().fork(device);
                let weight = shard.len() as f32 / seeds.len() as f32;
                scope.spawn(move || {
                    let loss =
                        task.batch_loss(&replica, shard, mix(draws ^ (i as u64 + 1)), Batch::Train { step }, device);
                    let value: f32 = loss.clone().into_scalar().elem();
                    let grads = GradientsParams::from_grads(loss.mul_scalar(weight).backward(), &replica);
                    (value * weight, grads)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join()).collect::<Vec<_>>()
    });
    let mut loss = 0.0;
    let mut sum = GradientsAccumulator::<T::Model>::new();
    for result in results {
        let (value, grads) =
            result.map_err(|_| TrainError::Record(format!("a data-parallel replica panicked at step {step}")))?;
        loss += value;
        sum.accumulate(model, grads.to_device(&devices[0], model));
    }
    Ok((loss, sum.grads()))
}

#[cfg(test)]
mod tests {
    use super::shards;

    #[test]
    fn shards_cover_the_batch_in_order_with_near_equal_sizes() {
        let seeds: Vec<u64> = (0..7).collect();
        let s = shards(&seeds, 3);
        assert_eq!(s.iter().map(|s| s.len()).collect::<Vec<_>>(), vec![3, 2, 2]);
        assert_eq!(s.concat(), seeds);
        // More devices than samples: one sample each, no empty shard.
        assert_eq!(shards(&seeds[..2], 4).len(), 2);
        assert_eq!(shards(&seeds, 1), vec![&seeds[..]]);
    }
}
