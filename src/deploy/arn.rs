//! ARNs in the shapes Lambda uses for functions and layers.

/// `arn:aws:lambda:<region>:<account>:function:<name>`.
pub(crate) fn function(region: &str, account: &str, name: &str) -> String {
    format!("arn:aws:lambda:{region}:{account}:function:{name}")
}

/// `arn:aws:lambda:<region>:<account>:layer:<name>`.
pub(crate) fn layer(region: &str, account: &str, name: &str) -> String {
    format!("arn:aws:lambda:{region}:{account}:layer:{name}")
}

/// Splits a layer version ARN into its name and version.
pub(crate) fn parse_layer_version(arn: &str) -> Option<(&str, u64)> {
    let rest = arn.strip_prefix("arn:aws:lambda:")?;
    let mut parts = rest.split(':');
    let (_region, _account, kind, name, version) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    if kind != "layer" || parts.next().is_some() {
        return None;
    }
    Some((name, version.parse().ok()?))
}

/// The function name from a name, a partial ARN (`123456789012:function:name`) or a full
/// ARN, with any `:qualifier` split off, as Lambda accepts `FunctionName` in every API.
pub(crate) fn split_function_name(input: &str) -> (&str, Option<&str>) {
    // A plain name (every invoke through a `FunctionHandle`): one byte search. The
    // `"function:"` search below builds a substring searcher, ~2,700 instructions per
    // invoke under callgrind over `benches/pool.rs`.
    if memchr::memchr(b':', input.as_bytes()).is_none() {
        return (input, None);
    }
    let rest = input
        .strip_prefix("arn:aws:lambda:")
        .and_then(|r| r.splitn(3, ':').nth(2))
        .unwrap_or(input);
    let rest = rest.split_once("function:").map_or(rest, |(_, r)| r);
    match rest.split_once(':') {
        Some((name, qualifier)) => (name, Some(qualifier)),
        None => (rest, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_version_arn_round_trips() {
        let arn = format!("{}:7", layer("eu-west-1", "123456789012", "deps"));
        assert_eq!(parse_layer_version(&arn), Some(("deps", 7)));
        assert_eq!(parse_layer_version("arn:aws:lambda:r:a:function:x:1"), None);
    }

    #[test]
    fn function_names_are_found_in_names_and_arns() {
        assert_eq!(split_function_name("f"), ("f", None));
        assert_eq!(split_function_name("f:prod"), ("f", Some("prod")));
        assert_eq!(split_function_name("123456789012:function:f"), ("f", None));
        assert_eq!(
            split_function_name("arn:aws:lambda:us-east-1:123456789012:function:f:$LATEST"),
            ("f", Some("$LATEST"))
        );
    }
}
