//! Finding where a hunk belongs in a file, by its context rather than its line numbers.
//!
//! Candidates are searched level by level, best match quality first: all context kept, then
//! context dropped progressively from the edges (at most [`MAX_FUZZ`] lines per side); at each
//! of those, exact text, then trailing whitespace ignored, then all whitespace ignored. The
//! first level with any candidate decides: one candidate is the place; among several, one
//! whose dropped context still matches strictly better wins, otherwise it is a refusal. As a
//! last resort, the whole hunk may match with one context line differing (a misremembered
//! line), never a removed one. The header's line number never breaks a tie, because in LLM output it is the least
//! reliable part of the hunk.

use super::diff::{Hunk, HunkLine, LineKind};
use super::text::TextLine;

/// Context lines that may be ignored at each edge of a hunk (GNU patch's `--fuzz=3`).
const MAX_FUZZ: usize = 3;

/// Matching context lines a hunk needs when one of its context lines is allowed to differ.
const MIN_STALE_ANCHOR: usize = 3;

/// How strictly lines were compared where a hunk was placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Whitespace {
    Exact,
    TrailingIgnored,
    Ignored,
}

const LEVELS: [Whitespace; 3] = [
    Whitespace::Exact,
    Whitespace::TrailingIgnored,
    Whitespace::Ignored,
];

impl Whitespace {
    fn normalize(self, text: &str) -> String {
        match self {
            Self::Exact => text.to_owned(),
            Self::TrailingIgnored => text.trim_end().to_owned(),
            Self::Ignored => text.chars().filter(|c| !c.is_whitespace()).collect(),
        }
    }
}

/// Where a hunk goes: `lines` (a sub-slice of the hunk's lines, edges possibly dropped)
/// replace the file's lines from `start` (0-based) for as many lines as their old side has.
#[derive(Debug)]
pub(crate) struct Location<'h> {
    pub(crate) start: usize,
    pub(crate) lines: &'h [HunkLine],
    pub(crate) fuzz: usize,
    pub(crate) whitespace: Whitespace,
    /// Placed by the last resort: one context line differs from the file.
    pub(crate) stale_context: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum LocateError {
    NotFound,
    /// 1-based lines where equally good candidates start.
    Ambiguous(Vec<usize>),
    /// Only additions, into a non-empty file: nothing says where they go.
    NoAnchor,
}

/// The file's lines normalized at every whitespace level, computed once per file state.
pub(crate) struct Haystack {
    levels: [Vec<String>; 3],
}

impl Haystack {
    pub(crate) fn new(lines: &[TextLine]) -> Self {
        let level = |ws: Whitespace| lines.iter().map(|line| ws.normalize(&line.text)).collect();
        Self {
            levels: LEVELS.map(level),
        }
    }

    fn len(&self) -> usize {
        self.levels[0].len()
    }
}

/// Locates `hunk` in the file at or after line index `from` (hunks of one file apply in order
/// and never overlap).
pub(crate) fn locate<'h>(
    haystack: &Haystack,
    hunk: &'h Hunk,
    from: usize,
) -> Result<Location<'h>, LocateError> {
    let lines = &hunk.lines[..];
    if lines.iter().all(|line| line.kind == LineKind::Add) {
        return if haystack.len() == 0 {
            Ok(Location {
                start: 0,
                lines,
                fuzz: 0,
                whitespace: Whitespace::Exact,
                stale_context: false,
            })
        } else {
            Err(LocateError::NoAnchor)
        };
    }
    let leading = lines
        .iter()
        .take_while(|l| l.kind == LineKind::Context)
        .count();
    let trailing = lines
        .iter()
        .rev()
        .take_while(|l| l.kind == LineKind::Context)
        .count();
    for fuzz in 0..=2 * MAX_FUZZ {
        for whitespace in LEVELS {
            // Every way to drop `fuzz` context lines from the two edges; a candidate is the
            // position the untrimmed hunk would start at, so that two trims agreeing on one
            // place count once.
            let mut candidates: Vec<(isize, Location<'h>)> = Vec::new();
            for front in 0..=fuzz.min(MAX_FUZZ) {
                let back = fuzz - front;
                // A hunk of context only is both all leading and all trailing: the two
                // trims may not overlap.
                if back > MAX_FUZZ
                    || front > leading
                    || back > trailing
                    || front + back > lines.len()
                {
                    continue;
                }
                let trimmed = &lines[front..lines.len() - back];
                if !is_anchored(trimmed) {
                    continue;
                }
                for start in matches(haystack, trimmed, whitespace, from) {
                    let implied = start as isize - front as isize;
                    if candidates.iter().all(|(other, _)| *other != implied) {
                        let location = Location {
                            start,
                            lines: trimmed,
                            fuzz,
                            whitespace,
                            stale_context: false,
                        };
                        candidates.push((implied, location));
                    }
                }
            }
            if candidates.is_empty() {
                continue;
            }
            // Among equally trimmed candidates, one whose dropped context still matches
            // better is strictly the better place; equal scores stay a refusal.
            let scores: Vec<usize> = candidates
                .iter()
                .map(|(implied, _)| full_hunk_score(haystack, lines, *implied))
                .collect();
            let best = scores.iter().copied().max().unwrap_or_default();
            if scores.iter().filter(|&&score| score == best).count() == 1 {
                let winner = scores
                    .iter()
                    .position(|&score| score == best)
                    .unwrap_or_default();
                return Ok(candidates.swap_remove(winner).1);
            }
            let mut starts: Vec<usize> = candidates.iter().map(|(_, l)| l.start + 1).collect();
            starts.sort_unstable();
            return Err(LocateError::Ambiguous(starts));
        }
    }
    stale_context_candidate(haystack, lines, from)
}

/// The last resort: the whole hunk where every removed line matches and exactly one context
/// line differs (the model misremembered it), with at least [`MIN_STALE_ANCHOR`] context lines
/// matching. Still refused if two places qualify.
fn stale_context_candidate<'h>(
    haystack: &Haystack,
    lines: &'h [HunkLine],
    from: usize,
) -> Result<Location<'h>, LocateError> {
    let file = &haystack.levels[Whitespace::Ignored as usize];
    let old: Vec<(LineKind, String)> = lines
        .iter()
        .filter(|line| line.kind != LineKind::Add)
        .map(|line| (line.kind, Whitespace::Ignored.normalize(&line.text)))
        .collect();
    let context = old
        .iter()
        .filter(|(kind, _)| *kind == LineKind::Context)
        .count();
    if context < MIN_STALE_ANCHOR + 1 || old.len() > file.len() {
        return Err(LocateError::NotFound);
    }
    let starts: Vec<usize> = (from..=file.len() - old.len())
        .filter(|&start| {
            let mut stale = 0;
            for (offset, (kind, text)) in old.iter().enumerate() {
                if file[start + offset] != *text {
                    if *kind == LineKind::Remove {
                        return false;
                    }
                    stale += 1;
                }
            }
            stale == 1
        })
        .collect();
    match starts[..] {
        [] => Err(LocateError::NotFound),
        [start] => Ok(Location {
            start,
            lines,
            fuzz: 0,
            whitespace: Whitespace::Ignored,
            stale_context: true,
        }),
        _ => Err(LocateError::Ambiguous(
            starts.iter().map(|start| start + 1).collect(),
        )),
    }
}

/// How far a line may be shifted and still count towards [`closest`]: the model may have
/// dropped or added a line or two.
const CLOSEST_SLACK: isize = 2;

/// Where a hunk that matches nowhere was most likely meant to go: the start (0-based) of the
/// window where most of its non-blank old lines occur (whitespace ignored, each within
/// [`CLOSEST_SLACK`] lines of its place), lines found exactly at their place breaking ties.
/// When no line of the hunk occurs in the file as written, lines that are merely similar
/// (a misremembered line) count instead. `None` if nothing is even similar.
pub(crate) fn closest(haystack: &Haystack, hunk: &Hunk) -> Option<usize> {
    let file = &haystack.levels[Whitespace::Ignored as usize];
    let needle: Vec<(isize, String)> = hunk
        .old_lines()
        .enumerate()
        .map(|(offset, line)| (offset as isize, Whitespace::Ignored.normalize(&line.text)))
        .filter(|(_, text)| !text.is_empty())
        .collect();
    let best_by = |same: &dyn Fn(&str, &str) -> bool| {
        let at = |start: usize, offset: isize, shift: isize, text: &str| {
            usize::try_from(start as isize + offset + shift)
                .ok()
                .and_then(|at| file.get(at))
                .is_some_and(|line| same(line, text))
        };
        // (lines found near their place, lines found exactly at it).
        let (best, score) = (0..file.len())
            .map(|start| {
                let near = needle
                    .iter()
                    .filter(|(offset, text)| {
                        (-CLOSEST_SLACK..=CLOSEST_SLACK)
                            .any(|shift| at(start, *offset, shift, text))
                    })
                    .count();
                let exact = needle
                    .iter()
                    .filter(|(offset, text)| at(start, *offset, 0, text))
                    .count();
                (start, (near, exact))
            })
            .fold((0, (0, 0)), |best, candidate| {
                if candidate.1 > best.1 {
                    candidate
                } else {
                    best
                }
            });
        (score.0 > 0).then_some(best)
    };
    best_by(&|line, text| line == text).or_else(|| best_by(&similar))
}

/// Whether two lines share most of their character pairs (Dice coefficient of bigrams).
fn similar(a: &str, b: &str) -> bool {
    const MIN_DICE: f64 = 0.6;
    let bigrams = |text: &str| {
        let chars: Vec<char> = text.chars().collect();
        let mut pairs: Vec<(char, char)> = chars.windows(2).map(|w| (w[0], w[1])).collect();
        pairs.sort_unstable();
        pairs
    };
    let (x, y) = (bigrams(a), bigrams(b));
    if x.is_empty() || y.is_empty() {
        return false;
    }
    let (mut i, mut j, mut shared) = (0, 0, 0);
    while i < x.len() && j < y.len() {
        match x[i].cmp(&y[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                shared += 1;
                i += 1;
                j += 1;
            }
        }
    }
    2.0 * shared as f64 / (x.len() + y.len()) as f64 >= MIN_DICE
}

/// How many of the untrimmed hunk's old lines match (whitespace ignored) if its first old
/// line sits at `implied`.
fn full_hunk_score(haystack: &Haystack, lines: &[HunkLine], implied: isize) -> usize {
    let file = &haystack.levels[Whitespace::Ignored as usize];
    lines
        .iter()
        .filter(|line| line.kind != LineKind::Add)
        .enumerate()
        .filter(|(offset, line)| {
            let at = implied + *offset as isize;
            usize::try_from(at)
                .ok()
                .and_then(|at| file.get(at))
                .is_some_and(|text| *text == Whitespace::Ignored.normalize(&line.text))
        })
        .count()
}

/// A trimmed hunk still says where it goes: it expects at least one non-blank line.
fn is_anchored(lines: &[HunkLine]) -> bool {
    lines
        .iter()
        .any(|line| line.kind != LineKind::Add && !line.text.trim().is_empty())
}

/// Starts (0-based, at or after `from`) where the old side of `lines` matches at `whitespace`.
fn matches(
    haystack: &Haystack,
    lines: &[HunkLine],
    whitespace: Whitespace,
    from: usize,
) -> Vec<usize> {
    let needle: Vec<String> = lines
        .iter()
        .filter(|line| line.kind != LineKind::Add)
        .map(|line| whitespace.normalize(&line.text))
        .collect();
    let file = &haystack.levels[whitespace as usize];
    if needle.len() > file.len() {
        return Vec::new();
    }
    (from..=file.len() - needle.len())
        .filter(|&start| file[start..start + needle.len()] == needle[..])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::diff::marked;
    use crate::patch::text::TextFile;

    fn hunk_of(body: &[&str]) -> Hunk {
        hunk(body)
    }

    fn hunk(body: &[&str]) -> Hunk {
        let lines = marked::lines(body);
        Hunk {
            header: "@@".into(),
            old_start: None,
            new_start: None,
            anchors: Vec::new(),
            lines,
        }
    }

    fn haystack(content: &str) -> Haystack {
        Haystack::new(&TextFile::decode(content.as_bytes()).unwrap().lines)
    }

    #[test]
    fn exact_match_wins_over_looser_ones_elsewhere() {
        let file = haystack("a\nb \nc\nx\na\nb\nc\n");
        let hunk = hunk(&[" a", "-b", " c"]);
        let found = locate(&file, &hunk, 0).unwrap();
        assert_eq!((found.start, found.whitespace), (4, Whitespace::Exact));
    }

    #[test]
    fn a_hunk_of_context_only_is_trimmed_without_overlap() {
        // Found by the fuzzer: one context line is both leading and trailing context.
        let file = haystack("a\nb\n");
        assert_eq!(
            locate(&file, &hunk(&[" z"]), 0).unwrap_err(),
            LocateError::NotFound
        );
        assert_eq!(locate(&file, &hunk(&[" b"]), 0).unwrap().start, 1);
    }

    #[test]
    fn equal_candidates_are_ambiguous() {
        let file = haystack("a\nb\nc\nx\na\nb\nc\n");
        let err = locate(&file, &hunk(&[" a", "-b", " c"]), 0).unwrap_err();
        assert_eq!(err, LocateError::Ambiguous(vec![1, 5]));
    }

    #[test]
    fn from_excludes_earlier_candidates() {
        let file = haystack("a\nb\nc\nx\na\nb\nc\n");
        assert_eq!(
            locate(&file, &hunk(&[" a", "-b", " c"]), 3).unwrap().start,
            4
        );
    }

    #[test]
    fn fuzz_drops_wrong_context_edges() {
        let file = haystack("one\ntwo\nthree\nfour\nfive\n");
        let hunk = hunk(&[" WRONG", " two", "-three", " four"]);
        let found = locate(&file, &hunk, 0).unwrap();
        assert_eq!((found.start, found.fuzz), (1, 1));
    }

    #[test]
    fn dropped_context_that_still_matches_breaks_a_fuzz_tie() {
        // Trimming the stale first line leaves ` b`/`-c` matching twice; only the first place
        // also matches the dropped trailing line.
        let file = haystack("a\nb\nc\nd\nx\nb\nc\ny\n");
        let hunk = hunk(&[" STALE", " b", "-c", " d"]);
        assert_eq!(locate(&file, &hunk, 0).unwrap().start, 1);
        let tie = haystack("b\nc\nd\nx\nb\nc\nd\n");
        assert_eq!(
            locate(&tie, &hunk, 0).unwrap_err(),
            LocateError::Ambiguous(vec![1, 5])
        );
    }

    #[test]
    fn one_stale_context_line_between_changes_is_tolerated_but_not_a_stale_removal() {
        let file = haystack("a\nb\nc\nd\ne\nf\ng\n");
        // Dropping edges cannot help: the stale line sits between two changes.
        let hunk = hunk(&[" a", "-b", "+B", " c", " STALE", " e", "-f", "+F", " g"]);
        let found = locate(&file, &hunk, 0).unwrap();
        assert_eq!((found.start, found.stale_context), (0, true));
        let hunk = hunk_of(&[" a", "-b", "+B", " c", " d", " e", "-STALE", "+F", " g"]);
        assert_eq!(locate(&file, &hunk, 0).unwrap_err(), LocateError::NotFound);
    }

    #[test]
    fn closest_finds_where_a_hunk_that_matches_nowhere_was_meant_to_go() {
        let file = haystack("a\nb\nc\nfn run() {\n    step_one();\n    step_two();\n}\nz\n");
        // The removed line was misremembered, and a context line was dropped.
        let hunk = hunk(&[" fn run() {", "-    step_1();", " }"]);
        assert_eq!(locate(&file, &hunk, 0).unwrap_err(), LocateError::NotFound);
        assert_eq!(closest(&file, &hunk), Some(3));
        assert_eq!(closest(&file, &hunk_of(&["-nowhere"])), None);
        // No line as written, but one much like it.
        assert_eq!(closest(&file, &hunk_of(&["-    step_two(x);"])), Some(5));
    }

    #[test]
    fn whitespace_drift_matches_at_a_looser_level() {
        let file = haystack("fn f() {\n\tlet x = 1;\n}\n");
        let hunk = hunk(&[" fn f() {", "-    let x = 1;", " }"]);
        let found = locate(&file, &hunk, 0).unwrap();
        assert_eq!(found.whitespace, Whitespace::Ignored);
    }

    #[test]
    fn missing_removed_line_is_not_found_and_blank_anchors_are_not_enough() {
        let file = haystack("a\n\nb\n");
        assert_eq!(
            locate(&file, &hunk(&[" a", "-zzz"]), 0).unwrap_err(),
            LocateError::NotFound
        );
        assert_eq!(
            locate(&file, &hunk(&["+new"]), 0).unwrap_err(),
            LocateError::NoAnchor
        );
    }
}
