//! Records the git commit the crate is built from as `LATENTDRIVE_GIT_COMMIT`, so run
//! metadata names the build that made a run (not whatever the source folder holds when
//! the binary runs). Absent outside a git checkout.

use std::process::Command;

fn main() {
    let commit = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    if let Some(commit) = commit {
        println!("cargo:rustc-env=LATENTDRIVE_GIT_COMMIT={commit}");
    }
    // A new commit or checkout moves HEAD or the branch it points to.
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
}
