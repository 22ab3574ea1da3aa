//! The file a command writes its published outputs to, the way GitHub Actions' `GITHUB_OUTPUT`
//! works: the path is in `$AGENT_ORCH_OUTPUT`, the command appends lines, we parse them after.
//!
//! ```sh
//! echo "version=1.4.2" >> "$AGENT_ORCH_OUTPUT"
//! {
//!   echo "notes<<EOF"
//!   git log -3 --format=%s
//!   echo "EOF"
//! } >> "$AGENT_ORCH_OUTPUT"
//! ```
//!
//! `name=value` sets `name` to the rest of the line (which may contain `=`). `name<<DELIMITER`
//! sets `name` to the following lines up to a line that is exactly `DELIMITER`, joined with
//! `\n`. Empty lines are ignored, `\r\n` line ends are accepted, a later value of a name wins.

use std::io::Read;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;

/// The environment variable that holds the outputs file's path.
pub const OUTPUTS_ENV: &str = "AGENT_ORCH_OUTPUT";

/// Outputs files larger than this are refused rather than read into memory.
pub const MAX_OUTPUTS_BYTES: u64 = 1024 * 1024;

/// An empty outputs file, created before the command runs.
#[derive(Debug)]
pub struct OutputsFile {
    path: PathBuf,
}

impl OutputsFile {
    /// Creates `path` empty (replacing a leftover from an earlier run).
    pub fn create(path: impl Into<PathBuf>) -> Result<Self, OutputsError> {
        let path = path.into();
        match std::fs::File::create(&path) {
            Ok(_) => Ok(Self { path }),
            Err(err) => Err(OutputsError::new(OutputsErrorKind::Create(path), err)),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads and parses what the command wrote, then removes the file: outputs may be
    /// sensitive, and the artifacts folder is uploaded.
    pub fn read_and_remove(self) -> Result<IndexMap<String, String>, OutputsError> {
        let read = read_bounded(&self.path);
        // The file is ours; failing to remove it changes nothing about the outputs.
        let _ = std::fs::remove_file(&self.path);
        parse_outputs(&read?)
    }
}

fn read_bounded(path: &Path) -> Result<String, OutputsError> {
    let error = |err| OutputsError::new(OutputsErrorKind::Read(path.to_owned()), err);
    let file = std::fs::File::open(path).map_err(error)?;
    let mut bytes = Vec::new();
    file.take(MAX_OUTPUTS_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(error)?;
    if bytes.len() as u64 > MAX_OUTPUTS_BYTES {
        return Err(OutputsErrorKind::TooLarge.into());
    }
    String::from_utf8(bytes).map_err(|_| OutputsErrorKind::NotUtf8.into())
}

/// Parses the contents of an outputs file.
pub fn parse_outputs(text: &str) -> Result<IndexMap<String, String>, OutputsError> {
    let mut outputs = IndexMap::new();
    let mut lines = text
        .split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
        .enumerate()
        .map(|(index, line)| (index + 1, line));
    while let Some((number, line)) = lines.next() {
        if line.is_empty() {
            continue;
        }
        let equals = line.find('=');
        let heredoc = line.find("<<");
        match (equals, heredoc) {
            (Some(equals), heredoc) if heredoc.is_none_or(|heredoc| equals < heredoc) => {
                let name = &line[..equals];
                if name.is_empty() {
                    return Err(OutputsErrorKind::MissingName { line: number }.into());
                }
                outputs.insert(name.to_owned(), line[equals + 1..].to_owned());
            }
            (_, Some(heredoc)) => {
                let name = &line[..heredoc];
                let delimiter = &line[heredoc + 2..];
                if name.is_empty() {
                    return Err(OutputsErrorKind::MissingName { line: number }.into());
                }
                if delimiter.is_empty() {
                    return Err(OutputsErrorKind::MissingDelimiter { line: number }.into());
                }
                let mut value: Vec<&str> = Vec::new();
                let mut closed = false;
                for (_, line) in lines.by_ref() {
                    if line == delimiter {
                        closed = true;
                        break;
                    }
                    value.push(line);
                }
                if !closed {
                    return Err(OutputsErrorKind::UnterminatedValue {
                        line: number,
                        delimiter: delimiter.to_owned(),
                    }
                    .into());
                }
                outputs.insert(name.to_owned(), value.join("\n"));
            }
            _ => return Err(OutputsErrorKind::InvalidLine { line: number }.into()),
        }
    }
    Ok(outputs)
}

/// Why a command's published outputs could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{kind}")]
pub struct OutputsError {
    pub kind: OutputsErrorKind,
    #[source]
    source: Option<std::io::Error>,
}

impl OutputsError {
    fn new(kind: OutputsErrorKind, source: std::io::Error) -> Self {
        Self {
            kind,
            source: Some(source),
        }
    }
}

impl From<OutputsErrorKind> for OutputsError {
    fn from(kind: OutputsErrorKind) -> Self {
        Self { kind, source: None }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OutputsErrorKind {
    #[error("failed to create outputs file `{}`", .0.display())]
    Create(PathBuf),
    #[error("failed to read outputs file `{}`", .0.display())]
    Read(PathBuf),
    #[error("outputs file is larger than {} KiB", MAX_OUTPUTS_BYTES / 1024)]
    TooLarge,
    #[error("outputs file is not valid UTF-8")]
    NotUtf8,
    #[error("outputs line {line}: expected `name=value` or `name<<DELIMITER`")]
    InvalidLine { line: usize },
    #[error("outputs line {line}: the output name is empty")]
    MissingName { line: usize },
    #[error("outputs line {line}: `name<<` needs a delimiter after `<<`")]
    MissingDelimiter { line: usize },
    #[error("outputs line {line}: no line `{delimiter}` ends the multi-line value")]
    UnterminatedValue { line: usize, delimiter: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Vec<(String, String)> {
        parse_outputs(text).unwrap().into_iter().collect()
    }

    fn pair(name: &str, value: &str) -> (String, String) {
        (name.to_owned(), value.to_owned())
    }

    #[test]
    fn name_value_lines() {
        assert_eq!(
            parsed("version=1.4.2\n\nurl=https://x/?a=b\r\nempty=\n"),
            [
                pair("version", "1.4.2"),
                pair("url", "https://x/?a=b"),
                pair("empty", ""),
            ]
        );
    }

    #[test]
    fn multi_line_values() {
        let text = "notes<<EOF\nfirst\n\nthird = x << y\nEOF\nafter=1\n";
        assert_eq!(
            parsed(text),
            [pair("notes", "first\n\nthird = x << y"), pair("after", "1")]
        );
        assert_eq!(parsed("one<<END\r\nonly\r\nEND"), [pair("one", "only")]);
        assert_eq!(parsed("none<<END\nEND\n"), [pair("none", "")]);
    }

    #[test]
    fn equals_before_heredoc_marker_is_a_plain_value() {
        assert_eq!(parsed("cmd=a<<b\n"), [pair("cmd", "a<<b")]);
    }

    #[test]
    fn later_values_win() {
        assert_eq!(parsed("a=1\na=2\n"), [pair("a", "2")]);
    }

    #[test]
    fn errors_name_the_line() {
        let message = |text: &str| parse_outputs(text).unwrap_err().to_string();
        assert_eq!(
            message("ok=1\njust text\n"),
            "outputs line 2: expected `name=value` or `name<<DELIMITER`"
        );
        assert_eq!(message("=1\n"), "outputs line 1: the output name is empty");
        assert_eq!(
            message("a=1\nnotes<<EOF\nnever closed\n"),
            "outputs line 2: no line `EOF` ends the multi-line value"
        );
        assert_eq!(
            message("notes<<\n"),
            "outputs line 1: `name<<` needs a delimiter after `<<`"
        );
    }

    #[test]
    fn file_is_read_then_removed() {
        let dir = tempfile::tempdir().unwrap();
        let file = OutputsFile::create(dir.path().join("step.outputs")).unwrap();
        let path = file.path().to_owned();
        std::fs::write(&path, "a=1\n").unwrap();
        assert_eq!(
            file.read_and_remove()
                .unwrap()
                .into_iter()
                .collect::<Vec<_>>(),
            [pair("a", "1")]
        );
        assert!(!path.exists());
    }

    #[test]
    fn oversized_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = OutputsFile::create(dir.path().join("big.outputs")).unwrap();
        let line = format!("a={}\n", "x".repeat(1024));
        std::fs::write(file.path(), line.repeat(1100)).unwrap();
        let err = file.read_and_remove().unwrap_err();
        assert_eq!(err.to_string(), "outputs file is larger than 1024 KiB");
    }
}
