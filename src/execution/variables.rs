//! The variables a runtime sees: Lambda's reserved set plus the function's own.
//! Source: AWS "Defined runtime environment variables".

use super::super::deploy::FunctionConfig;
use crate::backend::RuntimeView;

/// Region, account and the other emulator-wide values the variables need.
#[derive(Debug, Clone)]
pub(crate) struct Platform {
    pub(crate) region: String,
    /// Freeze environments between invocations (Lambda does; on by default).
    pub(crate) freeze: bool,
    /// The graceful shutdowns in flight.
    pub(crate) shutdowns: super::state::Shutdowns,
    /// The emulator's Lambda REST endpoint once it listens: durable functions get it as
    /// `AWS_ENDPOINT_URL_LAMBDA`, so the SDK in the handler checkpoints here.
    pub(crate) lambda_endpoint: std::sync::Arc<std::sync::OnceLock<String>>,
    /// How long an invoke busy-waits on its answer before parking (`super::spin`).
    pub(crate) spin_wait: Option<std::time::Duration>,
}

/// Variables Lambda withholds from external extensions (AWS "Extensions API": the
/// runtime's own and the log and tracing ones).
const WITHHELD_FROM_EXTENSIONS: &[&str] = &[
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
    "_HANDLER",
];

/// The variables an external extension sees: `vars` minus what Lambda withholds
/// (including every `AWS_XRAY_*` and `_AWS_XRAY_*`).
pub(crate) fn for_extensions(vars: &[(String, String)]) -> Vec<(String, String)> {
    vars.iter()
        .filter(|(k, _)| {
            !WITHHELD_FROM_EXTENSIONS.contains(&k.as_str())
                && !k.starts_with("AWS_XRAY_")
                && !k.starts_with("_AWS_XRAY_")
        })
        .cloned()
        .collect()
}

/// All variables for one execution environment.
/// `AWS_LAMBDA_INITIALIZATION_TYPE`.
pub(crate) const ON_DEMAND: &str = "on-demand";
/// `AWS_LAMBDA_INITIALIZATION_TYPE` of an environment provisioned ahead of invokes.
pub(crate) const PROVISIONED: &str = "provisioned-concurrency";

pub(crate) fn build(
    config: &FunctionConfig,
    view: &RuntimeView,
    platform: &Platform,
    log_stream: &str,
    initialization_type: &str,
) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = [
        ("AWS_LAMBDA_RUNTIME_API", view.runtime_api.clone()),
        ("_HANDLER", config.handler.clone()),
        ("AWS_LAMBDA_FUNCTION_NAME", config.name.clone()),
        ("AWS_LAMBDA_FUNCTION_VERSION", config.version.clone()),
        (
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            config.memory_mb.to_string(),
        ),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{}", config.name),
        ),
        ("AWS_LAMBDA_LOG_STREAM_NAME", log_stream.to_string()),
        (
            "AWS_LAMBDA_INITIALIZATION_TYPE",
            initialization_type.to_string(),
        ),
        ("AWS_REGION", platform.region.clone()),
        ("AWS_DEFAULT_REGION", platform.region.clone()),
        (
            "AWS_EXECUTION_ENV",
            config
                .runtime
                .map(|r| format!("AWS_Lambda_{r}"))
                .unwrap_or_default(),
        ),
        ("LAMBDA_TASK_ROOT", view.task_root.clone()),
        ("LAMBDA_RUNTIME_DIR", view.runtime_dir.clone()),
        ("TZ", ":UTC".to_string()),
        // Dummy credentials, as Lambda always provides some: SDK clients inside a handler
        // sign requests instead of failing to find credentials.
        ("AWS_ACCESS_KEY_ID", "ASIAEMULATOREXAMPLE".to_string()),
        (
            "AWS_SECRET_ACCESS_KEY",
            "lambda-testkit-dummy-secret".to_string(),
        ),
        (
            "AWS_SESSION_TOKEN",
            "lambda-testkit-dummy-session-token".to_string(),
        ),
    ]
    .into_iter()
    // An image function's image sets `AWS_EXECUTION_ENV` itself (AWS base images do);
    // Lambda sets it only for managed runtimes.
    .filter(|(k, v)| *k != "AWS_EXECUTION_ENV" || !v.is_empty())
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    // Durable SDKs build a Lambda client with no endpoint (aws-durable-execution-sdk-python:
    // `boto3.client("lambda")`): the standard variable sends it here.
    if config.durable.is_some()
        && let Some(endpoint) = platform.lambda_endpoint.get()
    {
        vars.push(("AWS_ENDPOINT_URL_LAMBDA".to_string(), endpoint.clone()));
    }
    vars.extend(
        config
            .environment
            .iter()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    vars
}

/// `2024/01/31/[$LATEST]<32 hex>`, as Lambda names log streams.
pub(crate) fn log_stream_name() -> String {
    let date = time::OffsetDateTime::now_utc().date();
    format!(
        "{:04}/{:02}/{:02}/[$LATEST]{}",
        date.year(),
        u8::from(date.month()),
        date.day(),
        uuid::Uuid::new_v4().simple()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::{Function, Registry, ResolvedImage, Runtime};

    async fn variables(function: Function, image: Option<ResolvedImage>) -> Vec<(String, String)> {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::new("eu-west-1".into(), "1".into(), dir.path().into());
        let deployment = registry.build(function, image, None).await.unwrap();
        let view = RuntimeView {
            runtime_api: "127.0.0.1:9001".into(),
            task_root: "/var/task".into(),
            opt: "/opt".into(),
            runtime_dir: "/var/runtime".into(),
        };
        let platform = Platform {
            region: "eu-west-1".into(),
            freeze: true,
            shutdowns: Default::default(),
            lambda_endpoint: Default::default(),
            spin_wait: None,
        };
        build(&deployment.config, &view, &platform, "stream", ON_DEMAND)
    }

    fn get<'a>(vars: &'a [(String, String)], key: &str) -> Option<&'a str> {
        vars.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    #[tokio::test]
    async fn a_managed_runtime_gets_its_execution_env_and_the_reserved_set() {
        let f = Function::new("f", Runtime::Python312)
            .handler("app.handler")
            .env("MODE", "fast");
        let vars = variables(f, None).await;
        assert_eq!(
            get(&vars, "AWS_EXECUTION_ENV"),
            Some("AWS_Lambda_python3.12")
        );
        assert_eq!(get(&vars, "_HANDLER"), Some("app.handler"));
        assert_eq!(get(&vars, "AWS_LAMBDA_RUNTIME_API"), Some("127.0.0.1:9001"));
        assert_eq!(get(&vars, "AWS_REGION"), Some("eu-west-1"));
        assert_eq!(get(&vars, "MODE"), Some("fast"));
    }

    #[tokio::test]
    async fn an_image_function_leaves_the_execution_env_to_its_image() {
        let image = ResolvedImage {
            uri: "my/img:dev".into(),
            id: "sha256:abc".into(),
        };
        let vars = variables(Function::image("f", "my/img:dev"), Some(image)).await;
        assert_eq!(get(&vars, "AWS_EXECUTION_ENV"), None);
        assert_eq!(get(&vars, "AWS_LAMBDA_FUNCTION_NAME"), Some("f"));
    }
}
