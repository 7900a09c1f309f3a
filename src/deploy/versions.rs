//! Published versions and aliases of one function, and what a qualifier resolves to: the
//! bookkeeping only (which numbers exist, where each alias points, its weighted routing);
//! the environments of each version are the service's.
//!
//! Source: AWS "Lambda function versions" (numbers 1, 2, … never reused; publishing
//! unchanged code and configuration returns the latest version), "Lambda function
//! aliases" (an alias points at one version, optionally routing a weight of the invokes
//! to a second; routing cannot involve `$LATEST`), and the API reference's errors.

use std::collections::BTreeMap;

/// The unpublished, editable version.
pub const LATEST: &str = "$LATEST";

/// An alias: `GetAlias`'s shape.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Alias {
    /// `Name`, e.g. `live`.
    pub name: String,
    /// `AliasArn`: `arn:aws:lambda:<region>:<account>:function:<function>:<alias>`.
    pub alias_arn: String,
    /// `FunctionVersion`: the version it points at (`1`, … or `$LATEST`).
    pub function_version: String,
    /// `Description`.
    pub description: String,
    /// `RoutingConfig.AdditionalVersionWeights`: a second version and the share of
    /// invokes (0.0–1.0) it gets.
    pub routing: Option<(String, f64)>,
    /// `RevisionId`: a fresh UUID on every change.
    pub revision_id: String,
}

/// What a qualifier resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resolved {
    /// The version that runs: `$LATEST` or a number.
    pub(crate) version: String,
    /// The alias invoked, if any.
    pub(crate) alias: Option<String>,
}

/// Why a version or alias operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VersionError {
    /// No such version (`ResourceNotFoundException`).
    #[error("Function not found: {0}")]
    UnknownVersion(String),
    /// No such alias (`ResourceNotFoundException`).
    #[error("Alias not found: {0}")]
    UnknownAlias(String),
    /// `CreateAlias` of a name in use (`ResourceConflictException`).
    #[error("Alias already exists: {0}")]
    AliasExists(String),
    /// A bad alias name, weight or routing (`InvalidParameterValueException`).
    #[error("{0}")]
    Invalid(String),
}

/// The versions and aliases of one function.
#[derive(Debug, Default)]
pub(crate) struct Versions {
    /// Published version numbers, with the content id (`FunctionConfig::content_id`) each
    /// was published from.
    published: BTreeMap<u32, String>,
    /// The last number handed out (numbers are never reused, even after a delete).
    last: u32,
    aliases: BTreeMap<String, Alias>,
}

impl Versions {
    /// `PublishVersion` of what has content id `content_id`: the new version's number, or
    /// `(number, false)` for the latest published version when its content is the same
    /// (Lambda returns it instead of publishing a copy).
    pub(crate) fn publish(&mut self, content_id: &str) -> (u32, bool) {
        if let Some((&n, id)) = self.published.iter().next_back()
            && id == content_id
        {
            return (n, false);
        }
        self.last += 1;
        self.published.insert(self.last, content_id.to_string());
        (self.last, true)
    }

    /// Published version numbers, ascending.
    #[cfg(test)]
    pub(crate) fn numbers(&self) -> Vec<u32> {
        self.published.keys().copied().collect()
    }

    /// Checks that `version` (`$LATEST` or a number) exists.
    pub(crate) fn check(&self, version: &str) -> Result<(), VersionError> {
        if version == LATEST
            || version
                .parse::<u32>()
                .is_ok_and(|n| self.published.contains_key(&n))
        {
            Ok(())
        } else {
            Err(VersionError::UnknownVersion(version.to_string()))
        }
    }

    /// `DeleteFunction` with a version qualifier. An alias still pointing at it refuses.
    pub(crate) fn delete_version(&mut self, version: u32) -> Result<(), VersionError> {
        let number = version.to_string();
        if let Some(alias) = self.aliases.values().find(|a| {
            a.function_version == number || a.routing.as_ref().is_some_and(|(v, _)| *v == number)
        }) {
            return Err(VersionError::Invalid(format!(
                "Unable to delete version because the following aliases reference it: [{}]",
                alias.name
            )));
        }
        self.published
            .remove(&version)
            .map(|_| ())
            .ok_or(VersionError::UnknownVersion(number))
    }

    /// The alias `name`.
    pub(crate) fn alias(&self, name: &str) -> Result<&Alias, VersionError> {
        self.aliases
            .get(name)
            .ok_or_else(|| VersionError::UnknownAlias(name.to_string()))
    }

    /// Every alias, by name.
    pub(crate) fn aliases(&self) -> Vec<Alias> {
        self.aliases.values().cloned().collect()
    }

    fn validate(&self, alias: &Alias) -> Result<(), VersionError> {
        let name = &alias.name;
        let valid = !name.is_empty()
            && name.len() <= 128
            && name.parse::<u32>().is_err()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            return Err(VersionError::Invalid(format!(
                "1 validation error detected: Value '{name}' at 'name' failed to satisfy constraint: Member must satisfy regular expression pattern: (?!^[0-9]+$)([a-zA-Z0-9-_]+)"
            )));
        }
        self.check(&alias.function_version)?;
        if let Some((version, weight)) = &alias.routing {
            if alias.function_version == LATEST || version == LATEST {
                return Err(VersionError::Invalid(
                    "$LATEST is not supported for an alias pointing to more than 1 version"
                        .to_string(),
                ));
            }
            if *version == alias.function_version {
                return Err(VersionError::Invalid(format!(
                    "Invalid function version {version}. Function version {version} is already included in routing configuration."
                )));
            }
            if !(0.0..=1.0).contains(weight) {
                return Err(VersionError::Invalid(format!(
                    "Invalid weight {weight}: weights must be between 0.0 and 1.0"
                )));
            }
            self.check(version)?;
        }
        Ok(())
    }

    /// `CreateAlias`.
    pub(crate) fn create_alias(&mut self, alias: Alias) -> Result<Alias, VersionError> {
        if self.aliases.contains_key(&alias.name) {
            return Err(VersionError::AliasExists(alias.name));
        }
        self.validate(&alias)?;
        self.aliases.insert(alias.name.clone(), alias.clone());
        Ok(alias)
    }

    /// `UpdateAlias`: `change` edits the alias as it is.
    pub(crate) fn update_alias(
        &mut self,
        name: &str,
        change: impl FnOnce(&mut Alias),
    ) -> Result<Alias, VersionError> {
        let mut alias = self.alias(name)?.clone();
        change(&mut alias);
        alias.revision_id = uuid::Uuid::new_v4().to_string();
        self.validate(&alias)?;
        self.aliases.insert(alias.name.clone(), alias.clone());
        Ok(alias)
    }

    /// `DeleteAlias`.
    pub(crate) fn delete_alias(&mut self, name: &str) -> Result<(), VersionError> {
        self.aliases
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| VersionError::UnknownAlias(name.to_string()))
    }

    /// What `qualifier` (none: `$LATEST`; a number; an alias) runs. `roll` in `[0, 1)`
    /// picks between an alias's versions: below the additional version's weight, that one.
    pub(crate) fn resolve(
        &self,
        qualifier: Option<&str>,
        roll: f64,
    ) -> Result<Resolved, VersionError> {
        let qualifier = qualifier.filter(|q| !q.is_empty()).unwrap_or(LATEST);
        if qualifier == LATEST || qualifier.parse::<u32>().is_ok() {
            self.check(qualifier)?;
            return Ok(Resolved {
                version: qualifier.to_string(),
                alias: None,
            });
        }
        let alias = self.alias(qualifier)?;
        let version = match &alias.routing {
            Some((other, weight)) if roll < *weight => other.clone(),
            _ => alias.function_version.clone(),
        };
        Ok(Resolved {
            version,
            alias: Some(alias.name.clone()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alias(name: &str, version: &str, routing: Option<(&str, f64)>) -> Alias {
        Alias {
            name: name.into(),
            alias_arn: format!("arn:aws:lambda:us-east-1:123456789012:function:f:{name}"),
            function_version: version.into(),
            description: String::new(),
            routing: routing.map(|(v, w)| (v.to_string(), w)),
            revision_id: "r".into(),
        }
    }

    #[test]
    fn versions_count_up_and_unchanged_code_returns_the_latest() {
        let mut v = Versions::default();
        assert_eq!(v.publish("a"), (1, true));
        assert_eq!(v.publish("a"), (1, false), "unchanged");
        assert_eq!(v.publish("b"), (2, true));
        v.delete_version(2).unwrap();
        assert_eq!(v.publish("c"), (3, true), "numbers are never reused");
        assert_eq!(v.numbers(), vec![1, 3]);
    }

    #[test]
    fn qualifiers_resolve_to_versions_and_aliases() {
        let mut v = Versions::default();
        v.publish("a");
        v.create_alias(alias("live", "1", None)).unwrap();
        let latest = Resolved {
            version: LATEST.into(),
            alias: None,
        };
        assert_eq!(v.resolve(None, 0.0), Ok(latest.clone()));
        assert_eq!(v.resolve(Some(""), 0.0), Ok(latest));
        assert_eq!(v.resolve(Some("1"), 0.0).unwrap().version, "1");
        assert_eq!(
            v.resolve(Some("live"), 0.0),
            Ok(Resolved {
                version: "1".into(),
                alias: Some("live".into())
            })
        );
        assert_eq!(
            v.resolve(Some("7"), 0.0),
            Err(VersionError::UnknownVersion("7".into()))
        );
        assert_eq!(
            v.resolve(Some("nope"), 0.0),
            Err(VersionError::UnknownAlias("nope".into()))
        );
    }

    #[test]
    fn weighted_routing_sends_the_weight_to_the_additional_version() {
        let mut v = Versions::default();
        v.publish("a");
        v.publish("b");
        v.create_alias(alias("canary", "1", Some(("2", 0.25))))
            .unwrap();
        assert_eq!(v.resolve(Some("canary"), 0.1).unwrap().version, "2");
        assert_eq!(v.resolve(Some("canary"), 0.25).unwrap().version, "1");
        assert_eq!(v.resolve(Some("canary"), 0.9).unwrap().version, "1");
    }

    #[test]
    fn alias_refusals() {
        let mut v = Versions::default();
        v.publish("a");
        v.publish("b");
        for bad in [
            alias("42", "1", None),
            alias("has space", "1", None),
            alias("w", "$LATEST", Some(("1", 0.5))),
            alias("w", "1", Some(("1", 0.5))),
            alias("w", "1", Some(("2", 1.5))),
        ] {
            assert!(
                matches!(v.create_alias(bad.clone()), Err(VersionError::Invalid(_))),
                "{bad:?}"
            );
        }
        assert_eq!(
            v.create_alias(alias("w", "9", None)),
            Err(VersionError::UnknownVersion("9".into()))
        );
        v.create_alias(alias("live", "$LATEST", None)).unwrap();
        assert_eq!(
            v.create_alias(alias("live", "1", None)),
            Err(VersionError::AliasExists("live".into()))
        );
        v.update_alias("live", |a| a.function_version = "2".into())
            .unwrap();
        assert!(matches!(
            v.delete_version(2),
            Err(VersionError::Invalid(m)) if m.contains("live")
        ));
        v.delete_alias("live").unwrap();
        assert_eq!(
            v.delete_alias("live"),
            Err(VersionError::UnknownAlias("live".into()))
        );
        v.delete_version(2).unwrap();
    }
}
