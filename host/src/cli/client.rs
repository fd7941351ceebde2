//! A small client of the admin API, for the CLI subcommands.

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// Where the admin API is and how to authenticate.
#[derive(Debug, Clone, clap::Args)]
pub struct AdminTarget {
    /// The admin API's URL.
    #[arg(
        long = "admin",
        global = true,
        env = "IVR_ADMIN_URL",
        default_value = "http://127.0.0.1:8081",
        value_name = "URL"
    )]
    pub url: String,
    /// The admin bearer token.
    #[arg(
        long,
        global = true,
        env = "IVR_ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
}

impl AdminTarget {
    /// Send one request and return the JSON answer of a 2xx; any other
    /// outcome becomes an error message a person can act on.
    pub fn call(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> anyhow::Result<Value> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        runtime.block_on(self.send(method, path, body))
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<Value> {
        let base = self.url.trim_end_matches('/');
        // `--admin 127.0.0.1:8081` means the same as with `http://`.
        let base = if base.contains("://") {
            base.to_owned()
        } else {
            format!("http://{base}")
        };
        let url = format!("{base}{path}");
        let mut request = Request::builder().method(method.clone()).uri(&url);
        if let Some(token) = &self.token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        if body.is_some() {
            request = request.header(CONTENT_TYPE, "application/octet-stream");
        }
        let upload = body.as_ref().map_or(0, Vec::len);
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .with_context(|| format!("invalid admin URL {url:?}"))?;
        let client = Client::builder(TokioExecutor::new()).build_http();
        let response = client.request(request).await.map_err(|err| {
            let mut cause = format!("{err}");
            let mut source = std::error::Error::source(&err);
            while let Some(inner) = source {
                cause = format!("{inner}");
                source = inner.source();
            }
            if upload > 0 && !err.is_connect() {
                // The host answers an upload over its limit with 413 and
                // stops reading once past a bound; the client then sees the
                // connection close mid-body, not the 413.
                return anyhow::anyhow!(
                    "the admin API at {base} closed the connection while receiving {upload} bytes ({cause}): \
                     the upload is likely over the host's limit (`--upload-mib`, 32 MiB by default)"
                );
            }
            anyhow::anyhow!(
                "cannot reach the admin API at {base}: {cause} (is `ivr-host serve` running there?)"
            )
        })?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .with_context(|| format!("reading the answer to {method} {path}"))?
            .to_bytes();
        let json: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        if status.is_success() {
            return Ok(json);
        }
        let reason = match (&json["error"], &json["detail"]) {
            (Value::String(e), Value::String(d)) => format!("{e}: {d}"),
            _ => json.to_string(),
        };
        match status {
            StatusCode::UNAUTHORIZED => bail!(
                "the admin API refused the request (401 {reason}); pass the token with --token or IVR_ADMIN_TOKEN"
            ),
            _ => bail!("{method} {path} failed with {status}: {reason}"),
        }
    }
}
