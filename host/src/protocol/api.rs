//! The 8x8 Voice REST API the host's CLI calls (reference §6 and §7): the
//! Webhooks API (register the VCA/VSS/... URLs of a subaccount) and Send
//! Callflow (start an outbound IVR call). Requests are emitted strictly;
//! answers are read leniently (`statusCode` as a number or a string).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Action;

/// The production Voice API host.
pub const DEFAULT_API_BASE: &str = "https://voice.8x8.com";

/// The webhook types of the Webhooks API.
pub const WEBHOOK_TYPES: [&str; 5] = ["VCA", "VSS", "VCS", "VRU", "VNU"];

/// Who calls the API: the base URL, the subaccount and its API key.
#[derive(Clone)]
pub struct ApiClient {
    base: String,
    sub_account: String,
    api_key: String,
    agent: ureq::Agent,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the API key.
        f.debug_struct("ApiClient")
            .field("base", &self.base)
            .field("sub_account", &self.sub_account)
            .finish_non_exhaustive()
    }
}

/// A webhook as the API lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    /// `VCA`, `VSS`, `VCS`, `VRU` or `VNU`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Where 8x8 posts.
    pub url: String,
    /// Whether it is enabled.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Whether an auth header value is stored for it.
    #[serde(default)]
    pub http_auth_header_available: Option<bool>,
}

/// The body of a create request (§6.3).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateWebhook {
    /// Webhook type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Target URL.
    pub url: String,
    /// Enabled (the OpenAPI name; some guides say `active`).
    pub enabled: bool,
    /// The value 8x8 sends as `Authorization` on every delivery.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_auth_header: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WebhooksAnswer {
    #[serde(default)]
    webhooks: Vec<Webhook>,
    #[serde(rename = "type")]
    kind: Option<String>,
    url: Option<String>,
    enabled: Option<bool>,
    http_auth_header_available: Option<bool>,
    status_code: Option<Value>,
    status_message: Option<String>,
}

/// The answer to Send Callflow (§7.2).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallflowAnswer {
    /// The new session, when created.
    pub session_id: Option<String>,
    /// `CREATED` or `NOT_CREATED`.
    pub session_status: Option<String>,
    /// 8x8's id of the request.
    pub call_flow_request_id: Option<String>,
    /// `1` when created; a negative code (§8.1) or an HTTP-like code otherwise.
    pub status_code: Option<i64>,
    /// The reason, in words.
    pub status_message: Option<String>,
}

/// The meaning of a Voice API status code (reference §8.1).
pub fn status_code_meaning(code: i64) -> &'static str {
    match code {
        1 => "Created",
        -1001 => "Invalid JSON request body",
        -1002 => "Speech profile or language parameter invalid",
        -1003 => "Valid maxDigits required when minDigits provided",
        -1004 => "DTMF callback url not provided",
        -1005 => "Valid overallTimeout is required when digitTimeout provided",
        -1006 => "OverallTimeout should be greater than digitTimeout",
        -1007 => "Invalid action type was used",
        -1008 => "Valid maxDigits is required when completeOnHash is false",
        -1009 => "Invalid call flow entry provided",
        -1010 => "Some actions are provided beyond the allowed count",
        -1011 => "Multiple destination phone numbers found in the request",
        -1012 => "Incorrect use of action Hangup",
        -1013 => "First action should be a MakeCall action",
        -1014 => "Source or caller ID is not allowed",
        -1015 => "The validity period of the call flow request has expired",
        -1016 => "Some special characters are invalid/unaccepted",
        -1017 => "Invalid MSISDN format in Destination",
        -1018 => "Execute Scenario cannot be processed together with other actions",
        -1019 => "scenarioName is null or empty",
        -1020 => "Invalid scenarioName or no permission to execute this scenario",
        401 => "Authentication header not found or token invalid",
        404 => "Not found",
        500 => "Internal server error",
        -9999 => "An unknown error has occurred",
        _ => "unknown status code",
    }
}

fn status_text(code: &Option<Value>) -> String {
    match code {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "none".into(),
    }
}

impl ApiClient {
    /// A client for `sub_account` at `base` (no trailing slash needed).
    pub fn new(base: &str, sub_account: &str, api_key: &str) -> anyhow::Result<Self> {
        let valid = (3..=50).contains(&sub_account.len())
            && sub_account
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._&".contains(&b));
        if !valid {
            anyhow::bail!(
                "invalid subaccount id {sub_account:?}: 3-50 letters, digits, '-', '.', '_' or '&'"
            );
        }
        if api_key.trim().is_empty() {
            anyhow::bail!("no API key: pass --api-key or set IVR_8X8_API_KEY");
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            sub_account: sub_account.to_owned(),
            api_key: api_key.to_owned(),
            agent,
        })
    }

    fn url(&self, path: &str) -> String {
        format!(
            "{}/api/v1/subaccounts/{}{path}",
            self.base, self.sub_account
        )
    }

    /// One request; the status and the JSON answer, or a clear error.
    fn send(&self, method: &str, path: &str, body: Option<String>) -> anyhow::Result<(u16, Value)> {
        let url = self.url(path);
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header("authorization", format!("Bearer {}", self.api_key))
            .header("accept", "application/json");
        let result = match body {
            Some(json) => self.agent.run(
                request
                    .header("content-type", "application/json")
                    .body(json)?,
            ),
            None => self.agent.run(request.body(())?),
        };
        let mut response = result
            .map_err(|err| anyhow::anyhow!("cannot reach the 8x8 API at {}: {err}", self.base))?;
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, json))
    }

    fn failure(&self, what: &str, status: u16, json: &Value) -> anyhow::Error {
        let message = json.get("statusMessage").and_then(Value::as_str);
        let code = json.get("statusCode").map(|c| match c {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        let hint = match status {
            401 => " (check the API key)",
            403 => " (the key may not be allowed to use this subaccount)",
            404 => " (check the subaccount id)",
            _ => "",
        };
        match (code, message) {
            (Some(code), Some(message)) => {
                anyhow::anyhow!("{what} failed: HTTP {status}, 8x8 status {code}: {message}{hint}")
            }
            _ => anyhow::anyhow!("{what} failed: HTTP {status}{hint}"),
        }
    }

    /// `GET .../webhooks`.
    pub fn list_webhooks(&self) -> anyhow::Result<Vec<Webhook>> {
        let (status, json) = self.send("GET", "/webhooks", None)?;
        self.webhooks_answer("listing webhooks", status, json)
            .map(|a| a.webhooks)
    }

    /// `POST .../webhooks`; the subaccount's webhooks afterwards.
    pub fn create_webhook(&self, request: &CreateWebhook) -> anyhow::Result<Vec<Webhook>> {
        if !WEBHOOK_TYPES.contains(&request.kind.as_str()) {
            anyhow::bail!(
                "unknown webhook type {:?}: use one of {}",
                request.kind,
                WEBHOOK_TYPES.join(", ")
            );
        }
        let (status, json) =
            self.send("POST", "/webhooks", Some(serde_json::to_string(request)?))?;
        self.webhooks_answer(
            &format!("creating the {} webhook", request.kind),
            status,
            json,
        )
        .map(|a| a.webhooks)
    }

    /// `DELETE .../webhooks/{type}`; the deleted webhook.
    pub fn delete_webhook(&self, kind: &str) -> anyhow::Result<Webhook> {
        if !WEBHOOK_TYPES.contains(&kind) {
            anyhow::bail!(
                "unknown webhook type {kind:?}: use one of {}",
                WEBHOOK_TYPES.join(", ")
            );
        }
        let what = format!("deleting the {kind} webhook");
        let (status, json) = self.send("DELETE", &format!("/webhooks/{kind}"), None)?;
        let answer = self.webhooks_answer(&what, status, json)?;
        Ok(Webhook {
            kind: answer.kind.unwrap_or_else(|| kind.to_owned()),
            url: answer.url.unwrap_or_default(),
            enabled: answer.enabled,
            http_auth_header_available: answer.http_auth_header_available,
        })
    }

    fn webhooks_answer(
        &self,
        what: &str,
        status: u16,
        json: Value,
    ) -> anyhow::Result<WebhooksAnswer> {
        if !(200..300).contains(&status) {
            return Err(self.failure(what, status, &json));
        }
        let answer: WebhooksAnswer = serde_json::from_value(json.clone())
            .map_err(|e| anyhow::anyhow!("{what}: unexpected answer from 8x8 ({e}): {json}"))?;
        let ok = match &answer.status_code {
            None => true,
            Some(Value::Number(n)) => n.as_i64() == Some(0),
            Some(Value::String(s)) => s == "0",
            Some(_) => false,
        };
        if !ok {
            anyhow::bail!(
                "{what} failed: 8x8 status {}: {}",
                status_text(&answer.status_code),
                answer.status_message.as_deref().unwrap_or("no message")
            );
        }
        Ok(answer)
    }

    /// `POST .../callflows` (Send Callflow): the first action must be `makeCall`.
    pub fn send_callflow(&self, callflow: &[Action]) -> anyhow::Result<CallflowAnswer> {
        if !matches!(callflow.first(), Some(Action::MakeCall(_))) {
            anyhow::bail!("a Send Callflow request must start with makeCall");
        }
        let body = serde_json::json!({ "callflow": callflow });
        let (status, json) = self.send("POST", "/callflows", Some(body.to_string()))?;
        let answer: CallflowAnswer =
            serde_json::from_value(json.clone()).unwrap_or(CallflowAnswer {
                session_id: None,
                session_status: None,
                call_flow_request_id: None,
                status_code: None,
                status_message: json.as_str().map(str::to_owned),
            });
        if (200..300).contains(&status) && answer.session_status.as_deref() == Some("CREATED") {
            return Ok(answer);
        }
        let code = answer.status_code.unwrap_or(i64::from(status));
        anyhow::bail!(
            "the call was not created: HTTP {status}, 8x8 status {code} ({}): {}",
            status_code_meaning(code),
            answer.status_message.as_deref().unwrap_or("no message")
        )
    }
}
