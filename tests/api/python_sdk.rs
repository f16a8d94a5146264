//! Python `azure-identity`'s `ManagedIdentityCredential`, unchanged, against
//! the real binary (system identity and `client_id`). The full SDK matrix is
//! `tests/sdk/`; this keeps the essential case in `cargo test`. The virtual
//! environment comes from `scripts/setup-sdk.sh`; without it the test fails.

use std::path::Path;
use std::time::Duration;

use crate::binary::{Served, env_value};

const SCRIPT: &str = r#"
import json, sys
from azure.identity import ManagedIdentityCredential
client_id = sys.argv[1] if len(sys.argv) > 1 else None
cred = ManagedIdentityCredential(client_id=client_id) if client_id else ManagedIdentityCredential()
token = cred.get_token("https://vault.azure.net/.default")
print(json.dumps({"token": token.token, "expires_on": token.expires_on}))
"#;

fn python() -> std::path::PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/python/.venv/bin/python");
    assert!(
        venv.exists(),
        "{} is missing: run scripts/setup-sdk.sh first",
        venv.display()
    );
    venv
}

#[tokio::test]
async fn python_azure_identity_gets_verifiable_tokens_for_system_and_client_id() {
    let python = python();
    let work = tempfile::tempdir().unwrap();
    let served = Served::start(None, &work.path().join("keys"), work.path()).await;
    let app_env = served.env_file("app");
    let endpoint = env_value(&app_env, "IDENTITY_ENDPOINT");
    let secret = env_value(&app_env, "IDENTITY_HEADER");
    let config: serde_json::Value = serde_json::from_slice(
        &tokio::process::Command::new(crate::binary::BIN)
            .args(["config", "--format", "json"])
            .output()
            .await
            .unwrap()
            .stdout,
    )
    .unwrap();
    let identities = config["identities"].as_array().unwrap();
    let system = identities.iter().find(|i| i["kind"] == "system").unwrap();
    let reader = identities
        .iter()
        .find(|i| i["name"] == "storage-reader")
        .unwrap();

    let tenant = config["tenant_id"].as_str().unwrap();
    let discovery: serde_json::Value = reqwest::get(format!(
        "{}/{tenant}/.well-known/openid-configuration",
        served.base
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let jwks: serde_json::Value = reqwest::get(discovery["jwks_uri"].as_str().unwrap())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jwk = &jwks["keys"][0];
    let key = jsonwebtoken::DecodingKey::from_rsa_components(
        jwk["n"].as_str().unwrap(),
        jwk["e"].as_str().unwrap(),
    )
    .unwrap();

    for (identity, arg) in [(system, None), (reader, reader["client_id"].as_str())] {
        let mut cmd = tokio::process::Command::new(&python);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("IDENTITY_ENDPOINT", &endpoint)
            .env("IDENTITY_HEADER", &secret)
            // Anything that is not loopback goes to a closed port and fails.
            .env("HTTPS_PROXY", "http://127.0.0.1:9")
            .env("HTTP_PROXY", "http://127.0.0.1:9")
            .env("NO_PROXY", "127.0.0.1,localhost")
            .args(["-c", SCRIPT]);
        if let Some(a) = arg {
            cmd.arg(a);
        }
        let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
            .await
            .unwrap()
            .unwrap();
        assert!(
            out.status.success(),
            "python failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.set_audience(&["https://vault.azure.net"]);
        validation.set_issuer(&[discovery["issuer"].as_str().unwrap()]);
        let claims = jsonwebtoken::decode::<miemu::token::Claims>(
            result["token"].as_str().unwrap(),
            &key,
            &validation,
        )
        .unwrap()
        .claims;
        assert_eq!(claims.appid, identity["client_id"].as_str().unwrap());
        assert_eq!(claims.oid, identity["principal_id"].as_str().unwrap());
        assert_eq!(result["expires_on"].as_i64().unwrap(), claims.exp);
    }
    let (status, _, _) = served.stop().await;
    assert!(status.success());
}
