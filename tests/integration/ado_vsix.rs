//! `scripts/package-vsix.sh` end to end: stages the real `agent-orch` binary this test run
//! built, packages it with `tfx extension create`, unpacks the .vsix as the agent unpacks a
//! task, and checks what arrives.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::json;
use tempfile::TempDir;

use crate::support::process::output_with_timeout;
use crate::support::{repo, tools};

const MAX_VSIX_BYTES: u64 = 25 * 1024 * 1024;
/// Generous: the first run installs tfx-cli from the npm registry.
const TIMEOUT: Duration = Duration::from_secs(300);

/// Runs the packaging script on this test run's `agent-orch` binary.
fn package(version: &str, out: &Path, timeout: Duration) -> Output {
    // The script runs node, and npm to install tfx-cli on first use.
    tools::tool("node");
    tools::tool("npm");
    let child = Command::new("bash")
        .arg(repo::path("scripts/package-vsix.sh"))
        .args(["--binary", env!("CARGO_BIN_EXE_agent-orch")])
        .args(["--version", version])
        .arg("--out")
        .arg(out)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    output_with_timeout(child, timeout)
}

/// Packages into `out` and returns the .vsix path the script printed.
fn package_ok(version: &str, out: &Path) -> PathBuf {
    let output = package(version, out, TIMEOUT);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
}

/// Unpacks `vsix` with `support/unzip.js`: contents only, executable bits lost.
fn unpack(vsix: &Path) -> TempDir {
    let dest = tempfile::tempdir().unwrap();
    let unzip = Command::new(tools::tool("node"))
        .arg(repo::path("tests/integration/support/unzip.js"))
        .arg(vsix)
        .arg(dest.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let unzip = output_with_timeout(unzip, Duration::from_secs(30));
    assert!(unzip.status.success(), "{unzip:?}");
    dest
}

/// Every file under `dir`, as `/`-separated relative paths.
fn files_under(dir: &Path) -> BTreeSet<String> {
    let mut files = BTreeSet::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in fs::read_dir(&current).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let relative = path.strip_prefix(dir).unwrap();
                files.insert(relative.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    files
}

#[test]
fn packages_the_staged_task_whole_and_under_the_size_limit() {
    let out = tempfile::tempdir().unwrap();
    let vsix = package_ok("1.4.2", out.path());
    assert_eq!(vsix, out.path().join("agent-orch-1.4.2.vsix"));
    let size = fs::metadata(&vsix).unwrap().len();
    assert!(size <= MAX_VSIX_BYTES, "{size} bytes");

    let unpacked = unpack(&vsix);
    let expected: BTreeSet<String> = [
        "[Content_Types].xml",
        "extension.vsixmanifest",
        "extension.vsomanifest",
        "overview.md",
        "task/bin/linux-x64/agent-orch",
        "task/index.js",
        "task/package.json",
        "task/task.json",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(files_under(unpacked.path()), expected);

    // The task folder arrives byte for byte as staged.
    for file in files_under(&out.path().join("task")) {
        assert_eq!(
            fs::read(unpacked.path().join("task").join(&file)).unwrap(),
            fs::read(out.path().join("task").join(&file)).unwrap(),
            "task/{file} differs from the staged file"
        );
    }

    // The staged binary is the real one, stripped: an executable ELF file.
    let binary = out.path().join("task/bin/linux-x64/agent-orch");
    assert_eq!(&fs::read(&binary).unwrap()[..4], b"\x7fELF");
    assert_eq!(
        fs::metadata(&binary).unwrap().permissions().mode() & 0o777,
        0o755
    );

    // The version is stamped on both manifests; nothing else in task.json changes.
    let mut task = repo::read_json(&unpacked.path().join("task/task.json"));
    assert_eq!(task["version"], json!({"Major": 1, "Minor": 4, "Patch": 2}));
    task["version"] = json!({"Major": 1, "Minor": 0, "Patch": 0});
    assert_eq!(task, repo::read_json(&repo::path("task.json")));
    let manifest = repo::read_to_string(&unpacked.path().join("extension.vsixmanifest"));
    assert!(manifest.contains(r#"Version="1.4.2""#), "{manifest}");
}

#[test]
fn the_unpacked_task_starts_the_packaged_binary() {
    let out = tempfile::tempdir().unwrap();
    let unpacked = unpack(&package_ok("1.0.0", out.path()));
    let binary = unpacked.path().join("task/bin/linux-x64/agent-orch");
    assert_eq!(
        fs::metadata(&binary).unwrap().permissions().mode() & 0o111,
        0
    );

    let shim = Command::new(tools::tool("node"))
        .arg(unpacked.path().join("task/index.js"))
        .current_dir(unpacked.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("INPUT_WORKFLOWFILE", "workflows/missing.yaml")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let shim = output_with_timeout(shim, Duration::from_secs(30));
    let stdout = String::from_utf8_lossy(&shim.stdout);
    // The shim's own failures; whatever the binary then reports is the binary's business.
    for failure in ["has no binary", "failed to make", "failed to start"] {
        assert!(!stdout.contains(failure), "{stdout}");
    }
    assert!(shim.status.code().is_some(), "{shim:?}");
    assert_eq!(
        fs::metadata(&binary).unwrap().permissions().mode() & 0o777,
        0o755
    );
}

#[test]
fn refuses_a_version_that_changes_the_major() {
    let out = tempfile::tempdir().unwrap();
    let output = package("2.0.0", out.path(), Duration::from_secs(10));
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("major version is 1"));
    assert!(!out.path().join("task").exists());
}
