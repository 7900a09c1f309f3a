//! Versions and aliases through the Rust API, with the real `awslambdaric` runtime: what
//! ran (`ExecutedVersion`, `START … Version: N`, `AWS_LAMBDA_FUNCTION_VERSION`, the
//! invoked ARN), a pool per version, weighted alias routing, and Lambda's refusals.

mod support;

use lambda_testkit::function::VersionError;
use lambda_testkit::{BackendKind, DeployError, Function, InvokeError, InvokeRequest};
use rstest::rstest;
use serde_json::Value;

/// A Python function answering with its code generation and what the runtime sees.
fn generation(name: &str, generation: &str) -> Function {
    support::python_function_on(name, 11, "context").env("GENERATION", generation)
}

async fn call(
    f: &lambda_testkit::FunctionHandle,
    qualifier: &str,
) -> anyhow::Result<(Value, lambda_testkit::InvokeOutput)> {
    let out = f
        .invoke_request(InvokeRequest::new("{}").qualifier(qualifier))
        .await?;
    anyhow::ensure!(out.function_error.is_none(), "{}", out.log);
    Ok((serde_json::from_slice(&out.payload)?, out))
}

#[rstest]
#[tokio::test]
async fn each_version_runs_its_own_code_in_its_own_environments(
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let emu = require!(support::python_emulator(backend).await);
    let f = emu.deploy(generation("versioned", "one")).await?;
    let v1 = f.publish_version().await?;
    assert_eq!(v1.version, "1");
    assert!(v1.arn.ends_with(":function:versioned:1"), "{}", v1.arn);
    f.update(|f| f.env("GENERATION", "two")).await?;
    assert_eq!(f.publish_version().await?.version, "2");
    assert_eq!(
        f.publish_version().await?.version,
        "2",
        "unchanged code and configuration return the latest version"
    );

    for (qualifier, generation, version) in [
        ("1", "one", "1"),
        ("2", "two", "2"),
        ("$LATEST", "two", "$LATEST"),
    ] {
        let (body, out) = call(&f, qualifier).await?;
        assert_eq!(body["env"]["GENERATION"], generation, "{qualifier}");
        assert_eq!(body["env"]["AWS_LAMBDA_FUNCTION_VERSION"], version);
        assert_eq!(body["function_version"], version);
        assert_eq!(out.executed_version, version);
        assert!(
            out.log.contains(&format!(
                "START RequestId: {} Version: {version}",
                out.request_id
            )),
            "{}",
            out.log
        );
        let arn = body["invoked_function_arn"].as_str().unwrap_or_default();
        let expected = if version == "$LATEST" {
            "versioned".to_string()
        } else {
            format!("versioned:{version}")
        };
        assert!(arn.ends_with(&format!(":function:{expected}")), "{arn}");
    }
    assert_eq!(
        f.version_stats("1").cold_starts,
        1,
        "version 1 has its own pool"
    );
    assert_eq!(f.version_stats("2").cold_starts, 1);
    assert_eq!(f.stats().cold_starts, 1, "and $LATEST its own");
    Ok(())
}

#[tokio::test]
async fn an_alias_points_at_a_version_and_its_arn_reaches_the_runtime() -> anyhow::Result<()> {
    let emu = require!(support::python_emulator(BackendKind::Process).await);
    let f = emu.deploy(generation("aliased", "one")).await?;
    f.publish_version().await?;
    f.update(|f| f.env("GENERATION", "two")).await?;
    f.publish_version().await?;
    let live = f.create_alias("live", "1", None)?;
    assert!(live.alias_arn.ends_with(":function:aliased:live"));
    let (body, out) = call(&f, "live").await?;
    assert_eq!(body["env"]["GENERATION"], "one");
    assert_eq!(out.executed_version, "1");
    assert_eq!(body["invoked_function_arn"], live.alias_arn.as_str());
    // Moving the alias moves its invokes.
    f.update_alias("live", |a| a.function_version = "2".into())?;
    let (body, out) = call(&f, "live").await?;
    assert_eq!(body["env"]["GENERATION"], "two");
    assert_eq!(out.executed_version, "2");
    Ok(())
}

/// Versions an alias sends `n` invokes to, in order.
async fn split(seed: u64, n: usize) -> anyhow::Result<Vec<String>> {
    let emu = support::builder_for(BackendKind::Process)
        .map_err(anyhow::Error::msg)?
        .routing_seed(seed)
        .start()
        .await?;
    let f = emu
        .deploy(support::rust_function("routed", "echo").map_err(anyhow::Error::msg)?)
        .await?;
    f.publish_version().await?;
    f.update(|f| f.env("GENERATION", "two")).await?;
    f.publish_version().await?;
    f.create_alias("canary", "1", Some(("2", 0.25)))?;
    let mut versions = Vec::with_capacity(n);
    for _ in 0..n {
        let out = f
            .invoke_request(InvokeRequest::new("{}").qualifier("canary"))
            .await?;
        versions.push(out.executed_version);
    }
    Ok(versions)
}

#[tokio::test]
async fn weighted_routing_splits_invokes_by_weight_and_a_seed_pins_the_split() -> anyhow::Result<()>
{
    require!(support::rust_fixture("echo"));
    let n = 400;
    let first = split(7, n).await?;
    let to_two = first.iter().filter(|v| *v == "2").count() as f64 / n as f64;
    assert!(
        (0.18..=0.32).contains(&to_two),
        "{to_two} of invokes went to version 2"
    );
    assert!(first.iter().all(|v| v == "1" || v == "2"));
    assert_eq!(
        split(7, n).await?,
        first,
        "the same seed, the same sequence"
    );
    assert_ne!(split(8, n).await?, first, "another seed, another sequence");
    Ok(())
}

#[tokio::test]
async fn unknown_versions_and_aliases_and_bad_routing_are_refused() -> anyhow::Result<()> {
    let emu = require!(support::emulator(BackendKind::Process).await);
    let f = emu
        .deploy(require!(support::rust_function("refusing", "echo")))
        .await?;
    f.publish_version().await?;
    for qualifier in ["9", "nope"] {
        let err = f
            .invoke_request(InvokeRequest::new("{}").qualifier(qualifier))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, InvokeError::FunctionNotFound(name) if name == &format!("refusing:{qualifier}")),
            "{err:?}"
        );
    }
    assert!(matches!(
        f.create_alias("w", "$LATEST", Some(("1", 0.5))),
        Err(DeployError::Version(VersionError::Invalid(_)))
    ));
    assert!(matches!(
        f.create_alias("w", "3", None),
        Err(DeployError::Version(VersionError::UnknownVersion(v))) if v == "3"
    ));
    f.create_alias("live", "1", None)?;
    assert!(matches!(
        f.create_alias("live", "1", None),
        Err(DeployError::Version(VersionError::AliasExists(_)))
    ));
    Ok(())
}

#[rstest]
#[tokio::test]
async fn provisioned_environments_are_initialized_ahead_and_their_first_invoke_is_warm(
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let emu = require!(support::python_emulator(backend).await);
    let f = emu.deploy(generation("provisioned", "one")).await?;
    f.publish_version().await?;
    f.create_alias("live", "1", None)?;
    let config = f.provision("live", 2).await?;
    assert_eq!((config.requested, config.allocated), (2, 2));
    assert_eq!(config.status, "READY");
    assert_eq!(
        f.version_stats("1").environments_launched,
        2,
        "launched before any invoke"
    );
    let (a, b) = tokio::join!(call(&f, "live"), call(&f, "live"));
    for (body, out) in [a?, b?] {
        assert!(!out.cold_start, "{}", out.log);
        assert_eq!(
            body["env"]["AWS_LAMBDA_INITIALIZATION_TYPE"],
            "provisioned-concurrency"
        );
        assert!(!out.log.contains("Init Duration"), "{}", out.log);
    }
    assert_eq!(
        f.version_stats("1").environments_launched,
        2,
        "no on-demand launch"
    );
    // $LATEST cannot be provisioned, as in Lambda.
    assert!(matches!(
        f.provision("$LATEST", 1).await,
        Err(DeployError::Invalid(_))
    ));
    Ok(())
}
