//! Output fences: knowing that a container's output has caught up with a point in time.
//!
//! A container's stdout reaches us through dockerd's attach stream, asynchronously and
//! later than the runtime's Runtime API calls reach the listener. To attribute output
//! written before `/response` to that invocation, the container runs a tiny shell loop
//! (see [`wrap_entrypoint`]) that echoes each line it reads on stdin to the same stdout
//! pipe the runtime writes to. We write a marker line to stdin; when the marker comes back
//! on the attach stream, everything the runtime wrote before we sent it has arrived too
//! (one pipe, one stream, in order). The marker is cut out of the output here.

/// Run as `sh -c SCRIPT sh <bootstrap> <entrypoint...> <handler>`.
///
/// - `<bootstrap>` (OS-only runtimes, else empty) is linked at `/var/runtime/bootstrap`,
///   where AWS's `provided` images run it from;
/// - stderr is merged into stdout (`2>&1`) so that both keep the order they were written
///   in, as in a Lambda log stream, and a fence orders both;
/// - stdin moves to fd 3 for the fence loop, the runtime gets `/dev/null` (it must never
///   read our markers); fd 3 is closed before the runtime starts;
/// - without extensions, `exec` keeps the runtime as the container's main process, so
///   its exit status is the container's;
/// - with `_LTK_EXTENSIONS` set, every executable file in `/opt/extensions` starts first
///   (in `/opt`, without the variables in `_LTK_WITHHELD`, its output on stderr: the
///   `extension` stream), each in a subshell that writes an exit marker
///   `\x1fltk-fence:<_LTK_TOKEN>:x<name>=<status>\x1f` when it ends; the runtime starts
///   when the line `ltk-start` arrives on stdin (every extension has registered), fences
///   meanwhile echoed as usual. The runtime then runs as a child: SIGTERM to the container
///   reaches it, and its exit is the marker `…:r<status>…` while the extensions live on
///   for their `SHUTDOWN`, as in Lambda.
const SCRIPT: &str = r#"b=$1; shift
if [ -n "$b" ]; then [ -d /var/runtime ] || mkdir -p /var/runtime; ln -sf "$b" /var/runtime/bootstrap; fi
exec 3<&0 </dev/null
T=$_LTK_TOKEN
if [ -n "$_LTK_EXTENSIONS" ]; then
for e in /opt/extensions/*; do
[ -f "$e" ] && [ -x "$e" ] || continue
{ (cd /opt; unset $_LTK_WITHHELD _LTK_EXTENSIONS _LTK_WITHHELD _LTK_TOKEN; exec "$e" 1>&2); printf '\037ltk-fence:%s:x%s=%s\037\n' "$T" "${e##*/}" "$?"; } 3<&- &
done
while IFS= read -r l <&3; do [ "$l" = ltk-start ] && break; printf '\037%s\037\n' "$l"; done
unset _LTK_EXTENSIONS _LTK_WITHHELD _LTK_TOKEN
{ while IFS= read -r l <&3; do printf '\037%s\037\n' "$l"; done; } &
exec 3<&-
"$@" 2>&1 &
p=$!
trap 'kill -TERM $p 2>/dev/null' TERM
while :; do wait $p; s=$?; kill -0 $p 2>/dev/null || break; done
trap - TERM
printf '\037ltk-fence:%s:r%s\037\n' "$T" "$s"
while :; do sleep 3600; done
fi
unset _LTK_TOKEN
{ while IFS= read -r l <&3; do printf '\037%s\037\n' "$l"; done; } &
exec 3<&-
exec "$@" 2>&1"#;

/// The line on stdin that starts the runtime once every extension has registered.
pub(super) const START: &[u8] = b"ltk-start\n";

/// The container entrypoint that runs `entrypoint` (the image's) behind the fence loop,
/// linking `bootstrap` first when given.
pub(super) fn wrap_entrypoint(entrypoint: &[String], bootstrap: Option<&str>) -> Vec<String> {
    let mut wrapped = vec![
        "/bin/sh".to_string(),
        "-c".to_string(),
        SCRIPT.to_string(),
        "sh".to_string(),
        bootstrap.unwrap_or("").to_string(),
    ];
    wrapped.extend(entrypoint.iter().cloned());
    wrapped
}

const SEPARATOR: u8 = 0x1f;

/// What to write to the container's stdin for fence `seq`.
pub(super) fn request(token: &str, seq: u64) -> Vec<u8> {
    format!("ltk-fence:{token}:{seq}\n").into_bytes()
}

/// Removes fence markers from a byte stream and reports the fences seen, and the
/// extensions' exit markers.
#[derive(Debug)]
pub(super) struct FenceFilter {
    /// `\x1fltk-fence:<token>:`
    prefix: Vec<u8>,
    /// Bytes held back: a marker (or what may be the start of one) split across chunks.
    carry: Vec<u8>,
    /// Extensions that exited, with their exit status, since the last [`Self::exits`].
    exits: Vec<(String, i64)>,
    /// The runtime's exit status, once its marker was seen (with extensions only).
    runtime_exit: Option<i64>,
}

impl FenceFilter {
    pub(super) fn new(token: &str) -> FenceFilter {
        let mut prefix = vec![SEPARATOR];
        prefix.extend_from_slice(format!("ltk-fence:{token}:").as_bytes());
        FenceFilter {
            prefix,
            carry: Vec::new(),
            exits: Vec::new(),
            runtime_exit: None,
        }
    }

    /// Appends `chunk` minus markers to `out`; returns the highest fence seen in it.
    pub(super) fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Option<u64> {
        let owned;
        let data: &[u8] = if self.carry.is_empty() {
            chunk
        } else {
            let mut joined = std::mem::take(&mut self.carry);
            joined.extend_from_slice(chunk);
            owned = joined;
            &owned
        };
        let mut seen = None;
        let mut pos = 0;
        while pos < data.len() {
            let Some(start) = find(&data[pos..], &self.prefix).map(|i| pos + i) else {
                // Hold back a tail that could be the beginning of a marker.
                let rest = &data[pos..];
                let keep = partial_prefix_len(rest, &self.prefix);
                out.extend_from_slice(&rest[..rest.len() - keep]);
                self.carry.extend_from_slice(&rest[rest.len() - keep..]);
                return seen;
            };
            out.extend_from_slice(&data[pos..start]);
            let body = start + self.prefix.len();
            match data[body..].iter().position(|&b| b == SEPARATOR) {
                Some(len) if data.get(body + len + 1).is_some() => {
                    let end = body + len + 1;
                    let next = if data[end] == b'\n' { end + 1 } else { end };
                    let digits = &data[body..body + len];
                    let text = std::str::from_utf8(digits).ok();
                    let exit = text
                        .and_then(|t| t.strip_prefix('x')?.rsplit_once('='))
                        .and_then(|(name, code)| Some((name.to_string(), code.parse().ok()?)));
                    let runtime = text.and_then(|t| t.strip_prefix('r')?.parse::<i64>().ok());
                    match (text.and_then(|s| s.parse::<u64>().ok()), exit, runtime) {
                        (Some(seq), _, _) => seen = seen.max(Some(seq)),
                        (None, Some(exit), _) => self.exits.push(exit),
                        (None, None, Some(status)) => self.runtime_exit = Some(status),
                        // Not ours after all: pass it through.
                        (None, None, None) => out.extend_from_slice(&data[start..next]),
                    }
                    pos = next;
                }
                _ if data.len() - body > 300 => {
                    // Far too long for a sequence number or an exit: not a marker.
                    out.extend_from_slice(&data[start..body]);
                    pos = body;
                }
                _ => {
                    self.carry.extend_from_slice(&data[start..]);
                    return seen;
                }
            }
        }
        seen
    }

    /// The extensions that exited (name, status) since the last call.
    pub(super) fn exits(&mut self) -> Vec<(String, i64)> {
        std::mem::take(&mut self.exits)
    }

    /// The runtime's exit status, once (with extensions the container outlives it).
    pub(super) fn runtime_exit(&mut self) -> Option<i64> {
        self.runtime_exit.take()
    }

    /// End of stream: releases anything held back.
    pub(super) fn finish(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.carry);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if haystack.len() < needle.len() {
        return None;
    }
    let first = needle[0];
    let mut from = 0;
    while let Some(i) = haystack[from..].iter().position(|&b| b == first) {
        let at = from + i;
        if haystack.len() - at < needle.len() {
            return None;
        }
        if &haystack[at..at + needle.len()] == needle {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// Length of the longest suffix of `data` that is a proper prefix of `prefix`.
fn partial_prefix_len(data: &[u8], prefix: &[u8]) -> usize {
    let max = data.len().min(prefix.len() - 1);
    (1..=max)
        .rev()
        .find(|&k| data[data.len() - k..] == prefix[..k])
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marker(seq: u64) -> Vec<u8> {
        let mut m = vec![SEPARATOR];
        m.extend_from_slice(&request("tok", seq)[..request("tok", seq).len() - 1]);
        m.extend_from_slice(&[SEPARATOR, b'\n']);
        m
    }

    #[test]
    fn markers_are_cut_out_and_reported() {
        let mut f = FenceFilter::new("tok");
        let mut out = Vec::new();
        let mut input = b"line 1\npartial".to_vec();
        input.extend(marker(7));
        input.extend_from_slice(b" rest\n");
        assert_eq!(f.feed(&input, &mut out), Some(7));
        assert_eq!(out, b"line 1\npartial rest\n");
    }

    #[test]
    fn a_marker_split_at_every_byte_is_still_found() {
        let mut input = b"before\n".to_vec();
        input.extend(marker(12));
        input.extend_from_slice(b"after\n");
        for split in 0..input.len() {
            let mut f = FenceFilter::new("tok");
            let mut out = Vec::new();
            let a = f.feed(&input[..split], &mut out);
            let b = f.feed(&input[split..], &mut out);
            f.finish(&mut out);
            assert_eq!(a.max(b), Some(12), "split at {split}");
            assert_eq!(out, b"before\nafter\n", "split at {split}");
        }
    }

    #[test]
    fn extension_exit_markers_are_cut_out_and_reported() {
        let mut f = FenceFilter::new("tok");
        let mut out = Vec::new();
        let text = b"a\n\x1fltk-fence:tok:xext_crash=7\x1f\nb\n";
        assert_eq!(f.feed(text, &mut out), None);
        assert_eq!(out, b"a\nb\n");
        assert_eq!(f.exits(), vec![("ext_crash".to_string(), 7)]);
        assert!(f.exits().is_empty());
        f.feed(b"\x1fltk-fence:tok:r3\x1f\n", &mut out);
        assert_eq!(f.runtime_exit(), Some(3));
        assert_eq!(f.runtime_exit(), None);
    }

    #[test]
    fn look_alikes_pass_through() {
        let mut f = FenceFilter::new("tok");
        let mut out = Vec::new();
        let text = b"\x1fltk-fence:other:1\x1f\n\x1fltk-fence:tok:xyz\x1f\nend\x1f";
        assert_eq!(f.feed(text, &mut out), None);
        f.finish(&mut out);
        assert_eq!(out, text);
    }

    #[test]
    fn entrypoint_is_wrapped_not_replaced() {
        let wrapped = wrap_entrypoint(&["/lambda-entrypoint.sh".to_string()], None);
        assert_eq!(wrapped[..2], ["/bin/sh", "-c"]);
        assert_eq!(wrapped[3..], ["sh", "", "/lambda-entrypoint.sh"]);
    }
}
