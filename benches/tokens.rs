//! Micro-benchmarks of the token path (issue 6, item 6): claims building,
//! signing, JWKS rendering, request parsing, and one whole request through
//! the router without a socket (handler + middleware cost, no hyper/TCP).
//!
//! `cargo bench --bench tokens` (criterion). Needs in Cargo.toml:
//!
//! ```toml
//! [dev-dependencies]
//! criterion = { version = "0.7", default-features = false, features = ["cargo_bench_support"] }
//!
//! [[bench]]
//! name = "tokens"
//! harness = false
//! ```
//!
//! Timings live here, never in tests. Compare runs with criterion's own
//! baselines (`--save-baseline`, `--baseline`), on a quiet machine.

#![expect(
    clippy::expect_used,
    reason = "a benchmark that cannot set up should stop"
)]
#![expect(
    missing_docs,
    reason = "criterion_group! generates an undocumented function"
)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use miemu::identity::{Identity, IdentityKind, Lifecycle};
use miemu::platform::{App, AppKind};
use miemu::protocol::query::Params;
use miemu::token::{self, MintInput, Resource, SigningKey};
use uuid::Uuid;

const NOW: i64 = 1_700_000_000;
const QUERY: &str = "resource=https%3A%2F%2Fmanagement.azure.com%2F&api-version=2019-08-01";
const SECRET: &str = "app-secret-for-tests-only";

fn app() -> App {
    App {
        subscription_id: Uuid::from_u128(7),
        resource_group: "test-rg".to_owned(),
        name: "test-app".to_owned(),
        kind: AppKind::ContainerApp,
    }
}

fn identity(kind: IdentityKind) -> Identity {
    Identity {
        name: "system".to_owned(),
        kind,
        client_id: Uuid::from_u128(1),
        principal_id: Uuid::from_u128(2),
        resource_id: "/subscriptions/00000000-0000-0000-0000-000000000007/resourcegroups/test-rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id".to_owned(),
        lifecycle: Lifecycle::Main,
    }
}

fn tokens(c: &mut Criterion) {
    let key = SigningKey::generate(NOW).expect("key");
    let app = app();
    let system = identity(IdentityKind::System);
    let user = identity(IdentityKind::User);
    let resource = Resource::parse("https://management.azure.com/").expect("resource");
    let input = |identity| MintInput {
        tenant_id: Uuid::from_u128(9),
        issuer: "https://sts.windows.net/00000000-0000-0000-0000-000000000009/",
        app: &app,
        identity,
        resource: &resource,
        now: NOW,
        lifetime_secs: 86_700,
    };

    // Claims: two ARM ids, four UUID renderings, two random values.
    c.bench_function("claims/system", |b| {
        b.iter(|| token::claims(black_box(&input(&system))))
    });
    c.bench_function("claims/user", |b| {
        b.iter(|| token::claims(black_box(&input(&user))))
    });

    // Signing: JSON encoding + base64 + one RSA-2048 PKCS#1 v1.5 signature.
    // The RSA part alone is `key/rsa_sign`; the difference is miemu's own cost.
    let claims = token::claims(&input(&system));
    c.bench_function("sign/jwt", |b| {
        b.iter(|| token::sign(&key, black_box(&claims)).expect("sign"))
    });
    c.bench_function("key/rsa_sign", |b| {
        b.iter(|| key.sign(black_box(b"header.payload")).expect("sign"))
    });
    c.bench_function("sign/claims_json", |b| {
        b.iter(|| serde_json::to_vec(black_box(&claims)).expect("json"))
    });

    // JWKS: what GET /{tenant}/discovery/keys serialises per request.
    c.bench_function("jwks/render", |b| {
        b.iter(|| {
            serde_json::to_vec(&serde_json::json!({ "keys": [black_box(key.jwk())] }))
                .expect("json")
        })
    });

    // Request parsing: the query string of a typical SDK request.
    c.bench_function("query/parse", |b| {
        b.iter(|| {
            let p = Params::parse(Some(black_box(QUERY))).expect("parse");
            (
                p.single("api-version").ok().flatten().map(str::len),
                p.single("resource").ok().flatten().map(str::len),
            )
        })
    });
    c.bench_function("resource/parse", |b| {
        b.iter(|| Resource::parse(black_box("https://management.azure.com/")).expect("resource"))
    });

    // Key generation (cold start with an empty key directory).
    let mut group = c.benchmark_group("key");
    group.sample_size(10);
    group.bench_function("generate", |b| {
        b.iter(|| SigningKey::generate(NOW).expect("key"))
    });
    group.finish();
}

/// One cached `GET /msi/token` through the complete endpoint (every layer,
/// the handler, JSON rendering), with no socket: compare with wrk's
/// per-request time to see what hyper and TCP add.
fn router(c: &mut Criterion) {
    use tower::ServiceExt as _;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/config/minimal.toml"
    ))
    .expect("fixture");
    for (name, cache) in [("router/cached", true), ("router/minting", false)] {
        let mut raw = miemu::config::parse_str(&text, "bench").expect("config");
        raw.tokens.cache = Some(cache);
        raw.server.key_dir = Some(dir.path().display().to_string());
        let config = miemu::config::Config::from_raw(&raw, "bench").expect("config");
        let (key, _) = SigningKey::load_or_create(dir.path(), NOW).expect("key");
        let clock: Arc<dyn miemu::clock::Clock> = Arc::new(miemu::clock::SystemClock);
        let state = miemu::AppState::new(config, key, clock, "http://127.0.0.1:1".to_owned());
        let router = miemu::build(state);
        let request = || {
            axum::http::Request::get(format!("/msi/token?{QUERY}"))
                .header("x-identity-header", SECRET)
                .body(axum::body::Body::empty())
                .expect("request")
        };
        c.bench_function(name, |b| {
            b.to_async(&rt).iter_batched(
                request,
                |req| {
                    let router = router.clone();
                    async move {
                        let res = router.oneshot(req).await.expect("infallible");
                        assert_eq!(res.status(), 200);
                        axum::body::to_bytes(axum::body::Body::new(res.into_body()), 1 << 16)
                            .await
                            .expect("body")
                    }
                },
                BatchSize::SmallInput,
            )
        });
    }
}

criterion_group!(benches, tokens, router);
criterion_main!(benches);
