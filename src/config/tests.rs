use super::*;

fn valid() -> RawConfig {
    parse_str(DEFAULT_CONFIG, "default").unwrap()
}

#[test]
fn the_built_in_default_is_valid_and_has_the_promised_shape() {
    let c = Config::from_raw(&valid(), "default").unwrap();
    let p = &c.platform;
    assert!(p.identities.system().is_some());
    assert_eq!(p.identities.users().len(), 2);
    let kinds: Vec<_> = p
        .containers
        .iter()
        .map(|c| (c.name.as_str(), c.kind))
        .collect();
    assert_eq!(
        kinds,
        [("app", ContainerKind::Main), ("init", ContainerKind::Init)]
    );
    assert_eq!(c.server.listen.to_string(), DEFAULT_LISTEN);
    assert_eq!(c.tokens.lifetime_secs, DEFAULT_LIFETIME_SECS);
    assert_eq!(
        c.tokens.issuer,
        format!("https://sts.windows.net/{}/", p.tenant_id)
    );
    assert!(c.tokens.cache);
}

#[test]
fn derived_ids_are_stable_across_loads_and_secrets_are_not() {
    let a = Config::from_raw(&valid(), "a").unwrap();
    let b = Config::from_raw(&valid(), "b").unwrap();
    let ids = |c: &Config| {
        c.platform
            .identities
            .iter()
            .map(|i| (i.client_id, i.principal_id))
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&a), ids(&b));
    assert_ne!(
        a.platform.containers[0].secret.expose(),
        b.platform.containers[0].secret.expose()
    );
}

#[test]
fn user_identity_resource_ids_use_the_arm_shape() {
    let c = Config::from_raw(&valid(), "default").unwrap();
    let user = &c.platform.identities.users()[0];
    assert_eq!(
        user.resource_id,
        "/subscriptions/bd50bda9-0dd4-4e3f-8171-df814c175a67/resourcegroups/miemu-rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/storage-reader"
    );
    assert_eq!(
        c.platform.app.resource_id(),
        "/subscriptions/bd50bda9-0dd4-4e3f-8171-df814c175a67/resourcegroups/miemu-rg/providers/Microsoft.App/containerApps/miemu-app"
    );
}

#[test]
fn every_unknown_key_is_reported_at_once() {
    let text = format!(
        "foo = 1\n{DEFAULT_CONFIG}\n[[containers]]\nname = \"x\"\nimage = \"y\"\n[tokens]\nlifetime = 5\n"
    );
    let err = parse_str(&text, "f.toml").unwrap_err();
    let ConfigError::Invalid { problems, .. } = err else {
        panic!("expected Invalid, got {err}");
    };
    let mut paths: Vec<_> = problems.iter().map(|p| p.path.as_str()).collect();
    paths.sort_unstable();
    assert_eq!(paths, ["containers.2.image", "foo", "tokens.lifetime"]);
}

#[test]
fn syntax_errors_carry_a_line_number() {
    let err = parse_str("tenant_id = \"x\"\n[app\n", "f.toml").unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("f.toml:"), "{text}");
    assert!(text.contains("line 2"), "{text}");
}

#[test]
fn every_semantic_problem_is_reported_with_its_path() {
    let text = r#"
tenant_id = "not-a-guid"
[app]
subscription_id = "bd50bda9-0dd4-4e3f-8171-df814c175a67"
resource_group = "rg"
name = "bad name"
kind = "vm"
[[user_identities]]
client_id = "nope"
lifecycle = "sometimes"
[[containers]]
name = "a"
kind = "sidecar"
secret = "short"
[server]
listen = "localhost"
[tokens]
lifetime_secs = 0
"#;
    let raw = parse_str(text, "f.toml").unwrap();
    let err = Config::from_raw(&raw, "f.toml").unwrap_err();
    let ConfigError::Invalid { problems, .. } = err else {
        panic!("expected Invalid");
    };
    let paths: Vec<_> = problems.iter().map(|p| p.path.as_str()).collect();
    for expected in [
        "tenant_id",
        "app.name",
        "app.kind",
        "user_identities[0].name",
        "user_identities[0].client_id",
        "user_identities[0].lifecycle",
        "containers[0].kind",
        "containers[0].secret",
        "server.listen",
        "tokens.lifetime_secs",
    ] {
        assert!(paths.contains(&expected), "missing {expected} in {paths:?}");
    }
}

#[test]
fn duplicate_names_ids_and_secrets_are_refused() {
    let text = r#"
tenant_id = "55e9bb3b-35a9-4773-888e-6edfb924dd85"
[app]
subscription_id = "bd50bda9-0dd4-4e3f-8171-df814c175a67"
resource_group = "rg"
name = "app"
[[user_identities]]
name = "a"
client_id = "0bd4049e-27e9-475d-b579-6412fe721c83"
[[user_identities]]
name = "A"
client_id = "0BD4049E-27E9-475D-B579-6412FE721C83"
[[containers]]
name = "c"
secret = "same-secret-123"
[[containers]]
name = "c"
secret = "same-secret-123"
"#;
    let raw = parse_str(text, "f.toml").unwrap();
    let ConfigError::Invalid { problems, .. } = Config::from_raw(&raw, "f.toml").unwrap_err()
    else {
        panic!("expected Invalid");
    };
    let paths: Vec<_> = problems.iter().map(|p| p.path.as_str()).collect();
    for expected in [
        "user_identities[1].name",
        "user_identities[1].client_id",
        "containers[1].name",
        "containers[1].secret",
    ] {
        assert!(paths.contains(&expected), "missing {expected} in {paths:?}");
    }
}

#[test]
fn overrides_win_over_the_file() {
    let mut raw = valid();
    raw.server.listen = Some("127.0.0.1:1".to_owned());
    Overrides {
        listen: Some("127.0.0.1:2".to_owned()),
        public_url: Some("http://miemu:42356/".to_owned()),
        key_dir: Some("/k".into()),
        ..Overrides::default()
    }
    .apply(&mut raw);
    let c = Config::from_raw(&raw, "x").unwrap();
    assert_eq!(c.server.listen.port(), 2);
    assert_eq!(c.server.public_url.as_deref(), Some("http://miemu:42356"));
    assert_eq!(c.server.key_dir, PathBuf::from("/k"));
}

#[test]
fn the_shipped_fixtures_are_valid() {
    for name in ["default", "minimal", "multi-identity", "webapp"] {
        let path =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("fixtures/config/{name}.toml"));
        let (raw, origin) = load(Some(&path)).unwrap();
        Config::from_raw(&raw, &origin).unwrap();
    }
}

#[test]
fn a_file_may_leave_out_tenant_and_app() {
    let raw = parse_str("[[containers]]\nname = \"app\"\n", "f.toml").unwrap();
    let c = Config::from_raw(&raw, "f.toml").unwrap();
    assert_eq!(c.platform.tenant_id, DEFAULT_TENANT);
    assert_eq!(c.platform.app.subscription_id, DEFAULT_SUBSCRIPTION);
    assert_eq!(c.platform.app.name, "miemu-app");
    assert!(c.platform.identities.system().is_none());
    let builtin = Config::from_raw(&valid(), "default").unwrap();
    assert_eq!(builtin.platform.tenant_id, DEFAULT_TENANT);
    assert_eq!(builtin.platform.app.subscription_id, DEFAULT_SUBSCRIPTION);
}
