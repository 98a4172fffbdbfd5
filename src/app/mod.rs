//! The desktop app's model, free of any GUI toolkit: scene editing ([`Composer`]), the
//! world's layout of a scene ([`SceneLayout`]), background jobs ([`Job`]), and the
//! whole app state ([`Studio`]). `crate::gui` (feature `gui`) draws it with bevy and
//! egui; tests drive it directly.

pub mod composer;
pub mod drive;
pub mod job;
pub mod layout;
pub mod recent;
pub mod studio;

pub use composer::{Composer, Pointer, View};
pub use job::{Device, Job, JobMsg, NO_CUDA};
pub use layout::SceneLayout;
pub use recent::RecentFiles;
pub use studio::{Activity, Playback, Results, Settings, Studio};
