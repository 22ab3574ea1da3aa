//! A parser for Azure Pipelines logging commands, reading output the way the agent does:
//! `##vso[area.action key=value;key=value]data`, anywhere in a line, values unescaped.

use std::collections::BTreeMap;

/// One parsed `##vso[...]` command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct VsoCommand {
    /// `area.action`, e.g. `task.logissue`.
    pub(crate) command: String,
    pub(crate) properties: BTreeMap<String, String>,
    pub(crate) data: String,
}

impl VsoCommand {
    pub(crate) fn property(&self, key: &str) -> Option<&str> {
        self.properties.get(key).map(String::as_str)
    }
}

/// Every logging command in `output`, in order.
pub(crate) fn parse_all(output: &str) -> Vec<VsoCommand> {
    output.lines().filter_map(parse_line).collect()
}

/// The commands named `command` (`task.complete`, ...) in `output`.
pub(crate) fn find<'a>(commands: &'a [VsoCommand], command: &str) -> Vec<&'a VsoCommand> {
    commands.iter().filter(|c| c.command == command).collect()
}

/// Parses one line; `None` when it holds no well-formed command.
pub(crate) fn parse_line(line: &str) -> Option<VsoCommand> {
    let start = line.find("##vso[")? + "##vso[".len();
    let rest = &line[start..];
    let end = rest.find(']')?;
    let (head, data) = (&rest[..end], &rest[end + 1..]);
    let (command, properties) = match head.split_once(' ') {
        Some((command, properties)) => (command, properties),
        None => (head, ""),
    };
    if !command.contains('.') {
        return None;
    }
    let properties = properties
        .split(';')
        .filter(|p| !p.trim().is_empty())
        .filter_map(|p| {
            let (key, value) = p.split_once('=')?;
            Some((key.trim().to_owned(), unescape(value)))
        })
        .collect();
    Some(VsoCommand {
        command: command.to_owned(),
        properties,
        data: unescape(data.trim_end_matches('\r')),
    })
}

/// Undoes the agent's escaping; `%AZP25` last, so an escaped `%` is not read as another escape.
pub(crate) fn unescape(value: &str) -> String {
    value
        .replace("%3B", ";")
        .replace("%0D", "\r")
        .replace("%0A", "\n")
        .replace("%5D", "]")
        .replace("%AZP25", "%")
}

/// A formatting line (`##[group]name`, `##[error]text`): its kind and text.
pub(crate) fn parse_formatting(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix("##[")?;
    let (kind, text) = rest.split_once(']')?;
    Some((kind, text))
}
