//! `stemscribe serve`: the invoke API, the jobs API and the studio on a local address until
//! SIGINT or SIGTERM; `stemscribe studio`: the same on a free port, opened in the browser.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use stemscribe_server::{parse_keys, serve, FetchConfig, ServerConfig};

use crate::io::{load_engine, Hardware, PitchArgs, TwoStemArgs};

/// Arguments of `stemscribe serve`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Security defaults: binds to loopback; without --keys any local \
client may call it; payload.url is not fetched (40000024) unless --fetch-host names hosts, and \
even then not from loopback, private or link-local addresses unless --fetch-private."
)]
pub struct Args {
    /// Address and port to listen on [default: 127.0.0.1:8000; for `studio`, a free port of
    /// 127.0.0.1].
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<SocketAddr>,
    /// Require credentials: a file of `appkey:token` lines.
    #[arg(long, value_name = "FILE")]
    keys: Option<PathBuf>,
    /// Jobs that may run at once; each model holds this many sessions, so that their
    /// inferences run at once too (each with --threads threads).
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    max_jobs: u16,
    /// Requests that may wait for a job slot; further requests get 429 at once.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(0..=1024))]
    queue: u16,
    /// Longest a queued request waits for a slot before it gets 429, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u16).range(1..=3600))]
    queue_wait: u16,
    /// Open connections; more are closed as soon as they are accepted.
    #[arg(long, value_name = "N", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    max_connections: u32,
    /// Longest a client may take to send a request's headers, and longest a connection may
    /// sit idle between requests, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=3600))]
    header_timeout: u16,
    /// Longest a client may take to send a request's body, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u16).range(1..=3600))]
    body_timeout: u16,
    /// Longest a request's body may send nothing before it is refused, in seconds (a slow but
    /// steady upload may take up to --body-timeout).
    #[arg(long, value_name = "SECONDS", default_value_t = 15, value_parser = clap::value_parser!(u16).range(1..=3600))]
    body_idle_timeout: u16,
    /// Longest a response may stall because the client does not read it, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u16).range(1..=3600))]
    write_timeout: u16,
    /// After SIGTERM or SIGINT, longest to wait for requests in flight, in seconds (a second
    /// signal exits at once).
    #[arg(long, value_name = "SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u16).range(0..=3600))]
    shutdown_grace: u16,
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
    /// How long a finished job of the jobs API (and the studio) keeps its files, in minutes.
    #[arg(long, value_name = "MINUTES", default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=10_080))]
    job_ttl: u32,
    /// The most disk space jobs may take (uploads and results), in MB; beyond it new jobs are
    /// refused as busy.
    #[arg(long, value_name = "MB", default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(10..=10_000_000))]
    job_storage: u64,
    /// Where jobs keep their files (a new folder inside, removed when the server stops)
    /// [default: the system's temporary folder].
    #[arg(long, value_name = "DIR")]
    job_dir: Option<PathBuf>,
    #[command(flatten)]
    pitch: PitchArgs,
    #[command(flatten)]
    two_stem: TwoStemArgs,
}

/// Arguments of `stemscribe studio`.
#[derive(Debug, clap::Args)]
pub struct StudioArgs {
    /// Print the studio's address instead of opening a browser.
    #[arg(long)]
    no_browser: bool,
    #[command(flatten)]
    serve: Args,
}

impl Args {
    /// Jobs that may run at once (`--max-jobs`).
    pub fn max_jobs(&self) -> usize {
        usize::from(self.max_jobs)
    }
}

impl StudioArgs {
    /// Jobs that may run at once (`--max-jobs`).
    pub fn max_jobs(&self) -> usize {
        self.serve.max_jobs()
    }
}

/// Runs `stemscribe studio`: the server on a free local port, opened in the default browser.
pub fn studio(args: &StudioArgs, hardware: Hardware, quiet: bool) -> Result<()> {
    let listen = args
        .serve
        .listen
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
    let open = !args.no_browser;
    serve_on(&args.serve, listen, hardware, quiet, move |url| {
        eprintln!("the studio is at {url} (Ctrl-C stops it)");
        if open {
            if let Err(error) = open_browser(url) {
                eprintln!("warning: cannot open a browser ({error}); open {url} yourself");
            }
        }
    })
}

/// Opens `url` in the desktop's default browser.
fn open_browser(url: &str) -> std::io::Result<()> {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else if cfg!(windows) {
        "explorer"
    } else {
        "xdg-open"
    };
    std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map(drop)
}

/// Runs `stemscribe serve` until a shutdown signal, finishing requests in flight.
pub fn run(args: &Args, hardware: Hardware, quiet: bool) -> Result<()> {
    let listen = args
        .listen
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8000)));
    serve_on(args, listen, hardware, quiet, |url| {
        if !quiet {
            eprintln!("serving POST {url}api/v1/invoke");
            eprintln!("the jobs API at {url}api/v1/jobs and the studio at {url}");
        }
    })
}

/// Serves on `listen`, calling `started` with the server's address once it listens.
fn serve_on(
    args: &Args,
    listen: SocketAddr,
    hardware: Hardware,
    quiet: bool,
    started: impl FnOnce(&str),
) -> Result<()> {
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
    if keys.is_none() && !listen.ip().is_loopback() && !quiet {
        eprintln!(
            "warning: listening on {listen} without --keys: anyone who can reach it may use it"
        );
    }
    // One session per job slot, so that --max-jobs inferences can run at once.
    let mut config = args.two_stem.apply(args.pitch.config());
    config.runtime.sessions = Some(usize::from(args.max_jobs));
    let engine = Arc::new(load_engine(hardware, config)?);
    let fetch = (!args.fetch_hosts.is_empty()).then(|| FetchConfig {
        allowed_hosts: args.fetch_hosts.clone(),
        allow_private: args.fetch_private,
        max_bytes: usize::from(args.fetch_max_mb) << 20,
        timeout: Duration::from_secs(u64::from(args.fetch_timeout)),
    });
    let seconds = |s: u16| Duration::from_secs(u64::from(s));
    let config = ServerConfig {
        max_jobs: usize::from(args.max_jobs),
        queue: usize::from(args.queue),
        queue_wait: seconds(args.queue_wait),
        max_connections: args.max_connections as usize,
        header_timeout: seconds(args.header_timeout),
        body_timeout: seconds(args.body_timeout),
        body_idle_timeout: seconds(args.body_idle_timeout),
        write_timeout: seconds(args.write_timeout),
        shutdown_grace: seconds(args.shutdown_grace),
        keys,
        fetch,
        job_ttl: Duration::from_secs(u64::from(args.job_ttl) * 60),
        job_storage: args.job_storage * 1_000_000,
        job_dir: args.job_dir.clone(),
        ..ServerConfig::default()
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        // Listen for signals before saying where the server is, so that one sent as soon as
        // the address is known stops the server instead of killing it.
        let mut signals = Signals::new().context("cannot listen for signals")?;
        started(&format!("http://{}/", listener.local_addr()?));
        let stopping = async move {
            signals.next().await;
            if !quiet {
                eprintln!("stopping: finishing requests in flight (a second signal exits now)");
            }
            tokio::spawn(async move {
                signals.next().await;
                std::process::exit(130);
            });
        };
        serve(listener, engine, config, stopping)
            .await
            .context("the server failed")
    })?;
    // Jobs still running after the grace period are abandoned rather than waited for.
    runtime.shutdown_timeout(Duration::from_millis(100));
    if !quiet {
        eprintln!("stopped");
    }
    Ok(())
}

/// SIGINT (Ctrl-C) and SIGTERM, listened for from the moment this is made.
struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    /// Starts listening (within a Tokio runtime).
    fn new() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Self {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// Resolves on the next SIGINT or SIGTERM.
    async fn next(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.interrupt.recv() => {},
            _ = self.terminate.recv() => {},
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
