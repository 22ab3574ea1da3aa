//! Streaming removal of secret values from command output, before it reaches a log, the
//! terminal or the tail kept for reports and prompts.

use regex::bytes::{Regex, RegexBuilder};

/// What a masked secret is replaced with.
const REPLACEMENT: &[u8] = b"***";

/// Replaces secret values in a byte stream, including values split across two reads.
///
/// Output is released only when no secret can still start in it: the last `longest - 1` bytes
/// are held back until more output (or the end of it) arrives. The result is the same as
/// masking the whole output at once, with at most one secret's length buffered.
pub(crate) struct Masker {
    /// The secrets, longest first, so that of two secrets starting at the same byte the longer
    /// one is replaced whole.
    pattern: Regex,
    longest: usize,
    pending: Vec<u8>,
}

impl Masker {
    /// A masker for `secrets`, or `None` when there is nothing to mask (empty values are ignored).
    pub(crate) fn new(secrets: &[String]) -> Result<Option<Self>, regex::Error> {
        let mut secrets: Vec<&str> = secrets
            .iter()
            .map(String::as_str)
            .filter(|secret| !secret.is_empty())
            .collect();
        secrets.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
        secrets.dedup();
        let Some(longest) = secrets.first().map(|secret| secret.len()) else {
            return Ok(None);
        };
        let alternation = secrets
            .iter()
            .map(|secret| regex::escape(secret))
            .collect::<Vec<_>>()
            .join("|");
        let pattern = RegexBuilder::new(&alternation)
            // Many long secrets make a large automaton; that is still better than not masking.
            .size_limit(64 << 20)
            .build()?;
        Ok(Some(Self {
            pattern,
            longest,
            pending: Vec::new(),
        }))
    }

    /// Feeds `chunk`; appends to `out` what can be released safely.
    pub(crate) fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        self.pending.extend_from_slice(chunk);
        // A match starting before `safe` is final: every secret starting there fits in
        // `pending`, so more output cannot turn it into a different (longer) match.
        let safe = self.pending.len().saturating_sub(self.longest - 1);
        let mut released = 0;
        for found in self.pattern.find_iter(&self.pending) {
            if found.start() >= safe {
                break;
            }
            out.extend_from_slice(&self.pending[released..found.start()]);
            out.extend_from_slice(REPLACEMENT);
            released = found.end();
        }
        let cut = safe.max(released);
        out.extend_from_slice(&self.pending[released..cut]);
        self.pending.drain(..cut);
    }

    /// Releases everything held back, at the end of the output.
    pub(crate) fn finish(&mut self, out: &mut Vec<u8>) {
        let mut released = 0;
        for found in self.pattern.find_iter(&self.pending) {
            out.extend_from_slice(&self.pending[released..found.start()]);
            out.extend_from_slice(REPLACEMENT);
            released = found.end();
        }
        out.extend_from_slice(&self.pending[released..]);
        self.pending.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask_in_chunks(secrets: &[&str], input: &str, chunk_len: usize) -> String {
        let secrets: Vec<String> = secrets.iter().map(|s| (*s).to_owned()).collect();
        let mut masker = Masker::new(&secrets).unwrap().unwrap();
        let mut out = Vec::new();
        for chunk in input.as_bytes().chunks(chunk_len) {
            masker.push(chunk, &mut out);
        }
        masker.finish(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn no_secrets_means_no_masker() {
        assert!(Masker::new(&[]).unwrap().is_none());
        assert!(Masker::new(&[String::new()]).unwrap().is_none());
    }

    #[test]
    fn masks_every_occurrence_whatever_the_chunking() {
        let input = "token=hunter2\nagain hunter2hunter2 and hunt er2\n";
        let expected = "token=***\nagain ****** and hunt er2\n";
        for chunk_len in 1..=input.len() {
            assert_eq!(
                mask_in_chunks(&["hunter2"], input, chunk_len),
                expected,
                "chunk length {chunk_len}"
            );
        }
    }

    #[test]
    fn prefers_the_longer_secret_at_the_same_position_even_across_chunks() {
        let input = "xx abcdef yy abc zz";
        for chunk_len in 1..=input.len() {
            assert_eq!(
                mask_in_chunks(&["abc", "abcdef"], input, chunk_len),
                "xx *** yy *** zz",
                "chunk length {chunk_len}"
            );
        }
    }

    #[test]
    fn secrets_are_literal_text_not_patterns() {
        assert_eq!(mask_in_chunks(&["a.b*"], "a.b* axbb", 3), "*** axbb");
    }

    #[test]
    fn holds_back_only_a_secret_length() {
        let mut masker = Masker::new(&["secret".to_owned()]).unwrap().unwrap();
        let mut out = Vec::new();
        masker.push(&[b'x'; 10_000], &mut out);
        assert_eq!(out.len(), 10_000 - 5);
    }
}
