//! Where a recipient's copy goes: the smarthost, the recipient domain's MX hosts, or a Maildir.

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ProtocolConfig, ResolverConfig,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use std::net::SocketAddr;

pub fn resolver(servers: &[SocketAddr]) -> Result<TokioResolver, String> {
    let builder = if servers.is_empty() {
        TokioResolver::builder_tokio().map_err(|e| e.to_string())?
    } else {
        let ns = servers
            .iter()
            .map(|s| {
                let conn = |protocol| {
                    let mut c = ConnectionConfig::new(protocol);
                    c.port = s.port();
                    c
                };
                NameServerConfig::new(
                    s.ip(),
                    true,
                    vec![conn(ProtocolConfig::Udp), conn(ProtocolConfig::Tcp)],
                )
            })
            .collect();
        TokioResolver::builder_with_config(
            ResolverConfig::from_parts(None, vec![], ns),
            TokioRuntimeProvider::default(),
        )
    };
    builder.build().map_err(|e| e.to_string())
}

/// A host to try, with the name used for TLS.
#[derive(Debug, Clone)]
pub struct Host {
    pub name: String,
    pub addrs: Vec<SocketAddr>,
}

#[derive(Debug)]
pub enum Lookup {
    Hosts(Vec<Host>),
    /// The domain does not exist or accepts no mail (null MX): a permanent failure.
    Permanent(String),
    Temporary(String),
}

fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    }
}

async fn addresses(
    resolver: &TokioResolver,
    host: &str,
    port: u16,
) -> Result<Vec<SocketAddr>, String> {
    if let Ok(ip) = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
    {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let ips = resolver
        .lookup_ip(fqdn(host))
        .await
        .map_err(|e| e.to_string())?;
    Ok(ips.iter().map(|ip| SocketAddr::new(ip, port)).collect())
}

/// MX hosts for a domain in preference order, with the RFC 5321 implicit-MX fallback.
pub async fn mx(resolver: &TokioResolver, domain: &str, port: u16) -> Lookup {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let mut names: Vec<(u16, String)> = match resolver.mx_lookup(fqdn(&domain)).await {
        Ok(l) => l
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::MX(mx) => Some((mx.preference, mx.exchange.to_ascii())),
                _ => None,
            })
            .collect(),
        Err(e) if e.is_nx_domain() => {
            return Lookup::Permanent(format!("550 5.1.2 domain {domain} does not exist"));
        }
        Err(e) if e.is_no_records_found() => Vec::new(),
        Err(e) => {
            return Lookup::Temporary(format!("451 4.4.3 MX lookup for {domain} failed: {e}"));
        }
    };
    if names.len() == 1 && (names[0].1 == "." || names[0].1.is_empty()) {
        return Lookup::Permanent(format!(
            "556 5.1.10 domain {domain} accepts no mail (null MX)"
        ));
    }
    if names.is_empty() {
        names.push((0, domain.clone()));
    }
    names.sort_by_key(|(p, _)| *p);
    let mut hosts = Vec::new();
    let mut last_err = None;
    for (_, name) in names {
        let name = name.trim_end_matches('.').to_string();
        match addresses(resolver, &name, port).await {
            Ok(a) if !a.is_empty() => hosts.push(Host { name, addrs: a }),
            Ok(_) => {}
            Err(e) => last_err = Some(e),
        }
    }
    if hosts.is_empty() {
        return Lookup::Temporary(format!(
            "451 4.4.3 no address for the mail hosts of {domain}: {}",
            last_err.unwrap_or_else(|| "no records".into())
        ));
    }
    Lookup::Hosts(hosts)
}

/// The smarthost's addresses.
pub async fn smarthost(host: &str, port: u16) -> Lookup {
    let target = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    match tokio::net::lookup_host(target).await {
        Ok(a) => {
            let addrs: Vec<SocketAddr> = a.collect();
            if addrs.is_empty() {
                Lookup::Temporary(format!("451 4.4.3 no address for {host}"))
            } else {
                Lookup::Hosts(vec![Host {
                    name: host.to_string(),
                    addrs,
                }])
            }
        }
        Err(e) => Lookup::Temporary(format!("451 4.4.3 cannot resolve {host}: {e}")),
    }
}
