//! Where the page is and what it does when it loads: `/` is the lobby, `/r/CODE` is a room's
//! invite link, and `?name=NAME&autojoin=1` skips the lobby. Plain Rust: the browser shell reads
//! `location` and storage and passes the pieces in, so every rule here is tested natively.

use shared::room::RoomCode;

use crate::lobby::JoinTarget;

/// `path` (absolute, like `/api/rooms` or `/r/ABCD`) under `base` (`/`, or `/gs/NAME/` when a
/// proxy routes this server by a path prefix).
pub fn rebase(base: &str, path: &str) -> String {
    format!("{}{}", base, path.trim_start_matches('/'))
}

/// The page's path as the routes know it: `base` taken off (`/gs/NAME/r/ABCD` → `/r/ABCD`).
pub fn local_path(base: &str, path: &str) -> String {
    if base == "/" {
        return path.to_string();
    }
    match path.strip_prefix(base) {
        Some(rest) => format!("/{rest}"),
        None if path == base.trim_end_matches('/') => "/".to_string(),
        None => path.to_string(),
    }
}

/// A `<meta name="arena-base">` value, when it is a plain absolute path ending in `/`.
pub fn parse_base(meta: Option<&str>) -> String {
    match meta {
        Some(base)
            if base.starts_with('/')
                && base.ends_with('/')
                && !base.contains("//")
                && base.bytes().all(|b| b.is_ascii_alphanumeric() || b"/-._~".contains(&b)) =>
        {
            base.to_string()
        }
        _ => "/".to_string(),
    }
}

thread_local! {
    static BASE: String = parse_base(
        web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.query_selector("meta[name=arena-base]").ok().flatten())
            .and_then(|meta| meta.get_attribute("content"))
            .as_deref(),
    );
}

/// Where this server's pages live (the server says so in the page; `/` unless proxied by path).
pub fn base() -> String {
    BASE.with(Clone::clone)
}

/// `path` under this page's [`base`].
pub fn at(path: &str) -> String {
    rebase(&base(), path)
}

/// The room code in an invite-link path (`/r/abcd`, `/r/ABCD/`), if the path is one and the code
/// is valid. Anything else is the lobby.
pub fn room_in_path(path: &str) -> Option<RoomCode> {
    let rest = path.strip_prefix("/r/")?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    // `RoomCode::parse` forgives surrounding spaces in typed codes; a path has none to forgive.
    if rest.len() != shared::room::ROOM_CODE_LEN {
        return None;
    }
    RoomCode::parse(rest)
}

/// The path that brings a reload (or a friend) back into this room.
pub fn room_path(code: RoomCode) -> String {
    format!("/r/{code}")
}

/// The invite link shown in the room: the page's origin plus [`room_path`].
pub fn invite_link(origin: &str, code: RoomCode) -> String {
    format!("{}{}", origin.trim_end_matches('/'), room_path(code))
}

/// `autojoin` asks to skip the lobby when present, unless it plainly says no (`0`, `false`,
/// `no`), which the old link (`?autojoin=1`) never did.
pub fn autojoin_param(value: Option<&str>) -> bool {
    value.is_some_and(|value| !matches!(value.trim().to_ascii_lowercase().as_str(), "0" | "false" | "no"))
}

/// What the page does once it has loaded.
#[derive(Clone, Debug, PartialEq)]
pub enum Launch {
    /// Show the lobby; `invite` is the room of an invite link opened by someone without a name
    /// yet (the play button then joins it).
    Lobby { invite: Option<RoomCode> },
    /// Go straight into a room.
    Play(JoinTarget),
}

/// Decides the first screen. An invite link goes straight in when the browser already knows the
/// player's name (it has played before), or when the link says `autojoin`; a bare `autojoin`
/// quick-plays, as the documented LAN-party link always did.
pub fn launch(path_room: Option<RoomCode>, autojoin: bool, name_remembered: bool) -> Launch {
    match path_room {
        Some(code) if autojoin || name_remembered => Launch::Play(JoinTarget::Join(code)),
        Some(code) => Launch::Lobby { invite: Some(code) },
        None if autojoin => Launch::Play(JoinTarget::QuickPlay),
        None => Launch::Lobby { invite: None },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> RoomCode {
        RoomCode::parse(text).expect("valid code")
    }

    #[test]
    fn paths_move_under_a_proxy_prefix() {
        assert_eq!(rebase("/", "/api/rooms"), "/api/rooms");
        assert_eq!(rebase("/gs/pod-1/", "/api/rooms"), "/gs/pod-1/api/rooms");
        assert_eq!(rebase("/gs/pod-1/", "/"), "/gs/pod-1/");
        assert_eq!(local_path("/gs/pod-1/", "/gs/pod-1/r/ABCD"), "/r/ABCD");
        assert_eq!(local_path("/gs/pod-1/", "/gs/pod-1"), "/");
        assert_eq!(local_path("/", "/r/ABCD"), "/r/ABCD");
        assert_eq!(parse_base(Some("/gs/pod-1/")), "/gs/pod-1/");
        for bad in ["gs/", "/gs", "//evil.example/", "/a b/", "/\"><script>/"] {
            assert_eq!(parse_base(Some(bad)), "/", "{bad}");
        }
        assert_eq!(parse_base(None), "/");
    }

    #[test]
    fn invite_paths_give_their_room_code() {
        assert_eq!(room_in_path("/r/abcd"), Some(code("ABCD")));
        assert_eq!(room_in_path("/r/ABCD/"), Some(code("ABCD")));
        for not_a_room in
            ["/", "", "/r/", "/r/AB0D", "/r/ABC", "/r/ABCDE", "/r/ABCD/x", "/x/ABCD", "/r/%20ABC", "r/ABCD"]
        {
            assert_eq!(room_in_path(not_a_room), None, "{not_a_room:?}");
        }
    }

    #[test]
    fn links_point_back_at_the_room() {
        assert_eq!(room_path(code("wxyz")), "/r/WXYZ");
        assert_eq!(invite_link("http://10.0.0.2:8080", code("ABCD")), "http://10.0.0.2:8080/r/ABCD");
        assert_eq!(invite_link("https://arena.example/", code("ABCD")), "https://arena.example/r/ABCD");
        assert_eq!(room_in_path(&room_path(code("QRST"))), Some(code("QRST")));
    }

    #[test]
    fn autojoin_is_any_value_but_a_plain_no() {
        assert!(autojoin_param(Some("1")));
        assert!(autojoin_param(Some("")));
        assert!(autojoin_param(Some("true")));
        assert!(!autojoin_param(None));
        assert!(!autojoin_param(Some("0")));
        assert!(!autojoin_param(Some("False")));
    }

    #[test]
    fn the_first_screen_follows_the_link_and_the_remembered_name() {
        let room = code("ABCD");
        assert_eq!(launch(None, false, true), Launch::Lobby { invite: None });
        assert_eq!(launch(None, true, false), Launch::Play(JoinTarget::QuickPlay));
        assert_eq!(launch(Some(room), false, false), Launch::Lobby { invite: Some(room) });
        assert_eq!(launch(Some(room), false, true), Launch::Play(JoinTarget::Join(room)));
        assert_eq!(launch(Some(room), true, false), Launch::Play(JoinTarget::Join(room)));
    }
}
