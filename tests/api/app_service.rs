//! The token endpoint, status by status and body by body.

use serde_json::Value;

use crate::helpers::{NOW, VAULT, assert_error, assert_guid, spawn_app};

const NOT_FOUND: &str = "No User Assigned or Delegated Managed Identity found for specified ClientId/ResourceId/PrincipalId.";

#[tokio::test]
async fn system_identity_token_has_exactly_the_platform_fields() {
    let app = spawn_app("default").await;
    let resp = app.token("app", VAULT, &[]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body: Value = resp.json().await.unwrap();
    let obj = body.as_object().unwrap();
    let keys: Vec<_> = obj.keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 5, "{keys:?}");
    for k in [
        "access_token",
        "expires_on",
        "resource",
        "token_type",
        "client_id",
    ] {
        assert!(obj[k].is_string(), "{k} must be a JSON string");
    }
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["resource"], VAULT);
    let system = app.identity("system");
    assert_eq!(body["client_id"], system.client_id.to_string());

    let claims = app
        .verify(body["access_token"].as_str().unwrap(), VAULT)
        .await;
    assert_eq!(body["expires_on"], claims.exp.to_string());
    assert_eq!(claims.exp - claims.iat, 86_700);
    assert_eq!(claims.iat, NOW);
    assert_eq!(claims.tid, app.config.platform.tenant_id.to_string());
    assert_eq!(claims.oid, system.principal_id.to_string());
    assert_eq!(claims.sub, claims.oid);
    assert_eq!(claims.appid, system.client_id.to_string());
    assert_eq!(claims.xms_mirid, app.config.platform.app.resource_id());
    assert!(
        claims
            .xms_mirid
            .contains("/providers/Microsoft.App/containerApps/miemu-app")
    );
    assert_eq!(claims.xms_az_rid, None);
    assert_eq!(
        claims.iss,
        format!("https://sts.windows.net/{}/", claims.tid)
    );
    app.stop().await;
}

#[tokio::test]
async fn user_identities_are_found_by_every_selector_in_any_case() {
    let app = spawn_app("default").await;
    let reader = app.identity("storage-reader");
    let client = reader.client_id.to_string().to_uppercase();
    let principal = reader.principal_id.to_string();
    let arm = reader
        .resource_id
        .replace("resourcegroups", "resourceGroups");
    for (name, value) in [
        ("client_id", client.as_str()),
        ("object_id", principal.as_str()),
        ("principal_id", principal.as_str()),
        ("mi_res_id", arm.as_str()),
        ("msi_res_id", arm.as_str()),
    ] {
        let resp = app.token("app", VAULT, &[(name, value)]).await;
        assert_eq!(resp.status(), 200, "{name}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["client_id"], reader.client_id.to_string(), "{name}");
        let claims = app
            .verify(body["access_token"].as_str().unwrap(), VAULT)
            .await;
        assert_eq!(claims.oid, reader.principal_id.to_string());
        assert_eq!(claims.xms_mirid, reader.resource_id);
        assert_eq!(
            claims.xms_az_rid.as_deref(),
            Some(app.config.platform.app.resource_id().as_str())
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn unknown_identities_get_the_platform_400() {
    let app = spawn_app("default").await;
    for (name, value) in [
        ("client_id", "00000000-0000-0000-0000-000000000001"),
        ("client_id", "not-a-guid"),
        ("object_id", "00000000-0000-0000-0000-000000000002"),
        (
            "mi_res_id",
            "/subscriptions/x/resourcegroups/y/providers/Microsoft.ManagedIdentity/userAssignedIdentities/z",
        ),
    ] {
        let body = assert_error(
            app.token("app", VAULT, &[(name, value)]).await,
            400,
            NOT_FOUND,
        )
        .await;
        assert_eq!(body["message"], NOT_FOUND);
    }
    app.stop().await;
}

#[tokio::test]
async fn an_app_without_system_identity_answers_400_to_unnamed_requests() {
    let app = spawn_app("webapp").await;
    assert_error(app.token("site", VAULT, &[]).await, 400, NOT_FOUND).await;
    let id = app.identity("storefront-identity");
    let resp = app
        .token("site", VAULT, &[("client_id", &id.client_id.to_string())])
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let claims = app
        .verify(body["access_token"].as_str().unwrap(), VAULT)
        .await;
    assert!(
        claims
            .xms_az_rid
            .unwrap()
            .contains("/providers/Microsoft.Web/sites/storefront")
    );
    app.stop().await;
}

#[tokio::test]
async fn missing_or_wrong_secret_gets_403_with_an_empty_body() {
    let app = spawn_app("default").await;
    let query = "api-version=2019-08-01&resource=https%3A%2F%2Fvault.azure.net";
    let wrong = format!("{}x", app.secret("app"));
    for secret in [None, Some(""), Some(wrong.as_str()), Some("app-secret")] {
        let resp = app.token_raw(query, secret).await;
        assert_eq!(resp.status(), 403, "{secret:?}");
        assert_eq!(resp.headers()["content-length"], "0");
        assert!(resp.bytes().await.unwrap().is_empty());
    }
    app.stop().await;
}

#[tokio::test]
async fn the_header_name_is_case_insensitive() {
    let app = spawn_app("default").await;
    for name in [
        "x-identity-header",
        "X-Identity-Header",
        "X-IDENTITY-HEADER",
    ] {
        let resp = app
            .http
            .get(format!(
                "{}/msi/token?api-version=2019-08-01&resource=api%3A%2F%2Fx",
                app.base
            ))
            .header(name, app.secret("app"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{name}");
    }
    app.stop().await;
}

#[tokio::test]
async fn init_containers_are_refused_by_name_and_get_no_token() {
    let app = spawn_app("default").await;
    let resp = app.token("init", VAULT, &[]).await;
    let body = assert_error(resp, 403, "not available to init containers").await;
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("'init'"), "{message}");
    assert!(body.get("access_token").is_none() && body.get("expires_on").is_none());
    app.stop().await;
}

#[tokio::test]
async fn lifecycles_decide_which_container_gets_which_identity() {
    let app = spawn_app("multi-identity").await;
    let id = |n: &str| app.identity(n).client_id.to_string();
    let cases = [
        ("api", "shared-writer", 200),
        ("migrate", "shared-writer", 200),
        ("migrate", "migrations", 200),
        ("api", "migrations", 400),
        ("migrate", "orders-reader", 400),
        ("api", "registry-pull", 400),
        ("migrate", "registry-pull", 400),
        ("worker", "orders-reader", 200),
    ];
    for (container, identity, status) in cases {
        let resp = app
            .token(container, VAULT, &[("client_id", &id(identity))])
            .await;
        if status == 200 {
            assert_eq!(resp.status(), 200, "{container} -> {identity}");
        } else {
            assert_error(resp, status, NOT_FOUND).await;
        }
    }
    // The init container has an identity open to it, so an unnamed request
    // (the system identity, main-only) is "not found", not refused outright.
    assert_error(app.token("migrate", VAULT, &[]).await, 400, NOT_FOUND).await;
    app.stop().await;
}

#[tokio::test]
async fn malformed_requests_get_400_saying_what_is_wrong() {
    let app = spawn_app("default").await;
    let s = Some(app.secret("app"));
    let cases = [
        (
            "resource=api%3A%2F%2Fx",
            "api-version query parameter is required",
        ),
        (
            "api-version=2017-09-01&resource=api%3A%2F%2Fx",
            "api-version '2017-09-01' is not supported",
        ),
        (
            "api-version=2019-08-01",
            "resource query parameter is required",
        ),
        (
            "api-version=2019-08-01&resource=",
            "resource query parameter is required",
        ),
        (
            "api-version=2019-08-01&resource=not%20a%20uri",
            "Invalid resource",
        ),
        (
            "api-version=2019-08-01&resource=a&resource=b",
            "'resource' is given more than once",
        ),
        (
            "api-version=2019-08-01&resource=api%3A%2F%2Fx&client_id=a&object_id=b",
            "Only one of",
        ),
        ("api-version=2019-08-01&resource=%FF%FE", "not valid UTF-8"),
    ];
    for (query, message) in cases {
        let body = assert_error(app.token_raw(query, s).await, 400, message).await;
        assert!(body.get("access_token").is_none(), "{query}");
    }
    app.stop().await;
}

#[tokio::test]
async fn resource_is_decoded_stripped_of_default_and_echoed() {
    let app = spawn_app("default").await;
    let s = Some(app.secret("app"));
    let cases = [
        (
            "https%3A%2F%2Fmanagement.azure.com%2F%2F.default",
            "https://management.azure.com/",
        ),
        ("https://storage.azure.com/", "https://storage.azure.com/"),
        ("api%3A%2F%2Fmy%2Bapi", "api://my+api"),
        (
            "00000002-0000-0000-c000-000000000000",
            "00000002-0000-0000-c000-000000000000",
        ),
    ];
    for (raw, expected) in cases {
        let resp = app
            .token_raw(&format!("api-version=2019-08-01&resource={raw}"), s)
            .await;
        assert_eq!(resp.status(), 200, "{raw}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["resource"], expected);
        let claims = app
            .verify(body["access_token"].as_str().unwrap(), expected)
            .await;
        assert_eq!(claims.aud, expected);
    }
    app.stop().await;
}

#[tokio::test]
async fn every_path_spelling_of_the_platform_works_and_other_methods_get_405() {
    let app = spawn_app("default").await;
    for path in ["/msi/token", "/msi/token/", "/MSI/token", "/MSI/token/"] {
        let url = format!(
            "{}{path}?api-version=2019-08-01&resource=api%3A%2F%2Fx",
            app.base
        );
        let ok = app
            .http
            .get(&url)
            .header("x-identity-header", app.secret("app"))
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), 200, "{path}");
        let post = app
            .http
            .post(&url)
            .header("x-identity-header", app.secret("app"))
            .send()
            .await
            .unwrap();
        assert_eq!(post.status(), 405, "{path}");
    }
    let (status, body) = app.get_json("/msi/other").await;
    assert_eq!(status, 404);
    assert_guid(&body["correlationId"]);
    app.stop().await;
}

#[tokio::test]
async fn the_same_token_is_served_until_five_minutes_before_expiry() {
    let app = spawn_app("default").await;
    let get = || async {
        let body: Value = app.token("app", VAULT, &[]).await.json().await.unwrap();
        (
            body["access_token"].as_str().unwrap().to_owned(),
            body["expires_on"].as_str().unwrap().to_owned(),
        )
    };
    let first = get().await;
    app.clock.advance(60);
    assert_eq!(get().await, first, "cached within the lifetime");
    let other: Value = app
        .token("app", "api://other", &[])
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(
        other["access_token"].as_str().unwrap(),
        first.0,
        "cache is per resource"
    );
    app.clock.advance(86_700 - 60 - 300);
    let renewed = get().await;
    assert_ne!(renewed, first, "renewed 5 minutes before expiry");
    assert_eq!(renewed.1, (NOW + 86_700 - 300 + 86_700).to_string());
    app.stop().await;
}

#[tokio::test]
async fn with_the_cache_off_every_request_gets_a_fresh_token() {
    let app =
        crate::helpers::spawn_app_with("default", |t| format!("{t}\n[tokens]\ncache = false\n"))
            .await;
    let a: Value = app.token("app", VAULT, &[]).await.json().await.unwrap();
    let b: Value = app.token("app", VAULT, &[]).await.json().await.unwrap();
    assert_ne!(a["access_token"], b["access_token"]);
    let ca = app.verify(a["access_token"].as_str().unwrap(), VAULT).await;
    let cb = app.verify(b["access_token"].as_str().unwrap(), VAULT).await;
    assert_ne!(ca.uti, cb.uti);
    app.stop().await;
}

#[tokio::test]
async fn extra_headers_and_parameters_sent_by_sdks_are_ignored() {
    let app = spawn_app("default").await;
    let resp = app
        .http
        .get(format!(
            "{}/msi/token?api-version=2019-08-01&resource=api%3A%2F%2Fx&xms_cc=cp1&token_sha256_to_refresh=abc&client_id=",
            app.base
        ))
        .header("x-identity-header", app.secret("app"))
        .header("Metadata", "true")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("x-ms-client-request-id", "1234")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    app.stop().await;
}

/// `GET` on the token path is answered inline, `HEAD` (and everything else)
/// through the router: both ways must give the same answer, carry a request
/// id, and be counted once.
#[tokio::test]
async fn the_inline_token_path_and_the_routed_one_answer_alike() {
    let app = spawn_app("default").await;
    let url = format!(
        "{}/msi/token?api-version=2019-08-01&resource=api%3A%2F%2Fx",
        app.base
    );
    let send = |method: reqwest::Method, container: &str, request_id: Option<&'static str>| {
        let mut req = app
            .http
            .request(method, &url)
            .header("x-identity-header", app.secret(container));
        if let Some(id) = request_id {
            req = req.header("x-request-id", id);
        }
        req.send()
    };
    let get = send(reqwest::Method::GET, "app", None).await.unwrap();
    let head = send(reqwest::Method::HEAD, "app", None).await.unwrap();
    assert_eq!(get.status(), 200);
    assert_eq!(head.status(), 200);
    for name in ["content-type", "cache-control", "content-length"] {
        assert_eq!(get.headers()[name], head.headers()[name], "{name}");
    }
    // Generated ids: a per-process prefix and a sequence number.
    let ids: Vec<String> = [&get, &head]
        .iter()
        .map(|r| r.headers()["x-request-id"].to_str().unwrap().to_owned())
        .collect();
    let (prefix, _) = ids[0].split_once('-').unwrap();
    assert_eq!(prefix.len(), 8);
    assert!(prefix.bytes().all(|b| b.is_ascii_hexdigit()), "{}", ids[0]);
    assert!(ids[1].starts_with(&format!("{prefix}-")), "{ids:?}");
    assert_ne!(ids[0], ids[1]);
    // A client's own id is kept, both ways.
    for method in [reqwest::Method::GET, reqwest::Method::HEAD] {
        let resp = send(method.clone(), "app", Some("client-id-42"))
            .await
            .unwrap();
        assert_eq!(resp.headers()["x-request-id"], "client-id-42", "{method}");
    }
    let body: Value = get.json().await.unwrap();
    assert_eq!(body["resource"], "api://x");

    // A refusal inline has the platform's shape, as through the router.
    let refused = send(reqwest::Method::GET, "init", None).await.unwrap();
    assert_eq!(refused.status(), 403);
    assert!(refused.headers().contains_key("x-request-id"));
    let post = send(reqwest::Method::POST, "app", None).await.unwrap();
    assert_eq!(post.status(), 405);

    let metrics = app.metrics().await;
    for line in [
        "miemu_requests_total{endpoint=\"token\",status=\"200\",container=\"app\"} 4",
        "miemu_requests_total{endpoint=\"token\",status=\"403\",container=\"init\"} 1",
        "miemu_requests_total{endpoint=\"token\",status=\"405\",container=\"-\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
    app.stop().await;
}
