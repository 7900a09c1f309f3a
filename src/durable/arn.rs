//! Durable execution ARNs:
//! `arn:aws:lambda:<region>:<account>:function:<name>:<qualifier>/durable-execution/<execution name>/<id>`
//! (the model's `DurableExecutionArn` pattern: the qualifier is `$LATEST` or a version
//! number, name and id are `[a-zA-Z0-9_-]+`).

/// The parts of a durable execution ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExecutionArn<'a> {
    /// The qualified function ARN (`…:function:<name>:<qualifier>`).
    pub(crate) function_arn: &'a str,
    /// The function's name.
    pub(crate) function: &'a str,
    /// `$LATEST` or a version number.
    pub(crate) qualifier: &'a str,
    /// The execution's name (`X-Amz-Durable-Execution-Name`, or generated).
    pub(crate) name: &'a str,
    /// The execution's id: also the id of its EXECUTION operation.
    pub(crate) id: &'a str,
}

const SEPARATOR: &str = "/durable-execution/";

/// The ARN of execution `name`/`id` of `function_arn` (unqualified) at `qualifier`.
pub(crate) fn format(function_arn: &str, qualifier: &str, name: &str, id: &str) -> String {
    format!("{function_arn}:{qualifier}{SEPARATOR}{name}/{id}")
}

/// Splits a durable execution ARN; `None` if it is not one.
pub(crate) fn parse(arn: &str) -> Option<ExecutionArn<'_>> {
    let (function_arn, rest) = arn.split_once(SEPARATOR)?;
    let (name, id) = rest.split_once('/')?;
    let valid = |s: &str| {
        !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if !valid(name) || !valid(id) {
        return None;
    }
    let rest = function_arn.strip_prefix("arn:aws:lambda:")?;
    let mut parts = rest.split(':');
    let (_region, _account, kind, function, qualifier) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    if kind != "function" || parts.next().is_some() || function.is_empty() || qualifier.is_empty() {
        return None;
    }
    Some(ExecutionArn {
        function_arn,
        function,
        qualifier,
        name,
        id,
    })
}

/// Whether `name` is a valid `DurableExecutionName` (1-64 of `[a-zA-Z0-9-_]`).
pub(crate) fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execution_arns_round_trip() {
        let arn = format(
            "arn:aws:lambda:us-east-1:123456789012:function:orders",
            "$LATEST",
            "order-17",
            "0b9a4c",
        );
        assert_eq!(
            arn,
            "arn:aws:lambda:us-east-1:123456789012:function:orders:$LATEST/durable-execution/order-17/0b9a4c"
        );
        let parts = parse(&arn).unwrap();
        assert_eq!(parts.function, "orders");
        assert_eq!(parts.qualifier, "$LATEST");
        assert_eq!(parts.name, "order-17");
        assert_eq!(parts.id, "0b9a4c");
        assert_eq!(
            parts.function_arn,
            "arn:aws:lambda:us-east-1:123456789012:function:orders:$LATEST"
        );
    }

    #[test]
    fn other_strings_are_not_execution_arns() {
        assert_eq!(parse("arn:aws:lambda:r:1:function:f"), None);
        assert_eq!(
            parse("arn:aws:lambda:r:1:function:f/durable-execution/a/b"),
            None
        );
        assert_eq!(
            parse("arn:aws:lambda:r:1:layer:f:1/durable-execution/a/b"),
            None
        );
        assert_eq!(
            parse("arn:aws:lambda:r:1:function:f:1/durable-execution/a b/c"),
            None
        );
        assert!(valid_name("a-b_9"));
        assert!(!valid_name(""));
        assert!(!valid_name("a/b"));
        assert!(!valid_name(&"a".repeat(65)));
    }
}
