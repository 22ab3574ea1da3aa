fn main() -> std::process::ExitCode {
    agent_orch::cli::main()
}
