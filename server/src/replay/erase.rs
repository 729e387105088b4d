//! Erasing a player from a replay on request: their name in every join and the text of their
//! chat lines become "(erased)", and the file is written again in the current format, whole or
//! not at all (a temporary file beside it, synced, then renamed over it). Names and chat do not
//! enter the simulation or its hashes, so the rewritten file verifies exactly as before.

use std::io::Write;
use std::path::Path;

use shared::snapshot::NetId;

use super::format::{self, Op};

/// What a replay's erased entries are replaced with.
pub const ERASED: &str = "(erased)";

/// What [`erase`] did to one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rewrite {
    /// Rewritten: this many joins and chat lines changed.
    Rewritten { joins: usize, chat_lines: usize },
    /// The file names none of them (already erased, or they never joined it).
    Untouched,
    /// No such file (retention removed it, or it was never written).
    Missing,
}

/// Erases the players with these entity ids, and those who joined under one of `names` (for
/// rounds stored before ids were kept), from the replay at `path`.
pub fn erase(path: &Path, net_ids: &[u32], names: &[String]) -> Result<Rewrite, String> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Rewrite::Missing),
        Err(error) => return Err(format!("{}: {error}", path.display())),
    };
    let mut replay = format::parse(&bytes).map_err(|error| format!("{}: {error}", path.display()))?;
    let mut ids: Vec<NetId> = net_ids.iter().map(|&id| NetId(id)).collect();
    let (mut joins, mut chat_lines) = (0, 0);
    for record in &mut replay.records {
        for op in &mut record.ops {
            match op {
                Op::Join { id, name, .. } if name != ERASED && (ids.contains(id) || names.contains(name)) => {
                    *name = ERASED.to_string();
                    joins += 1;
                    if !ids.contains(id) {
                        ids.push(*id);
                    }
                }
                Op::Chat { id, text } if text != ERASED && ids.contains(id) => {
                    *text = ERASED.to_string();
                    chat_lines += 1;
                }
                _ => {}
            }
        }
    }
    if joins + chat_lines == 0 {
        return Ok(Rewrite::Untouched);
    }
    let rewritten = format::write_all(&replay.header, &replay.records);
    let name =
        path.file_name().and_then(|n| n.to_str()).ok_or_else(|| format!("{}: not a file name", path.display()))?;
    let temporary = path.with_file_name(format!(".{name}.erasing"));
    let written = (|| -> std::io::Result<()> {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(&rewritten)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if let Err(error) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(format!("{}: {error}", path.display()));
    }
    Ok(Rewrite::Rewritten { joins, chat_lines })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_retention_removed_is_missing_and_a_damaged_one_is_refused() {
        let dir = std::env::temp_dir().join(format!("arena-erase-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(erase(&dir.join("gone.arenareplay"), &[1], &[]), Ok(Rewrite::Missing));
        std::fs::write(dir.join("junk.arenareplay"), b"not a replay").unwrap();
        let refused = erase(&dir.join("junk.arenareplay"), &[1], &[]);
        assert!(refused.is_err(), "{refused:?}");
        assert_eq!(std::fs::read(dir.join("junk.arenareplay")).unwrap(), b"not a replay", "left as it was");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
