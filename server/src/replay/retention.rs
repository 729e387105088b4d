//! Replay retention: every room and match writes a replay, so a long-running host would fill its
//! disk. Before a new recording starts (on its writer thread, never a room's), the oldest replay
//! files in the directory are deleted until at most `--replay-keep-files` files and
//! `--replay-keep-mb` megabytes remain, and the log says so. A recording still being written
//! (by any room of this process) is never deleted: each writer holds an [`OpenRecording`] for
//! its file until the file is closed.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use tracing::{info, warn};

/// How many replay files and bytes a replay directory keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    pub max_files: usize,
    pub max_bytes: u64,
}

impl Default for Retention {
    /// 500 files or 2 GiB, whichever comes first (a busy host's week of matches).
    fn default() -> Self {
        Retention { max_files: 500, max_bytes: 2 << 30 }
    }
}

/// The recordings being written now, by every room of the process.
static OPEN: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);

/// A recording being written: [`prune`] leaves its file alone until this is dropped.
#[derive(Debug)]
pub struct OpenRecording(PathBuf);

impl OpenRecording {
    pub fn new(path: &Path) -> OpenRecording {
        OPEN.lock().expect("open recordings lock").get_or_insert_with(HashSet::new).insert(path.to_path_buf());
        OpenRecording(path.to_path_buf())
    }
}

impl Drop for OpenRecording {
    fn drop(&mut self) {
        if let Some(open) = OPEN.lock().expect("open recordings lock").as_mut() {
            open.remove(&self.0);
        }
    }
}

fn is_open(path: &Path) -> bool {
    OPEN.lock().expect("open recordings lock").as_ref().is_some_and(|open| open.contains(path))
}

/// Deletes the oldest `*.arenareplay` files in `dir` (by modification time; `keep`, the file
/// being written, and every other recording still open, never) until `retention` holds.
/// Returns the files and bytes deleted.
pub fn prune(dir: &Path, retention: Retention, keep: &Path) -> (usize, u64) {
    let Ok(entries) = std::fs::read_dir(dir) else { return (0, 0) };
    let mut files: Vec<(SystemTime, u64, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "arenareplay"))
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            meta.is_file().then(|| (meta.modified().unwrap_or(SystemTime::UNIX_EPOCH), meta.len(), e.path()))
        })
        .collect();
    files.sort();
    let mut count = files.len();
    let mut bytes: u64 = files.iter().map(|(_, len, _)| len).sum();
    let (mut removed, mut freed) = (0, 0);
    for (_, len, path) in &files {
        if count <= retention.max_files && bytes <= retention.max_bytes {
            break;
        }
        if path == keep || is_open(path) {
            continue;
        }
        match std::fs::remove_file(path) {
            // Another recording's writer pruned it first: gone either way.
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                count -= 1;
                bytes -= len;
            }
            Ok(()) => {
                count -= 1;
                bytes -= len;
                removed += 1;
                freed += len;
            }
            Err(error) => warn!(path = %path.display(), %error, "could not delete an old replay"),
        }
    }
    if removed > 0 {
        info!(
            deleted = removed,
            freed_mb = freed / (1 << 20),
            kept = count,
            max_files = retention.max_files,
            max_mb = retention.max_bytes >> 20,
            "deleted the oldest replays to stay within --replay-keep-files / --replay-keep-mb"
        );
    }
    (removed, freed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_replays_go_first_and_the_current_one_stays() {
        let dir = std::env::temp_dir().join(format!("arena-retention-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut paths = Vec::new();
        for i in 0..6 {
            let path = dir.join(format!("match-{i}.arenareplay"));
            std::fs::write(&path, vec![0u8; 1000]).unwrap();
            // Distinct, increasing modification times.
            let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000 + i);
            std::fs::File::options().write(true).open(&path).unwrap().set_modified(at).unwrap();
            paths.push(path);
        }
        std::fs::write(dir.join("notes.txt"), "not a replay").unwrap();
        // Four files at most: the two oldest go.
        assert_eq!(prune(&dir, Retention { max_files: 4, max_bytes: u64::MAX }, &paths[5]), (2, 2000));
        assert!(!paths[0].exists() && !paths[1].exists() && paths[2].exists());
        // 2500 bytes at most, and the oldest (paths[2]) is the one being written: it stays.
        assert_eq!(prune(&dir, Retention { max_files: 100, max_bytes: 2500 }, &paths[2]), (2, 2000));
        assert!(paths[2].exists() && !paths[3].exists() && !paths[4].exists() && paths[5].exists());
        assert!(dir.join("notes.txt").exists(), "other files are left alone");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The review's finding: two rooms recording into one directory, and the newer one's
    /// retention deleted the older one's file while it was still being written.
    #[test]
    fn another_rooms_open_recording_is_never_deleted() {
        let dir = std::env::temp_dir().join(format!("arena-retention-open-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = |i: u64| dir.join(format!("match-{i}.arenareplay"));
        for i in 0..3 {
            std::fs::write(path(i), vec![0u8; 100]).unwrap();
            let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000 + i);
            std::fs::File::options().write(true).open(path(i)).unwrap().set_modified(at).unwrap();
        }
        // The oldest file is another room's recording in progress; the newest is this one's.
        let other = OpenRecording::new(&path(0));
        assert_eq!(prune(&dir, Retention { max_files: 1, max_bytes: u64::MAX }, &path(2)), (1, 100));
        assert!(path(0).exists(), "another room's open recording was deleted");
        assert!(!path(1).exists() && path(2).exists());
        // Once closed it is an old replay like any other.
        drop(other);
        assert_eq!(prune(&dir, Retention { max_files: 1, max_bytes: u64::MAX }, &path(2)), (1, 100));
        assert!(!path(0).exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
