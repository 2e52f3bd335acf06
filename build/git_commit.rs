// Shared by the build scripts of `mayfly` and `mayfly-ca` (`include!`d): the commit the binary
// is built from, for `--version`, as the environment variable MAYFLY_GIT_COMMIT.
//
// Taken from MAYFLY_GIT_COMMIT when the builder sets it (a packager building from a tarball),
// else from `git` in the checkout, else "unknown". The script reruns when HEAD moves.

use std::path::Path;
use std::process::Command;

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    let text = String::from_utf8(output.stdout).ok()?.trim().to_string();
    (output.status.success() && !text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-env-changed=MAYFLY_GIT_COMMIT");
    let dir = std::path::PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let commit = std::env::var("MAYFLY_GIT_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| git(&dir, &["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=MAYFLY_GIT_COMMIT={commit}");
    // HEAD (in a worktree, its own), the branch it points to, and packed refs: only files that
    // exist, since a missing one would make Cargo rerun this script on every build.
    let mut watched = Vec::new();
    if let Some(git_dir) = git(&dir, &["rev-parse", "--absolute-git-dir"]) {
        watched.push(Path::new(&git_dir).join("HEAD"));
    }
    if let Some(common) = git(&dir, &["rev-parse", "--path-format=absolute", "--git-common-dir"]) {
        let common = Path::new(&common);
        watched.push(common.join("packed-refs"));
        if let Some(branch) = git(&dir, &["symbolic-ref", "-q", "HEAD"]) {
            watched.push(common.join(branch));
        }
    }
    for path in watched.iter().filter(|p| p.exists()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}
