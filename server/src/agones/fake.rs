//! An in-repo fake of the Agones SDK sidecar (its gRPC service: `agones.dev.sdk.SDK` and the
//! beta Counters and Lists), for the tests and for trying `--agones` without Kubernetes
//! (`arena-server fake-agones`). Agones' own `sdk-server` binary is downloaded by its tooling,
//! which this project cannot rely on. It keeps what a real sidecar would put on the GameServer
//! (state, health pings, Counters, Lists, labels) and enforces the same rules the client sees:
//! Counters and Lists must be declared, counts stay within capacity, List values are unique.

// tonic's handlers return `Result<_, Status>` by their trait's signature.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

/// The generated gRPC types (from `server/proto/`).
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod pb {
    tonic::include_proto!("agones.dev.sdk");
    pub mod beta {
        tonic::include_proto!("agones.dev.sdk.beta");
    }
}

use pb::beta::sdk_server::{Sdk as BetaSdk, SdkServer as BetaSdkServer};
use pb::sdk_server::{Sdk, SdkServer};

#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Counter {
    pub count: i64,
    pub capacity: i64,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct List {
    pub capacity: i64,
    pub values: Vec<String>,
}

/// What the fake sidecar has been told.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FakeState {
    /// `Scheduled`, `Ready`, `Allocated`, `Reserved` or `Shutdown`.
    pub state: String,
    pub ready_calls: u32,
    pub allocate_calls: u32,
    pub shutdown_calls: u32,
    pub health_pings: u64,
    /// Unix milliseconds of the last health ping (0: none).
    pub last_health_unix_ms: u64,
    pub counters: BTreeMap<String, Counter>,
    pub lists: BTreeMap<String, List>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

/// The fake sidecar; clones share one state.
#[derive(Clone)]
pub struct FakeSdk {
    name: String,
    state: Arc<Mutex<FakeState>>,
}

impl FakeSdk {
    /// A GameServer named `name` whose Fleet declares these Counters and Lists (capacity 0 until
    /// the game server sets one, as a Fleet without capacities would).
    pub fn new(name: &str, counters: &[&str], lists: &[&str]) -> FakeSdk {
        let state = FakeState {
            state: "Scheduled".to_string(),
            counters: counters.iter().map(|c| (c.to_string(), Counter::default())).collect(),
            lists: lists.iter().map(|l| (l.to_string(), List::default())).collect(),
            ..FakeState::default()
        };
        FakeSdk { name: name.to_string(), state: Arc::new(Mutex::new(state)) }
    }

    /// Sets the GameServer's state, as Agones would (an allocation makes it `Allocated`).
    pub fn set_state(&self, state: &str) {
        self.with(|s| s.state = state.to_string());
    }

    /// A copy of the state now.
    pub fn snapshot(&self) -> FakeState {
        self.state.lock().expect("fake state lock").clone()
    }

    /// Serves the gRPC API on `listener` until `stop` completes.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        stop: impl std::future::Future<Output = ()> + Send,
    ) -> Result<(), tonic::transport::Error> {
        let incoming = tonic::transport::server::TcpIncoming::from_listener(listener, true, None)
            .expect("a bound listener is a valid incoming stream");
        tonic::transport::Server::builder()
            .add_service(SdkServer::new(self.clone()))
            .add_service(BetaSdkServer::new(self))
            .serve_with_incoming_shutdown(incoming, stop)
            .await
    }

    fn with<T>(&self, f: impl FnOnce(&mut FakeState) -> T) -> T {
        f(&mut self.state.lock().expect("fake state lock"))
    }

    fn game_server(&self) -> pb::GameServer {
        self.with(|state| pb::GameServer {
            object_meta: Some(pb::game_server::ObjectMeta {
                name: self.name.clone(),
                namespace: "default".to_string(),
                annotations: state.annotations.clone().into_iter().collect(),
                labels: state.labels.clone().into_iter().collect(),
            }),
            status: Some(pb::game_server::Status {
                state: state.state.clone(),
                address: "127.0.0.1".to_string(),
                ports: Vec::new(),
                counters: state
                    .counters
                    .iter()
                    .map(|(k, c)| {
                        (k.clone(), pb::game_server::status::CounterStatus { count: c.count, capacity: c.capacity })
                    })
                    .collect(),
                lists: state
                    .lists
                    .iter()
                    .map(|(k, l)| {
                        (
                            k.clone(),
                            pb::game_server::status::ListStatus { capacity: l.capacity, values: l.values.clone() },
                        )
                    })
                    .collect(),
            }),
        })
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::GameServer, Status>> + Send>>;

#[tonic::async_trait]
impl Sdk for FakeSdk {
    async fn ready(&self, _: Request<pb::Empty>) -> Result<Response<pb::Empty>, Status> {
        self.with(|s| {
            s.ready_calls += 1;
            s.state = "Ready".to_string();
        });
        Ok(Response::new(pb::Empty {}))
    }

    async fn allocate(&self, _: Request<pb::Empty>) -> Result<Response<pb::Empty>, Status> {
        self.with(|s| {
            s.allocate_calls += 1;
            s.state = "Allocated".to_string();
        });
        Ok(Response::new(pb::Empty {}))
    }

    async fn shutdown(&self, _: Request<pb::Empty>) -> Result<Response<pb::Empty>, Status> {
        self.with(|s| {
            s.shutdown_calls += 1;
            s.state = "Shutdown".to_string();
        });
        Ok(Response::new(pb::Empty {}))
    }

    async fn health(&self, request: Request<Streaming<pb::Empty>>) -> Result<Response<pb::Empty>, Status> {
        let mut pings = request.into_inner();
        while let Some(ping) = pings.message().await? {
            let _ = ping;
            self.with(|s| {
                s.health_pings += 1;
                s.last_health_unix_ms = unix_ms();
            });
        }
        Ok(Response::new(pb::Empty {}))
    }

    async fn get_game_server(&self, _: Request<pb::Empty>) -> Result<Response<pb::GameServer>, Status> {
        Ok(Response::new(self.game_server()))
    }

    type WatchGameServerStream = WatchStream;

    async fn watch_game_server(&self, _: Request<pb::Empty>) -> Result<Response<Self::WatchGameServerStream>, Status> {
        // One update now; the fake does not change the GameServer by itself.
        let now = self.game_server();
        Ok(Response::new(Box::pin(tokio_stream::iter([Ok(now)]))))
    }

    async fn set_label(&self, request: Request<pb::KeyValue>) -> Result<Response<pb::Empty>, Status> {
        let kv = request.into_inner();
        self.with(|s| s.labels.insert(format!("agones.dev/sdk-{}", kv.key), kv.value));
        Ok(Response::new(pb::Empty {}))
    }

    async fn set_annotation(&self, request: Request<pb::KeyValue>) -> Result<Response<pb::Empty>, Status> {
        let kv = request.into_inner();
        self.with(|s| s.annotations.insert(format!("agones.dev/sdk-{}", kv.key), kv.value));
        Ok(Response::new(pb::Empty {}))
    }

    async fn reserve(&self, _: Request<pb::Duration>) -> Result<Response<pb::Empty>, Status> {
        self.with(|s| s.state = "Reserved".to_string());
        Ok(Response::new(pb::Empty {}))
    }
}

/// The declared List `name`, or the error a sidecar answers for an undeclared one.
fn list_mut<'a>(state: &'a mut FakeState, name: &str) -> Result<&'a mut List, Status> {
    state.lists.get_mut(name).ok_or_else(|| Status::not_found(format!("list not found: {name}")))
}

fn counter_reply(name: &str, c: &Counter) -> pb::beta::Counter {
    pb::beta::Counter { name: name.to_string(), count: c.count, capacity: c.capacity }
}

fn list_reply(name: &str, l: &List) -> pb::beta::List {
    pb::beta::List { name: name.to_string(), capacity: l.capacity, values: l.values.clone() }
}

#[tonic::async_trait]
impl BetaSdk for FakeSdk {
    async fn get_counter(
        &self,
        request: Request<pb::beta::GetCounterRequest>,
    ) -> Result<Response<pb::beta::Counter>, Status> {
        let name = request.into_inner().name;
        self.with(|s| match s.counters.get(&name) {
            Some(c) => Ok(Response::new(counter_reply(&name, c))),
            None => Err(Status::not_found(format!("counter not found: {name}"))),
        })
    }

    async fn update_counter(
        &self,
        request: Request<pb::beta::UpdateCounterRequest>,
    ) -> Result<Response<pb::beta::Counter>, Status> {
        let update =
            request.into_inner().counter_update_request.ok_or_else(|| Status::invalid_argument("no update"))?;
        self.with(|s| {
            let counter = s
                .counters
                .get_mut(&update.name)
                .ok_or_else(|| Status::not_found(format!("counter not found: {}", update.name)))?;
            let mut next = counter.clone();
            if let Some(capacity) = update.capacity {
                if capacity < 0 {
                    return Err(Status::invalid_argument("capacity must be at least 0"));
                }
                // As Agones does: a lower capacity truncates the count.
                next.capacity = capacity;
                next.count = next.count.min(capacity);
            }
            if let Some(count) = update.count {
                next.count = count;
            }
            next.count += update.count_diff;
            if next.count < 0 || next.count > next.capacity {
                return Err(Status::out_of_range(format!(
                    "count {} is out of range 0..={} for counter {}",
                    next.count, next.capacity, update.name
                )));
            }
            *counter = next;
            Ok(Response::new(counter_reply(&update.name, counter)))
        })
    }

    async fn get_list(&self, request: Request<pb::beta::GetListRequest>) -> Result<Response<pb::beta::List>, Status> {
        let name = request.into_inner().name;
        self.with(|s| match s.lists.get(&name) {
            Some(l) => Ok(Response::new(list_reply(&name, l))),
            None => Err(Status::not_found(format!("list not found: {name}"))),
        })
    }

    async fn update_list(
        &self,
        request: Request<pb::beta::UpdateListRequest>,
    ) -> Result<Response<pb::beta::List>, Status> {
        let request = request.into_inner();
        let update = request.list.ok_or_else(|| Status::invalid_argument("no list"))?;
        let paths = request.update_mask.map(|m| m.paths).unwrap_or_default();
        self.with(|s| {
            let list = s
                .lists
                .get_mut(&update.name)
                .ok_or_else(|| Status::not_found(format!("list not found: {}", update.name)))?;
            for path in &paths {
                match path.as_str() {
                    "capacity" if (0..=1000).contains(&update.capacity) => list.capacity = update.capacity,
                    "capacity" => return Err(Status::invalid_argument("capacity must be 0..=1000")),
                    "values" => list.values = update.values.clone(),
                    other => return Err(Status::invalid_argument(format!("unknown field {other}"))),
                }
            }
            list.values.truncate(list.capacity.max(0) as usize);
            Ok(Response::new(list_reply(&update.name, list)))
        })
    }

    async fn add_list_value(
        &self,
        request: Request<pb::beta::AddListValueRequest>,
    ) -> Result<Response<pb::beta::List>, Status> {
        let request = request.into_inner();
        self.with(|s| {
            let list = list_mut(s, &request.name)?;
            if list.values.contains(&request.value) {
                return Err(Status::already_exists(format!("{} is already in list {}", request.value, request.name)));
            }
            if list.values.len() as i64 >= list.capacity {
                return Err(Status::out_of_range(format!("list {} is at capacity {}", request.name, list.capacity)));
            }
            list.values.push(request.value);
            Ok(Response::new(list_reply(&request.name, list)))
        })
    }

    async fn remove_list_value(
        &self,
        request: Request<pb::beta::RemoveListValueRequest>,
    ) -> Result<Response<pb::beta::List>, Status> {
        let request = request.into_inner();
        self.with(|s| {
            let list = list_mut(s, &request.name)?;
            let Some(at) = list.values.iter().position(|v| *v == request.value) else {
                return Err(Status::not_found(format!("{} is not in list {}", request.value, request.name)));
            };
            list.values.remove(at);
            Ok(Response::new(list_reply(&request.name, list)))
        })
    }
}

/// A fake of the Agones allocator service's REST endpoint (`POST /gameserverallocation`) over
/// fake sidecars: it evaluates a GameServerAllocation's selectors in order against what each
/// GameServer reported (state, Counters, Lists), orders the matches by the `rooms` Counter's
/// available capacity as the first priority says (`Ascending`: the fullest first, packing; ties
/// by name), marks the first Allocated and answers its name, as the real allocator does. No
/// match: 429, as the allocator answers when nothing fits.
pub fn allocator(servers: Vec<(String, FakeSdk)>) -> axum::Router {
    use axum::http::StatusCode;
    let servers = Arc::new(servers);
    axum::Router::new().route(
        "/gameserverallocation",
        axum::routing::post(move |body: axum::body::Bytes| {
            let servers = servers.clone();
            async move {
                let Ok(request) = serde_json::from_slice::<serde_json::Value>(&body) else {
                    return (StatusCode::BAD_REQUEST, "not JSON".to_string());
                };
                let selectors = request["gameServerSelectors"].as_array().cloned().unwrap_or_default();
                for selector in &selectors {
                    let wanted = match selector["gameServerState"].as_str().unwrap_or("READY") {
                        "ALLOCATED" => "Allocated",
                        _ => "Ready",
                    };
                    let mut fits: Vec<(i64, &String, &FakeSdk)> = servers
                        .iter()
                        .filter_map(|(name, fake)| {
                            let state = fake.snapshot();
                            if state.state != wanted || !matches_selector(&state, selector) {
                                return None;
                            }
                            // Agones orders by available capacity: `Ascending` puts the fullest
                            // first (packing), `Descending` the emptiest.
                            let available = state.counters.get("rooms").map_or(0, |c| c.capacity - c.count);
                            Some((available, name, fake))
                        })
                        .collect();
                    let descending = request["priorities"]
                        .as_array()
                        .and_then(|p| p.first())
                        .is_some_and(|p| p["order"].as_str() == Some("Descending"));
                    fits.sort_by(|a, b| {
                        let order = if descending { b.0.cmp(&a.0) } else { a.0.cmp(&b.0) };
                        order.then(a.1.cmp(b.1))
                    });
                    if let Some((_, name, fake)) = fits.first() {
                        fake.with(|s| s.state = "Allocated".to_string());
                        let answer = serde_json::json!({ "gameServerName": name, "address": "127.0.0.1", "ports": [] });
                        return (StatusCode::OK, answer.to_string());
                    }
                }
                (StatusCode::TOO_MANY_REQUESTS, "no GameServer matches the selectors".to_string())
            }
        }),
    )
}

/// Whether a GameServer's Counters and Lists satisfy a selector's `counters` (`minAvailable`,
/// `minCount`, `maxCount`) and `lists` (`containsValue`, `minAvailable`).
fn matches_selector(state: &FakeState, selector: &serde_json::Value) -> bool {
    let counters = selector["counters"].as_object().cloned().unwrap_or_default();
    for (name, rule) in &counters {
        let Some(counter) = state.counters.get(name) else { return false };
        let available = counter.capacity - counter.count;
        if rule["minAvailable"].as_i64().is_some_and(|min| available < min)
            || rule["minCount"].as_i64().is_some_and(|min| counter.count < min)
            || rule["maxCount"].as_i64().is_some_and(|max| max > 0 && counter.count > max)
        {
            return false;
        }
    }
    let lists = selector["lists"].as_object().cloned().unwrap_or_default();
    for (name, rule) in &lists {
        let Some(list) = state.lists.get(name) else { return false };
        if rule["containsValue"].as_str().is_some_and(|value| !list.values.iter().any(|v| v == value))
            || rule["minAvailable"].as_i64().is_some_and(|min| list.capacity - (list.values.len() as i64) < min)
        {
            return false;
        }
    }
    true
}
