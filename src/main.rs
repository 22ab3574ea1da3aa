fn main() -> std::process::ExitCode {
    agent_orch::run(std::env::args_os()).into()
}
