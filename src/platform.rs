//! The emulated hosting platform: the app, its containers, and which container
//! is calling.
//!
//! A container app has containers, some of them init containers, and each
//! container is told its own `IDENTITY_HEADER` secret; the header a request
//! carries is therefore how miemu knows which container asked. This module
//! knows nothing about HTTP or tokens.

use std::fmt;

use serde::Serialize;

use crate::identity::Registry;
use crate::secret::Secret;

/// What kind of Azure resource hosts the identities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AppKind {
    /// `Microsoft.App/containerApps`.
    ContainerApp,
    /// `Microsoft.Web/sites` (App Service, Functions).
    WebApp,
}

impl AppKind {
    /// Parses the configuration spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "containerapp" => Some(Self::ContainerApp),
            "webapp" => Some(Self::WebApp),
            _ => None,
        }
    }

    /// The configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ContainerApp => "containerapp",
            Self::WebApp => "webapp",
        }
    }

    fn provider(self) -> &'static str {
        match self {
            Self::ContainerApp => "Microsoft.App/containerApps",
            Self::WebApp => "Microsoft.Web/sites",
        }
    }
}

/// The hosting app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    /// Subscription id.
    pub subscription_id: uuid::Uuid,
    /// Resource group.
    pub resource_group: String,
    /// App name.
    pub name: String,
    /// App kind.
    pub kind: AppKind,
}

impl App {
    /// The app's ARM resource id, with the lower-case `resourcegroups`
    /// segment seen in real `xms_mirid` claims.
    pub fn resource_id(&self) -> String {
        format!(
            "/subscriptions/{}/resourcegroups/{}/providers/{}/{}",
            self.subscription_id,
            self.resource_group,
            self.kind.provider(),
            self.name
        )
    }
}

/// Whether a container is a regular one or an init container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerKind {
    /// A regular (main) container.
    Main,
    /// An init container, run to completion before the main ones start.
    Init,
}

impl ContainerKind {
    /// Parses the configuration spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "main" => Some(Self::Main),
            "init" => Some(Self::Init),
            _ => None,
        }
    }
}

impl fmt::Display for ContainerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Main => "main",
            Self::Init => "init",
        })
    }
}

/// One container and its secret.
#[derive(Debug, Clone)]
pub struct Container {
    /// Container name.
    pub name: String,
    /// Main or init.
    pub kind: ContainerKind,
    /// Its `IDENTITY_HEADER` value.
    pub secret: Secret,
}

/// Everything that describes the emulated app at one moment. Swapped whole
/// when the configuration changes, so a request never sees half of a change.
#[derive(Debug, Clone)]
pub struct Platform {
    /// Tenant id.
    pub tenant_id: uuid::Uuid,
    /// The hosting app.
    pub app: App,
    /// Its managed identities.
    pub identities: Registry,
    /// Its containers.
    pub containers: Vec<Container>,
}

impl Platform {
    /// Finds the container whose secret equals the presented header value.
    ///
    /// Every container's secret is compared, each in constant time, without
    /// stopping at the first match, so timing reveals neither which container
    /// matched nor how close a guess came.
    pub fn caller(&self, presented: &[u8]) -> Option<&Container> {
        let mut found = None;
        for container in &self.containers {
            if container.secret.matches(presented) && found.is_none() {
                found = Some(container);
            }
        }
        found
    }

    /// Looks a container up by name.
    pub fn container(&self, name: &str) -> Option<&Container> {
        self.containers.iter().find(|c| c.name == name)
    }
}
