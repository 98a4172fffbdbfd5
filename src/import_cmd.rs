//! `latentdrive import`: real driving data into a `synth` dataset folder.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;
use clap::{Args, ValueEnum};

use latentdrive::import::{self, ImportError, ImportFormat, ImportOptions};
use latentdrive::scenario::{MAX_CROWDEDNESS, TimeOfDay};

use crate::{InputError, OutputArgs, parse_size, prepare_out, progress_bar};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FormatArg {
    /// KITTI tracking: SRC holds label_02/<seq>.txt and image_02/<seq>/<frame>.png.
    KittiTracking,
    /// KITTI object detection: SRC holds label_2/<id>.txt and image_2/<id>.png (single images).
    KittiObject,
    /// BDD100K / Scalabel JSON: SRC is a label file or a folder of them; --images gives the images.
    Bdd100k,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TimeOfDayArg {
    Day,
    Night,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The source's label format.
    #[arg(value_enum)]
    format: FormatArg,
    /// The source: a KITTI folder (such as `training/`), or BDD100K label JSON (a file or a folder).
    src: PathBuf,
    #[command(flatten)]
    out: OutputArgs,
    /// bdd100k: the image root; a frame's image is DIR/<videoName>/<name> or DIR/<name>.
    #[arg(long)]
    images: Option<PathBuf>,
    /// Output frame size WIDTHxHEIGHT: each frame is centre-cropped to its aspect and scaled
    /// down to it (never up). Training needs 2:1 (256x128 for the latent stages, 1024x512 for
    /// the upsampler).
    #[arg(long, default_value = "512x256", value_parser = parse_size)]
    size: (u32, u32),
    /// Consecutive source frames per clip; the rest of a sequence is left out [default: 32
    /// for kitti-tracking and bdd100k, 1 for kitti-object].
    #[arg(long)]
    frames: Option<usize>,
    /// The source's frame rate in Hz [default: 10 for KITTI, 5 for BDD100K's tracking labels].
    #[arg(long)]
    fps: Option<f32>,
    /// Source classes imported as cars, comma-separated, any case (e.g. `car,van`).
    #[arg(long, value_delimiter = ',', default_value = "car")]
    cars: Vec<String>,
    /// Time of day of clips whose labels give none (KITTI never does; BDD100K's `timeofday`
    /// wins where it is `daytime`, `dawn/dusk` or `night`).
    #[arg(long, value_enum, default_value = "day")]
    time_of_day: TimeOfDayArg,
    /// Every clip's crowdedness, 0..=3 [default: from the clip's mean car count, with the
    /// thresholds the world's own levels give].
    #[arg(long)]
    crowdedness: Option<u8>,
    /// Stop after this many clips.
    #[arg(long)]
    max_clips: Option<usize>,
}

pub fn import(args: ImportArgs) -> Result<ExitCode> {
    let format = match args.format {
        FormatArg::KittiTracking => ImportFormat::KittiTracking,
        FormatArg::KittiObject => ImportFormat::KittiObject,
        FormatArg::Bdd100k => ImportFormat::Bdd100k,
    };
    let opts = ImportOptions {
        format,
        images: args.images,
        frames: args.frames.unwrap_or(format.default_frames()),
        fps: args.fps.unwrap_or(format.default_fps()),
        width: args.size.0,
        height: args.size.1,
        car_classes: args.cars.iter().map(|c| c.trim().to_string()).filter(|c| !c.is_empty()).collect(),
        time_of_day: match args.time_of_day {
            TimeOfDayArg::Day => TimeOfDay::Day,
            TimeOfDayArg::Night => TimeOfDay::Night,
        },
        crowdedness: args.crowdedness,
        max_clips: args.max_clips,
    };
    // Refused before the output folder is made.
    opts.check().map_err(|e| InputError(e.to_string()))?;
    prepare_out(&args.out)?;
    let t0 = Instant::now();
    let mut bar = None;
    let result = import::import_dataset(&args.src, &args.out.out, &opts, |p| {
        let bar = bar.get_or_insert_with(|| progress_bar(p.files_total as u64, "import"));
        bar.set_position(p.files_done as u64);
        bar.set_message(format!("{} clips", p.clips));
    });
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let summary = match result {
        Ok(summary) => summary,
        Err(e @ ImportError::Source(_)) => return Err(InputError(e.to_string()).into()),
        Err(e) => return Err(e.into()),
    };
    let index = &summary.index;
    let night = index.clips.iter().filter(|c| c.time_of_day == TimeOfDay::Night).count();
    let mut levels = [0usize; MAX_CROWDEDNESS as usize + 1];
    for clip in &index.clips {
        levels[clip.crowdedness.min(MAX_CROWDEDNESS) as usize] += 1;
    }
    println!(
        "imported {} clips × {} frames ({} cars; {} outside the crop left out) from {} sequences of {} into {} \
         in {:.1} s\n  night clips: {night}; crowdedness 0/1/2/3: {}",
        index.clips.len(),
        index.frames_per_clip,
        summary.cars,
        summary.cars_outside_crop,
        summary.sequences,
        args.src.display(),
        args.out.out.display(),
        t0.elapsed().as_secs_f64(),
        levels.map(|n| n.to_string()).join("/")
    );
    Ok(ExitCode::SUCCESS)
}
