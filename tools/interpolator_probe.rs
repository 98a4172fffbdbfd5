//! The interpolator on held-out 10 Hz clips, given the encoder's latents of every fourth
//! frame as keys: PSNR of its six in-between frames and the temporal error of the nine,
//! against the straight line between the keys' latents, the keys moved towards each other by
//! the ego's travel, and the encoder's own latents
//! (`latentdrive::eval::compare_interpolation`). For deciding whether an interpolator run is
//! kept; the model card measures the shipped one the same way.
//!
//! `cargo run --release --no-default-features --example interpolator_probe -- weights/tiny [clips] [steps] [guide] [grid.png]`
//!
//! `guide` is `GenerateOptions::interpolation_guide` (`generate --interpolation-guide`, default 0).
//! `INTERPOLATOR_PROBE_GUESS=blend|ego` sets what the guide holds the frames to
//! (`generate --interpolation-guess`; default the scenario default's).
//!
//! With a PNG path it also draws the first clip's first key interval (key, three in-between
//! frames, key): the render, the interpolator's frames, the latent blend's and the moved
//! keys', one row each.

use anyhow::{Context, Result};
use burn::backend::Flex;
use latentdrive::eval::compare_interpolation;
use latentdrive::pipeline::{GenerateOptions, Generator, Models};
use latentdrive::scenario::parse_str;
use latentdrive::train::tensor_grid;
use std::path::PathBuf;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let dir =
        PathBuf::from(args.next().context("usage: interpolator_probe WEIGHTS_DIR [clips] [steps] [guide] [grid.png]")?);
    let clips: usize = args.next().map_or(Ok(8), |s| s.parse()).context("clips: a count")?;
    let steps: usize = args.next().map_or(Ok(20), |s| s.parse()).context("steps: a count")?;
    let guide: f32 = args.next().map_or(Ok(0.0), |s| s.parse()).context("guide: a share of the steps, 0 to 1")?;
    let device = Default::default();
    let generator = Generator::new(Models::<Flex>::load(&dir, &device)?, device);
    // The sampling settings of a default scenario (eta, known frames), with `steps` DDIM steps.
    let defaults = "Scenario(name: \"probe\", seed: 0, conditions: (time_of_day: Day, crowdedness: 1))";
    let mut opts = GenerateOptions::from_scenario(&parse_str(defaults, "interpolator_probe".as_ref())?);
    opts.steps = steps;
    opts.interpolation_guide = guide;
    if let Ok(guess) = std::env::var("INTERPOLATOR_PROBE_GUESS") {
        opts.interpolation_guess = guess.parse().map_err(|e| anyhow::anyhow!("INTERPOLATOR_PROBE_GUESS: {e}"))?;
    }
    let grid_path = args.next().map(PathBuf::from);
    let mut grid = None;
    let c = compare_interpolation(&generator, clips, &opts, |clip| {
        if grid.is_none() && grid_path.is_some() {
            // The first key interval: key, three in-between frames, key.
            let first = |t: burn::tensor::Tensor<Flex, 4>| t.slice(0..5);
            grid = Some(tensor_grid(&[clip.render, clip.interpolator, clip.blend, clip.moved].map(first)));
        }
        eprint!(".")
    })?;
    if let (Some(path), Some(grid)) = (&grid_path, grid) {
        grid.save(path).with_context(|| format!("writing {}", path.display()))?;
    }
    eprintln!();
    println!(
        "{}: {clips} held-out 10 Hz clips of 9 frames, keys 0, 4, 8, {steps} DDIM steps, guide {guide} ({})",
        dir.display(),
        opts.interpolation_guess.name()
    );
    println!("{:>13} {:>16} {:>15}", "", "PSNR in-between", "temporal error");
    let ways =
        [("interpolator", c.interpolator), ("latent blend", c.blend), ("moved keys", c.moved), ("encoder", c.ceiling)];
    for (name, s) in ways {
        println!("{name:>13} {:>13.2} dB {:>15.3}", s.psnr, s.temporal_error);
    }
    Ok(())
}
