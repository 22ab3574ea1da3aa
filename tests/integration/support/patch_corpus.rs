//! The patch benchmark corpus: real edits of real files (`tests/inputs/patch-corpus/sources/`),
//! their correct unified diffs, then the imperfections LLMs add to diffs, alone and combined,
//! generated deterministically from a seed. Every case knows its intended result: the exact
//! bytes of every file afterwards, or "refused" for diffs that cannot be placed safely.
//!
//! Shared by the floor test (`tests/integration/patch_corpus.rs`) and the comparison benchmark
//! against `git apply` and `patch` (`benches/patch_corpus.rs`).
#![expect(
    clippy::unwrap_used,
    reason = "a corpus that cannot be built should fail the test loudly"
)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use agent_orch::patch::{EditFormat, Workspace, parse_reply, plan};

const SEED: u64 = 0x00c0_ffee_d1ff;

/// One benchmark case: a repository before, a diff as an LLM might write it, and the intent.
pub(crate) struct Case {
    pub name: String,
    /// Repository-relative path and bytes of every file before the patch.
    pub files: Vec<(String, Vec<u8>)>,
    pub diff: String,
    /// The edit format `diff` is written in.
    pub format: EditFormat,
    pub imperfections: Vec<Imperfection>,
    pub expected: Expected,
}

pub(crate) enum Expected {
    /// Every path the patch should touch, with its bytes afterwards (`None`: deleted).
    Changes(Vec<(String, Option<Vec<u8>>)>),
    /// Context that matches nowhere, or equally well in several places: applying is wrong.
    Refusal,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Imperfection {
    Fences,
    Prose,
    WrongLineNumbers,
    WrongCounts,
    NoNumbers,
    NoPrefixes,
    GitHeaders,
    CrlfDiff,
    TrailingWhitespace,
    TabsForSpaces,
    LostContextSpace,
    /// One context line differs from the file (the model misremembered it).
    StaleContext,
    NoNewlineMarkerDropped,
    CrlfTarget,
    /// `./src/x` or `a/src/x` where the format wants a plain path.
    PathPrefix,
    /// A blank context line left out, or one added, between two context lines.
    BlankLines,
    /// The whole edit dedented (a nested block written from column 0) or indented one level
    /// too deep, its added lines too.
    WrongIndent,
    /// The edge context line of a SEARCH cut off mid-line (and copied so into REPLACE).
    TruncatedSearch,
    /// `**path**`, `` `path`: ``, `### File: path` or the path in the fence's info string.
    PathDecoration,
    /// SEARCH/REPLACE blocks not in the file's order.
    OutOfOrder,
    /// No `*** End Patch`.
    NoEndMarker,
}

pub(crate) const ALL_IMPERFECTIONS: [Imperfection; 14] = [
    Imperfection::Fences,
    Imperfection::Prose,
    Imperfection::WrongLineNumbers,
    Imperfection::WrongCounts,
    Imperfection::NoNumbers,
    Imperfection::NoPrefixes,
    Imperfection::GitHeaders,
    Imperfection::CrlfDiff,
    Imperfection::TrailingWhitespace,
    Imperfection::TabsForSpaces,
    Imperfection::LostContextSpace,
    Imperfection::StaleContext,
    Imperfection::NoNewlineMarkerDropped,
    Imperfection::CrlfTarget,
];

/// Imperfections that only change the text of the diff.
const TEXTUAL: [Imperfection; 12] = [
    Imperfection::Fences,
    Imperfection::Prose,
    Imperfection::WrongLineNumbers,
    Imperfection::WrongCounts,
    Imperfection::NoNumbers,
    Imperfection::NoPrefixes,
    Imperfection::GitHeaders,
    Imperfection::CrlfDiff,
    Imperfection::TrailingWhitespace,
    Imperfection::TabsForSpaces,
    Imperfection::LostContextSpace,
    Imperfection::StaleContext,
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Correct,
    Refused,
    Wrong,
}

/// The whole corpus, in a stable order.
pub(crate) fn corpus() -> Vec<Case> {
    let sources = load_sources();
    let mut rng = Rng(SEED);
    let mut cases = Vec::new();
    let mut single = 0;
    for (name, text) in &sources {
        let path = format!("src/{name}");
        for kind in EditKind::ALL {
            let Some(edit) = kind.make(&path, text, &mut rng) else {
                continue;
            };
            // The clean diff, one imperfection alone (cycling through all of them), and two
            // random combinations.
            let alone = vec![TEXTUAL[single % TEXTUAL.len()]];
            single += 1;
            let mixes = [Vec::new(), alone, rng.combination(2), rng.combination(3)];
            for imperfections in mixes {
                cases.push(build_case(
                    std::slice::from_ref(&edit),
                    imperfections,
                    &mut rng,
                ));
            }
        }
    }
    special_cases(&sources, &mut rng, &mut cases);
    refusal_cases(&sources, &mut rng, &mut cases);
    cases
}

fn load_sources() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/inputs/patch-corpus/sources");
    let mut sources: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(entry.path()).unwrap())
        })
        .collect();
    sources.sort();
    sources
}

/// SplitMix64: small, seeded, and the same on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound.max(1) as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn combination(&mut self, count: usize) -> Vec<Imperfection> {
        self.combination_of(&TEXTUAL, count)
    }

    /// `count` different imperfections from `pool`; a uniform re-indentation never comes with
    /// tabs for spaces, which would make it non-uniform.
    fn combination_of(&mut self, pool: &[Imperfection], count: usize) -> Vec<Imperfection> {
        let mut picked = Vec::new();
        while picked.len() < count.min(pool.len()) {
            let candidate = pool[self.below(pool.len())];
            let clash = |a, b| candidate == a && picked.contains(&b);
            if !picked.contains(&candidate)
                && !clash(Imperfection::WrongIndent, Imperfection::TabsForSpaces)
                && !clash(Imperfection::TabsForSpaces, Imperfection::WrongIndent)
            {
                picked.push(candidate);
            }
        }
        picked.sort();
        picked
    }
}

/// A change to one file: `old: None` creates it, `new: None` deletes it.
#[derive(Clone)]
struct FileEdit {
    path: String,
    label: String,
    old: Option<String>,
    new: Option<String>,
}

#[derive(Clone, Copy)]
enum EditKind {
    ChangeLine,
    InsertBlock,
    DeleteBlock,
    Rename,
    TwoPlaces,
}

impl EditKind {
    const ALL: [Self; 5] = [
        Self::ChangeLine,
        Self::InsertBlock,
        Self::DeleteBlock,
        Self::Rename,
        Self::TwoPlaces,
    ];

    /// A realistic edit of `text`, placed where every resulting hunk is unambiguous.
    fn make(self, path: &str, text: &str, rng: &mut Rng) -> Option<FileEdit> {
        let lines: Vec<&str> = text.lines().collect();
        for _attempt in 0..50 {
            let new_lines = match self {
                Self::ChangeLine => change_line(&lines, rng.below(lines.len())),
                Self::InsertBlock => insert_block(path, &lines, rng.below(lines.len())),
                Self::DeleteBlock => delete_block(&lines, rng.below(lines.len()), 1 + rng.below(3)),
                Self::Rename => rename(&lines, rng),
                Self::TwoPlaces => {
                    let first = rng.below(lines.len() / 2);
                    let second = lines.len() / 2 + 5 + rng.below(lines.len() / 2 - 5);
                    let changed = change_line(&lines, second)?;
                    let changed: Vec<&str> = changed.iter().map(String::as_str).collect();
                    insert_block(path, &changed, first)
                }
            };
            let Some(new_lines) = new_lines else { continue };
            let new = join(&new_lines, true);
            if new != text && hunks_are_unique(text, &new) {
                let label = format!("{self:?}").to_lowercase();
                return Some(FileEdit {
                    path: path.into(),
                    label,
                    old: Some(text.into()),
                    new: Some(new),
                });
            }
        }
        None
    }
}

impl std::fmt::Debug for EditKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            Self::ChangeLine => "change_line",
            Self::InsertBlock => "insert_block",
            Self::DeleteBlock => "delete_block",
            Self::Rename => "rename",
            Self::TwoPlaces => "two_places",
        };
        f.write_str(name)
    }
}

fn join(lines: &[String], final_newline: bool) -> String {
    let mut text = lines.join("\n");
    if final_newline && !lines.is_empty() {
        text.push('\n');
    }
    text
}

fn first_identifier(line: &str) -> Option<(usize, &str)> {
    let bytes = line.as_bytes();
    let mut start = None;
    for (index, &byte) in bytes.iter().chain(std::iter::once(&b' ')).enumerate() {
        let word_char = byte.is_ascii_alphanumeric() || byte == b'_';
        match (start, word_char) {
            (None, true) if byte.is_ascii_alphabetic() => start = Some(index),
            (Some(from), false) => {
                if index - from >= 3 {
                    return Some((from, &line[from..index]));
                }
                start = None;
            }
            _ => {}
        }
    }
    None
}

/// Renames the first identifier of a non-blank line (`foo` → `foo_v2`).
fn change_line(lines: &[&str], at: usize) -> Option<Vec<String>> {
    let line = lines.get(at)?;
    let (from, word) = first_identifier(line)?;
    let changed = format!("{}{word}_v2{}", &line[..from], &line[from + word.len()..]);
    let mut out: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
    out[at] = changed;
    Some(out)
}

fn comment(path: &str, text: &str) -> String {
    match path.rsplit('.').next() {
        Some("rs" | "js" | "c") => format!("// {text}"),
        Some("css") => format!("/* {text} */"),
        Some("sh" | "yml" | "toml") => format!("# {text}"),
        _ => text.to_owned(),
    }
}

/// Inserts a short comment block after line `at`, indented like it.
fn insert_block(path: &str, lines: &[&str], at: usize) -> Option<Vec<String>> {
    let anchor = lines.get(at)?;
    if anchor.trim().is_empty() {
        return None;
    }
    let indent: String = anchor.chars().take_while(|c| c.is_whitespace()).collect();
    let mut out: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
    let block = [
        comment(
            path,
            "Checked by the deploy fixer: keep this in sync with the manifest.",
        ),
        comment(
            path,
            &format!("See issue #{} for the failure this addresses.", 100 + at),
        ),
    ];
    for (offset, line) in block.into_iter().enumerate() {
        out.insert(at + 1 + offset, format!("{indent}{line}"));
    }
    Some(out)
}

fn delete_block(lines: &[&str], at: usize, count: usize) -> Option<Vec<String>> {
    if at + count > lines.len() || lines[at].trim().is_empty() {
        return None;
    }
    let mut out: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
    out.drain(at..at + count);
    Some(out)
}

/// Renames an identifier that occurs on two to five lines, everywhere.
fn rename(lines: &[&str], rng: &mut Rng) -> Option<Vec<String>> {
    let (_, word) = first_identifier(lines.get(rng.below(lines.len()))?)?;
    let uses = lines.iter().filter(|line| line.contains(word)).count();
    if !(2..=5).contains(&uses) {
        return None;
    }
    Some(
        lines
            .iter()
            .map(|line| line.replace(word, &format!("{word}Renamed")))
            .collect(),
    )
}

/// Whether every hunk of the diff from `old` to `new` matches exactly one place in `old`, even
/// with all whitespace ignored: a case the tool is right to refuse is not a fair "apply" case.
fn hunks_are_unique(old: &str, new: &str) -> bool {
    let squash = |line: &str| {
        line.chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
    };
    let file: Vec<String> = old.lines().map(squash).collect();
    diff_hunks(old, new).iter().all(|hunk| {
        let needle: Vec<String> = hunk
            .lines
            .iter()
            .filter(|(mark, ..)| *mark != '+')
            .map(|(_, text, _)| squash(text))
            .collect();
        let count = (0..=file.len().saturating_sub(needle.len()))
            .filter(|&start| file[start..start + needle.len()] == needle[..])
            .count();
        count == 1
    })
}

/// A hunk of a correct diff: 1-based starts, and lines as (marker, text, no-newline-after).
#[derive(Clone)]
struct DiffHunk {
    old_start: usize,
    old_count: usize,
    new_start: usize,
    new_count: usize,
    lines: Vec<(char, String, bool)>,
}

/// The correct unified diff hunks (three lines of context) from `old` to `new`, through the
/// longest common subsequence of their lines.
fn diff_hunks(old: &str, new: &str) -> Vec<DiffHunk> {
    // Lines with whether a newline follows them: a last line without one differs from the
    // same text with one, as in `diff -u`.
    let items = |text: &str| -> Vec<(String, bool)> {
        let count = text.lines().count();
        let ends = text.ends_with('\n');
        text.lines()
            .enumerate()
            .map(|(i, line)| (line.to_owned(), i + 1 < count || ends))
            .collect()
    };
    let (a, b) = (items(old), items(new));
    // LCS table, fine for files of a few hundred lines.
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
    // The edit script: (marker, old index, new index).
    let mut script: Vec<(char, usize, usize)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && lcs[i][j] == lcs[i + 1][j + 1] + 1 && a[i] == b[j] {
            script.push((' ', i, j));
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            script.push(('+', i, j));
            j += 1;
        } else {
            script.push(('-', i, j));
            i += 1;
        }
    }
    // Group changes with three lines of context, merging groups whose context touches.
    let changed: Vec<usize> = (0..script.len()).filter(|&k| script[k].0 != ' ').collect();
    let mut groups: Vec<(usize, usize)> = Vec::new();
    for &k in &changed {
        let (from, to) = (k.saturating_sub(3), (k + 4).min(script.len()));
        match groups.last_mut() {
            Some(last) if from <= last.1 => last.1 = to,
            _ => groups.push((from, to)),
        }
    }
    groups
        .into_iter()
        .map(|(from, to)| {
            let entries = &script[from..to];
            let lines = entries
                .iter()
                .map(|&(mark, i, j)| {
                    let (text, eol) = if mark == '+' { &b[j] } else { &a[i] };
                    (mark, text.clone(), !eol)
                })
                .collect::<Vec<_>>();
            let old_count = entries.iter().filter(|e| e.0 != '+').count();
            let new_count = entries.iter().filter(|e| e.0 != '-').count();
            let (_, first_i, first_j) = entries[0];
            DiffHunk {
                old_start: if old_count == 0 { first_i } else { first_i + 1 },
                old_count,
                new_start: if new_count == 0 { first_j } else { first_j + 1 },
                new_count,
                lines,
            }
        })
        .collect()
}

/// Renders the diff of `edits` with `imperfections`, as an LLM reply.
fn render(edits: &[FileEdit], imperfections: &[Imperfection], rng: &mut Rng) -> String {
    let has = |imperfection| imperfections.contains(&imperfection);
    let mut diff = String::new();
    for edit in edits {
        let (old, new) = (
            edit.old.as_deref().unwrap_or(""),
            edit.new.as_deref().unwrap_or(""),
        );
        let (a, b) = if has(Imperfection::NoPrefixes) {
            ("", "")
        } else {
            ("a/", "b/")
        };
        let old_name = edit
            .old
            .as_ref()
            .map_or("/dev/null".to_owned(), |_| format!("{a}{}", edit.path));
        let new_name = edit
            .new
            .as_ref()
            .map_or("/dev/null".to_owned(), |_| format!("{b}{}", edit.path));
        if has(Imperfection::GitHeaders) {
            let _ = writeln!(diff, "diff --git a/{0} b/{0}", edit.path);
            match (&edit.old, &edit.new) {
                (None, _) => diff.push_str("new file mode 100644\nindex 0000000..3b18e51\n"),
                (_, None) => diff.push_str("deleted file mode 100644\nindex 3b18e51..0000000\n"),
                _ => diff.push_str("index 9daeafb..3b18e51 100644\n"),
            }
        }
        let _ = writeln!(diff, "--- {old_name}\n+++ {new_name}");
        for mut hunk in diff_hunks(old, new) {
            if has(Imperfection::StaleContext) {
                let context: Vec<usize> = (0..hunk.lines.len())
                    .filter(|&i| hunk.lines[i].0 == ' ')
                    .collect();
                if !context.is_empty() {
                    let stale = &mut hunk.lines[context[rng.below(context.len())]].1;
                    stale.push_str(" /* as it was before */");
                }
            }
            diff.push_str(&hunk_header(&hunk, imperfections, rng));
            for (mark, text, no_newline) in &hunk.lines {
                let text = if *mark == '+' {
                    text.clone()
                } else {
                    drift(text, imperfections, rng)
                };
                if *mark == ' ' && text.is_empty() && has(Imperfection::LostContextSpace) {
                    diff.push('\n');
                } else {
                    let _ = writeln!(diff, "{mark}{text}");
                }
                if *no_newline && !has(Imperfection::NoNewlineMarkerDropped) {
                    diff.push_str("\\ No newline at end of file\n");
                }
            }
        }
    }
    if has(Imperfection::CrlfDiff) {
        diff = diff.replace('\n', "\r\n");
    }
    let path = &edits[0].path;
    if has(Imperfection::Fences) {
        diff = format!(
            "The failure comes from `{path}`. Here is a fix:\n\n```diff\n{diff}```\n\nThis should make the deploy pass.\n"
        );
    }
    if has(Imperfection::Prose) {
        diff = format!(
            "I looked at the log. The change below updates {path}:\n\n{diff}\nAfter this, rerun the pipeline.\n"
        );
    }
    diff
}

fn hunk_header(hunk: &DiffHunk, imperfections: &[Imperfection], rng: &mut Rng) -> String {
    if imperfections.contains(&Imperfection::NoNumbers) {
        return if rng.chance(50) {
            "@@ ... @@\n".into()
        } else {
            "@@ @@\n".into()
        };
    }
    let (mut old_start, mut new_start) = (hunk.old_start, hunk.new_start);
    let (mut old_count, mut new_count) = (hunk.old_count, hunk.new_count);
    if imperfections.contains(&Imperfection::WrongLineNumbers) {
        let shift = 3 + rng.below(40);
        if rng.chance(50) || old_start <= shift {
            old_start += shift;
            new_start += shift + rng.below(3);
        } else {
            old_start -= shift;
            new_start = new_start.saturating_sub(shift).max(1);
        }
    }
    if imperfections.contains(&Imperfection::WrongCounts) {
        old_count = (old_count + rng.below(6)).saturating_sub(2);
        new_count = (new_count + rng.below(6)).saturating_sub(1);
    }
    format!("@@ -{old_start},{old_count} +{new_start},{new_count} @@\n")
}

/// Whitespace drift in a line the model copied from the file (context or removed).
fn drift(text: &str, imperfections: &[Imperfection], rng: &mut Rng) -> String {
    let mut text = text.to_owned();
    if imperfections.contains(&Imperfection::TabsForSpaces) {
        let indent = text.len() - text.trim_start_matches(' ').len();
        text = format!(
            "{}{}{}",
            "\t".repeat(indent / 4),
            " ".repeat(indent % 4),
            &text[indent..]
        );
    }
    if imperfections.contains(&Imperfection::TrailingWhitespace)
        && !text.is_empty()
        && rng.chance(60)
    {
        text.push_str(if rng.chance(50) { "  " } else { "\t" });
    }
    text
}

fn crlf(text: &str) -> String {
    text.replace('\n', "\r\n")
}

fn build_case(edits: &[FileEdit], imperfections: Vec<Imperfection>, rng: &mut Rng) -> Case {
    build_case_in(EditFormat::Unified, edits, imperfections, rng)
}

fn build_case_in(
    format: EditFormat,
    edits: &[FileEdit],
    imperfections: Vec<Imperfection>,
    rng: &mut Rng,
) -> Case {
    let crlf_target = imperfections.contains(&Imperfection::CrlfTarget);
    let on_disk = |text: &str| {
        if crlf_target {
            crlf(text)
        } else {
            text.to_owned()
        }
    };
    let files = edits
        .iter()
        .filter_map(|edit| Some((edit.path.clone(), on_disk(edit.old.as_ref()?).into_bytes())))
        .collect();
    let changes = edits
        .iter()
        .map(|edit| {
            (
                edit.path.clone(),
                edit.new.as_deref().map(|new| on_disk(new).into_bytes()),
            )
        })
        .collect();
    let labels: Vec<&str> = edits.iter().map(|edit| edit.label.as_str()).collect();
    Case {
        name: case_name(&edits[0].path, &labels.join("+"), &imperfections),
        files,
        diff: match format {
            EditFormat::Unified => render(edits, &imperfections, rng),
            EditFormat::V4a => render_v4a(edits, &imperfections, rng),
            EditFormat::SearchReplace => render_search_replace(edits, &imperfections, rng),
            EditFormat::WholeFile => render_whole_file(edits, &imperfections, rng),
        },
        format,
        imperfections,
        expected: Expected::Changes(changes),
    }
}

fn case_name(path: &str, label: &str, imperfections: &[Imperfection]) -> String {
    let mut name = format!("{path}:{label}");
    for imperfection in imperfections {
        let _ = write!(name, "+{imperfection:?}");
    }
    name
}

fn source_text(sources: &[(String, String)], name: &str) -> String {
    sources
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, t)| t.clone())
        .unwrap()
}

/// A new notes file, and the deletion of `small` (`src/signal_hook_extract.c`).
fn new_and_deleted_file(small: &str) -> [FileEdit; 2] {
    [
        FileEdit {
            path: "src/notes/deploy.md".into(),
            label: "new_file".into(),
            old: None,
            new: Some(
                "# Deploy notes\n\n- the readiness probe waits 10s\n- rollback keeps one revision\n"
                    .into(),
            ),
        },
        FileEdit {
            path: "src/signal_hook_extract.c".into(),
            label: "delete_file".into(),
            old: Some(small.to_owned()),
            new: None,
        },
    ]
}

/// The source `name` without its final newline, edited at its end: a line appended (even
/// `index`) or its last line changed (odd); `None` when that edit would be ambiguous.
fn no_final_newline_edit(index: usize, name: &str, text: &str) -> Option<FileEdit> {
    let old = text.trim_end_matches('\n').to_owned();
    let mut lines: Vec<String> = old.lines().map(str::to_owned).collect();
    let last = lines.len() - 1;
    let edited = if index.is_multiple_of(2) {
        lines.push(comment(name, "end of generated section"));
        lines
    } else {
        change_line(&lines.iter().map(String::as_str).collect::<Vec<_>>(), last)?
    };
    let new = join(&edited, false);
    hunks_are_unique(&old, &new).then(|| FileEdit {
        path: format!("src/{name}"),
        label: "no_final_newline".into(),
        old: Some(old),
        new: Some(new),
    })
}

/// Whole-file changes, several files, duplicated code, CRLF and newline-less targets.
fn special_cases(sources: &[(String, String)], rng: &mut Rng, cases: &mut Vec<Case>) {
    let text = |name: &str| source_text(sources, name);
    let small = text("signal_hook_extract.c");
    let js = text("wasm_streams_readable_stream.js");
    let [new_file, delete_file] = new_and_deleted_file(&small);
    for round in 0..6 {
        let imperfections = if round == 0 {
            Vec::new()
        } else {
            rng.combination(1 + round % 3)
        };
        cases.push(build_case(
            std::slice::from_ref(&new_file),
            imperfections.clone(),
            rng,
        ));
        cases.push(build_case(
            std::slice::from_ref(&delete_file),
            imperfections.clone(),
            rng,
        ));
        let first = EditKind::ChangeLine
            .make("src/signal_hook_extract.c", &small, rng)
            .unwrap();
        let second = EditKind::InsertBlock
            .make("src/wasm_streams_readable_stream.js", &js, rng)
            .unwrap();
        cases.push(build_case(&[first, second], imperfections, rng));
    }
    // CRLF files on disk, diffs written with LF (the model never sees the `\r`).
    for (index, (name, text)) in sources.iter().chain(sources.iter()).enumerate() {
        let kind = EditKind::ALL[index % EditKind::ALL.len()];
        let Some(edit) = kind.make(&format!("src/{name}"), text, rng) else {
            continue;
        };
        let mut imperfections = vec![Imperfection::CrlfTarget];
        if index % 2 == 1 {
            imperfections.extend(rng.combination(2));
        }
        cases.push(build_case(&[edit], imperfections, rng));
    }
    // Files without a final newline, edited at their end; the model may drop the marker.
    for (index, (name, text)) in sources.iter().enumerate() {
        let Some(edit) = no_final_newline_edit(index, name, text) else {
            continue;
        };
        let mut dropped_and_more = rng.combination(2);
        dropped_and_more.push(Imperfection::NoNewlineMarkerDropped);
        for imperfections in [
            vec![Imperfection::NoNewlineMarkerDropped],
            dropped_and_more,
            rng.combination(2),
        ] {
            cases.push(build_case(std::slice::from_ref(&edit), imperfections, rng));
        }
    }
    // A line that occurs many times, edited at one occurrence: unique only with its context.
    let panic_tests = text("tokio_rt_panic.rs");
    let lines: Vec<&str> = panic_tests.lines().collect();
    let repeated = "    assert_eq!(&panic_location_file.unwrap(), file!());";
    for (at, _) in lines
        .iter()
        .enumerate()
        .filter(|(_, line)| **line == repeated)
    {
        let mut edited: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
        edited[at] = "    assert_eq!(panic_location_file.as_deref(), Some(file!()));".into();
        let new = join(&edited, true);
        if !hunks_are_unique(&panic_tests, &new) {
            continue;
        }
        let edit = FileEdit {
            path: "src/tokio_rt_panic.rs".into(),
            label: "near_duplicate".into(),
            old: Some(panic_tests.clone()),
            new: Some(new),
        };
        for imperfections in [vec![Imperfection::WrongLineNumbers], rng.combination(3)] {
            cases.push(build_case(std::slice::from_ref(&edit), imperfections, rng));
        }
    }
}

/// Diffs that must be refused: ambiguous context, context that does not exist, missing files.
fn refusal_cases(sources: &[(String, String)], rng: &mut Rng, cases: &mut Vec<Case>) {
    // Ambiguous: a window of lines that occurs twice or more; the hunk carries only that window
    // as its old side, so nothing in it says which occurrence is meant.
    for (name, text) in sources {
        let lines: Vec<&str> = text.lines().collect();
        let mut made = 0;
        for width in [3, 4] {
            for start in 0..lines.len().saturating_sub(width) {
                let window = &lines[start..start + width];
                if made >= 3 || window.iter().filter(|l| l.trim().len() > 3).count() < 2 {
                    continue;
                }
                let occurrences = (0..=lines.len() - width)
                    .filter(|&s| lines[s..s + width] == *window)
                    .count();
                if occurrences < 2 || (0..start).any(|s| lines[s..s + width] == *window) {
                    continue;
                }
                let middle = width / 2;
                let Some(changed) = change_line(window, middle) else {
                    continue;
                };
                let mut body = format!(
                    "--- a/src/{name}\n+++ b/src/{name}\n@@ -{0},{width} +{0},{width} @@\n",
                    start + 1 + rng.below(30)
                );
                for (offset, line) in window.iter().enumerate() {
                    if offset == middle {
                        let _ = writeln!(body, "-{line}\n+{}", changed[middle]);
                    } else {
                        let _ = writeln!(body, " {line}");
                    }
                }
                let files = vec![(format!("src/{name}"), text.clone().into_bytes())];
                let diff = if made % 2 == 0 {
                    format!("```diff\n{body}```\n")
                } else {
                    body
                };
                cases.push(Case {
                    name: format!("src/{name}:ambiguous#{made}"),
                    files,
                    diff,
                    format: EditFormat::Unified,
                    imperfections: Vec::new(),
                    expected: Expected::Refusal,
                });
                made += 1;
            }
        }
    }
    // Context that does not exist: the model misremembered the line it removes.
    for (index, (name, text)) in sources.iter().enumerate() {
        let path = format!("src/{name}");
        let Some(edit) = EditKind::ChangeLine.make(&path, text, rng) else {
            continue;
        };
        let imperfections = if index % 2 == 0 {
            Vec::new()
        } else {
            rng.combination(2)
        };
        let mut case = build_case(&[edit], imperfections, rng);
        let mut replaced = false;
        let mut diff = String::new();
        for line in case.diff.split_inclusive('\n') {
            let body = line.trim_end_matches(['\r', '\n']);
            if !replaced && body.starts_with('-') && !body.starts_with("---") {
                replaced = true;
                diff.push_str(&format!("{body} && hallucinated_guard()"));
                diff.push_str(&line[body.len()..]);
            } else {
                diff.push_str(line);
            }
        }
        assert!(replaced, "a change_line diff removes a line");
        case.diff = diff;
        case.name = format!("{path}:hallucinated_context#{index}");
        case.expected = Expected::Refusal;
        cases.push(case);
        // And a diff against a file that is not there.
        let missing = Case {
            name: format!("src/missing_{index}.rs:missing_file"),
            files: vec![(path.clone(), text.clone().into_bytes())],
            diff: format!(
                "--- a/src/missing_{index}.rs\n+++ b/src/missing_{index}.rs\n@@ -3,3 +3,3 @@\n fn main() {{\n-    old();\n+    new();\n }}\n"
            ),
            format: EditFormat::Unified,
            imperfections: Vec::new(),
            expected: Expected::Refusal,
        };
        if index % 4 == 0 {
            cases.push(missing);
        }
    }
}

/// Writes the case's "before" repository into `dir`.
pub(crate) fn materialize(case: &Case, dir: &Path) {
    for (path, bytes) in &case.files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
}

/// Judges the repository in `dir` after a tool ran on the case. Files the case does not know
/// (`.orig`, `.rej` left by `patch`) are ignored.
pub(crate) fn judge(case: &Case, dir: &Path) -> Outcome {
    let read = |path: &str| std::fs::read(dir.join(path)).ok();
    let before: BTreeMap<&str, Option<&[u8]>> = case
        .files
        .iter()
        .map(|(path, bytes)| (path.as_str(), Some(bytes.as_slice())))
        .collect();
    let mut touched: Vec<&str> = before.keys().copied().collect();
    if let Expected::Changes(changes) = &case.expected {
        touched.extend(changes.iter().map(|(path, _)| path.as_str()));
    }
    let unchanged = touched
        .iter()
        .all(|path| read(path).as_deref() == before.get(path).copied().flatten());
    match &case.expected {
        Expected::Refusal => {
            if unchanged {
                Outcome::Correct
            } else {
                Outcome::Wrong
            }
        }
        Expected::Changes(changes) => {
            let expected_after = |path: &str| match changes.iter().find(|(p, _)| p == path) {
                Some((_, after)) => after.as_deref(),
                None => before.get(path).copied().flatten(),
            };
            if touched
                .iter()
                .all(|path| read(path).as_deref() == expected_after(path))
            {
                Outcome::Correct
            } else if unchanged {
                Outcome::Refused
            } else {
                Outcome::Wrong
            }
        }
    }
}

/// Runs agent-orch's own parser and applier on the case, in a fresh temp dir.
pub(crate) fn run_ours(case: &Case) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    materialize(case, dir.path());
    let workspace = Workspace::new(dir.path()).unwrap();
    if let Ok(parsed) = parse_reply(&case.diff, Some(case.format), &workspace)
        && let Ok(plan) = plan(&parsed.patch, &workspace)
    {
        let _ = plan.apply();
    }
    judge(case, dir.path())
}

/// The imperfections each edit format is tested with: those a model makes in that format.
pub(crate) fn imperfections_of(format: EditFormat) -> &'static [Imperfection] {
    use Imperfection::*;
    match format {
        EditFormat::Unified => &TEXTUAL,
        EditFormat::V4a => &[
            Fences,
            Prose,
            CrlfDiff,
            TrailingWhitespace,
            TabsForSpaces,
            LostContextSpace,
            StaleContext,
            PathPrefix,
            BlankLines,
            WrongIndent,
            NoEndMarker,
        ],
        EditFormat::SearchReplace => &[
            Fences,
            Prose,
            CrlfDiff,
            TrailingWhitespace,
            TabsForSpaces,
            StaleContext,
            PathPrefix,
            PathDecoration,
            BlankLines,
            WrongIndent,
            TruncatedSearch,
            OutOfOrder,
        ],
        EditFormat::WholeFile => &[Prose, CrlfDiff, PathPrefix, PathDecoration],
    }
}

/// The corpus of one edit format: the same real edits as the unified corpus, written in
/// `format` with that format's imperfections, plus CRLF and newline-less targets, duplicated
/// code, several files at once, and replies that must be refused. The unified format's corpus
/// is [`corpus`].
pub(crate) fn format_corpus(format: EditFormat) -> Vec<Case> {
    if format == EditFormat::Unified {
        return corpus();
    }
    let pool = imperfections_of(format);
    let sources = load_sources();
    let mut rng = Rng(SEED ^ (0x5eed << (format as u64 * 8)));
    let mut cases = Vec::new();
    let mut single = 0;
    let representable = |edit: &FileEdit| format == EditFormat::V4a || edit.new.is_some();
    for (name, text) in &sources {
        let path = format!("src/{name}");
        for kind in EditKind::ALL {
            let Some(edit) = kind.make(&path, text, &mut rng) else {
                continue;
            };
            let alone = vec![pool[single % pool.len()]];
            single += 1;
            let mixes = [
                Vec::new(),
                alone,
                rng.combination_of(pool, 2),
                rng.combination_of(pool, 3),
            ];
            for imperfections in mixes {
                cases.push(build_case_in(
                    format,
                    std::slice::from_ref(&edit),
                    imperfections,
                    &mut rng,
                ));
            }
        }
    }
    // CRLF files on disk, replies written with LF.
    for (index, (name, text)) in sources.iter().enumerate() {
        let kind = EditKind::ALL[index % EditKind::ALL.len()];
        let Some(edit) = kind.make(&format!("src/{name}"), text, &mut rng) else {
            continue;
        };
        let mut imperfections = vec![Imperfection::CrlfTarget];
        imperfections.extend(rng.combination_of(pool, 1 + index % 2));
        cases.push(build_case_in(format, &[edit], imperfections, &mut rng));
    }
    // Files without a final newline, edited at their end.
    for (index, (name, text)) in sources.iter().enumerate() {
        let Some(edit) = no_final_newline_edit(index, name, text) else {
            continue;
        };
        let imperfections = rng.combination_of(pool, index % 3);
        cases.push(build_case_in(format, &[edit], imperfections, &mut rng));
    }
    // A new file, a deleted one, two files at once, and a line repeated many times.
    let text = |name: &str| source_text(&sources, name);
    let small = text("signal_hook_extract.c");
    let js = text("wasm_streams_readable_stream.js");
    let [new_file, delete_file] = new_and_deleted_file(&small);
    for round in 0..4 {
        let imperfections = rng.combination_of(pool, round % 3);
        for edit in [&new_file, &delete_file] {
            if representable(edit) {
                cases.push(build_case_in(
                    format,
                    std::slice::from_ref(edit),
                    imperfections.clone(),
                    &mut rng,
                ));
            }
        }
        let first = EditKind::ChangeLine
            .make("src/signal_hook_extract.c", &small, &mut rng)
            .unwrap();
        let second = EditKind::InsertBlock
            .make("src/wasm_streams_readable_stream.js", &js, &mut rng)
            .unwrap();
        cases.push(build_case_in(
            format,
            &[first, second],
            imperfections,
            &mut rng,
        ));
    }
    let panic_tests = text("tokio_rt_panic.rs");
    let lines: Vec<&str> = panic_tests.lines().collect();
    let repeated = "    assert_eq!(&panic_location_file.unwrap(), file!());";
    for (at, _) in lines.iter().enumerate().filter(|(_, l)| **l == repeated) {
        let mut edited: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
        edited[at] = "    assert_eq!(panic_location_file.as_deref(), Some(file!()));".into();
        let new = join(&edited, true);
        if !hunks_are_unique(&panic_tests, &new) {
            continue;
        }
        let edit = FileEdit {
            path: "src/tokio_rt_panic.rs".into(),
            label: "near_duplicate".into(),
            old: Some(panic_tests.clone()),
            new: Some(new),
        };
        let imperfections = rng.combination_of(pool, 2);
        cases.push(build_case_in(format, &[edit], imperfections, &mut rng));
    }
    format_refusals(format, &sources, &mut rng, &mut cases);
    cases
}

/// Replies in `format` that must be refused: a changed line whose context occurs twice, a
/// removed line that is not in the file, an edit of a file that does not exist, and (whole
/// files) content that elides part of the file.
fn format_refusals(
    format: EditFormat,
    sources: &[(String, String)],
    rng: &mut Rng,
    cases: &mut Vec<Case>,
) {
    let refusal = |name: String, files: Vec<(String, Vec<u8>)>, diff: String| Case {
        name,
        files,
        diff,
        format,
        imperfections: Vec::new(),
        expected: Expected::Refusal,
    };
    for (index, (name, text)) in sources.iter().enumerate() {
        let path = format!("src/{name}");
        let files = vec![(path.clone(), text.clone().into_bytes())];
        if format == EditFormat::WholeFile {
            let mut lines: Vec<&str> = text.lines().collect();
            let keep = lines.len() / 3;
            lines.truncate(keep);
            let content = format!(
                "{}\n{}\n",
                lines.join("\n"),
                comment(name, "... rest unchanged")
            );
            let fence = if content.contains("```") {
                "````"
            } else {
                "```"
            };
            let diff = format!("{path}\n{fence}\n{content}{fence}\n");
            cases.push(refusal(format!("{path}:elided_whole_file"), files, diff));
            continue;
        }
        // Ambiguous: a window of lines that occurs twice, changed in its middle.
        let lines: Vec<&str> = text.lines().collect();
        let width = 3;
        let ambiguous = (0..lines.len().saturating_sub(width)).find(|&start| {
            let window = &lines[start..start + width];
            window.iter().filter(|l| l.trim().len() > 3).count() >= 2
                && (start + 1..=lines.len() - width).any(|s| lines[s..s + width] == *window)
                && change_line(window, 1).is_some()
        });
        if let Some(start) = ambiguous {
            let window = &lines[start..start + width];
            let changed = change_line(window, 1).unwrap();
            let hunk = DiffHunk {
                old_start: start + 1,
                old_count: width,
                new_start: start + 1,
                new_count: width,
                lines: vec![
                    (' ', window[0].to_owned(), false),
                    ('-', window[1].to_owned(), false),
                    ('+', changed[1].clone(), false),
                    (' ', window[2].to_owned(), false),
                ],
            };
            let diff = render_hunks(format, &path, &[hunk], &[], rng);
            cases.push(refusal(format!("{path}:ambiguous"), files.clone(), diff));
        }
        // A removed line the model misremembered.
        if let Some(edit) = EditKind::ChangeLine.make(&path, text, rng) {
            let mut hunks = diff_hunks(text, edit.new.as_deref().unwrap_or(""));
            if let Some(removed) = hunks[0].lines.iter_mut().find(|line| line.0 == '-') {
                removed.1.push_str(" && hallucinated_guard()");
            }
            let imperfections = rng.combination_of(imperfections_of(format), index % 2);
            let diff = render_hunks(format, &path, &hunks, &imperfections, rng);
            cases.push(refusal(
                format!("{path}:hallucinated_context"),
                files.clone(),
                diff,
            ));
        }
        // An edit of a file that is not there.
        if index % 3 == 0 {
            let hunk = DiffHunk {
                old_start: 3,
                old_count: 3,
                new_start: 3,
                new_count: 3,
                lines: vec![
                    (' ', "fn main() {".to_owned(), false),
                    ('-', "    old();".to_owned(), false),
                    ('+', "    new();".to_owned(), false),
                    (' ', "}".to_owned(), false),
                ],
            };
            let missing = format!("src/missing_{index}.rs");
            let diff = render_hunks(format, &missing, &[hunk], &[], rng);
            cases.push(refusal(format!("{missing}:missing_file"), files, diff));
        }
    }
}

/// A hunk's lines as the model writes them in `format`: stale, blank-line and indentation
/// imperfections applied (the whitespace drift of copied lines is applied when writing).
fn imperfect_hunk(mut hunk: DiffHunk, imperfections: &[Imperfection], rng: &mut Rng) -> DiffHunk {
    let has = |imperfection| imperfections.contains(&imperfection);
    if has(Imperfection::StaleContext) {
        let context: Vec<usize> = (0..hunk.lines.len())
            .filter(|&i| hunk.lines[i].0 == ' ' && !hunk.lines[i].1.trim().is_empty())
            .collect();
        if !context.is_empty() {
            hunk.lines[context[rng.below(context.len())]]
                .1
                .push_str(" /* as it was before */");
        }
    }
    if has(Imperfection::BlankLines) {
        let is_context = |line: Option<&(char, String, bool)>| line.is_some_and(|l| l.0 == ' ');
        let between_context = |lines: &[(char, String, bool)], i: usize| {
            i > 0 && is_context(lines.get(i - 1)) && is_context(lines.get(i + 1))
        };
        let blank = (0..hunk.lines.len()).find(|&i| {
            hunk.lines[i].0 == ' ' && hunk.lines[i].1.is_empty() && between_context(&hunk.lines, i)
        });
        if let Some(blank) = blank {
            hunk.lines.remove(blank);
        } else if let Some(at) = (1..hunk.lines.len()).find(|&i| {
            hunk.lines[i - 1].0 == ' '
                && hunk.lines[i].0 == ' '
                && !hunk.lines[i - 1].1.trim().is_empty()
                && !hunk.lines[i].1.trim().is_empty()
        }) {
            hunk.lines.insert(at, (' ', String::new(), false));
        }
    }
    if has(Imperfection::WrongIndent) {
        let indents: Vec<&str> = hunk
            .lines
            .iter()
            .filter(|line| !line.1.trim().is_empty())
            .map(|line| &line.1[..line.1.len() - line.1.trim_start().len()])
            .collect();
        let common = indents.iter().skip(1).fold(
            indents.first().copied().unwrap_or(""),
            |common, indent| {
                let shared = common
                    .chars()
                    .zip(indent.chars())
                    .take_while(|(a, b)| a == b)
                    .count();
                &common[..shared]
            },
        );
        let common = common.to_owned();
        for line in &mut hunk.lines {
            if line.1.trim().is_empty() {
                continue;
            }
            line.1 = if common.is_empty() {
                format!("    {}", line.1)
            } else {
                line.1[common.len()..].to_owned()
            };
        }
    }
    hunk
}

/// The path as the model writes it.
fn written_path(path: &str, imperfections: &[Imperfection], rng: &mut Rng) -> String {
    if imperfections.contains(&Imperfection::PathPrefix) {
        if rng.chance(50) {
            format!("./{path}")
        } else {
            format!("a/{path}")
        }
    } else {
        path.to_owned()
    }
}

fn language(path: &str) -> &str {
    match path.rsplit('.').next() {
        Some("rs") => "rust",
        Some("js") => "javascript",
        Some("sh") => "sh",
        Some("md") => "markdown",
        Some(other) => other,
        None => "",
    }
}

/// The reply around the edit: fences, prose, CRLF.
fn wrap_reply(
    body: String,
    path: &str,
    imperfections: &[Imperfection],
    fence_by_default: bool,
) -> String {
    let has = |imperfection| imperfections.contains(&imperfection);
    let mut reply = body;
    if has(Imperfection::CrlfDiff) {
        reply = reply.replace('\n', "\r\n");
    }
    if has(Imperfection::Fences) && !fence_by_default {
        reply = format!(
            "The failure comes from `{path}`. Here is a fix:\n\n```\n{reply}```\n\nThis should make the deploy pass.\n"
        );
    }
    if has(Imperfection::Prose) {
        reply = format!(
            "I looked at the log. The change below updates {path}:\n\n{reply}\nAfter this, rerun the pipeline.\n"
        );
    }
    reply
}

fn render_v4a(edits: &[FileEdit], imperfections: &[Imperfection], rng: &mut Rng) -> String {
    let mut body = String::from("*** Begin Patch\n");
    for edit in edits {
        let path = written_path(&edit.path, imperfections, rng);
        match (&edit.old, &edit.new) {
            (None, Some(new)) => {
                let _ = writeln!(body, "*** Add File: {path}");
                for line in new.lines() {
                    let _ = writeln!(body, "+{line}");
                }
            }
            (Some(_), None) => {
                let _ = writeln!(body, "*** Delete File: {path}");
            }
            (Some(old), Some(new)) => {
                let _ = writeln!(body, "*** Update File: {path}");
                let old_lines: Vec<&str> = old.lines().collect();
                let mut previous_end = 0;
                for hunk in diff_hunks(old, new) {
                    let anchor =
                        anchor_for(&old_lines, &hunk, previous_end).filter(|_| rng.chance(50));
                    previous_end = hunk.old_start + hunk.old_count;
                    let hunk = imperfect_hunk(hunk, imperfections, rng);
                    match anchor {
                        Some(anchor) => {
                            let _ = writeln!(body, "@@ {}", anchor.trim());
                        }
                        None => body.push_str("@@\n"),
                    }
                    write_marked_lines(&mut body, &hunk, imperfections, rng);
                }
            }
            (None, None) => {}
        }
    }
    if !imperfections.contains(&Imperfection::NoEndMarker) {
        body.push_str("*** End Patch\n");
    }
    wrap_reply(body, &edits[0].path, imperfections, false)
}

/// A line above the hunk, less indented than its first line and unique in the file: what a
/// model writes after `@@` (the enclosing function or section).
fn anchor_for<'a>(lines: &[&'a str], hunk: &DiffHunk, previous_end: usize) -> Option<&'a str> {
    let first = hunk.old_start.saturating_sub(1);
    let indent = |line: &str| line.len() - line.trim_start().len();
    let hunk_indent = lines.get(first).map_or(0, |line| indent(line));
    lines[previous_end.min(first)..first]
        .iter()
        .rev()
        .find(|line| !line.trim().is_empty() && indent(line) < hunk_indent)
        .filter(|line| {
            lines
                .iter()
                .filter(|other| other.trim() == line.trim())
                .count()
                == 1
        })
        .copied()
}

/// The hunk's lines with ` `/`-`/`+` markers; copied lines drift, blank context may lose its
/// space.
fn write_marked_lines(
    out: &mut String,
    hunk: &DiffHunk,
    imperfections: &[Imperfection],
    rng: &mut Rng,
) {
    for (mark, text, _) in &hunk.lines {
        let text = if *mark == '+' {
            text.clone()
        } else {
            drift(text, imperfections, rng)
        };
        if *mark == ' '
            && text.is_empty()
            && imperfections.contains(&Imperfection::LostContextSpace)
        {
            out.push('\n');
        } else {
            let _ = writeln!(out, "{mark}{text}");
        }
    }
}

/// The path line above a SEARCH/REPLACE block or a whole file, and the fence line.
fn path_and_fence(
    path: &str,
    fence: &str,
    imperfections: &[Imperfection],
    rng: &mut Rng,
) -> String {
    let written = written_path(path, imperfections, rng);
    let lang = language(path);
    if !imperfections.contains(&Imperfection::PathDecoration) {
        return format!("{written}\n{fence}{lang}\n");
    }
    match rng.below(4) {
        0 => format!("**{written}**\n{fence}{lang}\n"),
        1 => format!("`{written}`:\n{fence}{lang}\n"),
        2 => format!("### File: {written}\n\n{fence}{lang}\n"),
        _ => format!("{fence}{lang} {written}\n"),
    }
}

fn render_search_replace(
    edits: &[FileEdit],
    imperfections: &[Imperfection],
    rng: &mut Rng,
) -> String {
    let mut body = String::new();
    for edit in edits {
        let old = edit.old.as_deref().unwrap_or("");
        let new = edit.new.as_deref().unwrap_or("");
        let hunks = if edit.old.is_none() {
            vec![DiffHunk {
                old_start: 0,
                old_count: 0,
                new_start: 1,
                new_count: new.lines().count(),
                lines: new.lines().map(|l| ('+', l.to_owned(), false)).collect(),
            }]
        } else {
            diff_hunks(old, new)
        };
        body.push_str(&render_hunks(
            EditFormat::SearchReplace,
            &edit.path,
            &hunks,
            imperfections,
            rng,
        ));
    }
    wrap_reply(body, &edits[0].path, imperfections, true)
}

/// `hunks` of the file at `path` in `format` (V4A or SEARCH/REPLACE), without the reply's
/// wrapping for SEARCH/REPLACE and with it for V4A.
fn render_hunks(
    format: EditFormat,
    path: &str,
    hunks: &[DiffHunk],
    imperfections: &[Imperfection],
    rng: &mut Rng,
) -> String {
    if format == EditFormat::V4a {
        let written = written_path(path, imperfections, rng);
        let mut body = format!("*** Begin Patch\n*** Update File: {written}\n");
        for hunk in hunks {
            body.push_str("@@\n");
            let hunk = imperfect_hunk(hunk.clone(), imperfections, rng);
            write_marked_lines(&mut body, &hunk, imperfections, rng);
        }
        body.push_str("*** End Patch\n");
        return wrap_reply(body, path, imperfections, false);
    }
    let mut blocks = Vec::new();
    for hunk in hunks {
        let hunk = imperfect_hunk(hunk.clone(), imperfections, rng);
        let mut search = Vec::new();
        let mut replace = Vec::new();
        for (mark, text, _) in &hunk.lines {
            match mark {
                '+' => replace.push(text.clone()),
                '-' => search.push(drift(text, imperfections, rng)),
                _ => {
                    let copied = drift(text, imperfections, rng);
                    search.push(copied.clone());
                    replace.push(copied);
                }
            }
        }
        if imperfections.contains(&Imperfection::TruncatedSearch) {
            truncate_edge(&hunk, &mut search, &mut replace);
        }
        let mut block = path_and_fence(path, "```", imperfections, rng);
        block.push_str("<<<<<<< SEARCH\n");
        for line in &search {
            let _ = writeln!(block, "{line}");
        }
        block.push_str("=======\n");
        for line in &replace {
            let _ = writeln!(block, "{line}");
        }
        block.push_str(">>>>>>> REPLACE\n```\n\n");
        blocks.push(block);
    }
    if imperfections.contains(&Imperfection::OutOfOrder) {
        blocks.reverse();
    }
    blocks.concat()
}

/// Cuts the last (else the first) context line of the block mid-line, in both halves.
fn truncate_edge(hunk: &DiffHunk, search: &mut [String], replace: &mut [String]) {
    let cut = |line: &mut String| {
        let keep = line.trim_end().len() / 2;
        let keep = (0..=keep)
            .rev()
            .find(|&at| line.is_char_boundary(at))
            .unwrap_or(0);
        line.truncate(keep);
    };
    let long = |line: &(char, String, bool)| line.0 == ' ' && line.1.trim().len() > 8;
    if hunk.lines.last().is_some_and(long) {
        if let (Some(s), Some(r)) = (search.last_mut(), replace.last_mut()) {
            cut(s);
            cut(r);
        }
    } else if hunk.lines.first().is_some_and(long)
        && let (Some(s), Some(r)) = (search.first_mut(), replace.first_mut())
    {
        cut(s);
        cut(r);
    }
}

fn render_whole_file(edits: &[FileEdit], imperfections: &[Imperfection], rng: &mut Rng) -> String {
    let mut body = String::new();
    for edit in edits {
        let Some(new) = &edit.new else { continue };
        // A file that holds fences is fenced with more backticks, as models do.
        let fence = if new.contains("```") { "````" } else { "```" };
        body.push_str(&path_and_fence(&edit.path, fence, imperfections, rng));
        body.push_str(new);
        if !new.ends_with('\n') {
            body.push('\n');
        }
        let _ = write!(body, "{fence}\n\n");
    }
    wrap_reply(body, &edits[0].path, imperfections, true)
}
