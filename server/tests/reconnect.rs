//! Seat hold on reconnect, over real WebSockets on 127.0.0.1: a player whose TCP connection is
//! cut (a reset, or a silent drop) keeps the same entity for the grace period and takes it back
//! with its resume token, with no leave or join seen by the others; after the grace the player
//! is new; racing resumes have exactly one winner; forged and foreign tokens are refused with a
//! reason; a goodbye still removes the player at once; the replay re-simulates through it all.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{TestClient, TestServer, duel_map, hello_to};
use futures_util::{SinkExt, StreamExt};
use glam::Vec2;
use server::ServerConfig;
use server::replay::format::{self, Op};
use shared::protocol::{DisconnectReason, GameEvent};
use shared::room::{RoomRequest, RoomSettings};
use shared::snapshot::{EntityState, FLAG_AWAY, NetId};
use tokio_tungstenite::MaybeTlsStream;

fn config(grace_s: u64) -> ServerConfig {
    ServerConfig {
        map: duel_map(),
        room_creates_per_minute: 1000,
        resume_grace: Duration::from_secs(grace_s),
        ..ServerConfig::default()
    }
}

fn join(code: &str) -> RoomRequest {
    RoomRequest::Join { code: code.to_string() }
}

fn create() -> RoomRequest {
    RoomRequest::Create(RoomSettings { name: Some("seats".to_string()), ..RoomSettings::default() })
}

/// Cuts the client's TCP connection with a reset (SO_LINGER 0, then close): no Close frame, no
/// FIN, as when a router or a laptop's Wi-Fi drops it.
fn reset(client: TestClient) {
    match client.ws.get_ref() {
        MaybeTlsStream::Plain(tcp) => {
            socket2::SockRef::from(tcp).set_linger(Some(Duration::ZERO)).expect("SO_LINGER 0")
        }
        other => panic!("expected a plain TCP stream, got {other:?}"),
    }
    drop(client);
}

/// The player's flags in the observer's latest view.
fn flags(observer: &TestClient, id: NetId) -> Option<u8> {
    match observer.receiver.latest()?.1.get(id)? {
        EntityState::Player(p) => Some(p.flags),
        _ => None,
    }
}

fn left_or_joined(events: &[GameEvent], id: NetId) -> Vec<GameEvent> {
    events
        .iter()
        .filter(|e| match e {
            GameEvent::Left { id: left, .. } => *left == id,
            GameEvent::Joined { id: joined, .. } => *joined == id,
            _ => false,
        })
        .cloned()
        .collect()
}

/// Moves the player right for `steps` inputs (each one waiting for a snapshot).
async fn walk(player: &mut TestClient, steps: u32) {
    for _ in 0..steps {
        player.input(Vec2::new(1.0, 0.0), 0.0, false).await;
        player.next_snapshot().await;
    }
}

fn temp_dir(label: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("reconnect-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn a_reset_connection_keeps_the_seat_and_the_resume_takes_the_same_entity_back() {
    let dir = temp_dir("reset");
    let server = TestServer::start(ServerConfig { replay_dir: Some(dir.clone()), ..config(20) }).await;
    let mut observer = TestClient::join_room(&server, "observer", create()).await;
    let code = observer.welcome.room.code.to_string();
    let mut player = TestClient::join_room(&server, "runner", join(&code)).await;
    let id = player.id();
    let token = player.welcome.resume_token;
    walk(&mut player, 20).await;
    let score_before = player.last.as_ref().and_then(|s| s.own).map(|o| o.score);
    assert!(observer.until(Duration::from_secs(5), |o| o.player_pos(id).is_some()).await, "observer sees the runner");

    // Everything the observer hears from here on: no leave and no join for the runner.
    let mark = observer.events.len();
    reset(player);
    // The seat is held: the entity stays, marked as away, and stands still.
    assert!(
        observer.until(Duration::from_secs(5), |o| flags(o, id).is_some_and(|f| f & FLAG_AWAY != 0)).await,
        "the observer sees the runner marked as reconnecting; flags {:?}",
        flags(&observer, id)
    );
    let held_at = observer.player_pos(id).expect("still in the world");
    observer.until(Duration::from_millis(500), |_| false).await;
    assert_eq!(observer.player_pos(id), Some(held_at), "a held player stands still");

    // Back with the token: the same id, position and score, and a full snapshot.
    let mut back = TestClient::join_with(&server.url(), hello_to("someone else", join(&code), None, 0, Some(token)))
        .await
        .unwrap_or_else(|ending| panic!("resume refused: {ending:?}"));
    assert_eq!(back.id(), id, "the resume takes the same entity");
    assert_eq!(back.welcome.resume_token, token);
    let first = back.next_snapshot().await;
    assert!(first.baseline.is_none(), "the returning client gets a full snapshot, not a delta");
    assert_eq!(back.player_pos(id), Some(held_at), "same position");
    assert_eq!(first.own.map(|o| o.score), score_before, "same score");
    assert_eq!(back.welcome.roster.iter().find(|p| p.id == id).map(|p| p.name.as_str()), Some("runner"), "same name");

    // Inputs count from the new connection's own start, and are acked from there.
    walk(&mut back, 10).await;
    assert!(
        back.until(Duration::from_secs(3), |b| b.last.as_ref().is_some_and(|s| (5..=10).contains(&s.input_ack))).await,
        "acks restart from the new connection's inputs: {:?}",
        back.last.as_ref().map(|s| s.input_ack)
    );
    assert!(back.player_pos(id).is_some_and(|p| p.x > held_at.x + 1.0), "moves again: {:?}", back.player_pos(id));
    assert!(
        observer.until(Duration::from_secs(5), |o| flags(o, id).is_some_and(|f| f & FLAG_AWAY == 0)).await,
        "no longer marked away"
    );
    assert_eq!(left_or_joined(&observer.events[mark..], id), Vec::new(), "no leave or join for the others");

    // A goodbye removes the player at once: no seat is held.
    back.ws.close(None).await.unwrap();
    assert!(
        observer
            .until(Duration::from_secs(3), |o| left_or_joined(&o.events, id)
                .iter()
                .any(|e| matches!(e, GameEvent::Left { reason: DisconnectReason::ClientLeft, .. })))
            .await,
        "a goodbye is a leave: {:?}",
        left_or_joined(&observer.events, id)
    );
    observer.until(Duration::from_millis(300), |_| false).await;
    server.stop().await;

    // The replay holds the seat and its return, and re-simulates to the same hashes.
    let path = std::fs::read_dir(&dir).unwrap().next().unwrap().unwrap().path();
    let file = format::read(std::fs::File::open(&path).unwrap()).unwrap();
    let ops: Vec<&Op> = file.records.iter().flat_map(|r| &r.ops).collect();
    assert!(ops.iter().any(|op| matches!(op, Op::Away { id: away } if *away == id)), "the hold is recorded");
    assert!(ops.iter().any(|op| matches!(op, Op::Back { id: back } if *back == id)), "the return is recorded");
    let report = server::replay::verify(&file).unwrap_or_else(|d| panic!("diverged: {d:?}"));
    assert!(report.hashes_checked >= 1, "{report:?}");
}

#[tokio::test]
async fn a_silent_drop_is_taken_over_by_the_resume_and_an_idle_timeout_holds_the_seat() {
    let server = TestServer::start(ServerConfig { idle_timeout: Duration::from_secs(5), ..config(20) }).await;
    let mut observer = TestClient::join_room(&server, "observer", create()).await;
    let code = observer.welcome.room.code.to_string();
    let mut player = TestClient::join_room(&server, "quiet", join(&code)).await;
    let id = player.id();
    let token = player.welcome.resume_token;
    walk(&mut player, 5).await;
    assert!(observer.until(Duration::from_secs(5), |o| o.player_pos(id).is_some()).await);
    let mark = observer.events.len();

    // The link dies silently: the old socket stays open but nothing crosses it any more. A
    // resume right away is refused (that connection is live as far as anyone knows)...
    let refused = TestClient::join_with(&server.url(), hello_to("quiet", join(&code), None, 0, Some(token))).await;
    match refused {
        Ok(_) => panic!("a resume took a seat whose connection is live"),
        Err(ending) => {
            assert!(
                matches!(ending.reason, Some(DisconnectReason::SeatInUse { after_ms }) if (1..=2100).contains(&after_ms)),
                "told to try again after the old connection's silence: {ending:?}"
            );
            assert_eq!(ending.close.as_ref().map(|c| c.0), Some(4027), "{ending:?}");
        }
    }
    // ...and once it has been silent for two seconds, a resume takes the seat over at once,
    // without waiting for the server to notice the dead socket.
    tokio::time::sleep(server::room::TAKEOVER_SILENCE + Duration::from_millis(300)).await;
    let back = TestClient::join_with(&server.url(), hello_to("quiet", join(&code), None, 0, Some(token)))
        .await
        .unwrap_or_else(|ending| panic!("takeover refused: {ending:?}"));
    assert_eq!(back.id(), id);
    let ending = common::read_until_closed(&mut player.ws).await;
    assert_eq!(ending.reason, Some(DisconnectReason::Replaced), "the old connection is told: {ending:?}");
    assert_eq!(ending.close.as_ref().map(|c| c.0), Some(4026), "{ending:?}");

    // Now the new connection goes silent past the idle timeout: the server closes it and holds
    // the seat, and a resume takes it back.
    let mut silent = back;
    assert!(
        observer.until(Duration::from_secs(10), |o| flags(o, id).is_some_and(|f| f & FLAG_AWAY != 0)).await,
        "the idle timeout holds the seat; flags {:?}",
        flags(&observer, id)
    );
    let ending = common::read_until_closed(&mut silent.ws).await;
    assert!(matches!(ending.reason, Some(DisconnectReason::IdleTimeout { .. })), "{ending:?}");
    let again = TestClient::join_with(&server.url(), hello_to("quiet", join(&code), None, 0, Some(token)))
        .await
        .unwrap_or_else(|ending| panic!("resume after the idle timeout refused: {ending:?}"));
    assert_eq!(again.id(), id);
    assert!(observer.until(Duration::from_secs(3), |o| flags(o, id).is_some_and(|f| f & FLAG_AWAY == 0)).await);
    assert_eq!(left_or_joined(&observer.events[mark..], id), Vec::new(), "no leave or join for the others");
    server.stop().await;
}

#[tokio::test]
async fn after_the_grace_the_player_leaves_and_the_token_makes_a_new_player() {
    let server = TestServer::start(config(1)).await;
    let mut observer = TestClient::join_room(&server, "observer", create()).await;
    let code = observer.welcome.room.code.to_string();
    let player = TestClient::join_room(&server, "late", join(&code)).await;
    let (id, token) = (player.id(), player.welcome.resume_token);
    reset(player);
    assert!(
        observer
            .until(Duration::from_secs(5), |o| left_or_joined(&o.events, id)
                .iter()
                .any(|e| matches!(e, GameEvent::Left { reason: DisconnectReason::ConnectionLost, .. })))
            .await,
        "the player leaves as lost once the grace ends: {:?}",
        left_or_joined(&observer.events, id)
    );
    let back = TestClient::join_with(&server.url(), hello_to("late", join(&code), None, 0, Some(token)))
        .await
        .unwrap_or_else(|ending| panic!("a late return is refused: {ending:?}"));
    assert_ne!(back.id(), id, "too late: a new player");
    assert_ne!(back.welcome.resume_token, token, "with a new token");
    server.stop().await;
}

#[tokio::test]
async fn two_connections_racing_with_one_token_have_exactly_one_winner() {
    let server = TestServer::start(config(20)).await;
    let mut observer = TestClient::join_room(&server, "observer", create()).await;
    let code = observer.welcome.room.code.to_string();
    let player = TestClient::join_room(&server, "twin", join(&code)).await;
    let (id, token) = (player.id(), player.welcome.resume_token);
    assert!(observer.until(Duration::from_secs(5), |o| o.player_pos(id).is_some()).await);
    let mark = observer.events.len();
    reset(player);
    assert!(observer.until(Duration::from_secs(5), |o| flags(o, id).is_some_and(|f| f & FLAG_AWAY != 0)).await);

    // Both connections are open before either says hello; then both hellos go at once.
    let url = server.url();
    let (mut a, _) = tokio_tungstenite::connect_async(url.as_str()).await.unwrap();
    let (mut b, _) = tokio_tungstenite::connect_async(url.as_str()).await.unwrap();
    let hello = || hello_to("twin", join(&code), None, 0, Some(token));
    let (sent_a, sent_b) = tokio::join!(a.send(hello()), b.send(hello()));
    sent_a.unwrap();
    sent_b.unwrap();
    let (a, b) = tokio::join!(first_answer(&mut a), first_answer(&mut b));
    let outcomes = [a, b];
    let winners: Vec<&Answer> = outcomes.iter().filter(|o| matches!(o, Answer::Welcome(_))).collect();
    assert_eq!(winners.len(), 1, "exactly one wins: {outcomes:?}");
    assert!(matches!(winners[0], Answer::Welcome(won) if *won == id), "{outcomes:?}");
    let loser = outcomes.iter().find(|o| !matches!(o, Answer::Welcome(_))).unwrap();
    assert!(
        matches!(loser, Answer::Refused(Some(DisconnectReason::SeatInUse { .. }), Some(4027))),
        "the other is told the seat is in use: {outcomes:?}"
    );
    observer.until(Duration::from_millis(300), |_| false).await;
    assert_eq!(left_or_joined(&observer.events[mark..], id), Vec::new(), "no leave or join for the others");
    server.stop().await;
}

#[derive(Debug)]
enum Answer {
    Welcome(NetId),
    Refused(Option<DisconnectReason>, Option<u16>),
}

async fn first_answer(ws: &mut common::Ws) -> Answer {
    use tokio_tungstenite::tungstenite::Message;
    let mut reason = None;
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("an answer within 5 s");
        match frame {
            Some(Ok(Message::Binary(bytes))) => match shared::protocol::decode_server(&bytes).unwrap() {
                shared::protocol::ServerMsg::Welcome(welcome) => return Answer::Welcome(welcome.player_id),
                shared::protocol::ServerMsg::Disconnect(why) => reason = Some(why),
                _ => {}
            },
            Some(Ok(Message::Close(frame))) => return Answer::Refused(reason, frame.map(|f| u16::from(f.code))),
            Some(Ok(_)) => {}
            other => return Answer::Refused(reason, other.map(|_| 0)),
        }
    }
}

#[tokio::test]
async fn forged_and_foreign_tokens_are_refused_with_a_reason() {
    let server = TestServer::start(config(20)).await;
    let here = TestClient::join_room(&server, "here", create()).await;
    let there = TestClient::join_room(&server, "there", create()).await;
    let code = here.welcome.room.code.to_string();
    let foreign = there.welcome.resume_token;
    let mine = here.welcome.resume_token;
    let forged = [foreign, mine ^ 1, mine ^ (1 << 40), 0x0123_4567_89ab_cdef, u64::MAX];
    for token in forged {
        match TestClient::join_with(&server.url(), hello_to("intruder", join(&code), None, 0, Some(token))).await {
            Ok(client) => panic!("token {token:#x} took seat {} (here is {})", client.id(), here.id()),
            Err(ending) => {
                assert!(
                    matches!(&ending.reason, Some(DisconnectReason::ResumeRefused { why }) if why.contains("not a player of this room")),
                    "token {token:#x}: {ending:?}"
                );
                assert_eq!(ending.close.as_ref().map(|c| c.0), Some(4025), "{ending:?}");
            }
        }
    }
    // A token means something only to the room a hello names: quick play ignores it.
    let quick =
        TestClient::join_with(&server.url(), hello_to("quick", RoomRequest::QuickPlay, None, 0, Some(u64::MAX)))
            .await
            .unwrap_or_else(|ending| panic!("quick play with a stray token refused: {ending:?}"));
    assert_ne!(quick.id(), here.id());
    server.stop().await;
}

#[tokio::test]
async fn a_reload_gets_back_into_a_locked_room_with_its_score_but_strangers_do_not() {
    let server = TestServer::start(config(20)).await;
    let mut host = TestClient::join_room(&server, "host", create()).await;
    let code = host.welcome.room.code.to_string();
    let mut guest = TestClient::join_room(&server, "guest", join(&code)).await;
    let token = guest.welcome.resume_token;
    host.send(&shared::protocol::ClientMsg::Host(shared::room::HostCmd::SetLocked { locked: true })).await;
    // Locked once a stranger is refused.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match TestClient::join_with(&server.url(), hello_to("stranger", join(&code), None, 0, None)).await {
            Err(ending) if ending.reason == Some(DisconnectReason::RoomLocked) => break,
            other => {
                assert!(tokio::time::Instant::now() < deadline, "the room never locked: {:?}", other.err());
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    // The guest reloads: a goodbye (the tab closing), then the same tab's token.
    guest.ws.close(None).await.unwrap();
    let _ = common::read_until_closed(&mut guest.ws).await;
    let back = TestClient::join_with(&server.url(), hello_to("guest", join(&code), None, 0, Some(token)))
        .await
        .unwrap_or_else(|ending| panic!("a reload into a locked room refused: {ending:?}"));
    assert_eq!(back.welcome.resume_token, token, "the same token: the score came back with it");
    server.stop().await;
}
