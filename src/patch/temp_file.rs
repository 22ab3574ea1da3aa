//! The temporary files an apply writes beside its targets, and the clean-up of those that an
//! interrupted apply (a SIGKILL, a power cut) left behind.
//!
//! A temporary file is named `.NAME.agent-orch-PID-TAG.tmp`: hidden, beside its target (so
//! the final rename stays on one file system), and carrying the pid of the process that wrote
//! it, so that the next run can tell an orphan from a file a concurrent run is still writing.
//! An orphan holds a new content that was never renamed into place: the target still has its
//! original, and removing the orphan loses nothing.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

const MARK: &str = ".agent-orch-";
const SUFFIX: &str = ".tmp";

/// The temporary file beside `target` for this process; `tag` tells apart the files of one
/// apply (an index, `restore`).
pub(crate) fn temp_path(target: &Path, tag: impl std::fmt::Display) -> PathBuf {
    let parent = target.parent().unwrap_or(Path::new("."));
    let name = target.file_name().unwrap_or_default().to_string_lossy();
    parent.join(format!(".{name}{MARK}{}-{tag}{SUFFIX}", std::process::id()))
}

/// Removes, under `root`, the temporary files whose writer is no longer running; returns
/// them. `.git` is not entered, nor are symbolic links followed. Unreadable folders are skipped:
/// this is tidying, never a reason to fail a run.
pub fn remove_stale_temps(root: &Path) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let mut pending = vec![root.to_owned()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let name = entry.file_name();
            if kind.is_dir() {
                if name != ".git" {
                    pending.push(entry.path());
                }
            } else if kind.is_file()
                && writer_pid(&name).is_some_and(|pid| !is_running(pid))
                && std::fs::remove_file(entry.path()).is_ok()
            {
                removed.push(entry.path());
            }
        }
    }
    removed
}

/// The pid in a temporary file's name; `None` for any other file.
fn writer_pid(name: &OsStr) -> Option<u32> {
    let name = name.to_str()?;
    let rest = name.strip_prefix('.')?.strip_suffix(SUFFIX)?;
    let (_, owner) = rest.rsplit_once(MARK)?;
    let (pid, tag) = owner.split_once('-')?;
    if tag.is_empty() {
        return None;
    }
    pid.parse().ok()
}

/// Whether a process with this pid exists (a signal 0 reaches it, or is refused to us).
#[cfg(unix)]
fn is_running(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(errno) => errno != nix::errno::Errno::ESRCH,
    }
}

/// Without a cheap liveness check, only this process's own leftovers count as stale.
#[cfg(not(unix))]
fn is_running(pid: u32) -> bool {
    pid != std::process::id()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_writer_pid() {
        let temp = temp_path(Path::new("src/app.rs"), 3);
        assert_eq!(temp.parent(), Some(Path::new("src")));
        let name = temp.file_name().unwrap();
        assert_eq!(writer_pid(name), Some(std::process::id()));
        assert_eq!(
            writer_pid(OsStr::new(".a.agent-orch-12-restore.tmp")),
            Some(12)
        );
        assert_eq!(writer_pid(OsStr::new("app.rs")), None);
        assert_eq!(writer_pid(OsStr::new(".a.agent-orch-12-.tmp")), None);
        assert_eq!(writer_pid(OsStr::new("a.agent-orch-12-0.tmp")), None);
    }

    #[test]
    fn removes_only_the_files_of_dead_writers() {
        let dir = tempfile::tempdir().unwrap();
        let mut gone = std::process::Command::new("true").spawn().unwrap();
        gone.wait().unwrap();
        let dead = gone.id();
        std::fs::create_dir_all(dir.path().join("src/deep")).unwrap();
        std::fs::create_dir_all(dir.path().join(".git")).unwrap();
        let stale = dir
            .path()
            .join(format!("src/deep/.a.rs.agent-orch-{dead}-0.tmp"));
        let live = temp_path(&dir.path().join("src/b.rs"), 0);
        let in_git = dir.path().join(format!(".git/.c.agent-orch-{dead}-0.tmp"));
        let other = dir.path().join("src/notes.tmp");
        for path in [&stale, &live, &in_git, &other] {
            std::fs::write(path, "x").unwrap();
        }

        let removed = remove_stale_temps(dir.path());

        assert_eq!(removed, vec![stale.clone()]);
        assert!(!stale.exists());
        assert!(live.exists() && in_git.exists() && other.exists());
    }
}
