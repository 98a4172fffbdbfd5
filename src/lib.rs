//! latentdrive: driving-scene simulation with latent video diffusion.
//!
//! Data flows one way (see `docs/architecture.md`):
//! `scenario` → `world` (procedural renderer, labels) → `data` (clips) → `export` (files).

pub mod app;
pub mod data;
pub mod diffusion;
pub mod eval;
pub mod export;
#[cfg(feature = "gui")]
pub mod gui;
pub mod import;
pub mod model;
pub mod pipeline;
pub mod scenario;
pub mod train;
pub mod weights;
pub mod world;
