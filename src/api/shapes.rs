//! Response shapes of the Lambda API model (lambda-service-2015-03-31), built from the
//! core's types. Members the emulator has no notion of get the values a new Lambda
//! function reports (`State: Active` and `LastUpdateStatus: Successful` at once, so the
//! SDK waiters `FunctionActiveV2` / `FunctionUpdatedV2` pass on their first poll).

use serde_json::{Value, json};

use crate::deploy::{Alias, FunctionConfig, LayerVersion, PackageType};
use crate::service::ProvisionedConcurrency;

/// `GetProvisionedConcurrencyConfig` (with `FunctionArn` in a list entry).
pub(crate) fn provisioned(arn: Option<&str>, c: &ProvisionedConcurrency) -> Value {
    let mut v = json!({
        "RequestedProvisionedConcurrentExecutions": c.requested,
        "AvailableProvisionedConcurrentExecutions": c.allocated,
        "AllocatedProvisionedConcurrentExecutions": c.allocated,
        "Status": c.status,
        "LastModified": c.last_modified,
    });
    if let Some(arn) = arn {
        v["FunctionArn"] = arn.into();
    }
    v
}

/// `AliasConfiguration`.
pub(crate) fn alias_configuration(a: &Alias) -> Value {
    let mut v = json!({
        "AliasArn": a.alias_arn,
        "Name": a.name,
        "FunctionVersion": a.function_version,
        "Description": a.description,
        "RevisionId": a.revision_id,
    });
    if let Some((version, weight)) = &a.routing {
        v["RoutingConfig"] = json!({ "AdditionalVersionWeights": { version.as_str(): weight } });
    }
    v
}

/// `FunctionConfiguration`.
pub(crate) fn function_configuration(c: &FunctionConfig) -> Value {
    let mut v = json!({
        "FunctionName": c.name,
        "FunctionArn": c.arn,
        "Runtime": c.runtime.map(|r| r.as_str()),
        "Role": c.role,
        "Handler": c.handler,
        "CodeSize": c.code_size(),
        "Description": c.description,
        // Whole seconds, as Lambda stores them; a sub-second Rust timeout rounds up.
        "Timeout": c.timeout.as_millis().div_ceil(1000) as u64,
        "MemorySize": c.memory_mb,
        "LastModified": c.last_modified,
        "CodeSha256": c.code_sha256(),
        "Version": c.version,
        "TracingConfig": {"Mode": "PassThrough"},
        "RevisionId": c.revision_id,
        "State": "Active",
        "LastUpdateStatus": "Successful",
        "PackageType": c.package_type.as_str(),
        "Architectures": ["x86_64"],
        "EphemeralStorage": {"Size": 512},
        "SnapStart": {"ApplyOn": "None", "OptimizationStatus": "Off"},
        "LoggingConfig": {"LogFormat": "Text", "LogGroup": format!("/aws/lambda/{}", c.name)},
    });
    if c.package_type == PackageType::Image {
        // The image brings its runtime: no Runtime or Handler, as Lambda reports it.
        let v = v.as_object_mut().expect("an object");
        v.remove("Runtime");
        v.remove("Handler");
        let i = &c.image_config;
        if !i.is_empty() {
            let mut config = serde_json::Map::new();
            if let Some(e) = &i.entry_point {
                config.insert("EntryPoint".into(), json!(e));
            }
            if let Some(cmd) = &i.command {
                config.insert("Command".into(), json!(cmd));
            }
            if let Some(w) = &i.working_directory {
                config.insert("WorkingDirectory".into(), json!(w));
            }
            v.insert(
                "ImageConfigResponse".into(),
                json!({ "ImageConfig": config }),
            );
        }
    }
    if !c.environment.is_empty() {
        v["Environment"] = json!({ "Variables": c.environment });
    }
    if !c.layers.is_empty() {
        v["Layers"] = c
            .layers
            .iter()
            .map(|l| json!({"Arn": l.layer_version_arn, "CodeSize": l.code_size()}))
            .collect();
    }
    if let Some(d) = &c.durable {
        v["DurableConfig"] = json!({
            "ExecutionTimeout": d.execution_timeout().as_secs(),
            "RetentionPeriodInDays": d.retention_period_days(),
        });
    }
    v
}

/// `GetFunctionResponse`.
pub(crate) fn get_function(c: &FunctionConfig, code_location: String) -> Value {
    let code = match &c.image_uri {
        Some(uri) => json!({
            "RepositoryType": "ECR",
            "ImageUri": uri,
            "ResolvedImageUri": c.resolved_image_uri,
        }),
        None => json!({"RepositoryType": "S3", "Location": code_location}),
    };
    let mut v = json!({
        "Configuration": function_configuration(c),
        "Code": code,
        "Tags": {},
    });
    if let Some(n) = c.reserved_concurrency {
        v["Concurrency"] = json!({ "ReservedConcurrentExecutions": n });
    }
    v
}

/// `PublishLayerVersionResponse` / `GetLayerVersionResponse`.
pub(crate) fn layer_version(l: &LayerVersion, location: String) -> Value {
    json!({
        "Content": {"Location": location, "CodeSha256": l.code_sha256(), "CodeSize": l.code_size()},
        "LayerArn": l.layer_arn,
        "LayerVersionArn": l.layer_version_arn,
        "Description": l.description,
        "CreatedDate": l.created_date,
        "Version": l.version,
        "CompatibleRuntimes": l.compatible_runtimes.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
    })
}

/// `LayerVersionsListItem`.
pub(crate) fn layer_versions_list_item(l: &LayerVersion) -> Value {
    json!({
        "LayerVersionArn": l.layer_version_arn,
        "Version": l.version,
        "Description": l.description,
        "CreatedDate": l.created_date,
        "CompatibleRuntimes": l.compatible_runtimes.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
    })
}

/// `Concurrency` / `GetFunctionConcurrencyResponse` (empty when none is reserved).
pub(crate) fn concurrency(reserved: Option<u32>) -> Value {
    match reserved {
        Some(n) => json!({ "ReservedConcurrentExecutions": n }),
        None => json!({}),
    }
}
