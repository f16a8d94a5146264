//! Key rotation on the real binary: through the admin API and through
//! `miemu keys rotate` while the server runs; tokens signed before a
//! rotation keep validating, and a restart keeps all of it.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::binary::{BIN, Served, env_value};
use crate::helpers::{free_port, published_key};

const ADMIN_TOKEN: &str = "keys-test-admin-token";

async fn token(served: &Served, resource: &str) -> String {
    let env = served.env_file("app");
    let body: Value = reqwest::Client::new()
        .get(env_value(&env, "IDENTITY_ENDPOINT"))
        .query(&[("api-version", "2019-08-01"), ("resource", resource)])
        .header("X-IDENTITY-HEADER", env_value(&env, "IDENTITY_HEADER"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

async fn jwks(served: &Served) -> Vec<Value> {
    let v: Value = reqwest::get(format!("{}/common/discovery/keys", served.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["keys"].as_array().unwrap().clone()
}

/// Verifies a token's signature with whichever published key its kid names.
fn verify(token: &str, keys: &[Value], audience: &str) -> String {
    let (kid, key) = published_key(token, keys);
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[audience]);
    jsonwebtoken::decode::<miemu::token::Claims>(token, &key, &validation).unwrap();
    kid
}

async fn start(keys: &Path, work: &Path, admin: &str) -> Served {
    Served::start_with(
        None,
        keys,
        work,
        &["--admin-listen", admin, "--admin-token", ADMIN_TOKEN],
    )
    .await
}

#[tokio::test]
async fn rotation_through_the_admin_api_keeps_old_tokens_valid_across_a_restart() {
    let work = tempfile::tempdir().unwrap();
    let keys = work.path().join("keys");
    let admin = format!("127.0.0.1:{}", free_port());
    let served = start(&keys, &work.path().join("a"), &admin).await;
    let before = token(&served, "api://before").await;
    let old_kid = verify(&before, &jwks(&served).await, "api://before");

    let rotated: Value = reqwest::Client::new()
        .post(format!("http://{admin}/keys/rotate"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let new_kid = rotated["signer"].as_str().unwrap().to_owned();
    assert_ne!(new_kid, old_kid);
    assert_eq!(rotated["published"], serde_json::json!([new_kid, old_kid]));

    let published = jwks(&served).await;
    assert_eq!(published.len(), 2);
    assert_eq!(
        verify(&before, &published, "api://before"),
        old_kid,
        "pre-rotation token still validates"
    );
    let after = token(&served, "api://after").await;
    assert_eq!(verify(&after, &published, "api://after"), new_kid);
    let (status, _, stderr) = served.stop().await;
    assert!(status.success(), "{stderr}");

    let again = start(
        &keys,
        &work.path().join("b"),
        &format!("127.0.0.1:{}", free_port()),
    )
    .await;
    let published = jwks(&again).await;
    assert_eq!(verify(&before, &published, "api://before"), old_kid);
    assert_eq!(
        verify(&token(&again, "api://x").await, &published, "api://x"),
        new_kid
    );
    again.stop().await;
}

#[tokio::test]
async fn a_running_server_picks_up_a_rotation_made_with_the_cli() {
    let work = tempfile::tempdir().unwrap();
    let keys = work.path().join("keys");
    let served = start(&keys, work.path(), &format!("127.0.0.1:{}", free_port())).await;
    let old_kid = verify(
        &token(&served, "api://0").await,
        &jwks(&served).await,
        "api://0",
    );

    let out = tokio::process::Command::new(BIN)
        .args(["keys", "rotate", "--key-dir"])
        .arg(&keys)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let new_kid = stdout
        .lines()
        .next()
        .unwrap()
        .trim_start_matches("signer")
        .trim()
        .to_owned();
    assert!(
        stdout.contains(&format!("published {old_kid} (retired)")),
        "{stdout}"
    );

    let mut switched = false;
    for i in 0..50 {
        let resource = format!("api://{}", i + 1);
        let kid = verify(
            &token(&served, &resource).await,
            &jwks(&served).await,
            &resource,
        );
        if kid == new_kid {
            switched = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        switched,
        "the server did not switch to the rotated key within 5 s"
    );
    let list = tokio::process::Command::new(BIN)
        .args(["keys", "list", "--key-dir"])
        .arg(&keys)
        .output()
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&list.stdout),
        format!("signer    {new_kid}\npublished {old_kid} (retired)\n")
    );
    served.stop().await;
}
