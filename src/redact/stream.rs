//! Redaction of a byte stream (command output) read in arbitrary pieces.
//!
//! Output is released a line at a time: every complete line (ended by `\n` or `\r`) is
//! redacted as soon as it has arrived, so a secret or token split across two reads is seen whole. A line longer than
//! [`MAX_HELD`] is released in pieces cut at whitespace (or, in a run with no whitespace, after
//! holding back one whole secret's length), so memory stays bounded whatever the output. A
//! private key whose lines arrive in several pieces stays masked until its footer.

use super::Redactor;
use super::shapes;

/// Most bytes of one line held back while waiting for its end.
pub(super) const MAX_HELD: usize = 64 * 1024;

/// A long line is cut at whitespace within this many bytes before the hold-back point.
const CUT_WINDOW: usize = 4 * 1024;

pub struct StreamRedactor {
    redactor: Redactor,
    pending: Vec<u8>,
    /// An earlier piece ended inside a private key: its body lines are dropped until the
    /// footer (the key's marker is already out).
    inside_private_key: bool,
}

impl StreamRedactor {
    pub(super) fn new(redactor: Redactor) -> Self {
        Self {
            redactor,
            pending: Vec::new(),
            inside_private_key: false,
        }
    }

    /// Feeds `chunk`; appends to `out` what can be released safely.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        // A carriage return ends a line too: progress bars redraw with it and must not wait.
        let Some(last_end) = memchr::memrchr2(b'\n', b'\r', chunk) else {
            self.pending.extend_from_slice(chunk);
            if self.pending.len() > MAX_HELD {
                let cut = self.long_line_cut();
                self.release(cut, out);
            }
            return;
        };
        // The line waiting in `pending` is finished by the chunk's first line end; the rest of
        // the chunk's complete lines are redacted where they are, without being copied first.
        let mut start = 0;
        if !self.pending.is_empty() {
            let first_end = memchr::memchr2(b'\n', b'\r', chunk).unwrap_or(last_end);
            let mut line = std::mem::take(&mut self.pending);
            line.extend_from_slice(&chunk[..=first_end]);
            self.redact_into(&line, out);
            line.clear();
            self.pending = line;
            start = first_end + 1;
        }
        self.redact_into(&chunk[start..=last_end], out);
        self.pending.extend_from_slice(&chunk[last_end + 1..]);
    }

    /// Releases everything held back, at the end of the output.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        let all = self.pending.len();
        self.release(all, out);
    }

    /// Where to cut a line too long to hold: after the last whitespace in the window before
    /// the hold-back point, so a token is not split; the hold-back point itself otherwise.
    fn long_line_cut(&self) -> usize {
        let hold = self.redactor.longest_value().max(CUT_WINDOW);
        let limit = self.pending.len().saturating_sub(hold);
        let window = &self.pending[limit.saturating_sub(CUT_WINDOW)..limit];
        match window.iter().rposition(|byte| byte.is_ascii_whitespace()) {
            Some(space) => limit.saturating_sub(CUT_WINDOW) + space + 1,
            None => limit,
        }
    }

    fn release(&mut self, cut: usize, out: &mut Vec<u8>) {
        let pending = std::mem::take(&mut self.pending);
        let (ready, rest) = pending.split_at(cut.min(pending.len()));
        self.redact_into(ready, out);
        self.pending = rest.to_vec();
    }

    fn redact_into(&mut self, mut text: &[u8], out: &mut Vec<u8>) {
        if self.inside_private_key {
            let (consumed, still_open) = shapes::private_key_rest(text);
            text = &text[consumed..];
            self.inside_private_key = still_open;
        }
        if text.is_empty() {
            return;
        }
        out.extend_from_slice(&self.redactor.redact_bytes(text));
        if shapes::ends_inside_private_key(text) {
            self.inside_private_key = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redact_in_chunks(redactor: &Redactor, input: &str, chunk_len: usize) -> String {
        let mut stream = redactor.stream();
        let mut out = Vec::new();
        for chunk in input.as_bytes().chunks(chunk_len) {
            stream.push(chunk, &mut out);
        }
        stream.finish(&mut out);
        String::from_utf8(out).unwrap_or_else(|err| panic!("{err}"))
    }

    #[test]
    fn secrets_and_shapes_split_across_reads_are_masked_whatever_the_chunking() {
        let redactor = Redactor::builder()
            .secrets(["hunter2", "hunter2-long"])
            .build();
        let input = "token=hunter2\nagain hunter2-long and hunt er2\n\
                     key ghp_abcdefghijklmnopqrstuvwxyz0123456789 end\nlast";
        let expected = "token=***\nagain *** and hunt er2\n\
                        key [REDACTED:github-token] end\nlast";
        for chunk_len in 1..=input.len() {
            assert_eq!(
                redact_in_chunks(&redactor, input, chunk_len),
                expected,
                "chunk length {chunk_len}"
            );
        }
    }

    #[test]
    fn a_private_key_stays_masked_across_pieces() {
        let unix = "before\n-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\nq1w2e3r4t5y6\n\
                    -----END RSA PRIVATE KEY-----\nafter\n";
        let windows = unix.replace('\n', "\r\n");
        for (input, chunk_len) in (1..=unix.len())
            .map(|n| (unix, n))
            .chain((1..=windows.len()).map(|n| (windows.as_str(), n)))
        {
            let out = redact_in_chunks(&Redactor::default(), input, chunk_len);
            assert!(
                !out.contains("MIIE") && !out.contains("q1w2") && !out.contains("END RSA"),
                "chunk length {chunk_len}: {out}"
            );
            assert!(
                out.starts_with("before") && out.contains("[REDACTED:private-key]"),
                "chunk length {chunk_len}: {out}"
            );
            let lines = out.replace("\r\n", "\n");
            assert!(
                lines.ends_with("\nafter\n") && !lines.contains("\n\n\n"),
                "chunk length {chunk_len}: {out}"
            );
        }
    }

    #[test]
    fn a_long_line_is_released_in_bounded_pieces_without_splitting_a_secret() {
        let redactor = Redactor::builder().secret("s3cret-value").build();
        let line = "word ".repeat(40_000) + "s3cret-value " + &"x".repeat(100_000);
        let mut stream = redactor.stream();
        let mut out = Vec::new();
        for chunk in line.as_bytes().chunks(8192) {
            stream.push(chunk, &mut out);
            assert!(stream.pending.len() <= MAX_HELD + 8192);
        }
        stream.finish(&mut out);
        let out = String::from_utf8(out).unwrap_or_else(|err| panic!("{err}"));
        assert!(!out.contains("s3cret"), "secret leaked");
        assert_eq!(out.len(), line.len() - "s3cret-value".len() + 3);
    }
}
