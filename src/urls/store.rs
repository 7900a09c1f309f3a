//! The function URL configs of one emulator, keyed by function and qualifier, each with
//! the task serving it (aborted when the config goes: deleted, its function deleted, the
//! emulator shut down or dropped).

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use rand::Rng;
use tokio::task::AbortHandle;

use super::{FunctionUrl, UrlError};

/// A function name and the URL's qualifier (`None`: the unqualified function).
type Key = (String, Option<String>);

struct Entry {
    url: FunctionUrl,
    server: AbortHandle,
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Every function URL config, with its serving task.
#[derive(Default)]
pub(crate) struct UrlStore {
    urls: Mutex<BTreeMap<Key, Entry>>,
}

/// A new URL id: 32 lowercase letters and digits, as Lambda's.
pub(crate) fn new_url_id() -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..32)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

/// Now in the ISO-8601 form Lambda reports URL timestamps in
/// (`2024-05-01T12:00:00.123456Z`).
pub(crate) fn now_iso8601() -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    );
    time::OffsetDateTime::now_utc()
        .format(&format)
        .unwrap_or_default()
}

impl UrlStore {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<Key, Entry>> {
        self.urls.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `url`, served by `server`; a URL for the same function and qualifier is a
    /// conflict (and `server` is stopped).
    pub(crate) fn insert(&self, url: FunctionUrl, server: AbortHandle) -> Result<(), UrlError> {
        let key = (url.function_name.clone(), url.qualifier.clone());
        let mut urls = self.lock();
        if urls.contains_key(&key) {
            server.abort();
            return Err(UrlError::Exists(url.function_arn));
        }
        urls.insert(key, Entry { url, server });
        Ok(())
    }

    /// The URL of `function` for `qualifier`.
    pub(crate) fn get(&self, function: &str, qualifier: Option<&str>) -> Option<FunctionUrl> {
        let key = (function.to_string(), qualifier.map(str::to_string));
        self.lock().get(&key).map(|e| e.url.clone())
    }

    /// The URL whose id is `id`.
    pub(crate) fn by_id(&self, id: &str) -> Option<FunctionUrl> {
        self.lock()
            .values()
            .find(|e| e.url.url_id == id)
            .map(|e| e.url.clone())
    }

    /// Changes the URL of `function` for `qualifier` and stamps `LastModifiedTime`.
    pub(crate) fn update(
        &self,
        function: &str,
        qualifier: Option<&str>,
        change: impl FnOnce(&mut FunctionUrl),
    ) -> Option<FunctionUrl> {
        let key = (function.to_string(), qualifier.map(str::to_string));
        let mut urls = self.lock();
        let entry = urls.get_mut(&key)?;
        change(&mut entry.url);
        entry.url.last_modified_time = now_iso8601();
        Some(entry.url.clone())
    }

    /// Removes (and stops serving) the URL of `function` for `qualifier`.
    pub(crate) fn remove(&self, function: &str, qualifier: Option<&str>) -> Option<FunctionUrl> {
        let key = (function.to_string(), qualifier.map(str::to_string));
        let entry = self.lock().remove(&key)?;
        Some(entry.url.clone())
    }

    /// Removes every URL of `function` (the function was deleted).
    pub(crate) fn remove_function(&self, function: &str) {
        self.lock().retain(|(name, _), _| name != function);
    }

    /// The URLs of `function`, unqualified first, then by alias name.
    pub(crate) fn list(&self, function: &str) -> Vec<FunctionUrl> {
        self.lock()
            .iter()
            .filter(|((name, _), _)| name == function)
            .map(|(_, e)| e.url.clone())
            .collect()
    }

    /// Stops serving every URL.
    pub(crate) fn clear(&self) {
        let urls = std::mem::take(&mut *self.lock());
        drop(urls);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::urls::{AuthType, InvokeMode};

    fn url(function: &str, qualifier: Option<&str>) -> FunctionUrl {
        FunctionUrl {
            function_url: "http://127.0.0.1:1/".into(),
            function_arn: format!("arn:aws:lambda:us-east-1:123456789012:function:{function}"),
            function_name: function.into(),
            qualifier: qualifier.map(str::to_string),
            url_id: new_url_id(),
            domain_name: String::new(),
            auth_type: AuthType::None,
            cors: None,
            invoke_mode: InvokeMode::Buffered,
            creation_time: now_iso8601(),
            last_modified_time: now_iso8601(),
        }
    }

    #[tokio::test]
    async fn one_url_per_function_and_qualifier_and_removal_stops_its_server() {
        let store = UrlStore::default();
        let server = tokio::spawn(std::future::pending::<()>());
        store.insert(url("f", None), server.abort_handle()).unwrap();
        store
            .insert(
                url("f", Some("live")),
                tokio::spawn(std::future::pending::<()>()).abort_handle(),
            )
            .unwrap();
        let duplicate = tokio::spawn(std::future::pending::<()>());
        assert!(matches!(
            store.insert(url("f", None), duplicate.abort_handle()),
            Err(UrlError::Exists(_))
        ));
        assert!(duplicate.await.unwrap_err().is_cancelled());
        assert_eq!(store.list("f").len(), 2);
        assert_eq!(store.list("f")[0].qualifier, None, "unqualified first");
        store.remove("f", None).unwrap();
        assert!(server.await.unwrap_err().is_cancelled());
        store.remove_function("f");
        assert!(store.list("f").is_empty());
    }

    #[test]
    fn url_ids_are_lambdas_shape() {
        let id = new_url_id();
        assert_eq!(id.len(), 32);
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        );
        assert!(now_iso8601().ends_with('Z'));
    }
}
