//! `elbo serve`: the latent explorer, a local web page over a trained run.

use super::common::DataArgs;
use crate::error::{Error, Result};
use crate::serve::hosts::{self, Host};
use crate::serve::live::Live;
use crate::serve::{Explorer, check_points, http};
use crate::train::checkpoint::load_run_stamped;
use clap::Args;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// A run directory written by `elbo train`.
    run_dir: PathBuf,
    /// Address to listen on (an IP address, or localhost). Anything but a loopback address lets other machines
    /// in: the page has no login.
    #[arg(long, value_parser = listen_address)]
    host: Option<IpAddr>,
    /// Port to listen on (0: any free port; the address is printed).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Test images in the scatter (the first N of the test split, at most 20000).
    #[arg(long, default_value_t = 2000)]
    points: usize,
    /// Also answer to this name or address (NAME, NAME:PORT, an IP address, [IPv6]:PORT), e.g. the name other
    /// machines reach this one by; repeatable. This machine's own names and addresses are always answered.
    #[arg(long, value_name = "NAME")]
    allow_host: Vec<String>,
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    threads: super::common::ThreadsArg,
}

/// Encodes the test images, then serves the page until Ctrl-C.
pub(crate) fn run(a: ServeArgs) -> Result<()> {
    a.threads.init()?;
    let host = a.host.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    // Every argument is checked, and the port bound, before the run is opened and its test set loaded and
    // encoded: a mistake costs nothing.
    check_points(a.points)?;
    let extra_hosts = a
        .allow_host
        .iter()
        .map(|h| hosts::check_extra(h).map_err(Error::Config))
        .collect::<Result<Vec<(Host, Option<u16>)>>>()?;
    let listener = http::bind(host, a.port)?;
    let (ck, stamp) = load_run_stamped(&a.run_dir)?;
    super::common::require_images(&ck, "serve")?;
    let splits = a.data.splits(&ck)?;
    let name = a.run_dir.display().to_string();
    let available = splits.test.len();
    let explorer = Explorer::new(ck, splits.test, a.points, name.clone())?;
    let epoch = explorer.epoch();
    if a.points > available {
        crate::notes::say!("elbo: the test split has {available} images; showing them all");
    }
    // ::ffff:127.0.0.1 is IPv4's loopback written as IPv6: this machine only, too.
    let loopback = match host {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(v6.is_loopback(), |v4| v4.is_loopback()),
        IpAddr::V4(v4) => v4.is_loopback(),
    };
    if !loopback {
        crate::notes::say!(
            "elbo: warning: listening on {host}: other machines can reach this page, which has no login; \
             leave out --host to serve this machine only"
        );
    }
    let live = Live::new(a.run_dir.clone(), explorer, stamp);
    http::serve(live, &extra_hosts, listener, |mut addr| {
        // An address that means "every interface" is not one a browser can open: name this machine's own.
        if addr.ip().is_unspecified() {
            addr.set_ip(match addr.ip() {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
            });
        }
        crate::notes::say!(
            "elbo: exploring {name} (epoch {epoch}) at http://{addr}/ (Ctrl-C stops; the page offers a newer \
             checkpoint when training saves one)"
        );
        // The address alone on stdout, for scripts (and --port 0).
        println!("http://{addr}/");
    })
}

/// `--host`: an IP address, or `localhost` (this machine only, 127.0.0.1); a name is not looked up, so what is
/// listened on is what was written.
fn listen_address(s: &str) -> std::result::Result<IpAddr, String> {
    if s.eq_ignore_ascii_case("localhost") {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    s.parse().map_err(|_| {
        format!(
            "'{s}' is not an IP address: give one such as 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)"
        )
    })
}
