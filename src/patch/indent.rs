//! A hunk written at the wrong indentation: when every line it expects matches the file only
//! with its indentation shifted by the same prefix (the model dedented a nested block, or
//! indented it one level too deep), its added lines are shifted by that prefix too, as aider
//! does for SEARCH blocks. Anything less uniform (tabs for spaces on some lines, say) is left
//! alone: the added lines are then taken as written.

use super::diff::{HunkLine, LineKind};
use super::text::TextLine;

/// How to move an added line into the file's indentation.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Reindent {
    /// The file has every line indented by this prefix more than the hunk.
    Deeper(String),
    /// The hunk has every line indented by this prefix more than the file.
    Shallower(String),
}

impl Reindent {
    pub(crate) fn apply(&self, text: &str) -> String {
        match self {
            _ if text.trim().is_empty() => text.to_owned(),
            Self::Deeper(prefix) => format!("{prefix}{text}"),
            Self::Shallower(prefix) => text
                .strip_prefix(prefix.as_str())
                .unwrap_or(text)
                .to_owned(),
        }
    }
}

/// The uniform shift between the hunk's expected lines (`placed`, matched from `start`) and
/// the file, if there is one.
pub(crate) fn uniform_shift(
    placed: &[HunkLine],
    file: &[TextLine],
    start: usize,
) -> Option<Reindent> {
    let squash = |text: &str| text.split_whitespace().collect::<String>();
    let indent = |text: &str| text.len() - text.trim_start().len();
    let pairs: Vec<(&str, &str)> = placed
        .iter()
        .filter(|line| line.kind != LineKind::Add)
        .zip(file.get(start..)?)
        .filter(|(ours, theirs)| {
            !ours.text.trim().is_empty() && squash(&ours.text) == squash(&theirs.text)
        })
        .map(|(ours, theirs)| {
            (
                &ours.text[..indent(&ours.text)],
                &theirs.text[..indent(&theirs.text)],
            )
        })
        .collect();
    let (ours, theirs) = *pairs.first()?;
    if let Some(prefix) = theirs.strip_suffix(ours).filter(|p| !p.is_empty())
        && pairs.iter().all(|(o, t)| t.strip_suffix(o) == Some(prefix))
    {
        return Some(Reindent::Deeper(prefix.to_owned()));
    }
    if let Some(prefix) = ours.strip_suffix(theirs).filter(|p| !p.is_empty())
        && pairs.iter().all(|(o, t)| o.strip_suffix(t) == Some(prefix))
    {
        return Some(Reindent::Shallower(prefix.to_owned()));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::text::TextFile;

    fn lines(marked: &[&str]) -> Vec<HunkLine> {
        marked
            .iter()
            .map(|raw| {
                let (kind, text) = match raw.split_at(1) {
                    ("+", text) => (LineKind::Add, text),
                    ("-", text) => (LineKind::Remove, text),
                    (_, text) => (LineKind::Context, text),
                };
                HunkLine {
                    kind,
                    text: text.to_owned(),
                    no_newline: false,
                }
            })
            .collect()
    }

    #[test]
    fn a_uniformly_dedented_or_overindented_hunk_is_shifted_back() {
        let file = TextFile::decode(b"class A:\n    def f(self):\n        return 1\n").unwrap();
        let dedented = lines(&[" def f(self):", "-    return 1", "+    return 2"]);
        let shift = uniform_shift(&dedented, &file.lines, 1).unwrap();
        assert_eq!(shift, Reindent::Deeper("    ".to_owned()));
        assert_eq!(shift.apply("    return 2"), "        return 2");
        let deeper = lines(&["         def f(self):", "-            return 1"]);
        let shift = uniform_shift(&deeper, &file.lines, 1).unwrap();
        assert_eq!(shift.apply("            return 2"), "        return 2");
    }

    #[test]
    fn mixed_drift_is_not_a_shift() {
        let file = TextFile::decode(b"a:\n    b\n        c\n").unwrap();
        // Tabs for spaces: not a prefix of one another.
        assert_eq!(
            uniform_shift(&lines(&[" \tb", "-\t\tc"]), &file.lines, 1),
            None
        );
        // Already right, or right on one line and not on the other.
        assert_eq!(
            uniform_shift(&lines(&["     b", "-        c"]), &file.lines, 1),
            None
        );
        assert_eq!(
            uniform_shift(&lines(&[" a:", "-    b"]), &file.lines, 0),
            None
        );
    }
}
