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
        // Regenerated at every start: whole is enough, durable is not needed.
        atomicfile::write(
            &path,
            render(container, endpoint).as_bytes(),
            0o644,
            Sync::Visible,
        )?;
        written.push(path);
    }
    Ok(written)
}
