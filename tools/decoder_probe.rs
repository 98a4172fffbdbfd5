//! The temporal decoder against the per-frame image decoder on held-out clips, at the
//! rates `generate` decodes (10 Hz interpolated, 2.5 Hz key frames): reconstruction PSNR
//! and temporal error (`mean |Δrec − Δvideo|` between consecutive frames, 8-bit levels),
//! the latents the autoencoder's frozen encoder gives. For deciding whether a temporal
//! decoder run is kept; the model card measures 4 clips at 10 Hz the same way.
//!
//! `cargo run --release --no-default-features --example decoder_probe -- weights/tiny [clips]`

use anyhow::{Context, Result};
use burn::backend::Flex;
use latentdrive::eval::compare_decoders;
use latentdrive::pipeline::Models;
use latentdrive::train::KEYFRAME_FPS;
use std::path::PathBuf;

type B = Flex;

/// Frames per clip (as the model card measures).
const FRAMES: usize = 8;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().context("usage: decoder_probe WEIGHTS_DIR [clips]")?);
    let clips: usize = args.next().map_or(Ok(8), |s| s.parse()).context("clips: a count")?;
    let device = Default::default();
    let models = Models::<B>::load(&dir, &device)?;
    println!("{}: {clips} held-out clips of {FRAMES} frames per rate", dir.display());
    println!("{:>7} {:>10} {:>10} {:>10} {:>10}", "rate", "PSNR td", "PSNR img", "terr td", "terr img");
    for fps in [4.0 * KEYFRAME_FPS, KEYFRAME_FPS] {
        let c = compare_decoders(&models, clips, FRAMES, fps, &device, || eprint!("."))
            .context("the folder has no temporal decoder")?;
        eprintln!();
        println!(
            "{:>5.1}Hz {:>10.2} {:>10.2} {:>10.3} {:>10.3}",
            fps, c.temporal.psnr, c.per_frame.psnr, c.temporal.temporal_error, c.per_frame.temporal_error
        );
    }
    Ok(())
}
