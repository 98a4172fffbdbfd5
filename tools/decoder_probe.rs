//! The temporal decoder against the per-frame image decoder on held-out clips, at the
//! rates `generate` decodes (10 Hz interpolated, 2.5 Hz key frames): reconstruction PSNR
//! and temporal error (`mean |Δrec − Δvideo|` between consecutive frames, 8-bit levels),
//! the latents the autoencoder's frozen encoder gives. For deciding whether a temporal
//! decoder run is kept; the model card measures 4 clips at 10 Hz the same way.
//!
//! `cargo run --release --no-default-features --example decoder_probe -- weights/tiny [clips]`

use anyhow::{Context, Result};
use burn::backend::Flex;
use latentdrive::data::{EVAL_SEED_BASE, psnr, temporal_error};
use latentdrive::pipeline::Models;
use latentdrive::train::{FrameSource, KEYFRAME_FPS};
use std::path::PathBuf;

type B = Flex;

/// Frames per clip (as the model card measures).
const FRAMES: usize = 8;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().context("usage: decoder_probe WEIGHTS_DIR [clips]")?);
    let clips: u64 = args.next().map_or(Ok(8), |s| s.parse()).context("clips: a count")?;
    let device = Default::default();
    let models = Models::<B>::load(&dir, &device)?;
    let td = models.temporal_decoder.as_ref().context("the folder has no temporal decoder")?;
    let (h, w) = models.frame_size();
    let frames = FrameSource::new(h, w, 0);
    println!("{}: {clips} held-out clips of {FRAMES} frames per rate", dir.display());
    println!("{:>7} {:>10} {:>10} {:>10} {:>10}", "rate", "PSNR td", "PSNR img", "terr td", "terr img");
    for fps in [4.0 * KEYFRAME_FPS, KEYFRAME_FPS] {
        let (mut p_td, mut p_img, mut e_td, mut e_img) = (vec![], vec![], vec![], vec![]);
        for i in 0..clips {
            // The model card's clips (from EVAL_SEED_BASE + 100) and on.
            let (clip, _) = frames.clip::<B>(EVAL_SEED_BASE + 100 + i, FRAMES, fps, &device);
            let (z, _) = models.autoencoder.encoder.forward(clip.clone());
            let a = td.forward(z.clone(), FRAMES).clamp(-1.0, 1.0);
            let b = models.autoencoder.decoder.forward(z, 1).clamp(-1.0, 1.0);
            p_td.extend(psnr(a.clone(), clip.clone()));
            p_img.extend(psnr(b.clone(), clip.clone()));
            e_td.push(temporal_error(&a, &clip));
            e_img.push(temporal_error(&b, &clip));
            eprint!(".");
        }
        eprintln!();
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        println!(
            "{:>5.1}Hz {:>10.2} {:>10.2} {:>10.3} {:>10.3}",
            fps,
            mean(&p_td),
            mean(&p_img),
            mean(&e_td),
            mean(&e_img)
        );
    }
    Ok(())
}
