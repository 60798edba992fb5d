//! In-memory [`Services`] for the handlers' unit tests (feature `mem`): the pipeline's
//! simulated table and bucket, and status tables and queues that keep DynamoDB's and SQS's
//! semantics where the handlers rely on them (conditional creates, segments counted once,
//! batch sends that can fail per entry). Never the only proof: the emulator tests run the
//! same handlers against real wire protocols.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use solace_codec::SegmentId;
use solace_pipeline::sim::{MemChain, MemFence, MemObjects, MemTable};
use solace_pipeline::{ErrorKind, ObjectInfo, ObjectMeta, Objects, PutNew, StoreError};

use crate::context::Services;
use crate::error::{QueueError, StatusError};
use crate::message::Request;
use crate::queues::{MAX_BATCH, Queues};
use crate::status::{CancelOutcome, Count, GateState, SegmentEnd, StatusStore, TaskStatus};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One task's item.
#[derive(Debug, Clone, Default)]
pub struct MemTask {
    pub request: Option<Request>,
    pub created_at: String,
    pub status: TaskStatus,
    /// The cancel request that cancelled the task.
    pub cancelled_by: Option<String>,
}

/// One segment's item: how it ended and its last error.
#[derive(Debug, Clone, Default)]
struct MemSegment {
    ended: bool,
    error: Option<String>,
}

type TaskKey = (String, String);

/// Status tables in memory, by table name and task id.
#[derive(Debug, Default)]
pub struct MemStatus {
    tasks: Mutex<HashMap<TaskKey, MemTask>>,
    segments: Mutex<HashMap<(TaskKey, u32), MemSegment>>,
    /// Rejected requests' reasons.
    rejections: Mutex<HashMap<TaskKey, String>>,
    /// Calls made, by operation name (`CreateTask`, `EndSegment`, …).
    calls: Mutex<HashMap<&'static str, u64>>,
}

fn key(table: &str, task_id: &str) -> TaskKey {
    (table.to_owned(), task_id.to_owned())
}

impl MemStatus {
    /// A task's item, if there is one.
    pub fn task(&self, table: &str, task_id: &str) -> Option<MemTask> {
        lock(&self.tasks).get(&key(table, task_id)).cloned()
    }

    /// How many times `operation` was called.
    pub fn calls(&self, operation: &str) -> u64 {
        lock(&self.calls).get(operation).copied().unwrap_or(0)
    }

    fn call(&self, operation: &'static str) {
        *lock(&self.calls).entry(operation).or_default() += 1;
    }

    /// Moves the fan-out cursor when `(fanned_out, fanning_out)` is `expected`.
    fn cursor(
        &self,
        table: &str,
        task_id: &str,
        expected: (u64, u64),
        to: (u64, u64),
        unsent_failed: u64,
    ) -> bool {
        let mut tasks = lock(&self.tasks);
        match tasks.get_mut(&key(table, task_id)) {
            Some(t) if (t.status.fanned_out, t.status.fanning_out) == expected => {
                (t.status.fanned_out, t.status.fanning_out) = to;
                t.status.failed += unsent_failed;
                true
            }
            _ => false,
        }
    }
}

impl StatusStore for MemStatus {
    async fn create_task(
        &self,
        table: &str,
        task_id: &str,
        request: &Request,
        created_at: &str,
        requested_by: &str,
        notes: &[String],
    ) -> Result<bool, StatusError> {
        self.call("CreateTask");
        let mut tasks = lock(&self.tasks);
        let key = key(table, task_id);
        if tasks.contains_key(&key) {
            return Ok(false);
        }
        tasks.insert(
            key,
            MemTask {
                request: Some(request.clone()),
                created_at: created_at.to_owned(),
                status: TaskStatus {
                    total: u64::from(request.total_segments),
                    notes: notes.to_vec(),
                    requested_by: (!requested_by.is_empty()).then(|| requested_by.to_owned()),
                    request: Some(request.clone()),
                    created_at: Some(created_at.to_owned()),
                    ..TaskStatus::default()
                },
                cancelled_by: None,
            },
        );
        Ok(true)
    }

    async fn record_rejection(
        &self,
        table: &str,
        task_id: &str,
        reason: &str,
        _rejected_at: &str,
    ) -> Result<(), StatusError> {
        self.call("RecordRejection");
        lock(&self.rejections)
            .entry(key(table, task_id))
            .or_insert_with(|| crate::status::truncate(reason));
        Ok(())
    }

    async fn rejection(&self, table: &str, task_id: &str) -> Result<Option<String>, StatusError> {
        Ok(lock(&self.rejections).get(&key(table, task_id)).cloned())
    }

    async fn end_segment(
        &self,
        table: &str,
        task_id: &str,
        segment: SegmentId,
        end: &SegmentEnd,
    ) -> Result<Count, StatusError> {
        self.call("EndSegment");
        let mut tasks = lock(&self.tasks);
        let Some(task) = tasks.get_mut(&key(table, task_id)) else {
            return Ok(Count::NoTask);
        };
        if u64::from(segment.0) >= task.status.total {
            return Ok(Count::NoTask);
        }
        let mut segments = lock(&self.segments);
        let item = segments
            .entry((key(table, task_id), segment.0))
            .or_default();
        if item.ended {
            return Ok(Count::AlreadyCounted);
        }
        item.ended = true;
        task.status.updated_at = Some(crate::status::now_rfc3339());
        match end {
            SegmentEnd::Completed { items, bytes } => {
                task.status.completed += 1;
                task.status.items += items;
                task.status.bytes += bytes;
            }
            SegmentEnd::Failed { reason } => {
                let reason = crate::status::truncate(reason);
                item.error = Some(reason.clone());
                task.status.failed += 1;
                if (task.status.errors.len() as u64) < crate::status::ERROR_SAMPLE {
                    task.status.errors.insert(segment.to_string(), reason);
                }
            }
        }
        Ok(Count::Counted)
    }

    async fn note_segment_error(
        &self,
        table: &str,
        task_id: &str,
        segment: SegmentId,
        reason: &str,
    ) -> Result<(), StatusError> {
        self.call("NoteSegmentError");
        lock(&self.segments)
            .entry((key(table, task_id), segment.0))
            .or_default()
            .error = Some(crate::status::truncate(reason));
        Ok(())
    }

    async fn segment_error(
        &self,
        table: &str,
        task_id: &str,
        segment: SegmentId,
    ) -> Result<Option<String>, StatusError> {
        self.call("SegmentError");
        Ok(lock(&self.segments)
            .get(&(key(table, task_id), segment.0))
            .and_then(|s| s.error.clone()))
    }

    async fn read_task(
        &self,
        table: &str,
        task_id: &str,
    ) -> Result<Option<TaskStatus>, StatusError> {
        self.call("ReadTask");
        Ok(lock(&self.tasks)
            .get(&key(table, task_id))
            .map(|t| t.status.clone()))
    }

    async fn gate(
        &self,
        table: &str,
        task_id: &str,
        segment: SegmentId,
    ) -> Result<GateState, StatusError> {
        self.call("Gate");
        let cancelled = match lock(&self.tasks).get(&key(table, task_id)) {
            None => return Ok(GateState::NoTask),
            Some(t) => t.status.cancelled_at.is_some(),
        };
        if cancelled {
            return Ok(GateState::Cancelled);
        }
        let ended = lock(&self.segments)
            .get(&(key(table, task_id), segment.0))
            .is_some_and(|s| s.ended);
        Ok(if ended {
            GateState::Ended
        } else {
            GateState::Open
        })
    }

    async fn add_note(&self, table: &str, task_id: &str, note: &str) -> Result<(), StatusError> {
        self.call("AddNote");
        let mut tasks = lock(&self.tasks);
        if let Some(task) = tasks.get_mut(&key(table, task_id)) {
            if !task.status.notes.iter().any(|n| n == note) {
                task.status.notes.push(note.to_owned());
            }
        }
        Ok(())
    }

    async fn cancel_task(
        &self,
        table: &str,
        task_id: &str,
        by: &str,
    ) -> Result<CancelOutcome, StatusError> {
        self.call("CancelTask");
        let mut tasks = lock(&self.tasks);
        let Some(task) = tasks.get_mut(&key(table, task_id)) else {
            return Ok(CancelOutcome::NoTask);
        };
        Ok(match &task.cancelled_by {
            Some(earlier) if earlier == by => CancelOutcome::Redelivered,
            Some(_) => CancelOutcome::AlreadyCancelled,
            None => {
                task.cancelled_by = Some(by.to_owned());
                task.status.cancelled_at = Some(crate::status::now_rfc3339());
                CancelOutcome::Recorded
            }
        })
    }

    async fn claim_fan_out(
        &self,
        table: &str,
        task_id: &str,
        from: u64,
        to: u64,
    ) -> Result<bool, StatusError> {
        self.call("ClaimFanOut");
        Ok(self.cursor(table, task_id, (from, from), (from, to), 0))
    }

    async fn confirm_fan_out(
        &self,
        table: &str,
        task_id: &str,
        from: u64,
        to: u64,
    ) -> Result<bool, StatusError> {
        self.call("ConfirmFanOut");
        Ok(self.cursor(table, task_id, (from, to), (to, to), 0))
    }

    async fn fail_unsent(
        &self,
        table: &str,
        task_id: &str,
        from: u64,
        total: u64,
    ) -> Result<bool, StatusError> {
        self.call("FailUnsent");
        Ok(self.cursor(table, task_id, (from, from), (total, total), total - from))
    }
}

/// Queues in memory, by URL: what was sent, in order.
#[derive(Debug, Default)]
pub struct MemQueues {
    queues: Mutex<HashMap<String, VecDeque<String>>>,
    /// Sends to fail with a retryable error before any succeeds, by queue URL.
    failing: Mutex<HashMap<String, u32>>,
}

impl MemQueues {
    /// Takes every message sent to `queue` so far.
    pub fn drain(&self, queue: &str) -> Vec<String> {
        lock(&self.queues)
            .get_mut(queue)
            .map(|q| q.drain(..).collect())
            .unwrap_or_default()
    }

    /// Messages waiting on `queue`.
    pub fn len(&self, queue: &str) -> usize {
        lock(&self.queues).get(queue).map_or(0, VecDeque::len)
    }

    /// The next `n` sends to `queue` fail as throttled.
    pub fn fail_next(&self, queue: &str, n: u32) {
        lock(&self.failing).insert(queue.to_owned(), n);
    }

    fn throttled(&self, queue: &str) -> bool {
        let mut failing = lock(&self.failing);
        match failing.get_mut(queue) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }
}

impl Queues for MemQueues {
    async fn send(&self, queue: &str, body: String) -> Result<(), QueueError> {
        if self.throttled(queue) {
            return Err(QueueError {
                queue: queue.to_owned(),
                message: "RequestThrottled (simulated)".into(),
                retryable: true,
            });
        }
        lock(&self.queues)
            .entry(queue.to_owned())
            .or_default()
            .push_back(body);
        Ok(())
    }

    async fn send_batch(&self, queue: &str, bodies: Vec<String>) -> Result<Vec<usize>, QueueError> {
        if bodies.len() > MAX_BATCH {
            return Err(QueueError {
                queue: queue.to_owned(),
                message: format!("TooManyEntriesInBatchRequest: {}", bodies.len()),
                retryable: false,
            });
        }
        let mut failed = Vec::new();
        for (i, body) in bodies.into_iter().enumerate() {
            if self.send(queue, body).await.is_err() {
                failed.push(i);
            }
        }
        Ok(failed)
    }
}

/// Transient failures a [`MemBucket`] injects into its puts.
#[derive(Debug, Default)]
pub struct PutFaults {
    /// Puts that succeed before the failures start.
    pub succeed: u64,
    /// Puts that then fail with a 503 (a transient error).
    pub fail: u64,
}

/// A bucket in memory that counts its puts per key and fails them as [`PutFaults`] says.
#[derive(Debug, Clone)]
pub struct MemBucket {
    pub objects: Arc<MemObjects>,
    faults: Arc<Mutex<PutFaults>>,
    puts: Arc<Mutex<HashMap<String, u64>>>,
}

impl MemBucket {
    /// Successful puts of `key` so far.
    pub fn puts(&self, key: &str) -> u64 {
        lock(&self.puts).get(key).copied().unwrap_or(0)
    }

    /// Sets the faults of the puts from now on.
    pub fn set_faults(&self, faults: PutFaults) {
        *lock(&self.faults) = faults;
    }
}

impl MemBucket {
    fn fault(&self) -> Result<(), StoreError> {
        let mut faults = lock(&self.faults);
        if faults.succeed > 0 {
            faults.succeed -= 1;
        } else if faults.fail > 0 {
            faults.fail -= 1;
            return Err(StoreError::new(
                ErrorKind::Transient,
                "PutObject",
                "503 ServiceUnavailable (simulated)",
            ));
        }
        Ok(())
    }
}

impl Objects for MemBucket {
    async fn put(&self, key: &str, body: Bytes) -> Result<(), StoreError> {
        self.fault()?;
        self.objects.put(key, body).await?;
        *lock(&self.puts).entry(key.to_owned()).or_default() += 1;
        Ok(())
    }

    async fn put_new(
        &self,
        key: &str,
        body: Bytes,
        meta: &ObjectMeta,
    ) -> Result<PutNew, StoreError> {
        self.fault()?;
        let out = self.objects.put_new(key, body, meta).await?;
        if out == PutNew::Created {
            *lock(&self.puts).entry(key.to_owned()).or_default() += 1;
        }
        Ok(out)
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        self.objects.get(key).await
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        self.objects.head(key).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.objects.list(prefix).await
    }

    async fn object_lock_enabled(&self) -> Result<bool, StoreError> {
        self.objects.object_lock_enabled().await
    }
}

/// Tables, buckets, status tables and queues, all in memory.
#[derive(Debug, Default)]
pub struct MemServices {
    tables: Mutex<HashMap<(String, String), Arc<MemTable>>>,
    buckets: Mutex<HashMap<(String, String), MemBucket>>,
    chains: Mutex<HashMap<(String, String, u32), MemChain>>,
    pub status: MemStatus,
    pub queues: MemQueues,
}

impl MemServices {
    /// Puts `table` at `region`/`name`.
    pub fn add_table(&self, region: &str, name: &str, table: MemTable) -> Arc<MemTable> {
        let table = Arc::new(table);
        lock(&self.tables).insert((region.to_owned(), name.to_owned()), table.clone());
        table
    }

    /// Puts `objects` at `region`/`name`.
    pub fn add_bucket(&self, region: &str, name: &str, objects: MemObjects) -> MemBucket {
        let bucket = MemBucket {
            objects: Arc::new(objects),
            faults: Arc::default(),
            puts: Arc::default(),
        };
        lock(&self.buckets).insert((region.to_owned(), name.to_owned()), bucket.clone());
        bucket
    }
}

impl Services for MemServices {
    type Table = Arc<MemTable>;
    type Objects = MemBucket;
    type Status = MemStatus;
    type Queues = MemQueues;
    type Fence = MemFence;

    /// The table at `region`/`name`; an empty one (hash key `pk`) is made on first use.
    fn table(&self, region: &str, name: &str) -> Arc<MemTable> {
        lock(&self.tables)
            .entry((region.to_owned(), name.to_owned()))
            .or_insert_with(|| Arc::new(MemTable::new("pk", None)))
            .clone()
    }

    /// The bucket at `region`/`name`; an empty one is made on first use.
    fn bucket(&self, region: &str, name: &str) -> MemBucket {
        let existing = lock(&self.buckets)
            .get(&(region.to_owned(), name.to_owned()))
            .cloned();
        existing.unwrap_or_else(|| self.add_bucket(region, name, MemObjects::new()))
    }

    fn fence(&self, status_table: &str, task_id: &str, segment: SegmentId) -> MemFence {
        lock(&self.chains)
            .entry((status_table.to_owned(), task_id.to_owned(), segment.0))
            .or_default()
            .run()
    }

    fn status(&self) -> &MemStatus {
        &self.status
    }

    fn queues(&self) -> &MemQueues {
        &self.queues
    }
}
