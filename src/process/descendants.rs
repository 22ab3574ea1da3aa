//! The processes descending from one process, read from `/proc` (Linux).

use std::collections::HashMap;

use nix::unistd::Pid;

/// Every live descendant of `root` (children, their children, ...), from one pass over
/// `/proc`. Processes that start or end during the pass may be missed or listed: callers that
/// must catch them all repeat until nothing is left.
pub(crate) fn descendants(root: Pid) -> Vec<Pid> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if let Some(parent) = parent_of(pid) {
            children.entry(parent).or_default().push(pid);
        }
    }
    let mut found = Vec::new();
    let mut pending = vec![root.as_raw()];
    while let Some(pid) = pending.pop() {
        if let Some(kids) = children.get(&pid) {
            found.extend(kids.iter().copied().map(Pid::from_raw));
            pending.extend(kids);
        }
    }
    found
}

/// The parent pid in `/proc/PID/stat`: the second field after the command name, which is in
/// parentheses and may itself hold spaces and parentheses.
fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_grandchildren_and_not_strangers() {
        let mut child = std::process::Command::new("/bin/sh")
            .args(["-c", "sleep 30 & echo $!; wait"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
            &mut line,
        )
        .unwrap();
        let grandchild = Pid::from_raw(line.trim().parse().unwrap());
        let shell = Pid::from_raw(i32::try_from(child.id()).unwrap());

        let found = descendants(Pid::this());
        let below_shell = descendants(shell);
        let _ = nix::sys::signal::kill(grandchild, nix::sys::signal::Signal::SIGKILL);
        child.wait().unwrap();

        assert!(found.contains(&shell), "{found:?}");
        assert!(found.contains(&grandchild), "{found:?}");
        assert_eq!(below_shell, vec![grandchild]);
        assert!(!found.contains(&Pid::parent()));
    }
}
