//! Function URLs of a [`FunctionHandle`] (feature `api`): the Rust side of
//! `CreateFunctionUrlConfig` and friends, over the same operations as the REST API.

use super::FunctionHandle;
use crate::api::function_url;
use crate::urls::{FunctionUrl, FunctionUrlConfig, UrlError};

#[cfg_attr(docsrs, doc(cfg(feature = "api")))]
impl FunctionHandle {
    /// Creates this function's URL (`CreateFunctionUrlConfig`) and starts serving it on
    /// `127.0.0.1`: [`FunctionUrl::url`] is the base to send HTTP requests to. Each
    /// request invokes the function with a payload format 2.0 event and its result is
    /// mapped to the response, as Lambda does (see [`crate::urls`]).
    ///
    /// Errors: [`UrlError::Exists`] when the function already has a URL for this
    /// qualifier, [`UrlError::FunctionNotFound`] for an unknown alias,
    /// [`UrlError::Validation`] for a version number or `$LATEST` as qualifier or CORS
    /// settings over the model's limits.
    ///
    /// ```no_run
    /// # async fn demo(f: lambda_testkit::FunctionHandle) -> anyhow::Result<()> {
    /// use lambda_testkit::urls::FunctionUrlConfig;
    /// let url = f.create_url(FunctionUrlConfig::new()).await?;
    /// let response = reqwest::get(format!("{}hello?name=ada", url.url())).await?;
    /// assert_eq!(response.status(), 200);
    /// # Ok(()) }
    /// ```
    pub async fn create_url(&self, config: FunctionUrlConfig) -> Result<FunctionUrl, UrlError> {
        function_url::create(&self.core, &self.name, config)
    }

    /// This function's unqualified URL, if it has one (`GetFunctionUrlConfig`).
    pub fn url(&self) -> Option<FunctionUrl> {
        function_url::get(&self.core, &self.name, None).ok()
    }

    /// Every URL of this function, unqualified first (`ListFunctionUrlConfigs`).
    pub fn urls(&self) -> Vec<FunctionUrl> {
        function_url::list(&self.core, &self.name).unwrap_or_default()
    }

    /// Replaces the auth type, CORS settings and invoke mode of the URL for
    /// `config`'s qualifier (`UpdateFunctionUrlConfig`); its address stays, and the next
    /// request is served with the new settings.
    pub fn update_url(&self, config: FunctionUrlConfig) -> Result<FunctionUrl, UrlError> {
        function_url::update(&self.core, &self.name, config.qualifier.as_deref(), |url| {
            url.auth_type = config.auth;
            url.cors = config.cors;
            url.invoke_mode = config.invoke_mode;
        })
    }

    /// Deletes the URL for `qualifier` (`None`: the unqualified one;
    /// `DeleteFunctionUrlConfig`). It stops answering at once.
    pub fn delete_url(&self, qualifier: Option<&str>) -> Result<(), UrlError> {
        function_url::delete(&self.core, &self.name, qualifier)
    }
}
