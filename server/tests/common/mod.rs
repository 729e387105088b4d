//! Helpers for end-to-end tests: a real server on 127.0.0.1:0 and real WebSocket clients.
#![allow(dead_code)] // Each test binary uses a different subset.

pub mod netns;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use glam::Vec2;
use server::ServerConfig;
use server::room::RoomStats;
use server::room::registry::Registry;
use shared::map::MapDef;
use shared::protocol::{
    self, ClientMsg, DisconnectReason, GameEvent, InputCmd, Leaderboard, PROTOCOL_VERSION, ServerMsg, SnapshotMsg,
    Welcome,
};
use shared::quant;
use shared::room::{HostKey, RoomRequest};
use shared::snapshot::{EntityState, NetId, SnapshotReceiver, View};
use shared::tick::Tick;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A small open map with two spawn points 200 units apart on a horizontal line, no orbs.
pub fn duel_map() -> Arc<MapDef> {
    Arc::new(
        MapDef::from_json(
            r#"{"id":"duel","name":"duel","width":600,"height":300,"walls":[],
                "spawns":[[100,150],[300,150]],"orbs":0}"#,
        )
        .expect("valid test map"),
    )
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub stats: Arc<RoomStats>,
    /// The server's rooms (to look at them, or act on them, from a test).
    pub rooms: Arc<Registry>,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    pub async fn start(config: ServerConfig) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let stats = Arc::new(RoomStats::default());
        let rooms = Registry::new(Arc::new(config), stats.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(server::run_with_registry(listener, rooms.clone(), async move {
            let _ = stopped.await;
        }));
        // "Main" is open once the server listens; wait for it so tests can rely on it.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while rooms.main_code().is_none() {
            assert!(tokio::time::Instant::now() < deadline, "Main did not open");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        TestServer { addr, stats, rooms, stop: Some(stop), handle: Some(handle) }
    }

    pub async fn start_default() -> TestServer {
        TestServer::start(ServerConfig::default()).await
    }

    pub fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Triggers shutdown and waits for `run` to return.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(handle) = self.handle.take() {
            tokio::time::timeout(Duration::from_secs(10), handle)
                .await
                .expect("server stops within 10 s")
                .expect("server task did not panic")
                .expect("server returned Ok");
        }
    }
}

/// Opens a raw WebSocket to the server.
pub async fn connect_raw(server: &TestServer) -> Ws {
    let (ws, _) =
        tokio_tungstenite::connect_async_with_config(server.url(), None, true).await.expect("websocket connects");
    ws
}

/// A quick-play hello.
pub fn hello(name: &str) -> Message {
    hello_to(name, RoomRequest::QuickPlay, None, 0, None)
}

/// A hello asking for `room`.
pub fn hello_to(
    name: &str,
    room: RoomRequest,
    host_key: Option<HostKey>,
    client_id: u64,
    resume: Option<u64>,
) -> Message {
    Message::Binary(
        protocol::encode(&ClientMsg::Hello {
            protocol: PROTOCOL_VERSION,
            name: name.to_string(),
            resume,
            room,
            host_key,
            client_id,
            auth: None,
            guest: None,
        })
        .into(),
    )
}

/// A quick-play hello carrying `auth` (a password or a join token).
pub fn hello_auth(name: &str, room: RoomRequest, auth: Option<protocol::JoinAuth>) -> Message {
    Message::Binary(
        protocol::encode(&ClientMsg::Hello {
            protocol: PROTOCOL_VERSION,
            name: name.to_string(),
            resume: None,
            room,
            host_key: None,
            client_id: 0,
            auth,
            guest: None,
        })
        .into(),
    )
}

/// One HTTP/1.0 request to the server: (status, headers in lower case, body).
pub async fn http(server: &TestServer, method: &str, path: &str, body: Option<&str>) -> (u16, String, String) {
    http_to(server.addr, method, path, body, &[]).await
}

/// One HTTP/1.0 request to `addr` with extra headers: (status, headers in lower case, body).
pub async fn http_to(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let body = body.unwrap_or("");
    let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: localhost\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("write request");
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response))
        .await
        .expect("response within 5 s")
        .expect("read response");
    let text = String::from_utf8_lossy(&response).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head.to_lowercase(), body.to_string())
}

/// A TCP connection to `to` from the local address `from` (any of 127.0.0.0/8 on loopback), so
/// a test can be several clients' addresses at once.
pub async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket.bind(SocketAddr::new(from.parse().expect("an IPv4 address"), 0)).expect("bind the client's address");
    socket.connect(to).await.expect("connect")
}

/// Whether the peer closes `stream` within `limit` (whatever it sends first is read and
/// dropped); `Some(after)` says when.
pub async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    use tokio::io::AsyncReadExt;
    let started = tokio::time::Instant::now();
    let mut buffer = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(started + limit, stream.read(&mut buffer)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// `GET path` over HTTP/1.0 from the local address `from`: the status, or 0 when the server
/// closed the connection without one.
pub async fn status_from(from: &str, to: SocketAddr, path: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = connect_from(from, to).await;
    if stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes()).await.is_err() {
        return 0;
    }
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response)).await;
    let text = String::from_utf8_lossy(&response);
    text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// `method path` with a body of `size` bytes (`x` repeated), tolerating a server that answers
/// before reading it all and closes: the status it answered, or 0.
pub async fn status_of_body(addr: SocketAddr, method: &str, path: &str, size: usize, headers: &[(&str, &str)]) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    let head = format!(
        "{method} {path} HTTP/1.0\r\nHost: localhost\r\n{extra}Content-Type: application/json\r\nContent-Length: {size}\r\n\r\n"
    );
    let mut request = head.into_bytes();
    request.resize(request.len() + size, b'x');
    let _ = stream.write_all(&request).await;
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response)).await;
    let text = String::from_utf8_lossy(&response);
    text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// How a connection ended, as seen by the client.
#[derive(Debug, Default)]
pub struct Ending {
    /// The `ServerMsg::Disconnect` received before the Close frame.
    pub reason: Option<DisconnectReason>,
    /// Close frame code and text.
    pub close: Option<(u16, String)>,
}

/// Reads until the server closes the connection (10 s limit).
pub async fn read_until_closed(ws: &mut Ws) -> Ending {
    let mut ending = Ending::default();
    let read = async {
        while let Some(frame) = ws.next().await {
            match frame {
                Ok(Message::Binary(bytes)) => {
                    if let Ok(ServerMsg::Disconnect(reason)) = protocol::decode_server(&bytes) {
                        ending.reason = Some(reason);
                    }
                }
                Ok(Message::Close(frame)) => {
                    ending.close = frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read).await.expect("server closes within 10 s");
    ending
}

/// A well-behaved game client that applies every snapshot.
pub struct TestClient {
    pub ws: Ws,
    pub welcome: Welcome,
    pub receiver: SnapshotReceiver,
    pub last: Option<SnapshotMsg>,
    /// Every event received so far.
    pub events: Vec<GameEvent>,
    pub leaderboard: Option<Leaderboard>,
    pub snapshots: u32,
    /// The last round's results, from its `RoundOver` until the next round's welcome.
    pub round_over: Option<shared::protocol::RoundOver>,
    seq: u32,
}

impl TestClient {
    pub async fn join(server: &TestServer, name: &str) -> TestClient {
        TestClient::join_url(&server.url(), name).await
    }

    pub async fn join_url(url: &str, name: &str) -> TestClient {
        TestClient::join_with(url, hello(name)).await.unwrap_or_else(|ending| panic!("join refused: {ending:?}"))
    }

    /// Joins (or creates, or watches) `room`; panics if refused.
    pub async fn join_room(server: &TestServer, name: &str, room: RoomRequest) -> TestClient {
        TestClient::join_with(&server.url(), hello_to(name, room, None, 0, None))
            .await
            .unwrap_or_else(|ending| panic!("join refused: {ending:?}"))
    }

    /// Sends `hello` and returns the client once welcomed, or how the server ended it.
    /// `url` may be a request with headers (`X-Forwarded-For` behind a trusted proxy).
    pub async fn join_with(
        url: impl tokio_tungstenite::tungstenite::client::IntoClientRequest + Unpin,
        hello: Message,
    ) -> Result<TestClient, Ending> {
        let (mut ws, _) =
            tokio_tungstenite::connect_async_with_config(url, None, true).await.expect("websocket connects");
        ws.send(hello).await.expect("send hello");
        let mut ending = Ending::default();
        let welcome = loop {
            let frame = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("an answer within 5 s");
            match frame {
                Some(Ok(Message::Binary(bytes))) => match protocol::decode_server(&bytes).expect("decodable") {
                    ServerMsg::Welcome(welcome) => break *welcome,
                    ServerMsg::Disconnect(reason) => ending.reason = Some(reason),
                    other => panic!("expected a welcome, got {other:?}"),
                },
                Some(Ok(Message::Close(frame))) => {
                    ending.close = frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                    return Err(ending);
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return Err(ending),
            }
        };
        Ok(TestClient {
            ws,
            welcome,
            receiver: SnapshotReceiver::new(),
            last: None,
            events: Vec::new(),
            leaderboard: None,
            snapshots: 0,
            round_over: None,
            seq: 0,
        })
    }

    /// A new match began (the host restarted or changed the map): start over from `welcome`.
    pub fn restart(&mut self, welcome: Welcome) {
        self.welcome = welcome;
        self.round_over = None;
        self.receiver = SnapshotReceiver::new();
        self.last = None;
    }

    /// Reads messages until a new welcome (a new match) arrives (5 s), and starts over from it.
    pub async fn next_welcome(&mut self) -> Welcome {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let frame = tokio::time::timeout_at(deadline, self.ws.next()).await.expect("a welcome within 5 s");
            let bytes = match frame {
                Some(Ok(Message::Binary(bytes))) => bytes,
                // The server's keep-alive pings (answered by tungstenite).
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("connection ended: {other:?}"),
            };
            if let Ok(ServerMsg::Welcome(welcome)) = protocol::decode_server(&bytes) {
                self.restart((*welcome).clone());
                return *welcome;
            }
        }
    }

    pub fn id(&self) -> NetId {
        self.welcome.player_id
    }

    pub fn latest_tick(&self) -> Tick {
        self.receiver.latest().map_or(Tick::ZERO, |(tick, _)| tick)
    }

    pub async fn send(&mut self, message: &ClientMsg) {
        self.ws.send(Message::Binary(protocol::encode(message).into())).await.expect("send");
    }

    /// Sends one input (acking the newest snapshot).
    pub async fn input(&mut self, dir: Vec2, aim: f32, fire: bool) {
        self.input_seen(dir, aim, fire, None).await;
    }

    /// Sends one input that claims this client saw the others at `view` (lag compensation).
    pub async fn input_seen(&mut self, dir: Vec2, aim: f32, fire: bool, view: Option<shared::protocol::ViewTime>) {
        self.seq += 1;
        let cmd = InputCmd { seq: self.seq, ack: self.latest_tick(), move_x: dir.x, move_y: dir.y, aim, fire, view };
        self.send(&ClientMsg::Input(cmd)).await;
    }

    pub async fn chat(&mut self, text: &str) {
        self.send(&ClientMsg::Chat { text: text.to_string() }).await;
    }

    /// Receives and applies the next snapshot (5 s limit), skipping other messages.
    pub async fn next_snapshot(&mut self) -> SnapshotMsg {
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(5), self.ws.next())
                .await
                .expect("a message within 5 s")
                .expect("connection open")
                .expect("frame");
            let Message::Binary(bytes) = frame else {
                continue;
            };
            match protocol::decode_server(&bytes).expect("decodable server message") {
                ServerMsg::Snapshot(snapshot) => {
                    self.receiver
                        .apply(snapshot.tick, snapshot.baseline, &snapshot.delta)
                        .expect("snapshot applies to its baseline");
                    self.events.extend(snapshot.events.iter().cloned());
                    if let Some(board) = &snapshot.leaderboard {
                        self.leaderboard = Some(board.clone());
                    }
                    self.snapshots += 1;
                    self.last = Some((*snapshot).clone());
                    return *snapshot;
                }
                ServerMsg::Disconnect(reason) => panic!("disconnected: {reason}"),
                ServerMsg::Welcome(welcome) => self.restart(*welcome),
                ServerMsg::RoundOver(over) => self.round_over = Some(*over),
                _ => continue,
            }
        }
    }

    /// Keeps receiving snapshots (acking them) until `done` holds; false after `limit`.
    pub async fn until(&mut self, limit: Duration, mut done: impl FnMut(&TestClient) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while tokio::time::Instant::now() < deadline {
            if done(self) {
                return true;
            }
            self.next_snapshot().await;
            let tick = self.latest_tick();
            self.send(&ClientMsg::Ack { tick }).await;
        }
        done(self)
    }

    pub fn view(&self) -> &View {
        self.receiver.latest().map(|(_, view)| view).expect("at least one snapshot")
    }

    /// The room notices received so far (host actions, drain countdowns...).
    pub fn notices(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| match e {
                GameEvent::Notice { text } => Some(text.clone()),
                _ => None,
            })
            .collect()
    }

    /// Position of a player in the latest view.
    pub fn player_pos(&self, id: NetId) -> Option<Vec2> {
        match self.receiver.latest()?.1.get(id)? {
            EntityState::Player(p) => Some(quant::q_to_vec(p.x, p.y)),
            _ => None,
        }
    }
}

/// Starts the real `arena-server` binary on 127.0.0.1:0 with `args` and extra environment,
/// stderr read in the background; returns it (end it by its PID) and the port it printed.
#[allow(dead_code)]
pub fn spawn_binary(args: &[&str], env: &[(&str, &str)]) -> (std::process::Child, u16) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_arena-server"))
        .env("ARENA_NO_DATABASE", "true")
        .args(args)
        .envs(env.iter().copied())
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start arena-server");
    let stderr = child.stderr.take().unwrap();
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("://localhost:").nth(1) {
                let port: String = rest.chars().take_while(char::is_ascii_digit).collect();
                let _ = port_tx.send(port.parse::<u16>().unwrap_or(0));
            }
        }
    });
    let port = port_rx.recv_timeout(Duration::from_secs(20)).expect("the server prints its address");
    (child, port)
}

/// A hello from a guest whose browser secret is `secret` (its player id is the secret's hash).
pub fn guest_hello(name: &str, room: shared::room::RoomRequest, secret: [u8; 16]) -> Message {
    Message::Binary(
        protocol::encode(&ClientMsg::Hello {
            protocol: PROTOCOL_VERSION,
            name: name.to_string(),
            resume: None,
            room,
            host_key: None,
            client_id: u64::from(secret[0]),
            auth: None,
            guest: Some(secret),
        })
        .into(),
    )
}

/// Polls `probe` until it says done (20 s), failing with what it saw last.
pub async fn eventually<T: std::fmt::Debug>(what: &str, mut probe: impl AsyncFnMut() -> (bool, T)) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (done, seen) = probe().await;
        if done {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: not within 20 s; saw {seen:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
