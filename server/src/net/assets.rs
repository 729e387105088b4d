//! The browser client's static files, embedded at build time by `build.rs`.

/// One embedded file.
pub struct WebAsset {
    /// URL path, starting with `/`.
    pub path: &'static str,
    pub mime: &'static str,
    pub raw: &'static [u8],
    /// Gzip-compressed body, when compression helps.
    pub gzip: Option<&'static [u8]>,
}

include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));

/// Finds the file for a URL path (`/` means `/index.html`).
pub fn find(path: &str) -> Option<&'static WebAsset> {
    let path = if path == "/" { "/index.html" } else { path };
    WEB_ASSETS.iter().find(|asset| asset.path == path)
}

/// True when the embedded files are the real client rather than the placeholder page.
pub fn has_client() -> bool {
    WEB_SOURCE == "dist"
}
