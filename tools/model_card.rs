//! Measures a weights folder and writes its `MODEL_CARD.md` and the sample grids in
//! `docs/samples/`: autoencoder PSNR on held-out renders, temporal vs per-frame decoder,
//! upsampler vs bilinear, frame 0 against the world's render of the same scenario,
//! several futures of one scenario, and the training facts from the manifest and logs.
//! A folder with the first stages only (no image LDM yet) gets a card of what it holds.
//!
//! `cargo run --release --no-default-features --example model_card -- weights/tiny runs/train/tiny [NOTES.md]`

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result};
use burn::backend::Flex;
use burn::tensor::Tensor;
use burn::tensor::module::avg_pool2d;
use image::RgbImage;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use latentdrive::data::{EVAL_SEED_BASE, psnr, tensor_to_images};
use latentdrive::diffusion::{Ddim, Guidance, NoiseSchedule, Prediction, Sampler, gaussian};
use latentdrive::eval::{compare_decoders, compare_interpolation};
use latentdrive::model::AutoencoderConfig;
use latentdrive::pipeline::denoise::{UpsampleCond, UpsampleDenoiser};
use latentdrive::pipeline::{GenerateOptions, Generator, Models, RunRequest, UpsampleMode, generate_to_dir};
use latentdrive::train::plot::read_log;
use latentdrive::train::{Continuation, FrameSource, continuation};
use latentdrive::weights::{Manifest, Part, TemporalInit, load_parts};
use latentdrive::world::{Renderer, World};

type B = Flex;

/// Training wall time from a log's `seconds` column, summed over resumed runs.
fn wall_seconds(log: &Path) -> f64 {
    latentdrive::train::plot::log_wall_seconds(log).unwrap_or(0.0)
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// Rows of equal-size images side by side, 4 px apart, on white.
fn grid(rows: &[Vec<RgbImage>]) -> RgbImage {
    let (w, h) = rows[0][0].dimensions();
    let gap = 4;
    let cols = rows.iter().map(Vec::len).max().unwrap_or(1) as u32;
    let mut out =
        RgbImage::from_pixel(cols * (w + gap) - gap, rows.len() as u32 * (h + gap) - gap, image::Rgb([255; 3]));
    for (r, row) in rows.iter().enumerate() {
        for (c, img) in row.iter().enumerate() {
            image::imageops::replace(&mut out, img, (c as u32 * (w + gap)) as i64, (r as u32 * (h + gap)) as i64);
        }
    }
    out
}

/// The autoencoder's reconstruction PSNR on 32 held-out renders (world seeds from the
/// evaluation range) as a quality row, and `autoencoder.png` (renders over reconstructions).
fn autoencoder_quality(
    ae: &latentdrive::model::Autoencoder<B>,
    frames: &FrameSource,
    samples: &Path,
    device: &burn::backend::flex::FlexDevice,
) -> Result<String> {
    eprintln!("autoencoder PSNR…");
    let mut ae_psnr = Vec::new();
    let mut ae_rows = vec![vec![], vec![]];
    for chunk in 0..4 {
        let seeds: Vec<u64> = (0..8).map(|i| EVAL_SEED_BASE + chunk * 8 + i).collect();
        let x = Tensor::stack(seeds.iter().map(|&s| frames.frame::<B>(s, device)).collect(), 0);
        let (mean_z, _) = ae.encoder.forward(x.clone());
        let rec = ae.decoder.forward(mean_z, 1);
        ae_psnr.extend(psnr(rec.clone(), x.clone()));
        if chunk == 0 {
            ae_rows[0] = tensor_to_images(x.slice(0..4));
            ae_rows[1] = tensor_to_images(rec.slice(0..4));
        }
    }
    grid(&ae_rows).save(samples.join("autoencoder.png"))?;
    let min = ae_psnr.iter().copied().fold(f64::INFINITY, f64::min);
    Ok(format!(
        "| autoencoder reconstruction PSNR, 32 held-out 128×256 renders | {:.2} dB (min {:.2}; target ≥ 28) |\n",
        mean(&ae_psnr),
        min
    ))
}

/// The training table's rows: one per stage the manifest holds, from its run log in `runs`
/// (or the folder's previous card where the log is gone) and its manifest facts.
fn training_table(dir: &Path, runs: &Path, manifest: &Manifest) -> Result<String> {
    let mut card = String::new();
    // A stage whose training log is gone (another machine, a wiped run folder) keeps its
    // row from the card already in `dir`, which was made from that log.
    let previous_card = std::fs::read_to_string(dir.join("MODEL_CARD.md")).unwrap_or_default();
    writeln!(card, "| stage | steps | wall time | held-out loss of the latest run (first → last) | hardware |")?;
    writeln!(card, "|---|---|---|---|---|")?;
    for (model, run) in [
        ("autoencoder", "autoencoder"),
        // `train decoder`: the autoencoder's decoder fine-tuned, encoder frozen.
        ("autoencoder", "autoencoder_decoder"),
        ("temporal_decoder", "temporal_decoder"),
        ("image_ldm", "image_ldm"),
        ("video_ldm", "video_ldm"),
        ("interpolator", "interpolator"),
        ("upsampler", "upsampler"),
        ("upsampler", "upsampler_video"),
    ] {
        let Some(entry) = manifest.model(model) else { continue };
        // The decoder fine-tuning's row only for an autoencoder that records one.
        if run == "autoencoder_decoder"
            && entry.training.as_ref().is_none_or(|t| !t.notes.starts_with("decoder fine-tuned"))
        {
            continue;
        }
        let log = read_log(&runs.join(run).join("log.csv")).unwrap_or_default();
        // An upsampler entry's facts are its video phase's; their base is its image phase's
        // (where the manifest records it).
        let facts = match run {
            "upsampler" if entry.file(Part::Temporal).is_some() => {
                entry.training.as_ref().and_then(|t| t.base.as_deref()).or(entry.training.as_ref())
            }
            _ => entry.training.as_ref(),
        };
        if log.is_empty() {
            if let Some(row) = previous_card.lines().find(|l| l.starts_with(&format!("| {run} | "))) {
                eprintln!("{run}: no log in {}, keeping its row of the previous card", runs.display());
                writeln!(card, "{row}")?;
                continue;
            }
            // No log and no card: the manifest's totals (a row of 0 steps would be read as
            // the earlier training by the next card of a continued run).
            if let Some(f) = facts {
                eprintln!("{run}: no log in {}, its row from the manifest's training facts", runs.display());
                writeln!(card, "| {run} | {} | {:.0} min | — | {} |", f.steps, f.wall_time_s / 60.0, f.hardware)?;
                continue;
            }
        }
        let held: Vec<(u64, f32)> = log.iter().filter_map(|r| r.held_out.map(|h| (r.step, h))).collect();
        let held = match (held.first(), held.last()) {
            (Some(a), Some(b)) => format!("{:.4} (step {}) → {:.4} (step {})", a.1, a.0, b.1, b.0),
            _ => "—".into(),
        };
        let steps = log.last().map_or(0, |r| r.step);
        let minutes = wall_seconds(&runs.join(run).join("log.csv")) / 60.0;
        // `train --init-from`: this log is the continuation; the earlier training's steps
        // and time come from the previous card's row (made from its log), else the manifest.
        // (A continued upsampler phase may not have its earlier training in the manifest:
        // the shipped entry predates the image phase's record.)
        let how = facts.and_then(continuation);
        let continued = how.is_some();
        let recorded = facts.filter(|_| how == Some(Continuation::Recorded)).and_then(|f| f.base.as_ref());
        let (log_steps, mut steps, mut minutes) = (steps, steps.to_string(), format!("{minutes:.0} min"));
        if continued {
            let earlier = previous_card.lines().find(|l| l.starts_with(&format!("| {run} | "))).and_then(|l| {
                let cols: Vec<&str> = l.split('|').map(str::trim).collect();
                Some((cols.get(2)?.to_string(), cols.get(3)?.to_string()))
            });
            // The previous row lists the earlier training (its terms add up to `base`), or already
            // this continuation too (a card made again for the same weights): then drop its last term.
            let terms = |v: &str| v.split(" + ").map(str::to_string).collect::<Vec<_>>();
            let total = |v: &str| terms(v).iter().map(|t| t.parse::<u64>().unwrap_or(0)).sum::<u64>();
            let drop_last = |v: &str| terms(v)[..terms(v).len() - 1].join(" + ");
            let again = |s0: &str| {
                terms(s0).len() > 1
                    && match recorded {
                        Some(_) => total(s0) == facts.map_or(0, |f| f.steps),
                        None => terms(s0).last().is_some_and(|t| t.parse::<u64>().ok() == Some(log_steps)),
                    }
            };
            let earlier = match (earlier, recorded) {
                (Some((s0, m0)), Some(base)) if total(&s0) == base.steps => Some((s0, m0)),
                (Some((s0, m0)), _) if again(&s0) => Some((drop_last(&s0), drop_last(&m0))),
                (Some(row), None) => Some(row),
                (_, Some(base)) => Some((base.steps.to_string(), format!("{:.0} min", base.wall_time_s / 60.0))),
                (None, None) => None,
            };
            if let Some((s0, m0)) = earlier {
                steps = format!("{s0} + {steps}");
                minutes = format!("{m0} + {minutes}");
            }
        }
        writeln!(
            card,
            "| {run} | {steps} | {minutes} | {held} | {} |",
            facts.map_or("—".into(), |f| f.hardware.clone())
        )?;
    }
    Ok(card)
}

/// The card of a folder that holds the first stages only (a tier retrained stage by stage):
/// the training rows it has and its autoencoder's quality. Generation needs the rest.
fn partial_card(dir: &Path, runs: &Path, manifest: &Manifest, samples: &Path, notes: Option<&String>) -> Result<()> {
    let device = Default::default();
    let entry = manifest.model("autoencoder").context("the folder has no autoencoder to measure")?;
    let mpath = Manifest::path(dir);
    let config: AutoencoderConfig = entry.config(&mpath)?;
    let file = entry.file_path(dir, Part::Spatial)?.context("the autoencoder entry lists no spatial file")?;
    manifest.verify_models(dir, |name| name == "autoencoder")?;
    let ae = load_parts(config.init::<B>(&device), &file, None, TemporalInit::Require)?;
    let (h, w) = manifest.tier.config().frame_size;
    let frames = FrameSource::new(h, w, 0);
    let quality = autoencoder_quality(&ae, &frames, samples, &device)?;
    let card = training_table(dir, runs, manifest)?;
    let have: Vec<&str> = manifest.models.iter().map(|m| m.name.as_str()).collect();
    let text = format!(
        "# latentdrive {tier} weights in progress ({folder}) — model card\n\n\
         Generated by `cargo run --release --no-default-features --example model_card -- {dir} {runs}{notes_arg}`.\n\n\
         This folder holds the first stages of a {tier} tier being trained stage by stage ({have}); generation \
         needs every stage, so `generate` cannot use it yet. Each later stage trains on it with \
         `latentdrive train <stage> --tier {tier} --weights {dir}`.\n\n\
         ## Data\n\nThe procedural driving world only (no external data): 128×256 frames rendered on the fly from \
         world seeds below 2^40, random day/night and crowdedness 0–3. Every number below is measured on held-out \
         worlds (seeds from 2^40 up), which no training step saw.\n\n\
         ## Training\n\n{card}\n\
         Held-out loss: L1 on [-1, 1] of the live weights; the files hold EMA weights.\n\n\
         ## Measured quality\n\n| measure | value |\n|---|---|\n{quality}\n\
         Samples: `{samples}/autoencoder.png` (held-out renders over reconstructions).\n",
        tier = manifest.tier.dir_name(),
        folder = dir.display(),
        dir = dir.display(),
        runs = runs.display(),
        have = have.join(", "),
        notes_arg = notes.map_or(String::new(), |n| format!(" {n}")),
        samples = samples.display(),
    );
    let text = match notes {
        Some(notes) => format!("{text}\n{}", std::fs::read_to_string(notes).with_context(|| notes.clone())?),
        None => text,
    };
    std::fs::write(dir.join("MODEL_CARD.md"), &text)?;
    println!("{text}");
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = PathBuf::from(args.first().map_or("weights/tiny", String::as_str));
    let runs = PathBuf::from(args.get(1).map_or("runs/train/tiny", String::as_str));
    let manifest = Manifest::read(&dir)?;
    // The tier's own folder draws the grids the README shows; any other folder (a tier being
    // retrained stage by stage, say) gets its own under docs/samples/<folder>.
    let folder = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let samples = match folder == manifest.tier.dir_name() {
        true => PathBuf::from("docs/samples"),
        false => Path::new("docs/samples").join(&folder),
    };
    let samples = samples.as_path();
    std::fs::create_dir_all(samples)?;
    let device = Default::default();
    // A folder holding the first stages only is measured on what it has.
    if manifest.model("image_ldm").is_none() {
        return partial_card(&dir, &runs, &manifest, samples, args.get(2));
    }
    let models = Models::<B>::load(&dir, &device).with_context(|| format!("loading {}", dir.display()))?;
    let (h, w) = models.frame_size();
    // What the latent denoisers' held-out loss is: the error of what they predict.
    let d = models.diffusion;
    let latent_loss = match (d.prediction, d.zero_terminal_snr) {
        (Prediction::V, true) => "v-MSE at random timesteps of LDM's schedule rescaled to zero terminal SNR",
        (Prediction::V, false) => "v-MSE at random timesteps",
        _ => "ε-MSE at random timesteps",
    };
    let frames = FrameSource::new(h, w, 0);
    let mut quality = autoencoder_quality(&models.autoencoder, &frames, samples, &device)?;

    // Temporal vs per-frame decoder on 4 held-out 8-frame clips at 10 Hz.
    eprintln!("temporal decoder…");
    if let Some(c) = compare_decoders(&models, 4, 8, 10.0, &device, || {}) {
        writeln!(
            quality,
            "| temporal decoder vs per-frame image decoder, {} held-out {}-frame clips at {} Hz: PSNR, and temporal \
             error mean \\|Δrec − Δvideo\\| between consecutive frames (8-bit levels, lower is better) | \
             temporal: {:.2} dB, {:.2}; per-frame: {:.2} dB, {:.2} |",
            c.clips,
            c.frames,
            c.fps,
            c.temporal.psnr,
            c.temporal.temporal_error,
            c.per_frame.psnr,
            c.per_frame.temporal_error
        )?;
    }

    // Upsampler vs bilinear on 4 held-out 512×1024 frames, per frame, at generation's default steps.
    if let Some(up) = &models.upsampler {
        eprintln!("upsampler…");
        let hi_frames = FrameSource::new(4 * h, 4 * w, 0);
        let aug = latentdrive::model::upsampler::augmentation_schedule();
        let steps = latentdrive::pipeline::DEFAULT_UPSAMPLE_STEPS;
        let sampler = Sampler::new(Ddim::new(&NoiseSchedule::ldm(), up.prediction, steps, 0.0)?, Guidance::NONE);
        let (mut p_up, mut p_bi) = (vec![], vec![]);
        let mut crops = vec![];
        for i in 0..4u64 {
            let hi = hi_frames.frame::<B>(EVAL_SEED_BASE + 200 + i, &device).unsqueeze::<4>();
            let low = avg_pool2d(hi.clone(), [4, 4], [4, 4], [0, 0], true, false);
            let bilinear = up.upsample_condition(low);
            let mut rng = ChaCha8Rng::seed_from_u64(i);
            let level = latentdrive::pipeline::DEFAULT_UPSAMPLE_LEVEL;
            let noise = gaussian::<B, 4, _>(bilinear.dims(), &mut rng, &device);
            let cond = UpsampleCond {
                frames: 1,
                low: aug.add_noise(bilinear.clone(), noise, &[level]),
                level: Tensor::full([1], level as f32, &device),
            };
            let x = gaussian::<B, 4, _>(bilinear.dims(), &mut rng, &device);
            let out = sampler.sample(&UpsampleDenoiser(up), x, &cond, &mut rng).clamp(-1.0, 1.0);
            p_up.extend(psnr(out.clone(), hi.clone()));
            p_bi.extend(psnr(bilinear.clone(), hi.clone()));
            if i == 0 {
                let (hh, ww) = (4 * h, 4 * w);
                let crop = |t: Tensor<B, 4>| {
                    tensor_to_images(t.slice([0..1, 0..3, hh * 3 / 8..hh * 5 / 8, ww * 3 / 8..ww * 5 / 8])).remove(0)
                };
                crops = vec![crop(bilinear), crop(out), crop(hi)];
            }
        }
        grid(&[crops]).save(samples.join("upsampler_crop.png"))?;
        writeln!(
            quality,
            "| upsampler (per frame, {steps} DDIM steps) vs bilinear, 4 held-out 512×1024 renders from 4×4-averaged \
             128×256 | {:.2} dB vs {:.2} dB |",
            mean(&p_up),
            mean(&p_bi)
        )?;
    }

    let generator = Generator::new(models, device);

    // Interpolator vs the straight line between its keys' latents on 4 held-out 10 Hz clips,
    // 20 steps, free (the paper's sampling: no guide, every frame's own noise) and with the default
    // sampling (fully guided by the blend, the keys' noise moved on to the in-between frames); the first
    // clip's first key interval as a sample grid (render, free interpolator, blend).
    if generator.models.interpolator.is_some() {
        eprintln!("interpolator…");
        let mut opts =
            GenerateOptions::from_scenario(&latentdrive::scenario::load(Path::new("scenarios/day_overtake.ron"))?);
        let default_noise = opts.interpolation_noise;
        (opts.steps, opts.interpolation_guide, opts.interpolation_noise) = (20, 0.0, 0.0);
        let mut sample = None;
        let free = compare_interpolation(&generator, 4, &opts, |clip| {
            if sample.is_none() {
                // The first key interval: key, three in-between frames, key.
                let first = |t: burn::tensor::Tensor<B, 4>| t.slice(0..5);
                sample = Some(latentdrive::train::tensor_grid(&[
                    first(clip.render),
                    first(clip.interpolator),
                    first(clip.blend),
                ]));
            }
        })?;
        if let Some(sample) = sample {
            sample.save(samples.join("interpolation.png"))?;
        }
        (opts.interpolation_guide, opts.interpolation_noise) = (1.0, default_noise);
        let guided = compare_interpolation(&generator, 4, &opts, |_| {})?;
        writeln!(
            quality,
            "| interpolator, {} held-out 10 Hz clips of 9 frames given the encoder's latents of frames 0, 4, 8 ({} DDIM \
             steps, decoded per frame): PSNR of the 6 in-between frames and temporal error of the 9; against the \
             straight line between the keys' latents and the encoder's own latents | interpolator at interpolation \
             guide 0 (the paper's sampling) {:.2} dB, {:.2}; at guide 1 and interpolation noise {} (the defaults) {:.2} \
             dB, {:.2}; latent blend {:.2} dB, {:.2}; encoder {:.2} dB, {:.2} |",
            free.clips,
            free.steps,
            free.interpolator.psnr,
            free.interpolator.temporal_error,
            default_noise,
            guided.interpolator.psnr,
            guided.interpolator.temporal_error,
            free.blend.psnr,
            free.blend.temporal_error,
            free.ceiling.psnr,
            free.ceiling.temporal_error
        )?;
    }

    // Frame 0 of four example scenarios next to the world's own render of them.
    eprintln!("frame 0 samples…");
    let never = AtomicBool::new(false);
    let mut rows = vec![];
    for name in ["day_overtake", "day_dense", "night_merge", "night_empty"] {
        let s = latentdrive::scenario::load(Path::new(&format!("scenarios/{name}.ron")))?;
        let mut opts = GenerateOptions::from_scenario(&s);
        (opts.steps, opts.upsample) = (25, UpsampleMode::Off);
        let mut generated = generator.first_frame(&s, &opts, &mut |_| {}, &never)?;
        let world = World::from_scenario(&s)?;
        let (reference, _) = Renderer::new(w as u32, h as u32).render(&world, 0);
        let labels = latentdrive::pipeline::requested_labels(&s, w as u32, h as u32)?;
        for o in &labels.objects {
            latentdrive::train::outline_box(&mut generated, (0, 0), [o.box2d.x1, o.box2d.y1, o.box2d.x2, o.box2d.y2]);
        }
        rows.push(vec![reference, generated]);
    }
    grid(&rows).save(samples.join("frame0.png"))?;

    // Three futures of one scenario (no upsampling), and how much they differ.
    eprintln!("futures…");
    let s = latentdrive::scenario::load(Path::new("scenarios/day_overtake.ron"))?;
    let mut opts = GenerateOptions::from_scenario(&s);
    (opts.futures, opts.seconds, opts.steps, opts.upsample) = (3, 3.2, 20, UpsampleMode::Off);
    let out = std::env::temp_dir().join(format!("latentdrive-model-card-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let guides = (opts.prediction_guide, opts.prediction_guide_falloff, opts.interpolation_guide);
    let request = RunRequest { scenario: s, options: opts, scenario_file: None };
    let summary = generate_to_dir(&generator, &request, &out, "cpu (burn Flex)", &mut |_| {}, &never)?;
    std::fs::copy(out.join("contact_sheet.png"), samples.join("futures.png"))?;
    let last = format!("{:06}.png", summary.plan.frames_per_future - 1);
    let read = |k: usize| image::open(out.join(format!("future_{k:02}/frames/{last}"))).map(|i| i.into_rgb8());
    let (a, b, c) = (read(0)?, read(1)?, read(2)?);
    let diff = |x: &RgbImage, y: &RgbImage| {
        x.as_raw().iter().zip(y.as_raw()).map(|(&p, &q)| (p as f64 - q as f64).abs()).sum::<f64>()
            / x.as_raw().len() as f64
    };
    writeln!(
        quality,
        "| futures of one scenario (day_overtake, 3.2 s, 20 steps, the default prediction guide {} (falloff {}) and \
         interpolation guide {}): mean abs pixel difference of the last frames, pairs | {:.1}, {:.1}, {:.1} (8-bit \
         levels) |",
        guides.0,
        guides.1,
        guides.2,
        diff(&a, &b),
        diff(&a, &c),
        diff(&b, &c)
    )?;
    let _ = std::fs::remove_dir_all(&out);

    let card = training_table(&dir, &runs, &manifest)?;
    let text = format!(
        "# latentdrive {tier} weights — model card\n\n\
         Generated by `cargo run --release --no-default-features --example model_card -- {dir} {runs}{notes}`.\n\n\
         ## Data\n\nThe procedural driving world only (no external data): frames and clips rendered on the fly \
         from world seeds below 2^40, random day/night and crowdedness 0–3, 128×256 key frames (512×1024 for the \
         upsampler). Every number below is measured on held-out worlds (seeds from 2^40 up), which no training \
         step saw.\n\n\
         ## Training\n\n{card}\n\
         Held-out losses: autoencoder = L1 on [-1, 1]; temporal decoder = L1 + 0.5·edge + 1·temporal \
         reconstruction (L1 of the frame-to-frame changes) on [-1, 1]; latent diffusion stages = {latent_loss} (1.0 = \
         predicting nothing); upsampler = MSE of its x̂_0 on [-1, 1] (it predicts x_0). A continued stage's \
         column is its latest run's log; the earlier runs' last held-out losses are in the manifest's training notes \
         (where recorded). The files hold EMA weights.\n\n\
         ## Measured quality\n\n| measure | value |\n|---|---|\n{quality}\n\
         Samples: `docs/samples/autoencoder.png` (held-out renders over reconstructions), `frame0.png` (world \
         render | generated frame 0 with the requested boxes outlined, per example scenario), `futures.png` \
         (rows = futures, columns = time), `upsampler_crop.png` (bilinear | upsampler | ground truth).\n",
        tier = manifest.tier.dir_name(),
        dir = dir.display(),
        runs = runs.display(),
        notes = args.get(2).map_or(String::new(), |n| format!(" {n}")),
    );
    // Optional hand-written notes (how the run was scheduled, what to expect), appended.
    let text = match args.get(2) {
        Some(notes) => format!("{text}\n{}", std::fs::read_to_string(notes).with_context(|| notes.clone())?),
        None => text,
    };
    std::fs::write(dir.join("MODEL_CARD.md"), &text)?;
    println!("{text}");
    Ok(())
}
