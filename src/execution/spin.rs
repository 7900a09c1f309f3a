//! A bounded busy wait on the invocation's answer (opt-in:
//! [`EmulatorBuilder::spin_wait`](crate::EmulatorBuilder::spin_wait)).
//!
//! On a VM whose idle vCPUs halt at once (guest halt-polling off, as on this project's
//! Firecracker machines: `/sys/module/haltpoll/parameters/guest_halt_poll_ns` is 0), every
//! wake-up of a parked thread costs a VM exit and entry: ~200 µs each here, and a warm
//! invoke crosses four (the `/next` answer to the runtime, its `/response` back, the
//! `202` to it, its next `/next` back). Measured with `benches/peers.rs` on an idle
//! machine: 954 µs p50 with both sides parked; with halt-polling turned on 194 µs.
//!
//! Spinning keeps the caller's thread running while it waits: it yields to the scheduler,
//! which polls the I/O driver without blocking, so the runtime's bytes are picked up
//! without a wake-up of this side. Only the runtime's own wake-ups remain. It costs a
//! vCPU for as long as the budget or the invocation lasts, which on a loaded machine
//! takes it from the runtimes — hence off by default.

use std::future::Future;
use std::time::{Duration, Instant};

/// Awaits `fut`, polling it in a yield loop for up to `budget` before parking on it.
/// `None` (the default) parks at once.
pub(crate) async fn wait<F: Future>(budget: Option<Duration>, fut: F) -> F::Output {
    let Some(budget) = budget else {
        return fut.await;
    };
    let mut fut = std::pin::pin!(fut);
    let start = Instant::now();
    loop {
        if let std::task::Poll::Ready(out) = futures::poll!(fut.as_mut()) {
            return out;
        }
        if start.elapsed() >= budget {
            return fut.await;
        }
        // The runtime may have been woken onto this vCPU: `sched_yield` lets it run now
        // rather than when the spinning thread's time slice ends (without it, p99 was
        // 1.5-1.9 ms, within the budget, in `benches/peers.rs`).
        std::thread::yield_now();
        // Re-polled after the scheduler's next non-blocking poll of the I/O driver.
        tokio::task::yield_now().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_ready_future_returns_at_once_and_a_slow_one_still_completes_after_the_budget() {
        assert_eq!(wait(Some(Duration::from_millis(5)), async { 7 }).await, 7);
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            tx.send(3).unwrap();
        });
        let started = Instant::now();
        assert_eq!(wait(Some(Duration::from_millis(1)), rx).await.unwrap(), 3);
        assert!(started.elapsed() >= Duration::from_millis(20));
        assert_eq!(wait(None, async { 1 }).await, 1);
    }
}
