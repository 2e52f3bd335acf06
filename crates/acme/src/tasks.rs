//! The challenge validations running in the background (RFC 8555 7.5.1), tracked so that a
//! shutting-down server waits for them instead of dropping them half-way.
//!
//! A validation marks its challenge `processing` before it starts; dropped at that point (the
//! process exiting under it), it would leave the challenge `processing` for good and its
//! authorization stuck. So [`ValidationTasks::finish`] waits for the running validations until
//! a deadline (the server's shutdown grace), then asks the ones still running to stop: each
//! then records its challenge `invalid` with a problem saying why, a final state a client can
//! act on. Whatever has not recorded its outcome by the deadline is aborted; its single
//! compare-and-set write either happened whole or not at all, never half.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio::time::Instant;

/// Of the shutdown grace, what is kept for the validations told to stop to record that they
/// were: one compare-and-set on the authorization.
const RECORDING_TIME: Duration = Duration::from_secs(2);

/// The validations one ACME service runs.
#[derive(Clone, Default)]
pub struct ValidationTasks {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// How many validations are running.
    running: watch::Sender<usize>,
    /// Set once running validations must stop.
    stop: watch::Sender<bool>,
    /// To abort what is left at the deadline; finished tasks are pruned as new ones start.
    handles: Mutex<Vec<AbortHandle>>,
}

/// What a validation consults to learn that it must stop.
#[derive(Clone)]
pub(crate) struct StopSignal(watch::Receiver<bool>);

impl StopSignal {
    /// Completes once the validation must stop (at once if it already must).
    pub(crate) async fn stopped(&mut self) {
        // An error means the service is gone, which is as good as a stop.
        let _ = self.0.wait_for(|stop| *stop).await;
    }

    #[cfg(test)]
    fn is_stopped(&self) -> bool {
        *self.0.borrow()
    }
}

/// Counts a validation as running until it is dropped (finished or aborted).
struct Running(Arc<Inner>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl ValidationTasks {
    /// Runs `validation` in the background, tracked. A validation started after the stop (a
    /// request still in flight during shutdown) is told to stop at once.
    pub(crate) fn spawn<F, Fut>(&self, validation: F)
    where
        F: FnOnce(StopSignal) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        self.inner.running.send_modify(|n| *n += 1);
        let running = Running(Arc::clone(&self.inner));
        let task = validation(StopSignal(self.inner.stop.subscribe()));
        let handle = tokio::spawn(async move {
            task.await;
            drop(running);
        });
        let mut handles = match self.inner.handles.lock() {
            Ok(handles) => handles,
            Err(poisoned) => poisoned.into_inner(),
        };
        handles.retain(|h| !h.is_finished());
        handles.push(handle.abort_handle());
    }

    /// How many validations are running.
    pub fn running(&self) -> usize {
        *self.inner.running.borrow()
    }

    /// Waits for the running validations until shortly before `deadline`, then tells those
    /// left to stop and record so, and aborts whatever is still running at `deadline`.
    /// Returns how many were aborted (0 when everything ended in a recorded state).
    pub async fn finish(&self, deadline: Instant) -> usize {
        let stop_at = deadline.checked_sub(RECORDING_TIME).unwrap_or(deadline);
        self.finish_by(stop_at, deadline).await
    }

    /// [`ValidationTasks::finish`] with the moment of the stop given: validations still
    /// running at `stop_at` are told to stop, those still running at `deadline` are aborted.
    pub async fn finish_by(&self, stop_at: Instant, deadline: Instant) -> usize {
        if self.running() > 0 {
            tracing::info!(
                validations = self.running(),
                "waiting for ACME challenge validations"
            );
        }
        let idle = self.idle_by(stop_at).await;
        // From here on every validation, running or still to start, stops.
        self.inner.stop.send_replace(true);
        if idle {
            return 0;
        }
        tracing::warn!(
            validations = self.running(),
            "ACME challenge validations still running at shutdown; stopping them"
        );
        if self.idle_by(deadline).await {
            return 0;
        }
        let handles = match self.inner.handles.lock() {
            Ok(mut handles) => std::mem::take(&mut *handles),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        let left = handles.iter().filter(|h| !h.is_finished()).count();
        for handle in handles {
            handle.abort();
        }
        tracing::error!(
            validations = left,
            "ACME challenge validations could not record their outcome before the deadline"
        );
        left
    }

    /// Whether no validation is running by `until`.
    async fn idle_by(&self, until: Instant) -> bool {
        let mut running = self.inner.running.subscribe();
        tokio::time::timeout_at(until, running.wait_for(|n| *n == 0))
            .await
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn finishing_waits_for_validations_that_end_in_time() {
        let tasks = ValidationTasks::default();
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let (done, mut was_done) = watch::channel(false);
        tasks.spawn(move |_stop| async move {
            let _ = released.await;
            done.send_replace(true);
        });
        assert_eq!(tasks.running(), 1);
        let finishing = {
            let tasks = tasks.clone();
            tokio::spawn(async move {
                tasks
                    .finish(Instant::now() + Duration::from_secs(3600))
                    .await
            })
        };
        release.send(()).unwrap();
        assert_eq!(finishing.await.unwrap(), 0);
        assert!(
            *was_done.borrow_and_update(),
            "finish returned before the task ended"
        );
        assert_eq!(tasks.running(), 0);
    }

    #[tokio::test]
    async fn validations_past_the_deadline_are_told_to_stop_and_record_it() {
        let tasks = ValidationTasks::default();
        let (recorded, mut was_recorded) = watch::channel(false);
        tasks.spawn(move |mut stop| async move {
            // Stands for an attempt that would never end by itself.
            stop.stopped().await;
            recorded.send_replace(true);
        });
        let now = Instant::now();
        assert_eq!(
            tasks.finish_by(now, now + Duration::from_secs(3600)).await,
            0
        );
        assert!(*was_recorded.borrow_and_update());
        // A validation started after the stop learns at once that it must stop.
        let (tx, rx) = tokio::sync::oneshot::channel();
        tasks.spawn(move |stop| async move {
            let _ = tx.send(stop.is_stopped());
        });
        assert!(rx.await.unwrap());
    }

    #[tokio::test]
    async fn what_cannot_record_by_the_deadline_is_aborted() {
        let tasks = ValidationTasks::default();
        tasks.spawn(|_stop| std::future::pending::<()>());
        assert_eq!(tasks.finish(Instant::now()).await, 1);
        // The aborted task's count is released when tokio drops it.
        let mut running = tasks.inner.running.subscribe();
        running.wait_for(|n| *n == 0).await.unwrap();
    }
}
