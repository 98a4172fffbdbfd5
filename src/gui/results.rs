//! The run panel: progress per stage and future while a job runs, then the futures as
//! a grid that plays in sync, with a scrubber and a per-future solo view.

use bevy_egui::egui::{self, Color32, Rect, Vec2, pos2};

use super::textures::{Textures, key};
use crate::app::{Activity, Studio};

pub fn run_panel(ui: &mut egui::Ui, studio: &mut Studio, textures: &mut Textures) {
    progress(ui, studio);
    let results = &studio.results;
    let frames = results.frames_per_future();
    if results.frame0.is_none() && frames == 0 {
        if studio.activity == Activity::Idle {
            ui.label("Compose a scene above, then Generate (F5). Frame 0 appears first, then the futures.");
        }
        return;
    }
    let fps = results.fps();
    let index = studio.playback.index(frames, fps);

    ui.horizontal(|ui| {
        let label = if studio.playback.playing { "Pause" } else { "Play" };
        if ui.button(label).on_hover_text("Play or pause all futures (Space)").clicked() {
            studio.playback.playing = !studio.playback.playing;
        }
        let mut i = index;
        let last = frames.saturating_sub(1);
        let slider =
            egui::Slider::new(&mut i, 0..=last).text(format!("frame  ({:.1} s at {fps} Hz)", index as f32 / fps));
        if ui.add(slider).on_hover_text("Scrub through the futures in sync").changed() {
            studio.playback.seek(i, fps);
            studio.playback.playing = false;
        }
        if studio.playback.solo.is_some() && ui.button("Grid").on_hover_text("Back to all futures (Esc)").clicked() {
            studio.playback.solo = None;
        }
    });

    let futures = results.futures.len();
    let shown: Vec<usize> = match studio.playback.solo {
        Some(k) if k < futures => vec![k],
        _ => (0..futures).collect(),
    };
    let avail = ui.available_size();
    let cols = if shown.len() == 1 { 1 } else { 2 };
    let cell_w = ((avail.x - 8.0 * cols as f32) / cols as f32).clamp(120.0, 1024.0);
    let cell = Vec2::new(cell_w, cell_w / 2.0);
    let mut solo_click = None;
    egui::ScrollArea::vertical().show(ui, |ui| {
        if futures == 0 {
            // Frame 0 alone, while the futures are still being sampled.
            if let Some(f0) = &results.frame0 {
                let id = textures.get(ui.ctx(), "frame0", results.id, f0);
                ui.add(egui::Image::new((id, cell)));
                ui.label("frame 0");
            }
            return;
        }
        egui::Grid::new("futures").spacing([8.0, 4.0]).show(ui, |ui| {
            for (n, &k) in shown.iter().enumerate() {
                ui.vertical(|ui| {
                    let (shown_index, image) = match results.frame(k, index) {
                        Some((i, img)) => (Some(i), Some(img)),
                        None => (None, None),
                    };
                    let (rect, response) = ui.allocate_exact_size(cell, egui::Sense::click());
                    match image {
                        Some(img) => {
                            let tex_key = key(&[results.id, k as u64, shown_index.unwrap_or(0) as u64]);
                            let id = textures.get(ui.ctx(), &format!("future{k}"), tex_key, img);
                            ui.painter().image(
                                id,
                                rect,
                                Rect::from_min_max(pos2(0.0, 0.0), pos2(1.0, 1.0)),
                                Color32::WHITE,
                            );
                        }
                        None => {
                            ui.painter().rect_filled(rect, 0.0, Color32::from_gray(25));
                        }
                    }
                    if response.on_hover_text("Click to show this future alone").clicked() {
                        solo_click = Some(k);
                    }
                    let received = results.futures[k].iter().filter(|f| f.is_some()).count();
                    ui.label(format!("future {}: {received}/{} frames", k + 1, results.futures[k].len()));
                });
                if n % cols == cols - 1 {
                    ui.end_row();
                }
            }
        });
    });
    if let Some(k) = solo_click {
        studio.playback.solo = if studio.playback.solo == Some(k) { None } else { Some(k) };
    }
}

fn progress(ui: &mut egui::Ui, studio: &mut Studio) {
    if studio.activity == Activity::Idle {
        return;
    }
    let p = &studio.progress;
    let Some(plan) = studio.results.plan.as_ref().filter(|_| p.total > 0) else {
        ui.horizontal(|ui| {
            ui.spinner();
            ui.label("loading models…");
        });
        return;
    };
    let overall = p.done as f32 / p.total as f32;
    ui.add(egui::ProgressBar::new(overall).text(format!("{} / {} steps", p.done, p.total)));
    ui.horizontal_wrapped(|ui| {
        let f0 = p.frame0 as f32 / plan.first_frame_units.max(1) as f32;
        ui.add(egui::ProgressBar::new(f0.min(1.0)).desired_width(140.0).text("frame 0"));
        for (k, (done, phase)) in p.futures.iter().enumerate() {
            let frac = *done as f32 / plan.future_units.max(1) as f32;
            let stage = phase.map_or("waiting", |ph| ph.name());
            ui.add(
                egui::ProgressBar::new(frac.min(1.0)).desired_width(180.0).text(format!("future {}: {stage}", k + 1)),
            );
        }
    });
}
