//! The report folder of `eval`: `report.md` (tables for people), `metrics.json` (every
//! number, for tools), line plots and a sample sheet; every file written atomically.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::measure::{BOOTSTRAP_RESAMPLES, KernelDistance, STATIC_TOLERANCE, SceneSpread, SettingMetrics, TRACK_SCORE};
use super::plot::{Series, write_line_plot};
use super::run::{EvalError, EvalResults};
use super::tasks::MIN_CAR_PX;
use crate::export::{save_png_atomic, write_atomic};
use crate::pipeline::UpsampleMode;

/// Writes the report of `results` into `dir` (created); `command` is quoted at the top.
/// Returns the files written.
pub fn write_report(results: &EvalResults, dir: &Path, command: &str) -> Result<Vec<PathBuf>, EvalError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| EvalError::Report { path: dir.to_path_buf(), message: format!("cannot create: {e}") })?;
    let mut written = Vec::new();
    let json = serde_json::to_vec_pretty(results)
        .map_err(|e| EvalError::Report { path: dir.join("metrics.json"), message: e.to_string() })?;
    write_atomic(&dir.join("metrics.json"), &json)?;
    written.push(dir.join("metrics.json"));

    let mut plots = Vec::new();
    for table in &results.ablations {
        let numeric: Vec<_> = table.rows.iter().filter_map(|r| r.value.map(|v| (v, &r.metrics))).collect();
        if numeric.len() < 2 {
            continue;
        }
        let series = |name: &str, f: &dyn Fn(&SettingMetrics) -> Option<f64>| Series {
            name: name.to_string(),
            points: numeric.iter().filter_map(|(v, m)| f(m).map(|y| (*v, y))).collect(),
        };
        let png = dir.join(format!("ablation_{}_frechet.png", table.parameter));
        let fd =
            [series("Frechet d^2, frames", &|m| m.frechet_frames), series("Frechet d^2, clips", &|m| m.frechet_clips)];
        if write_line_plot(&png, &format!("{}: Frechet distance", table.name), &table.parameter, "d^2", &fd)? {
            plots.push((table.name.clone() + ": Fréchet distances", png));
        }
        let png = dir.join(format!("ablation_{}_scores.png", table.parameter));
        let scores = [
            series("layout AP50", &|m| m.layout_ap50.map(f64::from)),
            series("day/night acc.", &|m| m.day_night.map(f64::from)),
            series("crowdedness (car count) +-1 acc.", &|m| m.crowdedness_count_within_one.map(f64::from)),
            series("track continuity", &|m| m.track_continuity.map(f64::from)),
        ];
        if write_line_plot(&png, &format!("{}: scores", table.name), &table.parameter, "0..1", &scores)? {
            plots.push((table.name.clone() + ": scores", png));
        }
    }
    if let Some(d) = &results.drift {
        let png = dir.join("drift.png");
        let s = [Series {
            name: "Frechet d^2, frames".into(),
            points: d.segments.iter().filter_map(|s| s.frechet_frames.map(|f| (s.start_s as f64, f))).collect(),
        }];
        if write_line_plot(&png, "Long-horizon drift", "segment start (s)", "d^2", &s)? {
            plots.push(("Long-horizon drift".into(), png));
        }
    }
    if results.samples.width() > 0 {
        let png = dir.join("samples.png");
        save_png_atomic(&png, &results.samples)?;
        plots.push(("Samples".into(), png));
    }
    written.extend(plots.iter().map(|(_, p)| p.clone()));

    let md = markdown(results, command, &plots);
    write_atomic(&dir.join("report.md"), md.as_bytes())?;
    written.push(dir.join("report.md"));
    Ok(written)
}

fn f3(v: Option<f32>) -> String {
    v.map_or_else(|| "n/a".into(), |v| format!("{v:.3}"))
}

fn f2(v: Option<f32>) -> String {
    v.map_or_else(|| "n/a".into(), |v| format!("{v:.2}"))
}

fn g3(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".into(), |v| if v.abs() >= 100.0 { format!("{v:.1}") } else { format!("{v:.3}") })
}

/// Decimals for a distance, a difference or a spread of this size: 4 below 1, more below
/// 0.01 so that the value keeps two significant digits (at most 8).
fn decimals(magnitude: f64) -> usize {
    match magnitude.abs() {
        a if a >= 100.0 => 1,
        a if a >= 1.0 => 2,
        a if a >= 0.01 || a == 0.0 || !a.is_finite() => 4,
        a => ((-a.log10()).ceil() as usize + 1).clamp(4, 8),
    }
}

/// `v` to `decimals` decimals, without the sign of a value that rounds to 0 ("-0.0000").
fn fixed(v: f64, decimals: usize) -> String {
    let text = format!("{v:.decimals$}");
    match text.strip_prefix('-') {
        Some(unsigned) if unsigned.chars().all(|c| c == '0' || c == '.') => unsigned.to_string(),
        _ => text,
    }
}

/// A kernel distance with its spread, as [`fd`].
fn kd(k: Option<KernelDistance>) -> String {
    fd(k.map(|k| k.value), k.and_then(|k| k.sd))
}

/// A difference with its sign and its spread, both to the decimals that suit the larger.
fn delta_with_spread(d: f64, sd: f64) -> String {
    let decimals = decimals(d.abs().max(sd));
    format!("{d:+.decimals$} ± {sd:.decimals$}")
}

/// A squared Fréchet distance and, where measured, its spread over scene resamples, both to
/// the decimals that suit the larger.
fn fd(v: Option<f64>, sd: Option<f64>) -> String {
    match (v, sd) {
        (Some(v), Some(sd)) => {
            let decimals = decimals(v.abs().max(sd));
            format!("{} ± {}", fixed(v, decimals), fixed(sd, decimals))
        }
        (Some(v), None) => fixed(v, decimals(v)),
        (None, _) => "n/a".into(),
    }
}

/// Where a distance's scene resamples lie, whether the distance itself lies outside them, and
/// the scene it rests on most: "resamples 0.0021 to 0.0355, the distance below them; without
/// scene 10 (world seed …) 0.0104".
fn spread_text(v: f64, s: &SceneSpread) -> String {
    let [low, high] = s.resample_range;
    let decimals = decimals(v.abs().max(high.abs()));
    let mut text = format!("resamples {} to {}", fixed(low, decimals), fixed(high, decimals));
    if v < low {
        text.push_str(", the distance below them");
    } else if v > high {
        text.push_str(", the distance above them");
    }
    if let Some(i) = s.most_influential {
        let _ = write!(text, "; without scene {} (world seed {}) {}", i.scene, i.seed, fixed(i.without, decimals));
    }
    text
}

/// The sharpness and, where measured, its spread over scene resamples, to 3 decimals.
fn sharpness(m: &SettingMetrics) -> String {
    match (m.sharpness, m.sharpness_sd) {
        (Some(v), Some(sd)) => format!("{v:.3} ± {sd:.3}"),
        (v, _) => f3(v),
    }
}

/// Whether a main-table row is a distance to the reference (0 for the reference itself).
fn is_distance(row: &str) -> bool {
    row.starts_with("Fréchet") || row.starts_with("kernel distance")
}

/// The metric rows of the main table: name, how to read it, value.
fn metric_rows(m: &SettingMetrics) -> Vec<(&'static str, String)> {
    vec![
        ("layout AP50 (frame 0 vs requested boxes) ↑", f3(m.layout_ap50)),
        ("layout mean IoU of matched boxes ↑", f3(m.layout_mean_iou)),
        ("layout recall at IoU 0.5 ↑", f3(m.layout_recall)),
        ("day/night accuracy ↑", f3(m.day_night)),
        ("crowdedness accuracy, exact ↑", f3(m.crowdedness_exact)),
        ("crowdedness accuracy, ±1 ↑", f3(m.crowdedness_within_one)),
        ("crowdedness from detected car count, exact ↑", f3(m.crowdedness_count_exact)),
        ("crowdedness from detected car count, ±1 ↑", f3(m.crowdedness_count_within_one)),
        ("Fréchet distance², frames ↓", fd(m.frechet_frames, m.frechet_frames_sd)),
        ("Fréchet distance², clips ↓", fd(m.frechet_clips, m.frechet_clips_sd)),
        ("kernel distance (KID), frames ↓", kd(m.kid_frames)),
        ("kernel distance (KID), clips ↓", kd(m.kid_clips)),
        ("sharpness: fine detail against the world's renders (1 = as much)", sharpness(m)),
        ("flicker on static pixels (0..1) ↓", f3(m.flicker_static)),
        ("static pixels of the reference (share)", f3(m.static_fraction)),
        ("detector track continuity ↑", f3(m.track_continuity)),
        ("multi-future diversity (clip features)", g3(m.diversity)),
        ("ego speed read by the clip encoder, m/s (the world's: right column)", f2(m.ego_speed_mps)),
        ("ego speed error per future vs the world's render, m/s ↓", f2(m.ego_speed_error_mps)),
    ]
}

fn markdown(r: &EvalResults, command: &str, plots: &[(String, PathBuf)]) -> String {
    let o = &r.options;
    let g = &o.generate;
    let mut s = String::new();
    let _ = writeln!(s, "# latentdrive evaluation report\n");
    let _ = writeln!(s, "Command:\n\n```\n{command}\n```\n");
    let _ = writeln!(
        s,
        "latentdrive {}; weights `{}`; evaluators `{}`; wall time {:.0} s.\n",
        r.latentdrive_version,
        r.weights.display(),
        r.evaluators_dir.display(),
        r.wall_time_s
    );
    let _ = writeln!(s, "## Setup\n");
    let _ = writeln!(
        s,
        "- {} held-out scenes: procedural worlds with seeds {}..{} (evaluation range, ≥ 2^40; no training step \
         and no evaluator accuracy world uses them), conditions drawn from the seed, their visible cars after a \
         2 s warm-up requested as image boxes ({} boxes of at least {MIN_CAR_PX} px in all).",
        o.scenes,
        r.first_scene_seed,
        r.first_scene_seed + o.scenes as u64 - 1,
        r.requested_boxes
    );
    let _ = writeln!(
        s,
        "- Each scene: {} futures of {} s ({} frames at {} Hz), DDIM {} steps (η {}), label guidance {}{}, context \
         guidance {}, {} context frame(s), prediction guide {}{}, prediction noise {}, interpolation {}, decoder \
         {:?}, upsampling {}.",
        g.futures,
        g.seconds,
        r.frames_per_future,
        r.fps,
        g.steps,
        g.eta,
        g.label_guidance,
        g.box_guidance.map_or_else(String::new, |w| format!(" (boxes {w})")),
        g.context_guidance,
        g.context_frames,
        g.prediction_guide,
        if g.prediction_guide > 0.0 && g.prediction_guide_falloff > 0.0 {
            format!(" (falloff {})", g.prediction_guide_falloff)
        } else {
            String::new()
        },
        g.prediction_noise,
        match (g.interpolate, g.interpolation_guide) {
            (false, _) => "off".to_string(),
            (true, 0.0) => "on".to_string(),
            (true, guide) => format!("on (guide {guide}, {})", g.interpolation_guess.name()),
        } + &if g.interpolate && g.interpolation_noise > 0.0 {
            format!(" with noise {}", g.interpolation_noise)
        } else {
            String::new()
        },
        g.decoder,
        if g.upsample != UpsampleMode::Off && g.upsample_noise > 0.0 {
            format!("{:?} with noise {}", g.upsample, g.upsample_noise)
        } else {
            format!("{:?}", g.upsample)
        }
    );
    let _ = writeln!(
        s,
        "- Reference: the world's own renders of the same scenes, one behaviour seed per future, same frames and rate.\n\
         - Everything is judged at key-frame size {}×{} (upsampled frames are scaled back down).\n\
         - Fréchet distances are squared (as FID reports them), on classifier features projected on the top {} \
         (frames) and {} (clips) principal components of the reference set: a full covariance of all the \
         classifier's features needs more samples than a CPU run has. {} \
         `± s` is how much a distance moves with the draw of scenes: its standard deviation over \
         {BOOTSTRAP_RESAMPLES} resamples of the scenes with replacement (each with its generated and reference \
         frames). Settings compared on the same scenes share one draw, so where they err alike it overstates the \
         noise of their difference. KID is the kernel distance of Bińkowski et al. (2018), the unbiased squared \
         MMD with the cubic polynomial kernel, on every feature dimension (no projection) and over pairs of \
         frames or clips from different scenes only: it averages 0 for a generator that draws the world's \
         distribution, at any number of scenes (a value may fall below 0), and a scene on which the generated \
         and reference frames agree only dilutes it (by its share of the pairs): it cannot hide a mismatch \
         elsewhere, as one unusual scene can for a Fréchet distance.\n\
         - Sharpness: the mean magnitude of the luma's 4-neighbour Laplacian over every frame, against the world's \
         renders of the same scenes and futures (1 = as much fine detail; below 1 blurred, above 1 noisier): the \
         evaluators' pooled features hardly see blur, this reads it off the pixels.\n\
         - Flicker: mean absolute frame-to-frame change on the pixels that stay within {STATIC_TOLERANCE}/255 in \
         the reference video. Track continuity: detections with score ≥ {TRACK_SCORE} linked frame to frame at \
         IoU ≥ 0.5.\n\
         - Ego speed: the clip encoder's reading of the ego's speed off every window of 4 frames 0.4 s apart, \
         averaged per video; its error compares each generated future with the world's render of the same scene \
         and future (the encoder's own error on held-out clips is in the evaluators' table). Frames that do not \
         move as the ego does read slower than the world's.\n",
        r.frame_size.1,
        r.frame_size.0,
        o.components.0,
        o.components.1,
        if r.evaluators.clip_motion.is_some() {
            "Clip features are the clip encoder's (trained to read the ego's speed and sideways travel off 4 \
             key frames and whether they play forward, backward or shuffled), averaged over every window of 4 consecutive frames of a video."
        } else {
            "Clip features are the mean frame feature and the mean absolute change between consecutive frame \
             features (appearance and motion); these evaluators have no clip encoder."
        }
    );

    let e = &r.evaluators;
    let _ = writeln!(s, "## Evaluators (their own accuracy on {} held-out renders)\n", e.worlds);
    let _ = writeln!(s, "| evaluator | metric | value |\n|---|---|---|");
    let _ =
        writeln!(s, "| car detector | AP50 ({} cars ≥ {MIN_CAR_PX} px) | {} |", e.detector_cars, f3(e.detector_ap50));
    let _ = writeln!(s, "| car detector | mean IoU of matches | {} |", f3(e.detector_mean_iou));
    let _ = writeln!(s, "| car detector | recall at IoU 0.5 | {} |", f3(e.detector_recall));
    let _ = writeln!(s, "| condition classifier | day/night accuracy | {} |", f3(e.day_night));
    let _ = writeln!(s, "| condition classifier | crowdedness exact | {} |", f3(e.crowdedness_exact));
    let _ = writeln!(s, "| condition classifier | crowdedness ±1 | {} |", f3(e.crowdedness_within_one));
    let _ = writeln!(s, "| detector car count | crowdedness exact | {} |", f3(e.count_crowdedness_exact));
    let _ = writeln!(s, "| detector car count | crowdedness ±1 | {} |", f3(e.count_crowdedness_within_one));
    if let Some(m) = &e.clip_motion {
        let _ = writeln!(
            s,
            "| clip encoder | order accuracy: forward / reversed / shuffled (chance 0.333) | {:.3} |",
            m.order_accuracy
        );
        let _ = writeln!(
            s,
            "| clip encoder | ego speed MAE, m/s (constant guess) | {:.2} ({:.2}) |",
            m.speed_mae, m.speed_mae_constant
        );
        let _ = writeln!(
            s,
            "| clip encoder | sideways travel MAE, m (guessing none) | {:.2} ({:.2}) |",
            m.sideways_mae, m.sideways_mae_constant
        );
        let _ = writeln!(
            s,
            "| clip encoder | lane changes found (false alarms), {} clips | {}/{} ({}) |",
            m.samples, m.lane_changes_found, m.lane_changes, m.false_lane_changes
        );
    }
    let _ = writeln!(s);
    if let Some(c) = &e.count_crowdedness {
        let _ = writeln!(
            s,
            "Crowdedness from the car count: detections with score ≥ {TRACK_SCORE} counted per frame; level = \
             thresholds reached, thresholds {:?} fitted on {} training-range renders (mean counts per level {:?}).\n",
            c.thresholds,
            super::crowd::CALIBRATION_WORLDS,
            c.mean_counts
        );
    }
    let _ = writeln!(s, "- detector: {}\n- classifier: {}", e.detector_training, e.classifier_training);
    if let Some(t) = &e.clip_encoder_training {
        let _ = writeln!(s, "- clip encoder: {t}");
    }
    let _ = writeln!(s);

    let _ = writeln!(s, "## Generated vs the world's renders\n");
    let _ = writeln!(
        s,
        "The right column measures the world's own renders like a generator: for the layout, condition and \
         temporal metrics it is the ceiling the evaluators allow; Fréchet distances are 0 there by definition.\n"
    );
    match &r.autoencoded {
        Some(ae) => {
            let _ = writeln!(
                s,
                "The middle column is the world's renders encoded and decoded by the autoencoder (per-frame decoder): \
                 the ceiling of any generator working in its latent space.\n"
            );
            let _ = writeln!(
                s,
                "| metric | generated | world through the autoencoder | world renders |\n|---|---|---|---|"
            );
            let rows = metric_rows(&r.generated).into_iter().zip(metric_rows(ae)).zip(metric_rows(&r.reference));
            for (((name, generated), (_, autoencoded)), (_, reference)) in rows {
                let reference = if is_distance(name) { "0 (itself)".into() } else { reference };
                let _ = writeln!(s, "| {name} | {generated} | {autoencoded} | {reference} |");
            }
        }
        None => {
            let _ = writeln!(s, "| metric | generated | world renders |\n|---|---|---|");
            for ((name, generated), (_, reference)) in
                metric_rows(&r.generated).into_iter().zip(metric_rows(&r.reference))
            {
                let reference = if is_distance(name) { "0 (itself)".into() } else { reference };
                let _ = writeln!(s, "| {name} | {generated} | {reference} |");
            }
        }
    }
    let mut spreads = vec![];
    for (column, m) in [("generated", Some(&r.generated)), ("through the autoencoder", r.autoencoded.as_ref())] {
        let Some(m) = m else { continue };
        let kid = |k: &Option<KernelDistance>| (k.map(|k| k.value), k.and_then(|k| k.spread));
        let (kid_frames, kid_clips) = (kid(&m.kid_frames), kid(&m.kid_clips));
        for (what, v, spread) in [
            ("Fréchet² frames", m.frechet_frames, &m.frechet_frames_spread),
            ("Fréchet² clips", m.frechet_clips, &m.frechet_clips_spread),
            ("KID frames", kid_frames.0, &kid_frames.1),
            ("KID clips", kid_clips.0, &kid_clips.1),
        ] {
            if let (Some(v), Some(spread)) = (v, spread) {
                spreads.push(format!("- {column}, {what}: {}", spread_text(v, spread)));
            }
        }
    }
    if !spreads.is_empty() {
        let _ = writeln!(
            s,
            "\nHow the distances depend on the scenes: the 5th–95th percentile of the {BOOTSTRAP_RESAMPLES} scene \
             resamples (a squared distance near 0 spreads mostly upwards, so `± s` alone hides the skew; a distance \
             outside its resamples' range rests on a few scenes), and the scene whose leaving out moves the \
             distance most:\n\n{}",
            spreads.join("\n")
        );
    }
    let _ = writeln!(s, "\nGeneration wall time: {:.0} s.\n", r.generated.generation_s);

    if let Some(d) = &r.drift {
        let _ = writeln!(s, "## Long-horizon drift\n");
        let _ = writeln!(
            s,
            "One future of {} s per scene against the world's own rollout of the same length, Fréchet distance² of \
             frame features per {} s segment (one subspace for all segments).{}\n",
            d.seconds,
            d.segment_s,
            if d.seconds < 300.0 {
                " Kept short to fit a CPU run: the issue's 5-minute rollout is the same command with \
                 `--drift-seconds 300 --drift-segment 60`."
            } else {
                ""
            }
        );
        let _ = writeln!(
            s,
            "| segment (s) | frames (all scenes) | Fréchet² | over the scenes | KID |\n|---|---|---|---|---|"
        );
        for seg in &d.segments {
            let (v, spread) = match (seg.frechet_frames, &seg.frechet_frames_spread) {
                (Some(v), spread) => (
                    fd(seg.frechet_frames, seg.frechet_frames_sd),
                    [spread.as_ref().map(|x| spread_text(v, x)), seg.note.clone()]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join("; "),
                ),
                (None, _) => (seg.note.clone().unwrap_or_default(), String::new()),
            };
            let _ = writeln!(
                s,
                "| {:.1}–{:.1} | {} | {} | {} | {} |",
                seg.start_s,
                seg.end_s,
                seg.frames,
                v,
                spread,
                kd(seg.kid_frames)
            );
        }
        let _ = writeln!(s, "\nGeneration wall time: {:.0} s.\n", d.generation_s);
    }

    if !r.ablations.is_empty() {
        let _ = writeln!(s, "## Ablations\n");
        let _ = writeln!(s, "Same scenes, futures and reference as above; one setting changed per row.\n");
    }
    for t in &r.ablations {
        let _ = writeln!(s, "### {}\n", t.name);
        let _ = writeln!(
            s,
            "| setting | AP50 | mIoU | day/night | crowd exact | crowd ±1 | crowd (count) ±1 | FD² frames | FD² clips | \
             KID frames | KID clips | sharpness | flicker | continuity | diversity | ego speed (error), m/s | time (s) |\n\
             |---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
        );
        for row in &t.rows {
            let m = &row.metrics;
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} ({}) | {:.0} |",
                row.label,
                f3(m.layout_ap50),
                f3(m.layout_mean_iou),
                f3(m.day_night),
                f3(m.crowdedness_exact),
                f3(m.crowdedness_within_one),
                f3(m.crowdedness_count_within_one),
                fd(m.frechet_frames, m.frechet_frames_sd),
                fd(m.frechet_clips, m.frechet_clips_sd),
                kd(m.kid_frames),
                kd(m.kid_clips),
                sharpness(m),
                f3(m.flicker_static),
                f3(m.track_continuity),
                g3(m.diversity),
                f2(m.ego_speed_mps),
                f2(m.ego_speed_error_mps),
                m.generation_s
            );
        }
        let _ = writeln!(s);
        let paired: Vec<String> = t
            .rows
            .iter()
            .filter_map(|row| {
                let d = row.vs_main?;
                let part =
                    |what: &str, v: Option<(f64, f64)>| v.map(|(d, sd)| format!("{what} {}", delta_with_spread(d, sd)));
                let parts: Vec<String> = [
                    part("frames", d.frames),
                    part("clips", d.clips),
                    part("KID frames", d.kid_frames),
                    part("KID clips", d.kid_clips),
                    part("sharpness", d.sharpness),
                ]
                .into_iter()
                .flatten()
                .collect();
                (!parts.is_empty()).then(|| format!("- {}: {}", row.label, parts.join(", ")))
            })
            .collect();
        if !paired.is_empty() {
            let _ = writeln!(
                s,
                "Against the main setting (Fréchet², and KID and sharpness where named), `Δ ± s`: the row's value minus the main setting's, and the \
                 standard deviation of that difference over the scene resamples both drew alike:\n\n{}\n",
                paired.join("\n")
            );
        }
    }

    if !plots.is_empty() {
        let _ = writeln!(s, "## Plots\n");
        for (title, path) in plots {
            let name = path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            let _ = writeln!(s, "![{title}]({name})\n");
        }
        if plots.iter().any(|(t, _)| t == "Samples") {
            let _ = writeln!(
                s,
                "Samples: one row per scene (first scenes); columns: world frame 0, generated frame 0, world last \
                 frame, generated last frame (future 0).\n"
            );
        }
    }

    let mut notes: Vec<String> = r.generated.unavailable.iter().map(|n| format!("generated: {n}")).collect();
    notes.extend(r.reference.unavailable.iter().map(|n| format!("world renders: {n}")));
    for t in &r.ablations {
        for row in &t.rows {
            notes.extend(row.metrics.unavailable.iter().map(|n| format!("{} / {}: {n}", t.name, row.label)));
        }
    }
    notes.sort();
    notes.dedup();
    if !notes.is_empty() {
        let _ = writeln!(s, "## Not measurable\n");
        for n in notes {
            let _ = writeln!(s, "- {n}");
        }
        let _ = writeln!(s);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::delta_with_spread;

    #[test]
    fn a_difference_and_its_spread_share_their_decimals() {
        assert_eq!(delta_with_spread(1.56, 0.6158), "+1.56 ± 0.62");
        assert_eq!(delta_with_spread(0.07, 1.2), "+0.07 ± 1.20");
        assert_eq!(delta_with_spread(-0.0003, 0.0018), "-0.0003 ± 0.0018");
        assert_eq!(delta_with_spread(-123.45, 2.0), "-123.5 ± 2.0");
    }

    #[test]
    fn a_distance_keeps_two_digits_and_says_when_it_lies_outside_its_resamples() {
        use super::{fd, spread_text};
        use crate::eval::measure::{SceneInfluence, SceneSpread};
        assert_eq!(fd(Some(0.00106), Some(0.0109)), "0.0011 ± 0.0109");
        assert_eq!(fd(Some(21.556), Some(3.349)), "21.56 ± 3.35");
        assert_eq!((fd(Some(0.5), None), fd(None, Some(1.0))), ("0.5000".into(), "n/a".into()));
        // Small kernel distances keep two significant digits; an unbiased estimate may be below 0.
        assert_eq!(fd(Some(0.000031), Some(0.0000123)), "0.000031 ± 0.000012");
        assert_eq!(fd(Some(-0.002), Some(0.004)), "-0.0020 ± 0.0040");
        assert_eq!(fd(Some(-0.00000004), Some(0.0004)), "0.00000 ± 0.00040");
        let influence = SceneInfluence { scene: 10, seed: 1_099_512_676_362, without: 0.0104 };
        let spread = SceneSpread { resample_range: [0.0021, 0.0355], most_influential: Some(influence) };
        assert_eq!(
            spread_text(0.00106, &spread),
            "resamples 0.0021 to 0.0355, the distance below them; without scene 10 (world seed 1099512676362) 0.0104"
        );
        let inside = SceneSpread { resample_range: [12.97, 20.64], most_influential: None };
        assert_eq!(spread_text(16.2, &inside), "resamples 12.97 to 20.64");
        assert!(spread_text(25.0, &inside).ends_with("the distance above them"));
    }
}
