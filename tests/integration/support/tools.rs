//! The programs tests run besides `agent-orch`, and how to get each: a test whose tool is
//! missing fails saying so, never with a bare "No such file or directory".

use std::path::Path;

/// Each tool and the Debian package that brings it, as `scripts/install-test-deps.sh` installs
/// them.
const TOOLS: &[(&str, &str)] = &[
    ("chromium", "chromium"),
    ("node", "nodejs"),
    ("npm", "npm"),
    ("python3", "python3"),
    ("git", "git"),
];

/// `program`, checked to be on `PATH`; fails the test with how to install it otherwise.
pub(crate) fn tool(program: &'static str) -> &'static str {
    let package = TOOLS
        .iter()
        .find(|(name, _)| *name == program)
        .map(|(_, package)| *package)
        .unwrap_or_else(|| panic!("`{program}` is not in support::tools::TOOLS"));
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| is_program(&dir.join(program))));
    assert!(
        found,
        "`{program}` is needed by this test and is not on PATH: run `scripts/test`, which \
         installs what the tests need and then runs them (or `sudo apt-get install {package}`)"
    );
    program
}

fn is_program(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}
