//! `miemu decode`: a token's header and claims, readable. The signature is
//! neither verified nor printed (only its length).

use std::io::Read as _;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

pub(super) fn decode(token: &str) -> anyhow::Result<ExitCode> {
    let token = if token == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading standard input")?;
        s
    } else {
        token.to_owned()
    };
    print(token.trim())?;
    Ok(ExitCode::SUCCESS)
}

/// Prints header, claims (with readable times) and the signature length.
pub(super) fn print(jwt: &str) -> anyhow::Result<()> {
    let parts: Vec<&str> = jwt.split('.').collect();
    let [header, claims, signature] = parts.as_slice() else {
        bail!(
            "not a JWT: expected three dot-separated parts, found {}",
            parts.len()
        );
    };
    let header = part(header, "header")?;
    let claims = part(claims, "claims")?;
    let sig_len = URL_SAFE_NO_PAD
        .decode(signature)
        .map(|s| s.len())
        .unwrap_or(0);
    println!("header: {}", serde_json::to_string_pretty(&header)?);
    println!("claims: {}", serde_json::to_string_pretty(&claims)?);
    for name in ["iat", "nbf", "exp"] {
        if let Some(t) = claims[name].as_i64() {
            let when = time::OffsetDateTime::from_unix_timestamp(t)
                .ok()
                .and_then(|d| {
                    d.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .unwrap_or_else(|| "out of range".to_owned());
            println!("{name}: {t} = {when}");
        }
    }
    println!("signature: {sig_len} bytes (not verified)");
    Ok(())
}

fn part(b64: &str, what: &str) -> anyhow::Result<serde_json::Value> {
    let bytes = URL_SAFE_NO_PAD
        .decode(b64.trim_end_matches('='))
        .with_context(|| format!("the {what} is not base64url"))?;
    serde_json::from_slice(&bytes).with_context(|| format!("the {what} is not JSON"))
}
