//! `stemscribe serve`: the invoke API on a local address until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use stemscribe_engine::EngineConfig;
use stemscribe_server::{parse_keys, serve, FetchConfig, ServerConfig};

use crate::io::load_engine;

/// Arguments of `stemscribe serve`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Security defaults: binds to loopback; without --keys any local \
client may call it; payload.url is not fetched (40000024) unless --fetch-host names hosts, and \
even then not from loopback, private or link-local addresses unless --fetch-private."
)]
pub struct Args {
    /// Address and port to listen on.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8000")]
    listen: SocketAddr,
    /// Require credentials: a file of `appkey:token` lines.
    #[arg(long, value_name = "FILE")]
    keys: Option<PathBuf>,
    /// Jobs that may run at once; further requests get 429 at once.
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    max_jobs: u16,
    /// Fetch payload.url from this host (repeat for more; `*.example.com` for subdomains).
    #[arg(long = "fetch-host", value_name = "HOST")]
    fetch_hosts: Vec<String>,
    /// Let fetched hosts be or resolve to loopback, private or link-local addresses.
    #[arg(long, requires = "fetch_hosts")]
    fetch_private: bool,
    /// Largest download, in MB.
    #[arg(long, value_name = "MB", default_value_t = 100, requires = "fetch_hosts",
          value_parser = clap::value_parser!(u16).range(1..=100))]
    fetch_max_mb: u16,
    /// Longest download, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 30, requires = "fetch_hosts",
          value_parser = clap::value_parser!(u16).range(1..=600))]
    fetch_timeout: u16,
}

/// Runs `stemscribe serve` until a shutdown signal, finishing requests in flight.
pub fn run(args: &Args, threads: Option<usize>, quiet: bool) -> Result<()> {
    let keys = match &args.keys {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            Some(
                parse_keys(&text)
                    .map_err(anyhow::Error::msg)
                    .with_context(|| format!("cannot parse {}", path.display()))?,
            )
        }
        None => None,
    };
    if keys.is_none() && !args.listen.ip().is_loopback() && !quiet {
        eprintln!(
            "warning: listening on {} without --keys: anyone who can reach it may use it",
            args.listen
        );
    }
    let engine = Arc::new(load_engine(threads, EngineConfig::default())?);
    let fetch = (!args.fetch_hosts.is_empty()).then(|| FetchConfig {
        allowed_hosts: args.fetch_hosts.clone(),
        allow_private: args.fetch_private,
        max_bytes: usize::from(args.fetch_max_mb) << 20,
        timeout: Duration::from_secs(u64::from(args.fetch_timeout)),
    });
    let config = ServerConfig {
        max_jobs: usize::from(args.max_jobs),
        keys,
        fetch,
        ..ServerConfig::default()
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        if !quiet {
            eprintln!(
                "serving POST http://{}/api/v1/invoke",
                listener.local_addr()?
            );
        }
        serve(listener, engine, config, shutdown_signal())
            .await
            .context("the server failed")
    })?;
    if !quiet {
        eprintln!("stopped");
    }
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
}
