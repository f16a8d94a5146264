//! The admin API: identity lifecycle, secret rotation, reload, the request
//! log, fault injection, readiness and metrics, over real HTTP.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{NOW, TestApp, VAULT, assert_error, spawn_app, spawn_app_from_file};

const NOT_FOUND: &str = "No User Assigned or Delegated Managed Identity found";

async fn json_of(resp: reqwest::Response) -> Value {
    resp.json().await.unwrap()
}

async fn admin_json(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = app.admin(method, path);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        },
    )
}

async fn token_status(app: &TestApp, container: &str, extra: &[(&str, &str)]) -> u16 {
    let secret = app.live_secret(container);
    let mut query = vec![("api-version", "2019-08-01"), ("resource", VAULT)];
    query.extend_from_slice(extra);
    app.http
        .get(format!("{}/msi/token", app.base))
        .query(&query)
        .header("X-IDENTITY-HEADER", secret)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn the_admin_api_refuses_requests_without_its_token() {
    let app = spawn_app("default").await;
    for auth in [
        None,
        Some("Bearer wrong-token"),
        Some("admin-token-for-tests-only"),
    ] {
        let mut req = app.http.get(format!("{}/identities", app.admin_base));
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401, "{auth:?}");
        assert_eq!(resp.headers()["www-authenticate"], "Bearer");
        let body = json_of(resp).await;
        assert!(body["error"].as_str().unwrap().contains("Bearer"));
    }
    app.stop().await;
}

#[tokio::test]
async fn identities_can_be_added_changed_and_removed_while_running() {
    let app = spawn_app("default").await;
    let (status, list) = admin_json(&app, Method::GET, "/identities", None).await;
    assert_eq!(status, 200);
    assert_eq!(list.as_array().unwrap().len(), 3);

    // Add: ids derived, usable at once.
    let (status, added) = admin_json(
        &app,
        Method::POST,
        "/identities",
        Some(json!({"name": "orders-writer"})),
    )
    .await;
    assert_eq!(status, 201, "{added}");
    let client_id = added["client_id"].as_str().unwrap().to_owned();
    assert_eq!(added["kind"], "user");
    assert!(
        added["resource_id"]
            .as_str()
            .unwrap()
            .ends_with("/userAssignedIdentities/orders-writer")
    );
    let resp = app.token("app", VAULT, &[("client_id", &client_id)]).await;
    assert_eq!(resp.status(), 200);
    let claims = app
        .verify(json_of(resp).await["access_token"].as_str().unwrap(), VAULT)
        .await;
    assert_eq!(claims.appid, client_id);

    // Conflicts and invalid input are refused with a message.
    let (status, body) = admin_json(
        &app,
        Method::POST,
        "/identities",
        Some(json!({"name": "orders-writer"})),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = admin_json(
        &app,
        Method::POST,
        "/identities",
        Some(json!({"name": "x1", "client_id": "nope", "lifecycle": "sometimes"})),
    )
    .await;
    assert_eq!(status, 422);
    let message = body["error"].as_str().unwrap();
    assert!(
        message.contains("client_id") && message.contains("lifecycle"),
        "{message}"
    );
    let (status, _) = admin_json(
        &app,
        Method::POST,
        "/identities",
        Some(json!({"nme": "typo"})),
    )
    .await;
    assert_eq!(status, 422);

    // Change: lifecycle none hides it; a new client id replaces the old one.
    let (status, body) = admin_json(
        &app,
        Method::PATCH,
        "/identities/orders-writer",
        Some(json!({"lifecycle": "none"})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["lifecycle"], "none");
    assert_eq!(
        token_status(&app, "app", &[("client_id", &client_id)]).await,
        400
    );
    let new_id = "3f0c4a52-6a0e-4b8e-9d7e-2f6a1c9b8d99";
    let (status, _) = admin_json(
        &app,
        Method::PATCH,
        "/identities/orders-writer",
        Some(json!({"lifecycle": "main", "client_id": new_id})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        token_status(&app, "app", &[("client_id", new_id)]).await,
        200
    );
    assert_eq!(
        token_status(&app, "app", &[("client_id", &client_id)]).await,
        400
    );

    // Remove: gone at once, cached tokens included.
    let (status, _) = admin_json(&app, Method::DELETE, "/identities/orders-writer", None).await;
    assert_eq!(status, 204);
    assert_error(
        app.token("app", VAULT, &[("client_id", new_id)]).await,
        400,
        NOT_FOUND,
    )
    .await;
    let (status, _) = admin_json(&app, Method::DELETE, "/identities/orders-writer", None).await;
    assert_eq!(status, 404);
    app.stop().await;
}

#[tokio::test]
async fn removing_an_identity_drops_its_cached_token_and_keeps_the_others() {
    let app = spawn_app("default").await;
    let reader = app.identity("storage-reader").client_id.to_string();
    let first_system = json_of(app.token("app", VAULT, &[]).await).await;
    assert_eq!(
        token_status(&app, "app", &[("client_id", &reader)]).await,
        200
    );
    let (status, _) = admin_json(&app, Method::DELETE, "/identities/storage-reader", None).await;
    assert_eq!(status, 204);
    assert_eq!(
        token_status(&app, "app", &[("client_id", &reader)]).await,
        400
    );
    // The untouched system identity keeps its cached token.
    let again = json_of(app.token("app", VAULT, &[]).await).await;
    assert_eq!(again["access_token"], first_system["access_token"]);
    app.stop().await;
}

#[tokio::test]
async fn the_system_identity_can_be_disabled_and_enabled() {
    let app = spawn_app("default").await;
    let (status, _) = admin_json(&app, Method::DELETE, "/identities/system", None).await;
    assert_eq!(status, 204);
    assert_error(app.token("app", VAULT, &[]).await, 400, NOT_FOUND).await;
    let (status, body) = admin_json(
        &app,
        Method::PUT,
        "/identities/system",
        Some(json!({"lifecycle": "all"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["lifecycle"], "all");
    assert_eq!(token_status(&app, "app", &[]).await, 200);
    // Open to init containers now: the init container gets a token too.
    assert_eq!(token_status(&app, "init", &[]).await, 200);
    app.stop().await;
}

#[tokio::test]
async fn rotating_a_secret_locks_out_the_old_one() {
    let app = spawn_app("default").await;
    let old = app.live_secret("app");
    let (status, list) = admin_json(&app, Method::GET, "/containers", None).await;
    assert_eq!(status, 200);
    assert_eq!(list[1]["kind"], "init");
    assert!(
        !list.to_string().contains(&old),
        "container listing shows no secrets"
    );
    let (status, body) =
        admin_json(&app, Method::POST, "/containers/app/rotate-secret", None).await;
    assert_eq!(status, 200);
    let new = body["secret"].as_str().unwrap();
    assert_ne!(new, old);
    let query = "api-version=2019-08-01&resource=api%3A%2F%2Fx";
    assert_eq!(app.token_raw(query, Some(&old)).await.status(), 403);
    assert_eq!(app.token_raw(query, Some(new)).await.status(), 200);
    let (status, _) = admin_json(&app, Method::POST, "/containers/nope/rotate-secret", None).await;
    assert_eq!(status, 404);
    app.stop().await;
}

fn config_with(issuer: &str, identity: &str, client_id: &str) -> String {
    format!(
        r#"
[system_identity]
[[user_identities]]
name = "{identity}"
client_id = "{client_id}"
[[containers]]
name = "app"
secret = "app-secret-for-tests-only"
[tokens]
issuer = "{issuer}"
"#
    )
}

const CA: &str = "0000000a-0000-4000-8000-00000000000a";
const CB: &str = "0000000b-0000-4000-8000-00000000000b";

#[tokio::test]
async fn reload_applies_a_valid_file_and_keeps_serving_on_an_invalid_one() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("miemu.toml");
    std::fs::write(&file, config_with("https://a.test/", "alpha", CA)).unwrap();
    let app = spawn_app_from_file(&file).await;
    assert_eq!(token_status(&app, "app", &[("client_id", CA)]).await, 200);

    std::fs::write(&file, config_with("https://b.test/", "beta", CB)).unwrap();
    let (status, body) = admin_json(&app, Method::POST, "/reload", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(token_status(&app, "app", &[("client_id", CA)]).await, 400);
    assert_eq!(token_status(&app, "app", &[("client_id", CB)]).await, 200);
    assert_eq!(app.live_secret("app"), "app-secret-for-tests-only");

    std::fs::write(
        &file,
        "tenant_id = \"broken\"\n[[containers]]\nname = \"app\"\n",
    )
    .unwrap();
    let (status, body) = admin_json(&app, Method::POST, "/reload", None).await;
    assert_eq!(status, 422);
    assert!(
        body["error"].as_str().unwrap().contains("tenant_id"),
        "{body}"
    );
    assert_eq!(
        token_status(&app, "app", &[("client_id", CB)]).await,
        200,
        "old config keeps serving"
    );
    let (_, status_doc) = admin_json(&app, Method::GET, "/status", None).await;
    assert_eq!(status_doc["reload"]["ok"], false);
    assert!(
        status_doc["reload"]["error"]
            .as_str()
            .unwrap()
            .contains("tenant_id")
    );
    app.stop().await;
}

#[tokio::test]
async fn a_changed_file_is_picked_up_without_being_asked() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("miemu.toml");
    std::fs::write(&file, config_with("https://a.test/", "alpha", CA)).unwrap();
    let app = spawn_app_from_file(&file).await;
    std::fs::write(&file, config_with("https://a.test/", "beta", CB)).unwrap();
    let mut picked_up = false;
    for _ in 0..100 {
        if token_status(&app, "app", &[("client_id", CB)]).await == 200 {
            picked_up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        picked_up,
        "the watcher did not apply the new file within 10 s"
    );
    app.stop().await;
}

#[tokio::test]
async fn reloads_under_load_never_fail_a_request_or_mix_two_configurations() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("miemu.toml");
    let a = config_with("https://a.test/", "alpha", CA);
    let b = config_with("https://b.test/", "beta", CB);
    std::fs::write(&file, &a).unwrap();
    let app = std::sync::Arc::new(spawn_app_from_file(&file).await);

    let mut clients = Vec::new();
    for worker in 0..4 {
        let app = app.clone();
        clients.push(tokio::spawn(async move {
            let mut seen = (0, 0);
            for i in 0..150 {
                let id = if (i + worker) % 2 == 0 { CA } else { CB };
                let resp = app
                    .http
                    .get(format!("{}/msi/token", app.base))
                    .query(&[
                        ("api-version", "2019-08-01"),
                        ("resource", "api://x"),
                        ("client_id", id),
                    ])
                    .header("X-IDENTITY-HEADER", "app-secret-for-tests-only")
                    .send()
                    .await
                    .unwrap();
                match resp.status().as_u16() {
                    200 => {
                        let body: Value = resp.json().await.unwrap();
                        let token = body["access_token"].as_str().unwrap();
                        let claims =
                            jsonwebtoken::dangerous::insecure_decode::<miemu::token::Claims>(token)
                                .unwrap()
                                .claims;
                        // alpha only ever exists with issuer a, beta with b.
                        let expected = if id == CA {
                            "https://a.test/"
                        } else {
                            "https://b.test/"
                        };
                        assert_eq!(claims.iss, expected, "half-applied configuration");
                        seen.0 += 1;
                    }
                    400 => seen.1 += 1,
                    other => panic!("unexpected status {other}"),
                }
            }
            seen
        }));
    }
    for i in 0..20 {
        std::fs::write(&file, if i % 2 == 0 { &b } else { &a }).unwrap();
        let (status, body) = admin_json(&app, Method::POST, "/reload", None).await;
        assert_eq!(status, 200, "{body}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut total = (0, 0);
    for c in clients {
        let (ok, not_found) = c.await.unwrap();
        total = (total.0 + ok, total.1 + not_found);
    }
    assert_eq!(total.0 + total.1, 600);
    assert!(total.0 > 0, "some requests must have found their identity");
    std::sync::Arc::try_unwrap(app).ok().unwrap().stop().await;
}

#[tokio::test]
async fn the_request_log_records_what_was_asked_and_filters_it() {
    let app = spawn_app("default").await;
    let reader = app.identity("storage-reader").client_id.to_string();
    assert_eq!(token_status(&app, "app", &[]).await, 200);
    assert_eq!(
        token_status(&app, "app", &[("client_id", &reader)]).await,
        200
    );
    assert_eq!(
        token_status(
            &app,
            "app",
            &[("client_id", "00000000-0000-0000-0000-000000000001")]
        )
        .await,
        400
    );
    assert_eq!(token_status(&app, "init", &[]).await, 403);
    assert_eq!(
        app.token_raw("api-version=2019-08-01&resource=api%3A%2F%2Fx", Some("bad"))
            .await
            .status(),
        403
    );

    let (_, all) = admin_json(&app, Method::GET, "/requests", None).await;
    let all = all.as_array().unwrap().clone();
    assert_eq!(all.len(), 5);
    let first = &all[0];
    assert_eq!(first["container"], "app");
    assert_eq!(first["identity"], "system");
    assert_eq!(first["selector"], "system");
    assert_eq!(first["resource"], VAULT);
    assert_eq!(first["outcome"], "issued");
    assert_eq!(first["status"], 200);
    assert_eq!(first["time"], NOW);
    assert_eq!(first["uti"].as_str().unwrap().len(), 22);
    let text = serde_json::to_string(&all).unwrap();
    assert!(!text.contains("eyJ"), "no token in the log");
    assert!(
        !text.contains(&app.live_secret("app")),
        "no secret in the log"
    );

    let count = |v: Value| v.as_array().unwrap().len();
    let (_, v) = admin_json(&app, Method::GET, "/requests?container=app", None).await;
    assert_eq!(count(v), 3);
    let (_, v) = admin_json(&app, Method::GET, "/requests?identity=storage-reader", None).await;
    assert_eq!(count(v), 1);
    let (_, v) = admin_json(&app, Method::GET, "/requests?outcome=init_container", None).await;
    assert_eq!(v[0]["container"], "init");
    let (_, v) = admin_json(&app, Method::GET, "/requests?outcome=unauthenticated", None).await;
    assert_eq!(v[0]["container"], Value::Null);
    let (_, v) = admin_json(
        &app,
        Method::GET,
        &format!("/requests?since={}", NOW + 1),
        None,
    )
    .await;
    assert_eq!(count(v), 0);
    let (_, v) = admin_json(&app, Method::GET, "/requests?after_seq=4", None).await;
    assert_eq!(count(v), 1);
    let (status, _) = admin_json(&app, Method::GET, "/requests?colour=red", None).await;
    assert_eq!(status, 400);
    let (status, _) = admin_json(&app, Method::DELETE, "/requests", None).await;
    assert_eq!(status, 204);
    let (_, v) = admin_json(&app, Method::GET, "/requests", None).await;
    assert_eq!(count(v), 0);
    app.stop().await;
}

#[tokio::test]
async fn status_faults_answer_in_the_platform_shape_and_clear_after_their_count() {
    let app = spawn_app("default").await;
    let (status, fault) = admin_json(
        &app,
        Method::POST,
        "/faults",
        Some(json!({"kind": "status", "status": 503, "count": 2})),
    )
    .await;
    assert_eq!(status, 201, "{fault}");
    for _ in 0..2 {
        let resp = app.token("app", VAULT, &[]).await;
        assert_eq!(resp.headers()["retry-after"], "1");
        assert_error(resp, 503, "Injected fault").await;
    }
    assert_eq!(token_status(&app, "app", &[]).await, 200);
    let (_, v) = admin_json(&app, Method::GET, "/faults", None).await;
    assert_eq!(v, json!([]));
    let (_, log) = admin_json(&app, Method::GET, "/requests?outcome=fault", None).await;
    assert_eq!(log.as_array().unwrap().len(), 2);
    assert_eq!(log[0]["fault"], fault["id"]);

    for (code, retry_after) in [(429, Some(7)), (404, None), (410, None), (500, None)] {
        let mut spec = json!({"kind": "status", "status": code, "count": 1});
        if let Some(r) = retry_after {
            spec["retry_after_secs"] = json!(r);
        }
        admin_json(&app, Method::POST, "/faults", Some(spec)).await;
        let resp = app.token("app", VAULT, &[]).await;
        let header = resp
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(header, retry_after.map(|r| r.to_string()), "{code}");
        let body = assert_error(resp, code, "Injected fault").await;
        assert!(body.get("access_token").is_none());
    }
    let (status, body) = admin_json(
        &app,
        Method::POST,
        "/faults",
        Some(json!({"kind": "status", "status": 418})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    app.stop().await;
}

#[tokio::test]
async fn faults_can_target_one_container_identity_or_resource_and_expire_in_time() {
    let app = spawn_app("multi-identity").await;
    let spec = json!({"kind": "status", "status": 500, "for_secs": 60,
                      "match": {"container": "worker", "identity": "orders-reader", "resource": VAULT}});
    let (status, _) = admin_json(&app, Method::POST, "/faults", Some(spec)).await;
    assert_eq!(status, 201);
    let reader = app.identity("orders-reader").client_id.to_string();
    assert_eq!(
        token_status(&app, "worker", &[("client_id", &reader)]).await,
        500
    );
    assert_eq!(
        token_status(&app, "api", &[("client_id", &reader)]).await,
        200
    );
    assert_eq!(token_status(&app, "worker", &[]).await, 200);
    app.clock.advance(60);
    assert_eq!(
        token_status(&app, "worker", &[("client_id", &reader)]).await,
        200,
        "expired"
    );

    // Cleared explicitly, one or all.
    let (_, f) = admin_json(
        &app,
        Method::POST,
        "/faults",
        Some(json!({"kind": "status", "status": 503})),
    )
    .await;
    assert_eq!(token_status(&app, "api", &[]).await, 503);
    let (status, _) = admin_json(&app, Method::DELETE, &format!("/faults/{}", f["id"]), None).await;
    assert_eq!(status, 204);
    assert_eq!(token_status(&app, "api", &[]).await, 200);
    admin_json(
        &app,
        Method::POST,
        "/faults",
        Some(json!({"kind": "status", "status": 503})),
    )
    .await;
    let (status, _) = admin_json(&app, Method::DELETE, "/faults", None).await;
    assert_eq!(status, 204);
    assert_eq!(token_status(&app, "api", &[]).await, 200);
    app.stop().await;
}

#[tokio::test]
async fn lifetime_faults_mint_expired_or_short_tokens_for_one_identity() {
    let app = spawn_app("default").await;
    let spec =
        json!({"kind": "lifetime", "secs": -60, "count": 1, "match": {"identity": "system"}});
    let (status, _) = admin_json(&app, Method::POST, "/faults", Some(spec)).await;
    assert_eq!(status, 201);
    let body = json_of(app.token("app", VAULT, &[]).await).await;
    assert_eq!(body["expires_on"], (NOW - 60).to_string());
    let claims = jsonwebtoken::dangerous::insecure_decode::<miemu::token::Claims>(
        body["access_token"].as_str().unwrap(),
    )
    .unwrap()
    .claims;
    assert_eq!((claims.iat, claims.exp), (NOW, NOW - 60));
    // Not cached: the next request gets a normal token.
    let normal = json_of(app.token("app", VAULT, &[]).await).await;
    assert_eq!(normal["expires_on"], (NOW + 86_700).to_string());
    app.stop().await;
}

#[tokio::test]
async fn a_delay_fault_answers_normally_and_is_recorded() {
    let app = spawn_app("default").await;
    admin_json(
        &app,
        Method::POST,
        "/faults",
        Some(json!({"kind": "delay", "ms": 200, "count": 1})),
    )
    .await;
    assert_eq!(token_status(&app, "app", &[]).await, 200);
    let (_, log) = admin_json(&app, Method::GET, "/requests", None).await;
    assert_eq!(log[0]["outcome"], "issued");
    assert!(log[0]["fault"].is_u64());
    app.stop().await;
}

#[tokio::test]
async fn not_ready_refuses_connections_then_recovers() {
    let app = spawn_app("default").await;
    let (status, _) = admin_json(
        &app,
        Method::POST,
        "/not-ready",
        Some(json!({"for_secs": 1})),
    )
    .await;
    assert_eq!(status, 200);
    // A fresh client: no pooled connection to reuse.
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let mut refused = false;
    for _ in 0..20 {
        match fresh.get(format!("{}/healthz", app.base)).send().await {
            Err(e) if e.is_connect() => {
                refused = true;
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    assert!(refused, "connections were not refused");
    let mut back = false;
    for _ in 0..100 {
        if fresh
            .get(format!("{}/healthz", app.base))
            .send()
            .await
            .is_ok()
        {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(back, "the endpoint did not come back within 5 s");
    app.stop().await;
}

#[tokio::test]
async fn forwarded_requests_are_refused_unless_allowed() {
    let app = spawn_app("default").await;
    let resp = app
        .http
        .get(format!(
            "{}/msi/token?api-version=2019-08-01&resource=api%3A%2F%2Fx",
            app.base
        ))
        .header("X-IDENTITY-HEADER", app.secret("app"))
        .header("X-Forwarded-For", "10.0.0.1")
        .send()
        .await
        .unwrap();
    assert_error(resp, 403, "X-Forwarded-For").await;
    app.stop().await;

    let app = crate::helpers::spawn_app_with("default", |t| {
        format!("{t}\n[server]\ndangerously_allow_forwarded = true\n")
    })
    .await;
    let resp = app
        .http
        .get(format!(
            "{}/msi/token?api-version=2019-08-01&resource=api%3A%2F%2Fx",
            app.base
        ))
        .header("X-IDENTITY-HEADER", app.secret("app"))
        .header("X-Forwarded-For", "10.0.0.1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn metrics_count_requests_tokens_cache_hits_and_refusals() {
    let app = spawn_app("default").await;
    assert_eq!(token_status(&app, "app", &[]).await, 200);
    assert_eq!(token_status(&app, "app", &[]).await, 200);
    assert_eq!(token_status(&app, "init", &[]).await, 403);
    let (status, _) = app.get_json("/common/discovery/keys").await;
    assert_eq!(status, 200);
    let text = app.metrics().await;
    for line in [
        "miemu_requests_total{endpoint=\"token\",status=\"200\",container=\"app\"} 2",
        "miemu_requests_total{endpoint=\"token\",status=\"403\",container=\"init\"} 1",
        "miemu_requests_total{endpoint=\"jwks\",status=\"200\",container=\"-\"} 1",
        "miemu_refusals_total{reason=\"init_container\"} 1",
        "miemu_tokens_minted_total 1",
        "miemu_token_cache_hits_total 1",
        "miemu_identities 3",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    let ready = app
        .http
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    app.stop().await;
}
