//! Driver scripts: a RON list of user actions the app performs one after another, for
//! headless tests and screenshots (`latentdrive gui --drive script.ron`). Each action
//! goes through the same `Studio`/`Composer` calls as the mouse and the widgets.
//!
//! ```ron
//! [
//!     Open("scenarios/quickstart.ron"),
//!     Drag(view: Camera, from: (0.30, 0.62), to: (0.42, 0.80)),
//!     Set(futures: Some(1), seconds: Some(1.2), steps: Some(2)),
//!     Generate,
//!     WaitIdle(timeout_s: 300.0),
//!     Screenshot("out/app.png"),
//!     State("out/state.json"),
//!     Quit,
//! ]
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::composer::{Pointer, View};
use super::studio::{Activity, Studio};

/// One scripted action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Step {
    /// Open a scenario file (as File ▸ Open).
    Open(PathBuf),
    /// Press at `from`, drag through the midpoint, release at `to`, in `view`'s
    /// coordinates (normalised image coordinates, or BEV metres `(lateral, ahead)`).
    Drag {
        view: View,
        from: (f32, f32),
        to: (f32, f32),
    },
    /// Change side-panel settings; unset fields stay as they are.
    Set(SetFields),
    Undo,
    Redo,
    DeleteSelected,
    Save(PathBuf),
    Generate,
    Cancel,
    /// Wait until no job runs, failing after `timeout_s`.
    WaitIdle {
        timeout_s: f32,
    },
    /// Let the app draw this many frames.
    Frames(u32),
    /// Let the app run for this many seconds (e.g. to catch a generation mid-way).
    Sleep(f32),
    Replay(PathBuf),
    Export(PathBuf),
    /// Save a screenshot of the window (PNG).
    Screenshot(PathBuf),
    /// Write the app's state as JSON (see `gui::state_json`).
    State(PathBuf),
    Quit,
}

/// Side-panel fields a script can set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SetFields {
    pub futures: Option<u32>,
    pub seconds: Option<f32>,
    pub steps: Option<u32>,
    pub seed: Option<u64>,
    pub night: Option<bool>,
    pub crowdedness: Option<u8>,
    pub upsample: Option<bool>,
    pub interpolate: Option<bool>,
    pub weights: Option<PathBuf>,
    pub runs_dir: Option<PathBuf>,
    pub solo: Option<Option<usize>>,
}

/// Reads a driver script.
pub fn load(path: &Path) -> Result<Vec<Step>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(&text).map_err(|e| format!("{}:{e}", path.display()))
}

/// Parses a script; `Set(futures: Some(2))` needs no extra parentheses.
pub fn parse(text: &str) -> Result<Vec<Step>, ron::error::SpannedError> {
    ron::Options::default().with_default_extension(ron::extensions::Extensions::UNWRAP_VARIANT_NEWTYPES).from_str(text)
}

/// Performs the steps that need no window; returns `false` for the ones the GUI
/// performs itself (waiting, frames, screenshots, state, quit).
pub fn apply(studio: &mut Studio, step: &Step) -> bool {
    match step {
        Step::Open(p) => studio.open(p),
        Step::Drag { view, from, to } => {
            let (from, to) = ([from.0, from.1], [to.0, to.1]);
            let mid = [0.5 * (from[0] + to[0]), 0.5 * (from[1] + to[1])];
            for event in [Pointer::Press(from), Pointer::Drag(mid), Pointer::Release(to)] {
                studio.refresh_layout();
                studio.composer.pointer(*view, event, &studio.layout);
            }
            studio.refresh_layout();
        }
        Step::Set(f) => {
            let s = &mut studio.composer.scenario;
            if let Some(v) = f.futures {
                s.rollout.futures = v;
            }
            if let Some(v) = f.seconds {
                s.rollout.seconds = v;
            }
            if let Some(v) = f.steps {
                s.sampling.steps = v;
            }
            if let Some(v) = f.seed {
                s.seed = v;
            }
            if let Some(night) = f.night {
                s.conditions.time_of_day =
                    if night { crate::scenario::TimeOfDay::Night } else { crate::scenario::TimeOfDay::Day };
            }
            if let Some(v) = f.crowdedness {
                s.conditions.crowdedness = v;
            }
            studio.composer.settle();
            let st = &mut studio.settings;
            if let Some(v) = f.upsample {
                st.upsample = v;
            }
            if let Some(v) = f.interpolate {
                st.interpolate = v;
            }
            if let Some(v) = &f.weights {
                st.weights = Some(v.clone());
            }
            if let Some(v) = &f.runs_dir {
                st.runs_dir = v.clone();
            }
            if let Some(v) = f.solo {
                studio.playback.solo = v;
            }
        }
        Step::Undo => studio.composer.undo(),
        Step::Redo => studio.composer.redo(),
        Step::DeleteSelected => studio.composer.delete_selected(),
        Step::Save(p) => studio.save(p),
        Step::Generate => studio.generate(),
        Step::Cancel => studio.cancel(),
        Step::Replay(p) => studio.replay(p),
        Step::Export(p) => studio.export(p),
        Step::WaitIdle { .. }
        | Step::Frames(_)
        | Step::Sleep(_)
        | Step::Screenshot(_)
        | Step::State(_)
        | Step::Quit => return false,
    }
    true
}

/// Whether a `WaitIdle` is over.
pub fn idle(studio: &Studio) -> bool {
    studio.activity == Activity::Idle
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_parses() {
        let doc = include_str!("drive.rs");
        let start = doc.find("//! [").unwrap();
        let end = doc.find("//! ]").unwrap() + 5;
        let text: String = doc[start..end].lines().map(|l| l.trim_start_matches("//!")).collect::<Vec<_>>().join("\n");
        let steps = parse(&text).unwrap();
        assert_eq!(steps.len(), 8);
        assert_eq!(steps[3], Step::Generate);
    }
}
