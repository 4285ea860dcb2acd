//! One interface for every kind of resource: start, stop, monitor, and —
//! before it starts — what the guard must hold to undo it without the agent.
//! The agent's executor knows resources only through [`Resource`]; tests
//! use [`Fake`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::cgroup::Cgroup;
use crate::undo::Undo;

/// A step's result: `Err` says what failed.
pub type Done<'a> = BoxFuture<'a, Result<(), String>>;

pub trait Resource: Send + Sync {
    /// What the guard must undo, alone, for this node to hold nothing of
    /// this resource. The executor tells the guard before [`start`].
    ///
    /// [`start`]: Resource::start
    fn undo(&self) -> Vec<Undo>;
    /// Starts it, within `limit`.
    fn start(&self, limit: Duration) -> Done<'_>;
    /// Stops it, within `limit`; stopping what is not running succeeds.
    fn stop(&self, limit: Duration) -> Done<'_>;
    /// Is it running and healthy? Within `limit`.
    fn monitor(&self, limit: Duration) -> Done<'_>;
    /// A handover (the agent's program replaced, the resource left
    /// running): what the next program needs to watch it, beyond its
    /// configuration (a program's pid and output pipes), kept open across
    /// exec. Most resources are found again from their configuration.
    fn keep(&self) -> Option<Kept> {
        None
    }
    /// The next program of a handover takes the resource over, with what
    /// [`Resource::keep`] gave.
    fn adopt(&self, _kept: Option<Kept>) {}
}

/// What a running resource hands the next program of its agent: the pid
/// of its program and the descriptors of the pipes its output comes on.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Kept {
    pub pid: i32,
    pub fds: Vec<i32>,
}

/// What programs a set runs need: their environment and their cgroup.
#[derive(Clone, Debug)]
pub struct Context {
    /// The clean environment: PATH, BATON_SET, BATON_NODE.
    pub env: Vec<(String, String)>,
    /// This resource's own cgroup, below its set's.
    pub cgroup: Cgroup,
}

impl Context {
    pub fn new(set: &str, node: &str, cgroup: Cgroup) -> Context {
        let env = vec![
            ("PATH".into(), crate::program::PATH.into()),
            ("BATON_SET".into(), set.into()),
            ("BATON_NODE".into(), node.into()),
        ];
        Context { env, cgroup }
    }

    /// The environment with `extra` added.
    pub fn env_with(&self, extra: &[(String, String)]) -> Vec<(String, String)> {
        self.env.iter().chain(extra).cloned().collect()
    }

    /// After a stop: anything the resource left behind in its cgroup goes.
    pub async fn sweep(&self, limit: Duration) -> Result<(), String> {
        if self.cgroup.populated() {
            tracing::warn!("baton: {}: processes left after the stop; killing them", self.cgroup.path().display());
        }
        self.cgroup.kill(limit).await.map_err(|e| e.to_string())
    }
}

/// A resource that only records what happens to it: for tests of the
/// executor and of whole agents without root.
#[derive(Clone, Default)]
pub struct Fake {
    pub running: Arc<AtomicBool>,
    /// Make the next starts fail.
    pub fail_start: Arc<AtomicBool>,
    /// Make monitors report a failure.
    pub broken: Arc<AtomicBool>,
    pub undo: Vec<Undo>,
}

impl Resource for Fake {
    fn undo(&self) -> Vec<Undo> {
        self.undo.clone()
    }

    fn start(&self, _: Duration) -> Done<'_> {
        Box::pin(async move {
            if self.fail_start.load(Ordering::SeqCst) {
                return Err("the fake was told to fail".into());
            }
            self.running.store(true, Ordering::SeqCst);
            self.broken.store(false, Ordering::SeqCst);
            Ok(())
        })
    }

    fn stop(&self, _: Duration) -> Done<'_> {
        Box::pin(async move {
            self.running.store(false, Ordering::SeqCst);
            Ok(())
        })
    }

    fn monitor(&self, _: Duration) -> Done<'_> {
        Box::pin(async move {
            match (self.running.load(Ordering::SeqCst), self.broken.load(Ordering::SeqCst)) {
                (true, false) => Ok(()),
                (false, _) => Err("not running".into()),
                (true, true) => Err("broken".into()),
            }
        })
    }
}
