//! Every step kind, declared once: its YAML key, its `StepKind` variant and the type of its
//! settings, in the table of [`step_kinds!`].
//!
//! Each place that handles every kind expands the table through a macro of its own, so none
//! of them lists the kinds again: here the [`StepKind`] enum, [`StepKind::KEYS`] and
//! [`StepKind::key`]; `decode::Decoder::kind` (settings decoded by key); `schema::kind_schemas`
//! (the schema of each kind's settings); and, in the steps layer above, `steps::describe` and
//! `steps::run`, which call `steps::<key>::describe` and `steps::<key>::run`. What a kind does
//! cannot be named here: this layer sits below the steps that run it.

/// The step kinds, one line each: `key => Variant(settings type)`, documented. A new kind is
/// a line here, its settings in `step_config::<key>` and its behaviour in `steps::<key>`.
///
/// `step_kinds!(callback)` expands to `callback! { the table }`, each line as
/// `$(#[$doc:meta])* $key:ident => $Variant:ident($Config:ty),`.
macro_rules! step_kinds {
    ($callback:ident) => {
        $callback! {
            /// A command that must succeed.
            gate => Gate($crate::workflow::step_config::gate::GateConfig),
            /// A long-running local process, stopped when the iteration ends.
            service => Service($crate::workflow::step_config::gate::GateConfig),
            /// Kubernetes manifests applied, and their rollout awaited.
            deploy => Deploy($crate::workflow::step_config::deploy::DeployConfig),
            /// A check of the deployed system: HTTP, a flow of requests, a script or a metric.
            verify => Verify($crate::workflow::step_config::verify::VerifyConfig),
            /// Asks the fixer agent for a patch to the failure being repaired (`repair:` only).
            fix => Fix($crate::workflow::step_config::fix::FixConfig),
            /// Asks the reviewer agent to approve or reject the proposed patch (`repair:` only).
            review => Review($crate::workflow::step_config::review::ReviewConfig),
            /// Restores what the run's deploy steps changed.
            rollback => Rollback($crate::workflow::step_config::rollback::RollbackConfig),
            /// Commits the run's patches to a branch, pushes it and opens or updates a pull
            /// request (`on_success:` only).
            pull_request => PullRequest(
                $crate::workflow::step_config::pull_request::PullRequestConfig
            ),
        }
    };
}
pub(crate) use step_kinds;

/// Expands the table into the enum and its keys.
macro_rules! step_kind_enum {
    ($($(#[$doc:meta])* $key:ident => $Variant:ident($Config:ty),)*) => {
        /// What a step does, with its settings: exactly one kind per step.
        #[derive(Clone, Debug)]
        pub enum StepKind {
            $($(#[$doc])* $Variant($Config),)*
        }

        impl StepKind {
            /// The YAML keys that select a kind, in declaration order.
            pub const KEYS: [&'static str; [$(stringify!($key)),*].len()] =
                [$(stringify!($key)),*];

            /// The YAML key that selects this kind.
            pub fn key(&self) -> &'static str {
                match self {
                    $(StepKind::$Variant(_) => stringify!($key),)*
                }
            }
        }
    };
}
step_kinds!(step_kind_enum);
