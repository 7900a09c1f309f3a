//! The per-function warm pool: which execution environment runs the next invocation.
//!
//! acquire = a free warm environment → else launch a new one while below the cap → else
//! wait for whichever environment frees first. Reserved concurrency refuses invokes beyond
//! it at once. Every decision is made under one lock per function, so a burst can never
//! overshoot the cap, and hand-offs go straight from the releasing invocation to the first
//! waiter (no convoy on one environment, no polling).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::environment::Environment;
use super::variables::Platform;
use crate::backend::Backend;
use crate::deploy::Deployment;
use crate::error::BackendError;
use crate::stats::{EventKind, EvictionReason, Recorder};

/// Longest wait for a provisioned environment's init (Lambda's init limit).
const INIT_LIMIT: Duration = Duration::from_secs(10);
use crate::telemetry::TelemetryFeed;

/// What an environment launch needs besides the deployment.
#[derive(Clone)]
pub(crate) struct LaunchContext {
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) platform: Platform,
}

/// Why no environment could be had.
#[derive(Debug)]
pub(crate) enum AcquireError {
    Throttled { limit: u32 },
    Launch(BackendError),
    ShutDown,
}

enum Grant {
    Env(Lease),
    Launch(LaunchPermit),
}

struct Inner {
    deployment: Arc<Deployment>,
    idle: Vec<Arc<Environment>>,
    /// Every live environment (idle or busy), launching ones excluded.
    all: Vec<Arc<Environment>>,
    launching: usize,
    waiters: VecDeque<oneshot::Sender<Grant>>,
    /// Admitted invocations: running, launching or queued.
    admitted: u32,
    closed: bool,
}

/// One function's execution environments.
pub(crate) struct Pool {
    function: String,
    recorder: Recorder,
    /// The Telemetry API records of every environment of the function.
    telemetry: TelemetryFeed,
    next_number: AtomicU64,
    inner: Mutex<Inner>,
}

impl Pool {
    pub(crate) fn new(
        function: &str,
        deployment: Arc<Deployment>,
        recorder: Recorder,
    ) -> Arc<Pool> {
        Arc::new(Pool {
            function: function.to_string(),
            recorder,
            telemetry: TelemetryFeed::new(function),
            next_number: AtomicU64::new(1),
            inner: Mutex::new(Inner {
                deployment,
                idle: Vec::new(),
                all: Vec::new(),
                launching: 0,
                waiters: VecDeque::new(),
                admitted: 0,
                closed: false,
            }),
        })
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The function's name.
    pub(crate) fn function(&self) -> &str {
        &self.function
    }

    /// The function's telemetry (every environment's Telemetry API records).
    pub(crate) fn telemetry(&self) -> TelemetryFeed {
        self.telemetry.clone()
    }

    /// The deployment new environments are launched from.
    pub(crate) fn deployment(&self) -> Arc<Deployment> {
        self.inner().deployment.clone()
    }

    /// An environment for one invocation. `cap` bounds live environments; `reserved`
    /// bounds admitted invocations.
    pub(crate) async fn acquire(
        self: &Arc<Self>,
        cap: usize,
        reserved: Option<u32>,
        ctx: &LaunchContext,
    ) -> Result<Lease, AcquireError> {
        let mut retired = Vec::new();
        let step = {
            let mut inner = self.inner();
            if inner.closed {
                return Err(AcquireError::ShutDown);
            }
            if let Some(limit) = reserved.filter(|limit| inner.admitted >= *limit) {
                drop(inner);
                self.recorder.record(EventKind::Throttled { limit });
                return Err(AcquireError::Throttled { limit });
            }
            inner.admitted += 1;
            let admission = Admission(self.clone());
            let mut warm = None;
            while let Some(env) = inner.idle.pop() {
                if env.is_dead() || env.deployment.deploy_id != inner.deployment.deploy_id {
                    let reason = if env.is_dead() {
                        EvictionReason::Unreachable
                    } else {
                        EvictionReason::StaleDeploy
                    };
                    inner.all.retain(|e| !Arc::ptr_eq(e, &env));
                    retired.push((env, reason));
                    continue;
                }
                warm = Some(env);
                break;
            }
            match warm {
                Some(env) => Step::Ready(Lease::new(self.clone(), env, false, Some(admission))),
                None if inner.all.len() + inner.launching < cap.max(1) => {
                    inner.launching += 1;
                    Step::Launch(LaunchPermit(Some(self.clone())), admission)
                }
                None => {
                    let (tx, rx) = oneshot::channel();
                    inner.waiters.push_back(tx);
                    Step::Wait(rx, admission)
                }
            }
        };
        for (env, reason) in retired {
            env.retire(reason);
        }
        match step {
            Step::Ready(lease) => Ok(lease),
            Step::Launch(permit, admission) => permit.launch(ctx, admission).await,
            Step::Wait(rx, admission) => match rx.await {
                Ok(Grant::Env(mut lease)) => {
                    lease.admission = Some(admission);
                    Ok(lease)
                }
                Ok(Grant::Launch(permit)) => permit.launch(ctx, admission).await,
                Err(_) => Err(AcquireError::ShutDown),
            },
        }
    }

    /// Takes an environment back after an invocation. `evict` retires it instead (timeout,
    /// crash); stale or dead environments are retired too. A queued invocation gets it
    /// directly; if it was retired, a queued invocation may launch a replacement.
    fn give_back(self: &Arc<Self>, env: Arc<Environment>, evict: Option<EvictionReason>) {
        let mut pending = Some(env);
        let mut retire = None;
        {
            let mut inner = self.inner();
            let env = pending.as_ref().expect("set");
            let reason = evict
                .or_else(|| env.is_dead().then_some(EvictionReason::RuntimeExited))
                .or_else(|| env.is_retiring().then_some(EvictionReason::Explicit))
                .or_else(|| {
                    (env.deployment.deploy_id != inner.deployment.deploy_id)
                        .then_some(EvictionReason::StaleDeploy)
                })
                .or_else(|| inner.closed.then_some(EvictionReason::Shutdown));
            if let Some(reason) = reason {
                let env = pending.take().expect("set");
                inner.all.retain(|e| !Arc::ptr_eq(e, &env));
                retire = Some((env, reason));
                if !inner.closed {
                    self.offer_launch(&mut inner);
                }
            } else {
                while let Some(waiter) = inner.waiters.pop_front() {
                    let lease = Lease::new(self.clone(), pending.take().expect("set"), false, None);
                    match waiter.send(Grant::Env(lease)) {
                        Ok(()) => break,
                        // The waiter gave up; take the environment back from its grant.
                        Err(Grant::Env(mut lease)) => pending = lease.env.take(),
                        Err(Grant::Launch(_)) => unreachable!("sent an environment"),
                    }
                }
                if let Some(env) = pending.take() {
                    self.recorder.record(EventKind::EnvironmentIdle {
                        environment: env.id().to_string(),
                    });
                    inner.idle.push(env);
                }
            }
        }
        if let Some((env, reason)) = retire {
            env.retire(reason);
        }
    }

    /// Gives the first live waiter the right to launch an environment. Called with the
    /// lock held, so a refused permit is forgotten rather than dropped (its drop locks).
    fn offer_launch(self: &Arc<Self>, inner: &mut Inner) {
        while let Some(waiter) = inner.waiters.pop_front() {
            inner.launching += 1;
            match waiter.send(Grant::Launch(LaunchPermit(Some(self.clone())))) {
                Ok(()) => return,
                Err(Grant::Launch(mut permit)) => {
                    permit.0 = None;
                    inner.launching -= 1;
                }
                Err(Grant::Env(_)) => unreachable!("sent a permit"),
            }
        }
    }

    /// Switches to a new deployment: idle environments of the old one are retired now,
    /// busy ones when their invocation ends (never mid-invocation).
    pub(crate) fn redeploy(&self, deployment: Arc<Deployment>) {
        let stale: Vec<_> = {
            let mut inner = self.inner();
            inner.deployment = deployment;
            let current = inner.deployment.deploy_id.clone();
            let (stale, fresh): (Vec<_>, Vec<_>) = inner
                .idle
                .drain(..)
                .partition(|e| e.deployment.deploy_id != current);
            inner.idle = fresh;
            inner
                .all
                .retain(|e| !stale.iter().any(|s| Arc::ptr_eq(s, e)));
            stale
        };
        for env in stale {
            env.retire(EvictionReason::StaleDeploy);
        }
    }

    /// Retires idle environments that satisfy `pick` (busy ones are never interrupted).
    pub(crate) fn evict_idle(
        &self,
        reason: EvictionReason,
        mut pick: impl FnMut(&Environment) -> bool,
    ) -> usize {
        let evicted: Vec<_> = {
            let mut inner = self.inner();
            let (evicted, kept): (Vec<_>, Vec<_>) = inner.idle.drain(..).partition(|e| pick(e));
            inner.idle = kept;
            inner
                .all
                .retain(|e| !evicted.iter().any(|s| Arc::ptr_eq(s, e)));
            evicted
        };
        for env in &evicted {
            env.retire(reason);
        }
        evicted.len()
    }

    /// Retires idle environments now and busy ones as soon as they are free.
    pub(crate) fn evict_all(&self) -> usize {
        for env in &self.inner().all {
            env.retire_when_free();
        }
        self.evict_idle(EvictionReason::Explicit, |_| true)
    }

    /// Retires idle environments unused for longer than `ttl` (provisioned ones stay).
    pub(crate) fn evict_expired(&self, ttl: Duration) -> usize {
        let now = Instant::now();
        self.evict_idle(EvictionReason::IdleTimeout, |e| {
            !e.provisioned && now.duration_since(e.last_used()) >= ttl
        })
    }

    /// Provisioned concurrency: keeps `n` environments initialized ahead of invokes
    /// (`AWS_LAMBDA_INITIALIZATION_TYPE=provisioned-concurrency`; an invoke on one is not
    /// a cold start), launching the missing ones and waiting until they are ready, or
    /// retiring the surplus idle ones. Returns how many are ready.
    pub(crate) async fn provision(
        self: &Arc<Self>,
        n: usize,
        ctx: &LaunchContext,
    ) -> Result<usize, BackendError> {
        let missing = n.saturating_sub(self.provisioned_count());
        // Keep the first `n` idle provisioned environments, retire the rest.
        let mut keep = n;
        self.evict_idle(EvictionReason::Explicit, |e| {
            if !e.provisioned {
                return false;
            }
            let surplus = keep == 0;
            keep = keep.saturating_sub(1);
            surplus
        });
        let launches = (0..missing).map(|_| async {
            let env = Environment::launch(
                &*ctx.backend,
                self.deployment(),
                self.next_environment_id(),
                &ctx.platform,
                self.recorder.clone(),
                self.telemetry.clone(),
                true,
            )
            .await?;
            env.wait_ready(INIT_LIMIT).await;
            Ok::<_, BackendError>(env)
        });
        let launched = futures::future::join_all(launches).await;
        let mut first_error = None;
        for result in launched {
            match result {
                Ok(env) if !env.is_dead() => {
                    let mut inner = self.inner();
                    inner.all.push(env.clone());
                    self.recorder.record(EventKind::EnvironmentIdle {
                        environment: env.id().to_string(),
                    });
                    inner.idle.push(env);
                }
                Ok(env) => env.retire(EvictionReason::LaunchFailed),
                Err(e) => first_error = first_error.or(Some(e)),
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(self.provisioned_count()),
        }
    }

    /// Live provisioned environments.
    pub(crate) fn provisioned_count(&self) -> usize {
        self.inner().all.iter().filter(|e| e.provisioned).count()
    }

    /// Terminates every environment the pool has now, busy ones included, and refuses
    /// further invokes.
    /// Closes the pool: every environment is retired (`graceful`: with `SHUTDOWN` for
    /// their extensions, else killed now).
    pub(crate) fn close(&self, reason: EvictionReason, graceful: bool) {
        let all = {
            let mut inner = self.inner();
            inner.closed = true;
            inner.waiters.clear();
            inner.idle.clear();
            std::mem::take(&mut inner.all)
        };
        for env in all {
            env.retire_with(reason, graceful);
        }
    }

    /// Records an invocation that failed before any environment could start (its
    /// environment's launch failure is already recorded).
    pub(crate) fn record_unstarted(&self, request_id: &str, error_type: &str) {
        for kind in [
            EventKind::InvocationStarted {
                environment: String::new(),
                request_id: request_id.to_string(),
                cold_start: true,
            },
            EventKind::InvocationEnded {
                environment: String::new(),
                request_id: request_id.to_string(),
                result: crate::stats::InvocationResult::Error(error_type.to_string()),
            },
        ] {
            self.recorder.record(kind);
        }
    }

    /// Invocations admitted and not yet finished (running, launching or queued).
    pub(crate) fn admitted(&self) -> u32 {
        self.inner().admitted
    }

    /// Process ids of live environments (process backend), for leak checks.
    pub(crate) fn pids(&self) -> Vec<u32> {
        self.inner().all.iter().filter_map(|e| e.pid()).collect()
    }

    fn next_environment_id(&self) -> String {
        format!(
            "{}-env-{}",
            self.function,
            self.next_number.fetch_add(1, Ordering::Relaxed)
        )
    }
}

enum Step {
    Ready(Lease),
    Launch(LaunchPermit, Admission),
    Wait(oneshot::Receiver<Grant>, Admission),
}

/// One admitted invocation; counts toward reserved concurrency until dropped.
struct Admission(Arc<Pool>);

impl Drop for Admission {
    fn drop(&mut self) {
        self.0.inner().admitted -= 1;
        self.0.recorder.notify();
    }
}

/// The right to launch one environment (counted in `launching` until used or dropped).
/// `None` once disarmed.
struct LaunchPermit(Option<Arc<Pool>>);

impl LaunchPermit {
    async fn launch(
        mut self,
        ctx: &LaunchContext,
        admission: Admission,
    ) -> Result<Lease, AcquireError> {
        let pool = self.0.clone().expect("an armed permit");
        let deployment = pool.deployment();
        let id = pool.next_environment_id();
        let launched = Environment::launch(
            &*ctx.backend,
            deployment,
            id,
            &ctx.platform,
            pool.recorder.clone(),
            pool.telemetry.clone(),
            false,
        )
        .await;
        let mut inner = pool.inner();
        inner.launching -= 1;
        self.0 = None;
        match launched {
            Ok(env) if !inner.closed => {
                inner.all.push(env.clone());
                drop(inner);
                Ok(Lease::new(pool, env, true, Some(admission)))
            }
            Ok(env) => {
                drop(inner);
                env.retire(EvictionReason::Shutdown);
                Err(AcquireError::ShutDown)
            }
            Err(e) => {
                // Let a queued invocation try its own launch rather than wait forever.
                pool.offer_launch(&mut inner);
                Err(AcquireError::Launch(e))
            }
        }
    }
}

impl Drop for LaunchPermit {
    fn drop(&mut self) {
        if let Some(pool) = self.0.take() {
            pool.inner().launching -= 1;
        }
    }
}

/// An environment lent to one invocation. Give it back with [`Lease::release`]; dropped
/// unused it returns to the pool, dropped after use (an abandoned invoke) it is retired,
/// since its runtime may still be working.
pub(crate) struct Lease {
    pool: Arc<Pool>,
    env: Option<Arc<Environment>>,
    admission: Option<Admission>,
    pub(crate) cold_start: bool,
    used: bool,
}

impl Lease {
    fn new(
        pool: Arc<Pool>,
        env: Arc<Environment>,
        cold_start: bool,
        admission: Option<Admission>,
    ) -> Lease {
        Lease {
            pool,
            env: Some(env),
            admission,
            cold_start,
            used: false,
        }
    }

    /// The leased environment; marks the lease used.
    pub(crate) fn env(&mut self) -> Arc<Environment> {
        self.used = true;
        self.env
            .clone()
            .expect("lease holds an environment until released")
    }

    /// Returns the environment: to the pool, or retired for `evict`.
    pub(crate) fn release(mut self, evict: Option<EvictionReason>) {
        if let Some(env) = self.env.take() {
            self.pool.give_back(env, evict);
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(env) = self.env.take() {
            let evict = self.used.then_some(EvictionReason::Explicit);
            self.pool.give_back(env, evict);
        }
    }
}

#[cfg(test)]
mod tests {
    //! The pool's decisions without any runtime: environments are launched on a backend
    //! that starts nothing, so only acquire, release, queueing, throttling and eviction
    //! are exercised (invocations are covered end to end by the behaviour suites).

    use std::net::SocketAddr;

    use super::*;
    use crate::backend::{Instance, LaunchSpec, RuntimeView};
    use crate::deploy::{Function, Registry, Runtime};
    use crate::execution::variables::Platform;
    use crate::stats::Timeline;

    /// A backend whose environments run no runtime.
    struct NoRuntimes;

    struct Nothing;

    impl Instance for Nothing {
        fn flush_output(&self) {}
        fn terminate(&self) {}
        fn pid(&self) -> Option<u32> {
            None
        }
        fn max_memory_used_mb(&self) -> Option<u64> {
            None
        }
    }

    #[async_trait::async_trait]
    impl Backend for NoRuntimes {
        fn view(&self, runtime_api: SocketAddr, deployment: &Deployment) -> RuntimeView {
            RuntimeView::on_host(runtime_api, deployment)
        }
        async fn check_runtime(
            &self,
            _: Runtime,
        ) -> Result<Option<crate::deploy::RuntimeVersion>, BackendError> {
            Ok(None)
        }
        async fn launch(&self, _: LaunchSpec) -> Result<Box<dyn Instance>, BackendError> {
            Ok(Box::new(Nothing))
        }
    }

    struct Fixture {
        pool: Arc<Pool>,
        ctx: LaunchContext,
        timeline: Arc<Timeline>,
        registry: Registry,
        _dir: tempfile::TempDir,
    }

    async fn deployment(registry: &Registry, timeout_s: u64) -> Arc<Deployment> {
        let f = Function::new("f", Runtime::ProvidedAl2023)
            .executable("bootstrap", b"#!/bin/sh\n".to_vec())
            .timeout(Duration::from_secs(timeout_s));
        Arc::new(registry.build(f, None, None).await.unwrap())
    }

    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::new("us-east-1".into(), "1".into(), dir.path().to_path_buf());
        let timeline = Timeline::new();
        let pool = Pool::new("f", deployment(&registry, 3).await, timeline.recorder("f"));
        Fixture {
            pool,
            ctx: LaunchContext {
                backend: Arc::new(NoRuntimes),
                platform: Platform {
                    region: "us-east-1".into(),
                    freeze: true,
                    shutdowns: Default::default(),
                    lambda_endpoint: Default::default(),
                    spin_wait: None,
                },
            },
            timeline,
            registry,
            _dir: dir,
        }
    }

    fn id(lease: &mut Lease) -> String {
        lease.env().id().to_string()
    }

    #[tokio::test]
    async fn a_released_environment_is_reused_warm() {
        let f = fixture().await;
        let mut first = f.pool.acquire(2, None, &f.ctx).await.unwrap();
        assert!(first.cold_start);
        let env = id(&mut first);
        first.release(None);
        let mut again = f.pool.acquire(2, None, &f.ctx).await.unwrap();
        assert!(!again.cold_start);
        assert_eq!(id(&mut again), env);
    }

    #[tokio::test]
    async fn launches_stop_at_the_cap_and_the_next_invocation_waits_for_a_free_one() {
        let f = fixture().await;
        let mut a = f.pool.acquire(2, None, &f.ctx).await.unwrap();
        let b = f.pool.acquire(2, None, &f.ctx).await.unwrap();
        let (pool, ctx) = (f.pool.clone(), f.ctx.clone());
        let mut waiting = tokio::spawn(async move { pool.acquire(2, None, &ctx).await });
        assert!(
            tokio::time::timeout(Duration::from_millis(50), &mut waiting)
                .await
                .is_err(),
            "a third environment must not launch over the cap of 2"
        );
        assert_eq!(f.pool.admitted(), 3, "the waiter is admitted (queued)");
        let freed = id(&mut a);
        a.release(None);
        let mut handed = waiting.await.unwrap().unwrap();
        assert!(!handed.cold_start);
        assert_eq!(id(&mut handed), freed, "handed straight to the waiter");
        assert_eq!(f.timeline.stats(Some("f")).environments_launched, 2);
        drop(b);
    }

    #[tokio::test]
    async fn reserved_concurrency_throttles_at_once() {
        let f = fixture().await;
        let held = f.pool.acquire(5, Some(1), &f.ctx).await.unwrap();
        let refused = f.pool.acquire(5, Some(1), &f.ctx).await;
        assert!(matches!(refused, Err(AcquireError::Throttled { limit: 1 })));
        assert_eq!(f.timeline.stats(Some("f")).throttles, 1);
        held.release(None);
        assert_eq!(f.pool.admitted(), 0);
        assert!(f.pool.acquire(5, Some(1), &f.ctx).await.is_ok());
    }

    #[tokio::test]
    async fn a_redeploy_retires_idle_environments_now_and_busy_ones_when_free() {
        let f = fixture().await;
        let idle = f.pool.acquire(5, None, &f.ctx).await.unwrap();
        let mut busy = f.pool.acquire(5, None, &f.ctx).await.unwrap();
        idle.release(None);
        f.pool.redeploy(deployment(&f.registry, 5).await);
        let stale = |t: &Timeline| {
            t.stats(Some("f"))
                .evictions_for(EvictionReason::StaleDeploy)
        };
        assert_eq!(stale(&f.timeline), 1, "the idle one");
        let busy_id = id(&mut busy);
        busy.release(None);
        assert_eq!(stale(&f.timeline), 2, "the busy one, once released");
        let mut fresh = f.pool.acquire(5, None, &f.ctx).await.unwrap();
        assert!(fresh.cold_start);
        assert_ne!(id(&mut fresh), busy_id);
    }

    #[tokio::test]
    async fn a_used_lease_dropped_without_release_retires_its_environment() {
        let f = fixture().await;
        let mut lease = f.pool.acquire(5, None, &f.ctx).await.unwrap();
        let _ = lease.env();
        drop(lease);
        let explicit = f
            .timeline
            .stats(Some("f"))
            .evictions_for(EvictionReason::Explicit);
        assert_eq!(explicit, 1, "its runtime may still be working");
    }

    #[tokio::test]
    async fn evict_all_retires_idle_now_and_busy_when_free() {
        let f = fixture().await;
        let idle = f.pool.acquire(5, None, &f.ctx).await.unwrap();
        let busy = f.pool.acquire(5, None, &f.ctx).await.unwrap();
        idle.release(None);
        assert_eq!(f.pool.evict_all(), 1);
        busy.release(None);
        let explicit = f
            .timeline
            .stats(Some("f"))
            .evictions_for(EvictionReason::Explicit);
        assert_eq!(explicit, 2);
        assert!(f.pool.acquire(5, None, &f.ctx).await.unwrap().cold_start);
    }

    #[tokio::test]
    async fn close_refuses_new_invocations_and_wakes_the_waiting_ones() {
        let f = fixture().await;
        let held = f.pool.acquire(1, None, &f.ctx).await.unwrap();
        let (pool, ctx) = (f.pool.clone(), f.ctx.clone());
        let waiting = tokio::spawn(async move { pool.acquire(1, None, &ctx).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        f.pool.close(EvictionReason::Shutdown, false);
        assert!(matches!(
            waiting.await.unwrap(),
            Err(AcquireError::ShutDown)
        ));
        assert!(matches!(
            f.pool.acquire(1, None, &f.ctx).await,
            Err(AcquireError::ShutDown)
        ));
        drop(held);
    }
}
