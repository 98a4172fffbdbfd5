//! Runs a driver script (`latentdrive gui --drive script.ron`) inside the real app:
//! one action per frame through `crate::app::drive`, plus what needs the window —
//! waiting, screenshots, state dumps and quitting. A failed step quits with an error.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bevy::prelude::*;
use bevy::render::view::screenshot::{Screenshot, save_to_disk};

use super::{FrameStats, StudioRes};
use crate::app::drive::{self, Step};

pub struct DriverPlugin {
    pub steps: Vec<Step>,
}

impl Plugin for DriverPlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(Driver { steps: self.steps.clone(), next: 0, wait: None })
            .init_resource::<DriverFailure>()
            .add_systems(Update, (park_pointer, step));
    }
}

/// A scripted run has no one at the mouse: the X server's pointer rests mid-screen, over
/// the camera view, whose tooltip would then cover the screenshots. It is moved to the
/// status bar's empty corner once the window exists (a few frames in).
fn park_pointer(mut frames: Local<u32>, mut windows: Query<&mut Window>) {
    *frames += 1;
    if (3..=5).contains(&*frames) {
        for mut window in &mut windows {
            let corner = Vec2::new(window.width() - 2.0, window.height() - 2.0);
            window.set_cursor_position(Some(corner));
        }
    }
}

/// Why the script failed, read by `gui::run` after the app exits.
#[derive(Resource, Default)]
pub struct DriverFailure(pub Option<String>);

#[derive(Resource)]
struct Driver {
    steps: Vec<Step>,
    next: usize,
    wait: Option<Wait>,
}

enum Wait {
    Idle { until: Instant },
    Frames(u32),
    Until(Instant),
    File { path: PathBuf, until: Instant },
}

fn step(
    mut driver: ResMut<Driver>,
    mut studio: ResMut<StudioRes>,
    stats: Res<FrameStats>,
    mut failure: ResMut<DriverFailure>,
    mut commands: Commands,
    mut exit: MessageWriter<AppExit>,
) {
    let mut fail = |msg: String, exit: &mut MessageWriter<AppExit>| {
        eprintln!("driver: {msg}");
        failure.0 = Some(msg);
        exit.write(AppExit::error());
    };
    if let Some(wait) = &mut driver.wait {
        let done = match wait {
            Wait::Idle { until } => {
                if drive::idle(&studio) {
                    true
                } else if Instant::now() > *until {
                    return fail("timed out waiting for the job".into(), &mut exit);
                } else {
                    false
                }
            }
            Wait::Frames(n) => {
                *n = n.saturating_sub(1);
                *n == 0
            }
            Wait::Until(t) => Instant::now() >= *t,
            Wait::File { path, until } => {
                if path.exists() {
                    true
                } else if Instant::now() > *until {
                    return fail(format!("screenshot {} was not written", path.display()), &mut exit);
                } else {
                    false
                }
            }
        };
        if !done {
            return;
        }
        driver.wait = None;
    }
    let Some(current) = driver.steps.get(driver.next).cloned() else { return };
    driver.next += 1;
    info!("driver step {}: {current:?}", driver.next);
    if drive::apply(&mut studio, &current) {
        return;
    }
    match current {
        Step::WaitIdle { timeout_s } => {
            driver.wait = Some(Wait::Idle { until: Instant::now() + Duration::from_secs_f32(timeout_s.max(0.0)) });
        }
        Step::Frames(n) => driver.wait = Some(Wait::Frames(n.max(1))),
        Step::Sleep(s) => driver.wait = Some(Wait::Until(Instant::now() + Duration::from_secs_f32(s.max(0.0)))),
        Step::Screenshot(path) => {
            if let Some(dir) = path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let _ = std::fs::remove_file(&path);
            commands.spawn(Screenshot::primary_window()).observe(save_to_disk(path.clone()));
            driver.wait = Some(Wait::File { path, until: Instant::now() + Duration::from_secs(60) });
        }
        Step::State(path) => {
            let json = super::state_json(&studio, &stats);
            if let Err(e) = crate::export::write_atomic(&path, json.to_string().as_bytes()) {
                fail(format!("cannot write {}: {e}", path.display()), &mut exit);
            }
        }
        Step::Quit => {
            exit.write(AppExit::Success);
        }
        _ => unreachable!("drive::apply performs every other step"),
    }
}
