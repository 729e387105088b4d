//! Embeds the browser client in the server binary.
//!
//! Reads `dist/` at the workspace root (made by `cargo xtask build-web`) when it has an
//! `index.html`, and otherwise `assets/web-placeholder/`, so the server always compiles, even in
//! a fresh clone. Each file is stored raw and, when that saves space, gzip-compressed at build
//! time, so serving compressed costs nothing at run time.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest.parent().expect("server/ has a parent").to_path_buf();
    let dist = root.join("dist");
    let placeholder = root.join("assets/web-placeholder");
    let source = if dist.join("index.html").is_file() { dist.clone() } else { placeholder.clone() };
    // Re-run when dist/ appears or changes (cargo scans directories recursively).
    println!("cargo:rerun-if-changed={}", placeholder.display());
    if dist.is_dir() {
        println!("cargo:rerun-if-changed={}", dist.display());
    } else {
        println!("cargo:rerun-if-changed={}", root.display());
    }

    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    let mut files = Vec::new();
    collect(&source, &source, &mut files);
    files.sort();
    let mut code = String::from("pub static WEB_ASSETS: &[WebAsset] = &[\n");
    for (index, (relative, path)) in files.iter().enumerate() {
        let raw = std::fs::read(path).expect("read web asset");
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(&raw).expect("gzip in memory");
        let gzipped = encoder.finish().expect("gzip in memory");
        let gzip = if gzipped.len() * 10 < raw.len() * 9 {
            let gz_path = out_dir.join(format!("asset{index}.gz"));
            std::fs::write(&gz_path, &gzipped).expect("write gzip asset");
            format!("Some(include_bytes!({:?}))", gz_path.display().to_string())
        } else {
            "None".to_string()
        };
        writeln!(
            code,
            "    WebAsset {{ path: {:?}, mime: {:?}, raw: include_bytes!({:?}), gzip: {gzip} }},",
            format!("/{relative}"),
            mime_for(relative),
            path.display().to_string(),
        )
        .expect("write to String");
    }
    code.push_str("];\n");
    writeln!(code, "pub const WEB_SOURCE: &str = {:?};", if source == dist { "dist" } else { "placeholder" })
        .expect("write to String");
    std::fs::write(out_dir.join("web_assets.rs"), code).expect("write web_assets.rs");
    agones_protos(&manifest);
}

/// With the `agones` feature: the gRPC server side of the Agones SDK's interface, for the
/// in-repo fake sidecar (`server/proto/`; needs `protoc`, which `cargo xtask test` installs).
fn agones_protos(manifest: &Path) {
    if std::env::var_os("CARGO_FEATURE_AGONES").is_none() {
        return;
    }
    #[cfg(feature = "agones")]
    {
        let protos = manifest.join("proto");
        println!("cargo:rerun-if-changed={}", protos.display());
        tonic_build::configure()
            .build_client(false)
            .build_server(true)
            .compile_protos(&[protos.join("agones_sdk.proto"), protos.join("agones_sdk_beta.proto")], &[protos])
            .expect("compiling server/proto (is protoc installed? Debian: protobuf-compiler)");
    }
    #[cfg(not(feature = "agones"))]
    let _ = manifest;
}

fn collect(base: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(base, &path, out);
        } else if let Ok(relative) = path.strip_prefix(base) {
            let relative = relative.to_string_lossy().replace('\\', "/");
            out.push((relative, path));
        }
    }
}

fn mime_for(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "wasm" => "application/wasm",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}
