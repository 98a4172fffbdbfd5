//! egui textures for images that change now and then (the reference render, frames):
//! one texture per slot, re-uploaded only when the slot's content key changes.

use std::collections::HashMap;

use bevy::prelude::Resource;
use bevy_egui::egui;
use image::RgbImage;

#[derive(Resource, Default)]
pub struct Textures {
    slots: HashMap<String, (u64, egui::TextureHandle)>,
}

impl Textures {
    /// The texture of `slot` showing `image`, whose identity is `key`.
    pub fn get(&mut self, ctx: &egui::Context, slot: &str, key: u64, image: &RgbImage) -> egui::TextureId {
        let color = || {
            let (w, h) = image.dimensions();
            egui::ColorImage::from_rgb([w as usize, h as usize], image.as_raw())
        };
        match self.slots.get_mut(slot) {
            Some((k, handle)) => {
                if *k != key {
                    handle.set(color(), egui::TextureOptions::LINEAR);
                    *k = key;
                }
                handle.id()
            }
            None => {
                let handle = ctx.load_texture(slot, color(), egui::TextureOptions::LINEAR);
                let id = handle.id();
                self.slots.insert(slot.to_string(), (key, handle));
                id
            }
        }
    }
}

/// A content key from parts.
pub fn key(parts: &[u64]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    parts.hash(&mut h);
    h.finish()
}
