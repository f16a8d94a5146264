//! Query strings that reach the handler: escapes, repetition, empty
//! values, lengths and resources that are not URIs. Each gets the
//! platform's JSON 400 with a message saying what is wrong.

use super::raw::{
    QUERY, answer, assert_bad_request, assert_hyper_refusal, assert_still_serving, assert_token,
    assert_unauthenticated, get, secret_header, token_query,
};
use crate::helpers::spawn_app;

#[tokio::test]
async fn broken_percent_escapes_are_kept_literally_or_refused_as_not_utf8() {
    let app = spawn_app("default").await;

    // An escape that is not two hex digits is kept as it is: `%zz` stays.
    let a = token_query(
        &app,
        "app",
        "api-version=2019-08-01&resource=https%3A%2F%2Fvault%zz.azure.net",
    )
    .await;
    assert_token(&app, &a, "system", "https://vault%zz.azure.net").await;

    // A lone `%` leaves no scheme, so the resource is not a URI.
    let a = token_query(&app, "app", "api-version=2019-08-01&resource=%").await;
    assert_bad_request(
        &a,
        "Invalid resource: the resource \"%\" is not an absolute URI or an application id (GUID).",
    );

    // Escapes that decode to bytes that are not UTF-8: a truncated sequence,
    // a lone continuation byte, an overlong encoding, a surrogate.
    for bad in ["%E2%82", "%80", "%C0%AF", "%ED%A0%80", "api%3A%2F%2F%FF"] {
        let a = token_query(
            &app,
            "app",
            &format!("api-version=2019-08-01&resource={bad}"),
        )
        .await;
        assert_bad_request(
            &a,
            "query parameter \"resource\" is not valid UTF-8 after percent-decoding",
        );
    }
    // In a name, the message shows the (encoded) name itself.
    let a = token_query(&app, "app", &format!("{QUERY}&%FFx=1")).await;
    assert_bad_request(
        &a,
        "query parameter \"%FFx\" is not valid UTF-8 after percent-decoding",
    );
    assert_still_serving(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn repeated_parameters_in_any_case_get_400_naming_the_parameter() {
    let app = spawn_app("default").await;
    let reader = app.identity("storage-reader").client_id.to_string();
    let cases = [
        (
            format!("{QUERY}&resource=api%3A%2F%2Fx"),
            "query parameter 'resource' is given more than once",
        ),
        (
            format!("{QUERY}&Resource=api%3A%2F%2Fy"),
            "query parameter 'resource' is given more than once",
        ),
        (
            format!("{QUERY}&API-VERSION=2019-08-01"),
            "query parameter 'api-version' is given more than once",
        ),
        (
            format!("{QUERY}&client_id={reader}&CLIENT_ID={reader}"),
            "query parameter 'client_id' is given more than once",
        ),
        // Two different selector names are not a repetition but still two selectors.
        (
            format!("{QUERY}&object_id={reader}&principal_id={reader}"),
            "Only one of client_id, object_id/principal_id or mi_res_id may be given; got object_id, principal_id.",
        ),
    ];
    for (query, message) in &cases {
        let a = token_query(&app, "app", query).await;
        assert_bad_request(&a, message);
    }
    // Parameters the endpoint does not read may repeat.
    let a = token_query(&app, "app", &format!("{QUERY}&x=1&x=2&X=3")).await;
    assert_token(&app, &a, "system", "api://x").await;
    app.stop().await;
}

#[tokio::test]
async fn empty_values_count_as_missing_and_empty_selectors_as_absent() {
    let app = spawn_app("default").await;
    let required = "The resource query parameter is required.";
    for query in [
        "api-version=2019-08-01&resource=",
        "api-version=2019-08-01&resource",
        "api-version=2019-08-01&resource=%2F.default",
        "api-version=2019-08-01",
    ] {
        let a = token_query(&app, "app", query).await;
        assert_bad_request(&a, required);
    }
    let a = token_query(&app, "app", "api-version=&resource=api%3A%2F%2Fx").await;
    assert_bad_request(
        &a,
        "The api-version query parameter is required; this endpoint supports 2019-08-01.",
    );
    // An empty query string and none at all.
    for target in ["/msi/token?", "/msi/token"] {
        let secret = secret_header(&app, "app");
        let a = answer(&app, &get(target, &[&secret])).await;
        assert_bad_request(
            &a,
            "The api-version query parameter is required; this endpoint supports 2019-08-01.",
        );
    }
    // Empty selectors and empty pairs are ignored: the system identity answers.
    let a = token_query(
        &app,
        "app",
        &format!("&&{QUERY}&client_id=&object_id=&mi_res_id=&&=&"),
    )
    .await;
    assert_token(&app, &a, "system", "api://x").await;
    app.stop().await;
}

#[tokio::test]
async fn long_query_strings_get_400_and_a_64_kib_one_gets_414() {
    let app = spawn_app("default").await;
    // Within the URI limit but over the query cap: the endpoint's own 400,
    // also when the padding is in a parameter the endpoint never reads.
    for pad in [8 * 1024, 60_000] {
        let query = format!("{QUERY}&pad={}", "a".repeat(pad));
        let a = token_query(&app, "app", &query).await;
        assert_bad_request(&a, "the query string is longer than 8192 bytes");
    }
    // The secret is checked first: an unauthenticated caller learns nothing.
    let target = format!("/msi/token?{QUERY}&pad={}", "a".repeat(60_000));
    let a = answer(&app, &get(&target, &[])).await;
    assert_unauthenticated(&a);

    // 64 KiB of query: past http's 65,534-byte URI limit, hyper answers 414.
    let query = format!("{QUERY}&pad={}", "a".repeat(64 * 1024));
    let a = token_query(&app, "app", &query).await;
    assert_hyper_refusal(&a, 414);
    assert_still_serving(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn a_resource_that_is_not_a_uri_gets_400_saying_so() {
    let app = spawn_app("default").await;
    let cases = [
        ("vault.azure.net", "vault.azure.net"),
        ("%2F%2Fvault.azure.net", "//vault.azure.net"),
        ("1https%3A%2F%2Fx", "1https://x"),
        (":x", ":x"),
        ("https%3A", "https:"),
        ("https%3A%2F%2Fvault+azure", "https://vault azure"),
        ("api%3A%2F%2Fx%0Ay", "api://x\ny"),
        (
            "00000002-0000-0000-c000-00000000000",
            "00000002-0000-0000-c000-00000000000",
        ),
    ];
    for (raw, decoded) in cases {
        let a = token_query(
            &app,
            "app",
            &format!("api-version=2019-08-01&resource={raw}"),
        )
        .await;
        let shown = format!("{decoded:?}");
        assert_bad_request(
            &a,
            &format!(
                "Invalid resource: the resource {shown} is not an absolute URI or an application id (GUID)."
            ),
        );
    }
    let long = "h".repeat(2049);
    let a = token_query(
        &app,
        "app",
        &format!("api-version=2019-08-01&resource={long}"),
    )
    .await;
    assert_bad_request(
        &a,
        "Invalid resource: the resource is longer than 2048 bytes.",
    );
    app.stop().await;
}
