//! Atomic file writes: a reader (or a crashed run) sees either the old file or the
//! whole new one, never a half-written label file or image.
//!
//! Bytes go to a hidden temporary sibling (`.{name}.tmp-{pid}-{n}`) in the target's
//! folder, then `std::fs::rename` replaces the target in one step. The sibling lives
//! in the same folder so the rename never crosses a file system. We do not fsync:
//! the guarantee is against interrupted writers and concurrent readers, not against
//! power loss.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use image::{ExtendedColorType, ImageEncoder, RgbImage};

use super::error::{AtPath, ExportError};

/// Distinguishes temporary files of concurrent writes within one process.
static NEXT_TEMP: AtomicU64 = AtomicU64::new(0);

/// Writes `bytes` to `path` atomically, replacing any existing file whole.
///
/// The folder must exist. On failure the temporary file is removed and the target is
/// left untouched; the error names `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    write_atomic_with(path, |w: &mut dyn Write| w.write_all(bytes))
}

/// Like [`write_atomic`], but streams: `write` receives a buffered writer onto the
/// temporary file, so large outputs (JSON, GIF) never sit in memory whole.
///
/// `write` may fail with any error that knows how to attach a path ([`AtPath`]: I/O,
/// image, JSON or an [`ExportError`]). On failure, and also if `write` panics, the
/// temporary file is removed and the target is left untouched.
pub fn write_atomic_with<F, E>(path: &Path, write: F) -> Result<(), ExportError>
where
    F: FnOnce(&mut dyn Write) -> Result<(), E>,
    E: AtPath,
{
    let temp = TempFile::new(temp_path(path)?);
    let file = File::create(&temp.path).map_err(|e| ExportError::io(path, e))?;
    let mut writer = BufWriter::new(file);
    write(&mut writer).map_err(|e| e.at_path(path))?;
    // `into_inner` flushes; a failed flush is a failed write, not something to drop.
    let file = writer.into_inner().map_err(|e| ExportError::io(path, e.into_error()))?;
    drop(file);
    fs::rename(&temp.path, path).map_err(|e| ExportError::io(path, e))?;
    temp.disarm();
    tracing::debug!(path = %path.display(), "wrote file atomically");
    Ok(())
}

/// Like [`write_atomic`] for writers that create the file themselves from a path
/// (burn-store's safetensors writer): `write(temp)` must create `temp`; it is then
/// flushed to disk and renamed over `path`. On failure (or panic) the temporary file
/// is removed and the target is left untouched. Errors of this module convert into
/// the caller's error type `E`.
pub fn write_atomic_via_path<E: From<ExportError>>(
    path: &Path,
    write: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), E> {
    let temp = TempFile::new(temp_path(path)?);
    write(&temp.path)?;
    // Flush before the rename makes the file visible: a large weights file must not
    // appear under its final name with missing contents after a crash.
    File::open(&temp.path).and_then(|f| f.sync_all()).map_err(|e| ExportError::io(path, e))?;
    fs::rename(&temp.path, path).map_err(|e| ExportError::io(path, e))?;
    temp.disarm();
    Ok(())
}

/// Encodes `image` as PNG in memory, then writes it with [`write_atomic`].
pub fn save_png_atomic(path: &Path, image: &RgbImage) -> Result<(), ExportError> {
    let mut bytes = Vec::new();
    image::codecs::png::PngEncoder::new(&mut bytes)
        .write_image(image.as_raw(), image.width(), image.height(), ExtendedColorType::Rgb8)
        .map_err(|e| e.at_path(path))?;
    write_atomic(path, &bytes)
}

/// The hidden temporary sibling of `path`.
fn temp_path(path: &Path) -> Result<PathBuf, ExportError> {
    let Some(file_name) = path.file_name() else {
        return Err(ExportError::io(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "path has no file name"),
        ));
    };
    let mut name = OsString::from(".");
    name.push(file_name);
    name.push(format!(".tmp-{}-{}", std::process::id(), NEXT_TEMP.fetch_add(1, Ordering::Relaxed)));
    Ok(path.with_file_name(name))
}

/// Removes the temporary file when dropped, unless it was renamed into place.
struct TempFile {
    path: PathBuf,
    armed: bool,
}

impl TempFile {
    fn new(path: PathBuf) -> Self {
        TempFile { path, armed: true }
    }
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.armed {
            // Best effort: the file may never have been created.
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::fixtures::TestDir;

    /// Names in `dir`, sorted.
    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    #[test]
    fn replaces_existing_file_whole_and_leaves_no_temp() {
        let dir = TestDir::new("atomic_replace");
        let path = dir.path().join("labels.txt");
        write_atomic(&path, b"a much longer first version\n").unwrap();
        write_atomic(&path, b"short\n").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"short\n");
        assert_eq!(entries(dir.path()), vec!["labels.txt"]);
    }

    #[test]
    fn missing_folder_is_an_error_naming_the_target() {
        let dir = TestDir::new("atomic_missing");
        let path = dir.path().join("no_such_folder").join("x.json");
        let err = write_atomic(&path, b"{}").unwrap_err();
        match &err {
            ExportError::Io { path: p, source } => {
                assert_eq!(p, &path);
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
            }
            other => panic!("expected Io, got {other:?}"),
        }
        assert!(err.to_string().contains(&path.display().to_string()));
        assert!(entries(dir.path()).is_empty());
    }

    #[test]
    fn failing_writer_keeps_old_file_and_removes_temp() {
        let dir = TestDir::new("atomic_fail");
        let path = dir.path().join("out.bin");
        write_atomic(&path, b"old").unwrap();
        let err = write_atomic_with(&path, |w: &mut dyn Write| {
            w.write_all(b"partial new content")?;
            Err(std::io::Error::other("encoder gave up"))
        })
        .unwrap_err();
        assert!(matches!(err, ExportError::Io { .. }));
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(entries(dir.path()), vec!["out.bin"]);
    }

    #[test]
    fn panicking_writer_removes_temp() {
        let dir = TestDir::new("atomic_panic");
        let path = dir.path().join("out.bin");
        let result = std::panic::catch_unwind(|| {
            let _ = write_atomic_with(&path, |w: &mut dyn Write| -> std::io::Result<()> {
                w.write_all(b"x")?;
                panic!("writer bug");
            });
        });
        assert!(result.is_err());
        assert!(entries(dir.path()).is_empty());
    }

    #[test]
    fn target_that_is_a_folder_fails_without_leftovers() {
        let dir = TestDir::new("atomic_dir_target");
        let target = dir.path().join("taken");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("keep"), b"k").unwrap();
        assert!(write_atomic(&target, b"x").is_err());
        assert_eq!(entries(dir.path()), vec!["taken"]);
    }

    #[test]
    fn png_round_trips_pixels() {
        let dir = TestDir::new("atomic_png");
        let path = dir.path().join("000000.png");
        let img = RgbImage::from_fn(5, 3, |x, y| image::Rgb([x as u8 * 40, y as u8 * 80, 7]));
        save_png_atomic(&path, &img).unwrap();
        let back = image::open(&path).unwrap().to_rgb8();
        assert_eq!(back, img);
        assert_eq!(entries(dir.path()), vec!["000000.png"]);
    }
}
