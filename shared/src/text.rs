//! Peer-provided text made safe to show: names and chat trimmed, control characters and bidi
//! overrides dropped, cut on a character boundary.

/// Longest player name in bytes (UTF-8), after trimming.
pub const MAX_NAME_BYTES: usize = 16;
/// Longest chat line in bytes (UTF-8), after sanitizing.
pub const MAX_CHAT_BYTES: usize = 200;

/// Trims a name, drops control characters and cuts it to [`MAX_NAME_BYTES`]; empty names become
/// `"player"`.
pub fn sanitize_name(raw: &str) -> String {
    let cleaned = truncate_utf8(&strip_controls(raw.trim()), MAX_NAME_BYTES);
    let cleaned = cleaned.trim();
    if cleaned.is_empty() { "player".to_string() } else { cleaned.to_string() }
}

/// Drops control characters (including newlines and bidi overrides), trims, and cuts to
/// [`MAX_CHAT_BYTES`]. Returns `None` when nothing is left.
pub fn sanitize_chat(raw: &str) -> Option<String> {
    let cleaned = strip_controls(raw);
    let cleaned = truncate_utf8(cleaned.trim(), MAX_CHAT_BYTES);
    let cleaned = cleaned.trim();
    (!cleaned.is_empty()).then(|| cleaned.to_string())
}

/// Drops control characters, bidi overrides and isolates (peer text is shown as plain text).
pub fn strip_controls(raw: &str) -> String {
    raw.chars().filter(|c| !c.is_control() && !matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')).collect()
}

/// The longest prefix of at most `max_bytes` that ends on a character boundary.
pub fn truncate_utf8(text: &str, max_bytes: usize) -> String {
    let mut end = text.len().min(max_bytes);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}
