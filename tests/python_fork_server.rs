//! The Python fork server (process backend) is invisible to the handler: a forked runtime
//! sees what a fresh `python -m awslambdaric <handler>` sees — the environment's variables
//! only, in the same order, `sys.path` as awslambdaric and Lambda set it, no module already
//! imported that a fresh interpreter would not have, the task root as working directory, its
//! own process group, the runtime's Python version — and each environment is a process of
//! its own. Each check runs the same function on an emulator with the fork server and on one
//! without (`EmulatorBuilder::python_fork_server(false)`), and compares.

mod support;

use std::time::{Duration, Instant};

use lambda_testkit::{Emulator, Function, FunctionHandle};
use serde_json::Value;

/// Reports, from the handler module's import and from the handler, what the runtime gives
/// it, with this environment's own paths and per-environment values masked.
const PROBE: &str = r#"
import os, sys

TASK = os.environ["LAMBDA_TASK_ROOT"]
OPT = os.environ["PATH"].split(":")[0][: -len("/bin")]
PER_ENVIRONMENT = {"AWS_LAMBDA_RUNTIME_API", "AWS_LAMBDA_LOG_STREAM_NAME", "_X_AMZN_TRACE_ID"}


def norm(value):
    return value.replace(TASK, "<task>").replace(OPT, "<opt>") if isinstance(value, str) else value


def open_fds():
    listing = os.open("/dev/null", os.O_RDONLY)  # the number the listing itself gets
    os.close(listing)
    return sorted(int(fd) for fd in os.listdir("/proc/self/fd") if int(fd) != listing)


def snapshot():
    main = sys.modules["__main__"]
    return {
        "modules": sorted(sys.modules),
        "module_files": sorted([k, norm(getattr(m, "__file__", None))] for k, m in list(sys.modules.items())),
        "environ": [[k, "<masked>" if k in PER_ENVIRONMENT else norm(v)] for k, v in os.environ.items()],
        "path": [norm(p) for p in sys.path],
        "cwd": norm(os.getcwd()),
        "argv": [norm(a) for a in sys.argv],
        "orig_argv": [norm(a) for a in getattr(sys, "orig_argv", [])],
        "main": sorted(vars(main)),
        "main_file": norm(getattr(main, "__file__", None)),
        "fds": open_fds(),
        "stdio": [os.readlink("/proc/self/fd/%d" % fd).split(":")[0] for fd in (0, 1, 2)],
        "flags": str(sys.flags),
        "executable": sys.executable,
        "version": "%d.%d" % sys.version_info[:2],
        "threads": __import__("threading").active_count(),
    }


AT_IMPORT = snapshot()
import helper  # a module of the function's own


def handler(event, context):
    report = {
        "at_import": AT_IMPORT,
        "at_invoke": snapshot(),
        "pid": os.getpid(),
        "pgid": os.getpgid(0),
        "ppid": os.getppid(),
        "json_leaked": hasattr(sys.modules["json"], "leaked"),
        "helper": helper.NAME,
    }
    if event.get("leak"):
        # What a later environment must not see.
        os.environ["LEAKED"] = "1"
        sys.modules["json"].leaked = True
        import email.mime.text  # noqa: F401  (not imported by a fresh runtime)
    return report
"#;

fn function(minor: u32) -> Function {
    named("probe", minor)
}

fn named(name: &str, minor: u32) -> Function {
    Function::new(name, support::python_runtime(minor))
        .handler("app.handler")
        .source("app.py", PROBE)
        .source("helper.py", "NAME = 'helper'\n")
        .env("USER_VARIABLE", "from the function")
}

async fn emulator(fork: bool) -> Result<Emulator, String> {
    support::builder()
        .python_fork_server(fork)
        .start()
        .await
        .map_err(|e| e.to_string())
}

async fn probe(f: &FunctionHandle, leak: bool) -> Value {
    let out = f
        .invoke(if leak { r#"{"leak": true}"# } else { "{}" })
        .await
        .unwrap();
    assert!(out.function_error.is_none(), "{}", out.log);
    out.json().unwrap()
}

/// Cold-starts `f` until a fork server's child answers (the server starts at an
/// interpreter's second cold start, in the background); returns that report.
async fn forked_probe(f: &FunctionHandle, leak: bool) -> Value {
    let me = std::process::id() as u64;
    for _ in 0..500 {
        f.evict_all();
        let report = probe(f, leak).await;
        if report["ppid"] != me {
            return report;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("no runtime was forked: the fork server did not start");
}

/// What both runs must agree on: everything but the process ids and the descriptors
/// beyond stdio (a spawn inherits whatever the test harness left open without
/// close-on-exec, e.g. cargo's jobserver pipe; a fork server's child closes everything it
/// did not get from a spawn: see [`assert_only_stdio`]).
fn visible(report: &Value) -> Value {
    let mut report = report.clone();
    let object = report.as_object_mut().unwrap();
    for key in ["pid", "pgid", "ppid"] {
        object.remove(key);
    }
    for key in ["at_import", "at_invoke"] {
        object[key].as_object_mut().unwrap().remove("fds");
    }
    report
}

/// A forked runtime has stdin, stdout and stderr open when it imports the handler, and
/// nothing else: no descriptor of the fork server (its control socket, its children's
/// pidfds) reaches it. (By the invocation, awslambdaric has its own connections open.)
fn assert_only_stdio(report: &Value, what: &str) {
    assert_eq!(
        report["at_import"]["fds"],
        serde_json::json!([0, 1, 2]),
        "{what}"
    );
}

/// Field by field, so a failure names what differs.
fn assert_same(a: &Value, b: &Value, what: &str) {
    let (a, b) = (visible(a), visible(b));
    for key in ["at_import", "at_invoke"] {
        for field in a[key].as_object().unwrap().keys() {
            assert_eq!(
                a[key][field], b[key][field],
                "{what}: {key}.{field} differs between a forked and a spawned runtime"
            );
        }
    }
    assert_eq!(a, b, "{what}");
}

#[tokio::test]
async fn a_forked_runtime_sees_what_a_fresh_interpreter_sees_on_every_python() -> anyhow::Result<()>
{
    let me = std::process::id() as u64;
    let mut ran = 0;
    for minor in support::PYTHON_MINORS {
        if let Err(why) = support::python_for(minor) {
            support::skip(&format!("python3.{minor}: {why}"));
            continue;
        }
        let forked = emulator(true).await.map_err(anyhow::Error::msg)?;
        let spawned = emulator(false).await.map_err(anyhow::Error::msg)?;
        let f = forked.deploy(function(minor)).await?;
        let s = spawned.deploy(function(minor)).await?;

        let first = forked_probe(&f, true).await;
        let plain = probe(&s, false).await;
        assert_eq!(
            plain["ppid"], me,
            "python3.{minor}: a plain spawn is our child"
        );
        assert_ne!(
            first["ppid"], me,
            "python3.{minor}: the runtime was forked by the fork server, not spawned"
        );
        assert_eq!(first["version"], plain["version"]);
        assert_eq!(
            first["at_import"]["version"],
            format!("3.{minor}"),
            "python3.{minor} runs its own interpreter"
        );
        for (what, report) in [("forked", &first), ("spawned", &plain)] {
            assert_eq!(report["pgid"], report["pid"], "{what}: leads its own group");
            assert_eq!(report["at_import"]["cwd"], "<task>", "{what}");
        }
        assert_only_stdio(&first, &format!("python3.{minor}"));
        assert_same(&first, &plain, &format!("python3.{minor}"));

        // The next environment is another fork: nothing the first one did reaches it.
        f.evict_all();
        let second = probe(&f, false).await;
        assert_ne!(second["pid"], first["pid"], "a process per environment");
        assert_ne!(second["ppid"], me, "forked too");
        assert_eq!(second["json_leaked"], false);
        assert_only_stdio(&second, &format!("python3.{minor}: second fork"));
        assert_same(&second, &plain, &format!("python3.{minor}: second fork"));
        ran += 1;
    }
    assert!(
        ran > 0,
        "no Python interpreter with awslambdaric (scripts/setup)"
    );
    Ok(())
}

/// A module of the function named like one awslambdaric imports would shadow it in a
/// fresh interpreter; a startup variable set differently (here `PYTHONHASHSEED`) changes
/// the interpreter itself; a library directory in the new `LD_LIBRARY_PATH` is only seen
/// by the dynamic loader at exec. Each of these starts a fresh interpreter, and the
/// handler sees the same as with the fork server off.
#[tokio::test]
async fn environments_a_fork_cannot_stand_in_for_start_a_fresh_interpreter() -> anyhow::Result<()> {
    let me = std::process::id() as u64;
    require!(support::python_for(11));
    // (case, function, whether the fork server's child execs it; else we spawn it)
    let cases: Vec<(&str, Function, bool)> = vec![
        (
            "a module shadowing a preloaded one",
            named("shadow", 11).source(
                "keyword.py",
                "kwlist = softkwlist = []\ndef iskeyword(s):\n    return False\nissoftkeyword = iskeyword\n",
            ),
            true,
        ),
        (
            "a startup variable",
            named("hashseed", 11).env("PYTHONHASHSEED", "0"),
            false,
        ),
        (
            "a library in a new LD_LIBRARY_PATH directory",
            named("library", 11).source("lib/libexample.so", "not really a library"),
            true,
        ),
    ];
    let forked = emulator(true).await.map_err(anyhow::Error::msg)?;
    let spawned = emulator(false).await.map_err(anyhow::Error::msg)?;
    let warm = forked.deploy(function(11)).await?;
    forked_probe(&warm, false).await; // the server is up from here on
    for (case, function, execs) in cases {
        let f = forked.deploy(function.clone()).await?;
        let s = spawned.deploy(function).await?;
        let via_server = probe(&f, false).await;
        let plain = probe(&s, false).await;
        assert_same(&via_server, &plain, case);
        assert_eq!(plain["ppid"], me);
        assert_eq!(via_server["ppid"] != me, execs, "{case}: who started it");
        assert_eq!(via_server["pgid"], via_server["pid"], "{case}");
        // The fork server's child exec'd the plain command, or we spawned it.
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", via_server["pid"]))?;
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        assert!(
            cmdline.contains("-m awslambdaric app.handler"),
            "{case}: a fresh interpreter runs ({cmdline})"
        );
    }
    // And the same function without them forks.
    assert_ne!(probe(&warm, false).await["ppid"], me);
    Ok(())
}

/// The live fork servers this test process started: processes whose command line carries
/// the server's marker and whose parent is this process (the server's children show the
/// same command line until they exec, but their parent is the server).
fn fork_servers() -> Vec<u32> {
    let me = std::process::id().to_string();
    let parent = |pid: &str| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let (_, rest) = stat.rsplit_once(") ")?;
        rest.split(' ').nth(1).map(str::to_string)
    };
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|pid| pid.bytes().all(|b| b.is_ascii_digit()))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains("lambda-testkit-fork-server"))
        })
        .filter(|pid| parent(pid).as_deref() == Some(me.as_str()))
        .filter_map(|pid| pid.parse().ok())
        .filter(|pid| !support::process_gone(*pid))
        .collect()
}

/// Cold-starts `f` for up to 10 s (the server's start limit) until a runtime is forked by a
/// fork server other than `old`, which was killed `when`; returns that server. Found
/// through the runtimes it forks, not by listing servers: `cargo test` runs this file's
/// tests in one process, and the other tests' emulators have servers of their own.
async fn replacement_of(f: &FunctionHandle, old: u32, when: &str) -> u32 {
    let me = std::process::id() as u64;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        f.evict_all();
        let ppid = probe(f, false).await["ppid"].as_u64().unwrap();
        if ppid != me && ppid != u64::from(old) {
            let new = ppid as u32;
            assert!(fork_servers().contains(&new), "{new} is a fork server");
            return new;
        }
        assert!(
            Instant::now() < deadline,
            "no fork server replaced the one killed {when} ({old}) within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A fork server killed from outside fails no invocation: the next cold start spawns (its
/// fork request fails, or the server is known gone), a new server starts in the background,
/// and later cold starts are forks of it. Both ways a cold start can find the server gone:
/// killed before it, and killed (stopped first) while its fork request waits for an answer.
#[tokio::test]
async fn a_killed_fork_server_fails_no_cold_start_and_is_replaced() -> anyhow::Result<()> {
    let me = std::process::id() as u64;
    require!(support::python_for(11));
    let emu = emulator(true).await.map_err(anyhow::Error::msg)?;
    let f = emu.deploy(function(11)).await?;
    let server = forked_probe(&f, false).await["ppid"].as_u64().unwrap() as u32;
    assert!(
        fork_servers().contains(&server),
        "the fork server forked it"
    );

    // Retired first: a warm environment forked by the server would die with it, and
    // the invocation it got with it.
    f.evict_all();
    // SAFETY: kills the fork server this test's emulator started.
    unsafe { libc::kill(server as i32, libc::SIGKILL) };
    // Gone, and its socket's end of file read by the backend (on this test's thread)
    // before the cold start: the launch finds it gone without asking it.
    assert_eq!(support::wait_gone(&[server]).await, Vec::<u32>::new());
    tokio::time::sleep(Duration::from_millis(50)).await;
    let after = probe(&f, false).await; // no function error
    assert_eq!(after["ppid"], me, "spawned while the server is gone");
    let replacement = replacement_of(&f, server, "before a cold start").await;

    // Stopped, it takes the next cold start's request and never answers; killed then, the
    // request fails and that cold start spawns.
    f.evict_all();
    // SAFETY: stops, then kills, the fork server this test's emulator started.
    unsafe { libc::kill(replacement as i32, libc::SIGSTOP) };
    let launched = f.stats().environments_launched;
    let waiting = tokio::spawn({
        let f = f.clone();
        async move { probe(&f, false).await }
    });
    f.wait_for("the cold start", Duration::from_secs(5), move |s| {
        s.environments_launched > launched
    })
    .await?;
    // SAFETY: as above.
    unsafe { libc::kill(replacement as i32, libc::SIGKILL) };
    let after = waiting.await?;
    assert_eq!(after["ppid"], me, "spawned when its fork request failed");
    replacement_of(&f, replacement, "during a fork request").await;
    Ok(())
}

/// With an external extension the runtime is still forked: it joins the extension's
/// process group (so freeze and teardown reach both), the extension registers and gets
/// the INVOKE, the handler sees what a spawned runtime sees, and SHUTDOWN leaves no
/// process of the environment.
#[tokio::test]
async fn a_runtime_with_an_external_extension_is_forked_into_the_extensions_group()
-> anyhow::Result<()> {
    let me = std::process::id() as u64;
    require!(support::python_for(11));
    let script = std::fs::read(support::repo().join("fixtures/python/extensions/py_ext"))?;
    let with_extension = || {
        named("probe-ext", 11).layer(
            lambda_testkit::Layer::new("py-ext").executable("extensions/py_ext", script.clone()),
        )
    };
    let forked = emulator(true).await.map_err(anyhow::Error::msg)?;
    let spawned = emulator(false).await.map_err(anyhow::Error::msg)?;
    let warm = forked.deploy(function(11)).await?;
    let server = forked_probe(&warm, false).await["ppid"].clone(); // the server is up
    let f = forked.deploy(with_extension()).await?;
    let s = spawned.deploy(with_extension()).await?;

    let out = f.invoke("{}").await?;
    assert!(out.function_error.is_none(), "{}", out.log);
    // The caller has the response before the extension phase ends: the extension's line
    // may come after it.
    let line = format!("py_ext INVOKE {}", out.request_id);
    f.telemetry()
        .wait_for(|r| r.line() == Some(line.as_str()), Duration::from_secs(3))
        .await?;
    let report: Value = out.json()?;
    let plain = probe(&s, false).await;
    assert_eq!(report["ppid"], server, "forked by the fork server");
    assert_eq!(plain["ppid"], me);
    for (what, report) in [("forked", &report), ("spawned", &plain)] {
        // The extension started first and leads the group; the runtime joined it.
        assert_ne!(
            report["pgid"], report["pid"],
            "{what}: in the extension's group"
        );
        let leader = report["pgid"].as_u64().unwrap();
        let cmdline = std::fs::read(format!("/proc/{leader}/cmdline"))?;
        assert!(
            String::from_utf8_lossy(&cmdline).contains("extensions/py_ext"),
            "{what}: the group leader is the extension"
        );
    }
    assert_only_stdio(&report, "with an extension");
    assert_same(&report, &plain, "with an extension");

    let pids = [
        report["pid"].as_u64().unwrap() as u32,
        report["pgid"].as_u64().unwrap() as u32,
    ];
    assert_eq!(f.evict_all(), 1);
    f.telemetry()
        .wait_for(
            |r| r.line() == Some("py_ext SHUTDOWN spindown"),
            Duration::from_secs(3),
        )
        .await?;
    assert_eq!(support::wait_gone(&pids).await, Vec::<u32>::new());
    Ok(())
}

/// Run only as the child of the tests below: starts a forked Python runtime busy for a
/// minute, prints its pid and its parent's (the fork server), and waits to be SIGKILLed.
#[test]
#[ignore = "helper process for the fork server's teardown tests"]
fn hang_with_a_busy_forked_runtime() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let emu = emulator(true).await.unwrap();
        let f = emu
            .deploy(
                Function::new("hang", support::python_runtime(11))
                    .handler("app.handler")
                    .source(
                        "app.py",
                        "import os, time\ndef handler(event, ctx):\n    if event.get('s'):\n        time.sleep(event['s'])\n    return [os.getpid(), os.getppid()]\n",
                    )
                    .timeout(std::time::Duration::from_secs(120)),
            )
            .await
            .unwrap();
        let mut pids: Vec<u32> = Vec::new();
        for _ in 0..500 {
            f.evict_all();
            pids = f.invoke_json(&serde_json::json!({})).await.unwrap();
            if pids[1] != std::process::id() {
                break; // forked by the server (it starts at the second cold start)
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let before = f.stats().invocations;
        let busy = tokio::spawn({
            let f = f.clone();
            async move { f.invoke(r#"{"s": 60}"#).await }
        });
        f.wait_for(
            "the invocation to start",
            std::time::Duration::from_secs(10),
            move |s| s.invocations > before,
        )
        .await
        .unwrap();
        println!("FORKED_PIDS={} {}", pids[0], pids[1]);
        busy.await.ok();
    });
}

/// Starts [`hang_with_a_busy_forked_runtime`] in a child test process; returns it with
/// the runtime's pid and the fork server's.
fn start_hanging_owner() -> anyhow::Result<(std::process::Child, u32, u32)> {
    use std::io::BufRead;
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .args([
            "hang_with_a_busy_forked_runtime",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let pids: Vec<u32> = stdout
        .lines()
        .map_while(Result::ok)
        .find_map(|l| {
            l.split_once("FORKED_PIDS=")
                .map(|(_, p)| p.split(' ').map(|p| p.trim().parse().unwrap()).collect())
        })
        .expect("the child reports its runtime's pids");
    Ok((child, pids[0], pids[1]))
}

#[tokio::test]
async fn a_killed_test_process_takes_its_fork_server_and_forked_runtimes_with_it()
-> anyhow::Result<()> {
    require!(support::python_for(11));
    let (mut owner, runtime, server) = start_hanging_owner()?;
    assert!(!support::process_gone(runtime) && !support::process_gone(server));
    owner.kill()?; // SIGKILL: no Drop runs in the owner
    owner.wait()?;
    // The server sees its control socket close, kills its runtimes' groups and exits.
    assert_eq!(
        support::wait_gone(&[runtime, server]).await,
        Vec::<u32>::new()
    );
    Ok(())
}

#[tokio::test]
async fn a_stuck_fork_server_and_its_runtimes_are_reaped_after_their_owner_dies()
-> anyhow::Result<()> {
    require!(support::python_for(11));
    // An emulator starting in a concurrent test process reaps orphans too, and may do so
    // within the 50 ms below (CI saw it once): a runtime gone by then is tried again, and
    // only one that never outlives its owner fails the test.
    let mut tries = 0;
    let (runtime, server) = loop {
        let (mut owner, runtime, server) = start_hanging_owner()?;
        // SAFETY: stops the fork server the child test process started (it cannot clean up).
        unsafe { libc::kill(server as i32, libc::SIGSTOP) };
        owner.kill()?;
        owner.wait()?;
        std::thread::sleep(std::time::Duration::from_millis(50));
        if !support::process_gone(runtime) {
            break (runtime, server);
        }
        lambda_testkit::process::reap_orphaned_runtimes(); // this try's stopped server
        tries += 1;
        assert!(
            tries < 5,
            "the forked runtime never outlives its owner while its server is stopped ({tries} tries)"
        );
    };
    // Both carry the owner's tag (the runtime in the environ it inherited from the server).
    // No count asserted: an emulator starting in a concurrent test process reaps them too.
    lambda_testkit::process::reap_orphaned_runtimes();
    assert_eq!(
        support::wait_gone(&[runtime, server]).await,
        Vec::<u32>::new()
    );
    Ok(())
}
