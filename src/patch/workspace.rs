//! The repository a patch applies to, and the rule that every patched path stays inside it.

use std::path::{Component, Path, PathBuf};

/// The root of the repository being patched.
#[derive(Clone, Debug)]
pub struct Workspace {
    root: PathBuf,
}

#[derive(Debug, thiserror::Error)]
#[error("failed to open the workspace `{}`", path.display())]
pub struct WorkspaceError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Why a path in a patch may not be touched.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "detail")]
pub enum PathViolation {
    #[error("the path is empty")]
    Empty,
    #[error("the path is absolute")]
    Absolute,
    #[error("the path climbs out of the repository with `..`")]
    ParentDir,
    #[error("the path is inside `.git/`")]
    GitDir,
    /// A symlink anywhere on the path: it may lead outside the repository, or around a
    /// `never_delete` glob, so it is never followed.
    #[error("the path goes through the symlink `{0}`")]
    Symlink(String),
}

impl Workspace {
    pub fn new(root: impl AsRef<Path>) -> Result<Self, WorkspaceError> {
        let path = root.as_ref();
        let root = path.canonicalize().map_err(|source| WorkspaceError {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The absolute path of `relative`, if the patch may touch it.
    pub fn resolve(&self, relative: &str) -> Result<PathBuf, PathViolation> {
        if relative.is_empty() {
            return Err(PathViolation::Empty);
        }
        let mut parts = Vec::new();
        for component in Path::new(relative).components() {
            match component {
                Component::Prefix(_) | Component::RootDir => return Err(PathViolation::Absolute),
                Component::ParentDir => return Err(PathViolation::ParentDir),
                Component::CurDir => {}
                Component::Normal(part) => {
                    // Case-insensitive: `.GIT` is `.git` on macOS and Windows file systems.
                    if part.eq_ignore_ascii_case(".git") {
                        return Err(PathViolation::GitDir);
                    }
                    parts.push(part);
                }
            }
        }
        if parts.is_empty() {
            return Err(PathViolation::Empty);
        }
        let mut path = self.root.clone();
        for (index, part) in parts.iter().enumerate() {
            path.push(part);
            match path.symlink_metadata() {
                Ok(meta) if meta.file_type().is_symlink() => {
                    let through: PathBuf = parts[..=index].iter().collect();
                    return Err(PathViolation::Symlink(through.display().to_string()));
                }
                Ok(_) => {}
                // The rest does not exist yet (a new file), so it holds no symlink.
                Err(_) => {
                    for rest in &parts[index + 1..] {
                        path.push(rest);
                    }
                    break;
                }
            }
        }
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_inside_and_refuses_escapes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("src")).unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("link")).unwrap();
        let workspace = Workspace::new(dir.path()).unwrap();
        let root = workspace.root().to_owned();

        assert_eq!(
            workspace.resolve("./src/new/x.rs").unwrap(),
            root.join("src/new/x.rs")
        );
        assert_eq!(
            workspace.resolve("/etc/passwd"),
            Err(PathViolation::Absolute)
        );
        assert_eq!(
            workspace.resolve("src/../../x"),
            Err(PathViolation::ParentDir)
        );
        assert_eq!(workspace.resolve(".git/config"), Err(PathViolation::GitDir));
        assert_eq!(
            workspace.resolve("sub/.Git/hooks/pre-commit"),
            Err(PathViolation::GitDir)
        );
        assert_eq!(
            workspace.resolve("link/x"),
            Err(PathViolation::Symlink("link".into()))
        );
        assert_eq!(workspace.resolve("."), Err(PathViolation::Empty));
    }
}
