//! What to ask and what the right answer is, built from the same TOML file
//! miemu serves. The rules mirror the README's endpoint reference: a
//! container gets an identity only if the identity's lifecycle includes the
//! container's kind; an init container with no identity open to init
//! containers gets the init-container 403; every other refusal is a 400 with
//! the platform's message, or an empty 403 for a missing or wrong secret.

use std::path::Path;

use anyhow::{Context as _, bail};
use serde::Deserialize;

pub(crate) const NOT_FOUND: &str = "No User Assigned or Delegated Managed Identity found for specified ClientId/ResourceId/PrincipalId.";
const API_VERSION_REQUIRED: &str =
    "The api-version query parameter is required; this endpoint supports 2019-08-01.";
const TWO_SELECTORS: &str = "Only one of client_id, object_id/principal_id or mi_res_id may be given; got client_id, object_id.";
const INVALID_RESOURCE: &str =
    "Invalid resource: the resource \"vault\" is not an absolute URI or an application id (GUID).";

/// Resources asked for: (as sent, before encoding; as echoed).
const RESOURCES: [(&str, &str); 4] = [
    ("https://vault.azure.net", "https://vault.azure.net"),
    ("https://storage.azure.com/", "https://storage.azure.com/"),
    (
        "https://management.azure.com//.default",
        "https://management.azure.com/",
    ),
    ("api://load-test", "api://load-test"),
];

#[derive(Deserialize)]
struct File {
    tenant_id: String,
    app: FileApp,
    system_identity: Option<FileSystem>,
    #[serde(default)]
    user_identities: Vec<FileUser>,
    containers: Vec<FileContainer>,
    tokens: Option<FileTokens>,
}

#[derive(Deserialize)]
struct FileApp {
    subscription_id: String,
    resource_group: String,
}

#[derive(Deserialize)]
struct FileSystem {
    client_id: String,
    principal_id: String,
    lifecycle: Option<String>,
}

#[derive(Deserialize)]
struct FileUser {
    name: String,
    client_id: String,
    principal_id: String,
    subscription_id: Option<String>,
    resource_group: Option<String>,
    lifecycle: Option<String>,
}

#[derive(Deserialize)]
struct FileContainer {
    name: String,
    kind: Option<String>,
    secret: String,
}

#[derive(Deserialize)]
struct FileTokens {
    lifetime_secs: Option<i64>,
}

struct Identity {
    client_id: String,
    principal_id: String,
    /// ARM id, for user-assigned identities.
    arm: Option<String>,
    /// (open to main containers, open to init containers)
    open: (bool, bool),
}

fn lifecycle(v: Option<&str>) -> anyhow::Result<(bool, bool)> {
    Ok(match v.unwrap_or("main").to_ascii_lowercase().as_str() {
        "main" => (true, false),
        "init" => (false, true),
        "all" => (true, true),
        "none" => (false, false),
        other => bail!("unknown lifecycle {other:?}"),
    })
}

/// The right answer to one request.
#[derive(Debug)]
pub(crate) enum Expect {
    /// 200 with a token for this identity and resource.
    Token {
        client_id: String,
        principal_id: String,
        resource: &'static str,
    },
    /// The platform's JSON error.
    Error { status: u16, message: String },
    /// 403 with an empty body.
    Forbidden,
}

/// One request and its right answer.
pub(crate) struct Case {
    pub(crate) request: Vec<u8>,
    pub(crate) expect: Expect,
}

/// Every case, split into well-formed requests and deliberately wrong ones.
pub(crate) struct Plan {
    pub(crate) tenant_id: String,
    pub(crate) lifetime_secs: i64,
    pub(crate) good: Vec<Case>,
    pub(crate) bad: Vec<Case>,
    /// Out of 100, how many requests are deliberately wrong.
    pub(crate) bad_percent: u64,
}

fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn request(host: &str, query: &str, secret: Option<&str>) -> Vec<u8> {
    let mut r = format!("GET /msi/token?{query} HTTP/1.1\r\nHost: {host}\r\n");
    if let Some(s) = secret {
        r.push_str("X-IDENTITY-HEADER: ");
        r.push_str(s);
        r.push_str("\r\n");
    }
    r.push_str("User-Agent: miemu-loadgen\r\n\r\n");
    r.into_bytes()
}

/// splitmix64: a cheap, well-mixed hash of the request index.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl Plan {
    pub(crate) fn load(path: &Path, host: &str, bad_percent: u64) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let file: File =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let mut identities = Vec::new();
        if let Some(s) = &file.system_identity {
            identities.push(Identity {
                client_id: s.client_id.to_ascii_lowercase(),
                principal_id: s.principal_id.to_ascii_lowercase(),
                arm: None,
                open: lifecycle(s.lifecycle.as_deref())?,
            });
        }
        for u in &file.user_identities {
            let sub = u
                .subscription_id
                .as_deref()
                .unwrap_or(&file.app.subscription_id);
            let rg = u
                .resource_group
                .as_deref()
                .unwrap_or(&file.app.resource_group);
            identities.push(Identity {
                client_id: u.client_id.to_ascii_lowercase(),
                principal_id: u.principal_id.to_ascii_lowercase(),
                arm: Some(format!(
                    "/subscriptions/{sub}/resourcegroups/{rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{}",
                    u.name
                )),
                open: lifecycle(u.lifecycle.as_deref())?,
            });
        }
        let any_open_to_init = identities.iter().any(|i| i.open.1);

        let mut good = Vec::new();
        let mut bad = Vec::new();
        for c in &file.containers {
            let init = match c.kind.as_deref().unwrap_or("main") {
                "main" => false,
                "init" => true,
                other => bail!("unknown container kind {other:?}"),
            };
            let secret = Some(c.secret.as_str());
            for id in &identities {
                let allowed = if init { id.open.1 } else { id.open.0 };
                for (sent, echoed) in RESOURCES {
                    let base = format!("api-version=2019-08-01&resource={}", encode(sent));
                    let mut selectors = vec![
                        format!("client_id={}", id.client_id),
                        format!("client_id={}", id.client_id.to_ascii_uppercase()),
                        format!("object_id={}", id.principal_id),
                        format!("principal_id={}", id.principal_id),
                    ];
                    match &id.arm {
                        Some(arm) => {
                            selectors.push(format!("mi_res_id={}", encode(arm)));
                            let shouting = arm.replace("resourcegroups", "resourceGroups");
                            selectors.push(format!("msi_res_id={}", encode(&shouting)));
                        }
                        // The system identity is also what an unnamed request gets.
                        None => selectors.push(String::new()),
                    }
                    for sel in selectors {
                        let query = if sel.is_empty() {
                            base.clone()
                        } else {
                            format!("{base}&{sel}")
                        };
                        let expect = if init && !any_open_to_init {
                            init_refusal(&c.name)
                        } else if allowed {
                            Expect::Token {
                                client_id: id.client_id.clone(),
                                principal_id: id.principal_id.clone(),
                                resource: echoed,
                            }
                        } else {
                            Expect::Error {
                                status: 400,
                                message: NOT_FOUND.to_owned(),
                            }
                        };
                        let case = Case {
                            request: request(host, &query, secret),
                            expect,
                        };
                        if matches!(case.expect, Expect::Token { .. }) {
                            good.push(case);
                        } else {
                            bad.push(case);
                        }
                    }
                }
            }
            let ok_query = "api-version=2019-08-01&resource=https%3A%2F%2Fvault.azure.net";
            let refusal = |message: &str| {
                if init && !any_open_to_init {
                    init_refusal(&c.name)
                } else {
                    Expect::Error {
                        status: 400,
                        message: message.to_owned(),
                    }
                }
            };
            let wrong: Vec<(String, Option<String>, Expect)> = vec![
                (
                    ok_query.to_owned(),
                    Some(format!("{}x", c.secret)),
                    Expect::Forbidden,
                ),
                (
                    ok_query.to_owned(),
                    Some(c.secret[..c.secret.len() - 1].to_owned()),
                    Expect::Forbidden,
                ),
                (
                    ok_query.to_owned(),
                    Some(c.secret.to_ascii_uppercase()),
                    Expect::Forbidden,
                ),
                (ok_query.to_owned(), None, Expect::Forbidden),
                (
                    format!("{ok_query}&client_id=00000000-0000-0000-0000-00000000dead"),
                    Some(c.secret.clone()),
                    refusal(NOT_FOUND),
                ),
                (
                    "resource=https%3A%2F%2Fvault.azure.net".to_owned(),
                    Some(c.secret.clone()),
                    refusal(API_VERSION_REQUIRED),
                ),
                (
                    "api-version=2019-08-01&resource=vault".to_owned(),
                    Some(c.secret.clone()),
                    refusal(INVALID_RESOURCE),
                ),
                (
                    format!(
                        "{ok_query}&client_id={}&object_id={}",
                        identities[0].client_id, identities[0].principal_id
                    ),
                    Some(c.secret.clone()),
                    refusal(TWO_SELECTORS),
                ),
            ];
            for (query, secret, expect) in wrong {
                bad.push(Case {
                    request: request(host, &query, secret.as_deref()),
                    expect,
                });
            }
        }
        if good.is_empty() || bad.is_empty() {
            bail!("the configuration yields no well-formed or no wrong requests");
        }
        Ok(Self {
            tenant_id: file.tenant_id.to_ascii_lowercase(),
            lifetime_secs: file.tokens.and_then(|t| t.lifetime_secs).unwrap_or(86_700),
            good,
            bad,
            bad_percent,
        })
    }

    /// The case for request number `i`: deterministic, spread over all cases.
    pub(crate) fn pick(&self, i: u64) -> &Case {
        let h = mix(i);
        if h % 100 < self.bad_percent {
            &self.bad[((h >> 8) % self.bad.len() as u64) as usize]
        } else {
            &self.good[((h >> 8) % self.good.len() as u64) as usize]
        }
    }
}

fn init_refusal(container: &str) -> Expect {
    Expect::Error {
        status: 403,
        message: format!(
            "Managed identities are not available to init containers: container '{container}' is an init container and no managed identity of this app is open to init containers."
        ),
    }
}
