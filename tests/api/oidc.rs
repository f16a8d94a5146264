//! Discovery and JWKS: what a resource server under test fetches.

use crate::helpers::{VAULT, spawn_app, spawn_app_with};

#[tokio::test]
async fn discovery_issuer_matches_tokens_and_points_at_the_jwks() {
    let app = spawn_app("default").await;
    let tenant = app.config.platform.tenant_id;
    for path in [
        format!("/{tenant}/.well-known/openid-configuration"),
        format!("/{tenant}/v2.0/.well-known/openid-configuration"),
    ] {
        let (status, doc) = app.get_json(&path).await;
        assert_eq!(status, 200);
        assert_eq!(doc["issuer"], format!("https://sts.windows.net/{tenant}/"));
        assert_eq!(
            doc["jwks_uri"],
            format!("{}/{tenant}/discovery/keys", app.base)
        );
        assert_eq!(doc["id_token_signing_alg_values_supported"][0], "RS256");
    }
    let body: serde_json::Value = app.token("app", VAULT, &[]).await.json().await.unwrap();
    let claims = app
        .verify(body["access_token"].as_str().unwrap(), VAULT)
        .await;
    assert_eq!(claims.iss, format!("https://sts.windows.net/{tenant}/"));
    app.stop().await;
}

#[tokio::test]
async fn jwks_carries_only_public_fields() {
    let app = spawn_app("default").await;
    let tenant = app.config.platform.tenant_id;
    for path in [
        format!("/{tenant}/discovery/keys"),
        "/common/discovery/keys".to_owned(),
    ] {
        let (status, jwks) = app.get_json(&path).await;
        assert_eq!(status, 200);
        let keys = jwks["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 1);
        let key = keys[0].as_object().unwrap();
        let mut fields: Vec<_> = key.keys().map(String::as_str).collect();
        fields.sort_unstable();
        assert_eq!(fields, ["e", "kid", "kty", "n", "use", "x5c", "x5t"]);
        assert_eq!(key["kty"], "RSA");
        assert_eq!(key["use"], "sig");
        assert_eq!(key["e"], "AQAB");
        assert_eq!(key["kid"], key["x5t"]);
    }
    app.stop().await;
}

#[tokio::test]
async fn public_url_and_issuer_settings_are_honoured() {
    let app = spawn_app_with("default", |t| {
        format!("{t}\n[server]\npublic_url = \"http://miemu.test:42356/\"\n[tokens]\nissuer = \"https://issuer.test/\"\n")
    })
    .await;
    let tenant = app.config.platform.tenant_id;
    let (_, doc) = app
        .get_json(&format!("/{tenant}/.well-known/openid-configuration"))
        .await;
    assert_eq!(doc["issuer"], "https://issuer.test/");
    assert_eq!(
        doc["jwks_uri"],
        format!("http://miemu.test:42356/{tenant}/discovery/keys")
    );
    app.stop().await;
}

#[tokio::test]
async fn unknown_tenants_are_refused() {
    let app = spawn_app("default").await;
    for path in [
        "/00000000-0000-0000-0000-000000000000/.well-known/openid-configuration",
        "/contoso.onmicrosoft.com/discovery/keys",
    ] {
        let (status, body) = app.get_json(path).await;
        assert_eq!(status, 400, "{path}");
        assert_eq!(body["error"], "invalid_tenant");
    }
    app.stop().await;
}
