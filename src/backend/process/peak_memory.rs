//! A runtime process's peak memory for the `REPORT` line's `Max Memory Used`: `VmHWM` in
//! `/proc/<pid>/status` (the resident-set high-water mark, in kB; Lambda reports the
//! environment's peak in MB).
//!
//! It is read once per invocation, on the `/response` path before the caller is answered,
//! so the file is opened once per process and re-read with one `pread` at offset 0:
//! opening, `statx`, `lseek` and the `read`s to end of file that `read_to_string` makes
//! were 8 of the emulator's ~20 syscalls per warm invoke (`strace -c -f` on
//! `benches/pool.rs`'s load). A kept descriptor also stays bound to that process: once it
//! is reaped the read fails instead of reading a reused pid's file.

use std::fs::File;
use std::mem::MaybeUninit;

/// The open `status` file of one process.
pub(super) struct PeakMemory(File);

impl PeakMemory {
    /// Opens `/proc/<pid>/status`; `None` when the process is gone or `/proc` is missing.
    pub(super) fn open(pid: u32) -> Option<PeakMemory> {
        File::open(format!("/proc/{pid}/status"))
            .ok()
            .map(PeakMemory)
    }

    /// The peak resident set in MB (rounded up); `None` once the process is gone.
    pub(super) fn read_mb(&self) -> Option<u64> {
        // `status` is ~1.5 KB; `VmHWM` is in its first third. Uninitialised: zeroing the
        // buffer was a 4 KiB memset per invoke.
        let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
        let (status, _) = rustix::io::pread(&self.0, &mut buf, 0).ok()?;
        vm_hwm_mb(status)
    }
}

/// `VmHWM:   12345 kB` in a `status` file's text (never its first line), in MB rounded up.
fn vm_hwm_mb(status: &[u8]) -> Option<u64> {
    let at = memchr::memmem::find(status, b"\nVmHWM:")? + b"\nVmHWM:".len();
    let rest = &status[at..];
    let line = &rest[..memchr::memchr(b'\n', rest).unwrap_or(rest.len())];
    let kb: u64 = std::str::from_utf8(line)
        .ok()?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some(kb.div_ceil(1024))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_hwm_is_read_in_mb_rounded_up() {
        let status =
            b"Name:\tbootstrap\nVmPeak:\t   10000 kB\nVmHWM:\t    3073 kB\nVmRSS:\t 3000 kB\n";
        assert_eq!(vm_hwm_mb(status), Some(4));
        assert_eq!(vm_hwm_mb(b"Name:\tx\nVmHWM:\t 2048 kB"), Some(2));
        assert_eq!(vm_hwm_mb(b"Name:\tx\nVmRSS:\t 2048 kB\n"), None);
        assert_eq!(vm_hwm_mb(b"Name:\tx\nVmHWM:\t lots\n"), None);
    }

    #[test]
    fn this_process_has_a_peak_and_a_reaped_one_has_none() {
        let own = PeakMemory::open(std::process::id()).expect("own status");
        assert!(own.read_mb().unwrap() >= 1);
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let peak = PeakMemory::open(child.id()).expect("child status");
        child.wait().unwrap();
        assert_eq!(peak.read_mb(), None, "a reaped process has no status");
    }
}
