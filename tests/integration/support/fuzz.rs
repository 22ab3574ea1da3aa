//! A bounded random-mutation fuzzer for what the outside world writes: workflow files (the
//! loader, templates included) and LLM diffs (the parser, and the plan and policy behind it).
//! Seeds are mutated a few edits at a time (ranges cut, lines duplicated, dropped, swapped or
//! spliced from another seed, YAML/diff tokens and odd characters inserted, runs repeated,
//! numbers made huge); each input runs under `catch_unwind` (a panic is a crash) and a
//! watchdog (an input running over [`HANG`] is a hang: the input is saved and the process
//! stops). Used by `cargo bench --bench fuzz_inputs` (long runs) and `tests/integration/fuzz.rs`
//! (a short run on every `cargo test`).

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use agent_orch::patch::{Policy, PolicyConfig, Workspace, parse};
use agent_orch::workflow::{LoadOptions, load};

/// How long one input may run before it counts as a hang.
pub(crate) const HANG: Duration = Duration::from_secs(10);

/// Tokens a mutation may insert: the structure of YAML, templates and diffs.
const TOKENS: [&str; 40] = [
    ": ",
    "- ",
    "\n",
    "\r\n",
    "\t",
    "{",
    "}",
    "[",
    "]",
    "{{ ",
    " }}",
    "{% if x %}",
    "&a ",
    "*a",
    "<<: *a",
    "!!binary ",
    "!!str ",
    "? ",
    "---\n",
    "...\n",
    "- template: ",
    "parameters: ",
    "steps:\n  - ",
    "safety: ",
    "\"",
    "'",
    "#",
    "|\n",
    ">-\n",
    "--- a/",
    "+++ b/",
    "@@ -1,3 +1,4 @@\n",
    "@@ @@\n",
    "diff --git a/x b/x\n",
    "\\ No newline at end of file\n",
    "rename from ",
    "deleted file mode 100644\n",
    "Binary files a/x and b/x differ\n",
    "```diff\n",
    "/dev/null",
];

/// Characters a mutation may put in place of another.
const ODD: [char; 16] = [
    '\u{a0}', '\u{feff}', '\u{0}', '\u{7f}', '\u{2028}', 'é', '🦀', '\\', '%', '$', '~', '\r', '@',
    '+', '-', ' ',
];

const NUMBERS: [&str; 6] = [
    "0",
    "-1",
    "18446744073709551616",
    "4294967296",
    "1e309",
    ".nan",
];

/// How much to run.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Budget {
    pub(crate) inputs: u64,
    pub(crate) time: Duration,
}

/// What a fuzzing run did.
#[derive(Debug, Default)]
pub(crate) struct Report {
    pub(crate) inputs: u64,
    /// Inputs that made the target panic, with the panic message.
    pub(crate) crashes: Vec<(String, String)>,
    pub(crate) slowest: Duration,
    pub(crate) elapsed: Duration,
}

impl Report {
    pub(crate) fn rate(&self) -> f64 {
        self.inputs as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// SplitMix64: deterministic for a seed, so a crash can be found again.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One input: a seed with one to four mutations stacked.
pub(crate) fn mutate(seeds: &[String], rng: &mut Rng) -> String {
    let mut chars: Vec<char> = seeds[rng.below(seeds.len())].chars().collect();
    for _ in 0..=rng.below(4) {
        let at = rng.below(chars.len() + 1);
        match rng.below(9) {
            0 => {
                let end = (at + 1 + rng.below(16)).min(chars.len());
                chars.drain(at..end.max(at));
            }
            1 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                chars.splice(at..at, token.chars());
            }
            2 if at < chars.len() => chars[at] = ODD[rng.below(ODD.len())],
            3 => {
                let number = NUMBERS[rng.below(NUMBERS.len())];
                chars.splice(at..at, number.chars());
            }
            4..=6 => {
                let mut lines: Vec<String> = chars
                    .iter()
                    .collect::<String>()
                    .split_inclusive('\n')
                    .map(str::to_owned)
                    .collect();
                if lines.is_empty() {
                    continue;
                }
                let (a, b) = (rng.below(lines.len()), rng.below(lines.len()));
                match rng.below(4) {
                    0 => {
                        let line = lines[a].clone();
                        lines.insert(b, line);
                    }
                    1 => {
                        lines.remove(a);
                    }
                    2 => lines.swap(a, b),
                    _ => {
                        // Splice: this seed's head, another seed's tail.
                        let other = &seeds[rng.below(seeds.len())];
                        let tail: Vec<String> =
                            other.split_inclusive('\n').map(str::to_owned).collect();
                        lines.truncate(a);
                        lines.extend(tail.into_iter().skip(b));
                    }
                }
                chars = lines.concat().chars().collect();
            }
            7 => {
                // A run repeated: deep nesting, long lines, many keys.
                let end = (at + 1 + rng.below(8)).min(chars.len());
                let piece: Vec<char> = chars[at.min(end)..end].to_vec();
                let times = 1 + rng.below(300);
                let repeated: Vec<char> = std::iter::repeat_n(piece, times).flatten().collect();
                chars.splice(at..at, repeated);
            }
            _ => {
                let token = ["\n", "\r\n", " "][rng.below(3)];
                chars.splice(at..at, token.chars());
            }
        }
    }
    chars.into_iter().collect()
}

thread_local! {
    /// Set while this thread runs a fuzz input: its panics are findings, not noise.
    static FUZZING: Cell<bool> = const { Cell::new(false) };
    static LAST_PANIC: Cell<Option<String>> = const { Cell::new(None) };
}

/// A panic hook that keeps fuzz panics quiet (and remembers their message) and passes every
/// other panic to the hook that was there before, so other tests still report theirs.
fn install_quiet_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if FUZZING.with(Cell::get) {
                LAST_PANIC.with(|last| last.set(Some(info.to_string())));
            } else {
                previous(info);
            }
        }));
    });
}

/// Stops the process, after saving the input, when one input runs over [`HANG`].
struct Watchdog {
    started_ms: Arc<AtomicU64>,
    input: Arc<Mutex<String>>,
    done: Arc<AtomicBool>,
}

impl Watchdog {
    /// `started_ms` is counted from `origin`, plus one (0 means no input is running).
    #[expect(
        clippy::print_stderr,
        reason = "the process stops: say why, and where the input is"
    )]
    fn start(name: &'static str, origin: Instant) -> Self {
        let started_ms = Arc::new(AtomicU64::new(0));
        let input = Arc::new(Mutex::new(String::new()));
        let done = Arc::new(AtomicBool::new(false));
        let (started, current, finished) = (started_ms.clone(), input.clone(), done.clone());
        std::thread::spawn(move || {
            while !finished.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                let since = started.load(Ordering::Relaxed);
                let now = origin.elapsed().as_millis() as u64;
                if since != 0 && now.saturating_sub(since) > HANG.as_millis() as u64 {
                    let saved = hang_file(name);
                    let text = current.lock().map(|s| s.clone()).unwrap_or_default();
                    let _ = std::fs::write(&saved, text);
                    eprintln!(
                        "fuzz {name}: an input ran over {HANG:?}; saved to {}",
                        saved.display()
                    );
                    std::process::exit(2);
                }
            }
        });
        Self {
            started_ms,
            input,
            done,
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
    }
}

fn hang_file(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("agent-orch-fuzz-hang-{name}.txt"))
}

/// Runs `target` on mutated seeds until the budget is spent.
pub(crate) fn run(
    name: &'static str,
    seeds: &[String],
    budget: Budget,
    seed: u64,
    mut target: impl FnMut(&str),
) -> Report {
    install_quiet_hook();
    let origin = Instant::now();
    let watchdog = Watchdog::start(name, origin);
    let mut rng = Rng::new(seed);
    let mut report = Report::default();
    while report.inputs < budget.inputs && origin.elapsed() < budget.time {
        let input = mutate(seeds, &mut rng);
        if let Ok(mut current) = watchdog.input.lock() {
            current.clone_from(&input);
        }
        let started = Instant::now();
        watchdog
            .started_ms
            .store((started - origin).as_millis() as u64 + 1, Ordering::Relaxed);
        FUZZING.with(|f| f.set(true));
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| target(&input)));
        FUZZING.with(|f| f.set(false));
        watchdog.started_ms.store(0, Ordering::Relaxed);
        report.slowest = report.slowest.max(started.elapsed());
        report.inputs += 1;
        if outcome.is_err() {
            let message = LAST_PANIC.with(Cell::take).unwrap_or_default();
            report.crashes.push((input, message));
        }
    }
    report.elapsed = origin.elapsed();
    report
}

/// The workflow fixtures of `tests/inputs` (valid and not), with the templates and prompts
/// they include copied into `dir` so includes resolve.
pub(crate) fn workflow_seeds(dir: &Path) -> Vec<String> {
    let inputs = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/inputs");
    for sub in ["templates", "prompts"] {
        std::fs::create_dir_all(dir.join(sub)).expect("create fuzz dir");
        for entry in std::fs::read_dir(inputs.join(sub)).expect("read fixtures") {
            let path = entry.expect("fixture entry").path();
            if let Some(name) = path.file_name() {
                std::fs::copy(&path, dir.join(sub).join(name)).expect("copy fixture");
            }
        }
    }
    let mut seeds: Vec<String> = std::fs::read_dir(&inputs)
        .expect("read fixtures")
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .collect();
    seeds.sort();
    seeds
}

/// Loads each input as `dir/w.yaml` (a `.git` in `dir` makes it the project root).
pub(crate) fn workflows(dir: &Path, seeds: &[String], budget: Budget, seed: u64) -> Report {
    std::fs::create_dir_all(dir.join(".git")).expect("create fuzz project root");
    let path = dir.join("w.yaml");
    let options = LoadOptions {
        every_environment: true,
        ..LoadOptions::default()
    };
    run("workflow", seeds, budget, seed, |input| {
        std::fs::write(&path, input).expect("write fuzz input");
        let _ = load(&path, &options);
    })
}

/// Parses each input; a diff that parses goes through the policy (and so the plan) against
/// `workspace`, which holds the files the seed diffs were written for. Nothing is applied.
pub(crate) fn diffs(workspace: &Path, seeds: &[String], budget: Budget, seed: u64) -> Report {
    let workspace = Workspace::new(workspace).expect("open fuzz workspace");
    let policy = Policy::new(PolicyConfig {
        never_delete: vec!["*.sql".to_owned(), "migrations/**".to_owned()],
        ..PolicyConfig::default()
    })
    .expect("default policy compiles");
    run("diff", seeds, budget, seed, |input| {
        if let Ok(patch) = parse(input) {
            let decision = policy.check(&patch, &workspace, false);
            let _ = decision.summary();
            let _ = patch.to_unified();
        }
    })
}

/// The patch corpus as fuzz seeds: every case's diff, and one workspace holding the files
/// they were written for.
pub(crate) fn diff_seeds(
    workspace: &Path,
    cases: impl IntoIterator<Item = (Vec<(String, Vec<u8>)>, String)>,
) -> Vec<String> {
    let mut seeds = Vec::new();
    for (files, diff) in cases {
        for (relative, bytes) in files {
            let path = workspace.join(relative);
            if !path.exists() {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).expect("create fuzz workspace");
                }
                std::fs::write(&path, bytes).expect("write fuzz workspace");
            }
        }
        seeds.push(diff);
    }
    seeds
}
