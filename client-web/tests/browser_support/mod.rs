//! Helpers for the browser tests and the frame-time benchmark: an in-process server and a
//! headless Chromium player. Included with `mod browser_support;`.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chromiumoxide::cdp::browser_protocol::emulation::{SetDeviceMetricsOverrideParams, SetTouchEmulationEnabledParams};
use chromiumoxide::cdp::browser_protocol::input::{
    DispatchKeyEventParams, DispatchKeyEventType, DispatchTouchEventParams, DispatchTouchEventType, InsertTextParams,
    TouchPoint,
};
use chromiumoxide::cdp::browser_protocol::page::CaptureScreenshotFormat;
use chromiumoxide::cdp::js_protocol::runtime::{ConsoleApiCalledType, EventConsoleApiCalled, EventExceptionThrown};
use chromiumoxide::page::ScreenshotParams;
use chromiumoxide::{Browser, BrowserConfig, Page};
use futures_util::StreamExt;
use server::ServerConfig;
use shared::map::MapDef;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long any wait in the browser tests may take before it fails.
pub const WAIT_LIMIT: Duration = Duration::from_secs(15);

pub struct TestServer {
    pub addr: SocketAddr,
    pub url: String,
    /// The code of "Main" (empty for a replay server).
    pub main_code: String,
    stop: oneshot::Sender<()>,
    handle: JoinHandle<std::io::Result<()>>,
}

/// Starts the real server with the embedded client on 127.0.0.1 (port 0 unless given).
pub async fn start_server(map: Arc<MapDef>, port: Option<u16>) -> TestServer {
    start_server_with(ServerConfig { map, ..ServerConfig::default() }, port).await
}

pub async fn start_server_with(config: ServerConfig, port: Option<u16>) -> TestServer {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port.unwrap_or(0))).await.expect("bind loopback");
    start_server_on(config, listener).await
}

/// Starts the real server on a listener made elsewhere (in a network namespace of its own).
pub async fn start_server_on(config: ServerConfig, listener: tokio::net::TcpListener) -> TestServer {
    assert!(
        server::net::assets::has_client(),
        "the server was built without the browser client: run `cargo xtask build-web` first (cargo xtask test does)"
    );
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let rooms = server::room::registry::Registry::new(Arc::new(config), Default::default());
    let handle = tokio::spawn(server::run_with_registry(listener, rooms.clone(), async move {
        let _ = stopped.await;
    }));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let main_code = loop {
        if let Some(code) = rooms.main_code() {
            break code.to_string();
        }
        assert!(tokio::time::Instant::now() < deadline, "Main did not open");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    TestServer { addr, url: format!("http://{addr}/"), main_code, stop, handle }
}

/// Starts a replay server for the sample replay (spectator mode) on 127.0.0.1:0.
pub async fn start_replay_server() -> TestServer {
    assert!(server::net::assets::has_client(), "run `cargo xtask build-web` first (cargo xtask test does)");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/replays/sample.arenareplay");
    let replay = server::replay::format::read(std::fs::File::open(path).expect("sample replay")).expect("readable");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let handle = tokio::spawn(server::run_replay(listener, ServerConfig::default(), replay, async move {
        let _ = stopped.await;
    }));
    TestServer { addr, url: format!("http://{addr}/"), main_code: String::new(), stop, handle }
}

impl TestServer {
    pub async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(10), self.handle)
            .await
            .expect("server stops")
            .expect("no panic")
            .expect("clean stop");
    }
}

/// A network namespace with nothing but its own loopback, removed on drop (also after a
/// failure). Sockets made by [`Netns::run`] live in it: a server listening there can be reached
/// from the machine's own namespace only through something that opens its connections the same
/// way, such as a [`DelayLine`].
pub struct Netns {
    name: String,
}

impl Netns {
    pub fn create(tag: &str) -> Netns {
        let ns = Netns { name: format!("arena-{tag}-{}-{}", std::process::id() % 100_000, rand_suffix() % 10_000) };
        for args in [vec!["netns", "add", &ns.name], vec!["-n", &ns.name, "link", "set", "lo", "up"]] {
            let status = std::process::Command::new("ip").args(&args).status().expect("run ip (iproute2)");
            assert!(status.success(), "ip {} failed (network namespaces need root): {status}", args.join(" "));
        }
        ns
    }

    /// Runs `f` on a thread of its own that has entered the namespace.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> std::io::Result<T> {
        let path = format!("/var/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&path)?;
            rustix::thread::move_into_link_name_space(
                std::os::fd::AsFd::as_fd(&ns),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )?;
            Ok(f())
        })
        .join()
        .expect("namespace thread")
    }

    /// A listener on the namespace's 127.0.0.1, port 0.
    pub fn listen(&self) -> tokio::net::TcpListener {
        let listener = self
            .run(|| std::net::TcpListener::bind("127.0.0.1:0"))
            .and_then(|bound| bound)
            .expect("listen in the namespace");
        listener.set_nonblocking(true).unwrap();
        tokio::net::TcpListener::from_std(listener).expect("tokio listener")
    }

    /// Connects from inside the namespace (blocking: call it off the runtime's threads).
    pub fn connect(&self, to: SocketAddr) -> std::io::Result<tokio::net::TcpStream> {
        let stream = self.run(move || std::net::TcpStream::connect(to))??;
        stream.set_nonblocking(true)?;
        tokio::net::TcpStream::from_std(stream)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// A userspace delay line between the page and a server in another namespace: it listens on the
/// machine's 127.0.0.1 and opens each connection to `upstream` inside `ns`. Every chunk read in
/// either direction is delivered at the time the `server::net::netsim::Link` model gives it
/// (latency, jitter, in order as TCP is), and a stall holds both directions of every connection
/// through the line at once, as a real outage of the link does. The server runs unconditioned:
/// nothing in it knows of the delay.
pub struct DelayLine {
    pub url: String,
    /// What the line saw pass on every WebSocket through it, in the order it was read.
    pub tap: Arc<Mutex<Vec<TapEvent>>>,
    accept: JoinHandle<()>,
}

/// A game message the delay line saw on its way: when it was read from its sender (all of it)
/// and when the line delivered it (its last byte), on which connection (numbered in accept order).
#[derive(Clone, Debug)]
pub struct TapEvent {
    pub conn: u64,
    pub read_at: tokio::time::Instant,
    pub delivered_at: tokio::time::Instant,
    pub what: Tapped,
}

#[derive(Clone, Debug)]
pub enum Tapped {
    /// An input from the page, with its movement.
    Input { seq: u32, dir: glam::Vec2 },
    /// A snapshot from the server: its tick, the last input applied, the inputs still waiting,
    /// and the own player's velocity.
    Snapshot { tick: u32, input_ack: u32, input_queue: u8, vel: Option<glam::Vec2> },
}

/// Reads WebSocket frames out of one direction of a connection as it passes: nothing on a
/// connection that does not start with a WebSocket handshake (a page load).
#[derive(Default)]
struct WsReader {
    /// `None` until the handshake is seen; `Some(false)` for a connection that is not a WebSocket.
    open: Option<bool>,
    buffer: Vec<u8>,
}

impl WsReader {
    /// Feeds `bytes`; returns the payloads of the binary messages completed by them.
    fn feed(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
        if self.open == Some(false) {
            return Vec::new();
        }
        self.buffer.extend_from_slice(bytes);
        if self.open.is_none() {
            let Some(end) = self.buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
                if self.buffer.len() > 16 * 1024 {
                    self.open = Some(false);
                }
                return Vec::new();
            };
            let head = String::from_utf8_lossy(&self.buffer[..end]).to_ascii_lowercase();
            let websocket = head.starts_with("http/1.1 101") || head.contains("upgrade: websocket");
            self.open = Some(websocket);
            self.buffer.drain(..end + 4);
            if !websocket {
                self.buffer = Vec::new();
                return Vec::new();
            }
        }
        let mut messages = Vec::new();
        loop {
            let b = &self.buffer;
            if b.len() < 2 {
                break;
            }
            let (opcode, masked, len7) = (b[0] & 0x0f, b[1] & 0x80 != 0, u64::from(b[1] & 0x7f));
            let (len, mut at) = match len7 {
                126 if b.len() >= 4 => (u64::from(u16::from_be_bytes([b[2], b[3]])), 4),
                127 if b.len() >= 10 => (u64::from_be_bytes(b[2..10].try_into().unwrap()), 10),
                126 | 127 => break,
                n => (n, 2),
            };
            let mask = if masked {
                if b.len() < at + 4 {
                    break;
                }
                at += 4;
                Some([b[at - 4], b[at - 3], b[at - 2], b[at - 1]])
            } else {
                None
            };
            let end = at + len as usize;
            if b.len() < end {
                break;
            }
            let mut payload = b[at..end].to_vec();
            if let Some(mask) = mask {
                for (i, byte) in payload.iter_mut().enumerate() {
                    *byte ^= mask[i % 4];
                }
            }
            if opcode == 2 {
                messages.push(payload);
            }
            self.buffer.drain(..end);
        }
        messages
    }
}

impl DelayLine {
    pub async fn start(ns: Arc<Netns>, upstream: SocketAddr, sim: server::net::netsim::NetSim) -> DelayLine {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let started = tokio::time::Instant::now();
        let tap: Arc<Mutex<Vec<TapEvent>>> = Arc::default();
        let taps = tap.clone();
        let accept = tokio::spawn(async move {
            let mut seed = 0u64;
            while let Ok((inbound, _)) = listener.accept().await {
                let ns = ns.clone();
                let Ok(Ok(outbound)) = tokio::task::spawn_blocking(move || ns.connect(upstream)).await else {
                    continue;
                };
                for socket in [&inbound, &outbound] {
                    let _ = socket.set_nodelay(true);
                }
                let (in_read, in_write) = inbound.into_split();
                let (out_read, out_write) = outbound.into_split();
                let up = server::net::netsim::Link::new(sim, started, seed);
                let down = server::net::netsim::Link::new(sim, started, seed + 1);
                let conn = seed / 2;
                seed += 2;
                tokio::spawn(delay(in_read, out_write, up, (conn, true, taps.clone())));
                tokio::spawn(delay(out_read, in_write, down, (conn, false, taps.clone())));
            }
        });
        DelayLine { url, tap, accept }
    }
}

impl Drop for DelayLine {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// One direction of a delayed connection: what is read now is written when the link says.
async fn delay(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut link: server::net::netsim::Link,
    (conn, from_page, tap): (u64, bool, Arc<Mutex<Vec<TapEvent>>>),
) {
    let mut frames = WsReader::default();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (chunks, mut due) = tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
    let writer = tokio::spawn(async move {
        while let Some((at, bytes)) = due.recv().await {
            tokio::time::sleep_until(at).await;
            if to.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    });
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let read_at = tokio::time::Instant::now();
                let at = link.deliver_at(read_at, n);
                for payload in frames.feed(&buffer[..n]) {
                    let what = if from_page {
                        let Ok(shared::protocol::ClientMsg::Input(cmd)) = shared::protocol::decode_client(&payload)
                        else {
                            continue;
                        };
                        Tapped::Input { seq: cmd.seq, dir: glam::Vec2::new(cmd.move_x, cmd.move_y) }
                    } else {
                        let Ok(shared::protocol::ServerMsg::Snapshot(snapshot)) =
                            shared::protocol::decode_server(&payload)
                        else {
                            continue;
                        };
                        Tapped::Snapshot {
                            tick: snapshot.tick.0,
                            input_ack: snapshot.input_ack,
                            input_queue: snapshot.input_queue,
                            vel: snapshot.own.map(|own| own.vel),
                        }
                    };
                    tap.lock().unwrap().push(TapEvent { conn, read_at, delivered_at: at, what });
                }
                if chunks.send((at, buffer[..n].to_vec())).is_err() {
                    break;
                }
            }
        }
    }
    drop(chunks);
    let _ = writer.await;
}

/// A TCP proxy in front of a server, on 127.0.0.1:0, that can cut every connection through it
/// with a reset (SO_LINGER 0), as a dropped Wi-Fi link or a NAT timeout does: the browser sees
/// its WebSocket fail (1006), the server sees an abrupt end, neither gets a Close frame.
pub struct CutProxy {
    pub url: String,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl CutProxy {
    pub async fn start(upstream: SocketAddr) -> CutProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let links: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let accepted = links.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await else { continue };
                for socket in [&inbound, &outbound] {
                    let _ = socket2::SockRef::from(socket).set_linger(Some(Duration::ZERO));
                    let _ = socket.set_nodelay(true);
                }
                let link = tokio::spawn(async move {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                });
                let mut links = accepted.lock().unwrap();
                links.retain(|link| !link.is_finished());
                links.push(link);
            }
        });
        CutProxy { url, links, accept }
    }

    /// Resets every connection open through the proxy now; returns how many there were.
    pub fn cut(&self) -> usize {
        let links: Vec<JoinHandle<()>> = std::mem::take(&mut *self.links.lock().unwrap());
        let open = links.iter().filter(|link| !link.is_finished()).count();
        for link in links {
            link.abort();
        }
        open
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

pub fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-screenshots");
    std::fs::create_dir_all(&dir).expect("create screenshot dir");
    dir
}

/// A Chromium profile directory removed when dropped (also on panic).
struct Profile(PathBuf);

impl Drop for Profile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One headless Chromium with one page: a player.
pub struct Player {
    browser: Browser,
    handler: JoinHandle<()>,
    pub page: Page,
    errors: Arc<Mutex<Vec<String>>>,
    label: String,
    _profile: Profile,
}

impl Player {
    pub async fn launch(label: &str) -> Player {
        let profile = Path::new(env!("CARGO_TARGET_TMPDIR")).join("chromium-profiles").join(format!(
            "{label}-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::create_dir_all(&profile).unwrap();
        let config = BrowserConfig::builder()
            .chrome_executable("/usr/bin/chromium")
            .no_sandbox()
            .user_data_dir(&profile)
            .window_size(1280, 800)
            .viewport(None)
            .args(["disable-gpu", "disable-quic", "disable-component-update", "no-first-run", "disable-sync"])
            .build()
            .expect("browser config");
        let (browser, mut handler) = Browser::launch(config).await.expect("launch /usr/bin/chromium");
        let handler = tokio::spawn(async move { while handler.next().await.is_some() {} });
        let page = browser.new_page("about:blank").await.expect("new page");
        let errors = Arc::new(Mutex::new(Vec::new()));
        let mut console = page.event_listener::<EventConsoleApiCalled>().await.expect("console events");
        let console_errors = errors.clone();
        tokio::spawn(async move {
            while let Some(event) = console.next().await {
                if matches!(event.r#type, ConsoleApiCalledType::Error | ConsoleApiCalledType::Assert) {
                    let text: Vec<String> = event
                        .args
                        .iter()
                        .map(|a| a.value.as_ref().map_or_else(|| format!("{:?}", a.description), |v| v.to_string()))
                        .collect();
                    console_errors.lock().unwrap().push(text.join(" "));
                }
            }
        });
        let mut exceptions = page.event_listener::<EventExceptionThrown>().await.expect("exception events");
        let exception_errors = errors.clone();
        tokio::spawn(async move {
            while let Some(event) = exceptions.next().await {
                exception_errors.lock().unwrap().push(format!("uncaught: {:?}", event.exception_details.text));
            }
        });
        Player { browser, handler, page, errors, label: label.to_string(), _profile: Profile(profile) }
    }

    /// Opens the game, types the name into the lobby and clicks `#play` (Quick play, or "Join
    /// CODE" on an invite link), like a person. The page must show the lobby: an invite link
    /// opened by a browser that has played before goes straight into the room instead.
    pub async fn open_and_join(&mut self, url: &str, name: &str) {
        self.goto(url).await;
        self.wait_for("page ready", |d| d["state"] == "name-entry").await;
        let input = self.page.find_element("#name").await.expect("name field");
        input.click().await.unwrap();
        self.eval("document.getElementById('name').value = ''").await;
        input.type_str(name).await.unwrap();
        self.page.find_element("#play").await.expect("play button").click().await.unwrap();
    }

    /// Starts loading `url`. The caller then waits for the page's own state, which is what the
    /// tests assert: chromiumoxide's `goto` also waits for the frame's `load` lifecycle event,
    /// and its tracking of that event is known to miss it now and then (its issues #163, #228;
    /// a run here failed after 30 s with `Timeout` on a page that works). So `goto` gets 5 s;
    /// past that the navigation is already under way, and the state wait (15 s, printing what
    /// it saw) decides.
    async fn goto(&self, url: &str) {
        // Marks the document being left, so a state wait cannot read the old page.
        let _ = self.page.evaluate("window.__arenaLeftPage = true").await;
        match tokio::time::timeout(Duration::from_secs(5), self.page.goto(url)).await {
            Ok(Ok(_)) => return,
            Err(_) | Ok(Err(chromiumoxide::error::CdpError::Timeout)) => {}
            Ok(Err(error)) => panic!("open the game page {url}: {error}"),
        }
        // Until the new document is there (an evaluation can fail while the old one goes).
        let deadline = tokio::time::Instant::now() + WAIT_LIMIT;
        loop {
            let left = self.page.evaluate("window.__arenaLeftPage === undefined").await;
            if left.ok().and_then(|v| v.into_value::<bool>().ok()) == Some(true) {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                let what = format!(
                    "timed out after {WAIT_LIMIT:?} waiting for the browser to leave the previous page for {url}"
                );
                self.fail(&what).await;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Opens a page that is not the game (the leaderboard); the caller waits for what it shows.
    pub async fn visit(&mut self, url: &str) {
        self.goto(url).await;
    }

    /// Opens a page of the game (`/`, `/r/CODE`, ...) and waits for the client to start, whatever
    /// screen it shows.
    pub async fn navigate(&mut self, url: &str) {
        self.goto(url).await;
        self.wait_for("the client to start", |d| d["state"].is_string() && d["state"] != "busy").await;
    }

    /// Opens a page of the game and waits for the lobby (nothing is joined).
    pub async fn open(&mut self, url: &str) {
        self.goto(url).await;
        self.wait_for("the lobby", |d| d["screen"] == "lobby" && d["state"] == "name-entry").await;
    }

    /// Waits until an element matching the CSS selector exists (the lobby's room rows and the
    /// host's player rows are drawn after data arrives).
    pub async fn wait_for_element(&self, selector: &str) {
        let expression = format!("document.querySelector({}) !== null", js_string(selector));
        self.wait_for_eval(&format!("an element matching {selector}"), &expression, |v| v == true).await;
    }

    /// Clicks the element matching the CSS selector like a person (scrolled into view, a real
    /// mouse click at its centre). Fails the test, with a screenshot, if there is none.
    ///
    /// The click goes to where the element is on screen, so it first waits (up to 2 s) for the
    /// element to stay put between two looks 100 ms apart, scrolled into view: a list the page
    /// rebuilds above it (the lobby's rooms every second) must not move it between the scroll
    /// and the click, or the click lands on something else and is lost.
    pub async fn click(&self, selector: &str) {
        let rect = format!(
            "(() => {{ const e = document.querySelector({}); if (!e) return null;              e.scrollIntoView({{ block: 'center' }}); const r = e.getBoundingClientRect();              return [r.x, r.y, r.width, r.height].join(','); }})()",
            js_string(selector)
        );
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        let mut last = self.eval(&rect).await;
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = self.eval(&rect).await;
            if now == last && !now.is_null() {
                break;
            }
            last = now;
        }
        let element = match self.page.find_element(selector).await {
            Ok(element) => element,
            Err(error) => self.fail(&format!("no element matches {selector}: {error}")).await,
        };
        if let Err(error) = element.click().await {
            self.fail(&format!("could not click {selector}: {error}")).await;
        }
    }

    /// Sets an input's or select's `.value` and dispatches `input` and `change`, as typing or
    /// picking would.
    pub async fn set_value(&self, selector: &str, value: &str) {
        let expression = format!(
            "(() => {{ const e = document.querySelector({}); if (!e) return false; e.value = {}; \
             e.dispatchEvent(new Event('input', {{ bubbles: true }})); \
             e.dispatchEvent(new Event('change', {{ bubbles: true }})); return true; }})()",
            js_string(selector),
            js_string(value)
        );
        let found = self.eval(&expression).await;
        self.check(found == true, format!("no element matches {selector} to set its value")).await;
    }

    /// Ticks or unticks a checkbox and dispatches `input` and `change`.
    pub async fn set_checked(&self, selector: &str, checked: bool) {
        let expression = format!(
            "(() => {{ const e = document.querySelector({}); if (!e) return false; e.checked = {checked}; \
             e.dispatchEvent(new Event('input', {{ bubbles: true }})); \
             e.dispatchEvent(new Event('change', {{ bubbles: true }})); return true; }})()",
            js_string(selector)
        );
        let found = self.eval(&expression).await;
        self.check(found == true, format!("no checkbox matches {selector}")).await;
    }

    pub async fn eval(&self, expression: &str) -> serde_json::Value {
        self.page
            .evaluate(expression)
            .await
            .unwrap_or_else(|e| panic!("evaluate {expression}: {e}"))
            .into_value::<serde_json::Value>()
            .unwrap_or(serde_json::Value::Null)
    }

    /// `window.arenaDebug()`, or `{}` before the client started (also while the page is being
    /// replaced by another: a navigation destroys the context an evaluation ran in).
    pub async fn debug(&self) -> serde_json::Value {
        let text = match self.page.evaluate("JSON.stringify(window.arenaDebug ? window.arenaDebug() : {})").await {
            Ok(result) => result.into_value::<serde_json::Value>().unwrap_or(serde_json::Value::Null),
            Err(_) => serde_json::Value::Null,
        };
        serde_json::from_str(text.as_str().unwrap_or("{}")).unwrap_or_default()
    }

    /// Polls `arenaDebug()` until `done` holds (15 s limit). On timeout it fails with the last
    /// state seen and a screenshot.
    pub async fn wait_for(&self, what: &str, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + WAIT_LIMIT;
        loop {
            let debug = self.debug().await;
            if done(&debug) {
                return debug;
            }
            if tokio::time::Instant::now() >= deadline {
                self.fail(&format!("timed out after {WAIT_LIMIT:?} waiting for {what}; last state: {debug}")).await;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls a JavaScript expression until `done` holds (15 s limit): the way to wait for
    /// something in the page's DOM, which the client rewrites only in its next animation frame
    /// (so `arenaDebug()` can be ahead of what is shown). On timeout it fails with the last
    /// value, the debug state and a screenshot.
    pub async fn wait_for_eval(
        &self,
        what: &str,
        expression: &str,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + WAIT_LIMIT;
        loop {
            let value = self.eval(expression).await;
            if done(&value) {
                return value;
            }
            if tokio::time::Instant::now() >= deadline {
                self.fail(&format!(
                    "timed out after {WAIT_LIMIT:?} waiting for {what} (`{expression}`); last value: {value}"
                ))
                .await;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for the text of the element with this id to satisfy `done`; returns the text.
    pub async fn wait_for_text(&self, what: &str, id: &str, done: impl Fn(&str) -> bool) -> String {
        let expression = format!("(document.getElementById('{id}') || {{}}).textContent ?? null");
        let value = self.wait_for_eval(what, &expression, |v| v.as_str().is_some_and(&done)).await;
        value.as_str().unwrap_or_default().to_string()
    }

    /// Asserts `ok`; on failure panics with `what`, this page's debug state and a screenshot path.
    pub async fn check(&self, ok: bool, what: impl std::fmt::Display) {
        if !ok {
            self.fail(&what.to_string()).await;
        }
    }

    /// Fails the test explaining itself: the message, the page's `arenaDebug()` state and the
    /// path of a screenshot taken now.
    pub async fn fail(&self, what: &str) -> ! {
        let debug = self.debug().await;
        let path = screenshot_dir().join(format!("failure-{}-{}.png", self.label, rand_suffix()));
        let shot = match tokio::time::timeout(Duration::from_secs(5), self.try_screenshot(&path)).await {
            Ok(Ok(())) => format!("screenshot: {}", path.display()),
            Ok(Err(error)) => format!("no screenshot: {error}"),
            Err(_) => "no screenshot: timed out".to_string(),
        };
        panic!("[{}] {what}\n  debug state: {debug}\n  {shot}", self.label);
    }

    async fn key(&self, kind: DispatchKeyEventType, key: &str, code: &str, virtual_key: i64, text: Option<&str>) {
        let mut params = DispatchKeyEventParams::builder()
            .r#type(kind)
            .key(key)
            .code(code)
            .windows_virtual_key_code(virtual_key)
            .native_virtual_key_code(virtual_key);
        if let Some(text) = text {
            params = params.text(text);
        }
        self.page.execute(params.build().unwrap()).await.expect("dispatch key");
    }

    pub async fn key_down(&self, key: &str, virtual_key: i64) {
        self.key(DispatchKeyEventType::RawKeyDown, key, key, virtual_key, None).await;
    }

    pub async fn key_up(&self, key: &str, virtual_key: i64) {
        self.key(DispatchKeyEventType::KeyUp, key, key, virtual_key, None).await;
    }

    pub async fn key_press(&self, key: &str, virtual_key: i64) {
        let text = (key == "Enter").then_some("\r");
        let kind = if text.is_some() { DispatchKeyEventType::KeyDown } else { DispatchKeyEventType::RawKeyDown };
        self.key(kind, key, key, virtual_key, text).await;
        self.key(DispatchKeyEventType::KeyUp, key, key, virtual_key, None).await;
    }

    /// Makes the page a phone: a `width`×`height` CSS-pixel mobile viewport at 3× density, with
    /// a touch screen (the page sees touch points, and gets touch events).
    pub async fn emulate_phone(&self, width: i64, height: i64) {
        let metrics = SetDeviceMetricsOverrideParams::builder()
            .width(width)
            .height(height)
            .device_scale_factor(3.0)
            .mobile(true)
            .build()
            .unwrap();
        self.page.execute(metrics).await.expect("device metrics");
        let touch = SetTouchEmulationEnabledParams::builder().enabled(true).max_touch_points(5).build().unwrap();
        self.page.execute(touch).await.expect("touch emulation");
    }

    /// One touch event: `points` are the fingers down after it (CSS pixels); empty to lift all.
    pub async fn touch(&self, kind: DispatchTouchEventType, points: &[(f64, f64)]) {
        let points: Vec<TouchPoint> = points
            .iter()
            .enumerate()
            .map(|(i, (x, y))| TouchPoint::builder().x(*x).y(*y).id(i as f64).build().unwrap())
            .collect();
        if points.is_empty() {
            // The generated params leave an empty list out, which Chromium refuses.
            let event = RawTouch { kind: kind.as_ref().to_string(), touch_points: Vec::new() };
            self.page.execute(event).await.expect("dispatch touch end");
            return;
        }
        let event = DispatchTouchEventParams::builder().r#type(kind).touch_points(points).build().unwrap();
        self.page.execute(event).await.expect("dispatch touch");
    }

    /// Types into whatever has focus.
    pub async fn type_text(&self, text: &str) {
        self.page.execute(InsertTextParams::new(text)).await.expect("insert text");
    }

    pub async fn screenshot(&self, path: &Path) {
        self.try_screenshot(path).await.expect("screenshot");
    }

    async fn try_screenshot(&self, path: &Path) -> Result<(), String> {
        let params = ScreenshotParams::builder().format(CaptureScreenshotFormat::Png).build();
        self.page.save_screenshot(params, path).await.map(|_| ()).map_err(|e| e.to_string())
    }

    pub async fn assert_no_console_errors(&self) {
        let errors = self.errors.lock().unwrap().clone();
        self.check(errors.is_empty(), format!("console errors: {errors:?}")).await;
    }

    /// The browser's offline mode (DevTools network emulation) on or off: open connections stay,
    /// their traffic waits, new ones fail, as when a Wi-Fi link stalls. `emulateNetworkConditions`
    /// is deprecated in the protocol in favour of two finer commands, but Chromium 156 keeps it
    /// and it is the one that does both (the stall and `navigator.onLine`) as a real blip does.
    #[allow(deprecated)]
    pub async fn set_offline(&self, offline: bool) {
        use chromiumoxide::cdp::browser_protocol::network::EmulateNetworkConditionsParams;
        let params = EmulateNetworkConditionsParams::builder()
            .offline(offline)
            .latency(0.0)
            .download_throughput(-1.0)
            .upload_throughput(-1.0)
            .build()
            .unwrap();
        self.page.execute(params).await.expect("emulate network conditions");
    }

    /// Hides this tab (another tab of the same browser comes to the front, as a user switching
    /// tabs does: `document.visibilityState` turns "hidden", animation frames stop) for `hidden`,
    /// then brings it back to the front.
    pub async fn hide_for(&self, hidden: Duration) {
        let other = self.browser.new_page("about:blank").await.expect("a second tab");
        other.bring_to_front().await.expect("the second tab to the front");
        self.wait_for_eval("this tab to be hidden", "document.visibilityState", |v| v == "hidden").await;
        tokio::time::sleep(hidden).await;
        self.page.bring_to_front().await.expect("this tab to the front");
        let _ = other.close().await;
    }

    pub async fn close(mut self) {
        let _ = self.browser.close().await;
        let _ = self.browser.wait().await;
        self.handler.abort();
    }
}

/// A JavaScript string literal for `text` (JSON's quoting is valid JavaScript).
fn js_string(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

/// `Input.dispatchTouchEvent` with an explicit, possibly empty `touchPoints` (touchEnd).
#[derive(serde::Serialize, Debug, Clone)]
struct RawTouch {
    #[serde(rename = "type")]
    kind: String,
    #[serde(rename = "touchPoints")]
    touch_points: Vec<serde_json::Value>,
}

impl chromiumoxide::Method for RawTouch {
    fn identifier(&self) -> chromiumoxide::types::MethodId {
        "Input.dispatchTouchEvent".into()
    }
}

impl chromiumoxide::Command for RawTouch {
    type Response = serde_json::Value;
}
