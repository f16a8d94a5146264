//! Writing a file so that readers see the old content or the new, never a
//! partial one: a temporary file in the same directory, then a rename.
//!
//! Keys are written durably (fsync of the file and of the directory), so a
//! power cut cannot lose a key that already signed tokens. Env files are
//! regenerated at every start and only need to be whole, so they skip the
//! fsyncs, which cost tens of milliseconds of cold start on a slow disk.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use thiserror::Error;

/// How far a write must have gone before it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sync {
    /// On stable storage: file and directory fsynced.
    Durable,
    /// Visible to other processes (renamed into place), not necessarily on disk.
    Visible,
}

/// A write that failed; the previous content of the file is untouched.
#[derive(Debug, Error)]
#[error("{action} {}: {source}", path.display())]
pub struct WriteError {
    /// What was being done.
    pub action: &'static str,
    /// The path.
    pub path: PathBuf,
    /// The I/O error.
    pub source: std::io::Error,
}

/// Writes `contents` to `path` atomically, with permissions `mode`.
pub fn write(path: &Path, contents: &[u8], mode: u32, sync: Sync) -> Result<(), WriteError> {
    let io = |action: &'static str, p: &Path| {
        let p = p.to_owned();
        move |source| WriteError {
            action,
            path: p,
            source,
        }
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .map_err(io("cannot create", &tmp))?;
        file.write_all(contents).map_err(io("cannot write", &tmp))?;
        if sync == Sync::Durable {
            file.sync_all().map_err(io("cannot sync", &tmp))?;
        }
        fs::rename(&tmp, path).map_err(io("cannot rename into place", path))?;
        if sync == Sync::Durable
            && let Ok(d) = fs::File::open(dir)
        {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn a_write_replaces_the_file_whole_with_the_given_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        write(&path, b"one", 0o600, Sync::Durable).unwrap();
        write(&path, b"two", 0o600, Sync::Visible).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file left"
        );
    }

    #[test]
    fn a_failed_write_leaves_the_old_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        write(&path, b"old", 0o644, Sync::Durable).unwrap();
        let err = write(&dir.path().join("missing/f"), b"new", 0o644, Sync::Durable).unwrap_err();
        assert_eq!(err.action, "cannot create");
        assert_eq!(fs::read(&path).unwrap(), b"old");
    }
}
