//! A text file as lines, keeping each line's terminator so that patching preserves CRLF files,
//! mixed files and the final-newline state byte for byte outside the changed lines.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Eol {
    Lf,
    CrLf,
}

impl Eol {
    fn as_str(self) -> &'static str {
        match self {
            Self::Lf => "\n",
            Self::CrLf => "\r\n",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TextLine {
    pub(crate) text: String,
    /// `None` for a line the patch added, or the old last line without a newline: such lines get
    /// the file's dominant terminator if anything follows them.
    pub(crate) eol: Option<Eol>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TextFile {
    pub(crate) lines: Vec<TextLine>,
    pub(crate) final_newline: bool,
    pub(crate) dominant: Eol,
    /// A UTF-8 byte order mark, kept out of the first line so that context still matches it.
    pub(crate) bom: bool,
}

impl TextFile {
    /// Splits UTF-8 `bytes` into lines; `None` if they are not text.
    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        let content = std::str::from_utf8(bytes).ok()?;
        let (bom, content) = match content.strip_prefix('\u{feff}') {
            Some(rest) => (true, rest),
            None => (false, content),
        };
        if content.contains('\0') {
            return None;
        }
        let mut lines = Vec::new();
        let (mut crlf, mut lf) = (0usize, 0usize);
        let mut rest = content;
        while !rest.is_empty() {
            let (line, eol, next) = match rest.find('\n') {
                Some(at) if rest[..at].ends_with('\r') => {
                    crlf += 1;
                    (&rest[..at - 1], Some(Eol::CrLf), &rest[at + 1..])
                }
                Some(at) => {
                    lf += 1;
                    (&rest[..at], Some(Eol::Lf), &rest[at + 1..])
                }
                None => (rest, None, ""),
            };
            lines.push(TextLine {
                text: line.to_owned(),
                eol,
            });
            rest = next;
        }
        let final_newline = lines.last().is_none_or(|line| line.eol.is_some());
        let dominant = if crlf > lf { Eol::CrLf } else { Eol::Lf };
        Some(Self {
            lines,
            final_newline,
            dominant,
            bom,
        })
    }

    /// A new file from the patch's lines: LF, since nothing says otherwise.
    pub(crate) fn from_lines(lines: Vec<String>, final_newline: bool) -> Self {
        let lines = lines
            .into_iter()
            .map(|text| TextLine { text, eol: None })
            .collect();
        Self {
            lines,
            final_newline,
            dominant: Eol::Lf,
            bom: false,
        }
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = String::new();
        if self.bom {
            out.push('\u{feff}');
        }
        let last = self.lines.len().saturating_sub(1);
        for (index, line) in self.lines.iter().enumerate() {
            out.push_str(&line.text);
            if index < last || self.final_newline {
                out.push_str(line.eol.unwrap_or(self.dominant).as_str());
            }
        }
        out.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_ending_style() {
        for content in [
            "",
            "a",
            "a\n",
            "a\r\nb\r\n",
            "a\r\nb",
            "a\nb\r\nc\n",
            "\n\n",
            "x\r\n\r\n",
            "\u{feff}a\r\n",
        ] {
            let file = TextFile::decode(content.as_bytes()).unwrap();
            assert_eq!(String::from_utf8(file.encode()).unwrap(), content);
        }
    }

    #[test]
    fn dominant_ending_and_final_newline() {
        let file = TextFile::decode(b"a\r\nb\r\nc").unwrap();
        assert_eq!(file.dominant, Eol::CrLf);
        assert!(!file.final_newline);
        assert!(TextFile::decode(b"\xff\xfe").is_none());
    }
}
