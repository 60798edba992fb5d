//! The right to extend a segment's chain of batches (docs/protocol.md#fencing).
//!
//! Any number of runs of one segment may be alive at once (SQS delivers at least once, a
//! continuation may be sent twice, a crashed run's message comes back). Each batch is one
//! *step*. A run that has built batch `k` first **proposes** it (the SHA-256 of its stored
//! body and the checkpoint after it), then uploads it with a conditional write that fails
//! when the key exists, then **commits** step `k` to the proposal whose body the key holds.
//! Exactly one run wins each step: the committer of the winning body. A run that loses stops
//! and writes nothing more; a run that starts from an old checkpoint first asks for the
//! chain's [`Fence::position`] and continues from there.

use std::future::Future;
use std::sync::Arc;

use crate::segment::BackupCheckpoint;
use crate::store::StoreError;

/// One run's view of a segment's chain. Each run makes its own (it carries the run's
/// identity).
pub trait Fence: Send + Sync + 'static {
    /// Offers the body with SHA-256 `sha256` (lower-case hex) as batch `step`, `next` being
    /// the checkpoint after it. `Ok(false)`: the chain is already past `step`, so this run
    /// has lost it and must write nothing more.
    fn propose(
        &self,
        step: u64,
        sha256: &str,
        next: &BackupCheckpoint,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Commits batch `step` to the proposal of `sha256`, the body its key holds. `Ok(true)`:
    /// this run holds the chain after `step` (it made the commit, now or in a call whose
    /// reply was lost); `Ok(false)`: another run does, and this one must stop.
    fn commit(
        &self,
        step: u64,
        sha256: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The checkpoint after the last committed batch; `None` when nothing is committed.
    fn position(&self)
    -> impl Future<Output = Result<Option<BackupCheckpoint>, StoreError>> + Send;
}

/// No fencing: every proposal and commit succeeds. For a single run at a time (direct
/// backups, benchmarks, tests of other properties).
#[derive(Debug, Clone, Copy, Default)]
pub struct Unfenced;

impl Fence for Unfenced {
    async fn propose(&self, _: u64, _: &str, _: &BackupCheckpoint) -> Result<bool, StoreError> {
        Ok(true)
    }

    async fn commit(&self, _: u64, _: &str) -> Result<bool, StoreError> {
        Ok(true)
    }

    async fn position(&self) -> Result<Option<BackupCheckpoint>, StoreError> {
        Ok(None)
    }
}

impl<F: Fence> Fence for Arc<F> {
    fn propose(
        &self,
        step: u64,
        sha256: &str,
        next: &BackupCheckpoint,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).propose(step, sha256, next)
    }

    fn commit(
        &self,
        step: u64,
        sha256: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).commit(step, sha256)
    }

    fn position(
        &self,
    ) -> impl Future<Output = Result<Option<BackupCheckpoint>, StoreError>> + Send {
        (**self).position()
    }
}

/// Whether a run may still write (docs/protocol.md#gates): asked before each step (a
/// backup's proposal, a restore's batch), so a run stops at its next step boundary once its
/// task is cancelled or its segment is counted by another run.
pub trait Gate: Send + Sync + 'static {
    /// `Ok(false)`: write nothing more; the run ends with `Outcome::Fenced`.
    fn open(&self, step: u64) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// Always open: nothing outside the run can stop it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Open;

impl Gate for Open {
    async fn open(&self, _: u64) -> Result<bool, StoreError> {
        Ok(true)
    }
}

impl<G: Gate> Gate for Arc<G> {
    fn open(&self, step: u64) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).open(step)
    }
}

/// A fence whose proposals also need `gate` open: a closed gate refuses the proposal, so the
/// run stops before it uploads the step.
#[derive(Debug, Clone)]
pub struct Gated<F, G> {
    pub fence: F,
    pub gate: G,
}

impl<F: Fence, G: Gate> Fence for Gated<F, G> {
    async fn propose(
        &self,
        step: u64,
        sha256: &str,
        next: &BackupCheckpoint,
    ) -> Result<bool, StoreError> {
        if !self.gate.open(step).await? {
            return Ok(false);
        }
        self.fence.propose(step, sha256, next).await
    }

    fn commit(
        &self,
        step: u64,
        sha256: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        self.fence.commit(step, sha256)
    }

    fn position(
        &self,
    ) -> impl Future<Output = Result<Option<BackupCheckpoint>, StoreError>> + Send {
        self.fence.position()
    }
}
