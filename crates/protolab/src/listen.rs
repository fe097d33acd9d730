//! Where every server listens, said one way (issue #20): `--address`/`-a`
//! (an IP or host name, or ADDR:PORT) and `--port`/`-p`, each server setting
//! its own defaults; the older spellings (`--host`, `--listen`) still work.
//! And the start every server shares: signal handlers first (a signal right
//! after the address is printed is not lost), bind, print `listening on`.

use std::net::SocketAddr;

use anyhow::Context as _;
use clap::Args;
use tokio::net::TcpListener;

/// `--address` and `--port`. Each server sets its defaults with
/// `#[command(mut_arg("address", ..), mut_arg("port", ..))]`.
#[derive(Debug, Clone, Args)]
pub struct ListenArgs {
    /// Address to listen on: an IP or a host name, or ADDR:PORT (whose port
    /// then wins over --port).
    #[arg(
        short = 'a',
        long = "address",
        visible_alias = "host",
        alias = "listen",
        value_name = "ADDR",
        default_value = "0.0.0.0"
    )]
    pub address: String,
    /// Port (0 picks a free one; the bound address is printed).
    #[arg(short = 'p', long = "port", default_value_t = 0)]
    pub port: u16,
}

impl ListenArgs {
    /// The socket address these say (a host name is looked up, without
    /// blocking the runtime's threads: its first address).
    pub async fn resolve(&self) -> anyhow::Result<SocketAddr> {
        let target = if self.address.parse::<SocketAddr>().is_ok() {
            self.address.clone()
        } else if self.address.contains(':') && !self.address.starts_with('[') {
            // A bare IPv6 address.
            format!("[{}]:{}", self.address, self.port)
        } else {
            format!("{}:{}", self.address, self.port)
        };
        tokio::net::lookup_host(&target)
            .await
            .with_context(|| format!("cannot resolve the listening address {target}"))?
            .next()
            .with_context(|| format!("{target} has no address"))
    }
}

/// A server's start: the shutdown signal (handlers installed now) and its
/// bound listener.
pub async fn listen(
    args: &ListenArgs,
) -> anyhow::Result<(TcpListener, impl Future<Output = netkit::shutdown::Signal>)> {
    let signal = signals()?;
    let listener = netkit::server::bind(args.resolve().await?).await?;
    Ok((listener, signal))
}

/// The shutdown signal, its handlers installed now.
pub fn signals() -> anyhow::Result<impl Future<Output = netkit::shutdown::Signal>> {
    netkit::shutdown::signal().context("cannot install signal handlers")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(address: &str, port: u16) -> ListenArgs {
        ListenArgs {
            address: address.into(),
            port,
        }
    }

    #[tokio::test]
    async fn an_ip_takes_the_port_and_an_address_with_a_port_keeps_its_own() {
        assert_eq!(
            args("127.0.0.1", 9000).resolve().await.unwrap(),
            "127.0.0.1:9000".parse().unwrap()
        );
        assert_eq!(
            args("127.0.0.1:8081", 9000).resolve().await.unwrap(),
            "127.0.0.1:8081".parse().unwrap()
        );
        assert_eq!(
            args("::1", 7).resolve().await.unwrap(),
            "[::1]:7".parse().unwrap()
        );
        assert_eq!(
            args("localhost", 5).resolve().await.unwrap().port(),
            5,
            "a host name is looked up"
        );
    }

    /// The `--address` and `--port` defaults of `path` (a subcommand path).
    fn defaults(path: &[&str]) -> (String, Option<String>) {
        use clap::CommandFactory as _;
        let mut cmd = crate::Cli::command();
        cmd.build();
        let mut at = &cmd;
        for name in path {
            at = at.find_subcommand(name).expect("the subcommand exists");
        }
        let default = |id: &str| {
            at.get_arguments()
                .find(|a| a.get_id() == id)
                .and_then(|a| a.get_default_values().first())
                .map(|v| v.to_string_lossy().into_owned())
        };
        (default("address").expect("an address"), default("port"))
    }

    #[test]
    fn every_server_listens_with_the_same_flags_and_its_own_defaults() {
        let port = |p: u16| Some(p.to_string());
        assert_eq!(
            defaults(&["hftp", "serve"]),
            ("0.0.0.0".into(), port(hftp::DEFAULT_PORT))
        );
        for example in ["echo", "math", "positions"] {
            assert_eq!(
                defaults(&["classic", example, "serve"]),
                ("0.0.0.0".into(), port(classic::DEFAULT_PORT))
            );
        }
        assert_eq!(
            defaults(&["relay", "serve"]),
            ("127.0.0.1".into(), port(8081))
        );
        assert_eq!(
            defaults(&["lottery", "serve"]),
            ("0.0.0.0".into(), port(12345))
        );
        assert_eq!(defaults(&["rdt", "recv"]), ("0.0.0.0".into(), None));
        for proxy in ["udp", "tcp"] {
            assert_eq!(defaults(&["impair", proxy]), ("127.0.0.1".into(), port(0)));
        }
    }

    #[test]
    fn the_older_spellings_still_parse() {
        use clap::Parser as _;
        for args in [
            &[
                "protolab",
                "classic",
                "math",
                "serve",
                "--host",
                "127.0.0.1",
            ][..],
            &["protolab", "relay", "serve", "--address", "127.0.0.1:0"],
            &[
                "protolab",
                "impair",
                "udp",
                "--listen",
                "127.0.0.1:0",
                "--upstream",
                "127.0.0.1:9",
            ],
            &["protolab", "hftp", "serve", "-a", "127.0.0.1", "-p", "0"],
        ] {
            crate::Cli::try_parse_from(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        }
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory as _;
        crate::Cli::command().debug_assert();
    }
}
