//! Which edit format a fixer is asked for, and how the system message describes it.
//!
//! `auto` asks each model family in the format it was trained toward: OpenAI's GPT-4.1, GPT-5,
//! o-series and Codex models toward V4A (the `apply_patch` tool's format), Claude toward exact
//! search-and-replace edits, and aider finds SEARCH/REPLACE blocks the best default for
//! Gemini and open models. Whatever was asked, an `auto` agent's reply may be in any format.

use crate::patch::EditFormat;
use crate::workflow::model::EditFormatSetting;

/// The format to ask for, and the one format a reply must be in (`None`: any).
pub(crate) fn resolve(setting: EditFormatSetting, model: &str) -> (EditFormat, Option<EditFormat>) {
    let pinned = match setting {
        EditFormatSetting::Auto => return (family_format(model), None),
        EditFormatSetting::Unified => EditFormat::Unified,
        EditFormatSetting::V4a => EditFormat::V4a,
        EditFormatSetting::SearchReplace => EditFormat::SearchReplace,
        EditFormatSetting::WholeFile => EditFormat::WholeFile,
    };
    (pinned, Some(pinned))
}

fn family_format(model: &str) -> EditFormat {
    let lower = model.to_ascii_lowercase();
    // `openai/gpt-5` (LiteLLM, OpenRouter) names the family after the slash.
    let name = lower.rsplit('/').next().unwrap_or(&lower);
    let openai_patch = ["gpt-5", "gpt-4.1", "o1", "o3", "o4"]
        .iter()
        .any(|prefix| name.starts_with(prefix))
        || name.contains("codex");
    let search_replace = [
        "claude",
        "gemini",
        "deepseek",
        "qwen",
        "llama",
        "mistral",
        "codestral",
    ]
    .iter()
    .any(|family| name.contains(family));
    if openai_patch {
        EditFormat::V4a
    } else if search_replace {
        EditFormat::SearchReplace
    } else {
        EditFormat::Unified
    }
}

/// How to write an edit in `format`: appended to the fixer's system message, so no prompt
/// template can leave it out.
pub(crate) fn instructions(format: EditFormat) -> &'static str {
    match format {
        EditFormat::Unified => {
            "Edit format: one unified diff in a ```diff fenced block, with `--- a/<path>` and \
             `+++ b/<path>` headers and `@@` hunks, each change with three lines of unchanged \
             context above and below, copied exactly from the file (a space before context \
             lines, `-` before removed lines, `+` before added lines)."
        }
        EditFormat::V4a => {
            "Edit format: a V4A patch, the format of the apply_patch tool:\n\
             *** Begin Patch\n\
             *** Update File: path/to/file.py\n\
             @@ def function_the_change_is_in():\n \
             \x20   context line, copied exactly (a space, then the line)\n\
             -    removed line\n\
             +    added line\n \
             \x20   context line\n\
             *** End Patch\n\
             Give three lines of context above and below each change; when they are not \
             unique in the file, add an `@@` line naming the class or function the change is \
             in. A new file is `*** Add File: <path>` with every line starting with `+`; \
             `*** Delete File: <path>` deletes one; `*** Move to: <path>` after an Update line \
             renames it."
        }
        EditFormat::SearchReplace => {
            "Edit format: SEARCH/REPLACE blocks, one per change, each after the file's path:\n\
             path/to/file.py\n\
             ```python\n\
             <<<<<<< SEARCH\n\
             the lines to change, copied exactly from the file, with enough around them to \
             be unique\n\
             =======\n\
             the lines that replace them\n\
             >>>>>>> REPLACE\n\
             ```\n\
             SEARCH must match the file character for character, indentation and comments \
             included; keep blocks small. To create a file, leave SEARCH empty."
        }
        EditFormat::WholeFile => {
            "Edit format: the complete new content of each file you change: its path on one \
             line, then the whole file in a fenced block (use more backticks than the file \
             itself contains). Never elide anything: no `...`, no \"rest unchanged\"; what is \
             not in the block is deleted. Only for files under 400 lines."
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_picks_by_model_family_and_accepts_any() {
        for (model, asked) in [
            ("gpt-5-codex", EditFormat::V4a),
            ("gpt-4.1-mini", EditFormat::V4a),
            ("openai/o3", EditFormat::V4a),
            ("claude-sonnet-4-5", EditFormat::SearchReplace),
            ("anthropic/claude-opus-4", EditFormat::SearchReplace),
            ("qwen2.5-coder:32b", EditFormat::SearchReplace),
            ("gpt-4o", EditFormat::Unified),
        ] {
            assert_eq!(
                resolve(EditFormatSetting::Auto, model),
                (asked, None),
                "{model}"
            );
        }
        assert_eq!(
            resolve(EditFormatSetting::SearchReplace, "gpt-5"),
            (EditFormat::SearchReplace, Some(EditFormat::SearchReplace))
        );
    }

    #[test]
    fn the_v4a_example_keeps_its_leading_spaces() {
        assert!(instructions(EditFormat::V4a).contains("\n     context line, copied exactly"));
    }
}
