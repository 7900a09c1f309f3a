//! `DurableConfig`: what makes a function durable (AWS "Configure Lambda durable
//! functions"): executions may run up to `ExecutionTimeout` (1 s to 366 days, required),
//! their history is kept `RetentionPeriodInDays` after they close (1-90, default 14).
//! Lambda enables durability only at `CreateFunction`; an update may change the settings
//! of a durable function but not make a function durable.

use std::time::Duration;

use super::DeployError;

/// Longest `ExecutionTimeout`: 366 days (31,622,400 s).
pub const MAX_EXECUTION_TIMEOUT: Duration = Duration::from_secs(31_622_400);
/// `RetentionPeriodInDays` when none is given.
pub const DEFAULT_RETENTION_DAYS: u32 = 14;

/// A function's durable-execution settings ([`crate::Function::durable`]).
///
/// ```
/// use std::time::Duration;
/// let config = lambda_testkit::DurableConfig::new(Duration::from_secs(3600)).retention_days(7);
/// assert_eq!(config.execution_timeout(), Duration::from_secs(3600));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurableConfig {
    execution_timeout: Duration,
    retention_days: u32,
}

impl DurableConfig {
    /// Executions time out (TIMED_OUT) `execution_timeout` after they start, on the
    /// emulator's clock; whole seconds, 1 s to 366 days (checked at deploy).
    pub fn new(execution_timeout: Duration) -> Self {
        DurableConfig {
            execution_timeout,
            retention_days: DEFAULT_RETENTION_DAYS,
        }
    }

    /// `RetentionPeriodInDays` (1-90; default 14): an execution that has ended is kept
    /// this long, measured on the emulator's clock from its end, then it is gone
    /// (`GetDurableExecution` answers 404, it is not listed, its name is free again).
    /// An execution keeps the retention its function version had when it started.
    pub fn retention_days(mut self, days: u32) -> Self {
        self.retention_days = days;
        self
    }

    /// `ExecutionTimeout`.
    pub fn execution_timeout(&self) -> Duration {
        self.execution_timeout
    }

    /// `RetentionPeriodInDays`.
    pub fn retention_period_days(&self) -> u32 {
        self.retention_days
    }

    /// The model's ranges, in Lambda's words.
    pub(crate) fn validate(&self) -> Result<(), DeployError> {
        let secs = self.execution_timeout.as_secs();
        if secs < 1 || self.execution_timeout > MAX_EXECUTION_TIMEOUT {
            return Err(DeployError::InvalidDurableConfig(format!(
                "'ExecutionTimeout' value {secs} failed to satisfy constraint: Member must have value between 1 and {}",
                MAX_EXECUTION_TIMEOUT.as_secs()
            )));
        }
        if !(1..=90).contains(&self.retention_days) {
            return Err(DeployError::InvalidDurableConfig(format!(
                "'RetentionPeriodInDays' value {} failed to satisfy constraint: Member must have value between 1 and 90",
                self.retention_days
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_the_models() {
        assert!(
            DurableConfig::new(Duration::from_secs(1))
                .validate()
                .is_ok()
        );
        assert!(DurableConfig::new(MAX_EXECUTION_TIMEOUT).validate().is_ok());
        assert!(DurableConfig::new(Duration::ZERO).validate().is_err());
        assert!(
            DurableConfig::new(MAX_EXECUTION_TIMEOUT + Duration::from_secs(1))
                .validate()
                .is_err()
        );
        assert!(
            DurableConfig::new(Duration::from_secs(60))
                .retention_days(91)
                .validate()
                .is_err()
        );
        assert_eq!(
            DurableConfig::new(Duration::from_secs(60)).retention_period_days(),
            14
        );
    }
}
