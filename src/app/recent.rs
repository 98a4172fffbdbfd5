//! Recently opened or saved scenario files, remembered across sessions in
//! `<config>/latentdrive/recent.txt` (one path per line).

use std::path::{Path, PathBuf};

/// Most files remembered.
const KEEP: usize = 10;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecentFiles {
    pub paths: Vec<PathBuf>,
    /// Where the list is stored; `None` keeps it in memory only.
    store: Option<PathBuf>,
}

impl RecentFiles {
    /// The list stored under the user's config folder (`$LATENTDRIVE_CONFIG_DIR`, else
    /// `$XDG_CONFIG_HOME/latentdrive`, else `~/.config/latentdrive`).
    pub fn load_default() -> Self {
        let dir = std::env::var_os("LATENTDRIVE_CONFIG_DIR").map(PathBuf::from).or_else(|| {
            std::env::var_os("XDG_CONFIG_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
                .map(|c| c.join("latentdrive"))
        });
        match dir {
            Some(d) => RecentFiles::load(&d.join("recent.txt")),
            None => RecentFiles::default(),
        }
    }

    /// Reads the list at `store` (a missing or unreadable file gives an empty list).
    pub fn load(store: &Path) -> Self {
        let paths = std::fs::read_to_string(store)
            .map(|t| t.lines().filter(|l| !l.trim().is_empty()).map(PathBuf::from).take(KEEP).collect())
            .unwrap_or_default();
        RecentFiles { paths, store: Some(store.to_path_buf()) }
    }

    /// Puts `path` first and stores the list; storing is best effort (a read-only home
    /// folder must not stop the user from working).
    pub fn add(&mut self, path: &Path) {
        let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        self.paths.retain(|p| *p != path);
        self.paths.insert(0, path);
        self.paths.truncate(KEEP);
        if let Some(store) = &self.store {
            let text: String = self.paths.iter().map(|p| format!("{}\n", p.display())).collect();
            if let Some(dir) = store.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            if let Err(e) = crate::export::write_atomic(store, text.as_bytes()) {
                tracing::warn!("cannot store recent files in {}: {e}", store.display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_recent_first_without_duplicates_and_persisted() {
        let dir = std::env::temp_dir().join(format!("latentdrive-recent-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = dir.join("cfg").join("recent.txt");
        let mut r = RecentFiles::load(&store);
        assert!(r.paths.is_empty());
        for name in ["a.ron", "b.ron", "a.ron"] {
            r.add(Path::new(name));
        }
        assert_eq!(r.paths, vec![PathBuf::from("a.ron"), PathBuf::from("b.ron")]);
        assert_eq!(RecentFiles::load(&store).paths, r.paths);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
