//! A hunk written at the wrong indentation: when every line it expects matches the file only
//! with its indentation shifted by the same prefix (the model dedented a nested block, or
//! indented it one level too deep), its added lines are shifted by that prefix too, as aider
//! does for SEARCH blocks. Indentation that only trades tabs for spaces of the same width
//! leaves the added lines as written. Anything else (some lines shifted, others not) leaves no
//! way to tell where the added lines belong, so the hunk is refused rather than applied with
//! guessed indentation.

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

/// The hunk's lines match the file only with their indentation changed unevenly.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct UnevenIndentation;

/// How the added lines of a hunk matched with whitespace ignored must be indented: as
/// written (`None`: the indentation only traded tabs for spaces, or nothing is added), or
/// shifted by the uniform difference between the hunk's expected lines (`placed`, matched
/// from `start`) and the file.
pub(crate) fn reindentation(
    placed: &[HunkLine],
    file: &[TextLine],
    start: usize,
) -> Result<Option<Reindent>, UnevenIndentation> {
    if placed.iter().all(|line| line.kind != LineKind::Add) {
        return Ok(None);
    }
    let width = |indent: &str, tab: usize| -> usize {
        indent
            .chars()
            .map(|c| if c == '\t' { tab } else { 1 })
            .sum()
    };
    let pairs = indent_pairs(placed, file, start);
    let same_width = [4, 8].iter().any(|&tab| {
        pairs
            .iter()
            .all(|(ours, theirs)| width(ours, tab) == width(theirs, tab))
    });
    if same_width {
        return Ok(None);
    }
    uniform_shift(&pairs).map(Some).ok_or(UnevenIndentation)
}

/// The leading whitespace of each non-blank expected line and of the file line it matched.
fn indent_pairs<'a>(
    placed: &'a [HunkLine],
    file: &'a [TextLine],
    start: usize,
) -> Vec<(&'a str, &'a str)> {
    let squash = |text: &str| text.split_whitespace().collect::<String>();
    let indent = |text: &str| text.len() - text.trim_start().len();
    placed
        .iter()
        .filter(|line| line.kind != LineKind::Add)
        .zip(file.get(start..).unwrap_or_default())
        .filter(|(ours, theirs)| {
            !ours.text.trim().is_empty() && squash(&ours.text) == squash(&theirs.text)
        })
        .map(|(ours, theirs)| {
            (
                &ours.text[..indent(&ours.text)],
                &theirs.text[..indent(&theirs.text)],
            )
        })
        .collect()
}

/// The one prefix every file line has more (or fewer) than the hunk's line, if there is one.
fn uniform_shift(pairs: &[(&str, &str)]) -> Option<Reindent> {
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
    use crate::patch::diff::marked::lines;
    use crate::patch::text::TextFile;

    #[test]
    fn a_uniformly_dedented_or_overindented_hunk_is_shifted_back() {
        let file = TextFile::decode(b"class A:\n    def f(self):\n        return 1\n").unwrap();
        let dedented = lines(&[" def f(self):", "-    return 1", "+    return 2"]);
        let shift = reindentation(&dedented, &file.lines, 1).unwrap().unwrap();
        assert_eq!(shift, Reindent::Deeper("    ".to_owned()));
        assert_eq!(shift.apply("    return 2"), "        return 2");
        let deeper = lines(&["         def f(self):", "-            return 1", "+x"]);
        let shift = reindentation(&deeper, &file.lines, 1).unwrap().unwrap();
        assert_eq!(shift.apply("            return 2"), "        return 2");
    }

    #[test]
    fn tabs_for_spaces_keep_the_added_lines_and_uneven_shifts_are_refused() {
        let file = TextFile::decode(b"a:\n    b\n        c\n").unwrap();
        let as_written = |marked: &[&str], start| reindentation(&lines(marked), &file.lines, start);
        assert_eq!(as_written(&[" \tb", "-\t\tc", "+\t\td"], 1), Ok(None));
        assert_eq!(
            as_written(&["     b", "-        c", "+        d"], 1),
            Ok(None)
        );
        assert_eq!(as_written(&[" a:", "-b"], 0), Ok(None), "nothing added");
        assert_eq!(
            as_written(&[" a:", "-b", "+d"], 0),
            Err(UnevenIndentation),
            "`a:` is in place, `b` is not"
        );
    }
}
