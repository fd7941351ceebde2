//! A JavaScript app built with componentize-js's defaults — its `fetch` is
//! wasi:http — deploys, runs, and its requests obey the allowlist.

mod common;

use common::backend::Backend;
use common::{Call, Host, TOKEN, js_guest, trace_until};
use serde_json::json;

fn said(host: &Host, url: &str) -> (String, String) {
    let mut call = Call::new();
    call.client_action_id = Some("fetch".into());
    let reply = call.step(host, Some(url));
    let text = reply["callflow"][0]["params"]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (text, call.session_id)
}

#[test]
fn a_componentize_js_app_fetches_within_its_allowlist() {
    let (allowed, other) = (Backend::start(), Backend::start());
    let host = Host::start_with_env(
        &["--outbound-private-networks", "127.0.0.0/8"],
        &[("IVR_ADMIN_TOKEN", TOKEN)],
    );
    host.deploy("js", &js_guest());
    let settings = json!({ "allowed_outbound_hosts": [allowed.url] });
    let (status, body) = host.admin_call(
        "PUT",
        "/apps/js/settings",
        Some(settings.to_string().as_bytes()),
    );
    assert_eq!(status, 200, "{body}");

    let (text, session) = said(&host, &format!("{}/ok", allowed.url));
    assert_eq!(text, "status 200 bytes 5");
    let trace = trace_until(&host, &session, |t| t["events"][0]["outbound"].is_array());
    assert_eq!(trace["events"][0]["outbound"][0]["status"], 200, "{trace}");

    let (text, session) = said(&host, &format!("{}/ok", other.url));
    assert!(text.starts_with("error TypeError"), "{text}");
    assert_eq!(other.requests(), 0);
    let trace = trace_until(&host, &session, |t| t["events"][0]["outbound"].is_array());
    assert!(
        trace["events"][0]["outbound"][0]["error"]
            .as_str()
            .unwrap()
            .starts_with("denied: "),
        "{trace}"
    );
    assert!(
        host.log().contains("fetch failed: TypeError"),
        "{}",
        host.log()
    );
}
