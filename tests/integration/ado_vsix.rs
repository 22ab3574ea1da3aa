//! `scripts/package-vsix.sh` end to end: stages the real `agent-orch` binary this test run
//! built, packages it with `tfx extension create`, and checks what the .vsix holds.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::process::output_with_timeout;
use crate::support::zip_listing;

const MAX_VSIX_BYTES: u64 = 25 * 1024 * 1024;
/// Generous: the first run installs tfx-cli from the npm registry.
const TIMEOUT: Duration = Duration::from_secs(300);

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

/// Runs the packaging script on this test run's `agent-orch` binary.
fn package(version: &str, out: &Path, timeout: Duration) -> Output {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let child = Command::new("bash")
        .arg(repo.join("scripts/package-vsix.sh"))
        .args([
            "--binary",
            env!("CARGO_BIN_EXE_agent-orch"),
            "--version",
            version,
        ])
        .arg("--out")
        .arg(out)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    output_with_timeout(child, timeout)
}

#[test]
fn packages_the_task_with_the_binary_under_the_size_limit() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tempfile::tempdir().unwrap();
    let output = package("1.4.2", out.path(), TIMEOUT);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");

    let vsix = PathBuf::from(String::from_utf8(output.stdout).unwrap().trim());
    assert_eq!(vsix, out.path().join("agent-orch-1.4.2.vsix"));
    let bytes = fs::read(&vsix).unwrap();
    assert!(
        bytes.len() as u64 <= MAX_VSIX_BYTES,
        "{} bytes",
        bytes.len()
    );

    let entries = zip_listing::entries(&bytes);
    let size_of = |name: &str| {
        entries
            .iter()
            .find(|e| e.name == name)
            .unwrap_or_else(|| panic!("`{name}` missing from {entries:#?}"))
            .size
    };
    for name in [
        "extension.vsixmanifest",
        "extension.vsomanifest",
        "[Content_Types].xml",
        "overview.md",
        "task/index.js",
    ] {
        assert!(size_of(name) > 0, "{name}");
    }

    // The packaged files are the staged ones: same sizes.
    let staged = out.path().join("task");
    let binary = staged.join("bin/linux-x64/agent-orch");
    assert_eq!(
        size_of("task/bin/linux-x64/agent-orch"),
        fs::metadata(&binary).unwrap().len()
    );
    assert_eq!(
        size_of("task/task.json"),
        fs::metadata(staged.join("task.json")).unwrap().len()
    );
    let packed: u64 = entries.iter().map(|e| e.compressed_size).sum();
    assert!(packed <= bytes.len() as u64);

    // The staged binary is the real one, stripped: an executable ELF file.
    assert_eq!(&fs::read(&binary).unwrap()[..4], b"\x7fELF");
    assert_eq!(
        fs::metadata(&binary).unwrap().permissions().mode() & 0o777,
        0o755
    );

    // The version is stamped on both manifests; nothing else in task.json changes.
    let mut task = read_json(&staged.join("task.json"));
    assert_eq!(task["version"], json!({"Major": 1, "Minor": 4, "Patch": 2}));
    task["version"] = json!({"Major": 1, "Minor": 0, "Patch": 0});
    assert_eq!(task, read_json(&repo.join("task.json")));
    assert_eq!(
        read_json(&out.path().join("vss-extension.json"))["version"],
        "1.4.2"
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

#[test]
fn the_unpacked_task_starts_the_packaged_binary() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tempfile::tempdir().unwrap();
    let output = package("1.0.0", out.path(), TIMEOUT);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let vsix = PathBuf::from(String::from_utf8(output.stdout).unwrap().trim());

    // Unpack as the agent does: contents only, executable bits lost.
    let unpacked = tempfile::tempdir().unwrap();
    let unzip = Command::new("node")
        .arg(repo.join("tests/integration/support/unzip.js"))
        .arg(&vsix)
        .arg(unpacked.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let unzip = output_with_timeout(unzip, Duration::from_secs(30));
    assert!(unzip.status.success(), "{unzip:?}");

    let task = unpacked.path().join("task");
    let binary = task.join("bin/linux-x64/agent-orch");
    assert_eq!(
        fs::read(&binary).unwrap(),
        fs::read(out.path().join("task/bin/linux-x64/agent-orch")).unwrap(),
        "the packaged binary differs from the staged one"
    );
    assert_eq!(
        fs::metadata(&binary).unwrap().permissions().mode() & 0o111,
        0
    );

    let shim = Command::new("node")
        .arg(task.join("index.js"))
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
