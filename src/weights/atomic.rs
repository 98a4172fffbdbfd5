//! Atomic file replacement: readers see the old file or the new one, never half of one.
//! A crash mid-write leaves at worst a stray `.<name>.tmp-<pid>` beside the target.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::WeightsError;

/// The temporary sibling of `target` that a write goes to before the rename. It lives in
/// the same folder because a rename is only atomic within one file system.
fn temp_path(target: &Path) -> PathBuf {
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    target.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Calls `write(temp)` to produce the file at a temporary name beside `target`, flushes
/// it to disk and renames it over `target`. On any error the temporary file is removed.
pub(crate) fn write_atomically(
    target: &Path,
    write: impl FnOnce(&Path) -> Result<(), WeightsError>,
) -> Result<(), WeightsError> {
    let temp = temp_path(target);
    let result = write(&temp).and_then(|()| {
        // Flush the data before the rename makes it visible, so a crash cannot leave a
        // renamed file with missing contents.
        File::open(&temp).and_then(|f| f.sync_all()).map_err(|source| WeightsError::Io {
            path: temp.clone(),
            action: "flushing".into(),
            source,
        })?;
        std::fs::rename(&temp, target).map_err(|source| WeightsError::Io {
            path: target.to_path_buf(),
            action: format!("renaming {} to it", temp.display()),
            source,
        })
    });
    if result.is_err() {
        // Best effort: the original error matters more than a failed clean-up.
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Writes `bytes` to `target` atomically.
pub(crate) fn write_bytes_atomically(target: &Path, bytes: &[u8]) -> Result<(), WeightsError> {
    write_atomically(target, |temp| {
        std::fs::write(temp, bytes).map_err(|source| WeightsError::Io {
            path: temp.to_path_buf(),
            action: "writing".into(),
            source,
        })
    })
}
