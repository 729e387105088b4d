//! LAN parties: the addresses other devices reach this server at, QR codes of them (for the
//! terminal and, as SVG, for the lobby), and mDNS / DNS-SD: the server announces itself as
//! `_arena._tcp.local.` with a host name (`arena.local` by default, so `http://arena.local:PORT/`
//! works on devices that resolve `.local`) and lists the other Arena servers it hears.
//!
//! Everything a peer announces is untrusted: at most [`MAX_PEERS`] are kept, names are cleaned of
//! control characters and cut short, counts are bounded, only private or link-local addresses
//! are accepted (never loopback or public ones), and a peer not heard from for [`PEER_TTL`] is
//! dropped. The lobby renders all of it as text.
//!
//! Off with `--no-lan`, and whenever the server listens on loopback only.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mdns_sd::{DaemonEvent, IfKind, ServiceDaemon, ServiceEvent, ServiceInfo};
use serde::Serialize;
use tracing::{info, warn};

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

pub use crate::config::DEFAULT_MDNS_NAME;
use crate::net::http::json;
use crate::room::registry::Registry;

/// The DNS-SD service type Arena servers announce and browse.
pub const SERVICE_TYPE: &str = "_arena._tcp.local.";
/// Most other servers listed, however many answer (a hostile announcer cannot grow memory).
pub const MAX_PEERS: usize = 32;
/// Longest server name kept from an announcement, characters.
pub const MAX_PEER_NAME: usize = 40;
/// A peer not heard from for this long is dropped (live servers re-announce every
/// [`ANNOUNCE_EVERY`]; a crashed one says no goodbye).
pub const PEER_TTL: Duration = Duration::from_secs(16);
/// How often this server refreshes its announcement (its TXT carries live counts).
pub const ANNOUNCE_EVERY: Duration = Duration::from_secs(5);
/// Where other devices can reach a server listening on `bind`: private IPv4 first, then other
/// IPv4, then IPv6 (global or unique-local; link-local IPv6 needs a zone no browser takes).
/// Loopback never: from another device it is that device itself.
pub fn lan_addresses(bind: IpAddr) -> Vec<IpAddr> {
    if bind.is_loopback() {
        return Vec::new();
    }
    if !bind.is_unspecified() {
        return vec![bind];
    }
    let mut found: Vec<IpAddr> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        // Container and VM bridges are not where other devices are.
        .filter(|interface| !VIRTUAL_PREFIXES.iter().any(|prefix| interface.name.starts_with(prefix)))
        .map(|interface| interface.ip())
        // 0.0.0.0 listens on IPv4 only; [::] on both (dual stack).
        .filter(|ip| bind.is_ipv6() || ip.is_ipv4())
        .filter(|ip| rank(*ip).is_some())
        .collect();
    found.sort_by_key(|ip| (rank(*ip), *ip));
    found.dedup();
    // The address of the default route first: that is the network the other devices are on (a
    // VPN's 10.x would otherwise sort before the Wi-Fi's 192.168.x).
    if let Some(primary) = default_route_address()
        && let Some(at) = found.iter().position(|ip| *ip == primary)
    {
        let ip = found.remove(at);
        found.insert(0, ip);
    }
    found
}

/// Interface names of container and virtual-machine bridges.
const VIRTUAL_PREFIXES: [&str; 7] = ["docker", "veth", "virbr", "br-", "cni", "flannel", "vboxnet"];

/// The local address the system would use to reach the internet: a UDP socket "connected" to a
/// documentation address (nothing is sent) reports it.
fn default_route_address() -> Option<IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?;
    socket.local_addr().ok().map(|a| a.ip()).filter(|ip| !ip.is_unspecified() && !ip.is_loopback())
}

/// Preference of an address for the LAN URL (lower first); `None`: not offered.
fn rank(ip: IpAddr) -> Option<u8> {
    match ip {
        IpAddr::V4(v4) if v4.is_loopback() || v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast() => None,
        IpAddr::V4(v4) if v4.is_private() => Some(0),
        IpAddr::V4(v4) if v4.is_link_local() => Some(2),
        IpAddr::V4(_) => Some(1),
        IpAddr::V6(v6) if v6.is_loopback() || v6.is_unspecified() || v6.is_multicast() => None,
        IpAddr::V6(v6) if is_v6_link_local(v6) => None,
        IpAddr::V6(_) => Some(3),
    }
}

fn is_v6_link_local(v6: Ipv6Addr) -> bool {
    (v6.segments()[0] & 0xffc0) == 0xfe80
}

fn is_v6_unique_local(v6: Ipv6Addr) -> bool {
    (v6.segments()[0] & 0xfe00) == 0xfc00
}

/// An address a LAN peer may announce: private or link-local, never loopback or public.
pub fn is_lan_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_private() || v4.is_link_local(),
        IpAddr::V6(v6) => is_v6_unique_local(v6),
    }
}

/// `http://IP:PORT/` (IPv6 in brackets).
pub fn url_for(ip: IpAddr, port: u16) -> String {
    url_with("http", ip, port)
}

/// `SCHEME://IP:PORT/` (IPv6 in brackets); `https` when the server has TLS.
pub fn url_with(scheme: &str, ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{scheme}://{v4}:{port}/"),
        IpAddr::V6(v6) => format!("{scheme}://[{v6}]:{port}/"),
    }
}

/// A QR code of `text` as an SVG document (dark on white, with the quiet zone).
pub fn qr_svg(text: &str) -> Option<String> {
    let code = qrcode::QrCode::new(text.as_bytes()).ok()?;
    Some(
        code.render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(240, 240)
            .dark_color(qrcode::render::svg::Color("#000000"))
            .light_color(qrcode::render::svg::Color("#ffffff"))
            .build(),
    )
}

/// A QR code of `text` drawn with half-block characters for a terminal (two rows of modules per
/// line), light on dark as terminals usually are; scanners read the inverted code as well.
pub fn qr_terminal(text: &str) -> Option<String> {
    let code = qrcode::QrCode::new(text.as_bytes()).ok()?;
    Some(
        code.render::<qrcode::render::unicode::Dense1x2>()
            .dark_color(qrcode::render::unicode::Dense1x2::Light)
            .light_color(qrcode::render::unicode::Dense1x2::Dark)
            .build(),
    )
}

/// The modules of a QR code of `text` (true = dark), row by row, and its width: for tests that
/// decode what the server draws.
pub fn qr_matrix(text: &str) -> Option<(usize, Vec<bool>)> {
    let code = qrcode::QrCode::new(text.as_bytes()).ok()?;
    let width = code.width();
    let modules = code.to_colors().into_iter().map(|c| c == qrcode::Color::Dark).collect();
    Some((width, modules))
}

/// Another Arena server heard on the network, as the lobby lists it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Peer {
    pub name: String,
    pub url: String,
    pub rooms: u32,
    pub players: u32,
    /// Its protocol version: a different one cannot be joined with this page.
    pub protocol: u16,
    #[serde(skip)]
    seen: Instant,
}

/// What `GET /api/lan` answers.
#[derive(Clone, Debug, Serialize)]
pub struct LanInfo {
    /// Whether this server announces and browses (off on loopback and with `--no-lan`).
    pub enabled: bool,
    /// This server's URLs for other devices, best first (empty on loopback).
    pub urls: Vec<String>,
    /// The URL by its mDNS name, when announcing (`http://arena.local:8080/`).
    pub mdns_url: Option<String>,
    /// The URL to show as the invite: the first LAN address.
    pub best_url: Option<String>,
    /// Other Arena servers on the network.
    pub others: Vec<Peer>,
}

/// Cleans a peer-provided name: no control or format characters, whitespace collapsed, at most
/// [`MAX_PEER_NAME`] characters.
pub fn clean_name(raw: &str) -> String {
    let cleaned: String = raw
        .chars()
        .map(|c| if c.is_control() || is_format_char(c) { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    cleaned.chars().take(MAX_PEER_NAME).collect()
}

/// Bidirectional overrides and zero-width characters: they can make a name read as another.
fn is_format_char(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// Checks one resolved announcement; `None` when it is not a usable peer.
fn peer_from(service: &mdns_sd::ResolvedService, own: &str, now: Instant) -> Option<Peer> {
    let addresses: Vec<IpAddr> = service.get_addresses().iter().map(|a| a.to_ip_addr()).collect();
    let announced = Announcement {
        fullname: service.get_fullname(),
        port: service.get_port(),
        addresses: &addresses,
        text: &|key| service.get_property_val_str(key).map(str::to_string),
    };
    peer_from_announcement(&announced, own, now)
}

/// What a peer announced over mDNS, every part of it written by the peer (`fuzz` reaches it).
pub struct Announcement<'a> {
    pub fullname: &'a str,
    pub port: u16,
    pub addresses: &'a [IpAddr],
    /// A TXT property's value.
    pub text: &'a dyn Fn(&str) -> Option<String>,
}

/// The peer an announcement describes, names cleaned and numbers bounded; `None` when it is
/// ours, has no port or no LAN address.
pub fn peer_from_announcement(service: &Announcement<'_>, own: &str, now: Instant) -> Option<Peer> {
    if service.fullname == own || service.port == 0 {
        return None;
    }
    let mut addresses: Vec<IpAddr> = service.addresses.iter().copied().filter(|ip| is_lan_address(*ip)).collect();
    addresses.sort_by_key(|ip| (rank(*ip), *ip));
    let address = *addresses.first()?;
    let text = |key: &str| (service.text)(key);
    let number = |key: &str| text(key).and_then(|v| v.trim().parse::<u32>().ok()).unwrap_or(0).min(1_000_000);
    let instance = service.fullname.strip_suffix(SERVICE_TYPE).unwrap_or("").trim_end_matches('.');
    let mut name = clean_name(&text("name").unwrap_or_default());
    if name.is_empty() {
        name = clean_name(instance);
    }
    if name.is_empty() {
        name = "Arena".to_string();
    }
    Some(Peer {
        name,
        url: url_with(if text("tls").as_deref() == Some("1") { "https" } else { "http" }, address, service.port),
        rooms: number("rooms"),
        players: number("players"),
        protocol: text("proto").and_then(|v| v.trim().parse().ok()).unwrap_or(0),
        seen: now,
    })
}

/// The LAN side of one server: its URLs and, when on, the mDNS daemon and the peers it heard.
pub struct Lan {
    port: u16,
    /// `https` when the server has TLS (`--tls-cert`), else `http`.
    scheme: &'static str,
    urls: Vec<String>,
    mdns: Option<Mdns>,
    peers: Mutex<HashMap<String, Peer>>,
}

struct Mdns {
    daemon: ServiceDaemon,
    /// Our service's full name (never listed as a peer).
    fullname: String,
    instance: String,
    server_name: String,
    addresses: Vec<IpAddr>,
    /// The host name in use (`arena.local.`, or `arena-2.local.` after a clash).
    host: Mutex<String>,
    /// Announced as `tls=1`: other servers list this one with `https://`.
    tls: bool,
}

impl Lan {
    /// No LAN: loopback, `--no-lan`, tests.
    pub fn off(port: u16) -> Arc<Lan> {
        Arc::new(Lan { port, scheme: "http", urls: Vec::new(), mdns: None, peers: Mutex::new(HashMap::new()) })
    }

    /// Starts announcing and browsing for a server listening on `addr` (unless it is loopback
    /// or `enabled` is false). `server_name` goes into the TXT record; `mdns_name` is the host
    /// name without `.local`.
    /// `public_url` (`--public-url`) goes first in the URLs when given.
    pub fn start(
        addr: SocketAddr,
        enabled: bool,
        mdns_name: &str,
        server_name: &str,
        public_url: Option<&str>,
        tls: bool,
    ) -> Arc<Lan> {
        let port = addr.port();
        let scheme = if tls { "https" } else { "http" };
        let addresses = lan_addresses(addr.ip());
        let mut urls: Vec<String> = addresses.iter().map(|ip| url_with(scheme, *ip, port)).collect();
        if let Some(public) = public_url {
            let public = if public.ends_with('/') { public.to_string() } else { format!("{public}/") };
            urls.retain(|url| *url != public);
            urls.insert(0, public);
        }
        if !enabled || addresses.is_empty() {
            return Arc::new(Lan { port, scheme, urls, mdns: None, peers: Mutex::new(HashMap::new()) });
        }
        let mdns = match Mdns::start(addr.ip(), &addresses, port, mdns_name, server_name, tls) {
            Ok(mdns) => Some(mdns),
            Err(error) => {
                warn!(%error, "mDNS is unavailable: other devices need the address (LAN discovery off)");
                None
            }
        };
        Arc::new(Lan { port, scheme, urls, mdns, peers: Mutex::new(HashMap::new()) })
    }

    /// Runs discovery until `stop`: keeps the peer list, refreshes this server's announcement
    /// with the live room and player counts, logs a host-name change after a clash.
    pub async fn run(self: Arc<Self>, rooms: Arc<Registry>, stop: tokio_util::sync::CancellationToken) {
        let Some(mdns) = &self.mdns else { return };
        let browse = match mdns.daemon.browse(SERVICE_TYPE) {
            Ok(receiver) => receiver,
            Err(error) => {
                warn!(%error, "mDNS browsing failed: other servers will not be listed");
                return;
            }
        };
        let monitor = mdns.daemon.monitor().ok();
        let mut refresh = tokio::time::interval(ANNOUNCE_EVERY);
        let mut seq: u32 = 0;
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = refresh.tick() => {
                    seq = seq.wrapping_add(1);
                    let (count, players) = rooms.totals();
                    mdns.announce(self.port, count, players, seq);
                    let now = Instant::now();
                    self.peers.lock().expect("peers lock").retain(|_, peer| now.duration_since(peer.seen) < PEER_TTL);
                }
                event = browse.recv_async() => {
                    let Ok(event) = event else { break };
                    self.on_event(event, &mdns.fullname);
                }
                event = async { monitor.as_ref().expect("guarded").recv_async().await }, if monitor.is_some() => {
                    if let Ok(DaemonEvent::NameChange(change)) = event {
                        warn!(from = %change.original, to = %change.new_name, "mDNS name is taken on this network; using the new one");
                        // A host-name (A/AAAA) change, not a service instance one (which also
                        // ends in .local.).
                        if matches!(change.rr_type, mdns_sd::RRType::A | mdns_sd::RRType::AAAA) {
                            *mdns.host.lock().expect("host lock") = change.new_name.clone();
                        }
                    }
                }
            }
        }
    }

    fn on_event(&self, event: ServiceEvent, own: &str) {
        match event {
            ServiceEvent::ServiceResolved(service) => {
                let Some(peer) = peer_from(&service, own, Instant::now()) else { return };
                let key: String = service.get_fullname().chars().take(256).collect();
                let mut peers = self.peers.lock().expect("peers lock");
                if peers.len() < MAX_PEERS || peers.contains_key(&key) {
                    peers.insert(key, peer);
                }
            }
            ServiceEvent::ServiceRemoved(_, fullname) => {
                let key: String = fullname.chars().take(256).collect();
                self.peers.lock().expect("peers lock").remove(&key);
            }
            _ => {}
        }
    }

    /// This server's URLs for other devices, best first.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// `http://NAME.local:PORT/` while announcing.
    pub fn mdns_url(&self) -> Option<String> {
        let mdns = self.mdns.as_ref()?;
        let host = mdns.host.lock().expect("host lock").trim_end_matches('.').to_string();
        Some(format!("{}://{host}:{}/", self.scheme, self.port))
    }

    pub fn info(&self) -> LanInfo {
        let mut others: Vec<Peer> = self.peers.lock().expect("peers lock").values().cloned().collect();
        others.sort_by(|a, b| a.name.cmp(&b.name).then(a.url.cmp(&b.url)));
        LanInfo {
            enabled: self.mdns.is_some(),
            urls: self.urls.clone(),
            mdns_url: self.mdns_url(),
            best_url: self.urls.first().cloned(),
            others,
        }
    }

    /// Says goodbye on the network (peers drop this server at once) and stops the daemon.
    pub fn shutdown(&self) {
        if let Some(mdns) = &self.mdns {
            if let Ok(done) = mdns.daemon.unregister(&mdns.fullname) {
                let _ = done.recv_timeout(Duration::from_millis(500));
            }
            let _ = mdns.daemon.shutdown();
        }
    }
}

impl Mdns {
    fn start(
        bind: IpAddr,
        addresses: &[IpAddr],
        port: u16,
        name: &str,
        server_name: &str,
        tls: bool,
    ) -> Result<Mdns, String> {
        let daemon = ServiceDaemon::new().map_err(|e| e.to_string())?;
        // Only where the server listens: a server bound to one address announces on that
        // interface alone; loopback is never used.
        if !bind.is_unspecified() {
            let _ = daemon.disable_interface(IfKind::All);
            let _ = daemon.enable_interface(IfKind::Addr(bind));
        }
        let _ = daemon.disable_interface(IfKind::LoopbackV4);
        let _ = daemon.disable_interface(IfKind::LoopbackV6);
        let host = format!("{}.local.", host_label(name));
        let server_name = clean_name(server_name);
        let instance = format!("{server_name} {port}");
        let mut mdns = Mdns {
            daemon,
            fullname: String::new(),
            instance,
            server_name,
            addresses: addresses.to_vec(),
            host: Mutex::new(host.clone()),
            tls,
        };
        mdns.fullname = mdns.register(port, 0, 0, 0)?;
        info!(host = %host.trim_end_matches('.'), service = SERVICE_TYPE, "announcing on the LAN (mDNS)");
        Ok(mdns)
    }

    /// Registers (or refreshes) the service with the current counts; returns its full name.
    fn register(&self, port: u16, rooms: u32, players: u32, seq: u32) -> Result<String, String> {
        let host = self.host.lock().expect("host lock").clone();
        let properties: HashMap<String, String> = [
            ("proto", shared::PROTOCOL_VERSION.to_string()),
            ("name", self.server_name.clone()),
            ("rooms", rooms.to_string()),
            ("players", players.to_string()),
            ("seq", seq.to_string()),
            ("tls", if self.tls { "1" } else { "0" }.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let info = ServiceInfo::new(SERVICE_TYPE, &self.instance, &host, self.addresses.as_slice(), port, properties)
            .map_err(|e| e.to_string())?;
        let fullname = info.get_fullname().to_string();
        self.daemon.register(info).map_err(|e| e.to_string())?;
        Ok(fullname)
    }

    /// Refreshes the announcement: live counts, and a sequence number so peers see it is alive.
    fn announce(&self, port: u16, rooms: u32, players: u32, seq: u32) {
        if let Err(error) = self.register(port, rooms, players, seq) {
            warn!(%error, "mDNS announcement failed");
        }
    }
}

/// A DNS label from `--mdns-name`: lower-case letters, digits and hyphens, 1–63 of them.
pub fn host_label(name: &str) -> String {
    let label: String = name
        .trim()
        .trim_end_matches(".local")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
        .collect::<String>()
        .trim_matches('-')
        .chars()
        .take(63)
        .collect();
    if label.is_empty() { DEFAULT_MDNS_NAME.to_string() } else { label }
}

/// `/api/lan` and `/api/lan/qr.svg`, for the game port's router (merged by the server's wiring).
pub fn routes<S: Clone + Send + Sync + 'static>(lan: Arc<Lan>) -> axum::Router<S> {
    axum::Router::new()
        .route("/api/lan", axum::routing::get(lan_info))
        .route("/api/lan/qr.svg", axum::routing::get(lan_qr))
        .with_state(lan)
}

/// `GET /api/lan`: this server's URLs for other devices, its mDNS URL, and the other Arena
/// servers heard on the network.
async fn lan_info(State(lan): State<Arc<Lan>>) -> Response {
    json(StatusCode::OK, &lan.info())
}

/// `GET /api/lan/qr.svg?path=/r/CODE`: a QR code (SVG) of this server's best LAN URL followed by
/// `path` (`/`, the default, or an invite path `/r/CODE`): what a phone scans from the host's
/// screen. 404 when the server has no LAN address (it listens on loopback only).
async fn lan_qr(State(lan): State<Arc<Lan>>, request: Request) -> Response {
    let path = request
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|pair| pair.strip_prefix("path="))
        .map(|p| p.replace("%2F", "/").replace("%2f", "/"))
        .unwrap_or_else(|| "/".to_string());
    let path = match path.strip_prefix("/r/") {
        None if path == "/" => String::new(),
        Some(code) => match shared::room::RoomCode::parse(code) {
            Some(code) => format!("r/{code}"),
            None => return (StatusCode::BAD_REQUEST, "path must be / or /r/CODE\n").into_response(),
        },
        None => return (StatusCode::BAD_REQUEST, "path must be / or /r/CODE\n").into_response(),
    };
    let Some(base) = lan.info().best_url else {
        return (StatusCode::NOT_FOUND, "this server listens on loopback only: other devices cannot join\n")
            .into_response();
    };
    match qr_svg(&format!("{base}{path}")) {
        Some(svg) => {
            (StatusCode::OK, [(header::CONTENT_TYPE, "image/svg+xml"), (header::CACHE_CONTROL, "no-cache")], svg)
                .into_response()
        }
        None => (StatusCode::INTERNAL_SERVER_ERROR, "could not draw the code\n").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[test]
    fn lan_urls_never_offer_loopback_and_put_private_ipv4_first() {
        assert!(lan_addresses(IpAddr::V4(Ipv4Addr::LOCALHOST)).is_empty());
        let one = IpAddr::V4(Ipv4Addr::new(192, 168, 1, 20));
        assert_eq!(lan_addresses(one), vec![one]);
        let all = lan_addresses(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert!(all.iter().all(|ip| !ip.is_loopback() && ip.is_ipv4()), "{all:?}");
        let ranks: Vec<_> = all.iter().map(|ip| rank(*ip)).collect();
        assert!(ranks.windows(2).all(|w| w[0] <= w[1]), "{all:?}");
        assert_eq!(url_for("fd00::5".parse().unwrap(), 8080), "http://[fd00::5]:8080/");
        assert_eq!(rank("fe80::1".parse().unwrap()), None, "link-local IPv6 needs a zone");
    }

    #[test]
    fn only_lan_addresses_are_accepted_from_peers() {
        for ok in ["10.0.0.2", "172.20.1.1", "192.168.0.9", "169.254.3.4", "fd12::1"] {
            assert!(is_lan_address(ok.parse().unwrap()), "{ok}");
        }
        for bad in ["127.0.0.1", "8.8.8.8", "0.0.0.0", "::1", "2001:db8::1", "224.0.0.251", "fe80::1"] {
            assert!(!is_lan_address(bad.parse().unwrap()), "{bad}");
        }
    }

    #[test]
    fn peer_names_lose_control_and_direction_characters_and_are_cut_short() {
        assert_eq!(clean_name("  Bob's\n\tserver\u{7}  "), "Bob's server");
        assert_eq!(clean_name("a\u{202e}evil\u{200b}"), "a evil");
        assert_eq!(clean_name(&"x".repeat(500)).chars().count(), MAX_PEER_NAME);
        assert_eq!(clean_name("<b>html</b>"), "<b>html</b>", "kept as text; the page renders text");
        assert_eq!(host_label(" My Party!.local"), "my-party");
        assert_eq!(host_label("!!!"), DEFAULT_MDNS_NAME);
    }

    #[test]
    fn qr_codes_decode_back_to_the_url() {
        let url = "http://192.168.1.20:8080/r/ABCD";
        let (width, modules) = qr_matrix(url).expect("encodes");
        // Draw it with a quiet zone, 4 pixels per module, and decode it like a phone would.
        let scale = 4;
        let side = (width + 8) * scale;
        let mut image = rqrr::PreparedImage::prepare_from_greyscale(side, side, |x, y| {
            let (mx, my) = ((x / scale) as isize - 4, (y / scale) as isize - 4);
            let inside = (0..width as isize).contains(&mx) && (0..width as isize).contains(&my);
            if inside && modules[my as usize * width + mx as usize] { 0 } else { 255 }
        });
        let grids = image.detect_grids();
        assert_eq!(grids.len(), 1);
        let (_, text) = grids[0].decode().expect("decodes");
        assert_eq!(text, url);
        let svg = qr_svg(url).unwrap();
        assert!(svg.starts_with("<?xml") && svg.contains("<svg"), "{}", &svg[..80]);
        assert!(qr_terminal(url).unwrap().lines().count() > 10);
    }
}
