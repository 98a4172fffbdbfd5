//! All egui drawing: the top bar (files, undo, generate), the scene panel on the left,
//! the two editing views, the run panel and the status bar; keyboard shortcuts.

use std::path::PathBuf;

use bevy::prelude::*;
use bevy_egui::egui::{self, Key, KeyboardShortcut, LayerId, Modifiers, Ui, UiBuilder};
use bevy_egui::{EguiContexts, EguiPrimaryContextPass};

use super::textures::Textures;
use super::{StudioRes, canvas, results};
use crate::app::{Activity, Device, Studio};
use crate::scenario::{InterpolationGuess, MAX_CROWDEDNESS, Tier, TimeOfDay};

pub struct UiPlugin;

impl Plugin for UiPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<Textures>().init_resource::<Prompt>().add_systems(EguiPrimaryContextPass, draw);
    }
}

/// A path the user is typing for a file action.
#[derive(Resource, Default)]
pub struct Prompt {
    action: Option<PathAction>,
    text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PathAction {
    Open,
    SaveAs,
    Export,
    Replay,
    ShowRun,
}

impl PathAction {
    fn title(self) -> &'static str {
        match self {
            PathAction::Open => "Open scenario (RON)",
            PathAction::SaveAs => "Save scenario as (RON)",
            PathAction::Export => "Export the run to a new folder",
            PathAction::Replay => "Replay a run folder (bit-identical check)",
            PathAction::ShowRun => "Show a run folder",
        }
    }

    fn perform(self, studio: &mut Studio, path: PathBuf) {
        match self {
            PathAction::Open => studio.open(&path),
            PathAction::SaveAs => studio.save(&path),
            PathAction::Export => studio.export(&path),
            PathAction::Replay => studio.replay(&path),
            PathAction::ShowRun => studio.show_run(&path),
        }
    }
}

fn draw(
    mut contexts: EguiContexts,
    mut studio: ResMut<StudioRes>,
    mut textures: ResMut<Textures>,
    mut prompt: ResMut<Prompt>,
) -> Result {
    let ctx = contexts.ctx_mut()?.clone();
    let studio = &mut studio.0;
    shortcuts(&ctx, studio, &mut prompt);
    let mut root = Ui::new(
        ctx.clone(),
        "root".into(),
        UiBuilder::new().layer_id(LayerId::background()).max_rect(ctx.viewport_rect()),
    );

    egui::Panel::top("top").show(&mut root, |ui| top_bar(ui, studio, &mut prompt));
    egui::Panel::bottom("status").show(&mut root, |ui| status_bar(ui, studio));
    egui::Panel::left("scene").default_size(300.0).resizable(true).show(&mut root, |ui| {
        egui::ScrollArea::vertical().show(ui, |ui| scene_panel(ui, studio));
    });
    egui::CentralPanel::default_margins().show(&mut root, |ui| {
        let avail = ui.available_width();
        let bev_w = (avail * 0.22).clamp(120.0, 220.0);
        let cam_w = (avail - bev_w - 16.0).min(2.0 * ui.available_height() * 0.5).max(200.0);
        ui.horizontal(|ui| {
            ui.vertical(|ui| {
                ui.label("Camera view");
                canvas::camera_view(ui, studio, &mut textures, cam_w);
            });
            ui.vertical(|ui| {
                ui.label("Top-down");
                canvas::bev_view(ui, studio, egui::Vec2::new(bev_w, cam_w / 2.0));
            });
        });
        ui.separator();
        results::run_panel(ui, studio, &mut textures);
    });
    path_prompt(&ctx, studio, &mut prompt);

    // Widgets edit the scenario directly; commit them as undo steps once the pointer is up.
    if !ctx.input(|i| i.pointer.any_down()) {
        studio.composer.settle();
    }
    studio.refresh_layout();
    Ok(())
}

fn shortcuts(ctx: &egui::Context, studio: &mut Studio, prompt: &mut Prompt) {
    // Text fields keep their keys.
    if ctx.egui_wants_keyboard_input() {
        return;
    }
    let cmd = |key| KeyboardShortcut::new(Modifiers::COMMAND, key);
    let pressed = |s: KeyboardShortcut| ctx.input_mut(|i| i.consume_shortcut(&s));
    if pressed(KeyboardShortcut::new(Modifiers::COMMAND | Modifiers::SHIFT, Key::Z)) || pressed(cmd(Key::Y)) {
        studio.composer.redo();
    } else if pressed(cmd(Key::Z)) {
        studio.composer.undo();
    }
    if pressed(cmd(Key::O)) {
        open_prompt(prompt, PathAction::Open, String::new());
    }
    if pressed(cmd(Key::S)) {
        match studio.composer.path.clone() {
            Some(p) => studio.save(&p),
            None => open_prompt(prompt, PathAction::SaveAs, format!("{}.ron", studio.composer.scenario.name)),
        }
    }
    if pressed(cmd(Key::E)) {
        open_prompt(prompt, PathAction::Export, String::new());
    }
    let key = |k| ctx.input_mut(|i| i.consume_key(Modifiers::NONE, k));
    if key(Key::F5) || pressed(cmd(Key::Enter)) {
        studio.generate();
    }
    if key(Key::Escape) {
        if studio.activity != Activity::Idle {
            studio.cancel();
        } else {
            studio.playback.solo = None;
        }
    }
    if key(Key::Delete) || key(Key::Backspace) {
        studio.composer.delete_selected();
    }
    if key(Key::Space) {
        studio.playback.playing = !studio.playback.playing;
    }
}

fn open_prompt(prompt: &mut Prompt, action: PathAction, text: String) {
    prompt.action = Some(action);
    prompt.text = text;
}

fn top_bar(ui: &mut Ui, studio: &mut Studio, prompt: &mut Prompt) {
    ui.horizontal_wrapped(|ui| {
        ui.strong("latentdrive");
        ui.separator();
        if ui.button("New").on_hover_text("A new scene (unsaved edits are discarded)").clicked() {
            studio.composer.open(crate::app::Composer::default_scenario(), None);
        }
        if ui.button("Open…").on_hover_text("Open a scenario file (Ctrl+O)").clicked() {
            open_prompt(prompt, PathAction::Open, String::new());
        }
        ui.menu_button("Recent", |ui| {
            if studio.recent.paths.is_empty() {
                ui.label("no recent files");
            }
            for p in studio.recent.paths.clone() {
                if ui.button(p.display().to_string()).clicked() {
                    studio.open(&p);
                    ui.close();
                }
            }
        });
        if ui.button("Save").on_hover_text("Save the scenario (Ctrl+S)").clicked() {
            match studio.composer.path.clone() {
                Some(p) => studio.save(&p),
                None => open_prompt(prompt, PathAction::SaveAs, format!("{}.ron", studio.composer.scenario.name)),
            }
        }
        if ui.button("Save as…").clicked() {
            let current = studio.composer.path.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
            open_prompt(prompt, PathAction::SaveAs, current);
        }
        ui.separator();
        if ui.add_enabled(studio.composer.can_undo(), egui::Button::new("Undo")).on_hover_text("Ctrl+Z").clicked() {
            studio.composer.undo();
        }
        if ui.add_enabled(studio.composer.can_redo(), egui::Button::new("Redo")).on_hover_text("Ctrl+Y").clicked() {
            studio.composer.redo();
        }
        ui.separator();
        match studio.activity {
            Activity::Idle => {
                let button = egui::Button::new(egui::RichText::new("▶ Generate").strong());
                if ui.add(button).on_hover_text("Generate frame 0 and the futures in the background (F5)").clicked() {
                    studio.generate();
                }
            }
            _ => {
                if ui.button("Cancel").on_hover_text("Stop at the next sampling step (Esc)").clicked() {
                    studio.cancel();
                }
            }
        }
        let idle = studio.activity == Activity::Idle;
        if ui
            .add_enabled(idle && studio.results.run.is_some(), egui::Button::new("Export…"))
            .on_hover_text("Copy the run folder (frames, previews, labels, metadata) to a new folder (Ctrl+E)")
            .clicked()
        {
            open_prompt(prompt, PathAction::Export, String::new());
        }
        if ui
            .add_enabled(idle, egui::Button::new("Replay…"))
            .on_hover_text("Regenerate a run folder from its metadata and check every file is bit-identical")
            .clicked()
        {
            let last = studio.results.run.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
            open_prompt(prompt, PathAction::Replay, last);
        }
        if ui
            .add_enabled(idle, egui::Button::new("Show run…"))
            .on_hover_text("Load a finished run folder into the player")
            .clicked()
        {
            open_prompt(prompt, PathAction::ShowRun, String::new());
        }
    });
}

fn status_bar(ui: &mut Ui, studio: &Studio) {
    ui.horizontal(|ui| {
        let file = studio.composer.path.as_ref().map_or("(unsaved scene)".to_string(), |p| p.display().to_string());
        let mark = if studio.composer.unsaved() { " •" } else { "" };
        ui.monospace(format!("{file}{mark}"));
        ui.separator();
        match &studio.error {
            Some(e) => ui.colored_label(egui::Color32::LIGHT_RED, e),
            None => ui.label(&studio.status),
        };
        if let Some(m) = &studio.composer.message {
            ui.separator();
            ui.colored_label(egui::Color32::YELLOW, m);
        }
    });
}

fn scene_panel(ui: &mut Ui, studio: &mut Studio) {
    let idle = studio.activity == Activity::Idle;
    let s = &mut studio.composer.scenario;
    ui.heading("Scene");
    ui.horizontal(|ui| {
        ui.label("Name");
        ui.text_edit_singleline(&mut s.name).on_hover_text("Names the run folder: letters, digits, _ - .");
    });
    ui.horizontal(|ui| {
        ui.label("Time of day");
        ui.selectable_value(&mut s.conditions.time_of_day, TimeOfDay::Day, "Day");
        ui.selectable_value(&mut s.conditions.time_of_day, TimeOfDay::Night, "Night");
    });
    ui.add(egui::Slider::new(&mut s.conditions.crowdedness, 0..=MAX_CROWDEDNESS).text("crowdedness"))
        .on_hover_text("Traffic density: 0 empty … 3 dense");
    ui.horizontal(|ui| {
        ui.label("Seed");
        ui.add(egui::DragValue::new(&mut s.seed)).on_hover_text("Seeds the road layout and every sample");
        if ui.button("Random").on_hover_text("A random seed").clicked() {
            s.seed = random_seed();
        }
    });

    ui.separator();
    ui.heading("Rollout");
    ui.add(egui::Slider::new(&mut s.rollout.futures, 1..=16).text("futures"))
        .on_hover_text("Independent futures from the same frame 0");
    ui.add(egui::Slider::new(&mut s.rollout.seconds, 0.4..=60.0).text("seconds"))
        .on_hover_text("Length of each future");
    ui.add(egui::Slider::new(&mut s.rollout.context_frames, 0..=2).text("context frames"))
        .on_hover_text("Frames each prediction window takes from the previous one (0 is treated as 1)");

    ui.separator();
    ui.heading("Sampling");
    ui.add(egui::Slider::new(&mut s.sampling.steps, 1..=200).text("DDIM steps"));
    ui.add(egui::Slider::new(&mut s.sampling.label_guidance, 0.0..=8.0).text("label guidance"))
        .on_hover_text("Classifier-free guidance on the conditions, and on the boxes unless guided apart (1 = off)");
    ui.horizontal(|ui| {
        let mut apart = s.sampling.box_guidance.is_some();
        if ui.checkbox(&mut apart, "").on_hover_text("Guide the boxes apart from the conditions").changed() {
            s.sampling.box_guidance = apart.then_some(s.sampling.label_guidance);
        }
        let mut w = s.sampling.box_guidance.unwrap_or(s.sampling.label_guidance);
        let slider = ui.add_enabled(apart, egui::Slider::new(&mut w, 0.0..=8.0).text("box guidance"));
        if slider.on_hover_text("Guidance on the car boxes of frame 0 apart from the conditions (1 = off; on the shipped tiny weights, more than the label guidance finds fewer cars)").changed() {
            s.sampling.box_guidance = Some(w);
        }
    });
    ui.add(egui::Slider::new(&mut s.sampling.context_guidance, 0.0..=8.0).text("context guidance"))
        .on_hover_text("Guidance on the context frames (1 = off)");
    ui.add(egui::Slider::new(&mut s.sampling.eta, 0.0..=1.0).text("DDIM η"));
    ui.add(egui::Slider::new(&mut s.sampling.interpolation_guide, 0.0..=1.0).text("interpolation guide")).on_hover_text(
        "Share of the interpolator's steps that start each in-between frame from a guess made from its keys (0 = the paper's sampling)",
    );
    ui.horizontal(|ui| {
        ui.label("interpolation guess").on_hover_text("What the interpolation guide starts the in-between frames from");
        ui.selectable_value(&mut s.sampling.interpolation_guess, InterpolationGuess::Blend, "straight line")
            .on_hover_text("The straight line between the two keys' latents (the default)");
        ui.selectable_value(&mut s.sampling.interpolation_guess, InterpolationGuess::Ego, "ego travel")
            .on_hover_text("The two keys moved towards each other by the ego car's travel, then blended");
    });
    ui.add(egui::Slider::new(&mut s.sampling.prediction_guide, 0.0..=1.0).text("prediction guide")).on_hover_text(
        "Share of the prediction model's steps that start each new frame from the last context frame moved on by the ego's travel (0 = the paper's sampling)",
    );
    let max_falloff = crate::scenario::MAX_PREDICTION_GUIDE_FALLOFF;
    ui.add(egui::Slider::new(&mut s.sampling.prediction_guide_falloff, 0.0..=max_falloff).text("guide falloff"))
        .on_hover_text(
            "How much shorter the prediction guide holds the cells its guess magnifies from the last frame (its blur): each is held for min(1, J)^falloff of the guide's steps, J the area it is pulled from (0 = every cell for all of them; 0.25, the default, keeps long rollouts from drifting on the tiny weights)",
        );
    ui.add(egui::Slider::new(&mut s.sampling.prediction_noise, 0.0..=1.0).text("prediction noise")).on_hover_text(
        "Share of each new frame's start noise moved on from the last context frame's by the ego's travel, so that drawn details move with the road (0 = the paper's sampling; on the tiny weights 0.9 makes key frames steadier, at 10 Hz the difference is mixed)",
    );
    ui.add(egui::Slider::new(&mut s.sampling.interpolation_noise, 0.0..=1.0).text("interpolation noise")).on_hover_text(
        "Share of each in-between frame's start noise moved on from the key's before it by the ego's travel, so that interpolated details move with the road (0 = each frame's own; 0.9, the default, made 10 Hz video steadier on the tiny weights)",
    );

    ui.separator();
    ui.heading("Model");
    ui.horizontal(|ui| {
        ui.label("Tier");
        ui.selectable_value(&mut s.model.tier, Tier::Tiny, "tiny");
        ui.selectable_value(&mut s.model.tier, Tier::Base, "base");
    });
    let st = &mut studio.settings;
    ui.horizontal(|ui| {
        ui.label("Device");
        ui.selectable_value(&mut st.device, Device::Cpu, "CPU");
        ui.add_enabled_ui(Device::Cuda.available(), |ui| {
            ui.selectable_value(&mut st.device, Device::Cuda, "CUDA");
        })
        .response
        .on_disabled_hover_text("This build has no CUDA: build with --features cuda");
    });
    let mut weights = st.weights.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
    ui.horizontal(|ui| {
        ui.label("Weights");
        if ui.text_edit_singleline(&mut weights).on_hover_text("Empty: weights/<tier>").changed() {
            st.weights = (!weights.trim().is_empty()).then(|| PathBuf::from(weights.trim()));
        }
    });
    ui.checkbox(&mut st.interpolate, "interpolate ×4 (10 Hz)");
    ui.checkbox(&mut st.upsample, "upsample ×4 (512×1024)").on_hover_text("Off: a quick key-frame-size preview");
    ui.add_enabled(st.upsample, egui::Slider::new(&mut st.upsample_steps, 1..=50).text("upsampler steps"));
    ui.add_enabled(
        st.upsample,
        egui::Slider::new(&mut st.upsample_level, 0..=crate::pipeline::UPSAMPLE_LEVELS - 1)
            .text("upsampler noise level"),
    )
    .on_hover_text(
        "Noise added to the decoded frames before the upsampler samples: higher adds more detail of its own and \
         departs further from the frames (README, Generate step 4)",
    );
    ui.add_enabled(st.upsample, egui::Slider::new(&mut st.upsample_noise, 0.0..=1.0).text("upsampler moved noise"))
        .on_hover_text(
            "Share of each upsampled frame's noises (start and augmentation) moved on from the frame before it by the \
             ego's travel, so that the details the upsampler draws move with the road (0 = each frame's own; README, \
             Generate, \"Upsample noise\")",
        );
    let mut runs = st.runs_dir.display().to_string();
    ui.horizontal(|ui| {
        ui.label("Runs in");
        if ui.text_edit_singleline(&mut runs).changed() && !runs.trim().is_empty() {
            st.runs_dir = PathBuf::from(runs.trim());
        }
    });

    ui.separator();
    ui.heading("Cars");
    ui.checkbox(&mut studio.composer.snap, "snap boxes to the road's perspective")
        .on_hover_text("New and edited camera-view boxes take the size of a car at their distance");
    let count = studio.composer.scenario.boxes.len();
    ui.label(format!("{count} requested car(s)"));
    if let Some(i) = studio.composer.selected.filter(|&i| i < count) {
        let spec = &studio.composer.scenario.boxes[i];
        let text = match (spec.road, spec.image) {
            (Some(r), _) => format!("car {i}: lane {}, {:.1} m ahead", r.lane, r.ahead_m),
            (None, Some(b)) => format!("car {i}: image box ({:.2}, {:.2})–({:.2}, {:.2})", b.x1, b.y1, b.x2, b.y2),
            _ => format!("car {i}"),
        };
        ui.label(text);
        if ui.add_enabled(idle, egui::Button::new("Delete car")).on_hover_text("Del").clicked() {
            studio.composer.delete_selected();
        }
    } else {
        ui.weak("Select a car in either view to edit it.");
    }
}

fn path_prompt(ctx: &egui::Context, studio: &mut Studio, prompt: &mut Prompt) {
    let Some(action) = prompt.action else { return };
    let mut open = true;
    let mut chosen = None;
    egui::Window::new(action.title()).collapsible(false).resizable(false).open(&mut open).show(ctx, |ui| {
        let field = ui.add(egui::TextEdit::singleline(&mut prompt.text).desired_width(420.0).hint_text("path"));
        field.request_focus();
        if action == PathAction::Open {
            // The example scenarios, one click away.
            let mut examples: Vec<PathBuf> = std::fs::read_dir("scenarios")
                .map(|d| d.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "ron")).collect())
                .unwrap_or_default();
            examples.sort();
            ui.horizontal_wrapped(|ui| {
                for p in examples {
                    if ui.small_button(p.display().to_string()).clicked() {
                        prompt.text = p.display().to_string();
                    }
                }
            });
        }
        ui.horizontal(|ui| {
            let enter = field.lost_focus() && ui.input(|i| i.key_pressed(Key::Enter));
            if (ui.button("OK").clicked() || enter) && !prompt.text.trim().is_empty() {
                chosen = Some(PathBuf::from(prompt.text.trim()));
            }
            if ui.button("Cancel").clicked() {
                prompt.action = None;
            }
        });
    });
    if let Some(path) = chosen {
        prompt.action = None;
        action.perform(studio, path);
    }
    if !open {
        prompt.action = None;
    }
}

fn random_seed() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now()) % 1_000_000
}
