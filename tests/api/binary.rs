//! The real `miemu` binary: start-up, env files, key persistence, the
//! client subcommands, configuration errors and a clean SIGTERM exit.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncReadExt as _;
use tokio::process::{Child, Command};

use crate::helpers::fixture;

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_miemu");

/// A `miemu serve` process on 127.0.0.1:0 with its env files.
pub(crate) struct Served {
    pub(crate) child: Child,
    pub(crate) env_dir: PathBuf,
    pub(crate) base: String,
}

pub(crate) fn read_env(path: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

pub(crate) fn env_value(path: &Path, name: &str) -> String {
    read_env(path)
        .into_iter()
        .find(|(k, _)| k == name)
        .unwrap()
        .1
}

impl Served {
    /// Starts the binary and waits (bounded) until its env files exist.
    pub(crate) async fn start(config: Option<&Path>, key_dir: &Path, work: &Path) -> Self {
        Self::start_with(config, key_dir, work, &[]).await
    }

    /// Like `start`, with extra `serve` arguments.
    pub(crate) async fn start_with(
        config: Option<&Path>,
        key_dir: &Path,
        work: &Path,
        extra: &[&str],
    ) -> Self {
        let env_dir = work.join("env");
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .arg("--key-dir")
            .arg(key_dir);
        cmd.arg("--env-dir").arg(&env_dir);
        if let Some(c) = config {
            cmd.arg("--config").arg(c);
        }
        cmd.args(extra);
        cmd.env("RUST_LOG", "miemu=debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let child = cmd.spawn().unwrap();
        let app_env = env_dir.join("app.env");
        for _ in 0..200 {
            if app_env.exists() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let endpoint = env_value(&app_env, "IDENTITY_ENDPOINT");
        let base = endpoint.trim_end_matches("/msi/token").to_owned();
        Self {
            child,
            env_dir,
            base,
        }
    }

    pub(crate) fn env_file(&self, container: &str) -> PathBuf {
        self.env_dir.join(format!("{container}.env"))
    }

    /// SIGTERM, then the exit status, stdout and stderr.
    pub(crate) async fn stop(mut self) -> (std::process::ExitStatus, String, String) {
        let pid = self.child.id().unwrap().to_string();
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(killed.success());
        let status = tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .expect("miemu did not exit within 15 s of SIGTERM")
            .unwrap();
        let mut out = String::new();
        let mut err = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .await
            .unwrap();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .await
            .unwrap();
        (status, out, err)
    }
}

async fn run(args: &[&str], envs: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("IDENTITY_ENDPOINT")
        .env_remove("IDENTITY_HEADER")
        .envs(envs.iter().copied())
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn jwks_kid(base: &str) -> String {
    let jwks: Value = reqwest::get(format!("{base}/common/discovery/keys"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    jwks["keys"][0]["kid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn serve_writes_env_files_answers_and_exits_cleanly_on_sigterm() {
    let work = tempfile::tempdir().unwrap();
    let served = Served::start(None, &work.path().join("keys"), work.path()).await;
    let app_env = read_env(&served.env_file("app"));
    let names: Vec<_> = app_env.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "IDENTITY_ENDPOINT",
            "IDENTITY_HEADER",
            "MSI_ENDPOINT",
            "MSI_SECRET"
        ]
    );
    assert_eq!(app_env[0].1, app_env[2].1);
    assert_eq!(app_env[1].1, app_env[3].1);
    let init_secret = env_value(&served.env_file("init"), "IDENTITY_HEADER");
    assert_ne!(
        init_secret, app_env[1].1,
        "each container has its own secret"
    );

    let health = reqwest::get(format!("{}/healthz", served.base))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let resp = reqwest::Client::new()
        .get(format!(
            "{}?api-version=2019-08-01&resource=api%3A%2F%2Fx",
            app_env[0].1
        ))
        .header("X-IDENTITY-HEADER", &app_env[1].1)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let token = resp.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    let (status, stdout, stderr) = served.stop().await;
    assert!(status.success(), "exit status {status}; stderr:\n{stderr}");
    assert!(
        stdout.contains("listening on http://127.0.0.1:"),
        "{stdout}"
    );
    assert!(
        stdout.contains("app (main)") && stdout.contains("init (init)"),
        "{stdout}"
    );
    assert!(stderr.contains("shutdown signal received"), "{stderr}");
    // Neither the secrets nor the token reach the log.
    for secret in [&app_env[1].1, &init_secret, &token] {
        assert!(
            !stderr.contains(secret.as_str()),
            "a secret leaked into the log"
        );
        assert!(
            !stdout.contains(secret.as_str()),
            "a secret leaked into the summary"
        );
    }
}

#[tokio::test]
async fn without_env_dir_the_summary_prints_the_exports() {
    let work = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(fixture("config/minimal.toml"))
        .arg("--key-dir")
        .arg(work.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(Duration::from_secs(10), async {
        while !seen.contains("export MSI_SECRET") {
            let n = stdout.read(&mut buf).await.unwrap();
            assert!(n > 0, "stdout closed early: {seen}");
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    })
    .await
    .unwrap();
    assert!(
        seen.contains("export IDENTITY_HEADER=app-secret-for-tests-only"),
        "{seen}"
    );
    child.kill().await.unwrap();
}

#[tokio::test]
async fn the_signing_key_survives_a_restart() {
    let work = tempfile::tempdir().unwrap();
    let keys = work.path().join("keys");
    let first = Served::start(None, &keys, &work.path().join("a")).await;
    let kid = jwks_kid(&first.base).await;
    let (_, stdout, _) = first.stop().await;
    assert!(
        stdout.contains(&format!("kid {kid} (created in")),
        "{stdout}"
    );
    let second = Served::start(None, &keys, &work.path().join("b")).await;
    assert_eq!(jwks_kid(&second.base).await, kid);
    let (_, stdout, _) = second.stop().await;
    assert!(
        stdout.contains(&format!("kid {kid} (loaded from")),
        "{stdout}"
    );
}

#[tokio::test]
async fn a_corrupt_key_stops_start_up_with_a_clear_message() {
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("current"), "abc").unwrap();
    std::fs::create_dir(work.path().join("abc")).unwrap();
    std::fs::write(work.path().join("abc/key.pem"), "not a key").unwrap();
    let key_dir = work.path().to_str().unwrap();
    let (code, _, stderr) = run(
        &["serve", "--listen", "127.0.0.1:0", "--key-dir", key_dir],
        &[],
    )
    .await;
    assert_eq!(code, 1);
    assert!(stderr.contains("abc/key.pem is not usable"), "{stderr}");
    assert!(stderr.contains("will not overwrite"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(work.path().join("abc/key.pem")).unwrap(),
        "not a key"
    );
}

#[tokio::test]
async fn check_config_lists_every_problem_and_fails() {
    let work = tempfile::tempdir().unwrap();
    let bad = work.path().join("bad.toml");
    std::fs::write(
        &bad,
        "tenant_id = \"x\"\n[app]\nname = \"a b\"\n[[containers]]\nname = \"c\"\nkind = \"sidecar\"\n",
    )
    .unwrap();
    let (code, _, stderr) = run(&["check-config", bad.to_str().unwrap()], &[]).await;
    assert_eq!(code, 1);
    for expected in ["tenant_id", "app.name", "containers[0].kind"] {
        assert!(
            stderr.contains(expected),
            "{expected} missing from:\n{stderr}"
        );
    }
    let good = fixture("config/multi-identity.toml");
    let (code, stdout, _) = run(&["check-config", good.to_str().unwrap()], &[]).await;
    assert_eq!(code, 0);
    assert!(
        stdout.contains("ok (5 identities, 3 containers)"),
        "{stdout}"
    );
    let (code, _, stderr) = run(&["serve", "--config", bad.to_str().unwrap()], &[]).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("problem(s)"), "{stderr}");
}

#[tokio::test]
async fn config_prints_the_effective_configuration_without_secrets() {
    let file = fixture("config/multi-identity.toml");
    let (code, stdout, _) = run(
        &[
            "config",
            "--config",
            file.to_str().unwrap(),
            "--format",
            "json",
        ],
        &[],
    )
    .await;
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["tenant_id"], "7d45316b-2115-4527-af26-d6258e2fa7a5");
    assert_eq!(
        v["issuer"],
        "https://sts.windows.net/7d45316b-2115-4527-af26-d6258e2fa7a5/"
    );
    let identities = v["identities"].as_array().unwrap();
    assert_eq!(identities[0]["kind"], "system");
    assert_eq!(
        identities[0]["client_id"],
        "0bd4049e-27e9-475d-b579-6412fe721c83"
    );
    let writer = identities
        .iter()
        .find(|i| i["name"] == "shared-writer")
        .unwrap();
    assert_eq!(writer["kind"], "user");
    assert!(writer["resource_id"].as_str().unwrap().starts_with(
        "/subscriptions/bd50bda9-0dd4-4e3f-8171-df814c175a67/resourcegroups/shared-identities/providers/Microsoft.ManagedIdentity/userAssignedIdentities/"
    ));
    assert_eq!(v["containers"][2]["kind"], "init");
    assert!(!stdout.contains("secret-for-tests-only"));

    // The TOML form is a file miemu accepts, with the same derived ids.
    let (code, toml_out, _) = run(
        &[
            "config",
            "--config",
            file.to_str().unwrap(),
            "--format",
            "toml",
        ],
        &[],
    )
    .await;
    assert_eq!(code, 0);
    assert!(!toml_out.contains("secret-for-tests-only"));
    let work = tempfile::tempdir().unwrap();
    let again = work.path().join("again.toml");
    std::fs::write(&again, toml_out).unwrap();
    let (code, stdout2, stderr) = run(&["config", "--config", again.to_str().unwrap()], &[]).await;
    assert_eq!(code, 0, "{stderr}");
    let v2: Value = serde_json::from_str(&stdout2).unwrap();
    assert_eq!(v["identities"], v2["identities"]);
}

#[tokio::test]
async fn token_decode_and_healthcheck_subcommands_work_against_the_server() {
    let work = tempfile::tempdir().unwrap();
    let served = Served::start(None, &work.path().join("keys"), work.path()).await;
    let app_env = served.env_file("app");
    let endpoint = env_value(&app_env, "IDENTITY_ENDPOINT");
    let secret = env_value(&app_env, "IDENTITY_HEADER");

    let envs = [
        ("IDENTITY_ENDPOINT", endpoint.as_str()),
        ("IDENTITY_HEADER", secret.as_str()),
    ];
    let (code, stdout, _) = run(&["token", "--resource", "https://vault.azure.net"], &envs).await;
    assert_eq!(code, 0);
    let body: Value = serde_json::from_str(stdout.trim()).unwrap();
    let token = body["access_token"].as_str().unwrap();

    let (code, decoded, _) = run(&["decode", token], &[]).await;
    assert_eq!(code, 0);
    assert!(
        decoded.contains("\"aud\": \"https://vault.azure.net\""),
        "{decoded}"
    );
    assert!(
        decoded.contains("signature: 256 bytes (not verified)"),
        "{decoded}"
    );

    let (code, _, stderr) = run(
        &[
            "token",
            "--resource",
            "api://x",
            "--client-id",
            "00000000-0000-0000-0000-000000000009",
        ],
        &envs,
    )
    .await;
    assert_eq!(code, 1);
    assert!(stderr.contains("HTTP 400: No User Assigned"), "{stderr}");

    let init = served.env_file("init");
    let init_path = init.to_str().unwrap();
    let (code, _, stderr) = run(
        &["token", "--resource", "api://x", "--env-file", init_path],
        &[],
    )
    .await;
    assert_eq!(code, 1);
    assert!(
        stderr.contains("HTTP 403") && stderr.contains("init containers"),
        "{stderr}"
    );
    let (code, stdout, _) = run(
        &[
            "token",
            "--resource",
            "api://x",
            "--env-file",
            init_path,
            "--expect-refusal",
        ],
        &[],
    )
    .await;
    assert_eq!(code, 0);
    assert!(stdout.contains("refused as expected: HTTP 403"), "{stdout}");
    let (code, _, _) = run(
        &[
            "token",
            "--resource",
            "api://x",
            "--env-file",
            app_env.to_str().unwrap(),
            "--expect-refusal",
        ],
        &[],
    )
    .await;
    assert_eq!(code, 1, "a granted token fails --expect-refusal");

    let health = format!("{}/healthz", served.base);
    assert_eq!(run(&["healthcheck", "--url", &health], &[]).await.0, 0);
    let (status, _, _) = served.stop().await;
    assert!(status.success());
    assert_eq!(
        run(&["healthcheck", "--url", &health], &[]).await.0,
        1,
        "fails once the server is gone"
    );
}

#[tokio::test]
async fn json_logs_carry_the_request_id_of_each_token_request() {
    let work = tempfile::tempdir().unwrap();
    let served = Served::start_with(
        None,
        &work.path().join("keys"),
        work.path(),
        &["--log-format", "json"],
    )
    .await;
    let env = served.env_file("app");
    let resp = reqwest::Client::new()
        .get(env_value(&env, "IDENTITY_ENDPOINT"))
        .query(&[("api-version", "2019-08-01"), ("resource", "api://x")])
        .header("X-IDENTITY-HEADER", env_value(&env, "IDENTITY_HEADER"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let request_id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let (status, _, stderr) = served.stop().await;
    assert!(status.success());
    let lines: Vec<Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let token_line = lines
        .iter()
        .find(|l| l["message"] == "token request")
        .unwrap_or_else(|| panic!("no token request line in {stderr}"));
    assert_eq!(token_line["span"]["request.id"], request_id.as_str());
    assert_eq!(token_line["caller.container"], "app");
    assert_eq!(token_line["outcome"], "issued");
}

/// Runs a full session at the most verbose log level and checks that no
/// secret, admin token, private key or access token reaches the log.
#[tokio::test]
async fn logs_never_contain_secrets_tokens_or_keys() {
    const ADMIN: &str = "log-test-admin-token-0123";
    let work = tempfile::tempdir().unwrap();
    let keys = work.path().join("keys");
    let admin_port = crate::helpers::free_port();
    let admin = format!("http://127.0.0.1:{admin_port}");
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .args([
            "--admin-listen",
            &format!("127.0.0.1:{admin_port}"),
            "--admin-token",
            ADMIN,
        ])
        .arg("--key-dir")
        .arg(&keys)
        .arg("--env-dir")
        .arg(work.path().join("env"))
        .env("RUST_LOG", "trace")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    let app_env = work.path().join("env/app.env");
    for _ in 0..200 {
        if app_env.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let endpoint = env_value(&app_env, "IDENTITY_ENDPOINT");
    let mut secrets = vec![
        env_value(&app_env, "IDENTITY_HEADER"),
        env_value(&work.path().join("env/init.env"), "IDENTITY_HEADER"),
        ADMIN.to_owned(),
    ];
    let http = reqwest::Client::new();
    let get_token = |secret: String, extra: &'static str| {
        let http = http.clone();
        let url = format!("{endpoint}?api-version=2019-08-01&resource=api%3A%2F%2Flogs{extra}");
        async move {
            http.get(url)
                .header("X-IDENTITY-HEADER", secret)
                .send()
                .await
                .unwrap()
        }
    };
    let ok: Value = get_token(secrets[0].clone(), "")
        .await
        .json()
        .await
        .unwrap();
    secrets.push(ok["access_token"].as_str().unwrap().to_owned());
    assert_eq!(get_token(secrets[1].clone(), "").await.status(), 403);
    assert_eq!(
        get_token("wrong-secret-value".to_owned(), "")
            .await
            .status(),
        403
    );
    assert_eq!(
        get_token(secrets[0].clone(), "&client_id=nope")
            .await
            .status(),
        400
    );
    let admin_post = |path: &str| http.post(format!("{admin}{path}")).bearer_auth(ADMIN);
    let rotated: Value = admin_post("/containers/app/rotate-secret")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    secrets.push(rotated["secret"].as_str().unwrap().to_owned());
    assert_eq!(
        admin_post("/keys/rotate").send().await.unwrap().status(),
        200
    );
    let again: Value = get_token(secrets[4].clone(), "2")
        .await
        .json()
        .await
        .unwrap();
    secrets.push(again["access_token"].as_str().unwrap().to_owned());
    assert_eq!(
        http.get(format!("{admin}/requests"))
            .bearer_auth("wrong")
            .send()
            .await
            .unwrap()
            .status(),
        401
    );

    // Private keys: every base64 line of every key.pem in the key directory.
    let mut key_lines = Vec::new();
    for entry in std::fs::read_dir(&keys).unwrap().flatten() {
        if let Ok(pem) = std::fs::read_to_string(entry.path().join("key.pem")) {
            key_lines.extend(
                pem.lines()
                    .filter(|l| !l.starts_with("-----"))
                    .map(str::to_owned),
            );
        }
    }
    assert!(key_lines.len() > 40, "expected two PEM keys");

    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .await
        .unwrap();
    assert!(child.wait().await.unwrap().success());
    assert!(
        log.lines().count() > 12,
        "trace logging produced too little to be a test:\n{log}"
    );
    for secret in &secrets {
        assert!(
            !log.contains(secret.as_str()),
            "a secret or token appears in the log"
        );
        // Also no large fragment of a token (e.g. its signature part).
        if let Some(sig) = secret.rsplit('.').next().filter(|s| s.len() > 100) {
            assert!(
                !log.contains(&sig[..60]),
                "a token signature appears in the log"
            );
        }
    }
    for line in &key_lines {
        assert!(
            !log.contains(line.as_str()),
            "private key material appears in the log"
        );
    }
}
