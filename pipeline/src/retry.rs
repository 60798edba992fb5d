//! Exponential backoff with full jitter, under a per-segment retry budget, and a limiter on
//! consumed capacity.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::progress::Progress;
use crate::store::StoreError;

/// How retries back off and when they give up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first delay's upper bound; it doubles with each attempt.
    pub base: Duration,
    /// No delay is longer than this.
    pub max_delay: Duration,
    /// Attempts of one call (the first included) before its error is final.
    pub max_attempts: u32,
    /// Retries a whole segment run may spend, across all its calls.
    pub budget: u64,
    /// A call that takes longer is abandoned and counts as a transient failure.
    pub call_timeout: Duration,
    /// How long past its run's stop time a call already started may still be retried: the
    /// run stops starting work at its deadline, but a batch in flight when a throttle or a
    /// lost reply meets it is better finished (and the checkpoint moved) than abandoned to a
    /// redelivery. The functions set half their deadline margin; the other half is left
    /// for the commit and the continuation.
    pub grace: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_millis(50),
            max_delay: Duration::from_secs(10),
            max_attempts: 12,
            budget: 10_000,
            call_timeout: Duration::from_secs(60),
            grace: Duration::ZERO,
        }
    }
}

impl RetryPolicy {
    /// The delay before retry number `attempt` (1-based): uniform in `0..=min(max, base*2^(n-1))`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = self.base.saturating_mul(
            1u32.checked_shl(attempt.saturating_sub(1))
                .unwrap_or(u32::MAX),
        );
        let cap = exp.min(self.max_delay);
        let nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(fastrand::u64(0..=nanos))
    }
}

/// Why a call was given up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetryError {
    #[error("{0}")]
    Final(StoreError),
    #[error("gave up after {attempts} attempts: {last}")]
    Exhausted { attempts: u32, last: StoreError },
    #[error("the segment's retry budget ({budget}) is spent; last error: {last}")]
    BudgetSpent { budget: u64, last: StoreError },
    #[error("the deadline came while retrying: {last}")]
    Deadline { last: StoreError },
}

impl RetryError {
    /// The store error behind this one.
    pub fn last(&self) -> &StoreError {
        match self {
            RetryError::Final(e)
            | RetryError::Exhausted { last: e, .. }
            | RetryError::BudgetSpent { last: e, .. }
            | RetryError::Deadline { last: e } => e,
        }
    }
}

/// Retries calls of one segment run: shares the budget and counts retries.
#[derive(Debug, Clone)]
pub struct Retrier {
    policy: RetryPolicy,
    deadline: Instant,
    spent: Arc<AtomicU64>,
    progress: Option<Arc<Progress>>,
}

impl Retrier {
    /// Retries stop at `deadline` plus the policy's grace: a sleep that would end after it is
    /// not started.
    pub fn new(policy: RetryPolicy, deadline: Instant) -> Self {
        Retrier {
            policy,
            deadline: deadline + policy.grace,
            spent: Arc::new(AtomicU64::new(0)),
            progress: None,
        }
    }

    /// Also counts retries in `progress`.
    pub fn with_progress(mut self, progress: Arc<Progress>) -> Self {
        self.progress = Some(progress);
        self
    }

    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// Retries spent so far.
    pub fn retries(&self) -> u64 {
        self.spent.load(Ordering::Relaxed)
    }

    /// Sleeps before retry `attempt` of an error, or says why not to retry.
    pub async fn backoff(&self, attempt: u32, error: StoreError) -> Result<(), RetryError> {
        if !error.is_retryable() {
            return Err(RetryError::Final(error));
        }
        if attempt >= self.policy.max_attempts {
            return Err(RetryError::Exhausted {
                attempts: attempt,
                last: error,
            });
        }
        if self.spent.fetch_add(1, Ordering::Relaxed) >= self.policy.budget {
            return Err(RetryError::BudgetSpent {
                budget: self.policy.budget,
                last: error,
            });
        }
        if let Some(p) = &self.progress {
            p.retry();
        }
        let delay = self.policy.delay(attempt);
        if Instant::now() + delay > self.deadline {
            return Err(RetryError::Deadline { last: error });
        }
        tokio::time::sleep(delay).await;
        Ok(())
    }

    /// Awaits one call, abandoning it after the policy's call timeout.
    pub async fn timed<T>(
        &self,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.policy.call_timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::new(
                crate::store::ErrorKind::Transient,
                "call",
                format!("no answer within {:?}", self.policy.call_timeout),
            )),
        }
    }

    /// Runs `call` until it succeeds, backing off between retryable failures.
    pub async fn run<T, F, Fut>(&self, mut call: F) -> Result<T, RetryError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let mut attempt = 1;
        loop {
            match self.timed(call()).await {
                Ok(v) => return Ok(v),
                Err(e) => {
                    self.backoff(attempt, e).await?;
                    attempt += 1;
                }
            }
        }
    }
}

/// Keeps consumed capacity at or under a rate (units per second), so a backup or restore can
/// run beside production traffic. Paces after the fact: a call's units are known only from
/// its response, so the next call waits until the average is back under the limit.
#[derive(Debug, Clone)]
pub struct CapacityLimiter {
    inner: Option<Arc<Mutex<LimiterState>>>,
}

#[derive(Debug)]
struct LimiterState {
    per_second: f64,
    /// When the units consumed so far will have been "paid off" at the limit.
    paid_until: Instant,
}

impl CapacityLimiter {
    /// No limit.
    pub fn unlimited() -> Self {
        CapacityLimiter { inner: None }
    }

    /// At most `per_second` units per second on average; `None` or a non-positive rate means
    /// no limit.
    pub fn new(per_second: Option<f64>) -> Self {
        match per_second {
            Some(r) if r > 0.0 && r.is_finite() => CapacityLimiter {
                inner: Some(Arc::new(Mutex::new(LimiterState {
                    per_second: r,
                    paid_until: Instant::now(),
                }))),
            },
            _ => Self::unlimited(),
        }
    }

    /// Reserves `estimate` units for a call about to start and waits for its turn: calls made
    /// concurrently are spaced at the rate instead of going out in a burst. Settle the
    /// estimate with [`CapacityLimiter::settle`] once the call reports what it consumed.
    pub async fn reserve(&self, estimate: f64) {
        let Some(inner) = &self.inner else { return };
        let start = {
            let mut s = inner.lock().await;
            let start = s.paid_until.max(Instant::now());
            s.paid_until = start + pay(estimate, s.per_second);
            start
        };
        tokio::time::sleep_until(start).await;
    }

    /// Corrects a reservation by what the call really consumed (more or less).
    pub async fn settle(&self, estimate: f64, actual: f64) {
        let Some(inner) = &self.inner else { return };
        let delta = actual - estimate.max(0.0);
        if delta == 0.0 || !delta.is_finite() {
            return;
        }
        let mut s = inner.lock().await;
        let shift = pay(delta.abs(), s.per_second);
        s.paid_until = if delta > 0.0 {
            s.paid_until + shift
        } else {
            s.paid_until.checked_sub(shift).unwrap_or(s.paid_until)
        };
    }

    /// Records `units` consumed and waits until the rate allows the next call.
    pub async fn consumed(&self, units: f64) {
        let Some(inner) = &self.inner else { return };
        if units <= 0.0 || !units.is_finite() {
            return;
        }
        let until = {
            let mut s = inner.lock().await;
            let now = Instant::now();
            let start = s.paid_until.max(now);
            s.paid_until = start + pay(units, s.per_second);
            s.paid_until
        };
        tokio::time::sleep_until(until).await;
    }
}

/// How long `units` take to pay off at `per_second`; never panics: whatever a store reports
/// (NaN, negative, astronomically large), at most one hour per call.
fn pay(units: f64, per_second: f64) -> Duration {
    const MAX: Duration = Duration::from_secs(3600);
    Duration::try_from_secs_f64(units / per_second).map_or(Duration::ZERO, |d| d.min(MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ErrorKind;

    fn throttled() -> StoreError {
        StoreError::new(
            ErrorKind::Throttled,
            "Scan",
            "ProvisionedThroughputExceeded",
        )
    }

    #[test]
    fn delays_grow_exponentially_and_stay_under_the_cap() {
        let p = RetryPolicy {
            base: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            max_attempts: 10,
            budget: 100,
            ..RetryPolicy::default()
        };
        for attempt in 1..40 {
            let cap = Duration::from_millis(100 * (1u64 << (attempt - 1).min(20))).min(p.max_delay);
            for _ in 0..50 {
                assert!(p.delay(attempt) <= cap, "attempt {attempt}");
            }
        }
        // Full jitter: the delays are spread, not all at the cap.
        let spread: std::collections::HashSet<_> = (0..50).map(|_| p.delay(5)).collect();
        assert!(spread.len() > 10);
    }

    #[tokio::test(start_paused = true)]
    async fn retries_back_off_in_virtual_time_then_succeed() {
        let r = Retrier::new(
            RetryPolicy::default(),
            Instant::now() + Duration::from_secs(3600),
        );
        let mut calls = 0;
        let start = Instant::now();
        let v = r
            .run(|| {
                calls += 1;
                let fail = calls < 4;
                async move { if fail { Err(throttled()) } else { Ok(7) } }
            })
            .await;
        assert_eq!(v, Ok(7));
        assert_eq!(calls, 4);
        assert_eq!(r.retries(), 3);
        // Three delays, each at most 50, 100 and 200 ms.
        assert!(start.elapsed() <= Duration::from_millis(350));
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_errors_are_not_retried() {
        let r = Retrier::new(
            RetryPolicy::default(),
            Instant::now() + Duration::from_secs(60),
        );
        let mut calls = 0;
        let v: Result<(), _> = r
            .run(|| {
                calls += 1;
                async {
                    Err(StoreError::new(
                        ErrorKind::Permanent,
                        "PutObject",
                        "AccessDenied",
                    ))
                }
            })
            .await;
        assert!(matches!(v, Err(RetryError::Final(_))));
        assert_eq!(calls, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn attempts_and_budget_bound_the_retries() {
        let policy = RetryPolicy {
            max_attempts: 3,
            budget: 3,
            ..RetryPolicy::default()
        };
        let r = Retrier::new(policy, Instant::now() + Duration::from_secs(3600));
        let v: Result<(), _> = r.run(|| async { Err(throttled()) }).await;
        assert!(matches!(v, Err(RetryError::Exhausted { attempts: 3, .. })));
        let v: Result<(), _> = r.run(|| async { Err(throttled()) }).await;
        // The first call spent 2 of the 3 retries; the second gets one more, then none.
        assert!(matches!(v, Err(RetryError::BudgetSpent { budget: 3, .. })));
    }

    #[tokio::test(start_paused = true)]
    async fn no_retry_sleeps_past_the_deadline() {
        let policy = RetryPolicy {
            base: Duration::from_secs(10),
            max_delay: Duration::from_secs(10),
            ..RetryPolicy::default()
        };
        // Any non-zero delay ends after a deadline of now (a zero draw is one in 10^10).
        let r = Retrier::new(policy, Instant::now());
        let mut calls = 0;
        let v: Result<(), _> = r
            .run(|| {
                calls += 1;
                async { Err(throttled()) }
            })
            .await;
        assert!(matches!(v, Err(RetryError::Deadline { .. })), "{v:?}");
        assert_eq!(calls, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_calls_are_spaced_at_the_rate_not_burst() {
        let limiter = CapacityLimiter::new(Some(10.0));
        let start = Instant::now();
        // Eight writers at once, each reserving 1 unit: they start 100 ms apart.
        let starts = futures::future::join_all((0..8).map(|_| {
            let limiter = limiter.clone();
            async move {
                limiter.reserve(1.0).await;
                let at = start.elapsed();
                // Each call really consumed 2 units: the debt pushes later reservations.
                limiter.settle(1.0, 2.0).await;
                at
            }
        }))
        .await;
        let mut ms: Vec<u128> = starts.iter().map(Duration::as_millis).collect();
        ms.sort_unstable();
        assert_eq!(ms[0], 0);
        assert!(ms[1] >= 100, "{ms:?}");
        assert!(ms[7] >= 700, "no burst: {ms:?}");
        // 8 calls x 2 units at 10/s: the next reservation waits until 1.6 s.
        limiter.reserve(0.0).await;
        assert!(
            start.elapsed() >= Duration::from_millis(1600),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn paying_for_any_reported_capacity_never_panics() {
        assert_eq!(pay(50.0, 100.0), Duration::from_millis(500));
        for units in [f64::NAN, f64::INFINITY, -1.0, 1e300, f64::MAX] {
            assert!(pay(units, 1e-300) <= Duration::from_secs(3600), "{units}");
        }
        assert_eq!(pay(-1.0, 10.0), Duration::ZERO);
        assert_eq!(pay(f64::NAN, 10.0), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn the_limiter_paces_consumed_capacity() {
        let limiter = CapacityLimiter::new(Some(100.0));
        let start = Instant::now();
        for _ in 0..10 {
            limiter.consumed(50.0).await;
        }
        // 500 units at 100/s take 5 s.
        assert_eq!(start.elapsed().as_secs(), 5);
        let free = CapacityLimiter::new(None);
        let start = Instant::now();
        free.consumed(1e9).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
