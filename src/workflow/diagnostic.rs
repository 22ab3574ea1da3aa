//! Diagnostics: what went wrong in a workflow file, where, and what to do about it.
//!
//! Rendered the way just and rustc do, with the offending line quoted and underlined:
//!
//! ```text
//! error: unknown key `timout` in step
//!   --> workflows/demo.yaml:12:5
//!    |
//! 12 |     timout: 5m
//!    |     ^^^^^^ did you mean `timeout`?
//! ```

use std::fmt::{self, Write as _};

use anstyle::{AnsiColor, Style};

use super::span::Span;

/// Why a workflow was rejected; lets callers and tests tell causes apart without parsing text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DiagnosticKind {
    /// A file could not be read.
    Io,
    /// Not valid YAML (including duplicate keys).
    Syntax,
    /// A key the format does not have.
    UnknownKey,
    /// A required key is missing.
    MissingKey,
    /// A value of the wrong type or out of range (including durations and globs).
    InvalidValue,
    /// A step with no kind key, or an unknown one.
    UnknownStepKind,
    /// A step with more than one kind key.
    ConflictingStepKinds,
    /// Two steps with the same id.
    DuplicateId,
    /// A reference to something not declared: an agent, a deploy step, an environment.
    UnknownReference,
    /// `--env` missing where the workflow has several environments.
    MissingEnvironment,
    /// A `template:` file that does not exist.
    TemplateNotFound,
    /// Templates that include each other.
    TemplateCycle,
    /// A parameter the template does not declare, or a declared one without a value.
    TemplateParameter,
    /// A `{{ ... }}` expression that does not parse.
    TemplateSyntax,
    /// A `{{ ... }}` expression that refers to something that will not exist at run time.
    UndefinedVariable,
    /// A bad `--var` given on the command line.
    InvalidVar,
    /// Template syntax where nothing renders it: it would be passed on as text.
    UnrenderedTemplate,
    /// Environment values that refer to each other in a cycle.
    EnvironmentCycle,
    /// A warning: a template value interpolated into a shell command without `shell_quote`.
    UnquotedInterpolation,
}

/// An error stops the workflow from loading; a warning is only shown (by `validate`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Severity {
    #[default]
    Error,
    Warning,
}

/// A secondary message: where something related was defined, or extra context.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub message: String,
    pub span: Option<Span>,
}

/// One problem in a workflow, pointing at the node it is about.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Diagnostic {
    pub kind: DiagnosticKind,
    pub severity: Severity,
    /// A lowercase fragment: "unknown key `timout` in step".
    pub message: String,
    pub span: Span,
    /// Text shown beside the underline ("did you mean `timeout`?").
    pub label: Option<String>,
    pub notes: Vec<Note>,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn new(kind: DiagnosticKind, message: impl Into<String>, span: Span) -> Self {
        Self {
            kind,
            severity: Severity::Error,
            message: message.into(),
            span,
            label: None,
            notes: Vec::new(),
            help: None,
        }
    }

    /// A warning: shown, but the workflow still loads.
    pub fn warning(kind: DiagnosticKind, message: impl Into<String>, span: Span) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::new(kind, message, span)
        }
    }

    #[must_use]
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    #[must_use]
    pub fn with_note(mut self, message: impl Into<String>, span: Option<Span>) -> Self {
        self.notes.push(Note {
            message: message.into(),
            span,
        });
        self
    }

    #[must_use]
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Renders the diagnostic; ANSI colours only when `color` is true.
    pub fn render(&self, color: bool) -> String {
        let palette = Palette::new(color);
        let mut out = String::new();
        let (title, style) = match self.severity {
            Severity::Error => ("error", palette.error),
            Severity::Warning => ("warning", palette.warning),
        };
        let title = palette.paint(style, title);
        let message = palette.paint(palette.bold, &format!(": {}", self.message));
        let _ = writeln!(out, "{title}{message}");
        // One gutter width for the whole diagnostic, so every `|` and `=` lines up.
        let width = std::iter::once(&self.span)
            .chain(self.notes.iter().filter_map(|note| note.span.as_ref()))
            .map(|span| span.line.to_string().len())
            .max()
            .unwrap_or(1);
        let pad = " ".repeat(width);
        render_snippet(
            &mut out,
            &palette,
            &self.span,
            width,
            ('^', style),
            self.label.as_deref(),
        );
        for note in &self.notes {
            match &note.span {
                Some(span) if span.file.is_some() => {
                    let _ = writeln!(
                        out,
                        "{}: {}",
                        palette.paint(palette.note, "note"),
                        note.message
                    );
                    render_snippet(&mut out, &palette, span, width, ('-', palette.note), None);
                }
                _ => {
                    let _ = writeln!(
                        out,
                        "{pad} {} {}: {}",
                        palette.paint(palette.gutter, "="),
                        palette.paint(palette.bold, "note"),
                        note.message
                    );
                }
            }
        }
        if let Some(help) = &self.help {
            let _ = writeln!(
                out,
                "{pad} {} {}: {help}",
                palette.paint(palette.gutter, "="),
                palette.paint(palette.bold, "help")
            );
        }
        out
    }
}

/// Writes `--> file:line:col` and the quoted line with its underline.
fn render_snippet(
    out: &mut String,
    palette: &Palette,
    span: &Span,
    width: usize,
    (mark, style): (char, Style),
    label: Option<&str>,
) {
    let Some(file) = &span.file else {
        return;
    };
    let line_number = format!("{:>width$}", span.line);
    let pad = " ".repeat(width);
    let arrow = palette.paint(palette.gutter, "-->");
    let _ = writeln!(out, "{pad}{arrow} {span}");
    let Some(text) = file.line(span.line) else {
        return;
    };
    let bar = palette.paint(palette.gutter, "|");
    let _ = writeln!(out, "{pad} {bar}");
    let _ = writeln!(
        out,
        "{} {bar} {text}",
        palette.paint(palette.gutter, &line_number)
    );
    let line_chars = text.chars().count();
    let start = span.column.saturating_sub(1).min(line_chars);
    // A span running past the end of its line (a multi-line value) is underlined to the end.
    let len = span.len.max(1).min(line_chars.saturating_sub(start).max(1));
    // Keep tabs so the underline lines up under tab-indented text.
    let indent: String = text
        .chars()
        .take(start)
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    let marks: String = std::iter::repeat_n(mark, len).collect();
    let mut underline = format!("{indent}{}", palette.paint(style, &marks));
    if let Some(label) = label {
        underline.push(' ');
        underline.push_str(&palette.paint(style, label));
    }
    let _ = writeln!(out, "{pad} {bar} {underline}");
}

struct Palette {
    color: bool,
    error: Style,
    warning: Style,
    note: Style,
    gutter: Style,
    bold: Style,
}

impl Palette {
    fn new(color: bool) -> Self {
        Self {
            color,
            error: AnsiColor::Red.on_default().bold(),
            warning: AnsiColor::Yellow.on_default().bold(),
            note: AnsiColor::Cyan.on_default().bold(),
            gutter: AnsiColor::Blue.on_default().bold(),
            bold: Style::new().bold(),
        }
    }

    fn paint(&self, style: Style, text: &str) -> String {
        if self.color {
            format!("{}{text}{}", style.render(), style.render_reset())
        } else {
            text.to_owned()
        }
    }
}

/// Every diagnostic of a workflow, sorted by position. A workflow with any runs nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn render(&self, color: bool) -> String {
        let mut out = String::new();
        for (index, diagnostic) in self.0.iter().enumerate() {
            if index > 0 {
                out.push('\n');
            }
            out.push_str(&diagnostic.render(color));
        }
        if self.0.len() > 1 {
            let summary = format!("{} errors in workflow", self.0.len());
            let _ = write!(
                out,
                "\n{}\n",
                Palette::new(color).paint(Palette::new(color).error, &summary)
            );
        }
        out
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sorts by file, then line and column; the order a reader goes through the file.
    pub(crate) fn sort(&mut self) {
        self.0.sort_by(|a, b| {
            (a.span.path(), a.span.line, a.span.column).cmp(&(
                b.span.path(),
                b.span.line,
                b.span.column,
            ))
        });
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(diagnostic: Diagnostic) -> Self {
        Self(vec![diagnostic])
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_slice() {
            [one] => write!(f, "{} at {}", one.message, one.span),
            many => write!(f, "{} errors in workflow", many.len()),
        }
    }
}

impl std::error::Error for Diagnostics {}

/// `did you mean `x`?` for the closest candidate, if any is close enough to be a typo.
pub(crate) fn did_you_mean<'a>(
    input: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    candidates
        .into_iter()
        .map(|candidate| (strsim::jaro_winkler(input, candidate), candidate))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| format!("did you mean `{candidate}`?"))
}

/// "`a`, `b` and `c`", for help text listing what there is.
pub(crate) fn all_of<'a>(candidates: impl IntoIterator<Item = &'a str>) -> String {
    let listed = one_of(candidates);
    match listed.rfind("` or `") {
        Some(at) => format!("{} and {}", &listed[..at + 1], &listed[at + 5..]),
        None => listed,
    }
}

/// "`a`, `b` or `c`", for help text listing what is allowed.
pub(crate) fn one_of<'a>(candidates: impl IntoIterator<Item = &'a str>) -> String {
    let quoted: Vec<String> = candidates.into_iter().map(|c| format!("`{c}`")).collect();
    match quoted.as_slice() {
        [] => "nothing".to_owned(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::span::SourceFile;

    fn span(line: usize, column: usize, len: usize) -> Span {
        Span {
            file: Some(SourceFile::new(
                "workflows/demo.yaml",
                "steps:\n  - id: build\n    timout: 5m\n",
            )),
            line,
            column,
            len,
        }
    }

    #[test]
    fn renders_the_line_with_an_underline_and_label() {
        let diagnostic = Diagnostic::new(
            DiagnosticKind::UnknownKey,
            "unknown key `timout` in step",
            span(3, 5, 6),
        )
        .with_label("did you mean `timeout`?")
        .with_help("a step accepts `id`, `timeout`");
        assert_eq!(
            diagnostic.render(false),
            "error: unknown key `timout` in step\n \
             --> workflows/demo.yaml:3:5\n  \
             |\n\
             3 |     timout: 5m\n  \
             |     ^^^^^^ did you mean `timeout`?\n  \
             = help: a step accepts `id`, `timeout`\n"
        );
    }

    #[test]
    fn colour_only_when_asked() {
        let diagnostic = Diagnostic::new(DiagnosticKind::UnknownKey, "x", span(3, 5, 6));
        assert!(!diagnostic.render(false).contains('\x1b'));
        assert!(diagnostic.render(true).contains("\x1b["));
    }

    #[test]
    fn notes_with_spans_quote_their_line() {
        let diagnostic = Diagnostic::new(DiagnosticKind::DuplicateId, "duplicate", span(3, 5, 6))
            .with_note("first defined here", Some(span(2, 9, 5)));
        let text = diagnostic.render(false);
        assert!(
            text.contains("note: first defined here\n --> workflows/demo.yaml:2:9\n  |\n2 |   - id: build\n  |         -----\n"),
            "{text}"
        );
    }

    #[test]
    fn lists_read_naturally() {
        assert_eq!(one_of(["a", "b", "c"]), "`a`, `b` or `c`");
        assert_eq!(all_of(["a", "b", "c"]), "`a`, `b` and `c`");
        assert_eq!(all_of(["a"]), "`a`");
        assert_eq!(one_of([]), "nothing");
    }

    #[test]
    fn the_gutter_fits_the_widest_line_number() {
        let text: String = (1..=12).map(|n| format!("line {n}\n")).collect();
        let at = |line| Span {
            file: Some(SourceFile::new("w.yaml", text.clone())),
            line,
            column: 1,
            len: 4,
        };
        let rendered = Diagnostic::new(DiagnosticKind::DuplicateId, "dup", at(12))
            .with_note("first", Some(at(3)))
            .with_help("fix it")
            .render(false);
        assert_eq!(
            rendered,
            "error: dup\n  --> w.yaml:12:1\n   |\n12 | line 12\n   | ^^^^\nnote: first\n  --> w.yaml:3:1\n   |\n 3 | line 3\n   | ----\n   = help: fix it\n"
        );
    }

    #[test]
    fn did_you_mean_picks_the_closest_plausible_candidate() {
        assert_eq!(
            did_you_mean("timout", ["timeout", "retries", "id"]).as_deref(),
            Some("did you mean `timeout`?")
        );
        assert_eq!(did_you_mean("zzz", ["timeout", "retries"]), None);
    }
}
