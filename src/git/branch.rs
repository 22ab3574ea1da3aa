//! A fix as a branch: a commit of exactly the patched files on top of `HEAD`, pushed to
//! `origin`, without touching the user's index, working tree or current branch.
//!
//! The commit is built with a temporary index (`GIT_INDEX_FILE`): `read-tree HEAD`, then
//! `update-index` with the patched paths only (a deleted file is removed), `write-tree` and
//! `commit-tree`. Other uncommitted changes in the checkout stay out of it and stay where they
//! are.

use std::path::Path;

use super::{GitCommand, GitError};
use crate::core::secret::Secret;

/// Who commits when git has no identity configured (a hosted build agent).
const FALLBACK_NAME: &str = "agent-orch";
const FALLBACK_EMAIL: &str = "agent-orch@users.noreply.localhost";

/// A commit made for a branch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Commit {
    pub sha: String,
    /// The commit it is built on (`HEAD` of the checkout).
    pub parent: String,
}

/// Commits `files` (paths relative to `repo`, as on disk now) on top of `HEAD`, with
/// `message`. The checkout's index, working tree and `HEAD` are left as they were.
pub async fn commit_files(
    repo: &Path,
    files: &[String],
    message: &str,
) -> Result<Commit, GitError> {
    let parent = GitCommand::new(repo, &["rev-parse", "--verify", "HEAD^{commit}"])
        .run()
        .await?
        .trim()
        .to_owned();
    // Per process: two runs in one checkout must not share it.
    let name = format!("agent-orch-{}.index", std::process::id());
    let index_path = GitCommand::new(repo, &["rev-parse", "--git-path", &name])
        .run()
        .await?;
    let index = repo.join(index_path.trim());
    let index = index.to_string_lossy().into_owned();
    let result = commit_with_index(repo, &index, &parent, files, message).await;
    // Whatever happened, the temporary index goes; a missing one is fine.
    let _ = std::fs::remove_file(&index);
    result.map(|sha| Commit { sha, parent })
}

async fn commit_with_index(
    repo: &Path,
    index: &str,
    parent: &str,
    files: &[String],
    message: &str,
) -> Result<String, GitError> {
    GitCommand::new(repo, &["read-tree", parent])
        .env("GIT_INDEX_FILE", index)
        .run()
        .await?;
    let mut update = vec!["update-index", "--add", "--remove", "--"];
    update.extend(files.iter().map(String::as_str));
    GitCommand::new(repo, &update)
        .env("GIT_INDEX_FILE", index)
        .run()
        .await?;
    let tree = GitCommand::new(repo, &["write-tree"])
        .env("GIT_INDEX_FILE", index)
        .run()
        .await?;
    let mut commit = GitCommand::new(repo, &["commit-tree", tree.trim(), "-p", parent, "-F", "-"])
        .stdin(message);
    if !has_identity(repo).await {
        for (name, value) in [
            ("GIT_AUTHOR_NAME", FALLBACK_NAME),
            ("GIT_AUTHOR_EMAIL", FALLBACK_EMAIL),
            ("GIT_COMMITTER_NAME", FALLBACK_NAME),
            ("GIT_COMMITTER_EMAIL", FALLBACK_EMAIL),
        ] {
            commit = commit.env(name, value);
        }
    }
    Ok(commit.run().await?.trim().to_owned())
}

/// Whether git can name a committer without help (config or `GIT_COMMITTER_*`).
async fn has_identity(repo: &Path) -> bool {
    GitCommand::new(repo, &["var", "GIT_COMMITTER_IDENT"])
        .run()
        .await
        .is_ok()
}

/// Pushes `commit` to `origin` as `refs/heads/<branch>`, replacing what the branch held (it
/// is the run's own branch: a rerun of the fix updates it). `auth_header` is sent as an HTTP
/// header, through the environment only.
pub async fn push(
    repo: &Path,
    commit: &str,
    branch: &str,
    auth_header: Option<&Secret>,
) -> Result<(), GitError> {
    let refspec = format!("+{commit}:refs/heads/{branch}");
    let mut command = GitCommand::new(repo, &["push", "--porcelain", "origin", &refspec]);
    if let Some(header) = auth_header {
        command = command.extra_header(header);
    }
    command.run().await.map(drop)
}

/// The URL of the remote `name`.
pub async fn remote_url(repo: &Path, name: &str) -> Result<String, GitError> {
    Ok(GitCommand::new(repo, &["remote", "get-url", name])
        .run()
        .await?
        .trim()
        .to_owned())
}

/// The checked-out branch's short name; `None` on a detached `HEAD` (a pipeline checkout).
pub async fn current_branch(repo: &Path) -> Result<Option<String>, GitError> {
    let name = GitCommand::new(repo, &["branch", "--show-current"])
        .run()
        .await?
        .trim()
        .to_owned();
    Ok((!name.is_empty()).then_some(name))
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    fn git(dir: &Path, args: &[&str]) -> String {
        let output = Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .output()
            .expect("git runs");
        assert!(output.status.success(), "git {args:?}: {output:?}");
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    #[tokio::test]
    async fn only_the_patched_files_are_committed_and_the_checkout_is_untouched() {
        let dir = tempfile::tempdir().expect("temp dir");
        let repo = dir.path();
        git(repo, &["init", "-q", "-b", "main"]);
        std::fs::write(repo.join("app.js"), "broken\n").expect("write");
        std::fs::write(repo.join("notes.txt"), "mine\n").expect("write");
        std::fs::write(repo.join("old.js"), "to delete\n").expect("write");
        git(repo, &["add", "."]);
        git(repo, &["commit", "-qm", "first"]);
        let head = git(repo, &["rev-parse", "HEAD"]);
        // The patch: one file changed, one deleted. The user's own edits: staged and not.
        std::fs::write(repo.join("app.js"), "fixed\n").expect("write");
        std::fs::remove_file(repo.join("old.js")).expect("rm");
        std::fs::write(repo.join("notes.txt"), "my uncommitted edit\n").expect("write");
        std::fs::write(repo.join("staged.txt"), "staged by me\n").expect("write");
        git(repo, &["add", "staged.txt"]);

        let files = ["app.js".to_owned(), "old.js".to_owned()];
        let commit = commit_files(repo, &files, "fix: app\n\naudit: abc")
            .await
            .expect("commit");

        assert_eq!(commit.parent, head);
        assert_eq!(
            git(
                repo,
                &[
                    "diff-tree",
                    "--no-commit-id",
                    "--name-status",
                    "-r",
                    &commit.sha
                ]
            ),
            "M\tapp.js\nD\told.js"
        );
        assert_eq!(
            git(repo, &["show", &format!("{}:app.js", commit.sha)]),
            "fixed"
        );
        assert_eq!(
            git(repo, &["log", "-1", "--format=%B", &commit.sha]),
            "fix: app\n\naudit: abc"
        );
        assert_eq!(git(repo, &["rev-parse", "HEAD"]), head, "HEAD stays");
        assert_eq!(
            git(repo, &["status", "--porcelain"]),
            "M app.js\n M notes.txt\n D old.js\nA  staged.txt",
            "the index and working tree stay"
        );
    }
}
