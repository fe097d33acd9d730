//! `protolab hftp serve`: arguments → the `hftp` server.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use impair::units::Dur;

#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  protolab hftp serve -d testdata            # port 19500 on 0.0.0.0, as the course's server"
)]
pub struct HftpArgs {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// The file server: a drop-in replacement for the course's `server.py`.
    #[command(
        after_help = "Examples:\n  protolab hftp serve\n  protolab hftp serve -a 127.0.0.1 -p 19500 -d /srv/files"
    )]
    Serve {
        /// Address to listen on.
        #[arg(short, long, default_value = "0.0.0.0")]
        address: IpAddr,
        /// Port (0 picks a free one; the bound address is printed).
        #[arg(short, long, default_value_t = hftp::DEFAULT_PORT)]
        port: u16,
        /// The shared directory (resolved on every request).
        #[arg(short, long, default_value = "testdata")]
        datadir: PathBuf,
        /// Close a connection silent for this long.
        #[arg(long, default_value = "60s")]
        idle_timeout: Dur,
        /// Connections served at once.
        #[arg(long, default_value_t = 10_000)]
        max_connections: usize,
    },
}

pub async fn run(args: HftpArgs) -> anyhow::Result<()> {
    match args.cmd {
        Cmd::Serve {
            address,
            port,
            datadir,
            idle_timeout,
            max_connections,
        } => {
            // Handlers first: a signal right after the address is printed is not lost.
            let signal = netkit::shutdown::signal().context("cannot install signal handlers")?;
            let listener = netkit::server::bind(SocketAddr::new(address, port)).await?;
            if !datadir.is_dir() {
                tracing::warn!(
                    "data directory {} does not exist (yet): listings are empty until it does",
                    datadir.display()
                );
            }
            println!(
                "hftp server: listening on {} serving {}",
                listener.local_addr()?,
                datadir.display()
            );
            let mut cfg = hftp::server::Config::new(datadir);
            cfg.idle_timeout = idle_timeout.0;
            cfg.max_connections = max_connections;
            hftp::server::run(listener, cfg, signal).await;
        }
    }
    Ok(())
}
