//! Dumps what `tools/torch_ref/parity.py` compares the PyTorch reference against: the
//! weights of the image LDM, the video LDM, the interpolator and the upsampler (as
//! `save_parts` writes them, with a `manifest.ron` holding their configs), deterministic
//! inputs for each, and each model's outputs on them (burn `Flex`, f32).
//!
//! `cargo run --release --no-default-features --example torch_parity_dump -- OUT [--tier micro|tiny] [--weights DIR]`
//!
//! Models come from the tier's configs with seeded random weights. Unlike
//! `train::init::seeded_init`, *every* parameter is redrawn, the zero-initialised output
//! projections, norm scales, GLIGEN gates and α logits included: with them at their
//! initial values whole branches would be silent and a parity check could not see them.
//! With `--weights DIR`, a model listed in `DIR/manifest.ron` is loaded from there instead
//! (the trained `weights/tiny` image LDM and upsampler, say); the tier must match.
//!
//! Written to OUT: `<model>.safetensors` (+ `<model>.temporal.safetensors`),
//! `manifest.ron`, `cases.json` (one entry per model call) and `cases.safetensors` with
//! the tensors `<case>.<name>`. The cases file is written by hand in the safetensors
//! layout (8-byte header length, JSON header, raw little-endian data): burn-store writes
//! modules, not loose tensors.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::backend::Flex;
use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{Int, Tensor, TensorData, backend::Backend};
use clap::Parser;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use latentdrive::diffusion::gaussian;
use latentdrive::model::{Boxes, Labels, ModelTier, UNet, UNetConfig, UNetInput, Upsampler, UpsamplerConfig};
use latentdrive::weights::{FileEntry, Manifest, ModelEntry, Part, TemporalInit, load_parts, save_parts};

type B = Flex;

/// Dump reference inputs and outputs of the denoisers for the PyTorch parity check.
#[derive(Parser)]
struct Args {
    /// Folder to write (created; files in it are replaced).
    out: PathBuf,
    /// Model tier whose configs are used.
    #[arg(long, default_value = "micro", value_parser = ["micro", "tiny", "base"])]
    tier: String,
    /// A weights folder whose listed models replace the random ones.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Seed of the random weights and inputs.
    #[arg(long, default_value_t = 9)]
    seed: u64,
}

/// Redraws every float parameter from a seeded stream (see the module docs): weights
/// (rank ≥ 2) as `U(−b, b)`, `b = 1/√fan_in`; rank-1 tensors around their kind's
/// initial value, wide enough that α, the gates and the norm scales all matter.
struct RedrawAll {
    rng: ChaCha8Rng,
    path: Vec<String>,
}

impl<B: Backend> ModuleMapper<B> for RedrawAll {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, t, mapper) = param.consume();
        let dims = t.dims();
        let n: usize = dims.iter().product();
        let name = self.path.last().map(String::as_str).unwrap_or("");
        let (centre, half) = if D >= 2 {
            // burn stores linear weights as [in, out] and convolutions as [out, in, k…].
            let fan_in: usize = if D == 2 { dims[0] } else { dims[1..].iter().product() };
            (0.0, 1.0 / (fan_in.max(1) as f64).sqrt())
        } else {
            match name {
                "gamma" => (1.0, 0.3),
                // α = sigmoid(mix) from about 0.12 to 0.88.
                "mix" => (0.0, 2.0),
                // tanh(gate) up to ±0.76.
                "gate_attn" | "gate_ff" => (0.0, 1.0),
                _ => (0.0, 0.3),
            }
        };
        let drawn: Vec<f32> = (0..n).map(|_| (centre + half * (2.0 * self.rng.random::<f64>() - 1.0)) as f32).collect();
        let tensor = Tensor::from_data(TensorData::new(drawn, dims), &t.device());
        Param::from_mapped_value(id, tensor, mapper)
    }
}

fn redraw_all<M: Module<B>>(module: M, seed: u64) -> M {
    module.map(&mut RedrawAll { rng: ChaCha8Rng::seed_from_u64(seed), path: Vec::new() })
}

/// Tensors of the cases file, in insertion order per case.
#[derive(Default)]
struct Dump {
    tensors: BTreeMap<String, (&'static str, Vec<usize>, Vec<u8>)>,
}

impl Dump {
    fn float<const D: usize>(&mut self, name: String, t: &Tensor<B, D>) -> Result<()> {
        let data = t.clone().into_data().convert::<f32>();
        let values = data.to_vec::<f32>().map_err(|e| anyhow::anyhow!("{name}: {e:?}"))?;
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.tensors.insert(name, ("F32", t.dims().to_vec(), bytes));
        Ok(())
    }

    fn int(&mut self, name: String, t: &Tensor<B, 1, Int>) -> Result<()> {
        let data = t.clone().into_data().convert::<i64>();
        let values = data.to_vec::<i64>().map_err(|e| anyhow::anyhow!("{name}: {e:?}"))?;
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.tensors.insert(name, ("I64", t.dims().to_vec(), bytes));
        Ok(())
    }

    /// Writes the safetensors layout: u64 header length, JSON header, data.
    fn write(&self, path: &Path) -> Result<()> {
        let mut header = serde_json::Map::new();
        let mut offset = 0usize;
        for (name, (dtype, shape, bytes)) in &self.tensors {
            header.insert(
                name.clone(),
                serde_json::json!({ "dtype": dtype, "shape": shape, "data_offsets": [offset, offset + bytes.len()] }),
            );
            offset += bytes.len();
        }
        let mut text = serde_json::to_string(&header)?.into_bytes();
        // Data starts 8-byte aligned, as the format's writers do.
        while text.len() % 8 != 0 {
            text.push(b' ');
        }
        let mut file = Vec::with_capacity(8 + text.len() + offset);
        file.extend_from_slice(&(text.len() as u64).to_le_bytes());
        file.extend_from_slice(&text);
        for (_, _, bytes) in self.tensors.values() {
            file.extend_from_slice(bytes);
        }
        std::fs::write(path, file).with_context(|| format!("writing {}", path.display()))
    }
}

/// One model call, as `cases.json` lists it.
#[derive(Serialize)]
struct Case {
    name: String,
    model: String,
    frames: usize,
    image_only: bool,
    /// The box lists `box_*` were built from (`None`: boxes dropped), for checking the
    /// reference's own rasteriser.
    #[serde(skip_serializing_if = "Option::is_none")]
    boxes: Option<Vec<Option<Vec<[f32; 4]>>>>,
}

struct Run {
    out: PathBuf,
    /// Channels of the latents the LDMs denoise.
    latent_channels: usize,
    weights: Option<(PathBuf, Manifest)>,
    seed: u64,
    entries: Vec<ModelEntry>,
    dump: Dump,
    cases: Vec<Case>,
    rng: ChaCha8Rng,
}

impl Run {
    /// The model `name`: loaded from `--weights` if listed there, else redrawn. Its weights
    /// are saved into OUT and listed in OUT's manifest with `config`.
    fn model<M: Module<B>, C: Serialize>(&mut self, name: &str, config: &C, fresh: M, salt: u64) -> Result<M> {
        let model = match self.weights.as_ref().and_then(|(dir, m)| Some((dir, m.model(name)?))) {
            Some((dir, entry)) => {
                let spatial = entry.file_path(dir, Part::Spatial)?.context("no spatial file")?;
                let temporal = entry.file_path(dir, Part::Temporal)?;
                println!("{name}: weights from {}", dir.display());
                load_parts(fresh, &spatial, temporal.as_deref(), TemporalInit::Require)
                    .with_context(|| format!("loading {name} from {}", dir.display()))?
            }
            None => {
                println!("{name}: seeded random weights (every parameter redrawn)");
                redraw_all(fresh, self.seed ^ salt)
            }
        };
        let spatial = format!("{name}.safetensors");
        let temporal = format!("{name}.temporal.safetensors");
        let has_temporal =
            latentdrive::weights::module_tensors(&model).iter().any(|t| Part::of(&t.name) == Part::Temporal);
        save_parts(&model, &self.out.join(&spatial), has_temporal.then(|| self.out.join(&temporal)).as_deref())?;
        let mut files = vec![FileEntry::describe(&self.out, &spatial, Part::Spatial)?];
        if has_temporal {
            files.push(FileEntry::describe(&self.out, &temporal, Part::Temporal)?);
        }
        self.entries.push(ModelEntry::new(name, config, files)?);
        Ok(model)
    }

    fn normal<const D: usize>(&mut self, shape: [usize; D]) -> Tensor<B, D> {
        gaussian(shape, &mut self.rng, &Default::default())
    }

    fn case(&mut self, name: &str, model: &str, frames: usize, image_only: bool) {
        self.cases.push(Case { name: name.into(), model: model.into(), frames, image_only, boxes: None });
    }
}

/// Diffusion timesteps, one per clip, repeated over its frames.
fn timesteps(per_clip: &[f32], frames: usize) -> Tensor<B, 1> {
    let v: Vec<f32> = per_clip.iter().flat_map(|&t| std::iter::repeat_n(t, frames)).collect();
    Tensor::from_floats(v.as_slice(), &Default::default())
}

fn ints(v: Vec<i64>) -> Tensor<B, 1, Int> {
    let n = v.len();
    Tensor::from_data(TensorData::new(v, [n]), &Default::default())
}

/// Labels per clip (`None`: null labels), repeated over its frames.
fn labels(per_clip: &[(i64, i64)], frames: usize) -> Labels<B> {
    let rep = |f: fn(&(i64, i64)) -> i64| per_clip.iter().flat_map(|l| std::iter::repeat_n(f(l), frames)).collect();
    Labels { time_of_day: ints(rep(|l| l.0)), crowdedness: ints(rep(|l| l.1)) }
}

fn unet_case(run: &mut Run, case: &str, model: &str, unet: &UNet<B>, input: UNetInput<B>) -> Result<()> {
    let d = &mut run.dump;
    d.float(format!("{case}.x"), &input.x)?;
    d.float(format!("{case}.timesteps"), &input.timesteps)?;
    if let Some(l) = &input.labels {
        d.int(format!("{case}.time_of_day"), &l.time_of_day)?;
        d.int(format!("{case}.crowdedness"), &l.crowdedness)?;
    }
    if let Some(b) = &input.boxes {
        d.float(format!("{case}.box_coords"), &b.coords)?;
        d.float(format!("{case}.box_present"), &b.present)?;
        d.float(format!("{case}.box_layout"), &b.layout)?;
    }
    if let Some(c) = &input.context {
        d.float(format!("{case}.context"), c)?;
    }
    if let Some(s) = &input.fps_stage {
        d.int(format!("{case}.fps_stage"), s)?;
    }
    let (frames, image_only) = (input.frames, input.image_only);
    let start = std::time::Instant::now();
    let out = unet.forward(input);
    println!("{case}: {:?} in {:.0} ms", out.dims(), start.elapsed().as_secs_f64() * 1e3);
    run.dump.float(format!("{case}.out"), &out)?;
    run.case(case, model, frames, image_only);
    Ok(())
}

/// Video inputs: `clips` clips of `t` latents, the first `known[i]` frames of clip `i` as context.
fn video_input(run: &mut Run, clips: usize, t: usize, h: usize, w: usize, known: &[usize]) -> UNetInput<B> {
    let n = clips * t;
    let x = run.normal([n, run.latent_channels, h, w]);
    let z = run.normal([n, run.latent_channels, h, w]);
    let mask: Vec<f32> =
        (0..n).flat_map(|i| std::iter::repeat_n(if i % t < known[i / t] { 1.0 } else { 0.0 }, h * w)).collect();
    let m = Tensor::<B, 4>::from_data(TensorData::new(mask, [n, 1, h, w]), &Default::default());
    let mut input = UNetInput::new(x, timesteps(&[617.0, 38.0, 250.0, 999.0][..clips], t), t);
    input.context = Some(Tensor::cat(vec![z * m.clone(), m], 1));
    input.labels = Some(labels(&[(1, 3), (2, 4), (0, 0), (1, 1)][..clips], t));
    input
}

fn main() -> Result<()> {
    let args = Args::parse();
    let tier = match args.tier.as_str() {
        "micro" => ModelTier::Micro,
        "tiny" => ModelTier::Tiny,
        _ => ModelTier::Base,
    };
    let mut cfg = tier.config();
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let weights = match &args.weights {
        Some(dir) => {
            let m = Manifest::read(dir)?;
            m.verify(dir)?;
            if m.tier != tier {
                bail!("{} holds tier {:?}, not {:?} (pass --tier)", dir.display(), m.tier, tier);
            }
            // The latent stages follow the folder's autoencoder (its latent channels).
            if let Some(ae) = m.model("autoencoder") {
                cfg = cfg.with_autoencoder(ae.config(&Manifest::path(dir))?);
            }
            Some((dir.clone(), m))
        }
        None => None,
    };
    let mut run = Run {
        latent_channels: cfg.latent_channels(),
        out: args.out.clone(),
        weights,
        seed: args.seed,
        entries: Vec::new(),
        dump: Dump::default(),
        cases: Vec::new(),
        rng: ChaCha8Rng::seed_from_u64(args.seed),
    };
    let dev = Default::default();
    // Latent size: the tier's key frames at f = 8 (micro's 2×4 would leave 1×2 at the
    // second level, too small to see a padding or layout mistake).
    let (h, w) = match tier {
        ModelTier::Micro => (8, 16),
        _ => (cfg.frame_size.0 / 8, cfg.frame_size.1 / 8),
    };

    // Image LDM: two boxes, one box, boxes dropped; one null label.
    let image_cfg: UNetConfig = cfg.image_ldm.clone();
    let image = run.model("image_ldm", &image_cfg, image_cfg.init::<B>(&dev), 2)?;
    let slots = image.box_slots();
    let box_lists =
        vec![Some(vec![[0.1, 0.5, 0.35, 0.8], [0.55, 0.45, 0.7, 0.62]]), Some(vec![[0.0, 0.6, 0.5, 1.0]]), None];
    let boxes = Boxes::new(&box_lists, slots, h, w, &dev);
    let mut input = UNetInput::new(run.normal([3, cfg.latent_channels(), h, w]), timesteps(&[999.0, 421.0, 3.0], 1), 1);
    input.labels = Some(labels(&[(0, 2), (1, 4), (2, 0)], 1));
    input.boxes = Some(boxes);
    unet_case(&mut run, "image", "image_ldm", &image, input)?;
    if let Some(case) = run.cases.last_mut() {
        case.boxes = Some(box_lists);
    }

    // Video LDM: two clips of one window, one and two context frames.
    let t = cfg.window;
    let video_cfg: UNetConfig = cfg.video_ldm.clone();
    let video = run.model("video_ldm", &video_cfg, video_cfg.init::<B>(&dev), 3)?;
    let input = video_input(&mut run, 2, t, h, w, &[1, 2]);
    unet_case(&mut run, "video", "video_ldm", &video, input)?;

    // Interpolator: two clips, one per fps stage, key frames at every fourth position.
    let interp_cfg: UNetConfig = cfg.interpolator.clone();
    let interp = run.model("interpolator", &interp_cfg, interp_cfg.init::<B>(&dev), 4)?;
    let mut input = video_input(&mut run, 2, t, h, w, &[1, 2]);
    input.fps_stage = Some(ints((0..2 * t).map(|i| (i / t) as i64).collect()));
    unet_case(&mut run, "interpolator", "interpolator", &interp, input)?;

    // Upsampler: a clip of three frames (temporal layers on) and two single frames (α = 1).
    let up_cfg: UpsamplerConfig = cfg.upsampler.clone();
    let up: Upsampler<B> = run.model("upsampler", &up_cfg, up_cfg.init::<B>(&dev), 5)?;
    let (lh, lw) = match tier {
        ModelTier::Micro => (8, 16),
        _ => (32, 64),
    };
    let f = up.factor();
    for (case, frames, n) in [("upsampler_video", 3, 3), ("upsampler_image", 1, 2)] {
        let low = run.normal([n, 3, lh, lw]).clamp(-1.0, 1.0);
        let x_t = run.normal([n, 3, f * lh, f * lw]);
        let steps = timesteps(&[731.0, 12.0, 400.0][..n / frames], frames);
        let level = timesteps(&[0.1, 0.35, 0.0][..n / frames], frames);
        let cond = up.upsample_condition(low.clone());
        let start = std::time::Instant::now();
        let out = up.forward(x_t.clone(), steps.clone(), cond.clone(), level.clone(), frames);
        println!("{case}: {:?} in {:.0} ms", out.dims(), start.elapsed().as_secs_f64() * 1e3);
        let d = &mut run.dump;
        d.float(format!("{case}.low"), &low)?;
        d.float(format!("{case}.x"), &x_t)?;
        d.float(format!("{case}.timesteps"), &steps)?;
        d.float(format!("{case}.noise_level"), &level)?;
        d.float(format!("{case}.cond"), &cond)?;
        d.float(format!("{case}.out"), &out)?;
        run.case(case, "upsampler", frames, frames == 1);
    }

    let mut manifest = Manifest::new(tier);
    manifest.models = std::mem::take(&mut run.entries);
    manifest.write(&run.out)?;
    run.dump.write(&run.out.join("cases.safetensors"))?;
    let cases = serde_json::json!({ "tier": tier.dir_name(), "seed": args.seed, "cases": run.cases });
    std::fs::write(run.out.join("cases.json"), serde_json::to_string_pretty(&cases)?)?;
    println!("wrote {} cases to {}", run.cases.len(), run.out.display());
    Ok(())
}
