//! The signing key: created once, kept on disk, published as a JWK.
//!
//! One key lives in one directory: `key.pem` (PKCS#8, mode 0600) and
//! `cert.pem` (a self-signed certificate, so the JWKS can carry `x5c`/`x5t`
//! like Entra's); [`super::keyring`] arranges several of them. Both are written atomically (temporary file,
//! fsync, rename) and a restart reuses them, so `kid` stays the same and
//! tokens held by clients keep validating. A key file that exists but cannot
//! be read or parsed stops start-up and is never overwritten.
//!
//! Signing uses aws-lc-rs with the parsed key held in memory: re-parsing a
//! PEM per token (what `jsonwebtoken::encode` does) costs more than the
//! signature itself. This module never logs or serialises private material;
//! `Debug` shows only the key id.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use aws_lc_rs::encoding::AsDer;

use crate::atomicfile;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Serialize;
use thiserror::Error;

/// File name of the private key inside the key directory.
pub const KEY_FILE: &str = "key.pem";
/// File name of the certificate inside the key directory.
pub const CERT_FILE: &str = "cert.pem";

/// Why the signing key could not be loaded, created or used.
#[derive(Debug, Error)]
pub enum KeyError {
    /// A file or directory could not be read or written.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What miemu was doing.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A key or certificate file exists but is not usable.
    #[error("{} is not usable ({reason}); fix or remove it, miemu will not overwrite it", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A key file could not be written; the previous one is untouched.
    #[error(transparent)]
    Write(#[from] atomicfile::WriteError),
    /// The cryptographic library failed.
    #[error("crypto failure: {0}")]
    Crypto(&'static str),
}

/// Whether the key was found on disk or made now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOrigin {
    /// Read from the key directory.
    Loaded,
    /// Generated and written to the key directory.
    Created,
}

/// The public half of a key as published in the JWKS.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Jwk {
    /// Always `RSA`.
    pub kty: &'static str,
    /// Always `sig`.
    #[serde(rename = "use")]
    pub use_: &'static str,
    /// Key id: the certificate's SHA-1 thumbprint, base64url, as Entra.
    pub kid: String,
    /// Same as `kid`.
    pub x5t: String,
    /// Modulus, base64url.
    pub n: String,
    /// Public exponent, base64url.
    pub e: String,
    /// The certificate, base64 DER.
    pub x5c: Vec<String>,
}

/// An RSA-2048 signing key with its certificate.
pub struct SigningKey {
    pair: KeyPair,
    created_at: i64,
    jwk: Jwk,
    /// `base64url({"typ":"JWT","alg":"RS256","x5t":kid,"kid":kid})`, computed once.
    header_b64: String,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.jwk.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Loads the key from `dir`, or creates the directory and a new key when
    /// there is none. `now` (Unix seconds) dates a new certificate.
    pub fn load_or_create(dir: &Path, now: i64) -> Result<(Self, KeyOrigin), KeyError> {
        let key_path = dir.join(KEY_FILE);
        let cert_path = dir.join(CERT_FILE);
        let key_pem = match fs::read_to_string(&key_path) {
            Ok(pem) => Some(pem),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(KeyError::Io {
                    action: "cannot read signing key",
                    path: key_path,
                    source,
                });
            }
        };
        match key_pem {
            Some(pem) => {
                let pkcs8 =
                    decode_pem(&pem, "PRIVATE KEY").map_err(|reason| KeyError::Corrupt {
                        path: key_path.clone(),
                        reason,
                    })?;
                let pair = KeyPair::from_pkcs8(&pkcs8).map_err(|e| KeyError::Corrupt {
                    path: key_path.clone(),
                    reason: format!("not an RSA PKCS#8 key: {e}"),
                })?;
                let cert_der = match fs::read_to_string(&cert_path) {
                    Ok(pem) => {
                        let der = decode_pem(&pem, "CERTIFICATE").map_err(|reason| {
                            KeyError::Corrupt {
                                path: cert_path.clone(),
                                reason,
                            }
                        })?;
                        check_cert_matches(&pair, &der).map_err(|reason| KeyError::Corrupt {
                            path: cert_path.clone(),
                            reason,
                        })?;
                        der
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        let der = self_signed_cert(&pem, now)?;
                        write_atomically(
                            &cert_path,
                            encode_pem("CERTIFICATE", &der).as_bytes(),
                            0o644,
                        )?;
                        der
                    }
                    Err(source) => {
                        return Err(KeyError::Io {
                            action: "cannot read certificate",
                            path: cert_path,
                            source,
                        });
                    }
                };
                let created_at = fs::metadata(&key_path)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .and_then(|d| i64::try_from(d.as_secs()).ok())
                    .unwrap_or(now);
                Ok((Self::new(pair, &cert_der, created_at)?, KeyOrigin::Loaded))
            }
            None => {
                fs::create_dir_all(dir).map_err(|source| KeyError::Io {
                    action: "cannot create key directory",
                    path: dir.to_owned(),
                    source,
                })?;
                let (key, key_pem, cert_der) = Self::generate_parts(now)?;
                // The certificate goes first: a crash between the two writes
                // leaves no key, so the next start simply generates again.
                write_atomically(
                    &cert_path,
                    encode_pem("CERTIFICATE", &cert_der).as_bytes(),
                    0o644,
                )?;
                write_atomically(&key_path, key_pem.as_bytes(), 0o600)?;
                Ok((key, KeyOrigin::Created))
            }
        }
    }

    /// A fresh key that lives only in memory.
    pub fn generate(now: i64) -> Result<Self, KeyError> {
        Ok(Self::generate_parts(now)?.0)
    }

    fn generate_parts(now: i64) -> Result<(Self, String, Vec<u8>), KeyError> {
        let pair = KeyPair::generate(KeySize::Rsa2048)
            .map_err(|_| KeyError::Crypto("RSA key generation failed"))?;
        let pkcs8 = pair
            .as_der()
            .map_err(|_| KeyError::Crypto("PKCS#8 encoding failed"))?;
        let pem = encode_pem("PRIVATE KEY", pkcs8.as_ref());
        let cert_der = self_signed_cert(&pem, now)?;
        let key = Self::new(pair, &cert_der, now)?;
        key.self_test()?;
        Ok((key, pem, cert_der))
    }

    fn new(pair: KeyPair, cert_der: &[u8], created_at: i64) -> Result<Self, KeyError> {
        let thumbprint =
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, cert_der);
        let kid = URL_SAFE_NO_PAD.encode(thumbprint.as_ref());
        let public = pair.public_key();
        let jwk = Jwk {
            kty: "RSA",
            use_: "sig",
            kid: kid.clone(),
            x5t: kid.clone(),
            n: URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
            e: URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
            x5c: vec![STANDARD.encode(cert_der)],
        };
        // Entra's field order; `kid` is base64url, so it needs no escaping.
        let header = format!(r#"{{"typ":"JWT","alg":"RS256","x5t":"{kid}","kid":"{kid}"}}"#);
        let header_b64 = URL_SAFE_NO_PAD.encode(header);
        Ok(Self {
            pair,
            created_at,
            jwk,
            header_b64,
        })
    }

    /// Signs once and verifies the result, so a broken key or backend fails
    /// at start-up rather than on the first request. Run for new keys only:
    /// a loaded key has passed aws-lc's consistency check (`RSA_check_key`,
    /// in `KeyPair::from_pkcs8`) and the match against its certificate, and
    /// the signature would add half a millisecond to every start.
    fn self_test(&self) -> Result<(), KeyError> {
        let msg = b"miemu self-test";
        let sig = self.sign(msg)?;
        aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
            self.pair.public_key().as_ref(),
        )
        .verify(msg, &sig)
        .map_err(|_| KeyError::Crypto("self-test signature did not verify"))
    }

    /// When the key was made (Unix seconds): generation time, or the key
    /// file's modification time for a loaded key.
    pub fn created_at(&self) -> i64 {
        self.created_at
    }

    /// The key id (`kid` and `x5t`).
    pub fn kid(&self) -> &str {
        &self.jwk.kid
    }

    /// The public JWK.
    pub fn jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// The encoded JWT header for tokens signed by this key.
    pub fn header_b64(&self) -> &str {
        &self.header_b64
    }

    /// RS256 signature of `msg`.
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, KeyError> {
        let mut sig = vec![0; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                msg,
                &mut sig,
            )
            .map_err(|_| KeyError::Crypto("RSA signing failed"))?;
        Ok(sig)
    }
}

fn self_signed_cert(key_pem: &str, now: i64) -> Result<Vec<u8>, KeyError> {
    let rc_key = rcgen::KeyPair::from_pkcs8_pem_and_sign_algo(key_pem, &rcgen::PKCS_RSA_SHA256)
        .map_err(|_| KeyError::Crypto("cannot load key for the certificate"))?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
        .map_err(|_| KeyError::Crypto("certificate parameters"))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "miemu token signing (test only)");
    let start = time::OffsetDateTime::from_unix_timestamp(now - 3600)
        .map_err(|_| KeyError::Crypto("clock out of range"))?;
    params.not_before = start;
    params.not_after = start + time::Duration::days(3650);
    let cert = params
        .self_signed(&rc_key)
        .map_err(|_| KeyError::Crypto("certificate signing failed"))?;
    Ok(cert.der().to_vec())
}

/// A certificate embeds its SubjectPublicKeyInfo verbatim; if the key's SPKI
/// is not in it, the two files do not belong together.
fn check_cert_matches(pair: &KeyPair, cert_der: &[u8]) -> Result<(), String> {
    let spki = pair
        .public_key()
        .as_der()
        .map_err(|_| "cannot encode the public key".to_owned())?;
    let spki = spki.as_ref();
    if cert_der.windows(spki.len()).any(|w| w == spki) {
        Ok(())
    } else {
        Err(format!("the certificate does not belong to {KEY_FILE}"))
    }
}

fn decode_pem(text: &str, tag: &str) -> Result<Vec<u8>, String> {
    let parsed = pem::parse(text).map_err(|e| format!("not PEM: {e}"))?;
    if parsed.tag() != tag {
        return Err(format!("PEM block is {:?}, expected {tag:?}", parsed.tag()));
    }
    Ok(parsed.into_contents())
}

fn encode_pem(tag: &str, der: &[u8]) -> String {
    pem::encode(&pem::Pem::new(tag, der))
}

/// Writes key material durably and atomically.
pub(crate) fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> Result<(), KeyError> {
    atomicfile::write(path, contents, mode, atomicfile::Sync::Durable).map_err(KeyError::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    const NOW: i64 = 1_750_000_000;

    #[test]
    fn a_new_key_is_written_with_private_permissions_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let (first, origin) = SigningKey::load_or_create(dir.path(), NOW).unwrap();
        assert_eq!(origin, KeyOrigin::Created);
        let mode = fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let (second, origin) = SigningKey::load_or_create(dir.path(), NOW + 100).unwrap();
        assert_eq!(origin, KeyOrigin::Loaded);
        assert_eq!(first.kid(), second.kid());
        assert_eq!(first.jwk(), second.jwk());
    }

    #[test]
    fn a_corrupt_key_stops_loading_and_is_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(KEY_FILE), "garbage").unwrap();
        let err = SigningKey::load_or_create(dir.path(), NOW).unwrap_err();
        assert!(matches!(err, KeyError::Corrupt { .. }), "{err}");
        assert_eq!(
            fs::read_to_string(dir.path().join(KEY_FILE)).unwrap(),
            "garbage"
        );
    }

    #[test]
    fn a_certificate_of_another_key_is_refused() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        SigningKey::load_or_create(a.path(), NOW).unwrap();
        SigningKey::load_or_create(b.path(), NOW).unwrap();
        fs::copy(b.path().join(CERT_FILE), a.path().join(CERT_FILE)).unwrap();
        let err = SigningKey::load_or_create(a.path(), NOW).unwrap_err();
        assert!(err.to_string().contains("does not belong"), "{err}");
    }

    #[test]
    fn a_missing_certificate_is_recreated_for_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let (first, _) = SigningKey::load_or_create(dir.path(), NOW).unwrap();
        fs::remove_file(dir.path().join(CERT_FILE)).unwrap();
        let (second, origin) = SigningKey::load_or_create(dir.path(), NOW).unwrap();
        assert_eq!(origin, KeyOrigin::Loaded);
        assert_eq!(first.jwk().n, second.jwk().n);
    }

    #[test]
    fn debug_output_names_only_the_key_id() {
        let key = SigningKey::generate(NOW).unwrap();
        let shown = format!("{key:?}");
        assert!(shown.contains(key.kid()));
        assert!(!shown.contains("PRIVATE"));
        assert!(shown.len() < 100);
    }
}
