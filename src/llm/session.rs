//! `LlmSession`: what all agents of one run share: the redactor, the token budget, and the
//! record/replay tape.

use std::path::PathBuf;
use std::sync::Arc;

use super::error::{LlmError, LlmErrorKind};
use super::record::{Exchange, Recorder, Replayer};
use super::usage::{TokenBudget, Usage};
use crate::redact::Redactor;

/// Whether exchanges go to the provider, and whether they are saved or served from a file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum TapeMode {
    #[default]
    Live,
    /// Talk to the provider and save every exchange to this JSONL file (`--record`).
    Record(PathBuf),
    /// Serve exchanges from this file; nothing leaves the machine (`--replay`).
    Replay(PathBuf),
}

#[derive(Debug)]
pub(crate) enum Tape {
    Live,
    Record(Recorder),
    Replay(Replayer),
}

#[derive(Debug)]
pub struct LlmSession {
    pub(crate) redactor: Redactor,
    pub(crate) budget: TokenBudget,
    pub(crate) tape: Tape,
}

impl LlmSession {
    pub fn new(
        redactor: Redactor,
        budget: TokenBudget,
        mode: TapeMode,
    ) -> Result<Arc<Self>, LlmError> {
        let tape = match mode {
            TapeMode::Live => Tape::Live,
            TapeMode::Record(path) => {
                Tape::Record(Recorder::create(&path).map_err(LlmError::session)?)
            }
            TapeMode::Replay(path) => {
                Tape::Replay(Replayer::open(&path).map_err(LlmError::session)?)
            }
        };
        Ok(Arc::new(Self {
            redactor,
            budget,
            tape,
        }))
    }

    /// Tokens used so far by every agent of the run.
    pub fn usage(&self) -> Usage {
        self.budget.used()
    }

    pub fn budget(&self) -> &TokenBudget {
        &self.budget
    }

    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    pub fn is_replay(&self) -> bool {
        matches!(self.tape, Tape::Replay(_))
    }

    /// The next recorded exchange of `agent`; outside replay mode there is none.
    pub(crate) fn replay_next(&self, agent: &str) -> Result<Exchange, LlmErrorKind> {
        match &self.tape {
            Tape::Replay(replayer) => replayer.next(agent),
            Tape::Live | Tape::Record(_) => Err(LlmErrorKind::ReplayExhausted { served: 0 }),
        }
    }

    pub(crate) fn record(&self, exchange: &Exchange) -> Result<(), LlmErrorKind> {
        match &self.tape {
            Tape::Record(recorder) => recorder.write(exchange),
            Tape::Live | Tape::Replay(_) => Ok(()),
        }
    }
}
