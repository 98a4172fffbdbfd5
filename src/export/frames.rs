//! Frame image files: the naming of per-frame PNGs and animated GIF previews.

use std::io::Write;
use std::path::Path;

use image::codecs::gif::{GifEncoder, Repeat};
use image::{Delay, DynamicImage, Frame, RgbImage};

use super::atomic::write_atomic_with;
use super::error::{AtPath, ExportError};

/// GIF colour quantisation speed (NeuQuant sampling, 1..=30): 1 is the slowest and
/// best, 30 the fastest. 10 keeps previews clean at a fraction of the time of 1.
const GIF_QUANTIZE_SPEED: i32 = 10;

/// GIF frame delays are in hundredths of a second; browsers slow delays below 2 of
/// them (50 fps) down to 10, so faster previews play slower, not faster.
const GIF_MIN_RELIABLE_DELAY_CS: f64 = 2.0;

/// The file name of frame `index`: six zero-padded digits and `.png`, as in KITTI
/// (`000012.png`), so names sort in frame order up to frame 999 999.
pub fn frame_file_name(index: u32) -> String {
    format!("{index:06}.png")
}

/// Writes `frames` as a GIF that loops forever, at `fps` frames per second,
/// atomically.
///
/// Frames are encoded as they arrive, so a long clip never sits in memory whole.
/// All frames must have the size of the first. GIF delays are whole hundredths of a
/// second, so each frame's delay is rounded such that the running total stays on the
/// exact clock (8 fps plays 13, 12, 13, 12, … hundredths, one second per 8 frames).
///
/// Fails with [`ExportError::InvalidFps`] unless `fps` is finite and positive, with
/// [`ExportError::NoFrames`] for an empty iterator, and with
/// [`ExportError::FrameSize`] on a size change; the target is then left untouched.
pub fn write_gif_atomic(path: &Path, frames: impl IntoIterator<Item = RgbImage>, fps: f32) -> Result<(), ExportError> {
    if !(fps.is_finite() && fps > 0.0) {
        return Err(ExportError::InvalidFps { path: path.to_path_buf(), fps });
    }
    let centis_per_frame = 100.0 / f64::from(fps);
    if centis_per_frame < GIF_MIN_RELIABLE_DELAY_CS {
        tracing::warn!(
            fps,
            path = %path.display(),
            "GIF frame rates above 50 fps play slowed down in most viewers"
        );
    }
    write_atomic_with(path, |w: &mut dyn Write| -> Result<(), ExportError> {
        let mut encoder = GifEncoder::new_with_speed(w, GIF_QUANTIZE_SPEED);
        encoder.set_repeat(Repeat::Infinite).map_err(|e| e.at_path(path))?;
        let mut size = None;
        for (index, image) in frames.into_iter().enumerate() {
            let found = image.dimensions();
            let expected = *size.get_or_insert(found);
            if found != expected {
                return Err(ExportError::FrameSize { path: path.to_path_buf(), index, expected, found });
            }
            let delay = Delay::from_numer_denom_ms(delay_centis(index, centis_per_frame) * 10, 1);
            let rgba = DynamicImage::ImageRgb8(image).into_rgba8();
            encoder.encode_frame(Frame::from_parts(rgba, 0, 0, delay)).map_err(|e| e.at_path(path))?;
        }
        if size.is_none() {
            return Err(ExportError::NoFrames { path: path.to_path_buf() });
        }
        // Dropping the encoder writes the GIF trailer into the buffered writer, whose
        // flush `write_atomic_with` checks.
        drop(encoder);
        Ok(())
    })
}

/// Delay of frame `index` in hundredths of a second: the rounded end time minus the
/// rounded start time, so rounding errors never accumulate. At least 1, because a
/// delay of 0 means "as fast as possible" to some viewers and 10 to others.
fn delay_centis(index: usize, centis_per_frame: f64) -> u32 {
    let at = |i: usize| (i as f64 * centis_per_frame).round();
    let delay = at(index + 1) - at(index);
    // Saturating float → int cast: absurdly slow rates clamp to u32::MAX / 10.
    (delay as u32).clamp(1, u32::MAX / 10)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::fixtures::TestDir;
    use image::AnimationDecoder;
    use image::codecs::gif::GifDecoder;

    fn solid(w: u32, h: u32, rgb: [u8; 3]) -> RgbImage {
        RgbImage::from_pixel(w, h, image::Rgb(rgb))
    }

    fn decode(path: &Path) -> Vec<Frame> {
        let file = std::io::BufReader::new(std::fs::File::open(path).unwrap());
        GifDecoder::new(file).unwrap().into_frames().collect_frames().unwrap()
    }

    #[test]
    fn frame_names_are_six_digit_pngs() {
        assert_eq!(frame_file_name(0), "000000.png");
        assert_eq!(frame_file_name(12), "000012.png");
        assert_eq!(frame_file_name(999_999), "999999.png");
    }

    #[test]
    fn delays_keep_the_exact_clock() {
        let per = 100.0 / 8.0;
        let delays: Vec<u32> = (0..8).map(|i| delay_centis(i, per)).collect();
        assert_eq!(delays, vec![13, 12, 13, 12, 13, 12, 13, 12]);
        assert_eq!(delays.iter().sum::<u32>(), 100);
        assert_eq!(delay_centis(5, 100.0 / 10.0), 10);
        assert_eq!(delay_centis(0, 100.0 / 1000.0), 1);
    }

    #[test]
    fn gif_has_all_frames_colours_delays_and_loops() {
        let dir = TestDir::new("gif_ok");
        let path = dir.path().join("preview.gif");
        let colours = [[255, 0, 0], [0, 255, 0], [0, 0, 255]];
        write_gif_atomic(&path, colours.iter().map(|&c| solid(8, 6, c)), 8.0).unwrap();

        let frames = decode(&path);
        assert_eq!(frames.len(), 3);
        let delays: Vec<(u32, u32)> = frames.iter().map(|f| f.delay().numer_denom_ms()).collect();
        assert_eq!(delays, vec![(130, 1), (120, 1), (130, 1)]);
        for (frame, colour) in frames.iter().zip(colours) {
            assert_eq!(frame.buffer().dimensions(), (8, 6));
            let p = frame.buffer().get_pixel(4, 3).0;
            for k in 0..3 {
                assert!(p[k].abs_diff(colour[k]) <= 8, "{p:?} vs {colour:?}");
            }
        }
        // NETSCAPE2.0 application extension with loop count 0 = repeat forever.
        let bytes = std::fs::read(&path).unwrap();
        let at = bytes.windows(11).position(|w| w == b"NETSCAPE2.0").expect("loop extension present");
        assert_eq!(&bytes[at + 11..at + 15], &[3, 1, 0, 0]);
    }

    #[test]
    fn size_change_fails_and_keeps_old_file() {
        let dir = TestDir::new("gif_size");
        let path = dir.path().join("preview.gif");
        std::fs::write(&path, b"old").unwrap();
        let frames = vec![solid(8, 6, [0; 3]), solid(8, 6, [0; 3]), solid(6, 8, [0; 3])];
        let err = write_gif_atomic(&path, frames, 10.0).unwrap_err();
        assert_eq!(err.to_string(), format!("cannot write `{}`: frame 2 is 6x8, but frame 0 is 8x6", path.display()));
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn no_frames_and_bad_fps_are_errors() {
        let dir = TestDir::new("gif_bad");
        let path = dir.path().join("preview.gif");
        assert!(matches!(write_gif_atomic(&path, std::iter::empty(), 10.0), Err(ExportError::NoFrames { .. })));
        for fps in [0.0, -3.0, f32::NAN, f32::INFINITY] {
            assert!(matches!(write_gif_atomic(&path, [solid(2, 2, [0; 3])], fps), Err(ExportError::InvalidFps { .. })));
        }
        assert!(!path.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
