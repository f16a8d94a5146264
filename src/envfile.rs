//! The environment each container needs, as the platform injects it, and the
//! `<container>.env` files `--env-dir` writes.
//!
//! Container Apps and App Service set both `IDENTITY_ENDPOINT`/`IDENTITY_HEADER`
//! and the legacy `MSI_ENDPOINT`/`MSI_SECRET` (same values); every current SDK
//! uses the first pair. Nothing else is set: `IDENTITY_SERVER_THUMBPRINT`,
//! `IMDS_ENDPOINT` or `AZURE_FEDERATED_TOKEN_FILE` would send SDKs down
//! another flow.

use std::path::{Path, PathBuf};

use crate::atomicfile::{self, Sync, WriteError};
use crate::platform::{Container, Platform};

/// `(name, value)` pairs a container needs; `endpoint` is the full token URL.
pub fn variables(container: &Container, endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("IDENTITY_ENDPOINT", endpoint.to_owned()),
        ("IDENTITY_HEADER", container.secret.expose().to_owned()),
        ("MSI_ENDPOINT", endpoint.to_owned()),
        ("MSI_SECRET", container.secret.expose().to_owned()),
    ]
}

/// dotenv text for a container.
pub fn render(container: &Container, endpoint: &str) -> String {
    let mut out = format!(
        "# miemu: environment for container '{}' ({})\n",
        container.name, container.kind
    );
    for (name, value) in variables(container, endpoint) {
        out.push_str(name);
        out.push('=');
        out.push_str(&value);
        out.push('\n');
    }
    out
}

/// Whether `path` is a regular file with mode 0644 holding exactly `contents`.
fn is_already(path: &Path, contents: &[u8]) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::symlink_metadata(path).is_ok_and(|m| {
        m.is_file() && m.permissions().mode() & 0o7777 == 0o644 && m.len() == contents.len() as u64
    }) && std::fs::read(path).is_ok_and(|old| old == contents)
}

/// Writes `<dir>/<container>.env` for every container, each atomically.
/// Files are mode 0644 so containers running as other users can read them
/// from a shared volume; the directory itself is what should be private.
/// Returns the paths.
pub fn write_all(
    dir: &Path,
    platform: &Platform,
    endpoint: &str,
) -> Result<Vec<PathBuf>, WriteError> {
    std::fs::create_dir_all(dir).map_err(|source| WriteError {
        action: "cannot create env directory",
        path: dir.to_owned(),
        source,
    })?;
    let mut written = Vec::new();
    for container in &platform.containers {
        let path = dir.join(format!("{}.env", container.name));
        let contents = render(container, endpoint);
        // A restart with fixed secrets finds the file as it would write it:
        // left alone, since replacing a file by rename makes ext4 flush the
        // new one (`auto_da_alloc`), up to milliseconds of cold start.
        if !is_already(&path, contents.as_bytes()) {
            // Regenerated at every start: whole is enough, durable is not needed.
            atomicfile::write(&path, contents.as_bytes(), 0o644, Sync::Visible)?;
        }
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt as _;

    use super::*;
    use crate::config::{Config, DEFAULT_CONFIG, parse_str};

    #[test]
    fn unchanged_files_are_left_alone_and_changed_ones_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let raw = parse_str(DEFAULT_CONFIG, "default").unwrap();
        let platform = Config::from_raw(&raw, "default").unwrap().platform;
        let inode = |p: &Path| std::fs::metadata(p).unwrap().ino();

        let paths = write_all(dir.path(), &platform, "http://a").unwrap();
        let before: Vec<u64> = paths.iter().map(|p| inode(p)).collect();
        write_all(dir.path(), &platform, "http://a").unwrap();
        let again: Vec<u64> = paths.iter().map(|p| inode(p)).collect();
        assert_eq!(before, again, "identical files were rewritten");

        write_all(dir.path(), &platform, "http://b").unwrap();
        for (path, old) in paths.iter().zip(&before) {
            assert_ne!(inode(path), *old, "{} was not replaced", path.display());
            assert!(std::fs::read_to_string(path).unwrap().contains("http://b"));
        }
    }
}
