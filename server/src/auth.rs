//! Who may join: anonymous play by default; a server password (`--password`) for a private LAN
//! or friends' server; signed join tokens (JWT, `--join-token-secret` or `--join-token-jwks`)
//! for hosts with their own backend or lobby. Checked in the hello, before any room is touched.
//!
//! Tokens are verified with `jsonwebtoken` (pure-Rust crypto: HS256/384/512 with a shared
//! secret; RS*, PS*, ES256/384 and EdDSA from a JWKS file, keys picked by `kid`). Claims: `sub`
//! (required), `exp` (required), optional `name` (the player's display name, overriding the
//! hello's), optional `room` (the only room code the token admits), optional `nbf`, optional
//! `jti` (the token is then single-use: a second hello with it is refused unless it resumes the
//! seat the first one took), and `iss` / `aud` when the server is configured with them. A
//! server in a fleet (one that reports to a lobby) takes only tokens whose `aud` names it and
//! that carry a `jti`: the lobby's tokens for one server do not open another, and a token
//! seen once (in a log, a shared link) cannot seat a second player.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use shared::protocol::{DisconnectReason, JoinAuth, MAX_JOIN_TOKEN_BYTES, MAX_PASSWORD_BYTES};
use shared::room::RoomCode;

use crate::rate::TokenBucket;

/// Shortest HS256 secret accepted (RFC 7518 §3.2: at least the hash's size).
pub const MIN_SECRET_BYTES: usize = 32;

/// Whether `secret` is a placeholder that configuration examples ship (`REPLACE-WITH-…`,
/// `changeme`, `your-secret-here`, `example`, one character repeated) rather than a secret: a
/// length check alone let a fleet deployed as shipped run with published secrets.
pub fn is_placeholder(secret: &str) -> bool {
    const WORDS: [&str; 8] =
        ["replace", "changeme", "change-me", "change_me", "placeholder", "example", "your-", "your_"];
    let lower = secret.to_ascii_lowercase();
    let distinct: std::collections::BTreeSet<char> = lower.chars().collect();
    WORDS.iter().any(|word| lower.contains(word)) || distinct.len() < 5
}

/// Refuses a placeholder for `flag` (never repeating any of it), saying how to make a secret.
pub fn refuse_placeholder(flag: &str, secret: &str) -> Result<(), String> {
    if is_placeholder(secret) {
        return Err(format!(
            "{flag} looks like a placeholder from an example, not a secret: make one with `openssl rand -hex 32`"
        ));
    }
    Ok(())
}

/// How the server checks join tokens.
pub struct JoinTokenKeys {
    /// Keys by `kid` (`None`: the only key, used for tokens without a `kid`).
    keys: Vec<(Option<String>, DecodingKey, Algorithm)>,
    issuer: Option<String>,
    audience: Option<String>,
}

/// Longest `jti` accepted (the lobby's are 32 hex digits).
pub const MAX_JTI_BYTES: usize = 128;

impl std::fmt::Debug for JoinTokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key material.
        f.debug_struct("JoinTokenKeys")
            .field("keys", &self.keys.iter().map(|(kid, _, alg)| (kid, alg)).collect::<Vec<_>>())
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

impl JoinTokenKeys {
    /// An HS256 shared secret (the host's backend signs with the same one).
    pub fn from_secret(secret: &str, issuer: Option<String>, audience: Option<String>) -> Result<Self, String> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(format!("--join-token-secret must be at least {MIN_SECRET_BYTES} bytes"));
        }
        refuse_placeholder("--join-token-secret", secret)?;
        Ok(JoinTokenKeys {
            keys: vec![(None, DecodingKey::from_secret(secret.as_bytes()), Algorithm::HS256)],
            issuer,
            audience,
        })
    }

    /// The public keys of a JWKS document (`{"keys": [...]}`); each needs an `alg` or a key type
    /// that implies one.
    pub fn from_jwks(json: &str, issuer: Option<String>, audience: Option<String>) -> Result<Self, String> {
        let set: JwkSet = serde_json::from_str(json).map_err(|e| format!("not a JWKS document: {e}"))?;
        let mut keys = Vec::new();
        for jwk in &set.keys {
            let kid = jwk.common.key_id.clone();
            if matches!(jwk.algorithm, jsonwebtoken::jwk::AlgorithmParameters::OctetKey(_)) {
                return Err(format!("key {kid:?}: symmetric keys belong in --join-token-secret"));
            }
            let algorithm = match jwk.common.key_algorithm {
                Some(alg) => alg
                    .to_string()
                    .parse::<Algorithm>()
                    .map_err(|_| format!("key {kid:?}: algorithm {alg} cannot verify tokens"))?,
                None => match &jwk.algorithm {
                    jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => Algorithm::RS256,
                    jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(_) => Algorithm::EdDSA,
                    jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
                        jsonwebtoken::jwk::EllipticCurve::P256 => Algorithm::ES256,
                        jsonwebtoken::jwk::EllipticCurve::P384 => Algorithm::ES384,
                        ref other => return Err(format!("key {kid:?}: curve {other:?} cannot verify tokens")),
                    },
                    jsonwebtoken::jwk::AlgorithmParameters::OctetKey(_) => {
                        return Err(format!("key {kid:?}: symmetric keys belong in --join-token-secret"));
                    }
                },
            };
            let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("key {kid:?}: {e}"))?;
            keys.push((kid, key, algorithm));
        }
        if keys.is_empty() {
            return Err("the JWKS document has no keys".to_string());
        }
        Ok(JoinTokenKeys { keys, issuer, audience })
    }

    /// Checks `token` and returns its claims, or the reason it is refused. `server`: this
    /// server's name in a fleet, which the token's `aud` must name, and then a `jti` is required
    /// too (the lobby's tokens are for one server, once).
    pub fn verify(&self, token: &str, server: Option<&str>) -> Result<JoinClaims, DisconnectReason> {
        let invalid = |why: &str| DisconnectReason::TokenInvalid { why: why.to_string() };
        if token.len() > MAX_JOIN_TOKEN_BYTES {
            return Err(invalid("too long"));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid("not a JWT"))?;
        let key = match &header.kid {
            Some(kid) => self.keys.iter().find(|(k, _, _)| k.as_deref() == Some(kid.as_str())),
            None => {
                self.keys.iter().find(|(k, _, _)| k.is_none()).or(self.keys.first().filter(|_| self.keys.len() == 1))
            }
        };
        let Some((_, key, algorithm)) = key else { return Err(invalid("signed with an unknown key")) };
        // The key decides the algorithm, never the token's header ("alg" confusion).
        if header.alg != *algorithm {
            return Err(invalid("wrong algorithm for the key"));
        }
        let mut validation = Validation::new(*algorithm);
        // A configured issuer or audience must be in the token, not merely not contradicted.
        let audiences: Vec<&str> = self.audience.as_deref().into_iter().chain(server).collect();
        let mut required = vec!["exp", "sub"];
        required.extend(self.issuer.as_ref().map(|_| "iss"));
        required.extend(audiences.first().map(|_| "aud"));
        validation.set_required_spec_claims(&required);
        validation.validate_nbf = true;
        validation.leeway = 30;
        match &self.issuer {
            Some(issuer) => validation.set_issuer(&[issuer]),
            None => validation.iss = None,
        }
        // Every configured audience must be named (the library's check wants any one of them).
        validation.validate_aud = false;
        let claims = match jsonwebtoken::decode::<JoinClaims>(token, key, &validation) {
            Ok(data) => data.claims,
            Err(error) => {
                return Err(match error.kind() {
                    ErrorKind::ExpiredSignature => DisconnectReason::TokenExpired,
                    ErrorKind::ImmatureSignature => invalid("not valid yet"),
                    ErrorKind::InvalidSignature => invalid("bad signature"),
                    ErrorKind::InvalidIssuer => invalid("wrong issuer"),
                    ErrorKind::MissingRequiredClaim(claim) => invalid(&format!("no {claim} claim")),
                    _ => invalid("malformed"),
                });
            }
        };
        if let Some(missing) = audiences.iter().find(|wanted| !claims.aud.names(wanted)) {
            return Err(if server == Some(*missing) {
                invalid("it is for another server")
            } else {
                invalid("wrong audience")
            });
        }
        // (The library checks only the claims it knows for presence; jti is not one.)
        if server.is_some() && claims.jti.is_none() {
            return Err(invalid("no jti claim"));
        }
        if claims.jti.as_ref().is_some_and(|jti| jti.is_empty() || jti.len() > MAX_JTI_BYTES) {
            return Err(invalid("its jti is empty or too long"));
        }
        Ok(claims)
    }
}

/// What a verified join token says.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct JoinClaims {
    pub sub: String,
    /// The player's display name (sanitized like any name).
    #[serde(default)]
    pub name: Option<String>,
    /// The room this token admits to, and no other.
    #[serde(default)]
    pub room: Option<String>,
    pub exp: u64,
    /// The token's id: it admits once (see [`Spent`]).
    #[serde(default)]
    pub jti: Option<String>,
    /// Its issuer (scopes `sub`: two backends' "42" are two players).
    #[serde(default)]
    pub iss: Option<String>,
    /// Who the token is for: one name or several.
    #[serde(default)]
    pub aud: Audience,
}

/// A token's `aud`: absent, one name, or a list of them (RFC 7519 §4.1.3).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Audience {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl Audience {
    /// Whether `name` is one of the token's audiences.
    pub fn names(&self, name: &str) -> bool {
        match self {
            Audience::None => false,
            Audience::One(one) => one == name,
            Audience::Many(many) => many.iter().any(|one| one == name),
        }
    }
}

/// Most single-use tokens remembered at once (each until it expires; 24 bytes each).
pub const MAX_SPENT_TOKENS: usize = 262_144;

/// The `jti`s of tokens already used, each kept until its token expires (a token cannot be
/// used once it has, so nothing older needs remembering). Bounded: when full of unexpired
/// tokens, new single-use tokens wait (refused as rate-limited) rather than an old one being
/// forgotten, which would let it be used again.
#[derive(Debug, Default)]
pub struct Spent {
    /// The first 128 bits of each jti's SHA-256 (a jti may be long), and its token's `exp`.
    tokens: Mutex<HashMap<[u8; 16], u64>>,
}

fn jti_key(jti: &str) -> [u8; 16] {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(jti.as_bytes());
    digest[..16].try_into().expect("16 of 32 bytes")
}

/// What [`Spent::spend`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Spend {
    First,
    Again,
    Full,
}

impl Spent {
    /// Marks `jti` (valid until `exp`, Unix seconds) used at `now`.
    pub fn spend(&self, jti: &str, exp: u64, now: u64) -> Spend {
        let key = jti_key(jti);
        let mut tokens = self.tokens.lock().expect("spent lock");
        if tokens.contains_key(&key) {
            return Spend::Again;
        }
        if tokens.len() >= MAX_SPENT_TOKENS {
            // The verifier's leeway: a token is accepted up to 30 s past its exp.
            tokens.retain(|_, until| *until + 30 >= now);
            if tokens.len() >= MAX_SPENT_TOKENS {
                return Spend::Full;
            }
        }
        tokens.insert(key, exp);
        Spend::First
    }

    /// Forgets `jti`'s use: its first use seated nobody (the join failed), so it may try again.
    pub fn unspend(&self, jti: &str) {
        self.tokens.lock().expect("spent lock").remove(&jti_key(jti));
    }

    pub fn len(&self) -> usize {
        self.tokens.lock().expect("spent lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Who is let in, server-wide.
#[derive(Default)]
pub struct Gate {
    pub password: Option<String>,
    pub tokens: Option<JoinTokenKeys>,
    /// Tokens with a `jti` admit once even off a fleet (`--join-token-single-use`; in a fleet
    /// they always do).
    pub single_use: bool,
    /// Single-use tokens already used.
    pub spent: Spent,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password itself.
        f.debug_struct("Gate")
            .field("password", &self.password.as_ref().map(|_| "<set>"))
            .field("tokens", &self.tokens)
            .finish()
    }
}

/// What a hello that passed the gate may do.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Admission {
    /// The token's display name, replacing the hello's.
    pub name: Option<String>,
    /// The only room this player may join (from the token).
    pub room: Option<RoomCode>,
    /// The token's subject (for the logs) and issuer: together, the player.
    pub subject: Option<String>,
    pub issuer: Option<String>,
    /// The token is single-use and was used before: it may only resume the seat its first use
    /// took (a reload, a reconnect), never seat anyone new.
    pub spent_before: bool,
    /// The single-use token's id on its first use: given back ([`Spent::unspend`]) if the join
    /// then fails.
    pub first_use: Option<String>,
}

impl Gate {
    /// Anonymous play: nothing to check.
    pub fn is_open(&self) -> bool {
        self.password.is_none() && self.tokens.is_none()
    }

    /// Checks a hello's credentials. With both a password and token keys configured, either
    /// admits. The password is compared in constant time. `server`: this server's name in a
    /// fleet, which tokens must be for.
    pub fn admit(&self, auth: Option<&JoinAuth>, server: Option<&str>) -> Result<Admission, DisconnectReason> {
        if self.is_open() {
            return Ok(Admission::default());
        }
        match auth {
            Some(JoinAuth::Token(token)) if self.tokens.is_some() => {
                let claims = self.tokens.as_ref().expect("checked").verify(token, server)?;
                let single_use = self.single_use || server.is_some();
                let (spent_before, first_use) = match &claims.jti {
                    Some(jti) if single_use => match self.spent.spend(jti, claims.exp, unix_now()) {
                        Spend::First => (false, Some(jti.clone())),
                        Spend::Again => (true, None),
                        Spend::Full => return Err(DisconnectReason::JoinRateLimited),
                    },
                    _ => (false, None),
                };
                let room = match &claims.room {
                    Some(code) => Some(RoomCode::parse(code).ok_or_else(|| DisconnectReason::TokenInvalid {
                        why: "its room claim is not a room code".to_string(),
                    })?),
                    None => None,
                };
                Ok(Admission {
                    name: claims.name,
                    room,
                    subject: Some(claims.sub),
                    issuer: claims.iss,
                    spent_before,
                    first_use,
                })
            }
            Some(JoinAuth::Password(given)) if self.password.is_some() => {
                let expected = self.password.as_deref().expect("checked");
                if given.len() <= MAX_PASSWORD_BYTES && constant_time_eq(given.as_bytes(), expected.as_bytes()) {
                    Ok(Admission::default())
                } else {
                    Err(DisconnectReason::WrongPassword)
                }
            }
            _ if self.password.is_some() => Err(DisconnectReason::PasswordRequired),
            _ => Err(DisconnectReason::TokenRequired),
        }
    }
}

/// Equal bytes, in time that depends only on the lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Joins (hellos) per address: a steady `per_minute` with a burst of as many, and failed
/// credentials counted apart (10 a minute, burst 10) so guessing a password is slow. Loopback
/// is exempt from the join rate (local tools, a proxy on this machine), not from failures.
#[derive(Debug)]
pub struct JoinLimits {
    per_minute: u32,
    joins: Mutex<HashMap<IpAddr, TokenBucket>>,
    failures: Mutex<HashMap<IpAddr, TokenBucket>>,
}

/// Failed credentials per address and minute (and the burst).
pub const AUTH_FAILURES_PER_MINUTE: f64 = 10.0;
/// Addresses remembered before idle ones are forgotten.
const MAX_TRACKED: usize = 8192;

impl JoinLimits {
    pub fn new(per_minute: u32) -> JoinLimits {
        JoinLimits { per_minute, joins: Mutex::default(), failures: Mutex::default() }
    }

    /// Takes a join from `ip`'s allowance (`ip` already reduced to what limits count): false
    /// when it joined too often or failed credentials too often.
    pub fn try_join(&self, ip: IpAddr) -> bool {
        if self.exhausted(&self.failures, ip) {
            return false;
        }
        if self.per_minute == 0 || ip.is_loopback() {
            return true;
        }
        let rate = f64::from(self.per_minute);
        take(&self.joins, ip, rate / 60.0, rate)
    }

    /// Whether `ip` failed credentials too often lately.
    pub fn locked_out(&self, ip: IpAddr) -> bool {
        self.exhausted(&self.failures, ip)
    }

    /// Counts a failed password or token from `ip`.
    pub fn failed(&self, ip: IpAddr) {
        take(&self.failures, ip, AUTH_FAILURES_PER_MINUTE / 60.0, AUTH_FAILURES_PER_MINUTE);
    }

    fn exhausted(&self, buckets: &Mutex<HashMap<IpAddr, TokenBucket>>, ip: IpAddr) -> bool {
        let buckets = buckets.lock().expect("limits lock");
        buckets.get(&ip).is_some_and(|bucket| !bucket.clone().try_take())
    }
}

fn take(buckets: &Mutex<HashMap<IpAddr, TokenBucket>>, ip: IpAddr, rate: f64, burst: f64) -> bool {
    let mut buckets = buckets.lock().expect("limits lock");
    if buckets.len() >= MAX_TRACKED {
        buckets.retain(|_, bucket| !bucket.is_full());
        // Still full (thousands of addresses active at once, or one attacker rotating through
        // many prefixes): forget half, so the map stays bounded; the forgotten start afresh.
        if buckets.len() >= MAX_TRACKED {
            let forget: Vec<IpAddr> = buckets.keys().take(MAX_TRACKED / 2).copied().collect();
            for ip in forget {
                buckets.remove(&ip);
            }
        }
    }
    buckets.entry(ip).or_insert_with(|| TokenBucket::new(rate, burst)).try_take()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SECURITY.md's "tracked addresses": a host rotating through addresses cannot grow the
    /// limits' memory past `MAX_TRACKED`; idle addresses go first, and what is forgotten starts
    /// afresh (a lockout in place stays while the map has idle ones to drop).
    #[test]
    fn tracked_addresses_stay_bounded_under_rotation() {
        let limits = JoinLimits::new(60);
        let guesser: IpAddr = "198.51.100.1".parse().unwrap();
        for _ in 0..AUTH_FAILURES_PER_MINUTE as u32 {
            limits.failed(guesser);
        }
        assert!(limits.locked_out(guesser));
        // Idle addresses (full buckets: nothing taken yet) fill the map to the brim...
        {
            let mut failures = limits.failures.lock().unwrap();
            for i in 0..(MAX_TRACKED as u32 - 1) {
                let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
                failures.insert(ip, TokenBucket::new(AUTH_FAILURES_PER_MINUTE / 60.0, AUTH_FAILURES_PER_MINUTE));
            }
            assert_eq!(failures.len(), MAX_TRACKED);
        }
        // ...and the next address makes them go, not the guesser's lockout.
        limits.failed("203.0.113.9".parse().unwrap());
        assert!(limits.locked_out(guesser), "the lockout was forgotten while idle addresses could go");
        assert_eq!(limits.failures.lock().unwrap().len(), 2);
        // An attacker rotating through 100,000 addresses, each failing once: never more than
        // MAX_TRACKED remembered.
        for i in 0..100_000u32 {
            limits.failed(IpAddr::from(std::net::Ipv4Addr::from(0xc000_0000 + i)));
            assert!(limits.failures.lock().unwrap().len() <= MAX_TRACKED);
        }
    }

    #[test]
    fn placeholders_are_told_from_secrets() {
        for placeholder in [
            "REPLACE-WITH-A-RANDOM-KEY",
            "REPLACE-WITH-A-RANDOM-SECRET-OF-32-BYTES-OR-MORE",
            "changeme-changeme-changeme-changeme",
            "your-secret-here-at-least-32-bytes!!",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "01010101010101010101010101010101",
        ] {
            assert!(is_placeholder(placeholder), "{placeholder}");
            assert!(refuse_placeholder("--x", placeholder).unwrap_err().contains("openssl rand"), "{placeholder}");
        }
        for secret in [
            "4f9c2e81d7a35b60c1e8f2a9d4b7c3e0",
            "a-shared-secret-of-at-least-32-bytes!!",
            "fleet-test-lobby-key-0123456789",
        ] {
            assert!(!is_placeholder(secret), "{secret}");
        }
    }

    fn hs_token(secret: &str, claims: serde_json::Value) -> String {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    fn now() -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
    }

    const SECRET: &str = "a-test-secret-that-is-long-enough-0123456789";

    #[test]
    fn tokens_admit_only_what_they_say() {
        let gate = Gate {
            password: None,
            tokens: Some(JoinTokenKeys::from_secret(SECRET, None, None).unwrap()),
            ..Gate::default()
        };
        let good =
            hs_token(SECRET, serde_json::json!({ "sub": "u1", "name": "Ana", "room": "ABCD", "exp": now() + 60 }));
        let admission = gate.admit(Some(&JoinAuth::Token(good)), None).unwrap();
        assert_eq!(admission.name.as_deref(), Some("Ana"));
        assert_eq!(admission.room, RoomCode::parse("ABCD"));
        let expired = hs_token(SECRET, serde_json::json!({ "sub": "u1", "exp": now() - 120 }));
        assert_eq!(gate.admit(Some(&JoinAuth::Token(expired)), None), Err(DisconnectReason::TokenExpired));
        let forged = hs_token(
            "another-secret-that-is-long-enough-0123456789",
            serde_json::json!({ "sub": "u1", "exp": now() + 60 }),
        );
        assert_eq!(
            gate.admit(Some(&JoinAuth::Token(forged)), None),
            Err(DisconnectReason::TokenInvalid { why: "bad signature".into() })
        );
        let no_sub = hs_token(SECRET, serde_json::json!({ "exp": now() + 60 }));
        assert!(matches!(gate.admit(Some(&JoinAuth::Token(no_sub)), None), Err(DisconnectReason::TokenInvalid { .. })));
        assert!(matches!(
            gate.admit(Some(&JoinAuth::Token("garbage".into())), None),
            Err(DisconnectReason::TokenInvalid { .. })
        ));
        assert_eq!(gate.admit(None, None), Err(DisconnectReason::TokenRequired));
        assert_eq!(gate.admit(Some(&JoinAuth::Password("x".into())), None), Err(DisconnectReason::TokenRequired));
        // "alg": "none" and HS-with-another-alg are refused whatever the payload says.
        let unsigned = format!(
            "{}.{}.",
            base64url(br#"{"alg":"none","typ":"JWT"}"#),
            base64url(format!(r#"{{"sub":"u","exp":{}}}"#, now() + 60).as_bytes())
        );
        assert!(matches!(
            gate.admit(Some(&JoinAuth::Token(unsigned)), None),
            Err(DisconnectReason::TokenInvalid { .. })
        ));
    }

    fn base64url(bytes: &[u8]) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
            for i in 0..=chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            }
        }
        out
    }

    #[test]
    fn a_configured_issuer_and_audience_must_be_in_the_token() {
        let keys = JoinTokenKeys::from_secret(SECRET, Some("lobby".into()), Some("arena".into())).unwrap();
        let gate = Gate { password: None, tokens: Some(keys), ..Gate::default() };
        let token = |claims| Some(JoinAuth::Token(hs_token(SECRET, claims)));
        let exp = now() + 60;
        assert!(
            gate.admit(
                token(serde_json::json!({ "sub": "u", "iss": "lobby", "aud": "arena", "exp": exp })).as_ref(),
                None
            )
            .is_ok()
        );
        for claims in [
            serde_json::json!({ "sub": "u", "aud": "arena", "exp": exp }),
            serde_json::json!({ "sub": "u", "iss": "lobby", "exp": exp }),
            serde_json::json!({ "sub": "u", "iss": "lobby", "aud": "elsewhere", "exp": exp }),
        ] {
            let refused = gate.admit(token(claims.clone()).as_ref(), None);
            assert!(matches!(refused, Err(DisconnectReason::TokenInvalid { .. })), "{claims}: {refused:?}");
        }
    }

    /// SECURITY.md's "lobby tokens": a fleet server takes tokens that name it (beside the
    /// configured audience) and carry a jti, once; the second use is told apart.
    #[test]
    fn a_fleet_server_takes_tokens_for_it_once() {
        let keys = JoinTokenKeys::from_secret(SECRET, None, Some("arena".into())).unwrap();
        let gate = Gate { password: None, tokens: Some(keys), ..Gate::default() };
        let token = |claims| Some(JoinAuth::Token(hs_token(SECRET, claims)));
        let exp = now() + 60;
        let good = token(serde_json::json!({ "sub": "u", "aud": ["arena", "gs-1"], "jti": "j1", "exp": exp }));
        let first = gate.admit(good.as_ref(), Some("gs-1")).unwrap();
        assert!(!first.spent_before);
        assert!(gate.admit(good.as_ref(), Some("gs-1")).unwrap().spent_before, "the second use is known");
        for (claims, why) in [
            (serde_json::json!({ "sub": "u", "aud": ["arena", "gs-2"], "jti": "j2", "exp": exp }), "another server"),
            (serde_json::json!({ "sub": "u", "aud": "gs-1", "jti": "j3", "exp": exp }), "wrong audience"),
            (serde_json::json!({ "sub": "u", "aud": ["arena", "gs-1"], "exp": exp }), "no jti"),
            (serde_json::json!({ "sub": "u", "aud": ["arena", "gs-1"], "jti": "", "exp": exp }), "empty"),
        ] {
            match gate.admit(token(claims.clone()).as_ref(), Some("gs-1")) {
                Err(DisconnectReason::TokenInvalid { why: said }) => assert!(said.contains(why), "{claims}: {said}"),
                other => panic!("{claims}: {other:?}"),
            }
        }
        // Off a fleet, a jti makes a token single-use only when asked (identity providers put a
        // jti in every token, often valid for hours).
        let own = token(serde_json::json!({ "sub": "u", "aud": "arena", "jti": "j4", "exp": exp }));
        assert!(!gate.admit(own.as_ref(), None).unwrap().spent_before);
        assert!(!gate.admit(own.as_ref(), None).unwrap().spent_before);
        let strict = Gate { single_use: true, ..gate };
        assert!(!strict.admit(own.as_ref(), None).unwrap().spent_before);
        assert!(strict.admit(own.as_ref(), None).unwrap().spent_before);
        // A first use whose join failed is given back.
        strict.spent.unspend("j4");
        assert!(!strict.admit(own.as_ref(), None).unwrap().spent_before);
    }

    /// Spent tokens are remembered until they expire, never forgotten early: when the ledger is
    /// full of live ones, new single-use tokens wait.
    #[test]
    fn spent_tokens_stay_bounded_without_forgetting_live_ones() {
        let spent = Spent::default();
        let now = 1_000_000;
        for index in 0..MAX_SPENT_TOKENS {
            assert_eq!(spent.spend(&format!("j{index}"), now + 60, now), Spend::First);
        }
        assert_eq!(spent.spend("j7", now + 60, now), Spend::Again);
        assert_eq!(spent.spend("new", now + 60, now), Spend::Full, "a live token is never forgotten");
        assert_eq!(spent.spend("new", now + 60, now + 91), Spend::First, "expired ones make room");
        assert_eq!(spent.len(), 1);
    }

    #[test]
    fn jwks_keys_that_cannot_verify_are_refused_at_start() {
        let oct = r#"{"keys":[{"kty":"oct","alg":"HS256","k":"c2hvcnQ"}]}"#;
        assert!(JoinTokenKeys::from_jwks(oct, None, None).unwrap_err().contains("--join-token-secret"));
        assert!(JoinTokenKeys::from_jwks(r#"{"keys":[]}"#, None, None).is_err());
        assert!(JoinTokenKeys::from_jwks("not json", None, None).is_err());
    }

    #[test]
    fn passwords_compare_whole() {
        let gate = Gate { password: Some("hunter22".into()), ..Gate::default() };
        assert_eq!(gate.admit(None, None), Err(DisconnectReason::PasswordRequired));
        assert_eq!(gate.admit(Some(&JoinAuth::Password("hunter2".into())), None), Err(DisconnectReason::WrongPassword));
        assert_eq!(
            gate.admit(Some(&JoinAuth::Password("hunter222".into())), None),
            Err(DisconnectReason::WrongPassword)
        );
        assert!(gate.admit(Some(&JoinAuth::Password("hunter22".into())), None).is_ok());
        assert!(Gate::default().admit(None, None).is_ok(), "anonymous play by default");
    }

    #[test]
    fn secrets_too_short_are_refused() {
        assert!(JoinTokenKeys::from_secret("short", None, None).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn failures_lock_out_an_address_for_a_while() {
        let limits = JoinLimits::new(60);
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        for _ in 0..10 {
            assert!(limits.try_join(ip));
            limits.failed(ip);
        }
        assert!(!limits.try_join(ip), "ten failures in a burst lock the address out");
        assert!(limits.try_join("10.0.0.10".parse().unwrap()), "others are not affected");
        tokio::time::advance(std::time::Duration::from_secs(7)).await;
        assert!(limits.try_join(ip), "one more try after six seconds");
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        assert!((0..500).all(|_| limits.try_join(local)), "loopback is exempt from the join rate");
    }
}
