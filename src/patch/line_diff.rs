//! The lines of a hunk from two versions of a text: how SEARCH/REPLACE blocks and whole-file
//! replies become the same context / removed / added lines a unified diff parses into, so that
//! one locator, one policy and one applier serve every edit format.
//!
//! Lines both versions share become context, which is what lets a SEARCH block with a stale or
//! cut-off edge line still be placed (the locator may drop context edges, never changes).

use super::diff::{HunkLine, LineKind};

/// The edit script from `old` to `new` through their longest common subsequence of lines;
/// removals come before additions within each changed run, as `diff -u` writes them.
pub(crate) fn diff_lines(old: &[&str], new: &[&str]) -> Vec<HunkLine> {
    let prefix = old.iter().zip(new).take_while(|(a, b)| a == b).count();
    let suffix = old[prefix..]
        .iter()
        .rev()
        .zip(new[prefix..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    let (a, b) = (
        &old[prefix..old.len() - suffix],
        &new[prefix..new.len() - suffix],
    );
    let line = |kind, text: &str| HunkLine {
        kind,
        text: text.to_owned(),
        no_newline: false,
    };
    let mut out: Vec<HunkLine> = old[..prefix]
        .iter()
        .map(|text| line(LineKind::Context, text))
        .collect();
    // lcs[i][j]: length of the longest common subsequence of a[i..] and b[j..].
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let (mut removed, mut added) = (Vec::new(), Vec::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.append(&mut removed);
            out.append(&mut added);
            out.push(line(LineKind::Context, a[i]));
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            added.push(line(LineKind::Add, b[j]));
            j += 1;
        } else {
            removed.push(line(LineKind::Remove, a[i]));
            i += 1;
        }
    }
    out.append(&mut removed);
    out.append(&mut added);
    out.extend(
        old[old.len() - suffix..]
            .iter()
            .map(|text| line(LineKind::Context, text)),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(old: &[&str], new: &[&str]) -> String {
        diff_lines(old, new)
            .iter()
            .map(|line| {
                let mark = match line.kind {
                    LineKind::Context => ' ',
                    LineKind::Remove => '-',
                    LineKind::Add => '+',
                };
                format!("{mark}{}", line.text)
            })
            .collect::<Vec<_>>()
            .join("|")
    }

    #[test]
    fn shared_lines_are_context_and_changes_group_removals_first() {
        assert_eq!(
            script(&["a", "b", "c", "d"], &["a", "B", "c", "d", "e"]),
            " a|-b|+B| c| d|+e"
        );
        assert_eq!(script(&["x", "y"], &["1", "2"]), "-x|-y|+1|+2");
        assert_eq!(script(&[], &["n"]), "+n");
        assert_eq!(script(&["same"], &["same"]), " same");
    }
}
