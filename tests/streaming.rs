//! Response streaming end to end: a real `lambda_runtime` streaming handler (`stream`
//! fixture) and buffered handlers invoked in streaming mode.

mod support;

use std::time::Duration;

use futures::StreamExt;
use lambda_testkit::Emulator;
use lambda_testkit::stream::HttpPrelude;
use rstest::{fixture, rstest};

#[fixture]
async fn emu() -> Emulator {
    support::builder().start().await.expect("emulator starts")
}

#[rstest]
#[tokio::test]
async fn streamed_chunks_keep_their_boundaries_and_the_prelude_is_stripped(
    #[future] emu: Emulator,
) -> anyhow::Result<()> {
    let f = require!(support::rust_function("streamer", "stream"));
    let f = emu.await.deploy(f).await?;
    let collected = f
        .invoke_stream(r#"{"chunks": 3, "delay_ms": 20}"#)
        .await?
        .collect_all()
        .await;
    assert_eq!(
        collected.chunk_texts(),
        ["chunk-0\n", "chunk-1\n", "chunk-2\n"]
    );
    let prelude = collected
        .prelude
        .as_ref()
        .expect("lambda_runtime sends the HTTP-integration prelude");
    assert_eq!(prelude.status_code, 200);
    assert!(
        collected.completion.is_ok(),
        "{:?}",
        collected.completion.error
    );
    assert!(
        collected.completion.log.contains("REPORT RequestId:"),
        "{}",
        collected.completion.log
    );
    Ok(())
}

#[rstest]
#[tokio::test]
async fn first_chunk_arrives_before_the_handler_finishes(
    #[future] emu: Emulator,
) -> anyhow::Result<()> {
    let f = require!(support::rust_function("streamer", "stream"));
    let f = emu.await.deploy(f).await?;
    let collected = f
        .invoke_stream(r#"{"chunks": 2, "delay_ms": 300}"#)
        .await?
        .collect_all()
        .await;
    assert!(collected.first_chunk_before_finish(), "{collected:?}");
    assert!(
        collected.first_chunk_lead() >= Duration::from_millis(250),
        "the first chunk came {:?} before the end; the handler slept 300 ms after it",
        collected.first_chunk_lead()
    );
    Ok(())
}

#[rstest]
#[tokio::test]
async fn chunks_can_be_read_one_by_one_as_they_come(#[future] emu: Emulator) -> anyhow::Result<()> {
    let f = require!(support::rust_function("streamer", "stream"));
    let f = emu.await.deploy(f).await?;
    let mut stream = f.invoke_stream(r#"{"chunks": 3, "delay_ms": 50}"#).await?;
    let first = stream.next().await.expect("a first chunk");
    assert_eq!(&first[..], b"chunk-0\n");
    assert!(
        stream.completion().is_none(),
        "still running after the first chunk"
    );
    let rest: Vec<_> = stream.by_ref().collect().await;
    assert_eq!(rest.len(), 2);
    assert!(stream.completion().expect("ended").is_ok());
    Ok(())
}

#[rstest]
#[tokio::test]
async fn mid_stream_error_surfaces_with_its_type_after_the_chunks_sent_before_it(
    #[future] emu: Emulator,
) -> anyhow::Result<()> {
    let f = require!(support::rust_function("streamer", "stream"));
    let f = emu.await.deploy(f).await?;
    let collected = f
        .invoke_stream(r#"{"chunks": 3, "delay_ms": 5, "fail_after": 2}"#)
        .await?
        .collect_all()
        .await;
    assert_eq!(collected.chunk_texts(), ["chunk-0\n", "chunk-1\n"]);
    let error = collected
        .completion
        .error
        .as_ref()
        .expect("the stream failed");
    assert_eq!(error.error_type, "Runtime.StreamError");
    assert!(
        error.error_message.contains("stream failed after 2 chunks"),
        "{}",
        error.error_message
    );
    assert_eq!(f.stats().errors, 1);
    // The environment survives a stream error and serves the next invoke warm.
    let again = f
        .invoke_stream(r#"{"chunks": 1}"#)
        .await?
        .collect_all()
        .await;
    assert!(again.completion.is_ok() && !again.completion.cold_start);
    Ok(())
}

#[rstest]
#[tokio::test]
async fn timeout_cuts_the_stream_with_sandbox_timedout(
    #[future] emu: Emulator,
) -> anyhow::Result<()> {
    let f = require!(support::rust_function("streamer", "stream"));
    let f = emu.await.deploy(f.timeout(Duration::from_secs(1))).await?;
    let collected = f
        .invoke_stream(r#"{"chunks": 10, "delay_ms": 400}"#)
        .await?
        .collect_all()
        .await;
    let error = collected.completion.error.as_ref().expect("timed out");
    assert_eq!(error.error_type, "Sandbox.Timedout");
    assert!(
        (2..=3).contains(&collected.chunks.len()),
        "chunks before the deadline: {:?}",
        collected.chunk_texts()
    );
    assert!(
        f.environment_pids().is_empty(),
        "the timed-out environment is terminated"
    );
    Ok(())
}

#[rstest]
#[tokio::test]
async fn buffered_rust_handler_in_streaming_mode_is_one_chunk(
    #[future] emu: Emulator,
) -> anyhow::Result<()> {
    let f = require!(support::rust_function("echo", "echo"));
    let f = emu.await.deploy(f).await?;
    let collected = f
        .invoke_stream(r#"{"hello":"world"}"#)
        .await?
        .collect_all()
        .await;
    assert_eq!(collected.chunk_texts(), [r#"{"hello":"world"}"#]);
    assert!(collected.prelude.is_none());
    assert!(collected.completion.is_ok());
    Ok(())
}

#[rstest]
#[tokio::test]
async fn buffered_python_handler_in_streaming_mode_is_one_chunk(
    #[future] emu: Emulator,
) -> anyhow::Result<()> {
    require!(support::python());
    let f = emu
        .await
        .deploy(support::python_function("echo-py", "echo"))
        .await?;
    let body = f.invoke_stream(r#"{"a": 1}"#).await?.into_body().await?;
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&body)?,
        serde_json::json!({"a": 1})
    );
    Ok(())
}

#[rstest]
#[tokio::test]
async fn buffered_handler_error_in_streaming_mode_is_the_completion_error(
    #[future] emu: Emulator,
) -> anyhow::Result<()> {
    let f = require!(support::rust_function("fail", "fail"));
    let f = emu.await.deploy(f).await?;
    let collected = f
        .invoke_stream(r#"{"message": "kaput"}"#)
        .await?
        .collect_all()
        .await;
    assert!(collected.chunks.is_empty());
    let error = collected.completion.error.expect("failed");
    assert_eq!(
        (error.error_type.as_str(), error.error_message.as_str()),
        ("FixtureError", "kaput")
    );
    Ok(())
}

#[rstest]
#[tokio::test]
async fn streaming_handler_invoked_plainly_is_collected_into_one_payload(
    #[future] emu: Emulator,
) -> anyhow::Result<()> {
    let f = require!(support::rust_function("streamer", "stream"));
    let f = emu.await.deploy(f).await?;
    let out = f.invoke(r#"{"chunks": 3, "delay_ms": 1}"#).await?;
    assert!(!out.is_error());
    // As Lambda's Invoke returns it: the prelude, then the body.
    let (prelude, body) = HttpPrelude::split(&out.payload).expect("prelude");
    assert_eq!(prelude.status_code, 200);
    assert_eq!(&body[..], b"chunk-0\nchunk-1\nchunk-2\n");
    Ok(())
}

#[rstest]
#[tokio::test]
async fn streaming_to_an_unknown_function_fails_before_the_stream(
    #[future] emu: Emulator,
) -> anyhow::Result<()> {
    let emu = emu.await;
    let f = require!(support::rust_function("streamer", "stream"));
    let f = emu.deploy(f).await?;
    emu.delete_function("streamer")?;
    let err = f.invoke_stream("{}").await.unwrap_err();
    assert!(
        matches!(err, lambda_testkit::InvokeError::FunctionNotFound(_)),
        "{err}"
    );
    Ok(())
}

#[rstest]
#[tokio::test]
async fn the_deadline_holds_even_while_the_reader_is_not_reading(
    #[future] emu: Emulator,
) -> anyhow::Result<()> {
    let f = require!(support::rust_function("streamer", "stream"));
    let f = emu.await.deploy(f.timeout(Duration::from_secs(1))).await?;
    let mut stream = f
        .invoke_stream(r#"{"chunks": 1000, "delay_ms": 5}"#)
        .await?;
    assert!(stream.next().await.is_some());
    tokio::time::sleep(Duration::from_millis(1800)).await;
    assert!(
        f.environment_pids().is_empty(),
        "timed out and terminated while nobody was reading"
    );
    let rest: Vec<_> = stream.by_ref().collect().await;
    assert!(
        !rest.is_empty(),
        "what was sent before the deadline is still there to read"
    );
    assert_eq!(
        stream
            .completion()
            .unwrap()
            .error
            .as_ref()
            .unwrap()
            .error_type,
        "Sandbox.Timedout"
    );
    Ok(())
}

#[rstest]
#[tokio::test]
async fn dropping_the_stream_lets_the_invocation_finish_and_keeps_the_environment_warm(
    #[future] emu: Emulator,
) -> anyhow::Result<()> {
    let f = require!(support::rust_function("streamer", "stream"));
    let f = emu.await.deploy(f).await?;
    let mut stream = f.invoke_stream(r#"{"chunks": 5, "delay_ms": 20}"#).await?;
    assert!(stream.next().await.is_some());
    drop(stream);
    // The invocation goes on without a reader; once it ends its environment is idle.
    let started = std::time::Instant::now();
    while !f.timeline().iter().any(|e| {
        matches!(
            e.kind,
            lambda_testkit::stats::EventKind::EnvironmentIdle { .. }
        )
    }) {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{}",
            f.timeline_text()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let again = f
        .invoke_stream(r#"{"chunks": 1}"#)
        .await?
        .collect_all()
        .await;
    assert!(
        again.completion.is_ok() && !again.completion.cold_start,
        "{:?}",
        again.completion
    );
    assert_eq!(f.stats().invocations, 2);
    assert_eq!(f.stats().errors, 0, "{}", f.timeline_text());
    Ok(())
}
