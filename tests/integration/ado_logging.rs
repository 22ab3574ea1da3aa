//! `agent_orch::ado::logging` read back the way the agent reads it: whatever a message holds,
//! the parsed command carries it unchanged, and one call is one command.

use std::path::Path;

use agent_orch::ado::logging::{self, Issue, LoggingCommand, TaskResult};

use crate::support::vso;

/// Text that would break an unescaped command: separators, brackets, line breaks, and
/// sequences that look like escapes already.
const AWKWARD: &[&str] = &[
    "plain",
    "a;b=c]d",
    "line one\nline two\r\nline three",
    "100% done, %3B is not a semicolon, %AZP25 is not a percent",
    "]##vso[task.complete result=Succeeded]",
    "ünïcödé ✓",
];

#[test]
fn every_message_round_trips_through_the_agent_parser() {
    for text in AWKWARD {
        let issue = Issue::error(*text).at(Path::new("dir;x/work]flow.yaml"), 3, 9);
        let line = LoggingCommand::log_issue(&issue).to_string();
        let commands = vso::parse_all(&line);
        assert_eq!(commands.len(), 1, "{line}");
        let command = &commands[0];
        assert_eq!(command.command, "task.logissue");
        assert_eq!(command.data, *text, "{line}");
        assert_eq!(command.property("type"), Some("error"));
        assert_eq!(command.property("sourcepath"), Some("dir;x/work]flow.yaml"));
        assert_eq!(command.property("linenumber"), Some("3"));
        assert_eq!(command.property("columnnumber"), Some("9"));

        let upload = LoggingCommand::upload_artifact("runs", text, Path::new("/a/run")).to_string();
        assert_eq!(
            vso::parse_all(&upload)[0].property("artifactname"),
            Some(*text),
            "{upload}"
        );
    }
}

#[test]
fn a_task_run_reads_back_as_the_agent_sees_it() {
    let output = [
        logging::group("iteration 1 of 3"),
        LoggingCommand::set_secret("tok;en]").to_string(),
        LoggingCommand::set_progress(33, "iteration 1 of 3").to_string(),
        logging::warning("lint failed (not required)"),
        logging::endgroup().to_owned(),
        LoggingCommand::upload_artifact("agent-orch", "agent-orch-staging", Path::new("/a/run"))
            .to_string(),
        LoggingCommand::upload_summary(Path::new("/a/run/summary.md")).to_string(),
        LoggingCommand::complete(TaskResult::SucceededWithIssues, "1 warning").to_string(),
    ]
    .join("\n");

    let commands = vso::parse_all(&output);
    let names: Vec<&str> = commands.iter().map(|c| c.command.as_str()).collect();
    assert_eq!(
        names,
        [
            "task.setsecret",
            "task.setprogress",
            "artifact.upload",
            "task.uploadsummary",
            "task.complete"
        ]
    );
    assert_eq!(commands[0].data, "tok;en]");
    assert_eq!(commands[1].property("value"), Some("33"));
    assert_eq!(
        commands[2].property("artifactname"),
        Some("agent-orch-staging")
    );
    assert_eq!(commands[2].property("containerfolder"), Some("agent-orch"));
    assert_eq!(commands[3].data, "/a/run/summary.md");
    assert_eq!(commands[4].property("result"), Some("SucceededWithIssues"));

    let formatting: Vec<(&str, &str)> = output.lines().filter_map(vso::parse_formatting).collect();
    assert_eq!(
        formatting,
        [
            ("group", "iteration 1 of 3"),
            ("warning", "lint failed (not required)"),
            ("endgroup", "")
        ]
    );
}
