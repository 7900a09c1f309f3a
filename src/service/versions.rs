//! Versions, aliases and provisioned concurrency of the core's functions: which pool a
//! qualifier runs on, publishing snapshots, alias routing, environments kept initialized.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{Core, lock};
use crate::deploy::{Alias, DeployError, FunctionConfig, LATEST, VersionError, Versions, arn};
use crate::execution::Pool;
use crate::stats::EvictionReason;

#[derive(Default)]
pub(super) struct Published {
    pub(super) book: Versions,
    /// Each published version's environments.
    pub(super) pools: BTreeMap<u32, Arc<Pool>>,
    /// Provisioned concurrency by qualifier (version or alias).
    pub(super) provisioned: BTreeMap<String, ProvisionedConcurrency>,
}

/// `GetProvisionedConcurrencyConfig`'s shape.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProvisionedConcurrency {
    /// `RequestedProvisionedConcurrentExecutions`.
    pub requested: u32,
    /// `AllocatedProvisionedConcurrentExecutions`: initialized and kept warm.
    pub allocated: u32,
    /// `Status`: `IN_PROGRESS` while environments initialize, then `READY` (`FAILED` if
    /// one could not start).
    pub status: String,
    /// `LastModified`.
    pub last_modified: String,
}

impl Core {
    /// The pool that runs `qualifier` of `name` (none or `$LATEST`, a version number, an
    /// alias: one of its versions, by its weights), and the alias invoked.
    pub(super) fn resolve(
        &self,
        name: &str,
        qualifier: Option<&str>,
    ) -> Result<(Arc<Pool>, Option<String>), DeployError> {
        let roll: f64 = rand::Rng::random(&mut *lock(&self.routing));
        self.resolve_with(name, qualifier, roll)
    }

    /// [`Core::resolve`] with the routing roll given: below an alias's additional weight,
    /// the additional version runs.
    fn resolve_with(
        &self,
        name: &str,
        qualifier: Option<&str>,
        roll: f64,
    ) -> Result<(Arc<Pool>, Option<String>), DeployError> {
        let entry = self.entry_or_not_found(name)?;
        let published = entry.published();
        let resolved = published.book.resolve(qualifier, roll)?;
        let pool = match resolved.version.parse::<u32>() {
            Ok(n) => published
                .pools
                .get(&n)
                .cloned()
                .ok_or(VersionError::UnknownVersion(resolved.version))?,
            Err(_) => entry.latest.clone(),
        };
        Ok((pool, resolved.alias))
    }

    /// The configuration of `qualifier` of `name` (an alias: of the version it points at).
    pub(crate) fn config_of(
        &self,
        name: &str,
        qualifier: Option<&str>,
    ) -> Result<FunctionConfig, DeployError> {
        // A roll of 1.0 is never below a weight: the alias's own version.
        let (pool, _) = self.resolve_with(name, qualifier, 1.0)?;
        Ok(pool.deployment().config.clone())
    }

    /// `PublishVersion`: a version of `$LATEST` as it is now; the latest version when
    /// nothing changed since. `code_sha256` and `revision`, when given, must match.
    pub(crate) async fn publish_version(
        &self,
        name: &str,
        code_sha256: Option<&str>,
        revision: Option<&str>,
        description: Option<String>,
    ) -> Result<FunctionConfig, DeployError> {
        self.check_open()?;
        let entry = self.entry_or_not_found(name)?;
        let latest = entry.latest.deployment();
        let current = &latest.config;
        if let Some(expected) = code_sha256.filter(|c| *c != current.code_sha256()) {
            return Err(DeployError::Invalid(format!(
                "CodeSHA256 ({expected}) is different from current CodeSHA256 in $LATEST ({}). Please try again with the CodeSHA256 in $LATEST.",
                current.code_sha256()
            )));
        }
        if let Some(expected) = revision.filter(|r| *r != current.revision_id) {
            return Err(DeployError::RevisionMismatch {
                function: current.name.clone(),
                expected: expected.to_string(),
                current: current.revision_id.clone(),
            });
        }
        let (number, new) = entry.published().book.publish(&current.content_id());
        if !new {
            return Ok(entry.published().pools[&number].deployment().config.clone());
        }
        let deployment = match self.registry.snapshot(&latest, number, description).await {
            Ok(deployment) => Arc::new(deployment),
            Err(e) => {
                let _ = entry.published().book.delete_version(number);
                return Err(e);
            }
        };
        let config = deployment.config.clone();
        let recorder = self
            .timeline
            .recorder(&format!("{}:{number}", current.name));
        let pool = Pool::new(&current.name, deployment, recorder);
        entry.published().pools.insert(number, pool);
        Ok(config)
    }

    /// `ListVersionsByFunction`: `$LATEST`, then each version in order.
    pub(crate) fn versions(&self, name: &str) -> Result<Vec<FunctionConfig>, DeployError> {
        let entry = self.entry_or_not_found(name)?;
        let mut configs = vec![entry.latest.deployment().config.clone()];
        configs.extend(
            entry
                .published()
                .pools
                .values()
                .map(|p| p.deployment().config.clone()),
        );
        Ok(configs)
    }

    /// `DeleteFunction` with a version number: that version and its environments.
    pub(crate) fn delete_version(&self, name: &str, version: &str) -> Result<(), DeployError> {
        self.check_open()?;
        let entry = self.entry_or_not_found(name)?;
        let number: u32 = version.parse().map_err(|_| {
            DeployError::Invalid(format!(
                "Deletion of aliases is not supported through DeleteFunction ({version}): use DeleteAlias"
            ))
        })?;
        let pool = {
            let mut published = entry.published();
            published.book.delete_version(number)?;
            published.pools.remove(&number)
        };
        if let Some(pool) = pool {
            pool.close(EvictionReason::FunctionDeleted, true);
        }
        Ok(())
    }

    /// The pool of a version (or the version an alias points at) for provisioned
    /// concurrency, which Lambda refuses on `$LATEST`.
    pub(super) fn provisionable(
        &self,
        name: &str,
        qualifier: &str,
    ) -> Result<Arc<Pool>, DeployError> {
        let entry = self.entry_or_not_found(name)?;
        let published = entry.published();
        let version = match qualifier.parse::<u32>() {
            Ok(n) => n,
            Err(_) if qualifier == LATEST || qualifier.is_empty() => {
                return Err(DeployError::Invalid(
                    "Provisioned Concurrency Configs cannot be applied to unpublished function versions."
                        .to_string(),
                ));
            }
            Err(_) => {
                let alias = published.book.alias(qualifier)?;
                if alias.routing.is_some() {
                    return Err(DeployError::Invalid(
                        "Alias with weights can not be used with Provisioned Concurrency"
                            .to_string(),
                    ));
                }
                alias.function_version.parse().map_err(|_| {
                    DeployError::Invalid(
                        "Provisioned Concurrency Configs cannot be applied to unpublished function versions."
                            .to_string(),
                    )
                })?
            }
        };
        published
            .pools
            .get(&version)
            .cloned()
            .ok_or_else(|| VersionError::UnknownVersion(version.to_string()).into())
    }

    /// `PutProvisionedConcurrencyConfig`: keeps `n` environments of `qualifier` (a version
    /// or an alias without weights) initialized; resolves once they are (`READY`).
    pub(crate) async fn provision(
        &self,
        name: &str,
        qualifier: &str,
        n: u32,
    ) -> Result<ProvisionedConcurrency, DeployError> {
        self.check_open()?;
        if n == 0 {
            return Err(DeployError::Invalid(
                "ProvisionedConcurrentExecutions must be at least 1".to_string(),
            ));
        }
        let pool = self.provisionable(name, qualifier)?;
        let entry = self.entry_or_not_found(name)?;
        let mut config = ProvisionedConcurrency {
            requested: n,
            allocated: pool.provisioned_count() as u32,
            status: "IN_PROGRESS".to_string(),
            last_modified: crate::deploy::timestamp_now(),
        };
        entry
            .published()
            .provisioned
            .insert(qualifier.to_string(), config.clone());
        let result = pool.provision(n as usize, &self.launch).await;
        config.allocated = pool.provisioned_count() as u32;
        config.status = if result.is_ok() { "READY" } else { "FAILED" }.to_string();
        entry
            .published()
            .provisioned
            .insert(qualifier.to_string(), config.clone());
        result?;
        Ok(config)
    }

    /// `GetProvisionedConcurrencyConfig`.
    pub(crate) fn provisioned(
        &self,
        name: &str,
        qualifier: &str,
    ) -> Result<ProvisionedConcurrency, DeployError> {
        let entry = self.entry_or_not_found(name)?;
        let config = entry.published().provisioned.get(qualifier).cloned();
        config.ok_or_else(|| {
            DeployError::ProvisionedConcurrencyNotFound(format!("{name}:{qualifier}"))
        })
    }

    /// `ListProvisionedConcurrencyConfigs`: by qualifier.
    pub(crate) fn provisioned_all(
        &self,
        name: &str,
    ) -> Result<Vec<(String, ProvisionedConcurrency)>, DeployError> {
        let entry = self.entry_or_not_found(name)?;
        let published = entry.published();
        Ok(published
            .provisioned
            .iter()
            .map(|(q, c)| (q.clone(), c.clone()))
            .collect())
    }

    /// `DeleteProvisionedConcurrencyConfig`: the provisioned environments go.
    pub(crate) async fn unprovision(&self, name: &str, qualifier: &str) -> Result<(), DeployError> {
        self.provisioned(name, qualifier)?;
        let pool = self.provisionable(name, qualifier)?;
        self.entry_or_not_found(name)?
            .published()
            .provisioned
            .remove(qualifier);
        pool.provision(0, &self.launch).await?;
        Ok(())
    }

    /// `CreateAlias`.
    pub(crate) fn create_alias(
        &self,
        name: &str,
        alias: &str,
        version: &str,
        description: String,
        routing: Option<(String, f64)>,
    ) -> Result<Alias, DeployError> {
        self.check_open()?;
        let entry = self.entry_or_not_found(name)?;
        let arn = format!("{}:{alias}", entry.latest.deployment().config.arn);
        let alias = Alias {
            name: alias.to_string(),
            alias_arn: arn,
            function_version: version.to_string(),
            description,
            routing,
            revision_id: uuid::Uuid::new_v4().to_string(),
        };
        Ok(entry.published().book.create_alias(alias)?)
    }

    /// `GetAlias`.
    pub(crate) fn alias(&self, name: &str, alias: &str) -> Result<Alias, DeployError> {
        Ok(self
            .entry_or_not_found(name)?
            .published()
            .book
            .alias(alias)?
            .clone())
    }

    /// `ListAliases`, optionally only those pointing at `version`.
    pub(crate) fn aliases(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<Vec<Alias>, DeployError> {
        let mut aliases = self.entry_or_not_found(name)?.published().book.aliases();
        if let Some(version) = version {
            aliases.retain(|a| a.function_version == version);
        }
        Ok(aliases)
    }

    /// `UpdateAlias`: `change` edits the alias; `revision`, when given, must match.
    pub(crate) fn update_alias(
        &self,
        name: &str,
        alias: &str,
        revision: Option<&str>,
        change: impl FnOnce(&mut Alias),
    ) -> Result<Alias, DeployError> {
        self.check_open()?;
        let entry = self.entry_or_not_found(name)?;
        let mut published = entry.published();
        let current = published.book.alias(alias)?;
        if let Some(expected) = revision.filter(|r| *r != current.revision_id) {
            return Err(DeployError::RevisionMismatch {
                function: format!("{name}:{alias}"),
                expected: expected.to_string(),
                current: current.revision_id.clone(),
            });
        }
        Ok(published.book.update_alias(alias, change)?)
    }

    /// `DeleteAlias` (and the alias's function URL).
    pub(crate) fn delete_alias(&self, name: &str, alias: &str) -> Result<(), DeployError> {
        self.check_open()?;
        self.entry_or_not_found(name)?
            .published()
            .book
            .delete_alias(alias)?;
        self.urls
            .remove(arn::split_function_name(name).0, Some(alias));
        Ok(())
    }

    /// Whether `name` exists and `qualifier` (none: unqualified) resolves for it: a
    /// version number, an alias or `$LATEST`.
    pub(crate) fn qualifier_exists(&self, name: &str, qualifier: Option<&str>) -> bool {
        self.config_of(name, qualifier).is_ok()
    }
}
