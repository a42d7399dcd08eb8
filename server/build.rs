//! Sets `GAMESERVER_VERSION` for `gameserver --version`: the package version,
//! plus the commit when built from a git checkout (`0.1.0 (git 1a2b3c4)`).
//! Outside git (a source tarball, `cargo install` from crates.io) it is the
//! package version alone.

use std::path::Path;
use std::process::Command;

fn main() {
    let version = env!("CARGO_PKG_VERSION");
    let commit = git(&["rev-parse", "--short", "HEAD"]);
    let full = match &commit {
        Some(commit) => format!("{version} (git {commit})"),
        None => version.to_owned(),
    };
    println!("cargo:rustc-env=GAMESERVER_VERSION={full}");

    // Rebuild when HEAD moves: HEAD itself (another branch checked out), the
    // branch's ref (a commit), packed-refs (refs packed by `git gc`). Paths
    // come from git so that worktrees work; only existing files are watched,
    // since cargo reruns a script on every build for a missing one.
    println!("cargo:rerun-if-changed=build.rs");
    if commit.is_none() {
        return;
    }
    let mut watched = vec![git(&["rev-parse", "--git-path", "HEAD"])];
    watched.push(git(&["rev-parse", "--git-path", "packed-refs"]));
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(git(&["rev-parse", "--git-path", &branch]));
    }
    for path in watched.into_iter().flatten() {
        if Path::new(&path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}

/// One line of git's output, or `None` without git or outside a checkout.
fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let line = String::from_utf8(output.stdout).ok()?.trim().to_owned();
    (!line.is_empty()).then_some(line)
}
