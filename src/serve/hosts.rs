//! The Host names the server answers to. A web page elsewhere can point a name it owns at this machine (DNS
//! rebinding) and then read the explorer as its own origin; the Host header its requests carry still names
//! the attacker's domain, so answering only to this machine's own names and addresses (and those the user
//! adds with `--allow-host`) shuts that door, whatever address the server is bound to.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// A host named in a Host header or an `--allow-host` value: an address, or a lower-case name without its
/// trailing dot.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// An IPv4 or IPv6 address (IPv4-mapped IPv6 addresses as IPv4).
    Ip(IpAddr),
    /// A DNS name.
    Name(String),
}

/// Parses `host[:port]`, `[ipv6][:port]` or a bare IPv6 address when `bare_v6` (an `--allow-host` value;
/// a Host header must bracket it). A name is made of letters, digits, `-`, `_` and dots.
pub fn parse(s: &str, bare_v6: bool) -> Option<(Host, Option<u16>)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (ip, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (Host::Ip(ip.parse::<Ipv6Addr>().ok()?.to_canonical()), port)
    } else if bare_v6 && s.matches(':').count() > 1 {
        (Host::Ip(s.parse::<Ipv6Addr>().ok()?.to_canonical()), None)
    } else {
        let (name, port) = match s.split_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (s, None),
        };
        (host_of(name)?, port)
    };
    let port = match port {
        // An empty port is allowed by the URI syntax and means the default.
        None | Some("") => None,
        Some(p) if p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => Some(p.parse().ok()?),
        Some(_) => return None,
    };
    Some((host, port))
}

/// An IPv4 address or a name, normalised.
fn host_of(name: &str) -> Option<Host> {
    // A fully qualified name may end in a dot; it names the same host.
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    if let Ok(ip) = name.parse::<Ipv4Addr>() {
        return Some(Host::Ip(IpAddr::V4(ip)));
    }
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    (name.len() <= 253 && name.split('.').all(label_ok)).then_some(Host::Name(name))
}

/// The names and addresses a server answers to, and on which ports.
#[derive(Debug, Clone)]
pub struct Allowed {
    port: u16,
    own: HashSet<Host>,
    /// Added by the user: with no port (any the server's own), or with the ports given.
    extra: HashMap<Host, Option<HashSet<u16>>>,
}

/// Parses an `--allow-host` value, or says why it is refused.
pub fn check_extra(value: &str) -> Result<(Host, Option<u16>), String> {
    match parse(value, true) {
        Some((Host::Ip(ip), _)) if ip.is_unspecified() => Err(format!(
            "--allow-host {value}: {ip} is not an address a client can ask for; give a name or address of this machine"
        )),
        Some(h) => Ok(h),
        None => Err(format!(
            "--allow-host '{}' is not a host name or address: give NAME, NAME:PORT, an IP address or [IPv6]:PORT",
            super::clip(value)
        )),
    }
}

impl Allowed {
    /// This machine's own names for a server bound to `bound`: localhost, the host name, the loopback
    /// addresses, the bound address, and for an unspecified address every interface's; plus `extra`.
    pub fn for_bind(bound: SocketAddr, extra: &[(Host, Option<u16>)]) -> Allowed {
        let mut own: HashSet<Host> = [
            Host::Name("localhost".into()),
            Host::Ip(Ipv4Addr::LOCALHOST.into()),
            Host::Ip(Ipv6Addr::LOCALHOST.into()),
            Host::Ip(bound.ip().to_canonical()),
        ]
        .into_iter()
        .collect();
        if let Some(h) = hostname().and_then(|n| host_of(&n)) {
            own.insert(h);
        }
        if bound.ip().is_unspecified() {
            own.extend(interface_addresses().into_iter().map(Host::Ip));
        }
        let mut more: HashMap<Host, Option<HashSet<u16>>> = HashMap::new();
        for (h, p) in extra {
            let ports = more.entry(h.clone()).or_insert(Some(HashSet::new()));
            match (p, ports.as_mut()) {
                (Some(p), Some(ps)) => {
                    ps.insert(*p);
                }
                _ => *ports = None,
            }
        }
        Allowed {
            port: bound.port(),
            own,
            extra: more,
        }
    }

    /// Whether a request whose Host header is `header`, arriving on a connection to `local`, is for this
    /// server. An address is this machine's when the connection was made to it, even if it was added after
    /// the server started.
    pub fn admits(&self, header: &str, local: Option<IpAddr>) -> bool {
        parse(header, false).is_some_and(|(host, port)| self.admits_parsed(&host, port, local))
    }

    /// Whether an `Origin` header names this server: its scheme is http or https and its host and port (the
    /// scheme's default when it gives none) are ones the server answers to.
    pub fn admits_origin(&self, origin: &str, local: Option<IpAddr>) -> bool {
        let (rest, default) = match origin.split_once("://") {
            Some(("http", rest)) => (rest, 80),
            Some(("https", rest)) => (rest, 443),
            _ => return false,
        };
        parse(rest, false).is_some_and(|(host, port)| {
            self.admits_parsed(&host, Some(port.unwrap_or(default)), local)
        })
    }

    fn admits_parsed(&self, host: &Host, port: Option<u16>, local: Option<IpAddr>) -> bool {
        let own_port = port.is_none_or(|p| p == self.port);
        let own = self.own.contains(host)
            || matches!(host, Host::Ip(ip) if local.is_some_and(|l| l.to_canonical() == *ip));
        if own && own_port {
            return true;
        }
        match self.extra.get(host) {
            Some(None) => own_port,
            Some(Some(ports)) => own_port || port.is_some_and(|p| ports.contains(&p)),
            None => false,
        }
    }
}

/// This machine's host name.
fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that many bytes.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0)?;
    String::from_utf8(buf[..end].to_vec()).ok()
}

/// The addresses of this machine's network interfaces.
fn interface_addresses() -> Vec<IpAddr> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list we walk read-only and free once.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut p = list;
    while !p.is_null() {
        // SAFETY: `p` is a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*p };
        if !ifa.ifa_addr.is_null() {
            // SAFETY: ifa_addr points to a sockaddr whose family says which struct it is.
            match i32::from(unsafe { (*ifa.ifa_addr).sa_family }) {
                libc::AF_INET => {
                    let sa = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                    out.push(IpAddr::V4(Ipv4Addr::from(u32::from_be(sa.sin_addr.s_addr))));
                }
                libc::AF_INET6 => {
                    let sa = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                    out.push(IpAddr::V6(Ipv6Addr::from(sa.sin6_addr.s6_addr)).to_canonical());
                }
                _ => {}
            }
        }
        p = ifa.ifa_next;
    }
    // SAFETY: `list` came from getifaddrs and is freed once, after the last use of its nodes.
    unsafe { libc::freeifaddrs(list) };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(bound: &str, extra: &[&str]) -> Allowed {
        let extra: Vec<_> = extra.iter().map(|e| check_extra(e).unwrap()).collect();
        Allowed::for_bind(bound.parse().unwrap(), &extra)
    }

    #[test]
    fn host_headers_are_normalised_before_they_are_compared() {
        let a = allowed("127.0.0.2:8080", &[]);
        for ok in [
            "127.0.0.2:8080",
            "127.0.0.2",
            "127.0.0.1:8080",
            "localhost:8080",
            "LOCALHOST:8080",
            "localhost.:8080",
            "localhost",
            "localhost:",
            "[::1]:8080",
            "[0:0:0:0:0:0:0:1]",
            "[::ffff:127.0.0.2]:8080",
        ] {
            assert!(a.admits(ok, None), "{ok}");
        }
        for bad in [
            "",
            "evil.com",
            "evil.com:8080",
            "localhost:8081",
            "localhost:08080x",
            "localhost:99999",
            "localhost..",
            "127.0.0.3:8080",
            "::1",
            "[::1",
            "[::1]x",
            "local host",
            "localhost:8080:8080",
            "127.0.0.2:8080@evil.com",
            "0.0.0.0:8080",
        ] {
            assert!(!a.admits(bad, None), "{bad}");
        }
        let name = hostname().unwrap();
        assert!(a.admits(&format!("{}:8080", name.to_uppercase()), None));
    }

    #[test]
    fn any_address_admits_the_machines_addresses_and_what_the_user_adds() {
        let a = allowed(
            "0.0.0.0:9000",
            &["explorer.example", "proxy.example:443", "10.1.2.3"],
        );
        assert!(a.admits("0.0.0.0:9000", None));
        assert!(!a.admits("attacker.test:9000", None));
        for ip in interface_addresses() {
            let h = match ip {
                IpAddr::V4(v) => format!("{v}:9000"),
                IpAddr::V6(v) => format!("[{v}]:9000"),
            };
            assert!(a.admits(&h, None), "{h}");
        }
        // An address added after the start is admitted on a connection made to it.
        let late: IpAddr = "192.0.2.77".parse().unwrap();
        assert!(!a.admits("192.0.2.77:9000", None));
        assert!(a.admits("192.0.2.77:9000", Some(late)));
        assert!(!a.admits("192.0.2.78:9000", Some(late)));
        assert!(a.admits("explorer.example", None));
        assert!(a.admits("Explorer.Example.:9000", None));
        assert!(!a.admits("explorer.example:9001", None));
        assert!(a.admits("proxy.example:443", None));
        assert!(a.admits("proxy.example", None));
        assert!(!a.admits("proxy.example:444", None));
        assert!(a.admits("10.1.2.3:9000", None));
        assert!(!a.admits("sub.explorer.example", None));
        // An origin's port is its scheme's default when it gives none.
        assert!(a.admits_origin("http://localhost:9000", None));
        assert!(a.admits_origin("https://proxy.example", None));
        assert!(!a.admits_origin("http://proxy.example", None));
        assert!(!a.admits_origin("http://localhost", None));
        assert!(!a.admits_origin("http://localhost:9001", None));
        assert!(!a.admits_origin("null", None));
        assert!(!a.admits_origin("file://localhost:9000", None));
        assert!(allowed("127.0.0.1:80", &[]).admits_origin("http://localhost", None));
    }

    #[test]
    fn allow_host_values_are_checked() {
        for ok in [
            "my.box",
            "my.box:8080",
            "::1",
            "[::1]:80",
            "10.0.0.1",
            "x_y",
        ] {
            assert!(check_extra(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "*", "a b", "http://x", "x:y", "[::1", "0.0.0.0", "::", "x:123456",
        ] {
            let e = check_extra(bad).unwrap_err();
            assert!(e.contains("--allow-host"), "{bad}: {e}");
        }
    }
}
