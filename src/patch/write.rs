//! Writing several files as one step: all of them change, or none does.
//!
//! New contents go to temporary files in the target directories first (so a full disk or a
//! permission problem fails before anything is touched), then each is renamed over its target.
//! If a rename fails midway, the files already replaced are restored from the originals held in
//! memory; if even that fails, the originals are saved to a backup directory so no work is lost.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::apply_error::{ApplyError, ApplyErrorKind};
use super::temp_file::temp_path;

/// One file's change: `contents: None` deletes it; `original: None` means it does not exist.
pub(crate) struct FileWrite<'a> {
    pub(crate) path: &'a Path,
    pub(crate) contents: Option<&'a [u8]>,
    pub(crate) original: Option<&'a [u8]>,
    /// The mode the file had (or, for a rename's target, the source's): an executable script
    /// stays executable, also when a revert brings it back.
    pub(crate) permissions: Option<&'a fs::Permissions>,
}

/// Performs `writes` atomically as a group. Returns the directories it had to create,
/// outermost first, so that undoing the change can remove them again.
pub(crate) fn write_atomically(writes: &[FileWrite<'_>]) -> Result<Vec<PathBuf>, ApplyError> {
    let mut created_dirs = Vec::new();
    let mut temps: Vec<Option<PathBuf>> = Vec::new();
    let prepared = prepare(writes, &mut created_dirs, &mut temps);
    if let Err(error) = prepared {
        discard(&temps, &created_dirs);
        return Err(error);
    }
    for (index, (write, temp)) in writes.iter().zip(&temps).enumerate() {
        let (action, result) = match temp {
            Some(temp) => ("replace", fs::rename(temp, write.path)),
            None => ("delete", remove_if_present(write.path)),
        };
        if let Err(source) = result {
            discard(&temps[index..], &[]);
            let unrestored = restore(&writes[..index]);
            remove_empty_dirs(&created_dirs);
            let path = write.path.to_owned();
            if unrestored.is_empty() {
                return Err(ApplyErrorKind::Io {
                    action,
                    path,
                    source,
                }
                .into());
            }
            let backup_dir = save_backups(writes, &unrestored);
            let unrestored = unrestored.into_iter().map(Path::to_owned).collect();
            return Err(ApplyErrorKind::RestoreFailed {
                action,
                path,
                source,
                unrestored,
                backup_dir,
            }
            .into());
        }
    }
    Ok(created_dirs)
}

/// Creates missing directories and writes every new content to a temporary file.
fn prepare(
    writes: &[FileWrite<'_>],
    created_dirs: &mut Vec<PathBuf>,
    temps: &mut Vec<Option<PathBuf>>,
) -> Result<(), ApplyError> {
    for (index, write) in writes.iter().enumerate() {
        let Some(contents) = write.contents else {
            temps.push(None);
            continue;
        };
        let parent = write.path.parent().unwrap_or(Path::new("."));
        create_dirs(parent, created_dirs)
            .map_err(|source| io_error("create the directory", parent, source))?;
        let temp = temp_path(write.path, index);
        write_file(&temp, contents, write.permissions)
            .map_err(|source| io_error("write a temporary file for", write.path, source))?;
        temps.push(Some(temp));
    }
    Ok(())
}

/// Writes `contents` to `temp` durably, with `permissions` if given.
fn write_file(
    temp: &Path,
    contents: &[u8],
    permissions: Option<&fs::Permissions>,
) -> std::io::Result<()> {
    let mut file = fs::File::create(temp)?;
    file.write_all(contents)?;
    file.sync_all()?;
    if let Some(permissions) = permissions {
        fs::set_permissions(temp, permissions.clone())?;
    }
    Ok(())
}

fn create_dirs(dir: &Path, created: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let missing: Vec<&Path> = dir.ancestors().take_while(|dir| !dir.exists()).collect();
    for dir in missing.into_iter().rev() {
        fs::create_dir(dir)?;
        created.push(dir.to_owned());
    }
    Ok(())
}

fn remove_if_present(path: &Path) -> std::io::Result<()> {
    match fs::remove_file(path) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Best-effort cleanup on the failure path: the error being reported matters more.
fn discard(temps: &[Option<PathBuf>], created_dirs: &[PathBuf]) {
    for temp in temps.iter().flatten() {
        let _ = fs::remove_file(temp);
    }
    remove_empty_dirs(created_dirs);
}

/// Removes `dirs` (outermost first) that are empty, innermost first.
pub(crate) fn remove_empty_dirs(dirs: &[PathBuf]) {
    for dir in dirs.iter().rev() {
        // Fails harmlessly when something else now lives there.
        let _ = fs::remove_dir(dir);
    }
}

/// Puts back the originals of `done`; returns the paths that could not be restored.
fn restore<'a>(done: &[FileWrite<'a>]) -> Vec<&'a Path> {
    let mut failed = Vec::new();
    for write in done.iter().rev() {
        let result = match write.original {
            Some(original) => {
                let temp = temp_path(write.path, "restore");
                write_file(&temp, original, write.permissions)
                    .and_then(|()| fs::rename(&temp, write.path))
            }
            None => remove_if_present(write.path),
        };
        if result.is_err() {
            failed.push(write.path);
        }
    }
    failed
}

/// Saves the originals of `paths` under a fresh directory in the system temp dir.
fn save_backups(writes: &[FileWrite<'_>], paths: &[&Path]) -> PathBuf {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    let dir =
        std::env::temp_dir().join(format!("agent-orch-backup-{}-{stamp}", std::process::id()));
    for (index, write) in writes.iter().enumerate() {
        if let (true, Some(original)) = (paths.contains(&write.path), write.original) {
            let name = write.path.file_name().unwrap_or_default().to_string_lossy();
            let _ = fs::create_dir_all(&dir);
            let _ = fs::write(dir.join(format!("{index}-{name}")), original);
        }
    }
    dir
}

fn io_error(action: &'static str, path: &Path, source: std::io::Error) -> ApplyError {
    ApplyErrorKind::Io {
        action,
        path: path.to_owned(),
        source,
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_midway_restores_the_files_already_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("first.txt");
        fs::write(&first, "original\r\n").unwrap();
        // A non-empty directory where the second file should land: the rename onto it fails
        // after the first file was already replaced.
        let second = dir.path().join("second");
        fs::create_dir(&second).unwrap();
        fs::write(second.join("inside"), "x").unwrap();
        let new_dir_file = dir.path().join("fresh/nested/third.txt");

        let writes = [
            FileWrite {
                path: &first,
                contents: Some(b"changed\n"),
                original: Some(b"original\r\n"),
                permissions: None,
            },
            FileWrite {
                path: &new_dir_file,
                contents: Some(b"new\n"),
                original: None,
                permissions: None,
            },
            FileWrite {
                path: &second,
                contents: Some(b"file\n"),
                original: None,
                permissions: None,
            },
        ];
        let error = write_atomically(&writes).unwrap_err();

        assert!(
            matches!(
                error.kind,
                ApplyErrorKind::Io {
                    action: "replace",
                    ..
                }
            ),
            "{error:?}"
        );
        assert_eq!(fs::read(&first).unwrap(), b"original\r\n");
        assert!(
            !dir.path().join("fresh").exists(),
            "created directories are removed"
        );
        let mut names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["first.txt", "second"],
            "no temporary file is left behind"
        );
    }

    #[test]
    fn writes_creates_and_deletes_together() {
        let dir = tempfile::tempdir().unwrap();
        let keep = dir.path().join("keep.txt");
        let gone = dir.path().join("gone.txt");
        fs::write(&keep, "a\n").unwrap();
        fs::write(&gone, "b\n").unwrap();
        let made = dir.path().join("d/made.txt");
        let writes = [
            FileWrite {
                path: &keep,
                contents: Some(b"a2\n"),
                original: Some(b"a\n"),
                permissions: None,
            },
            FileWrite {
                path: &gone,
                contents: None,
                original: Some(b"b\n"),
                permissions: None,
            },
            FileWrite {
                path: &made,
                contents: Some(b"c\n"),
                original: None,
                permissions: None,
            },
        ];
        let created = write_atomically(&writes).unwrap();
        assert_eq!(created, [dir.path().join("d")]);
        assert_eq!(fs::read(&keep).unwrap(), b"a2\n");
        assert!(!gone.exists());
        assert_eq!(fs::read(&made).unwrap(), b"c\n");
    }
}
