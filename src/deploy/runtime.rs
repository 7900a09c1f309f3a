//! The managed runtimes an emulated function can declare.

use std::fmt;
use std::str::FromStr;

use super::DeployError;

/// A Lambda runtime identifier, as in `CreateFunction`'s `Runtime` field.
///
/// `provided.*` runs the `bootstrap` executable from the code (or `/opt/bootstrap` from a
/// layer); `python3.*` runs the real `awslambdaric` runtime client with the handler;
/// `nodejs*.x` runs the real npm `aws-lambda-ric` client on a Node.js of that major version.
/// Source: AWS "Lambda runtimes" (runtime identifiers) and "Building a custom runtime".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Runtime {
    /// `provided.al2023`: an OS-only runtime; the code ships a `bootstrap` executable.
    ProvidedAl2023,
    /// `provided.al2`: the older OS-only runtime; same contract as `provided.al2023`.
    ProvidedAl2,
    /// `python3.9`.
    Python39,
    /// `python3.10`.
    Python310,
    /// `python3.11`.
    Python311,
    /// `python3.12`.
    Python312,
    /// `python3.13`.
    Python313,
    /// `nodejs20.x`: Node.js 20.
    Nodejs20,
    /// `nodejs22.x`: Node.js 22.
    Nodejs22,
    /// `nodejs24.x`: Node.js 24.
    Nodejs24,
}

/// Every supported runtime, in the order they are listed in errors.
const ALL: [Runtime; 10] = [
    Runtime::ProvidedAl2023,
    Runtime::ProvidedAl2,
    Runtime::Python39,
    Runtime::Python310,
    Runtime::Python311,
    Runtime::Python312,
    Runtime::Python313,
    Runtime::Nodejs20,
    Runtime::Nodejs22,
    Runtime::Nodejs24,
];

impl Runtime {
    /// The identifier Lambda uses, e.g. `"python3.12"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::ProvidedAl2023 => "provided.al2023",
            Runtime::ProvidedAl2 => "provided.al2",
            Runtime::Python39 => "python3.9",
            Runtime::Python310 => "python3.10",
            Runtime::Python311 => "python3.11",
            Runtime::Python312 => "python3.12",
            Runtime::Python313 => "python3.13",
            Runtime::Nodejs20 => "nodejs20.x",
            Runtime::Nodejs22 => "nodejs22.x",
            Runtime::Nodejs24 => "nodejs24.x",
        }
    }

    /// True for the OS-only runtimes that run a `bootstrap` executable.
    pub fn is_provided(self) -> bool {
        matches!(self, Runtime::ProvidedAl2023 | Runtime::ProvidedAl2)
    }

    /// The Python minor version (`12` for `python3.12`), or `None` for other runtimes.
    pub fn python_minor(self) -> Option<u32> {
        match self {
            Runtime::Python39 => Some(9),
            Runtime::Python310 => Some(10),
            Runtime::Python311 => Some(11),
            Runtime::Python312 => Some(12),
            Runtime::Python313 => Some(13),
            _ => None,
        }
    }

    /// The Node.js major version (`22` for `nodejs22.x`), or `None` for other runtimes.
    pub fn node_major(self) -> Option<u32> {
        match self {
            Runtime::Nodejs20 => Some(20),
            Runtime::Nodejs22 => Some(22),
            Runtime::Nodejs24 => Some(24),
            _ => None,
        }
    }

    /// Whether Lambda requires a `Handler` for this runtime. OS-only runtimes accept any
    /// handler string (the bootstrap decides what it means), so none is required.
    pub fn requires_handler(self) -> bool {
        !self.is_provided()
    }

    /// Every runtime this crate can run.
    pub fn all() -> &'static [Runtime] {
        &ALL
    }
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Runtime {
    type Err = DeployError;

    /// Parses a Lambda runtime identifier; anything else is [`DeployError::UnknownRuntime`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ALL.iter()
            .copied()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| DeployError::UnknownRuntime(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_runtime_round_trips_through_its_identifier() {
        for r in Runtime::all() {
            assert_eq!(r.as_str().parse::<Runtime>().unwrap(), *r);
        }
    }

    #[test]
    fn unknown_runtime_is_a_typed_error_naming_it() {
        let err = "nodejs4.3".parse::<Runtime>().unwrap_err();
        assert!(matches!(err, DeployError::UnknownRuntime(ref s) if s == "nodejs4.3"));
        assert!(err.to_string().contains("provided.al2023"), "{err}");
        assert!(err.to_string().contains("nodejs24.x"), "{err}");
    }

    #[test]
    fn node_runtimes_name_their_major_version() {
        assert_eq!("nodejs20.x".parse::<Runtime>().unwrap(), Runtime::Nodejs20);
        assert_eq!(Runtime::Nodejs22.node_major(), Some(22));
        assert_eq!(Runtime::Nodejs24.as_str(), "nodejs24.x");
        assert_eq!(Runtime::Python312.node_major(), None);
        assert!(Runtime::Nodejs20.requires_handler());
    }
}
