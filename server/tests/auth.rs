//! Who may join, end to end over real WebSockets: a server password (missing, wrong, right,
//! with failed guesses limited per address) and signed join tokens, with a shared secret and
//! with a JWKS file of public keys (EdDSA): missing, forged, expired, for another room, and
//! valid ones, whose name and room are what the player gets. Each refusal has its own close
//! code. Anonymous play stays the default (every other test joins without credentials).

mod common;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use common::{TestClient, TestServer, hello_auth};
use server::ServerConfig;
use server::auth::{Gate, JoinTokenKeys};
use shared::protocol::{DisconnectReason, JoinAuth};
use shared::room::{RoomRequest, RoomSettings};

/// Joins with `auth`; the refusal's reason and close code, or `None` when welcomed.
async fn try_join(
    server: &TestServer,
    room: RoomRequest,
    auth: Option<JoinAuth>,
) -> Result<TestClient, (Option<DisconnectReason>, Option<u16>)> {
    TestClient::join_with(&server.url(), hello_auth("joe", room, auth))
        .await
        .map_err(|ending| (ending.reason, ending.close.map(|c| c.0)))
}

fn refused(
    result: Result<TestClient, (Option<DisconnectReason>, Option<u16>)>,
) -> (Option<DisconnectReason>, Option<u16>) {
    match result {
        Ok(client) => panic!("admitted as {:?}", client.welcome.player_id),
        Err(ending) => ending,
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_server_asks_refuses_wrong_ones_and_limits_guessing() {
    let gate = Gate { password: Some("correct horse".into()), ..Gate::default() };
    let server = TestServer::start(ServerConfig { gate: Arc::new(gate), ..ServerConfig::default() }).await;
    let password = |p: &str| Some(JoinAuth::Password(p.into()));
    assert_eq!(
        refused(try_join(&server, RoomRequest::QuickPlay, None).await),
        (Some(DisconnectReason::PasswordRequired), Some(4018))
    );
    assert_eq!(
        refused(try_join(&server, RoomRequest::QuickPlay, password("correct")).await),
        (Some(DisconnectReason::WrongPassword), Some(4019))
    );
    // Rooms cannot be created anonymously through the API either.
    let (status, _, body) = common::http(&server, "POST", "/api/rooms", Some("{}")).await;
    assert_eq!(status, 403, "{body}");
    let welcomed =
        try_join(&server, RoomRequest::QuickPlay, password("correct horse")).await.expect("the right password");
    assert_eq!(welcomed.welcome.room.code, server.rooms.main_code().unwrap());
    // Guessing: after ten wrong passwords (one above), the address waits, even with the right one.
    for guess in 0..9 {
        let (reason, _) = refused(try_join(&server, RoomRequest::QuickPlay, password(&format!("guess {guess}"))).await);
        assert_eq!(reason, Some(DisconnectReason::WrongPassword), "guess {guess}");
    }
    assert_eq!(
        refused(try_join(&server, RoomRequest::QuickPlay, password("correct horse")).await),
        (Some(DisconnectReason::JoinRateLimited), Some(4023))
    );
    server.stop().await;
}

const SECRET: &str = "a-shared-secret-of-at-least-32-bytes!!";

fn hs256(claims: serde_json::Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_tokens_admit_their_subject_to_their_room_only() {
    let keys = JoinTokenKeys::from_secret(SECRET, Some("lobby.example".into()), None).unwrap();
    let gate = Gate { password: None, tokens: Some(keys), ..Gate::default() };
    let server = TestServer::start(ServerConfig { gate: Arc::new(gate), ..ServerConfig::default() }).await;
    let token = |claims: serde_json::Value| Some(JoinAuth::Token(hs256(claims)));
    // A room to send the token holder to.
    let room = server.rooms.create(RoomSettings::default(), None).expect("a room").0.public.code;
    let other = server.rooms.main_code().unwrap();

    assert_eq!(
        refused(try_join(&server, RoomRequest::QuickPlay, None).await),
        (Some(DisconnectReason::TokenRequired), Some(4020))
    );
    let good = serde_json::json!({ "sub": "user-7", "name": "Ana from lobby", "room": room.to_string(), "iss": "lobby.example", "exp": now() + 60 });
    // Quick play with a room token lands in the token's room, under the token's name.
    let client = try_join(&server, RoomRequest::QuickPlay, token(good.clone())).await.expect("a valid token");
    assert_eq!(client.welcome.room.code, room);
    let me = client.welcome.roster.iter().find(|p| p.id == client.welcome.player_id).expect("in the roster");
    assert_eq!(me.name, "Ana from lobby");
    // The same token for another room, or to create one: refused.
    let (reason, code) =
        refused(try_join(&server, RoomRequest::Join { code: other.to_string() }, token(good.clone())).await);
    assert!(
        matches!(reason, Some(DisconnectReason::TokenInvalid { ref why }) if why.contains(&room.to_string())),
        "{reason:?}"
    );
    assert_eq!(code, Some(4021));
    let (reason, _) = refused(try_join(&server, RoomRequest::Create(RoomSettings::default()), token(good)).await);
    assert!(matches!(reason, Some(DisconnectReason::TokenInvalid { .. })), "{reason:?}");
    // Expired (past the leeway), forged, wrong issuer, garbage.
    let expired = serde_json::json!({ "sub": "u", "iss": "lobby.example", "exp": now() - 120 });
    assert_eq!(
        refused(try_join(&server, RoomRequest::QuickPlay, token(expired)).await),
        (Some(DisconnectReason::TokenExpired), Some(4022))
    );
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({ "sub": "u", "iss": "lobby.example", "exp": now() + 60 }),
        &jsonwebtoken::EncodingKey::from_secret(b"not-the-servers-secret-not-the-servers"),
    )
    .unwrap();
    let (reason, _) = refused(try_join(&server, RoomRequest::QuickPlay, Some(JoinAuth::Token(forged))).await);
    assert_eq!(reason, Some(DisconnectReason::TokenInvalid { why: "bad signature".into() }));
    let wrong_issuer = serde_json::json!({ "sub": "u", "iss": "elsewhere", "exp": now() + 60 });
    let (reason, _) = refused(try_join(&server, RoomRequest::QuickPlay, token(wrong_issuer)).await);
    assert_eq!(reason, Some(DisconnectReason::TokenInvalid { why: "wrong issuer".into() }));
    // A token without a room goes wherever the hello asks.
    let anywhere = serde_json::json!({ "sub": "u2", "iss": "lobby.example", "exp": now() + 60 });
    let client = try_join(&server, RoomRequest::Join { code: other.to_string() }, token(anywhere))
        .await
        .expect("a roomless token");
    assert_eq!(client.welcome.room.code, other);
    server.stop().await;
}

/// The review's finding: behind an ingress the servers were not told to trust, every player
/// shared the ingress's address, so ten bad tokens locked a whole GameServer out. Trusted by
/// network (`--trusted-proxy 127.0.0.0/8`, as the manifests trust the cluster's pod range), the
/// lockout meets the guesser only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_an_ingress_trusted_by_network_bad_tokens_lock_out_the_guesser_only() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let keys = JoinTokenKeys::from_secret(SECRET, None, None).unwrap();
    let gate = Gate { password: None, tokens: Some(keys), ..Gate::default() };
    let config = ServerConfig {
        gate: Arc::new(gate),
        trusted_proxies: vec![server::config::parse_proxy_net("127.0.0.0/8").unwrap()],
        ..ServerConfig::default()
    };
    let server = TestServer::start(config).await;
    let via_ingress = |player: &str| {
        let mut request = server.url().into_client_request().unwrap();
        request.headers_mut().insert("x-forwarded-for", player.parse().unwrap());
        request
    };
    let good = || Some(JoinAuth::Token(hs256(serde_json::json!({ "sub": "u", "exp": now() + 60 }))));
    let guesser = "203.0.113.1";
    let mut limited_after = None;
    for attempt in 1..=20 {
        let hello = hello_auth("guess", RoomRequest::QuickPlay, Some(JoinAuth::Token(format!("forged.{attempt}.x"))));
        let ending = TestClient::join_with(via_ingress(guesser), hello).await.err().expect("a forged token is refused");
        if ending.reason == Some(DisconnectReason::JoinRateLimited) {
            limited_after = Some(attempt);
            break;
        }
        assert!(matches!(ending.reason, Some(DisconnectReason::TokenInvalid { .. })), "{ending:?}");
    }
    assert!(limited_after.is_some_and(|n| n <= 11), "the guesser was never limited ({limited_after:?})");
    // The guesser waits, even with a good token...
    let ending = TestClient::join_with(via_ingress(guesser), hello_auth("g", RoomRequest::QuickPlay, good()))
        .await
        .err()
        .expect("the guesser is still limited");
    assert_eq!(ending.reason, Some(DisconnectReason::JoinRateLimited));
    // ...and another player through the same ingress joins.
    let player = TestClient::join_with(via_ingress("203.0.113.2"), hello_auth("ana", RoomRequest::QuickPlay, good()))
        .await
        .map_err(|ending| format!("{ending:?}"))
        .expect("another player behind the same ingress joins");
    assert_eq!(player.welcome.room.code, server.rooms.main_code().unwrap());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_tokens_from_a_jwks_file_are_checked_with_the_key_their_kid_names() {
    use base64_url as b64;
    let signer = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    let public = signer.verifying_key().to_bytes();
    let jwks = serde_json::json!({ "keys": [
        { "kty": "OKP", "crv": "Ed25519", "kid": "lobby-2026", "alg": "EdDSA", "use": "sig", "x": b64::encode(&public) },
    ]});
    let keys = JoinTokenKeys::from_jwks(&jwks.to_string(), None, None).expect("a valid JWKS");
    let server = TestServer::start(ServerConfig {
        gate: Arc::new(Gate { password: None, tokens: Some(keys), ..Gate::default() }),
        ..ServerConfig::default()
    })
    .await;
    // PKCS#8 v1 for an Ed25519 seed: a fixed prefix, then the 32 bytes.
    let mut pkcs8 =
        vec![0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
    pkcs8.extend_from_slice(&[7u8; 32]);
    let sign = |kid: &str| {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid = Some(kid.to_string());
        let claims = serde_json::json!({ "sub": "u", "exp": now() + 60 });
        jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_ed_der(&pkcs8)).unwrap()
    };
    try_join(&server, RoomRequest::QuickPlay, Some(JoinAuth::Token(sign("lobby-2026"))))
        .await
        .expect("signed by the JWKS key");
    let (reason, code) =
        refused(try_join(&server, RoomRequest::QuickPlay, Some(JoinAuth::Token(sign("retired")))).await);
    assert_eq!(
        (reason, code),
        (Some(DisconnectReason::TokenInvalid { why: "signed with an unknown key".into() }), Some(4021))
    );
    // An HS256 token (the "alg confusion" attack: the public key used as an HMAC secret) is refused.
    let confused = jsonwebtoken::encode(
        &{
            let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
            header.kid = Some("lobby-2026".into());
            header
        },
        &serde_json::json!({ "sub": "u", "exp": now() + 60 }),
        &jsonwebtoken::EncodingKey::from_secret(&public),
    )
    .unwrap();
    let (reason, _) = refused(try_join(&server, RoomRequest::QuickPlay, Some(JoinAuth::Token(confused))).await);
    assert_eq!(reason, Some(DisconnectReason::TokenInvalid { why: "wrong algorithm for the key".into() }));
    server.stop().await;
}

/// Base64url without padding (JWK's encoding), small enough to keep here.
mod base64_url {
    pub fn encode(bytes: &[u8]) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
            for i in 0..=chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }
}
