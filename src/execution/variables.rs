//! The variables a runtime sees: Lambda's reserved set plus the function's own.
//! Source: AWS "Defined runtime environment variables".

use super::super::deploy::FunctionConfig;
use crate::backend::RuntimeView;

/// Region, account and the other emulator-wide values the variables need.
#[derive(Debug, Clone)]
pub(crate) struct Platform {
    pub(crate) region: String,
}

/// All variables for one execution environment.
pub(crate) fn build(
    config: &FunctionConfig,
    view: &RuntimeView,
    platform: &Platform,
    log_stream: &str,
) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = [
        ("AWS_LAMBDA_RUNTIME_API", view.runtime_api.clone()),
        ("_HANDLER", config.handler.clone()),
        ("AWS_LAMBDA_FUNCTION_NAME", config.name.clone()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_string()),
        (
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            config.memory_mb.to_string(),
        ),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{}", config.name),
        ),
        ("AWS_LAMBDA_LOG_STREAM_NAME", log_stream.to_string()),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_string()),
        ("AWS_REGION", platform.region.clone()),
        ("AWS_DEFAULT_REGION", platform.region.clone()),
        (
            "AWS_EXECUTION_ENV",
            format!("AWS_Lambda_{}", config.runtime),
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
    .map(|(k, v)| (k.to_string(), v))
    .collect();
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
