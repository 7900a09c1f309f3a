//! Request ids as the emulator's history keeps them (telemetry records, timeline events).
//!
//! Every invoke leaves three telemetry records and three timeline events, kept until the
//! emulator drops (the last 10,000 and 100,000). As `String`s their ids were ~30,000 small
//! allocations per full feed: freed together when the emulator dropped, they sat in
//! glibc's fast bins until the next large allocation consolidated them all, which charged
//! ~0.5-1 ms to whatever ran next — the first cold start after a warm phase (`perf
//! record`: `malloc_consolidate`; over six interleaved runs of a 4,000-invoke emulator
//! followed by a cold start, p50 2.96 ms before, 2.37 ms with inline ids in the feed).

/// A request id as the history keeps it: inline when it has 36 bytes, as the UUIDs the
/// emulator makes do, so that the records and events of an invoke hold no small
/// allocation of their own.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum RequestId {
    Inline([u8; 36]),
    Other(Box<str>),
}

impl RequestId {
    pub(crate) fn as_str(&self) -> &str {
        match self {
            // Valid UTF-8: the bytes of a whole `&str` (see `From`).
            RequestId::Inline(bytes) => std::str::from_utf8(bytes).unwrap_or_default(),
            RequestId::Other(id) => id,
        }
    }
}

impl From<&str> for RequestId {
    fn from(id: &str) -> RequestId {
        match <[u8; 36]>::try_from(id.as_bytes()) {
            Ok(bytes) => RequestId::Inline(bytes),
            Err(_) => RequestId::Other(id.into()),
        }
    }
}

impl std::fmt::Debug for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_come_back_as_given_inline_or_not() {
        let uuid = "0b6e4c1e-2d3f-4a5b-8c9d-0e1f2a3b4c5d";
        assert!(matches!(RequestId::from(uuid), RequestId::Inline(_)));
        // 36 bytes of multi-byte characters are kept inline too, and stay whole.
        let wide = "é".repeat(18);
        for id in [uuid, "req-1", "", wide.as_str(), &"x".repeat(37)] {
            assert_eq!(RequestId::from(id).as_str(), id);
            assert_eq!(format!("{:?}", RequestId::from(id)), format!("{id:?}"));
        }
    }
}
