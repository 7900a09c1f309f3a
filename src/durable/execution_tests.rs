//! Transitions of [`Execution`], one behaviour per test, no I/O.

use super::*;

const T0: SystemTime = SystemTime::UNIX_EPOCH;

fn at(secs: u64) -> SystemTime {
    T0 + Duration::from_secs(secs)
}

fn execution() -> Execution {
    let function_arn = "arn:aws:lambda:us-east-1:123456789012:function:f".to_string();
    Execution::new(
        Start {
            arn: super::super::arn::format(&function_arn, "$LATEST", "run", "exec1"),
            name: "run".into(),
            id: "exec1".into(),
            function_arn,
            function: "f".into(),
            version: "$LATEST".into(),
            input: r#"{"n":1}"#.into(),
            timeout: Duration::from_secs(3600),
            retention: Duration::from_secs(86_400),
        },
        at(0),
    )
}

fn update(id: &str, kind: OperationType, action: OperationAction) -> OperationUpdate {
    OperationUpdate::new(id, kind, action)
}

/// START of the WAIT `id` for `seconds`.
fn wait_start(id: &str, seconds: u64) -> OperationUpdate {
    let mut wait = update(id, OperationType::Wait, OperationAction::Start);
    wait.wait_options = Some(WaitOptions {
        wait_seconds: Some(seconds),
    });
    wait
}

fn status(e: &Execution, id: &str) -> OperationStatus {
    e.op(id).unwrap().status
}

fn checkpoint(e: &mut Execution, updates: &[OperationUpdate], now: SystemTime) -> CheckpointResult {
    let token = e.token().to_string();
    e.checkpoint(&token, updates, now).unwrap()
}

#[test]
fn a_new_execution_has_its_execution_operation_with_the_input() {
    let mut e = execution();
    assert!(e.needs_invocation());
    let envelope = e.begin_invocation(1000);
    assert_eq!(envelope["DurableExecutionArn"], e.start.arn.as_str());
    assert_eq!(envelope["CheckpointToken"], e.token());
    let ops = &envelope["InitialExecutionState"]["Operations"];
    assert_eq!(ops[0]["Id"], "exec1");
    assert_eq!(ops[0]["Type"], "EXECUTION");
    assert_eq!(ops[0]["ExecutionDetails"]["InputPayload"], r#"{"n":1}"#);
    assert_eq!(
        ops[0]["StartTimestamp"], 0,
        "epoch milliseconds in the envelope"
    );
    assert!(!e.needs_invocation(), "one invocation at a time");
    assert_eq!(e.events()[0].event_type, "ExecutionStarted");
}

#[test]
fn every_checkpoint_issues_a_new_token_and_refuses_a_stale_one() {
    let mut e = execution();
    e.begin_invocation(1000);
    let first = e.token().to_string();
    let out = e
        .checkpoint(
            &first,
            &[update("s1", OperationType::Step, OperationAction::Start)],
            at(1),
        )
        .unwrap();
    let second = out.token.unwrap();
    assert_ne!(first, second);
    let err = e.checkpoint(&first, &[], at(2)).unwrap_err();
    assert!(matches!(err, DurableError::InvalidParameter(_)), "{err:?}");
    assert!(e.checkpoint("bm9wZQ==", &[], at(2)).is_err());
    assert!(e.checkpoint(&second, &[], at(2)).is_ok());
}

#[test]
fn a_new_invocation_revokes_the_previous_token() {
    let mut e = execution();
    e.begin_invocation(1000);
    let old = e.token().to_string();
    e.end_invocation(InvocationOutcome::Pending, "r1", at(0), at(1));
    e.ready = true;
    e.begin_invocation(1000);
    assert!(e.checkpoint(&old, &[], at(2)).is_err());
}

#[test]
fn a_step_runs_and_succeeds_with_its_result() {
    let mut e = execution();
    e.begin_invocation(1000);
    checkpoint(
        &mut e,
        &[update("s1", OperationType::Step, OperationAction::Start)],
        at(1),
    );
    assert_eq!(status(&e, "s1"), OperationStatus::Started);
    let mut done = update("s1", OperationType::Step, OperationAction::Succeed);
    done.payload = Some("42".into());
    let out = checkpoint(&mut e, &[done], at(2));
    let op = out.operations.iter().find(|o| o.id == "s1").unwrap();
    assert_eq!(op.status, OperationStatus::Succeeded);
    assert_eq!(
        op.step_details.as_ref().unwrap().result.as_deref(),
        Some("42")
    );
    assert_eq!(op.end_timestamp, Some(at(2)));
    let types: Vec<_> = e.events().iter().map(|ev| ev.event_type).collect();
    assert_eq!(types, ["ExecutionStarted", "StepStarted", "StepSucceeded"]);
}

#[test]
fn a_retried_step_is_pending_until_its_delay_passes_then_ready() {
    let mut e = execution();
    e.begin_invocation(1000);
    checkpoint(
        &mut e,
        &[update("s1", OperationType::Step, OperationAction::Start)],
        at(1),
    );
    let mut retry = update("s1", OperationType::Step, OperationAction::Retry);
    retry.step_options = Some(StepOptions {
        next_attempt_delay_seconds: Some(30),
    });
    retry.error = Some(ErrorObject::new("ValueError", "flaky"));
    checkpoint(&mut e, &[retry], at(1));
    let details = e.op("s1").unwrap().step_details.clone().unwrap();
    assert_eq!(status(&e, "s1"), OperationStatus::Pending);
    assert_eq!(details.attempt, 1);
    assert_eq!(details.next_attempt_timestamp, Some(at(31)));
    e.end_invocation(InvocationOutcome::Pending, "r1", at(0), at(1));
    assert_eq!(e.next_deadline(), Some(at(31)));
    assert!(!e.needs_invocation());
    assert!(!e.fire_due(at(30)));
    assert!(e.fire_due(at(31)));
    assert_eq!(status(&e, "s1"), OperationStatus::Ready);
    assert!(e.needs_invocation());
    e.begin_invocation(1000);
    checkpoint(
        &mut e,
        &[update("s1", OperationType::Step, OperationAction::Start)],
        at(32),
    );
    assert_eq!(status(&e, "s1"), OperationStatus::Started);
}

#[test]
fn a_step_cannot_start_twice_or_retry_when_pending() {
    let mut e = execution();
    e.begin_invocation(1000);
    checkpoint(
        &mut e,
        &[update("s1", OperationType::Step, OperationAction::Start)],
        at(1),
    );
    let token = e.token().to_string();
    let again = e.checkpoint(
        &token,
        &[update("s1", OperationType::Step, OperationAction::Start)],
        at(1),
    );
    assert!(matches!(again, Err(DurableError::InvalidParameter(_))));
    assert_eq!(e.token(), token, "a refused checkpoint changes nothing");
    let wrong_type = e.checkpoint(
        &token,
        &[update("s1", OperationType::Wait, OperationAction::Start)],
        at(1),
    );
    assert!(wrong_type.is_err());
    let mut fail = update("s1", OperationType::Step, OperationAction::Fail);
    fail.payload = Some("x".into());
    assert!(
        e.checkpoint(&token, &[fail], at(1)).is_err(),
        "FAIL takes no payload"
    );
}

#[test]
fn a_refused_update_rolls_back_the_whole_checkpoint() {
    let mut e = execution();
    e.begin_invocation(1000);
    let token = e.token().to_string();
    let updates = [
        update("s1", OperationType::Step, OperationAction::Start),
        update("w1", OperationType::Wait, OperationAction::Cancel),
    ];
    assert!(e.checkpoint(&token, &updates, at(1)).is_err());
    assert!(e.op("s1").is_none());
    assert_eq!(e.events().len(), 1);
    // The same token still works, and the history goes on from where it was.
    e.checkpoint(&token, &updates[..1], at(2)).unwrap();
    let ids: Vec<_> = e
        .events()
        .iter()
        .map(|ev| (ev.event_id, ev.event_type))
        .collect();
    assert_eq!(ids, [(1, "ExecutionStarted"), (2, "StepStarted")]);
}

#[test]
fn a_wait_succeeds_when_its_time_comes() {
    let mut e = execution();
    e.begin_invocation(1000);
    let wait = wait_start("w1", 3600);
    checkpoint(&mut e, &[wait], at(10));
    let end = e.op("w1").unwrap().wait_details.clone().unwrap();
    assert_eq!(end.scheduled_end_timestamp, Some(at(3610)));
    e.end_invocation(InvocationOutcome::Pending, "r1", at(0), at(10));
    assert_eq!(
        e.next_deadline(),
        Some(at(3600)),
        "the execution timeout is earlier"
    );
    assert!(e.fire_due(at(3600)));
    assert_eq!(e.status, ExecutionStatus::TimedOut);
}

#[test]
fn a_wait_fires_and_the_execution_is_due_again() {
    let mut e = execution();
    e.begin_invocation(1000);
    let wait = wait_start("w1", 60);
    checkpoint(&mut e, &[wait], at(0));
    e.end_invocation(InvocationOutcome::Pending, "r1", at(0), at(0));
    assert_eq!(e.next_deadline(), Some(at(60)));
    assert!(e.fire_due(at(61)));
    assert_eq!(status(&e, "w1"), OperationStatus::Succeeded);
    assert!(e.needs_invocation());
    assert!(e.events().iter().any(|ev| ev.event_type == "WaitSucceeded"));
}

#[test]
fn a_callback_gets_an_id_and_completes_from_outside() {
    let mut e = execution();
    e.begin_invocation(1000);
    let out = checkpoint(
        &mut e,
        &[update(
            "c1",
            OperationType::Callback,
            OperationAction::Start,
        )],
        at(1),
    );
    let Some(Effect::CallbackCreated { callback_id, .. }) = out.effects.first() else {
        panic!("{:?}", out.effects)
    };
    let op = e.op("c1").unwrap();
    assert_eq!(
        op.callback_details.as_ref().unwrap().callback_id.as_ref(),
        Some(callback_id)
    );
    e.end_invocation(InvocationOutcome::Pending, "r1", at(0), at(1));
    assert!(!e.needs_invocation());
    e.complete_callback("c1", Completion::Succeeded(Some("\"ok\"".into())), at(5))
        .unwrap();
    assert_eq!(status(&e, "c1"), OperationStatus::Succeeded);
    assert!(e.needs_invocation());
    let again = e.complete_callback("c1", Completion::Succeeded(None), at(6));
    assert!(
        matches!(again, Err(DurableError::InvalidParameter(_))),
        "{again:?}"
    );
}

#[test]
fn a_callback_times_out_without_heartbeats() {
    let mut e = execution();
    e.begin_invocation(1000);
    let mut cb = update("c1", OperationType::Callback, OperationAction::Start);
    cb.callback_options = Some(CallbackOptions {
        timeout_seconds: Some(300),
        heartbeat_timeout_seconds: Some(60),
    });
    checkpoint(&mut e, &[cb], at(0));
    e.end_invocation(InvocationOutcome::Pending, "r1", at(0), at(0));
    assert_eq!(e.next_deadline(), Some(at(60)));
    e.heartbeat("c1", at(50)).unwrap();
    assert_eq!(e.next_deadline(), Some(at(110)));
    assert!(!e.fire_due(at(100)));
    assert!(e.fire_due(at(110)));
    assert_eq!(status(&e, "c1"), OperationStatus::TimedOut);
    let late = e.complete_callback("c1", Completion::Succeeded(None), at(111));
    assert!(
        matches!(late, Err(DurableError::CallbackTimedOut(_))),
        "{late:?}"
    );
    assert!(e.heartbeat("nope", at(111)).is_err());
}

#[test]
fn a_chained_invoke_asks_the_service_to_invoke_the_target() {
    let mut e = execution();
    e.begin_invocation(1000);
    let mut start = update("i1", OperationType::ChainedInvoke, OperationAction::Start);
    start.payload = Some(r#"{"a":1}"#.into());
    start.chained_invoke_options = Some(ChainedInvokeOptions {
        function_name: "child".into(),
        tenant_id: None,
    });
    let out = checkpoint(&mut e, &[start], at(1));
    assert_eq!(
        out.effects,
        [Effect::ChainedInvoke {
            operation: "i1".into(),
            function: "child".into(),
            payload: r#"{"a":1}"#.into()
        }]
    );
    e.end_invocation(InvocationOutcome::Pending, "r1", at(0), at(1));
    e.complete_chained_invoke("i1", Completion::Succeeded(Some("7".into())), at(2));
    let op = e.op("i1").unwrap();
    assert_eq!(op.status, OperationStatus::Succeeded);
    assert_eq!(
        op.chained_invoke_details
            .as_ref()
            .unwrap()
            .result
            .as_deref(),
        Some("7")
    );
    assert!(e.needs_invocation());
}

#[test]
fn the_handler_result_ends_the_execution() {
    let mut e = execution();
    e.begin_invocation(1000);
    let outcome = InvocationOutcome::parse(br#"{"Status":"SUCCEEDED","Result":"{\"ok\":true}"}"#);
    e.end_invocation(outcome, "r1", at(0), at(3));
    assert_eq!(e.status, ExecutionStatus::Succeeded);
    assert_eq!(e.result.as_deref(), Some(r#"{"ok":true}"#));
    assert_eq!(e.ended, Some(at(3)));
    assert_eq!(status(&e, "exec1"), OperationStatus::Succeeded);
    assert!(
        e.checkpoint(e.token().to_string().as_str(), &[], at(4))
            .is_err()
    );
    assert!(e.next_deadline().is_none());
    let types: Vec<_> = e.events().iter().map(|ev| ev.event_type).collect();
    assert_eq!(
        types,
        [
            "ExecutionStarted",
            "InvocationCompleted",
            "ExecutionSucceeded"
        ]
    );
}

#[test]
fn handler_outputs_parse_as_the_sdks_write_them() {
    assert_eq!(
        InvocationOutcome::parse(br#"{"Status":"PENDING"}"#),
        InvocationOutcome::Pending
    );
    let failed = InvocationOutcome::parse(
        br#"{"Status":"FAILED","Error":{"ErrorType":"StepError","ErrorMessage":"no"}}"#,
    );
    assert_eq!(
        failed,
        InvocationOutcome::Failed(ErrorObject::new("StepError", "no"))
    );
    assert!(matches!(
        InvocationOutcome::parse(b"{}"),
        InvocationOutcome::Error(_)
    ));
    assert!(matches!(
        InvocationOutcome::parse(b"nope"),
        InvocationOutcome::Error(_)
    ));
}

#[test]
fn checkpointing_the_execution_result_ends_it_and_omits_the_token() {
    let mut e = execution();
    e.begin_invocation(1000);
    let mut done = update("exec1", OperationType::Execution, OperationAction::Succeed);
    done.payload = Some("big".into());
    let out = checkpoint(&mut e, &[done], at(1));
    assert_eq!(out.token, None);
    assert_eq!(e.status, ExecutionStatus::Succeeded);
    assert_eq!(e.result.as_deref(), Some("big"));
    let token = e.token().to_string();
    let mut e2 = execution();
    e2.begin_invocation(1000);
    let t2 = e2.token().to_string();
    let misplaced = [
        update("exec1", OperationType::Execution, OperationAction::Succeed),
        update("s1", OperationType::Step, OperationAction::Start),
    ];
    assert!(e2.checkpoint(&t2, &misplaced, at(1)).is_err());
    drop(token);
}

#[test]
fn stop_ends_a_running_execution_once() {
    let mut e = execution();
    let when = e
        .stop(Some(ErrorObject::new("Stopped", "by test")), at(9))
        .unwrap();
    assert_eq!(when, at(9));
    assert_eq!(e.status, ExecutionStatus::Stopped);
    assert!(!e.needs_invocation());
    assert!(e.stop(None, at(10)).is_err());
    assert_eq!(e.events().last().unwrap().event_type, "ExecutionStopped");
}

#[test]
fn children_need_a_known_parent() {
    let mut e = execution();
    e.begin_invocation(1000);
    let token = e.token().to_string();
    let mut orphan = update("s2", OperationType::Step, OperationAction::Start);
    orphan.parent_id = Some("ctx".into());
    assert!(e.checkpoint(&token, &[orphan.clone()], at(1)).is_err());
    let ctx = update("ctx", OperationType::Context, OperationAction::Start);
    checkpoint(&mut e, &[ctx, orphan], at(1));
    assert_eq!(e.op("s2").unwrap().parent_id.as_deref(), Some("ctx"));
}

#[test]
fn the_envelope_carries_timestamps_in_milliseconds() {
    let mut e = execution();
    e.begin_invocation(1000);
    let wait = wait_start("w1", 60);
    checkpoint(&mut e, &[wait], at(2));
    e.end_invocation(InvocationOutcome::Pending, "r1", at(0), at(2));
    e.ready = true;
    let envelope = e.begin_invocation(1000);
    let wait = &envelope["InitialExecutionState"]["Operations"][1];
    assert_eq!(wait["StartTimestamp"], 2000);
    assert_eq!(wait["WaitDetails"]["ScheduledEndTimestamp"], 62_000);
}

#[test]
fn a_crashed_invocation_is_replayed_then_fails_the_execution_when_it_keeps_crashing() {
    let mut e = execution();
    let crash = || InvocationOutcome::Error(ErrorObject::new("Runtime.ExitError", "exit 1"));
    for attempt in 0..=INVOCATION_RETRIES {
        assert!(e.needs_invocation(), "attempt {attempt} is due");
        e.begin_invocation(1000);
        e.end_invocation(crash(), "r", at(0), at(1));
    }
    assert_eq!(e.status, ExecutionStatus::Failed);
    assert_eq!(
        e.error.as_ref().unwrap().error_type.as_deref(),
        Some("Runtime.ExitError")
    );
    assert_eq!(e.invocations, INVOCATION_RETRIES + 1);
}

#[test]
fn a_durable_outcome_resets_the_crash_count() {
    let mut e = execution();
    let crash = || InvocationOutcome::Error(ErrorObject::new("Sandbox.Timedout", "slow"));
    e.begin_invocation(1000);
    e.end_invocation(crash(), "r1", at(0), at(1));
    e.begin_invocation(1000);
    e.end_invocation(InvocationOutcome::Pending, "r2", at(1), at(2));
    e.ready = true;
    for _ in 0..INVOCATION_RETRIES {
        e.begin_invocation(1000);
        e.end_invocation(crash(), "r", at(2), at(3));
    }
    assert_eq!(
        e.status,
        ExecutionStatus::Running,
        "the count started again"
    );
}

#[test]
fn only_the_workflows_own_timers_are_skippable() {
    let mut e = execution();
    e.begin_invocation(1000);
    let mut cb = update("c1", OperationType::Callback, OperationAction::Start);
    cb.callback_options = Some(CallbackOptions {
        timeout_seconds: Some(300),
        heartbeat_timeout_seconds: None,
    });
    checkpoint(&mut e, &[cb], at(0));
    assert_eq!(
        e.next_timer(),
        None,
        "a callback timeout is not the workflow's timer"
    );
    assert_eq!(e.next_deadline(), Some(at(300)));
    let wait = wait_start("w1", 600);
    checkpoint(&mut e, &[wait], at(0));
    assert_eq!(e.next_timer(), Some(at(600)));
    assert_eq!(e.next_deadline(), Some(at(300)));
}

#[test]
fn a_retried_checkpoint_with_the_same_client_token_is_applied_once_and_answered_the_same() {
    let mut e = execution();
    e.begin_invocation(1000);
    let token = e.token().to_string();
    let mut succeed = update("s1", OperationType::Step, OperationAction::Succeed);
    succeed.payload = Some("5".into());
    let updates = [succeed];
    let first = e
        .checkpoint_with_client_token(&token, &updates, Some("retry-me"), at(1))
        .unwrap();
    let events = e.events().len();
    // The SDK lost the answer and sends the same request again.
    let again = e
        .checkpoint_with_client_token(&token, &updates, Some("retry-me"), at(2))
        .unwrap();
    assert_eq!(again.token, first.token, "the same new CheckpointToken");
    assert_eq!(again.operations, first.operations);
    assert_eq!(e.events().len(), events, "nothing applied twice");
    assert_eq!(e.token(), first.token.as_deref().unwrap(), "still current");
    // Without the ClientToken the stale CheckpointToken is refused, as before.
    assert!(e.checkpoint(&token, &updates, at(2)).is_err());
    // The same ClientToken on another request is refused.
    let other = e
        .checkpoint_with_client_token(&token, &[], Some("retry-me"), at(3))
        .unwrap_err();
    assert!(
        matches!(&other, DurableError::InvalidParameter(m) if m.contains("ClientToken")),
        "{other:?}"
    );
}

#[test]
fn a_client_token_identifies_its_request_for_fifteen_minutes() {
    let mut e = execution();
    e.begin_invocation(1000);
    let token = e.token().to_string();
    let start = [update("s1", OperationType::Step, OperationAction::Start)];
    e.checkpoint_with_client_token(&token, &start, Some("t"), at(0))
        .unwrap();
    let later = at(CLIENT_TOKEN_WINDOW.as_secs());
    let err = e
        .checkpoint_with_client_token(&token, &start, Some("t"), later)
        .unwrap_err();
    assert!(
        matches!(&err, DurableError::InvalidParameter(m) if m.contains("not the current token")),
        "after the window the retry is a new request, with a stale token: {err:?}"
    );
}

#[test]
fn a_retry_of_the_checkpoint_that_ended_the_execution_gets_its_answer() {
    let mut e = execution();
    e.begin_invocation(1000);
    let token = e.token().to_string();
    let mut done = update("exec1", OperationType::Execution, OperationAction::Succeed);
    done.payload = Some("42".into());
    let first = e
        .checkpoint_with_client_token(&token, std::slice::from_ref(&done), Some("end"), at(1))
        .unwrap();
    assert_eq!(first.token, None);
    assert_eq!(e.status, ExecutionStatus::Succeeded);
    let again = e
        .checkpoint_with_client_token(&token, &[done], Some("end"), at(2))
        .unwrap();
    assert_eq!(again.token, None);
    assert_eq!(again.operations, first.operations);
}

#[test]
fn a_chained_invoke_retried_under_its_client_token_is_started_once() {
    let mut e = execution();
    e.begin_invocation(1000);
    let token = e.token().to_string();
    let mut invoke = update("c1", OperationType::ChainedInvoke, OperationAction::Start);
    invoke.chained_invoke_options = Some(ChainedInvokeOptions {
        function_name: "child".into(),
        tenant_id: None,
    });
    let updates = [invoke];
    let first = e
        .checkpoint_with_client_token(&token, &updates, Some("c"), at(1))
        .unwrap();
    assert_eq!(first.effects.len(), 1);
    let again = e
        .checkpoint_with_client_token(&token, &updates, Some("c"), at(1))
        .unwrap();
    assert!(again.effects.is_empty(), "the target is not invoked twice");
}

#[test]
fn client_tokens_are_one_to_64_printable_characters() {
    let mut e = execution();
    e.begin_invocation(1000);
    let token = e.token().to_string();
    for bad in ["", "has space", &"x".repeat(65)] {
        assert!(
            e.checkpoint_with_client_token(&token, &[], Some(bad), at(1))
                .is_err(),
            "{bad:?}"
        );
    }
    assert!(
        e.checkpoint_with_client_token(&token, &[], Some(&"x".repeat(64)), at(1))
            .is_ok()
    );
}

#[test]
fn an_ended_execution_expires_its_retention_after_it_ended() {
    let mut e = execution();
    assert_eq!(e.expires(), None, "a running execution is kept");
    e.stop(None, at(100)).unwrap();
    assert_eq!(e.expires(), Some(at(100 + 86_400)));
}

/// `(id, status)` of a checkpoint's answer.
fn answered(out: &CheckpointResult) -> Vec<(&str, OperationStatus)> {
    out.operations
        .iter()
        .map(|op| (op.id.as_str(), op.status))
        .collect()
}

#[test]
fn a_checkpoint_answers_with_the_operations_changed_since_the_handler_last_saw_them() {
    let mut e = execution();
    e.begin_invocation(1000);
    let start = |id: &str| update(id, OperationType::Step, OperationAction::Start);
    let out = checkpoint(&mut e, &[start("s1")], at(1));
    assert_eq!(answered(&out), [("s1", OperationStatus::Started)]);
    let out = checkpoint(
        &mut e,
        &[
            update("s1", OperationType::Step, OperationAction::Succeed),
            start("s2"),
        ],
        at(2),
    );
    // Not the EXECUTION operation, nor s1 as it was: each changed one once, as it is now.
    assert_eq!(
        answered(&out),
        [
            ("s1", OperationStatus::Succeeded),
            ("s2", OperationStatus::Started)
        ]
    );
    // A call that changes nothing answers with nothing.
    assert_eq!(answered(&checkpoint(&mut e, &[], at(3))), []);
}

#[test]
fn what_the_service_changed_between_checkpoints_is_in_the_next_answer() {
    let mut e = execution();
    e.begin_invocation(1000);
    let callback = update("c1", OperationType::Callback, OperationAction::Start);
    checkpoint(&mut e, &[callback], at(1));
    e.complete_callback("c1", Completion::Succeeded(Some("\"ok\"".into())), at(2))
        .unwrap();
    let out = checkpoint(
        &mut e,
        &[update("s1", OperationType::Step, OperationAction::Start)],
        at(3),
    );
    assert_eq!(
        answered(&out),
        [
            ("c1", OperationStatus::Succeeded),
            ("s1", OperationStatus::Started)
        ]
    );
}

#[test]
fn a_new_invocation_s_envelope_counts_as_seen() {
    let mut e = execution();
    e.begin_invocation(1000);
    let wait = wait_start("w1", 60);
    checkpoint(&mut e, &[wait], at(0));
    e.end_invocation(InvocationOutcome::Pending, "r1", at(0), at(0));
    assert!(e.fire_due(at(61)));
    // The replay's envelope carries the fired wait; its first checkpoint does not again.
    let envelope = e.begin_invocation(1000);
    assert_eq!(
        envelope["InitialExecutionState"]["Operations"][1]["Status"],
        "SUCCEEDED"
    );
    let out = checkpoint(
        &mut e,
        &[update("s1", OperationType::Step, OperationAction::Start)],
        at(62),
    );
    assert_eq!(answered(&out), [("s1", OperationStatus::Started)]);
}
