//! The admin listener: deploy, inspect and roll back apps, set their
//! configuration and the routes. Every request but `/healthz` needs the
//! bearer token when one is configured.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::AUTHORIZATION;
use hyper::{Method, Request, StatusCode};
use serde::Deserialize;

use super::http::{self, HttpResponse};
use super::webhooks::health;
use crate::apps::routes::RouteTable;
use crate::apps::settings::AppSettings;
use crate::apps::{AdminError, AppRegistry};
use crate::runtime::AppConfig;
use crate::service::IvrService;
use crate::store::sessions::SessionFilter;

/// Largest JSON body accepted for routes, config and rollback requests.
const JSON_BODY_LIMIT: usize = 1024 * 1024;
/// Largest secret value accepted (the limit itself is checked after, with
/// a clear message; this only bounds the read).
const SECRET_BODY_LIMIT: usize = 128 * 1024;
/// Time allowed to receive a JSON body.
const JSON_BODY_TIME: Duration = Duration::from_secs(10);
/// Time allowed to receive an uploaded component (32 MiB at 300 KB/s).
const UPLOAD_TIME: Duration = Duration::from_secs(120);

/// What the admin listener needs.
pub struct AdminEdge {
    /// The bearer token required on every request but `/healthz`; `None` on
    /// a loopback listener started without one.
    pub token: Option<String>,
    /// The service whose apps are administered.
    pub service: Arc<IvrService>,
    /// Largest accepted component upload, in bytes.
    pub upload_limit: usize,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RollbackRequest {
    version: Option<u32>,
}

impl AdminEdge {
    /// Answer one request.
    pub async fn handle(&self, request: Request<Incoming>) -> HttpResponse {
        let path = request.uri().path().to_owned();
        if path == "/healthz" {
            return health(&request);
        }
        if let Some(refusal) = self.refuse_unauthorized(&request) {
            return http::refuse(request, refusal).await;
        }
        let apps = self.service.apps();
        let method = request.method().clone();
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        match segments.as_slice() {
            ["apps"] => match method {
                Method::GET => to_json(
                    StatusCode::OK,
                    apps.list().await.map(|a| serde_json::json!({ "apps": a })),
                ),
                _ => http::method_not_allowed(&method, &path, "GET"),
            },
            ["apps", name] => match method {
                Method::GET => to_json(StatusCode::OK, apps.show(name).await),
                Method::PUT => self.deploy(apps, name, request).await,
                Method::DELETE => to_json(
                    StatusCode::OK,
                    self.service
                        .delete_app(name)
                        .await
                        .map(|()| serde_json::json!({ "deleted": name })),
                ),
                _ => http::method_not_allowed(&method, &path, "GET, PUT, DELETE"),
            },
            ["apps", name, "rollback"] => match method {
                Method::POST => {
                    let body: RollbackRequest = match read_json(request, true).await {
                        Ok(body) => body,
                        Err(response) => return response,
                    };
                    to_json(StatusCode::OK, apps.rollback(name, body.version).await)
                }
                _ => http::method_not_allowed(&method, &path, "POST"),
            },
            ["apps", name, "config"] => match method {
                Method::GET => to_json(StatusCode::OK, apps.show(name).await.map(|a| a.config)),
                Method::PUT => {
                    let config: AppConfig = match read_json(request, false).await {
                        Ok(config) => config,
                        Err(response) => return response,
                    };
                    to_json(
                        StatusCode::OK,
                        apps.set_config(name, config.clone()).await.map(|()| config),
                    )
                }
                _ => http::method_not_allowed(&method, &path, "GET, PUT"),
            },
            ["apps", name, "settings"] => match method {
                Method::GET => to_json(StatusCode::OK, apps.show(name).await.map(|a| a.settings)),
                Method::PUT => {
                    let settings: AppSettings = match read_json(request, false).await {
                        Ok(settings) => settings,
                        Err(response) => return response,
                    };
                    to_json(
                        StatusCode::OK,
                        apps.set_settings(name, settings.clone())
                            .await
                            .map(|()| settings),
                    )
                }
                _ => http::method_not_allowed(&method, &path, "GET, PUT"),
            },
            ["apps", name, "secrets"] => match method {
                Method::GET => to_json(
                    StatusCode::OK,
                    apps.secret_names(name)
                        .map(|names| serde_json::json!({ "secrets": names })),
                ),
                _ => http::method_not_allowed(&method, &path, "GET"),
            },
            ["apps", name, "secrets", key] => match method {
                Method::PUT => {
                    // The body is the value, as sent (never echoed back).
                    let bytes =
                        match http::read_body(request, SECRET_BODY_LIMIT, JSON_BODY_TIME).await {
                            Ok(bytes) => bytes,
                            Err(response) => return response,
                        };
                    let Ok(value) = String::from_utf8(bytes.to_vec()) else {
                        return http::error(
                            StatusCode::BAD_REQUEST,
                            "invalid secret",
                            "the value is not UTF-8 text",
                        );
                    };
                    to_json(
                        StatusCode::OK,
                        apps.set_secret(name, key, value)
                            .await
                            .map(|()| serde_json::json!({ "app": name, "secret": key })),
                    )
                }
                Method::DELETE => to_json(
                    StatusCode::OK,
                    apps.delete_secret(name, key)
                        .await
                        .map(|()| serde_json::json!({ "deleted": key })),
                ),
                _ => http::method_not_allowed(&method, &path, "PUT, DELETE"),
            },
            ["stats"] => match method {
                Method::GET => to_json(
                    StatusCode::OK,
                    Ok::<_, AdminError>(serde_json::json!({
                        "calls_pinned": apps.pinned_calls(),
                        "calls_evicted": self.service.calls_evicted(),
                        "warm_instances_idle": apps.idle_warm_instances(),
                        "trace_records_dropped": self.service.sessions().dropped_records(),
                    })),
                ),
                _ => http::method_not_allowed(&method, &path, "GET"),
            },
            ["sessions"] => match method {
                Method::GET => {
                    let filter = match session_filter(request.uri().query().unwrap_or_default()) {
                        Ok(filter) => filter,
                        Err(reason) => {
                            return http::error(StatusCode::BAD_REQUEST, "invalid query", reason);
                        }
                    };
                    let sessions = self.service.sessions().clone();
                    let found =
                        tokio::task::spawn_blocking(move || sessions.sessions(&filter)).await;
                    match found {
                        Ok(Ok(list)) => to_json(
                            StatusCode::OK,
                            Ok::<_, AdminError>(serde_json::json!({ "sessions": list })),
                        ),
                        Ok(Err(err)) => {
                            to_json::<()>(StatusCode::OK, Err(AdminError::Internal(err)))
                        }
                        Err(err) => {
                            to_json::<()>(StatusCode::OK, Err(AdminError::Internal(err.into())))
                        }
                    }
                }
                _ => http::method_not_allowed(&method, &path, "GET"),
            },
            ["sessions", id] => match method {
                Method::GET => {
                    let sessions = self.service.sessions().clone();
                    let id = (*id).to_owned();
                    let found =
                        tokio::task::spawn_blocking(move || sessions.session(&id).map(|t| (id, t)))
                            .await;
                    match found {
                        Ok(Ok((_, Some(trace)))) => {
                            to_json(StatusCode::OK, Ok::<_, AdminError>(trace))
                        }
                        Ok(Ok((id, None))) => to_json::<()>(
                            StatusCode::OK,
                            Err(AdminError::NotFound(format!(
                                "no session {id:?} is recorded"
                            ))),
                        ),
                        Ok(Err(err)) => {
                            to_json::<()>(StatusCode::OK, Err(AdminError::Internal(err)))
                        }
                        Err(err) => {
                            to_json::<()>(StatusCode::OK, Err(AdminError::Internal(err.into())))
                        }
                    }
                }
                _ => http::method_not_allowed(&method, &path, "GET"),
            },
            ["routes"] => match method {
                Method::GET => to_json(
                    StatusCode::OK,
                    Ok::<_, AdminError>(apps.snapshot().routes().clone()),
                ),
                Method::PUT => {
                    let routes: RouteTable = match read_json(request, false).await {
                        Ok(routes) => routes,
                        Err(response) => return response,
                    };
                    to_json(
                        StatusCode::OK,
                        apps.set_routes(routes.clone()).await.map(|()| routes),
                    )
                }
                _ => http::method_not_allowed(&method, &path, "GET, PUT"),
            },
            _ => http::not_found(&path),
        }
    }

    async fn deploy(
        &self,
        apps: &AppRegistry,
        name: &str,
        request: Request<Incoming>,
    ) -> HttpResponse {
        let bytes = match http::read_body(request, self.upload_limit, UPLOAD_TIME).await {
            Ok(bytes) => bytes,
            Err(response) => return response,
        };
        if bytes.is_empty() {
            return http::error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid component",
                "the body is empty; send the component bytes",
            );
        }
        match apps.deploy(name, bytes.to_vec()).await {
            Ok(deployed) if deployed.unchanged => {
                to_json(StatusCode::OK, Ok::<_, AdminError>(deployed))
            }
            result => to_json(StatusCode::CREATED, result),
        }
    }

    /// The `401` answer for a request without the right token, if any.
    fn refuse_unauthorized(&self, request: &Request<Incoming>) -> Option<HttpResponse> {
        let token = self.token.as_ref()?;
        let presented = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match presented {
            Some(p) if http::constant_time_eq(p.as_bytes(), token.as_bytes()) => None,
            Some(_) => Some(http::error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "wrong bearer token",
            )),
            None => Some(http::error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing Authorization: Bearer <IVR_ADMIN_TOKEN> header",
            )),
        }
    }
}

/// Read a JSON body (an empty body is the default value when `empty_ok`).
async fn read_json<T: for<'de> Deserialize<'de> + Default>(
    request: Request<Incoming>,
    empty_ok: bool,
) -> Result<T, HttpResponse> {
    let bytes: Bytes = http::read_body(request, JSON_BODY_LIMIT, JSON_BODY_TIME).await?;
    if empty_ok && bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&bytes)
        .map_err(|err| http::error(StatusCode::BAD_REQUEST, "invalid JSON body", err))
}

/// `status` with `value` as JSON, or the error's status and reason.
fn to_json<T: serde::Serialize>(status: StatusCode, result: Result<T, AdminError>) -> HttpResponse {
    match result {
        Ok(value) => match serde_json::to_vec(&value) {
            Ok(body) => http::json(status, body),
            Err(err) => http::error(StatusCode::INTERNAL_SERVER_ERROR, "internal error", err),
        },
        Err(err) => {
            let (status, kind) = match &err {
                AdminError::NotFound(_) => (StatusCode::NOT_FOUND, "not found"),
                AdminError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid request"),
                AdminError::Refused(_) => (StatusCode::UNPROCESSABLE_ENTITY, "component refused"),
                AdminError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
                AdminError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
            };
            if status.is_server_error() {
                tracing::error!("admin request failed: {err}");
            }
            http::error(status, kind, err)
        }
    }
}

/// Parse `status=&app=&since=&until=&limit=` (limit default 50, at most 1000).
fn session_filter(query: &str) -> Result<SessionFilter, String> {
    let mut filter = SessionFilter {
        limit: 50,
        ..SessionFilter::default()
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(value).ok_or_else(|| format!("{key}: bad percent-encoding"))?;
        match key {
            // 8x8's statuses are upper case; `error` means `ERROR`.
            "status" => filter.status = Some(value.to_ascii_uppercase()),
            "app" => filter.app = Some(value),
            "since" | "until" => {
                let at: jiff::Timestamp = value
                    .parse()
                    .map_err(|e| format!("{key}: {value:?} is not an RFC 3339 time ({e})"))?;
                if key == "since" {
                    filter.since = Some(at.to_string());
                } else {
                    filter.until = Some(at.to_string());
                }
            }
            "limit" => {
                filter.limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| format!("limit: {value:?} is not a number from 1 to 1000"))?;
            }
            other => {
                return Err(format!(
                    "unknown parameter {other:?}; use status, app, since, until, limit"
                ));
            }
        }
    }
    Ok(filter)
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = text.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}
