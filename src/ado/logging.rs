//! Azure Pipelines logging commands (`##vso[area.action key=value;...]data`) and formatting
//! lines (`##[group]`, `##[warning]`, ...), written to stdout where the agent reads them.
//!
//! Property values and data are escaped as the agent unescapes them, so a message holding `;`,
//! `]`, `%` or a newline arrives whole instead of ending the command early or injecting
//! another one.

use std::fmt;
use std::path::Path;

/// Escapes a property value or command data: `%` first (so the other escapes are not escaped
/// again), then `;`, `\r`, `\n` and `]`.
pub fn escape(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '%' => escaped.push_str("%AZP25"),
            ';' => escaped.push_str("%3B"),
            '\r' => escaped.push_str("%0D"),
            '\n' => escaped.push_str("%0A"),
            ']' => escaped.push_str("%5D"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// One `##vso[...]` command; `Display` writes the whole line (without the newline).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggingCommand {
    /// `area.action`, e.g. `task.logissue`.
    command: &'static str,
    properties: Vec<(&'static str, String)>,
    data: String,
}

/// How bad a [`Issue`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IssueType {
    Error,
    Warning,
}

/// An error or warning shown on the run's summary page, optionally tied to a file position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issue {
    pub kind: IssueType,
    pub message: String,
    pub source_path: Option<String>,
    pub line: Option<u32>,
    pub column: Option<u32>,
}

impl Issue {
    pub fn error(message: impl Into<String>) -> Self {
        Self::new(IssueType::Error, message)
    }

    pub fn warning(message: impl Into<String>) -> Self {
        Self::new(IssueType::Warning, message)
    }

    fn new(kind: IssueType, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source_path: None,
            line: None,
            column: None,
        }
    }

    /// Points the issue at `path:line:column` (a workflow node, say).
    pub fn at(mut self, path: &Path, line: u32, column: u32) -> Self {
        self.source_path = Some(path.to_string_lossy().into_owned());
        self.line = Some(line);
        self.column = Some(column);
        self
    }
}

/// The result a task reports with `task.complete`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskResult {
    Succeeded,
    SucceededWithIssues,
    Failed,
}

impl TaskResult {
    fn as_str(self) -> &'static str {
        match self {
            TaskResult::Succeeded => "Succeeded",
            TaskResult::SucceededWithIssues => "SucceededWithIssues",
            TaskResult::Failed => "Failed",
        }
    }
}

impl LoggingCommand {
    fn new(command: &'static str, data: impl Into<String>) -> Self {
        Self {
            command,
            properties: Vec::new(),
            data: data.into(),
        }
    }

    fn property(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.properties.push((key, value.into()));
        self
    }

    fn optional_property(self, key: &'static str, value: Option<impl Into<String>>) -> Self {
        match value {
            Some(value) => self.property(key, value),
            None => self,
        }
    }

    /// `task.logissue type=error|warning;sourcepath=..;linenumber=..;columnnumber=..`
    pub fn log_issue(issue: &Issue) -> Self {
        let kind = match issue.kind {
            IssueType::Error => "error",
            IssueType::Warning => "warning",
        };
        Self::new("task.logissue", issue.message.as_str())
            .property("type", kind)
            .optional_property("sourcepath", issue.source_path.as_deref())
            .optional_property("linenumber", issue.line.map(|n| n.to_string()))
            .optional_property("columnnumber", issue.column.map(|n| n.to_string()))
    }

    /// `task.setsecret`: the agent masks `value` in every later line of the log.
    pub fn set_secret(value: &str) -> Self {
        Self::new("task.setsecret", value)
    }

    /// `task.setvariable variable=NAME;isOutput=true`: a variable later jobs and stages read
    /// as `dependencies.<job>.outputs['<step>.NAME']` (`stageDependencies.<stage>.<job>...`).
    pub fn set_output_variable(name: &str, value: &str) -> Self {
        Self::new("task.setvariable", value)
            .property("variable", name)
            .property("isOutput", "true")
    }

    /// `task.setprogress value=N`: N is clamped to 0..=100.
    pub fn set_progress(percent: u32, description: &str) -> Self {
        Self::new("task.setprogress", description).property("value", percent.min(100).to_string())
    }

    /// `task.uploadsummary`: a markdown file shown as a tab of the run's summary page.
    pub fn upload_summary(markdown: &Path) -> Self {
        Self::new("task.uploadsummary", markdown.to_string_lossy())
    }

    /// `artifact.upload containerfolder=..;artifactname=..`: publishes a file or a folder.
    pub fn upload_artifact(container_folder: &str, artifact_name: &str, path: &Path) -> Self {
        Self::new("artifact.upload", path.to_string_lossy())
            .property("containerfolder", container_folder)
            .property("artifactname", artifact_name)
    }

    /// `task.complete result=..`: the task's result, whatever its exit code.
    pub fn complete(result: TaskResult, message: &str) -> Self {
        Self::new("task.complete", message).property("result", result.as_str())
    }
}

impl fmt::Display for LoggingCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "##vso[{}", self.command)?;
        for (i, (key, value)) in self.properties.iter().enumerate() {
            let separator = if i == 0 { ' ' } else { ';' };
            write!(f, "{separator}{key}={}", escape(value))?;
        }
        write!(f, "]{}", escape(&self.data))
    }
}

/// `##[group]name`: starts a collapsible section of the log. A formatting line has no escaping,
/// so line breaks in `name` become spaces.
pub fn group(name: &str) -> String {
    format!("##[group]{}", one_line(name))
}

/// `##[endgroup]`: ends the section [`group`] started.
pub fn endgroup() -> &'static str {
    "##[endgroup]"
}

/// `##[warning]` on every line of `message`: the log highlights each one.
pub fn warning(message: &str) -> String {
    prefix_lines("##[warning]", message)
}

/// `##[error]` on every line of `message`.
pub fn error(message: &str) -> String {
    prefix_lines("##[error]", message)
}

fn one_line(text: &str) -> String {
    text.replace("\r\n", " ").replace(['\r', '\n'], " ")
}

fn prefix_lines(prefix: &str, message: &str) -> String {
    message
        .lines()
        .map(|line| format!("{prefix}{line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_every_special_character_once() {
        assert_eq!(escape("100%"), "100%AZP25");
        assert_eq!(escape("a;b]c\r\nd"), "a%3Bb%5Dc%0D%0Ad");
        // `%` is escaped before the others, so their escapes are not escaped again.
        assert_eq!(escape("%3B;"), "%AZP253B%3B");
        assert_eq!(escape("plain text: ok"), "plain text: ok");
    }

    #[test]
    fn log_issue_with_position() {
        let issue = Issue::error("unknown step kind `deplooy`; did you mean `deploy`?").at(
            Path::new("workflows/fleet.yaml"),
            12,
            5,
        );
        assert_eq!(
            LoggingCommand::log_issue(&issue).to_string(),
            "##vso[task.logissue type=error;sourcepath=workflows/fleet.yaml;linenumber=12;\
             columnnumber=5]unknown step kind `deplooy`%3B did you mean `deploy`?"
        );
    }

    #[test]
    fn log_issue_without_position() {
        assert_eq!(
            LoggingCommand::log_issue(&Issue::warning("lint failed\n(not required)")).to_string(),
            "##vso[task.logissue type=warning]lint failed%0A(not required)"
        );
    }

    #[test]
    fn a_message_cannot_inject_a_command() {
        let line =
            LoggingCommand::log_issue(&Issue::error("x]\n##vso[task.complete result=Succeeded]"))
                .to_string();
        assert!(!line.contains('\n'));
        assert_eq!(line.matches(']').count(), 1, "{line}");
    }

    #[test]
    fn secret_progress_summary_artifact() {
        assert_eq!(
            LoggingCommand::set_secret("p@ss;w]rd").to_string(),
            "##vso[task.setsecret]p@ss%3Bw%5Drd"
        );
        assert_eq!(
            LoggingCommand::set_progress(140, "iteration 2 of 5").to_string(),
            "##vso[task.setprogress value=100]iteration 2 of 5"
        );
        assert_eq!(
            LoggingCommand::upload_summary(Path::new("/a/summary.md")).to_string(),
            "##vso[task.uploadsummary]/a/summary.md"
        );
        assert_eq!(
            LoggingCommand::upload_artifact("runs", "agent-orch-run", Path::new("/a/run"))
                .to_string(),
            "##vso[artifact.upload containerfolder=runs;artifactname=agent-orch-run]/a/run"
        );
    }

    #[test]
    fn complete_names_the_result() {
        assert_eq!(
            LoggingCommand::complete(TaskResult::SucceededWithIssues, "lint failed").to_string(),
            "##vso[task.complete result=SucceededWithIssues]lint failed"
        );
    }

    #[test]
    fn formatting_lines() {
        assert_eq!(group("iteration 1\nof 3"), "##[group]iteration 1 of 3");
        assert_eq!(endgroup(), "##[endgroup]");
        assert_eq!(warning("a\nb"), "##[warning]a\n##[warning]b");
        assert_eq!(error("boom"), "##[error]boom");
    }
}
