//! Records the git commit the crate is built from as `LATENTDRIVE_GIT_COMMIT`, so run
//! metadata names the build that made a run (not whatever the source folder holds when
//! the binary runs). A build whose sources differ from that commit's is marked
//! `<commit>-dirty`. Absent outside a git checkout.

use std::process::Command;

/// What the binary is built from.
const SOURCES: [&str; 4] = ["src", "build.rs", "Cargo.toml", "Cargo.lock"];

fn git(args: &[&str]) -> Option<String> {
    Command::new("git")
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

fn main() {
    if let Some(commit) = git(&["rev-parse", "HEAD"]) {
        let status = ["status", "--porcelain", "--untracked-files=no", "--"];
        let dirty = git(&[&status[..], &SOURCES[..]].concat()).is_some_and(|s| !s.is_empty());
        let suffix = if dirty { "-dirty" } else { "" };
        println!("cargo:rustc-env=LATENTDRIVE_GIT_COMMIT={commit}{suffix}");
    }
    // A new commit or checkout moves HEAD or the branch it points to; an edit to the sources
    // can make them dirty or clean again. (Not `.git/index`: `git status` rewrites it.)
    for path in [".git/HEAD", ".git/refs/heads"].iter().chain(&SOURCES) {
        println!("cargo:rerun-if-changed={path}");
    }
}
