//! The commit pipeline: every change of bindings or DND, whoever makes it, goes through
//! [`Pipeline::apply`] under the table's writer lock, which runs the registered sinks in a
//! fixed order of [`Stage`]s:
//!
//! 0. [`Stage::Durable`]: before the change is published at all ([`Pipeline::prepare`],
//!    called by the table between deciding and publishing), a store that must hold it
//!    first (the shared database of `storage = realtime`) writes it, and may refuse it:
//!    then nothing is published and the operation fails;
//! 1. [`Stage::Journal`]: the change is in the journal before it is acknowledged (so a
//!    `kill -9` cannot lose it);
//! 2. [`Stage::Announce`]: AMI and CEL events, log lines, statistics;
//! 3. [`Stage::Effects`]: what the change causes in Asterisk: following a device it binds
//!    (at once, so no later change of the device is missed), and deferred work (AstDB writes,
//!    releasing freed devices, publishing the users' states), handed to the executor in one
//!    batch after the last sink.
//!
//! Within a stage, sinks run in the order they were added. Adding a consumer of commits (a
//! live feed, queue membership, a database) is one more sink added at load: no adapter
//! changes. Running under the writer lock keeps every sink's view in commit order.
use std::sync::Arc;

use deviceuser_core::{Changes, StoreError};

use crate::deferred::Executor;
use crate::host::channel::Channel;

/// Who made a commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A phone, through `UserLogin` / `UserLogout`.
    Phone,
    /// The dialplan, through `DEVICEUSER(user,dnd)`.
    Dialplan,
    Ami,
    Cli,
    /// The policy timer (`max_login_time`, `shift_end`, `logout_on_unregister`).
    Policy,
    /// `module reload` (and the console's edits of the config file, which reload).
    Reload,
    /// The administration console.
    Console,
    /// What another node committed, read from the shared database.
    Sync,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Phone => "phone",
            Origin::Dialplan => "dialplan",
            Origin::Ami => "ami",
            Origin::Cli => "cli",
            Origin::Policy => "policy",
            Origin::Reload => "reload",
            Origin::Console => "console",
            Origin::Sync => "sync",
        }
    }
}

/// What a commit changed.
pub enum Change<'a> {
    Bindings(&'a Changes),
    Dnd { user: &'a str, on: bool },
}

/// One commit, as the sinks see it.
pub struct Commit<'a> {
    pub origin: Origin,
    /// The channel that made it (phone and dialplan commits), for CEL.
    pub channel: Option<&'a Channel>,
    pub change: Change<'a>,
    pub now: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    Durable,
    Journal,
    Announce,
    Effects,
}

/// Deferred work of one commit, in order (see [`crate::effects`]).
pub type Work = Vec<crate::effects::Op>;

/// A consumer of commits.
pub trait Sink: Send + Sync {
    fn stage(&self) -> Stage;
    /// [`Stage::Durable`] sinks: called under the writer lock before the commit is
    /// published; an error refuses it.
    fn prepare(&self, _commit: &Commit<'_>) -> Result<(), StoreError> {
        Ok(())
    }
    /// Called under the writer lock for every commit; `work` collects deferred work.
    fn commit(&self, commit: &Commit<'_>, work: &mut Work);
}

pub struct Pipeline {
    sinks: Vec<Box<dyn Sink>>,
    executor: Arc<Executor<crate::effects::Op>>,
}

impl Pipeline {
    pub fn new(executor: Arc<Executor<crate::effects::Op>>) -> Pipeline {
        Pipeline {
            sinks: Vec::new(),
            executor,
        }
    }

    /// Adds a sink after those of its stage.
    pub fn add(&mut self, sink: Box<dyn Sink>) {
        let at = self.sinks.partition_point(|s| s.stage() <= sink.stage());
        self.sinks.insert(at, sink);
    }

    /// Runs the [`Stage::Durable`] sinks on a commit decided but not yet published; the
    /// first refusal stops it.
    pub fn prepare(&self, commit: &Commit<'_>) -> Result<(), StoreError> {
        (self.sinks.iter())
            .take_while(|s| s.stage() == Stage::Durable)
            .try_for_each(|s| s.prepare(commit))
    }

    /// Runs every sink on the commit, then hands its deferred work to the executor.
    pub fn apply(&self, commit: &Commit<'_>) {
        let mut work = Work::new();
        for sink in &self.sinks {
            sink.commit(commit, &mut work);
        }
        self.executor.submit(work);
    }

    pub fn executor(&self) -> &Executor<crate::effects::Op> {
        &self.executor
    }
}
