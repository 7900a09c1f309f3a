//! Durable executions (Lambda durable functions, API 2025-12-01), the pure core: the
//! execution record and its operations, checkpoint validation, history events
//! ([`Event`]), paging, ARNs, and the [`Clock`] timers are measured on. No I/O here but
//! the clock's waits: the service runs invocations and timers around it, and both front
//! doors read it. The wire shapes are in [`model`]; a snapshot of an execution is an
//! [`ExecutionInfo`]; the handle to one is [`crate::DurableExecution`].
//!
//! A durable function's handler (built on a durable SDK) gets the envelope
//! `{DurableExecutionArn, CheckpointToken, InitialExecutionState}`, checkpoints each
//! operation with `CheckpointDurableExecution`, and returns `{Status: SUCCEEDED |
//! FAILED | PENDING}`; PENDING means "invoke me again when an operation is ready".

pub(crate) mod arn;
mod clock;
mod error;
pub(crate) mod execution;
pub(crate) mod history;
mod info;
pub mod model;
pub(crate) mod paging;
pub(crate) mod store;

pub use clock::Clock;
pub use error::DurableError;
pub use history::Event;
pub use info::ExecutionInfo;
