//! The command line: `serve` (the default), `config`, `check-config`, `token`,
//! `decode` and `healthcheck`. Flags double as `--help` text. Errors from here
//! are `anyhow` with context: this is the edge of the program.

mod client;
mod decode;
mod serve;
mod show;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::Overrides;
use crate::telemetry::LogFormat;

/// An emulator of the Azure managed-identity token endpoint (Container Apps / App Service).
#[derive(Debug, Parser)]
#[command(name = "miemu", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the endpoint (the default when no command is given).
    Serve(ServeArgs),
    /// Print the effective configuration, secrets redacted.
    Config(ConfigArgs),
    /// Validate a configuration file and report every problem in it.
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
    /// Ask a miemu (or Azure) endpoint for a token, as a container would.
    Token(client::TokenArgs),
    /// Print a token's header and claims (the signature is not verified).
    Decode {
        /// The token, or `-` to read it from standard input.
        token: String,
    },
    /// Manage the signing keys in a key directory.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Exit 0 when the server's /healthz answers 200 (for container HEALTHCHECKs).
    Healthcheck {
        /// Health URL.
        #[arg(long, default_value = "http://127.0.0.1:42356/healthz")]
        url: String,
    },
}

#[derive(Debug, Subcommand)]
enum KeysAction {
    /// Make a new key the signer; the current one stays published for the overlap window.
    /// A running miemu using the directory switches to the new key within a second.
    Rotate(KeyDirArgs),
    /// List the signer and the keys still published.
    List(KeyDirArgs),
}

#[derive(Debug, Args)]
struct KeyDirArgs {
    /// Key directory [default: $XDG_STATE_HOME/miemu/keys or ~/.local/state/miemu/keys].
    #[arg(long, env = "MIEMU_KEY_DIR")]
    key_dir: Option<PathBuf>,
    /// Seconds a retired key stays published.
    #[arg(long, default_value_t = crate::token::keyring::DEFAULT_OVERLAP_SECS)]
    overlap_secs: i64,
}

/// Options of `serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Configuration file; the built-in default configuration when absent.
    #[arg(long, env = "MIEMU_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:42356, or the file's server.listen].
    #[arg(long, env = "MIEMU_LISTEN")]
    pub listen: Option<String>,
    /// Signing key directory [default: $XDG_STATE_HOME/miemu/keys or ~/.local/state/miemu/keys].
    #[arg(long, env = "MIEMU_KEY_DIR")]
    pub key_dir: Option<PathBuf>,
    /// Write `<container>.env` files (IDENTITY_ENDPOINT, IDENTITY_HEADER, …) into this directory.
    #[arg(long, env = "MIEMU_ENV_DIR")]
    pub env_dir: Option<PathBuf>,
    /// Base URL clients use to reach miemu, e.g. http://miemu:42356 in compose.
    #[arg(long, env = "MIEMU_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Log format.
    #[arg(long, env = "MIEMU_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,
    /// Serve the admin API on this address (off by default), e.g. 127.0.0.1:42357.
    #[arg(long, env = "MIEMU_ADMIN_LISTEN")]
    pub admin_listen: Option<String>,
    /// Bearer token for the admin API [default: generated and printed at start].
    #[arg(long, env = "MIEMU_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Refuse connections on the token port for this many seconds after start,
    /// as the real endpoint does while a replica starts.
    #[arg(long, value_name = "SECS")]
    pub not_ready_for: Option<u64>,
    /// Start with this fault rule active (JSON, as POST /admin/faults takes; repeatable),
    /// e.g. '{"kind":"status","status":503,"count":3}'.
    #[arg(long, value_name = "JSON")]
    pub fault: Vec<String>,
}

impl ServeArgs {
    fn overrides(&self) -> Overrides {
        Overrides {
            listen: self.listen.clone(),
            public_url: self.public_url.clone(),
            key_dir: self.key_dir.clone(),
            env_dir: self.env_dir.clone(),
            admin_listen: self.admin_listen.clone(),
            admin_token: self.admin_token.clone(),
        }
    }
}

#[derive(Debug, Args)]
struct ConfigArgs {
    /// Configuration file; the built-in default when absent.
    #[arg(long, env = "MIEMU_CONFIG")]
    config: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    format: Format,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Json,
    Toml,
}

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        None => serve::serve(&cli.serve),
        Some(Command::Serve(args)) => serve::serve(&args),
        Some(Command::Config(args)) => show::config(args.config.as_deref(), args.format),
        Some(Command::CheckConfig { file }) => show::check(&file),
        Some(Command::Token(args)) => client::token(&args),
        Some(Command::Decode { token }) => decode::decode(&token),
        Some(Command::Healthcheck { url }) => client::healthcheck(&url),
        Some(Command::Keys { action }) => keys(&action),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("miemu: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn keys(action: &KeysAction) -> anyhow::Result<ExitCode> {
    use anyhow::Context as _;

    use crate::clock::{Clock as _, SystemClock};
    use crate::token::KeyRing;

    let (KeysAction::Rotate(args) | KeysAction::List(args)) = action;
    let dir = args
        .key_dir
        .clone()
        .unwrap_or_else(crate::config::default_key_dir);
    let now = SystemClock.now();
    let ring = match action {
        KeysAction::Rotate(_) => {
            KeyRing::rotate(&dir, now, args.overlap_secs).with_context(|| {
                format!(
                    "rotating the key in {}; the current key keeps signing",
                    dir.display()
                )
            })?
        }
        KeysAction::List(_) if crate::token::keyring::current_kid(&dir)?.is_none() => {
            anyhow::bail!("no signing key in {}", dir.display())
        }
        KeysAction::List(_) => {
            KeyRing::load_or_create(&dir, now, args.overlap_secs)
                .with_context(|| format!("loading {}", dir.display()))?
                .0
        }
    };
    println!("signer    {}", ring.signer().kid());
    for jwk in ring.published().skip(1) {
        println!("published {} (retired)", jwk.kid);
    }
    Ok(ExitCode::SUCCESS)
}
