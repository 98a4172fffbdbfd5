//! Renders the contact sheet in `docs/world_contact_sheet.png`: rows day/night ×
//! empty/dense, columns different seeds, 128×256 frames as the models see them.
//!
//! `cargo run --example contact_sheet -- docs/world_contact_sheet.png`

use anyhow::{Context, Result};
use image::{GenericImage, RgbImage};

use latentdrive::scenario::{Conditions, TimeOfDay};
use latentdrive::world::{Renderer, World};

fn main() -> Result<()> {
    let out = std::env::args().nth(1).unwrap_or_else(|| "docs/world_contact_sheet.png".into());
    let (w, h, cols) = (256u32, 128u32, 4u32);
    let rows = [(TimeOfDay::Day, 0u8), (TimeOfDay::Day, 3), (TimeOfDay::Night, 0), (TimeOfDay::Night, 3)];
    let gap = 4;
    let mut sheet =
        RgbImage::from_pixel(cols * (w + gap) - gap, rows.len() as u32 * (h + gap) - gap, image::Rgb([255, 255, 255]));
    let mut renderer = Renderer::new(w, h);
    for (r, &(time_of_day, crowdedness)) in rows.iter().enumerate() {
        for c in 0..cols {
            let mut world = World::new(100 + c as u64, Conditions { time_of_day, crowdedness }, &[])?;
            world.advance_to(3.0);
            let (img, _) = renderer.render(&world, 0);
            sheet.copy_from(&img, c * (w + gap), r as u32 * (h + gap))?;
        }
    }
    sheet.save(&out).with_context(|| format!("writing {out}"))?;
    println!("wrote {out}: rows day-empty, day-dense, night-empty, night-dense; columns seeds 100..{}", 100 + cols - 1);
    Ok(())
}
