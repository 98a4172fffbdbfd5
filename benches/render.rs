//! Render speed of the procedural world on one core (the renderer is single-threaded).
//!
//! `cargo bench --bench render` — prints frames/s per size and condition, render
//! only (no PNG encoding), simulating 10 Hz between frames as training streams do.

use std::time::Instant;

use latentdrive::scenario::{Conditions, TimeOfDay};
use latentdrive::world::{Renderer, World};

fn main() {
    // `cargo bench` passes `--bench`; any other argument filters nothing here.
    println!("{:<10} {:<6} {:>6} {:>10} {:>10}", "size", "time", "crowd", "frames/s", "ms/frame");
    for (w, h, frames) in [(256u32, 128u32, 400usize), (1024, 512, 40)] {
        for tod in [TimeOfDay::Day, TimeOfDay::Night] {
            for crowd in [0u8, 3] {
                let mut total = 0.0;
                let mut n = 0;
                for seed in 0..4u64 {
                    let mut world =
                        World::new(seed, Conditions { time_of_day: tod, crowdedness: crowd }, &[]).expect("world");
                    let mut r = Renderer::new(w, h);
                    let _ = r.render(&world, 0); // warm-up
                    let t0 = Instant::now();
                    for i in 0..frames / 4 {
                        world.advance_to(i as f32 * 0.1);
                        std::hint::black_box(r.render(&world, i as u32));
                    }
                    total += t0.elapsed().as_secs_f64();
                    n += frames / 4;
                }
                let fps = n as f64 / total;
                println!(
                    "{:<10} {:<6} {:>6} {:>10.0} {:>10.2}",
                    format!("{h}x{w}"),
                    format!("{tod:?}"),
                    crowd,
                    fps,
                    1000.0 / fps
                );
            }
        }
    }
}
