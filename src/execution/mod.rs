//! Execution: everything about running a deployment's code, identical for every backend.
//!
//! ```text
//! invocation   one invoke end to end: acquire -> run -> release, fail-over, Lambda's texts
//! pool         per function: a free environment -> else launch (<= cap) -> else queue;
//!              reserved concurrency; eviction reasons
//! environment  one execution environment: launch on a backend, init limit, deadline, log
//! state        the runtime-facing side: the lifecycle under one lock + its channels
//! lifecycle    the PURE state machine of one environment (no I/O), with its unit tests
//! runtime_api  the HTTP adapter: Runtime API 2018-06-01, Extensions API 2020-01-01 and the
//!              Telemetry / Logs API subscriptions, on the environment's own listener
//! telemetry    Telemetry API 2022-07-01 / Logs API 2020-08-15: records, buffering, delivery
//! spin         an opt-in bounded busy wait on the invocation's answer
//! variables    the reserved environment variables a runtime sees
//! log          START / END / REPORT lines
//! ```
//!
//! A backend ([`crate::backend::Backend`]) only starts and stops runtimes; every
//! decision about what an environment may do next is made by [`lifecycle`].

mod environment;
mod invocation;
mod lifecycle;
mod log;
mod pool;
mod runtime_api;
mod spin;
mod state;
mod telemetry;
mod variables;

pub(crate) use invocation::Target;
pub(crate) use pool::{LaunchContext, Pool};
pub(crate) use variables::Platform;
