//! Run slots: the concurrency limit on upstream runs, one pool per device.
//!
//! Why per device: two whole-body runs on one GPU run out of memory or just take
//! turns slower than one after the other, while a CPU run does not touch the GPU. The
//! upstream config always uses `cuda:0` when torch sees CUDA, so every `auto`/`cuda`
//! run shares the one GPU pool; `cpu` runs have their own. Each pool admits
//! `CTMR_SKILL_MAX_CONCURRENT_RUNS` runs at a time (default 1).
//!
//! Waiting calls queue in order (tokio's semaphore is fair) and are told their place
//! in the queue as it moves, so a client sees "position 2", then "position 1", then
//! the run start.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::upstream::DeviceRequest;

/// Which pool a run takes its slot from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DevicePool {
    /// `auto` and `cuda`: the bundle's `cuda:0` (or the CPU when torch sees no CUDA).
    Gpu,
    /// `cpu`: every GPU hidden.
    Cpu,
}

impl DevicePool {
    pub(crate) fn of(device: DeviceRequest) -> Self {
        match device {
            DeviceRequest::Cpu => DevicePool::Cpu,
            DeviceRequest::Auto | DeviceRequest::Cuda => DevicePool::Gpu,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            DevicePool::Gpu => "the GPU (cuda:0)",
            DevicePool::Cpu => "the CPU",
        }
    }
}

struct Pool {
    semaphore: Arc<Semaphore>,
    /// Tickets of the calls waiting, in arrival order.
    waiting: Mutex<BTreeSet<u64>>,
}

/// The run slots of one server (or one CLI process).
pub struct RunSlots {
    per_device: usize,
    gpu: Pool,
    cpu: Pool,
    next_ticket: AtomicU64,
    /// How often a waiting call re-reads its place in the queue.
    recheck: Duration,
}

/// A place in a queue; leaving it (served, cancelled or dropped) frees the place.
struct Ticket<'a> {
    pool: &'a Pool,
    number: u64,
}

impl Ticket<'_> {
    /// 1 for the next call to be served.
    fn position(&self) -> usize {
        let waiting = self.pool.waiting.lock().unwrap_or_else(|e| e.into_inner());
        waiting.range(..self.number).count() + 1
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        self.pool
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.number);
    }
}

impl RunSlots {
    /// `per_device` runs at a time in each pool (at least 1).
    pub fn new(per_device: usize) -> Self {
        let per_device = per_device.max(1);
        let pool = || Pool {
            semaphore: Arc::new(Semaphore::new(per_device)),
            waiting: Mutex::new(BTreeSet::new()),
        };
        RunSlots {
            per_device,
            gpu: pool(),
            cpu: pool(),
            next_ticket: AtomicU64::new(0),
            recheck: Duration::from_millis(500),
        }
    }

    /// Runs admitted at a time per device.
    pub(crate) fn per_device(&self) -> usize {
        self.per_device
    }

    fn pool(&self, device: DevicePool) -> &Pool {
        match device {
            DevicePool::Gpu => &self.gpu,
            DevicePool::Cpu => &self.cpu,
        }
    }

    /// A slot in `device`'s pool; `None` when `cancel` fired first. While queued,
    /// `report(position)` is called at once and whenever the position changes.
    pub(crate) async fn acquire(
        &self,
        device: DevicePool,
        cancel: &CancellationToken,
        mut report: impl FnMut(usize),
    ) -> Option<OwnedSemaphorePermit> {
        let pool = self.pool(device);
        if let Ok(permit) = pool.semaphore.clone().try_acquire_owned() {
            return Some(permit);
        }
        let ticket = Ticket {
            pool,
            number: self.next_ticket.fetch_add(1, Ordering::SeqCst),
        };
        pool.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(ticket.number);
        // One acquire future for the whole wait: re-creating it would lose our place.
        let acquire = pool.semaphore.clone().acquire_owned();
        tokio::pin!(acquire);
        let mut reported = None;
        loop {
            let position = ticket.position();
            if reported != Some(position) {
                report(position);
                reported = Some(position);
            }
            tokio::select! {
                permit = &mut acquire => {
                    return Some(permit.expect("the semaphore is never closed"));
                }
                _ = cancel.cancelled() => return None,
                _ = tokio::time::sleep(self.recheck) => {}
            }
        }
    }
}

/// The queue message both run tools send.
pub(crate) fn queued_message(device: DevicePool, position: usize, per_device: usize) -> String {
    format!(
        "queued for {}: position {position}; {per_device} run(s) at a time per device",
        device.name()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slots() -> Arc<RunSlots> {
        let mut s = RunSlots::new(1);
        s.recheck = Duration::from_millis(10);
        Arc::new(s)
    }

    /// Spawn a waiter that records the positions it is told and whether it got in.
    fn waiter(
        slots: &Arc<RunSlots>,
        device: DevicePool,
        cancel: CancellationToken,
    ) -> (
        Arc<Mutex<Vec<usize>>>,
        tokio::task::JoinHandle<Option<OwnedSemaphorePermit>>,
    ) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (slots, record) = (slots.clone(), seen.clone());
        let handle = tokio::spawn(async move {
            slots
                .acquire(device, &cancel, |p| record.lock().unwrap().push(p))
                .await
        });
        (seen, handle)
    }

    /// Let the waiters run until `seen` holds `expected` (no fixed sleep: a loaded
    /// machine may take longer); fails with what was seen after 10 s.
    async fn until_seen(seen: &Mutex<Vec<usize>>, expected: &[usize]) {
        let t0 = std::time::Instant::now();
        while *seen.lock().unwrap() != expected {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "saw {:?}, expected {expected:?}",
                seen.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn queued_calls_are_told_their_place_as_the_queue_moves() {
        let slots = slots();
        let never = CancellationToken::new();
        let first = slots
            .acquire(DevicePool::Gpu, &never, |_| {
                panic!("a free slot is not queued")
            })
            .await
            .unwrap();
        let (second_seen, second) = waiter(&slots, DevicePool::Gpu, never.clone());
        until_seen(&second_seen, &[1]).await;
        let (third_seen, third) = waiter(&slots, DevicePool::Gpu, never.clone());
        until_seen(&third_seen, &[2]).await;

        drop(first);
        let second_permit = second.await.unwrap().unwrap();
        assert_eq!(*second_seen.lock().unwrap(), [1]);
        until_seen(&third_seen, &[2, 1]).await;
        assert!(!third.is_finished());
        drop(second_permit);
        assert!(third.await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_cancelled_waiter_leaves_the_queue() {
        let slots = slots();
        let never = CancellationToken::new();
        let held = slots
            .acquire(DevicePool::Gpu, &never, |_| {})
            .await
            .unwrap();
        let give_up = CancellationToken::new();
        let (leaving_seen, leaving) = waiter(&slots, DevicePool::Gpu, give_up.clone());
        until_seen(&leaving_seen, &[1]).await;
        let (behind_seen, behind) = waiter(&slots, DevicePool::Gpu, never.clone());
        until_seen(&behind_seen, &[2]).await;
        give_up.cancel();
        assert!(leaving.await.unwrap().is_none());
        until_seen(&behind_seen, &[2, 1]).await;
        drop(held);
        assert!(behind.await.unwrap().is_some());
    }

    #[tokio::test]
    async fn cpu_runs_do_not_wait_for_the_gpu() {
        let slots = slots();
        let never = CancellationToken::new();
        let _gpu = slots
            .acquire(DevicePool::Gpu, &never, |_| {})
            .await
            .unwrap();
        let cpu = slots
            .acquire(DevicePool::Cpu, &never, |_| panic!("the CPU pool is free"))
            .await;
        assert!(cpu.is_some());
        assert_eq!(DevicePool::of(DeviceRequest::Auto), DevicePool::Gpu);
        assert_eq!(DevicePool::of(DeviceRequest::Cuda), DevicePool::Gpu);
        assert_eq!(DevicePool::of(DeviceRequest::Cpu), DevicePool::Cpu);
    }

    #[test]
    fn the_limit_is_at_least_one() {
        assert_eq!(RunSlots::new(0).per_device(), 1);
        assert!(queued_message(DevicePool::Cpu, 2, 1).contains("position 2"));
    }
}
