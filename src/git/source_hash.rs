//! `run.source_hash`: what the checkout's files hold now, as one short hash.
//!
//! The files are those git would put in a commit or a build context: tracked ones
//! (`--cached`) and untracked ones that are not ignored (`--others --exclude-standard`), so a
//! file a patch created counts too. Each contributes its path, its kind (file, executable,
//! symlink) and its content as it is on disk now, in path order; a tracked file that is gone
//! contributes nothing. Modification times, the index and commits play no part: equal trees
//! give equal hashes, and a patch (or its revert) changes the hash exactly when it changes a
//! file. The run's artifacts folder, when inside the checkout, is left out.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{GitCommand, GitError};

/// Hex characters kept: 64 bits, plenty to tell a project's trees apart, short enough for an
/// image tag.
const HASH_CHARS: usize = 16;

/// The hash of the files of the checkout at `dir`, leaving out `exclude` (the artifacts).
pub async fn source_hash(dir: &Path, exclude: &Path) -> Result<String, GitError> {
    let listing = GitCommand::new(
        dir,
        &[
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ],
    )
    .run()
    .await?;
    let mut paths: Vec<String> = listing
        .split('\0')
        .filter(|path| !path.is_empty())
        .map(str::to_owned)
        .collect();
    paths.sort_unstable();
    paths.dedup();
    let root = dir.to_owned();
    let exclude = std::path::absolute(exclude).unwrap_or_else(|_| exclude.to_owned());
    let hashed = tokio::task::spawn_blocking(move || hash_files(&root, &paths, &exclude)).await;
    hashed.map_err(|err| GitError {
        command: "ls-files".to_owned(),
        dir: dir.to_owned(),
        detail: format!("hashing the files stopped: {err}"),
        stderr: String::new(),
    })
}

fn hash_files(root: &Path, paths: &[String], exclude: &Path) -> String {
    let mut hasher = Sha256::new();
    let root = std::path::absolute(root).unwrap_or_else(|_| root.to_owned());
    for relative in paths {
        let path: PathBuf = root.join(relative);
        if path.starts_with(exclude) {
            continue;
        }
        let Ok(metadata) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let kind: &[u8] = if metadata.file_type().is_symlink() {
            b"link"
        } else if is_executable(&metadata) {
            b"exec"
        } else {
            b"file"
        };
        hasher.update(relative.as_bytes());
        hasher.update([0]);
        hasher.update(kind);
        hasher.update([0]);
        if metadata.file_type().is_symlink() {
            if let Ok(target) = std::fs::read_link(&path) {
                hasher.update(target.to_string_lossy().as_bytes());
            }
        } else if let Ok(mut file) = std::fs::File::open(&path) {
            hasher.update(metadata.len().to_le_bytes());
            let mut buffer = vec![0; 64 * 1024];
            while let Ok(read) = file.read(&mut buffer) {
                if read == 0 {
                    break;
                }
                hasher.update(&buffer[..read]);
            }
        }
        hasher.update([0]);
    }
    let mut hex = hex::encode(hasher.finalize());
    hex.truncate(HASH_CHARS);
    hex
}

#[cfg(unix)]
fn is_executable(metadata: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    metadata.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_: &std::fs::Metadata) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    fn git(dir: &Path, args: &[&str]) {
        let status = Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .status()
            .expect("git runs");
        assert!(status.success(), "git {args:?}");
    }

    fn repo(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        git(dir.path(), &["init", "-q"]);
        for (path, text) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, text).expect("write");
        }
        dir
    }

    async fn hash(dir: &Path) -> String {
        source_hash(dir, &dir.join("artifacts"))
            .await
            .expect("hash")
    }

    #[tokio::test]
    async fn equal_trees_hash_equal_whatever_their_history_and_times() {
        let files = [("src/app.js", "ok\n"), ("Dockerfile", "FROM node\n")];
        let committed = repo(&files);
        git(committed.path(), &["add", "."]);
        git(committed.path(), &["commit", "-qm", "first"]);
        let untracked = repo(&files);
        // Written later, and with artifacts beside them: neither counts.
        std::fs::create_dir_all(untracked.path().join("artifacts")).expect("mkdir");
        std::fs::write(untracked.path().join("artifacts/run.log"), "log").expect("write");
        assert_eq!(hash(committed.path()).await, hash(untracked.path()).await);
        assert_eq!(hash(committed.path()).await.len(), HASH_CHARS);
    }

    #[tokio::test]
    async fn a_change_to_a_file_changes_the_hash_and_undoing_it_restores_it() {
        let dir = repo(&[
            ("src/app.js", "broken\n"),
            (".gitignore", "node_modules/\n"),
        ]);
        git(dir.path(), &["add", "."]);
        git(dir.path(), &["commit", "-qm", "first"]);
        let before = hash(dir.path()).await;
        std::fs::create_dir_all(dir.path().join("node_modules")).expect("mkdir");
        std::fs::write(dir.path().join("node_modules/x.js"), "ignored").expect("write");
        assert_eq!(hash(dir.path()).await, before, "ignored files do not count");
        std::fs::write(dir.path().join("src/app.js"), "fixed\n").expect("write");
        let patched = hash(dir.path()).await;
        assert_ne!(patched, before);
        std::fs::write(dir.path().join("src/new.js"), "added by a patch\n").expect("write");
        assert_ne!(hash(dir.path()).await, patched, "a new file counts");
        std::fs::remove_file(dir.path().join("src/new.js")).expect("rm");
        std::fs::write(dir.path().join("src/app.js"), "broken\n").expect("write");
        assert_eq!(hash(dir.path()).await, before);
    }

    #[tokio::test]
    async fn outside_a_git_checkout_it_is_an_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let error = source_hash(dir.path(), &dir.path().join("a"))
            .await
            .expect_err("not a repository");
        assert!(error.detail.contains("not a git repository"), "{error}");
    }
}
