//! What the backup and restore stages share: tasks that end with the run, and how an
//! error ends a run.

use crate::retry::RetryError;
use crate::segment::{Outcome, PipelineError, SegmentError};

/// An error ends the run, unless it is the deadline arriving during retries after progress
/// was made: then the run pauses at its checkpoint like any other deadline.
pub(crate) fn stopped<C: PartialEq>(
    from: &C,
    checkpoint: C,
    error: PipelineError,
) -> Result<Outcome<C>, SegmentError<C>> {
    let deadline = matches!(
        &error,
        PipelineError::Store {
            source: RetryError::Deadline { .. },
            ..
        }
    );
    if deadline && checkpoint != *from {
        Ok(Outcome::Paused(checkpoint))
    } else {
        Err(SegmentError { checkpoint, error })
    }
}

/// A spawned task, aborted when this is dropped, so a stage never runs on after the run
/// that spawned it has returned.
pub(crate) struct AbortOnDrop<T>(pub tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
