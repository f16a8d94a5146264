//! Token checks against the server's own JWKS, as a resource server would do
//! them: RS256 signature with the key named by `kid`, then the claims that
//! say whom the token is for. Each distinct token is verified once; later
//! answers carrying the same (cached) token must be for the same identity
//! and resource.

use std::collections::HashMap;
use std::sync::Mutex;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use crate::http::Conn;

/// Stop remembering tokens past this many (a broken cache would mint one per
/// request); they are still verified, just not memoised.
const MEMO_CAP: usize = 10_000;

pub(crate) struct Verifier {
    keys: HashMap<String, (Vec<u8>, Vec<u8>)>,
    issuer: String,
    tenant_id: String,
    lifetime_secs: i64,
    /// token → (client_id, resource) it was verified for.
    memo: Mutex<HashMap<String, (String, String)>>,
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kid: String,
    n: String,
    e: String,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: String,
}

#[derive(Deserialize)]
struct Claims {
    aud: String,
    iss: String,
    iat: i64,
    nbf: i64,
    exp: i64,
    appid: String,
    oid: String,
    sub: String,
    tid: String,
}

impl Verifier {
    /// Fetches the tenant's JWKS over HTTP.
    pub(crate) async fn fetch(
        addr: &str,
        tenant_id: &str,
        lifetime_secs: i64,
    ) -> anyhow::Result<Self> {
        let mut conn = Conn::connect(addr)
            .await
            .context("connecting for the JWKS")?;
        let req = format!(
            "GET /{tenant_id}/discovery/keys HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        );
        let resp = conn
            .roundtrip(req.as_bytes())
            .await
            .map_err(|f| anyhow::anyhow!("JWKS request failed: {f:?}"))?;
        if resp.status != 200 {
            bail!("JWKS answered {}", resp.status);
        }
        let jwks: Jwks = serde_json::from_slice(&resp.body).context("parsing the JWKS")?;
        let mut keys = HashMap::new();
        for k in jwks.keys {
            keys.insert(
                k.kid,
                (URL_SAFE_NO_PAD.decode(k.n)?, URL_SAFE_NO_PAD.decode(k.e)?),
            );
        }
        if keys.is_empty() {
            bail!("the JWKS has no keys");
        }
        Ok(Self {
            keys,
            issuer: format!("https://sts.windows.net/{tenant_id}/"),
            tenant_id: tenant_id.to_owned(),
            lifetime_secs,
            memo: Mutex::new(HashMap::new()),
        })
    }

    pub(crate) fn key_count(&self) -> usize {
        self.keys.len()
    }

    pub(crate) fn verified_count(&self) -> usize {
        self.memo.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Checks `jwt` is a valid token for this identity and resource.
    pub(crate) fn check(
        &self,
        jwt: &str,
        client_id: &str,
        principal_id: &str,
        resource: &str,
    ) -> Result<(), String> {
        // The lock is held only for the lookup, never across the RSA check.
        if let Some((c, r)) = self.memo.lock().map_err(|_| "memo poisoned")?.get(jwt) {
            return if c == client_id && r == resource {
                Ok(())
            } else {
                Err(format!(
                    "token verified for {c} / {r} served for {client_id} / {resource}"
                ))
            };
        }
        self.verify(jwt, client_id, principal_id, resource)?;
        let mut memo = self.memo.lock().map_err(|_| "memo poisoned")?;
        if memo.len() < MEMO_CAP {
            memo.insert(jwt.to_owned(), (client_id.to_owned(), resource.to_owned()));
        }
        Ok(())
    }

    fn verify(
        &self,
        jwt: &str,
        client_id: &str,
        principal_id: &str,
        resource: &str,
    ) -> Result<(), String> {
        let mut parts = jwt.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("not three JWT segments".to_owned());
        };
        let decode = |seg: &str| {
            URL_SAFE_NO_PAD
                .decode(seg)
                .map_err(|e| format!("base64: {e}"))
        };
        let header: Header =
            serde_json::from_slice(&decode(h)?).map_err(|e| format!("header: {e}"))?;
        if header.alg != "RS256" {
            return Err(format!("alg {}", header.alg));
        }
        let (n, e) = self
            .keys
            .get(&header.kid)
            .ok_or_else(|| format!("kid {} not in the JWKS", header.kid))?;
        let key = ring::signature::RsaPublicKeyComponents { n, e };
        key.verify(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            &jwt.as_bytes()[..h.len() + 1 + p.len()],
            &decode(s)?,
        )
        .map_err(|_| "bad signature".to_owned())?;
        let c: Claims = serde_json::from_slice(&decode(p)?).map_err(|e| format!("claims: {e}"))?;
        let checks = [
            (c.aud == resource, "aud"),
            (c.appid == client_id, "appid"),
            (c.oid == principal_id && c.sub == principal_id, "oid/sub"),
            (c.tid == self.tenant_id, "tid"),
            (c.iss == self.issuer, "iss"),
            (
                c.nbf <= c.iat && c.exp - c.iat == self.lifetime_secs,
                "lifetime",
            ),
        ];
        for (ok, what) in checks {
            if !ok {
                return Err(format!("claim {what} wrong"));
            }
        }
        Ok(())
    }
}
