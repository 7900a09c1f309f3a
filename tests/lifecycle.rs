//! Teardown and isolation: nothing an emulator started survives it.

mod support;

use lambda_testkit::fixtures::{emulator, emulator_from};
use lambda_testkit::{DeployError, DeploymentPackage, Emulator, Function, Runtime};
use rstest::rstest;

async fn start_two(emu: &Emulator) -> anyhow::Result<Vec<u32>> {
    let a = emu
        .deploy(support::rust_function("a", "echo").map_err(anyhow::Error::msg)?)
        .await?;
    let b = emu
        .deploy(support::rust_function("b", "sleep").map_err(anyhow::Error::msg)?)
        .await?;
    a.invoke("{}").await?;
    // One environment busy at drop time, one idle.
    let busy = tokio::spawn(async move { b.invoke(r#"{"ms": 10000}"#).await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let pids = emu.environment_pids();
    assert_eq!(pids.len(), 2, "two environments running");
    busy.abort();
    Ok(pids)
}

#[rstest]
#[tokio::test]
async fn drop_kills_every_runtime_process() -> anyhow::Result<()> {
    require!(support::rust_fixture("echo"));
    let emu = support::builder().start().await?;
    let pids = start_two(&emu).await?;
    drop(emu);
    assert_eq!(support::wait_gone(&pids).await, Vec::<u32>::new());
    Ok(())
}

#[rstest]
#[tokio::test]
async fn a_handle_keeps_the_emulator_until_the_last_one_drops_and_shutdown_is_final()
-> anyhow::Result<()> {
    let f = require!(support::rust_function("kept", "echo"));
    let emu = support::builder().start().await?;
    let f = emu.deploy(f).await?;
    drop(emu);
    f.invoke("{}").await?;
    let pids = f.environment_pids();
    assert_eq!(pids.len(), 1, "the handle alone keeps its function running");
    drop(f);
    assert_eq!(support::wait_gone(&pids).await, Vec::<u32>::new());

    let emu = support::builder().start().await?;
    let f = emu
        .deploy(require!(support::rust_function("ended", "echo")))
        .await?;
    f.invoke("{}").await?;
    let pids = f.environment_pids();
    emu.shutdown().await;
    assert_eq!(support::wait_gone(&pids).await, Vec::<u32>::new());
    let err = f.invoke("{}").await.unwrap_err();
    assert!(
        matches!(err, lambda_testkit::InvokeError::ShutDown),
        "{err}"
    );
    let err = f.update(|f| f.memory_mb(256)).await.unwrap_err();
    assert!(matches!(err, DeployError::ShutDown), "{err}");
    Ok(())
}

#[rstest]
#[tokio::test]
async fn a_fixture_from_a_builder_has_the_builder_s_settings(
    #[future]
    #[with(support::builder().region("eu-west-1").account_id("111122223333"))]
    emulator_from: Emulator,
) -> anyhow::Result<()> {
    let f = require!(support::rust_function("regional", "echo"));
    let emu = emulator_from.await;
    let f = emu.deploy(f).await?;
    assert_eq!(
        f.config().unwrap().arn,
        "arn:aws:lambda:eu-west-1:111122223333:function:regional"
    );
    Ok(())
}

#[rstest]
#[tokio::test]
async fn explicit_shutdown_kills_every_runtime_process() -> anyhow::Result<()> {
    require!(support::rust_fixture("echo"));
    let emu = support::builder().start().await?;
    let pids = start_two(&emu).await?;
    emu.shutdown().await;
    assert_eq!(support::wait_gone(&pids).await, Vec::<u32>::new());
    Ok(())
}

#[rstest]
#[tokio::test]
async fn a_panicking_test_leaves_no_runtime_behind() -> anyhow::Result<()> {
    require!(support::rust_fixture("echo"));
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let emu = support::builder().start().await.unwrap();
        let f = emu
            .deploy(support::rust_function("p", "echo").unwrap())
            .await
            .unwrap();
        f.invoke("{}").await.unwrap();
        tx.send(emu.environment_pids()).unwrap();
        panic!("the test failed while the emulator was alive");
    });
    assert!(task.await.unwrap_err().is_panic());
    let pids = rx.await?;
    assert_eq!(pids.len(), 1);
    assert_eq!(support::wait_gone(&pids).await, Vec::<u32>::new());
    Ok(())
}

#[test]
fn drop_works_in_a_multi_thread_runtime() -> anyhow::Result<()> {
    require!(support::rust_fixture("echo"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let pids = rt.block_on(async {
        let emu = support::builder().start().await?;
        let pids = start_two(&emu).await?;
        drop(emu);
        anyhow::Ok(pids)
    })?;
    let left = rt.block_on(support::wait_gone(&pids));
    assert_eq!(left, Vec::<u32>::new());
    Ok(())
}

#[rstest]
#[tokio::test]
async fn emulators_in_one_test_share_nothing(#[future] emulator: Emulator) -> anyhow::Result<()> {
    require!(support::rust_fixture("echo"));
    let one = emulator.await;
    let two = support::builder().start().await?;
    let f1 = one
        .deploy(support::rust_function("same-name", "echo").unwrap())
        .await?;
    let f2 = two
        .deploy(support::rust_function("same-name", "echo").unwrap())
        .await?;
    f1.invoke("{}").await?;
    assert_eq!(f1.stats().invocations, 1);
    assert_eq!(f2.stats().invocations, 0);
    one.shutdown().await;
    f2.invoke("{}").await?;
    assert!(
        f1.invoke("{}").await.is_err(),
        "the shut-down emulator refuses invokes"
    );
    Ok(())
}

#[rstest]
#[tokio::test]
async fn zip_slip_is_rejected_and_nothing_is_written_outside(
    #[future] emulator: Emulator,
) -> anyhow::Result<()> {
    use std::io::Write;
    let emu = emulator.await;
    let victim =
        std::env::temp_dir().join(format!("lambda-testkit-zip-slip-{}", std::process::id()));
    let _ = std::fs::remove_file(&victim);
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default();
    zip.start_file("app.py", opts)?;
    zip.write_all(b"def handler(e, c):\n    return 1\n")?;
    let escape = format!("../../../../../../../../..{}", victim.display());
    zip.start_file(escape.as_str(), opts)?;
    zip.write_all(b"owned")?;
    let bytes = zip.finish()?.into_inner();

    let f =
        Function::new("slip", Runtime::ProvidedAl2023).package(DeploymentPackage::from_zip(bytes)?);
    let err = emu.deploy(f).await.unwrap_err();
    assert!(matches!(err, DeployError::Package(_)), "{err}");
    assert!(
        err.to_string().contains(".."),
        "the error names the entry: {err}"
    );
    assert!(
        !victim.exists(),
        "nothing written outside the code directory"
    );
    assert!(emu.function("slip").is_none());
    Ok(())
}

#[rstest]
#[tokio::test]
async fn validation_errors_are_typed(#[future] emulator: Emulator) -> anyhow::Result<()> {
    let emu = emulator.await;
    let err = emu
        .deploy(Function::new("no-handler", Runtime::Python312).source("a.py", ""))
        .await
        .unwrap_err();
    assert!(matches!(err, DeployError::MissingHandler { .. }), "{err}");
    let err = emu
        .deploy(Function::new("bad name!", Runtime::ProvidedAl2023))
        .await
        .unwrap_err();
    assert!(matches!(err, DeployError::InvalidFunctionName(_)), "{err}");
    let err = "ruby2.5".parse::<Runtime>().unwrap_err();
    assert!(matches!(err, DeployError::UnknownRuntime(_)), "{err}");
    Ok(())
}

#[rstest]
#[tokio::test]
async fn a_python_runtime_without_its_interpreter_fails_deploy_naming_the_runtime_and_the_fix()
-> anyhow::Result<()> {
    let emu = Emulator::builder()
        .python_for(Runtime::Python312, "/usr/bin/false")
        .start()
        .await?;
    let err = emu
        .deploy(
            Function::new("py", Runtime::Python312)
                .handler("app.handler")
                .source("app.py", ""),
        )
        .await
        .unwrap_err()
        .to_string();
    for part in [
        "python3.12 cannot run: no Python 3.12 interpreter with awslambdaric was found",
        "`/usr/bin/false` (EmulatorBuilder::python_for): not a Python interpreter",
        "set LAMBDA_TESTKIT_PYTHON_3_12 (or EmulatorBuilder::python_for)",
        "-m pip install awslambdaric",
        "EmulatorBuilder::python_fallback(true) or LAMBDA_TESTKIT_PYTHON_FALLBACK=nearest",
    ] {
        assert!(err.contains(part), "{part:?} missing from: {err}");
    }
    Ok(())
}

/// Run only as the child of `runtimes_of_a_killed_test_process_are_reaped`: starts a
/// runtime busy for a minute and one in the middle of a streamed response (their code
/// extracted under `CHILD_WORKDIR`), prints their pids, and waits to be SIGKILLed.
/// Where the child of `runtimes_of_a_killed_test_process_are_reaped` extracts code.
const CHILD_WORKDIR: &str = "LAMBDA_TESTKIT_TEST_CHILD_WORKDIR";

/// The emulators' work directories under `parent`.
fn work_dirs(parent: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(parent)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("lambda-testkit-")
        })
        .collect()
}

#[test]
#[ignore = "helper process for runtimes_of_a_killed_test_process_are_reaped"]
fn hang_with_a_busy_runtime() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let emu = support::builder()
            .workdir(std::env::var_os(CHILD_WORKDIR).unwrap())
            .start()
            .await
            .unwrap();
        let f = support::rust_function("hang", "sleep")
            .unwrap()
            .timeout(std::time::Duration::from_secs(120));
        let f = emu.deploy(f).await.unwrap();
        let busy = tokio::spawn({
            let f = f.clone();
            async move { f.invoke(r#"{"ms": 60000}"#).await }
        });
        f.wait_for(
            "the invocation to start",
            std::time::Duration::from_secs(10),
            |s| s.invocations == 1,
        )
        .await
        .unwrap();
        // And one mid-stream: its first chunk is out, hundreds more to come.
        let streaming = emu
            .deploy(support::rust_function("hang-stream", "stream").unwrap())
            .await
            .unwrap();
        let mut stream = streaming
            .invoke_stream(r#"{"chunks": 1000, "delay_ms": 100}"#)
            .await
            .unwrap();
        use futures::StreamExt;
        assert!(stream.next().await.is_some(), "the first chunk");
        println!(
            "RUNTIME_PIDS={},{}",
            f.environment_pids()[0],
            streaming.environment_pids()[0]
        );
        busy.await.ok();
    });
}

#[rstest]
#[tokio::test]
async fn runtimes_of_a_killed_test_process_are_reaped() -> anyhow::Result<()> {
    use std::io::BufRead;
    require!(support::rust_fixture("sleep"));
    let parent = tempfile::tempdir()?;
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .env(CHILD_WORKDIR, parent.path())
        .args([
            "hang_with_a_busy_runtime",
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
            l.split_once("RUNTIME_PIDS=")
                .map(|(_, p)| p.trim().split(',').map(|p| p.parse().unwrap()).collect())
        })
        .expect("the child reports its runtimes' pids");
    child.kill()?; // SIGKILL: no Drop runs in the child
    child.wait()?;
    assert_eq!(pids.len(), 2);
    // The sleeping runtime outlives its killed owner (the streaming one may notice the
    // dead connection and exit by itself).
    assert!(
        !support::process_gone(pids[0]),
        "the orphaned runtime outlives its killed owner"
    );
    // No count asserted: an emulator starting in a concurrent test process reaps too.
    lambda_testkit::process::reap_orphaned_runtimes();
    assert_eq!(support::wait_gone(&pids).await, Vec::<u32>::new());

    // Its extracted code is left too, until an emulator starts on that work directory.
    let left = work_dirs(parent.path());
    assert_eq!(
        left.len(),
        1,
        "the killed emulator's work directory: {left:?}"
    );
    assert!(left[0].join("hang-0").exists(), "with the functions' code");
    assert!(left[0].join("hang-stream-1").exists());
    let emu = support::builder().workdir(parent.path()).start().await?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !work_dirs(parent.path()).is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        work_dirs(parent.path()),
        Vec::<std::path::PathBuf>::new(),
        "reaped at start"
    );
    // The new emulator's own directory, made at its first deploy.
    let f = emu
        .deploy(support::rust_function("after", "echo").map_err(anyhow::Error::msg)?)
        .await?;
    f.invoke("{}").await?;
    assert_eq!(work_dirs(parent.path()).len(), 1);
    Ok(())
}
