//! Python `azure-identity`'s `ManagedIdentityCredential`, unchanged, against
//! the real binary (system identity and `client_id`). The full SDK matrix is
//! `tests/sdk/`; this keeps the essential case in `cargo test`. The virtual
//! environment comes from `scripts/setup-sdk.sh`; without it the test fails.

use std::path::Path;
use std::time::Duration;

use crate::binary::{Served, env_value};
use crate::helpers::free_port;

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

async fn run_python(python: &Path, endpoint: &str, secret: &str) -> std::process::Output {
    let mut cmd = tokio::process::Command::new(python);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("IDENTITY_ENDPOINT", endpoint)
        .env("IDENTITY_HEADER", secret)
        .env("HTTPS_PROXY", "http://127.0.0.1:9")
        .env("HTTP_PROXY", "http://127.0.0.1:9")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .args(["-c", SCRIPT]);
    tokio::time::timeout(Duration::from_secs(90), cmd.output())
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn python_azure_identity_recovers_from_a_503_burst_and_a_secret_rotation() {
    const ADMIN_TOKEN: &str = "python-test-admin-token";
    let python = python();
    let work = tempfile::tempdir().unwrap();
    let admin = format!("127.0.0.1:{}", free_port());
    let served = Served::start_with(
        None,
        &work.path().join("keys"),
        work.path(),
        &["--admin-listen", &admin, "--admin-token", ADMIN_TOKEN],
    )
    .await;
    let http = reqwest::Client::new();
    let admin_url = |path: &str| format!("http://{admin}{path}");
    let app_env = served.env_file("app");
    let endpoint = env_value(&app_env, "IDENTITY_ENDPOINT");
    let old_secret = env_value(&app_env, "IDENTITY_HEADER");

    // Three 503s with Retry-After: 1, then normal answers. azure-core retries
    // and the credential gets its token.
    let fault = http
        .post(admin_url("/faults"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({"kind": "status", "status": 503, "count": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(fault.status(), 201);
    let out = run_python(&python, &endpoint, &old_secret).await;
    assert!(
        out.status.success(),
        "no recovery from the 503 burst:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log: serde_json::Value = http
        .get(admin_url("/requests?container=app"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let outcomes: Vec<_> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["fault", "fault", "fault", "issued"]);

    // Rotate the app container's secret: the env file is rewritten, a client
    // still holding the old secret is refused, a recreated one succeeds.
    let rotated: serde_json::Value = http
        .post(admin_url("/containers/app/rotate-secret"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let new_secret = env_value(&app_env, "IDENTITY_HEADER");
    assert_eq!(rotated["secret"], new_secret.as_str());
    assert_ne!(new_secret, old_secret);
    let stale = run_python(&python, &endpoint, &old_secret).await;
    assert!(!stale.status.success(), "the old secret still works");
    let fresh = run_python(&python, &endpoint, &new_secret).await;
    assert!(
        fresh.status.success(),
        "the new secret fails:\n{}",
        String::from_utf8_lossy(&fresh.stderr)
    );

    let (status, stdout, stderr) = served.stop().await;
    assert!(status.success());
    assert!(
        stdout.contains(&format!("admin API       http://{admin}")),
        "{stdout}"
    );
    for secret in [&old_secret, &new_secret] {
        assert!(
            !stderr.contains(secret.as_str()),
            "a secret leaked into the log"
        );
    }
    assert!(
        !stderr.contains(ADMIN_TOKEN),
        "the admin token leaked into the log"
    );
}
