//! Network namespaces for tests that need real non-loopback addresses (LAN discovery, bans and
//! per-address limits): running `ip`, and whether this machine lets a test create them.

use std::process::Command;

/// Runs `ip ARGS…`; the error says which command failed and why.
pub fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Why namespace tests cannot run here (not root, or a tool missing), or `None` when they can.
pub fn unavailable(tools: &[&str]) -> Option<String> {
    let uid = Command::new("id").arg("-u").output().ok().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    if uid.as_deref() != Some("0") {
        return Some("not root: network namespaces need root (CI runs as root)".into());
    }
    for tool in tools {
        if Command::new(tool).arg("-V").output().is_err() && Command::new(tool).arg("--version").output().is_err() {
            return Some(format!("`{tool}` is not installed (`cargo xtask test` installs it)"));
        }
    }
    None
}
