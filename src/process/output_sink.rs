//! Where a command's output goes: a log file, an optional live echo, and a bounded tail.
//!
//! Output is redacted (secrets and credential shapes) and passed on a line at a time; nothing
//! but the tail and one unfinished line (bounded, see [`crate::redact::StreamRedactor`]) is
//! kept in memory, whatever the output's size.

use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;

use super::ProcessError;
use crate::redact::{Redactor, StreamRedactor};

/// How many of the last lines of output a result keeps, by default.
pub const DEFAULT_TAIL_LINES: usize = 200;
/// How many of the last bytes of output a result keeps, by default (the tighter limit wins).
pub const DEFAULT_TAIL_BYTES: usize = 64 * 1024;

/// Where a command's output should go. Build it, then hand it to [`super::run_command`].
pub struct OutputSink {
    log_path: Option<PathBuf>,
    echo: Option<Box<dyn Write + Send>>,
    redactor: Redactor,
    tail_lines: usize,
    tail_bytes: usize,
}

impl Default for OutputSink {
    fn default() -> Self {
        Self {
            log_path: None,
            echo: None,
            redactor: Redactor::default(),
            tail_lines: DEFAULT_TAIL_LINES,
            tail_bytes: DEFAULT_TAIL_BYTES,
        }
    }
}

impl OutputSink {
    /// Keeps only the tail; add destinations with the other methods.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes the output to `path`, replacing the file if it exists (its directory must exist).
    pub fn log_to(mut self, path: impl Into<PathBuf>) -> Self {
        self.log_path = Some(path.into());
        self
    }

    /// Streams the output live to `writer` as it arrives (flushed after every chunk).
    pub fn echo_to(mut self, writer: impl Write + Send + 'static) -> Self {
        self.echo = Some(Box::new(writer));
        self
    }

    /// Streams the output live to this process's stderr: the user's terminal, not stdout,
    /// which carries data.
    pub fn echo_to_stderr(self) -> Self {
        self.echo_to(io::stderr())
    }

    /// Redacts with the run's `redactor` (its secrets and every credential shape) in the log,
    /// the echo and the tail; without it, credential shapes only.
    pub fn redact_with(mut self, redactor: &Redactor) -> Self {
        self.redactor = redactor.clone();
        self
    }

    /// Keeps at most the last `lines` lines and `bytes` bytes of output in the result's tail.
    pub fn tail_limit(mut self, lines: usize, bytes: usize) -> Self {
        self.tail_lines = lines;
        self.tail_bytes = bytes;
        self
    }

    /// Opens the destinations; called before the command starts so a bad log path runs nothing.
    pub(crate) fn open(self) -> Result<OpenSink, ProcessError> {
        let log = match self.log_path {
            Some(path) => {
                let file =
                    File::create(&path).map_err(|err| ProcessError::create_log(&path, err))?;
                Some(LogFile { file, path })
            }
            None => None,
        };
        Ok(OpenSink {
            log,
            log_error: None,
            echo: self.echo,
            redactor: self.redactor.stream(),
            redacted: Vec::new(),
            tail: Tail::new(self.tail_lines, self.tail_bytes),
            bytes: 0,
        })
    }
}

struct LogFile {
    file: File,
    path: PathBuf,
}

/// An [`OutputSink`] with its log file open, receiving output.
pub(crate) struct OpenSink {
    log: Option<LogFile>,
    /// The first failure to write the log; the output still goes to the echo and the tail.
    log_error: Option<io::Error>,
    echo: Option<Box<dyn Write + Send>>,
    redactor: StreamRedactor,
    /// Reused buffer for redacted output, so redaction allocates once, not per chunk.
    redacted: Vec<u8>,
    tail: Tail,
    bytes: u64,
}

/// What an output stream left behind once it ended.
pub(crate) struct Captured {
    pub(crate) tail: String,
    pub(crate) bytes: u64,
}

impl OpenSink {
    pub(crate) fn write(&mut self, chunk: &[u8]) {
        self.bytes += chunk.len() as u64;
        let mut redacted = std::mem::take(&mut self.redacted);
        redacted.clear();
        self.redactor.push(chunk, &mut redacted);
        self.deliver(&redacted);
        self.redacted = redacted;
    }

    fn deliver(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        if let Some(log) = self.log.as_mut()
            && self.log_error.is_none()
            && let Err(err) = log.file.write_all(data)
        {
            self.log_error = Some(err);
        }
        if let Some(echo) = self.echo.as_mut()
            && echo.write_all(data).and_then(|()| echo.flush()).is_err()
        {
            // A closed terminal must not fail the step; the log still has everything.
            self.echo = None;
        }
        self.tail.push(data);
    }

    /// Flushes what redaction held back; fails if the log could not be written completely.
    pub(crate) fn finish(mut self) -> Result<Captured, ProcessError> {
        let mut rest = Vec::new();
        self.redactor.finish(&mut rest);
        self.deliver(&rest);
        if let Some(log) = &self.log
            && let Some(err) = self.log_error.take()
        {
            return Err(ProcessError::write_log(&log.path, err));
        }
        Ok(Captured {
            tail: self.tail.into_string(),
            bytes: self.bytes,
        })
    }
}

/// The last bytes of output, trimmed to the last lines when the output ends.
struct Tail {
    buf: Vec<u8>,
    max_lines: usize,
    max_bytes: usize,
}

impl Tail {
    fn new(max_lines: usize, max_bytes: usize) -> Self {
        Self {
            buf: Vec::new(),
            max_lines,
            max_bytes,
        }
    }

    fn push(&mut self, data: &[u8]) {
        if data.len() >= self.max_bytes {
            self.buf.clear();
            self.buf
                .extend_from_slice(&data[data.len() - self.max_bytes..]);
            return;
        }
        self.buf.extend_from_slice(data);
        // Trim only once the buffer holds twice the limit, so trimming costs O(1) per byte.
        if self.buf.len() > 2 * self.max_bytes {
            let excess = self.buf.len() - self.max_bytes;
            self.buf.drain(..excess);
        }
    }

    fn into_string(self) -> String {
        if self.max_lines == 0 {
            return String::new();
        }
        let bytes = &self.buf[self.buf.len().saturating_sub(self.max_bytes)..];
        let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        let start = body
            .iter()
            .enumerate()
            .rev()
            .filter(|(_, byte)| **byte == b'\n')
            .nth(self.max_lines.saturating_sub(1))
            .map_or(0, |(newline, _)| newline + 1);
        let mut kept = &bytes[start..];
        // A byte cut can land inside a UTF-8 character: drop its continuation bytes.
        while let Some((first, rest)) = kept.split_first()
            && first & 0b1100_0000 == 0b1000_0000
        {
            kept = rest;
        }
        String::from_utf8_lossy(kept).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::test_support::SharedBuffer;

    fn tail_of(chunks: &[&[u8]], max_lines: usize, max_bytes: usize) -> String {
        let mut tail = Tail::new(max_lines, max_bytes);
        for chunk in chunks {
            tail.push(chunk);
        }
        tail.into_string()
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let text: String = (1..=10).map(|n| format!("line {n}\n")).collect();
        assert_eq!(
            tail_of(&[text.as_bytes()], 3, 1024),
            "line 8\nline 9\nline 10\n"
        );
        assert_eq!(tail_of(&[b"a\nb"], 1, 1024), "b");
        assert_eq!(tail_of(&[b"a\nb\n"], 5, 1024), "a\nb\n");
        assert_eq!(tail_of(&[b"a\nb\n"], 0, 1024), "");
    }

    #[test]
    fn tail_keeps_the_last_bytes_across_chunks() {
        let chunks: Vec<Vec<u8>> = (0..100u8).map(|n| vec![b'a' + n % 26; 7]).collect();
        let chunks: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
        let all: Vec<u8> = chunks.concat();
        let tail = tail_of(&chunks, 1000, 50);
        assert_eq!(tail.as_bytes(), &all[all.len() - 50..]);
    }

    #[test]
    fn tail_does_not_start_inside_a_character() {
        // "é" is two bytes; a 3-byte limit cuts the first one in half.
        assert_eq!(tail_of(&["éé".as_bytes()], 10, 3), "é");
    }

    #[test]
    fn sink_masks_log_echo_and_tail() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("step.log");
        let echo = SharedBuffer::default();
        let mut sink = OutputSink::new()
            .log_to(&log)
            .echo_to(echo.clone())
            .redact_with(&Redactor::builder().secret("s3cret").build())
            .open()
            .unwrap();
        sink.write(b"password: s3");
        sink.write(b"cret\nbye");
        let captured = sink.finish().unwrap();
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "password: ***\nbye");
        assert_eq!(echo.contents(), "password: ***\nbye");
        assert_eq!(captured.tail, "password: ***\nbye");
        assert_eq!(captured.bytes, 20);
    }

    #[test]
    fn log_in_a_missing_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("missing/step.log");
        let err = OutputSink::new().log_to(&log).open().err().unwrap();
        assert!(
            err.to_string().starts_with("failed to create log file `"),
            "{err}"
        );
    }
}
