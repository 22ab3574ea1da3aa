//! `agent-orch run`: the flags become a [`session`](crate::session) run, with reports written as
//! it goes (Azure Pipelines logging commands instead of the terminal view inside a pipeline).

use crate::ado::service_connection::OidcSettings;
use crate::cli::{ColorChoice, RunArgs};
use crate::core::agent_env::AgentEnv;
use crate::error::{Error, ExitStatus};
use crate::llm::TapeMode;
use crate::session::{self, Output, RunHost, RunOptions};

pub(crate) fn run(
    args: &RunArgs,
    color_choice: ColorChoice,
    color: bool,
) -> Result<ExitStatus, Error> {
    run_with(&options(args), color_choice, color)
}

/// `options` run here, as `run` runs (`demo` too).
pub(crate) fn run_with(
    options: &RunOptions,
    color_choice: ColorChoice,
    color: bool,
) -> Result<ExitStatus, Error> {
    let agent = AgentEnv::from_process();
    let oidc = OidcSettings::read(&agent);
    let output = if agent.in_pipeline() {
        Output::Pipeline
    } else {
        Output::Terminal(terminal_colors(color_choice))
    };
    let host = RunHost {
        oidc: oidc.as_ref(),
        color,
        may_ask: true,
        known_secrets: oidc.iter().map(|o| &o.access_token).collect(),
        ..RunHost::new(&agent, output)
    };
    session::run(options, &host)
}

/// The run the flags ask for.
fn options(args: &RunArgs) -> RunOptions {
    RunOptions {
        environment: args.workflow.environment.clone(),
        vars: args.workflow.vars.clone(),
        artifacts: args.artifacts.clone(),
        max_iterations: args.max_iterations,
        dry_run: args.dry_run,
        echo: !args.quiet,
        approve: args.approve,
        approve_deploy: args.approve_deploy,
        tape: match (&args.record, &args.replay) {
            (_, Some(path)) => TapeMode::Replay(path.clone()),
            (Some(path), None) => TapeMode::Record(path.clone()),
            (None, None) => TapeMode::Live,
        },
        ..RunOptions::new(&args.workflow.file)
    }
}

fn terminal_colors(choice: ColorChoice) -> anstream::ColorChoice {
    match choice {
        ColorChoice::Auto => anstream::ColorChoice::Auto,
        ColorChoice::Always => anstream::ColorChoice::Always,
        ColorChoice::Never => anstream::ColorChoice::Never,
    }
}
