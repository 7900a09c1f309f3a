//! The platform's log lines around each invocation, in CloudWatch's format.
//! Source: AWS "Using the Lambda monitoring console / log format" (START, END, REPORT;
//! TAB separators; `Init Duration` last and only on cold starts).

use std::io::Write;
use std::time::Duration;

/// `START RequestId: <id> Version: <version>` (`$LATEST` or a number).
pub(super) fn start(buf: &mut Vec<u8>, request_id: &str, version: &str) {
    let _ = writeln!(buf, "START RequestId: {request_id} Version: {version}");
}

/// The closing lines of one invocation.
pub(crate) struct ReportLine<'a> {
    pub(crate) request_id: &'a str,
    pub(crate) duration: Duration,
    pub(crate) memory_mb: u32,
    pub(crate) max_memory_used_mb: Option<u64>,
    pub(crate) init_duration: Option<Duration>,
    /// The function timeout, when the invocation hit it.
    pub(crate) timed_out: Option<Duration>,
}

impl ReportLine<'_> {
    /// Billed in 1 ms steps; since 2025 the init phase is billed too.
    pub(crate) fn billed_ms(&self) -> u64 {
        let ns = (self.duration + self.init_duration.unwrap_or_default()).as_nanos();
        (ns.div_ceil(1_000_000) as u64).max(1)
    }

    /// Peak memory in MB, at most the memory size.
    pub(crate) fn used_mb(&self) -> u64 {
        self.max_memory_used_mb
            .unwrap_or(0)
            .min(self.memory_mb as u64)
    }

    /// Appends the timeout notice (if any), `END` and `REPORT`.
    pub(crate) fn write_end(&self, buf: &mut Vec<u8>) {
        let id = self.request_id;
        if !buf.is_empty() && !buf.ends_with(b"\n") {
            buf.push(b'\n');
        }
        if let Some(timeout) = self.timed_out {
            let now = time::OffsetDateTime::now_utc();
            let _ = writeln!(
                buf,
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z {id} Task timed out after {:.2} seconds",
                now.year(),
                u8::from(now.month()),
                now.day(),
                now.hour(),
                now.minute(),
                now.second(),
                now.millisecond(),
                timeout.as_secs_f64()
            );
        }
        let _ = writeln!(buf, "END RequestId: {id}");
        let ms = Millis(self.duration);
        let billed = self.billed_ms();
        let used = self.used_mb();
        let _ = write!(
            buf,
            "REPORT RequestId: {id}\tDuration: {ms} ms\tBilled Duration: {billed} ms\tMemory Size: {} MB\tMax Memory Used: {used} MB\t",
            self.memory_mb
        );
        if let Some(init) = self.init_duration {
            let _ = write!(buf, "Init Duration: {} ms\t", Millis(init));
        }
        if self.timed_out.is_some() {
            let _ = write!(buf, "Status: timeout");
        }
        buf.push(b'\n');
    }
}

/// A duration in milliseconds with two decimals (`1.23`), rounded half up: integer
/// arithmetic, since `{:.2}` of an `f64` was ~40% of this line's formatting (callgrind
/// over `benches/pool.rs`).
struct Millis(Duration);

impl std::fmt::Display for Millis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hundredths = (self.0.as_nanos() + 5_000) / 10_000;
        write!(f, "{}.{:02}", hundredths / 100, hundredths % 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cold_report_ends_with_init_duration_and_tabs() {
        let mut buf = Vec::new();
        start(&mut buf, "r1", "$LATEST");
        buf.extend_from_slice(b"hello");
        ReportLine {
            request_id: "r1",
            duration: Duration::from_micros(15_740),
            memory_mb: 128,
            max_memory_used_mb: Some(56),
            init_duration: Some(Duration::from_micros(130_490)),
            timed_out: None,
        }
        .write_end(&mut buf);
        let text = String::from_utf8(buf).unwrap();
        assert_eq!(
            text,
            "START RequestId: r1 Version: $LATEST\nhello\nEND RequestId: r1\nREPORT RequestId: r1\tDuration: 15.74 ms\tBilled Duration: 147 ms\tMemory Size: 128 MB\tMax Memory Used: 56 MB\tInit Duration: 130.49 ms\t\n"
        );
    }

    #[test]
    fn timed_out_invocation_logs_the_task_timed_out_line() {
        let mut buf = Vec::new();
        ReportLine {
            request_id: "r2",
            duration: Duration::from_secs(3),
            memory_mb: 128,
            max_memory_used_mb: None,
            init_duration: None,
            timed_out: Some(Duration::from_secs(3)),
        }
        .write_end(&mut buf);
        let text = String::from_utf8(buf).unwrap();
        assert!(
            text.contains(" r2 Task timed out after 3.00 seconds\nEND RequestId: r2\n"),
            "{text}"
        );
        assert!(text.trim_end().ends_with("Status: timeout"), "{text}");
    }

    #[test]
    fn milliseconds_have_two_decimals_rounded_half_up_and_billing_rounds_up() {
        let ms = |ns: u64| Millis(Duration::from_nanos(ns)).to_string();
        assert_eq!(ms(0), "0.00");
        assert_eq!(ms(4_999), "0.00");
        assert_eq!(ms(5_000), "0.01");
        assert_eq!(ms(123_456), "0.12");
        assert_eq!(ms(999_995_000), "1000.00");
        assert_eq!(ms(3_000_000_000), "3000.00");
        let billed = |duration: Duration, init: Option<Duration>| {
            ReportLine {
                request_id: "r",
                duration,
                memory_mb: 128,
                max_memory_used_mb: None,
                init_duration: init,
                timed_out: None,
            }
            .billed_ms()
        };
        assert_eq!(billed(Duration::ZERO, None), 1);
        assert_eq!(billed(Duration::from_micros(1_000), None), 1);
        assert_eq!(billed(Duration::from_micros(1_001), None), 2);
        assert_eq!(
            billed(Duration::from_micros(500), Some(Duration::from_micros(600))),
            2
        );
    }
}
