//! Where the policy folder is when the config does not say: never the current directory, so
//! that sluis started from anywhere finds the same rules (or refuses to start without them).

use std::path::{Path, PathBuf};

/// Where the Debian package and the container image install the shipped policy.
const INSTALLED: &str = "/etc/sluis/policies";

/// `policies` next to the config file (`/etc/sluis/sluis.toml` -> `/etc/sluis/policies`, as
/// packaged). Without a config file: next to the program, the repository it was built from
/// (`cargo run`), or the installed package's folder, the first that exists; with none of
/// them, the package's folder, which the error then names.
pub fn default_policy_dir(config: Option<&Path>) -> PathBuf {
    if let Some(file) = config {
        let parent = file.parent().unwrap_or(Path::new(""));
        return parent.join("policies");
    }
    candidates()
        .into_iter()
        .find(|p| p.is_dir())
        .unwrap_or_else(|| PathBuf::from(INSTALLED))
}

fn candidates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(bin) = std::env::current_exe().ok().and_then(|p| {
        p.canonicalize()
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
    }) {
        out.push(bin.join("policies"));
        out.push(bin.join("../share/sluis/policies"));
    }
    // The source tree of this build, for `cargo run` from anywhere (the build directory is
    // often elsewhere, e.g. CARGO_TARGET_DIR).
    out.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"));
    out.push(PathBuf::from(INSTALLED));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_to_the_config_file() {
        assert_eq!(
            default_policy_dir(Some(Path::new("/etc/sluis/sluis.toml"))),
            PathBuf::from("/etc/sluis/policies")
        );
        assert_eq!(
            default_policy_dir(Some(Path::new("sluis.toml"))),
            PathBuf::from("policies")
        );
    }

    #[test]
    fn without_a_config_the_repository_of_this_build() {
        // In the test build the program lives in the target directory, not in the repository.
        let dir = default_policy_dir(None);
        assert!(dir.join("default.toml").is_file(), "{}", dir.display());
    }
}
