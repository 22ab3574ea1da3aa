//! The policy's path globs (`never_delete`, `protect`): compiled once, matched against
//! normalized paths and case-insensitively, because on a case-insensitive checkout
//! `MIGRATIONS/001.sql` is `migrations/001.sql`.

use std::path::{Component, Path};

use globset::{GlobBuilder, GlobMatcher};

/// A list of globs, each kept with its text for the audit log.
#[derive(Clone, Debug, Default)]
pub(crate) struct PathGlobs {
    globs: Vec<(String, GlobMatcher)>,
}

impl PathGlobs {
    /// Compiles `globs`; the error names the glob that does not compile.
    pub(crate) fn new(globs: &[String]) -> Result<Self, (String, globset::Error)> {
        let globs = globs
            .iter()
            .map(|glob| {
                GlobBuilder::new(glob)
                    .case_insensitive(true)
                    .build()
                    .map(|compiled| (glob.clone(), compiled.compile_matcher()))
                    .map_err(|err| (glob.clone(), err))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { globs })
    }

    /// The first glob matching `path`, as written.
    pub(crate) fn matching(&self, path: &str) -> Option<&str> {
        let normalized = normalize(path);
        self.globs
            .iter()
            .find(|(_, matcher)| matcher.is_match(&normalized))
            .map(|(glob, _)| glob.as_str())
    }
}

/// `./a//b` and `a/b` are the same file to a glob.
fn normalize(path: &str) -> String {
    let parts: Vec<String> = Path::new(path)
        .components()
        .filter_map(|component| match component {
            Component::Normal(part) => Some(part.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_normalized_paths_whatever_their_case() {
        let globs = PathGlobs::new(&["migrations/**".to_owned(), "*.SQL".to_owned()]).unwrap();
        assert_eq!(
            globs.matching("./MIGRATIONS//001.txt"),
            Some("migrations/**")
        );
        assert_eq!(globs.matching("db/Schema.sql"), Some("*.SQL"));
        assert_eq!(globs.matching("src/main.rs"), None);
        assert_eq!(PathGlobs::new(&["a[".to_owned()]).unwrap_err().0, "a[");
    }
}
