//! The key directory: the current signing key and the keys it replaced.
//!
//! ```text
//! <key_dir>/current          the current key's kid (replaced atomically)
//! <key_dir>/<kid>/key.pem    PKCS#8, mode 0600
//! <key_dir>/<kid>/cert.pem   self-signed certificate (x5c, x5t = kid)
//! <key_dir>/<kid>/retired    Unix time it stopped signing (absent for the current key)
//! ```
//!
//! Rotation makes a new key the signer while the old one stays in the JWKS
//! for an overlap window, so tokens signed before the rotation still
//! validate; a restart keeps all of it. Every step is crash-safe: the new key
//! is written into a temporary directory that is renamed to its kid, and only
//! then is `current` replaced (one atomic rename). A failure at any step
//! leaves `current`, and so the serving key, as it was. Nothing here deletes
//! a key.

use std::fs;
use std::path::{Path, PathBuf};

use super::keys::{Jwk, KeyError, KeyOrigin, SigningKey, write_atomically};

/// Name of the file holding the current kid.
pub const CURRENT_FILE: &str = "current";
/// Name of the retirement marker inside a key directory.
pub const RETIRED_FILE: &str = "retired";

/// Default overlap: a retired key stays published this long, longer than
/// the default token lifetime (86 700 s) so every token it signed expires
/// first.
pub const DEFAULT_OVERLAP_SECS: i64 = 90_000;

/// A retired key still published.
#[derive(Debug)]
pub struct Retired {
    /// Its public half.
    pub jwk: Jwk,
    /// When it stopped signing.
    pub retired_at: i64,
}

/// The signer and the retired keys still in their overlap window.
#[derive(Debug)]
pub struct KeyRing {
    signer: SigningKey,
    retired: Vec<Retired>,
}

impl KeyRing {
    /// A ring of one in-memory key (tests, benchmarks).
    pub fn single(signer: SigningKey) -> Self {
        Self {
            signer,
            retired: Vec::new(),
        }
    }

    /// Loads the key directory, creating it and a first key when it has none.
    pub fn load_or_create(
        dir: &Path,
        now: i64,
        overlap_secs: i64,
    ) -> Result<(Self, KeyOrigin), KeyError> {
        match current_kid(dir)? {
            Some(kid) => Ok((Self::load(dir, &kid, now, overlap_secs)?, KeyOrigin::Loaded)),
            None => {
                fs::create_dir_all(dir).map_err(|source| KeyError::Io {
                    action: "cannot create key directory",
                    path: dir.to_owned(),
                    source,
                })?;
                let signer = new_key_dir(dir, now)?;
                write_atomically(&dir.join(CURRENT_FILE), signer.kid().as_bytes(), 0o644)?;
                Ok((Self::single(signer), KeyOrigin::Created))
            }
        }
    }

    /// Makes a new key the signer; the current one is marked retired and
    /// stays published for `overlap_secs`. On any failure the directory's
    /// current key is unchanged and the error says what failed.
    pub fn rotate(dir: &Path, now: i64, overlap_secs: i64) -> Result<Self, KeyError> {
        let old = current_kid(dir)?.ok_or_else(|| KeyError::Corrupt {
            path: dir.join(CURRENT_FILE),
            reason: "no current key to rotate".to_owned(),
        })?;
        // Prove the current key is sound before touching anything.
        Self::load(dir, &old, now, overlap_secs)?;
        let new = new_key_dir(dir, now)?;
        write_atomically(
            &dir.join(&old).join(RETIRED_FILE),
            now.to_string().as_bytes(),
            0o644,
        )?;
        if let Err(e) = write_atomically(&dir.join(CURRENT_FILE), new.kid().as_bytes(), 0o644) {
            // `current` still names the old key, which therefore still signs;
            // its retirement marker is ignored while it is current.
            let _ = fs::remove_file(dir.join(&old).join(RETIRED_FILE));
            return Err(e);
        }
        Self::load(dir, new.kid(), now, overlap_secs)
    }

    fn load(dir: &Path, kid: &str, now: i64, overlap_secs: i64) -> Result<Self, KeyError> {
        let signer_dir = dir.join(kid);
        if !signer_dir.join(super::keys::KEY_FILE).exists() {
            return Err(KeyError::Corrupt {
                path: dir.join(CURRENT_FILE),
                reason: format!(
                    "it names key {kid:?}, which has no {}",
                    signer_dir.join(super::keys::KEY_FILE).display()
                ),
            });
        }
        let (signer, _) = SigningKey::load_or_create(&signer_dir, now)?;
        let mut retired = Vec::new();
        let entries = fs::read_dir(dir).map_err(|source| KeyError::Io {
            action: "cannot list key directory",
            path: dir.to_owned(),
            source,
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == kid || name.starts_with('.') || !path.is_dir() {
                continue;
            }
            let Some(at) = fs::read_to_string(path.join(RETIRED_FILE))
                .ok()
                .and_then(|t| t.trim().parse::<i64>().ok())
            else {
                continue;
            };
            if now - at >= overlap_secs {
                continue;
            }
            match SigningKey::load_or_create(&path, now) {
                Ok((key, _)) => retired.push(Retired {
                    jwk: key.jwk().clone(),
                    retired_at: at,
                }),
                Err(e) => tracing::warn!(error = %e, "retired key unreadable; not published"),
            }
        }
        retired.sort_by_key(|r| std::cmp::Reverse(r.retired_at));
        Ok(Self { signer, retired })
    }

    /// The key that signs.
    pub fn signer(&self) -> &SigningKey {
        &self.signer
    }

    /// Keys to publish: the signer first, then retired keys still in their
    /// overlap window (newest first).
    pub fn published(&self) -> impl Iterator<Item = &Jwk> {
        std::iter::once(self.signer.jwk()).chain(self.retired.iter().map(|r| &r.jwk))
    }
}

/// The kid `current` names, if the file exists.
pub fn current_kid(dir: &Path) -> Result<Option<String>, KeyError> {
    let path = dir.join(CURRENT_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => {
            let kid = text.trim();
            let valid = !kid.is_empty()
                && kid.len() <= 64
                && kid
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if valid {
                Ok(Some(kid.to_owned()))
            } else {
                Err(KeyError::Corrupt {
                    path,
                    reason: "not a key id".to_owned(),
                })
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(KeyError::Io {
            action: "cannot read",
            path,
            source,
        }),
    }
}

/// Generates a key in a temporary directory and renames it to its kid.
fn new_key_dir(dir: &Path, now: i64) -> Result<SigningKey, KeyError> {
    let tmp: PathBuf = dir.join(format!(".new-{}-{now}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    let result = (|| {
        let (key, _) = SigningKey::load_or_create(&tmp, now)?;
        let target = dir.join(key.kid());
        fs::rename(&tmp, &target).map_err(|source| KeyError::Io {
            action: "cannot move the new key into place at",
            path: target,
            source,
        })?;
        Ok(key)
    })();
    if result.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_750_000_000;

    fn kids(ring: &KeyRing) -> Vec<String> {
        ring.published().map(|j| j.kid.clone()).collect()
    }

    #[test]
    fn the_first_start_creates_a_key_and_a_restart_reuses_it() {
        let dir = tempfile::tempdir().unwrap();
        let (a, origin) = KeyRing::load_or_create(dir.path(), NOW, 100).unwrap();
        assert_eq!(origin, KeyOrigin::Created);
        let (b, origin) = KeyRing::load_or_create(dir.path(), NOW + 5, 100).unwrap();
        assert_eq!(origin, KeyOrigin::Loaded);
        assert_eq!(a.signer().kid(), b.signer().kid());
        assert_eq!(
            current_kid(dir.path()).unwrap().as_deref(),
            Some(a.signer().kid())
        );
    }

    #[test]
    fn rotation_publishes_the_old_key_for_the_overlap_window_and_survives_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let (first, _) = KeyRing::load_or_create(dir.path(), NOW, 100).unwrap();
        let old = first.signer().kid().to_owned();
        let rotated = KeyRing::rotate(dir.path(), NOW + 10, 100).unwrap();
        let new = rotated.signer().kid().to_owned();
        assert_ne!(new, old);
        assert_eq!(kids(&rotated), [new.clone(), old.clone()]);
        let (restarted, _) = KeyRing::load_or_create(dir.path(), NOW + 20, 100).unwrap();
        assert_eq!(kids(&restarted), [new.clone(), old]);
        let (later, _) = KeyRing::load_or_create(dir.path(), NOW + 10 + 100, 100).unwrap();
        assert_eq!(kids(&later), [new], "dropped after the overlap window");
    }

    #[test]
    fn a_failed_rotation_leaves_the_current_key_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let (first, _) = KeyRing::load_or_create(dir.path(), NOW, 100).unwrap();
        // `current` replaced by a directory: the final rename cannot happen.
        fs::remove_file(dir.path().join(CURRENT_FILE)).unwrap();
        fs::create_dir(dir.path().join(CURRENT_FILE)).unwrap();
        assert!(KeyRing::rotate(dir.path(), NOW + 10, 100).is_err());
        fs::remove_dir(dir.path().join(CURRENT_FILE)).unwrap();
        fs::write(dir.path().join(CURRENT_FILE), first.signer().kid()).unwrap();
        let (again, _) = KeyRing::load_or_create(dir.path(), NOW + 20, 100).unwrap();
        assert_eq!(again.signer().kid(), first.signer().kid());
    }

    #[test]
    fn a_current_file_naming_a_missing_key_stops_loading() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(CURRENT_FILE), "nosuchkid").unwrap();
        let err = KeyRing::load_or_create(dir.path(), NOW, 100).unwrap_err();
        assert!(err.to_string().contains("nosuchkid"), "{err}");
        fs::write(dir.path().join(CURRENT_FILE), "../etc").unwrap();
        assert!(KeyRing::load_or_create(dir.path(), NOW, 100).is_err());
    }
}
