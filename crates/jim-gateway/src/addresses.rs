//! Who is connecting: the client's address (behind trusted proxies, from
//! the PROXY protocol or `X-Forwarded-For`), and the limits per address
//! (connections at once, new connections per second), by prefix so that
//! one IPv6 host's /64 counts as one address.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use ipnet::IpNet;
use metrics::Counter;
use ppp::HeaderResult;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::clock::Clock;
use crate::limits::{Rate, RateLimit};

/// The longest PROXY v1 line (the protocol's own bound).
const MOST_V1_HEADER: usize = 107;
/// The most addresses and TLVs accepted after a v2 header's fixed part.
const MOST_PROXY_HEADER: usize = 1024;
/// A v2 header's fixed part: signature, version and command, family,
/// length.
const V2_FIXED: usize = 16;
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// Why a connection was refused before it was served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `limits.max_connections` reached.
    MaxConnections,
    /// `limits.connections_per_address` reached for its address.
    AddressConnections,
    /// `limits.connections_per_address_per_sec` exceeded by its address.
    AddressRate,
}

impl Refusal {
    /// What the client is told.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Refusal::MaxConnections => "too many connections",
            Refusal::AddressConnections => "too many connections from your address",
            Refusal::AddressRate => "connecting too often from your address",
        }
    }
}

/// The limits per address, and the proxies whose word on the client's
/// address is taken.
pub(crate) struct Addresses {
    trusted: Vec<IpNet>,
    per_address: usize,
    per_sec: u32,
    /// What the rates per address are kept on.
    clock: Clock,
    prefix_v4: u8,
    prefix_v6: u8,
    table: DashMap<IpAddr, AddressState>,
    refused: [Counter; 3],
}

struct AddressState {
    open: usize,
    rate: Option<RateLimit>,
}

/// A connection's place under its address's limit; given back on drop.
/// (Boxed: it sits in every connection's task, where it is one pointer.)
pub(crate) struct AddressSlot(Box<Place>);

struct Place {
    addresses: Arc<Addresses>,
    key: IpAddr,
}

impl std::fmt::Debug for AddressSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddressSlot").field("key", &self.0.key).finish()
    }
}

impl Addresses {
    /// From the configuration; `refused` counts refusals by [`Refusal`]
    /// (in its order); rates are kept on the gateway's `clock`.
    pub(crate) fn new(config: &crate::Config, refused: [Counter; 3], clock: Clock) -> Addresses {
        let limits = &config.limits;
        Addresses {
            trusted: config.listen.trusted_proxies.clone(),
            per_address: limits.connections_per_address,
            per_sec: limits.connections_per_address_per_sec,
            clock,
            prefix_v4: limits.address_prefix_v4,
            prefix_v6: limits.address_prefix_v6,
            table: DashMap::new(),
            refused,
        }
    }

    /// Counts a refusal.
    pub(crate) fn refused(&self, refusal: Refusal) {
        self.refused[refusal as usize].increment(1);
    }

    /// Whether `peer` is a proxy whose word on the client's address is taken.
    pub(crate) fn is_trusted(&self, peer: IpAddr) -> bool {
        let peer = canonical(peer);
        self.trusted.iter().any(|net| net.contains(&peer))
    }

    /// The client behind `peer` per `X-Forwarded-For`: the last address in
    /// it that is not a trusted proxy (the ones before it could be made up
    /// by the client). From an untrusted peer, the header means nothing.
    pub(crate) fn forwarded_for(&self, peer: SocketAddr, header: Option<&str>) -> SocketAddr {
        if !self.is_trusted(peer.ip()) {
            return peer;
        }
        let Some(header) = header else { return peer };
        let mut client = peer;
        for hop in header.rsplit(',').map(str::trim) {
            let Ok(ip) = hop.parse::<IpAddr>() else { break };
            client = SocketAddr::new(ip, 0);
            if !self.is_trusted(ip) {
                break;
            }
        }
        client
    }

    /// A place for one more connection from `client`, or why not (the
    /// refusal counted).
    pub(crate) fn admit(self: &Arc<Self>, client: IpAddr) -> Result<Option<AddressSlot>, Refusal> {
        self.place(client).inspect_err(|refusal| self.refused(*refusal))
    }

    fn place(self: &Arc<Self>, client: IpAddr) -> Result<Option<AddressSlot>, Refusal> {
        if self.per_address == 0 && self.per_sec == 0 {
            return Ok(None);
        }
        let key = self.key(client);
        let mut state = self.table.entry(key).or_insert_with(|| AddressState {
            open: 0,
            rate: (self.per_sec > 0).then(|| RateLimit::new(self.rate(), self.clock.now())),
        });
        if self.per_address > 0 && state.open >= self.per_address {
            return Err(Refusal::AddressConnections);
        }
        if let Some(rate) = &mut state.rate
            && !rate.try_take(self.rate(), self.clock.now())
        {
            return Err(Refusal::AddressRate);
        }
        state.open += 1;
        Ok(Some(AddressSlot(Box::new(Place {
            addresses: Arc::clone(self),
            key,
        }))))
    }

    /// Connections per second from one address, as many at once.
    fn rate(&self) -> Rate {
        Rate {
            per_sec: self.per_sec,
            burst: self.per_sec,
        }
    }

    /// The address with the bits past its prefix cleared.
    fn key(&self, ip: IpAddr) -> IpAddr {
        let ip = canonical(ip);
        let prefix = if ip.is_ipv4() {
            self.prefix_v4
        } else {
            self.prefix_v6
        };
        IpNet::new(ip, prefix).map_or(ip, |net| net.network())
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let Place { addresses, key } = &*self.0;
        let forget = match addresses.table.get_mut(key) {
            Some(mut state) => {
                state.open = state.open.saturating_sub(1);
                // Kept while it is still rate-limited; forgotten after.
                state.open == 0
                    && state
                        .rate
                        .as_ref()
                        .is_none_or(|rate| rate.is_full(addresses.rate(), addresses.clock.now()))
            }
            None => false,
        };
        if forget {
            addresses.table.remove_if(key, |_, state| state.open == 0);
        }
    }
}

/// An IPv4 address mapped into IPv6 (`::ffff:a.b.c.d`) as the IPv4 one.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Reads the PROXY protocol header (v1 or v2) a trusted proxy sends first,
/// within `timeout`; the client's address, or the peer's for a `LOCAL` or
/// `UNKNOWN` one (the proxy's own health check). Exactly the header is
/// consumed (a v1 line byte by byte: it is short, and what follows it stays
/// for the session, or for TLS).
///
/// # Errors
/// No complete header in time, or not a PROXY header.
pub(crate) async fn read_proxy_header(
    stream: &mut TcpStream,
    peer: SocketAddr,
    timeout: Duration,
) -> std::io::Result<SocketAddr> {
    let header = tokio::time::timeout(timeout, read_header_bytes(stream))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no PROXY header in time"))??;
    let invalid = |e: &dyn std::fmt::Display| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not a PROXY header: {e}"),
        )
    };
    let client = match HeaderResult::parse(&header) {
        HeaderResult::V1(Ok(header)) => v1_client(&header.addresses),
        HeaderResult::V2(Ok(header)) => v2_client(&header.addresses),
        HeaderResult::V1(Err(e)) => return Err(invalid(&e)),
        HeaderResult::V2(Err(e)) => return Err(invalid(&e)),
    };
    Ok(client.unwrap_or(peer))
}

/// The bytes of one PROXY header, v1 (a `PROXY ...\r\n` line) or v2 (a
/// signature, then a length).
async fn read_header_bytes(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let invalid = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let mut header = vec![0u8; 5];
    stream.read_exact(&mut header).await?;
    if header == b"PROXY" {
        while !header.ends_with(b"\r\n") {
            if header.len() >= MOST_V1_HEADER {
                return Err(invalid("a PROXY v1 line longer than 107 bytes"));
            }
            header.push(stream.read_u8().await?);
        }
        return Ok(header);
    }
    header.resize(V2_FIXED, 0);
    stream.read_exact(&mut header[5..]).await?;
    if header[..12] != V2_SIGNATURE {
        return Err(invalid("neither PROXY v1 nor v2"));
    }
    let len = usize::from(u16::from_be_bytes([header[14], header[15]]));
    if len > MOST_PROXY_HEADER {
        return Err(invalid("a PROXY v2 header too long"));
    }
    header.resize(V2_FIXED + len, 0);
    stream.read_exact(&mut header[V2_FIXED..]).await?;
    Ok(header)
}

fn v1_client(addresses: &ppp::v1::Addresses) -> Option<SocketAddr> {
    match addresses {
        ppp::v1::Addresses::Tcp4(ip) => Some(SocketAddr::new(ip.source_address.into(), ip.source_port)),
        ppp::v1::Addresses::Tcp6(ip) => Some(SocketAddr::new(ip.source_address.into(), ip.source_port)),
        ppp::v1::Addresses::Unknown => None,
    }
}

fn v2_client(addresses: &ppp::v2::Addresses) -> Option<SocketAddr> {
    match addresses {
        ppp::v2::Addresses::IPv4(ip) => Some(SocketAddr::new(ip.source_address.into(), ip.source_port)),
        ppp::v2::Addresses::IPv6(ip) => Some(SocketAddr::new(ip.source_address.into(), ip.source_port)),
        ppp::v2::Addresses::Unspecified | ppp::v2::Addresses::Unix(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addresses(adjust: impl FnOnce(&mut crate::Config)) -> Arc<Addresses> {
        let mut config = crate::Config::default();
        adjust(&mut config);
        Arc::new(Addresses::new(
            &config,
            [Counter::noop(), Counter::noop(), Counter::noop()],
            Clock::new(),
        ))
    }

    #[test]
    fn connections_count_per_prefix_and_are_given_back() {
        let limits = addresses(|c| c.limits.connections_per_address = 2);
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8::ffff".parse().unwrap();
        let first = limits.admit(a).unwrap();
        let _second = limits.admit(same_64).unwrap();
        assert_eq!(limits.admit(a).unwrap_err(), Refusal::AddressConnections);
        assert!(
            limits.admit("2001:db9::1".parse().unwrap()).is_ok(),
            "another /64"
        );
        drop(first);
        assert!(limits.admit(a).is_ok(), "a place given back");
    }

    #[test]
    fn forwarded_for_is_taken_from_trusted_proxies_only() {
        let limits = addresses(|c| c.listen.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap()]);
        let proxy: SocketAddr = "10.1.2.3:5555".parse().unwrap();
        let stranger: SocketAddr = "203.0.113.9:5555".parse().unwrap();
        let header = Some("198.51.100.1, 192.0.2.7, 10.9.9.9");
        // The last hop not a trusted proxy; what the client wrote before it is not believed.
        assert_eq!(
            limits.forwarded_for(proxy, header).ip(),
            "192.0.2.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(limits.forwarded_for(stranger, header), stranger);
        assert_eq!(limits.forwarded_for(proxy, Some("garbage")), proxy);
        assert!(
            limits.is_trusted("::ffff:10.0.0.1".parse().unwrap()),
            "IPv4-mapped"
        );
    }
}
