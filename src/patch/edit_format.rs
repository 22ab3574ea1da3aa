//! The edit formats a fixer may answer in, how a reply's format is recognized, and the one
//! entry point that parses any of them into the same [`Patch`].

use super::diff::Patch;
use super::parse::{ParseError, ParseErrorKind, fenced_blocks, looks_like_diff, reply_lines};
use super::workspace::Workspace;
use super::{parse, search_replace, v4a, whole_file};

/// A way of writing an edit. Every format parses into the same [`Patch`], so locating by
/// context, refusing ambiguity, the policy and atomic application are the same for all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EditFormat {
    /// `--- a/path` / `+++ b/path` / `@@` hunks.
    Unified,
    /// OpenAI's `apply_patch` format: `*** Begin Patch` ... `*** End Patch`.
    V4a,
    /// aider's `<<<<<<< SEARCH` / `=======` / `>>>>>>> REPLACE` blocks after a path line.
    SearchReplace,
    /// A path line, then the file's complete new content in a fenced block.
    WholeFile,
}

impl EditFormat {
    pub const ALL: [Self; 4] = [
        Self::Unified,
        Self::V4a,
        Self::SearchReplace,
        Self::WholeFile,
    ];

    /// The name used in settings, audit records and benchmark tables.
    pub fn key(self) -> &'static str {
        match self {
            Self::Unified => "unified",
            Self::V4a => "v4a",
            Self::SearchReplace => "search_replace",
            Self::WholeFile => "whole_file",
        }
    }

    /// The format in words, for messages.
    pub fn described(self) -> &'static str {
        match self {
            Self::Unified => "a unified diff",
            Self::V4a => "a V4A patch",
            Self::SearchReplace => "SEARCH/REPLACE blocks",
            Self::WholeFile => "whole-file content",
        }
    }

    /// The format `reply` is written in. The markers are checked from the most distinctive
    /// (`*** Begin Patch`, `<<<<<<< SEARCH`) to the least (a path above a fence).
    pub fn detect(reply: &str) -> Option<Self> {
        if v4a::looks_like_v4a(reply) {
            Some(Self::V4a)
        } else if search_replace::looks_like_search_replace(reply) {
            Some(Self::SearchReplace)
        } else if looks_like_diff(&reply_lines(reply))
            || fenced_blocks(&reply_lines(reply))
                .iter()
                .any(|block| looks_like_diff(block))
        {
            Some(Self::Unified)
        } else if whole_file::looks_like_whole_file(reply) {
            Some(Self::WholeFile)
        } else {
            None
        }
    }
}

/// A reply parsed into the edit model, with the format it was written in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedReply {
    pub format: EditFormat,
    pub patch: Patch,
}

/// Parses `reply` in `expected` format, or in whichever it is written in when `expected` is
/// `None` (`edit_format: auto`). `workspace` is read only for whole-file replies, which are
/// diffed against the files they replace.
pub fn parse_reply(
    reply: &str,
    expected: Option<EditFormat>,
    workspace: &Workspace,
) -> Result<ParsedReply, ParseError> {
    let detected = EditFormat::detect(reply);
    let format = match (expected, detected) {
        (Some(expected), Some(found)) if found != expected => {
            return Err(ParseErrorKind::WrongFormat {
                found: found.described(),
                expected: expected.described(),
            }
            .into());
        }
        (Some(format), _) | (None, Some(format)) => format,
        (None, None) => {
            return Err(ParseErrorKind::NoEdit {
                expected: "a unified diff, a V4A patch, SEARCH/REPLACE blocks or a whole file",
            }
            .into());
        }
    };
    let patch = match format {
        EditFormat::Unified => parse(reply)?,
        EditFormat::V4a => v4a::parse(reply)?,
        EditFormat::SearchReplace => search_replace::parse(reply)?,
        EditFormat::WholeFile => whole_file::parse(reply, workspace)?,
    };
    Ok(ParsedReply { format, patch })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_format_is_recognized_by_its_markers() {
        let cases = [
            (
                "```diff\n--- a/x\n+++ b/x\n@@ @@\n-a\n+b\n```",
                EditFormat::Unified,
            ),
            (
                "*** Begin Patch\n*** Update File: x\n-a\n+b\n*** End Patch",
                EditFormat::V4a,
            ),
            (
                "x.py\n<<<<<<< SEARCH\na\n=======\nb\n>>>>>>> REPLACE",
                EditFormat::SearchReplace,
            ),
            ("src/x.py\n```python\nprint(1)\n```", EditFormat::WholeFile),
        ];
        for (reply, format) in cases {
            assert_eq!(EditFormat::detect(reply), Some(format), "{reply}");
        }
        assert_eq!(EditFormat::detect("I could not find the cause."), None);
    }

    #[test]
    fn a_pinned_format_refuses_another_and_auto_takes_any() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x.py"), "a\n").unwrap();
        let workspace = Workspace::new(dir.path()).unwrap();
        let reply = "x.py\n<<<<<<< SEARCH\na\n=======\nb\n>>>>>>> REPLACE\n";
        let error = parse_reply(reply, Some(EditFormat::V4a), &workspace).unwrap_err();
        assert_eq!(
            error.to_string(),
            "failed to parse the patch: the reply holds SEARCH/REPLACE blocks, but the agent's \
             `edit_format` asks for a V4A patch"
        );
        let parsed = parse_reply(reply, None, &workspace).unwrap();
        assert_eq!(parsed.format, EditFormat::SearchReplace);
    }
}
