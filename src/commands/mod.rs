//! One file per subcommand.

pub(crate) mod audit;
pub(crate) mod demo;
pub(crate) mod hub;
pub(crate) mod plan;
pub(crate) mod run;
pub(crate) mod schema;
pub(crate) mod task;
pub(crate) mod validate;
pub(crate) mod worker;

use crate::cli::WorkflowArgs;
use crate::error::Error;
use crate::workflow::{LoadOptions, Workflow};

/// Loads and validates the workflow the arguments name; every problem becomes one error.
fn load(args: &WorkflowArgs, color: bool) -> Result<Workflow, Error> {
    let options = LoadOptions {
        environment: args.environment.clone(),
        vars: args.vars.clone(),
        every_environment: false,
    };
    crate::session::load_workflow(&args.file, &options, color)
}
