//! Parsing and serialization against every JSON example of the protocol
//! reference (copied into `tests/fixtures/reference/`) and the tolerant
//! shapes of its §12.

use ivr_host::protocol::event::{
    CallAction, CallDirection, CallStatus, CallType, EventType, Webhook,
};
use ivr_host::protocol::{Action, Callflow, ReplyLimits, parse_webhook, validate};
use serde_json::Value;

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/reference/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

fn call_action(body: &str) -> CallAction {
    match parse_webhook(body.as_bytes()) {
        Ok(Webhook::CallAction(event)) => event,
        Ok(other) => panic!("expected a call action, got {other:?}"),
        Err(err) => panic!("refused: {err}"),
    }
}

fn refusal(body: &str) -> String {
    match parse_webhook(body.as_bytes()) {
        Ok(parsed) => panic!("accepted {parsed:?}"),
        Err(err) => err.message,
    }
}

/// The corrected sample of §3.3 with `payload` fields replaced.
fn sample_with(edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
    let mut value: Value = serde_json::from_str(&fixture("vca_action_completed")).unwrap();
    edit(value["payload"].as_object_mut().unwrap());
    value.to_string()
}

#[test]
fn corrected_vca_sample_parses_every_field() {
    let event = call_action(&fixture("vca_action_completed"));
    assert_eq!(
        event,
        CallAction {
            event_id: "77e6a667-133a-11ef-9dd4-e911cc6fc82f".into(),
            call_id: "627e25f1-133a-11ef-b08c-e33c09483244".into(),
            session_id: "a4fad4b3-b388-12ee-b217-2fb8260fcf59".into(),
            sub_account_id: "account_x".into(),
            call_status: CallStatus::ActionCompleted,
            call_direction: CallDirection::Outbound,
            call_type: CallType::Pstn,
            source: "+6568888888".into(),
            destination: "+6598888888".into(),
            source_format: Some("MSISDN".into()),
            destination_format: Some("MSISDN".into()),
            source_country_code: Some("SG".into()),
            destination_country_code: Some("SG".into()),
            source_ref_id: Some("SOME-VN-REF-ID".into()),
            destination_ref_id: Some("ANOTHER-VN-REF-ID".into()),
            call_duration: 0,
            dtmf: Some("1".into()),
            sip_code: 200,
            timestamp: "2024-05-16T04:12:11.217Z".into(),
            client_action_id: Some("ivr1_level1".into()),
        }
    );
    assert_eq!(
        event.virtual_number(),
        "+6568888888",
        "outbound leg: the VN is the source"
    );
}

#[test]
fn inbound_first_contact_has_no_digits_and_no_client_action_id() {
    let event = call_action(&fixture("vca_inbound_call_received"));
    assert_eq!(event.call_status, CallStatus::CallReceived);
    assert_eq!(event.call_direction, CallDirection::Inbound);
    assert_eq!(event.dtmf, None);
    assert_eq!(event.client_action_id, None);
    assert_eq!(event.source_ref_id, None);
    assert_eq!(event.destination_ref_id.as_deref(), Some("vn-ref-1"));
    assert_eq!(event.timestamp, "2019-10-16T08:12:01Z");
    assert_eq!(
        event.virtual_number(),
        "+65987654321",
        "inbound leg: the VN is the destination"
    );
}

#[test]
fn dtmf_null_means_nothing_captured() {
    let body = sample_with(|p| {
        p.insert("eventData".into(), serde_json::json!({ "dtmf": null }));
    });
    assert_eq!(call_action(&body).dtmf, None);
}

#[test]
fn event_data_may_be_a_bare_string_absent_or_empty() {
    let bare = sample_with(|p| {
        p.insert("eventData".into(), "1234#".into());
    });
    assert_eq!(call_action(&bare).dtmf.as_deref(), Some("1234#"));

    let absent = sample_with(|p| {
        p.remove("eventData");
        p.remove("clientActionId");
    });
    let event = call_action(&absent);
    assert_eq!((event.dtmf, event.client_action_id), (None, None));

    let empty_object = sample_with(|p| {
        p.insert("eventData".into(), serde_json::json!({}));
    });
    assert_eq!(call_action(&empty_object).dtmf, None);

    let null = sample_with(|p| {
        p.insert("eventData".into(), Value::Null);
    });
    assert_eq!(call_action(&null).dtmf, None);
}

#[test]
fn top_level_dtmf_and_numeric_digits_are_accepted() {
    let top_level = sample_with(|p| {
        p.remove("eventData");
        p.insert("dtmf".into(), "07".into());
    });
    assert_eq!(call_action(&top_level).dtmf.as_deref(), Some("07"));

    let numeric = sample_with(|p| {
        p.insert("eventData".into(), serde_json::json!({ "dtmf": 5 }));
    });
    assert_eq!(call_action(&numeric).dtmf.as_deref(), Some("5"));
}

#[test]
fn call_duration_may_be_a_number_or_a_numeric_string() {
    for (value, expected) in [
        (serde_json::json!(0), 0),
        (serde_json::json!("0"), 0),
        (serde_json::json!("42"), 42),
        (serde_json::json!(7), 7),
    ] {
        let body = sample_with(|p| {
            p.insert("callDuration".into(), value.clone());
        });
        assert_eq!(
            call_action(&body).call_duration,
            expected,
            "callDuration {value}"
        );
    }
    let bad = sample_with(|p| {
        p.insert("callDuration".into(), "ten".into());
    });
    assert!(
        refusal(&bad).contains("payload.callDuration"),
        "{}",
        refusal(&bad)
    );
}

#[test]
fn unknown_fields_are_ignored_and_unknown_enum_values_kept() {
    let body = sample_with(|p| {
        p.insert(
            "somethingNew".into(),
            serde_json::json!({ "nested": [1, 2] }),
        );
        p.insert("callStatus".into(), "CALL_TRANSFERRED".into());
        p.insert("callDirection".into(), "SIDEWAYS".into());
        p.insert("callType".into(), "WEBRTC".into());
    });
    let event = call_action(&body);
    assert_eq!(
        event.call_status,
        CallStatus::Other("CALL_TRANSFERRED".into())
    );
    assert_eq!(
        event.call_direction,
        CallDirection::Other("SIDEWAYS".into())
    );
    assert_eq!(event.call_type, CallType::Other("WEBRTC".into()));
}

#[test]
fn the_printed_seed_sample_is_refused_as_invalid_json() {
    let message = refusal(&fixture("vca_seed_printed_sample_invalid"));
    assert!(message.starts_with("body is not valid JSON"), "{message}");
}

#[test]
fn missing_or_mistyped_required_fields_are_named() {
    assert_eq!(
        refusal(&fixture("envelope_placeholder")),
        "payload.sessionId is missing"
    );
    let no_session = sample_with(|p| {
        p.remove("sessionId");
    });
    assert_eq!(refusal(&no_session), "payload.sessionId is missing");
    let null_session = sample_with(|p| {
        p.insert("sessionId".into(), Value::Null);
    });
    assert_eq!(refusal(&null_session), "payload.sessionId is missing");
    let numeric_session = sample_with(|p| {
        p.insert("sessionId".into(), 5.into());
    });
    assert!(
        refusal(&numeric_session).starts_with("payload.sessionId: invalid type"),
        "{}",
        refusal(&numeric_session)
    );
    assert_eq!(
        refusal(r#"{"payload":{"sessionId":"s"}}"#),
        "eventType is missing"
    );
    assert_eq!(
        refusal(r#"{"eventType":"CALL_ACTION"}"#),
        "payload is missing"
    );
    assert_eq!(
        refusal(r#"{"eventType":"CALL_ACTION","payload":null}"#),
        "payload is missing"
    );
    assert_eq!(refusal("[1,2]"), "body must be a JSON object");
    assert_eq!(
        refusal(r#"{"eventType":"CALL_ACTION","payload":["s"]}"#),
        "payload must be a JSON object"
    );
    assert!(refusal("").starts_with("body is not valid JSON"));
    assert!(
        refusal(r#"{"eventType":"CALL_ACTION","payload":{"sessionId":"s"}} trailing"#)
            .starts_with("body is not valid JSON")
    );
}

fn summary(body: &str) -> ivr_host::protocol::summary::SessionSummary {
    match parse_webhook(body.as_bytes()) {
        Ok(Webhook::SessionSummary { summary, .. }) => *summary,
        other => panic!("expected a session summary, got {other:?}"),
    }
}

#[test]
fn session_summaries_parse_with_every_documented_variant() {
    let completed = summary(&fixture("vss_inbound_completed"));
    assert_eq!(completed.session_id, "4eec57d5-f05a-11f0-baa6-c147150ab00e");
    assert_eq!(
        (
            completed.session_status.as_str(),
            completed.last_action.as_str()
        ),
        ("COMPLETED", "HANGUP")
    );
    assert_eq!(completed.call_count, 1);
    let leg = &completed.details["callA"];
    assert_eq!(
        (leg.call_duration, leg.call_status.as_str()),
        (16, "COMPLETED")
    );
    assert_eq!(
        leg.destination_ref_id.as_deref(),
        Some("virtual-number-trunk-01")
    );

    let error = summary(&fixture("vss_error"));
    let details = error.error_details.as_ref().unwrap();
    assert_eq!(
        (details.error_code, details.error_msg.as_deref()),
        (
            Some(-2004),
            Some("No coverage available for requested area")
        )
    );
    assert_eq!(error.details["callA"].call_status, "ERROR");
    assert_eq!(error.details["callA"].connected_timestamp, None);

    // errorCode as a string, a leg under CallA with "SourceRefId": "null", an unknown status.
    let mut variant: Value = serde_json::from_str(&fixture("vss_error")).unwrap();
    variant["payload"]["errorDetails"]["errorCode"] = "-2004".into();
    variant["payload"]["sessionStatus"] = "COMPLETED_UNSUB_ERROR".into();
    variant["payload"]["lastAction"] = "PLAY_TTS".into();
    let leg = variant["payload"]["details"]["callA"].take();
    variant["payload"]["details"] = serde_json::json!({ "CallA": leg });
    variant["payload"]["details"]["CallA"]["SourceRefId"] = "null".into();
    variant["payload"]["details"]["CallA"]["extra"] = true.into();
    let parsed = summary(&variant.to_string());
    assert_eq!(parsed.error_details.unwrap().error_code, Some(-2004));
    assert_eq!(
        (parsed.session_status.as_str(), parsed.last_action.as_str()),
        ("COMPLETED_UNSUB_ERROR", "PLAY_TTS")
    );
    assert_eq!(
        parsed.details["CallA"].source_ref_id_capitalized.as_deref(),
        Some("null")
    );
    assert_eq!(
        parsed.details["CallA"].source_ref(),
        Some("PSTN1"),
        "the documented spelling wins"
    );

    assert_eq!(
        refusal(r#"{"eventType":"SESSION_SUMMARY","payload":{"sessionStatus":"COMPLETED"}}"#),
        "payload.sessionId is missing"
    );
}

#[test]
fn other_event_types_are_recognised_not_driven() {
    for (name, event_type) in [("vru_recording_uploaded", EventType::CallRecordingStatus)] {
        match parse_webhook(fixture(name).as_bytes()) {
            Ok(Webhook::Other { event_type: t, .. }) => assert_eq!(t, event_type, "{name}"),
            other => panic!("{name}: {other:?}"),
        }
    }
    let status =
        r#"{"eventType":"CALL_STATUS","payload":{"sessionId":"s","callStatus":"CALL_RECEIVED"}}"#;
    assert!(matches!(
        parse_webhook(status.as_bytes()),
        Ok(Webhook::Other {
            event_type: EventType::CallStatus,
            ..
        })
    ));
    let vnu =
        r#"{"eventType":"VIRTUAL_NUMBER_UPDATE","payload":{"subAccountId":"a","totalNumbers":1}}"#;
    assert!(matches!(
        parse_webhook(vnu.as_bytes()),
        Ok(Webhook::Other {
            event_type: EventType::VirtualNumberUpdate,
            ..
        })
    ));
}

/// Numbers compared by value, so `1` and `1.0` are equal.
fn normalized(value: Value) -> Value {
    match value {
        Value::Number(n) => serde_json::json!(n.as_f64()),
        Value::Array(items) => Value::Array(items.into_iter().map(normalized).collect()),
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, normalized(v))).collect())
        }
        other => other,
    }
}

#[test]
fn reference_replies_round_trip_exactly_and_pass_validation() {
    for name in [
        "reply_next_menu",
        "reply_bridge_agent",
        "reply_final_message",
    ] {
        let text = fixture(name);
        let flow: Callflow = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        validate(&flow, &ReplyLimits::default()).unwrap_or_else(|v| panic!("{name}: {v}"));
        let emitted: Value = serde_json::from_slice(&flow.to_json()).unwrap();
        let original: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(normalized(emitted), normalized(original), "{name}");
    }
}

#[test]
fn hangup_is_emitted_without_params_and_none_fields_are_omitted() {
    let flow = Callflow::apology();
    assert_eq!(
        String::from_utf8(flow.to_json()).unwrap(),
        r#"{"callflow":[{"action":"say","params":{"text":"We are sorry, we cannot take your call right now. Please try again later. Goodbye.","voiceProfile":"en-US-ZiraRUS"}},{"action":"hangup"}]}"#
    );
}

#[test]
fn send_callflow_sample_parses_but_breaks_the_timeout_rule() {
    // 8x8's own Send Callflow sample sends digitTimeout == overallTimeout,
    // which its rule -1006 forbids (reference §4.4 [C]); the host never emits it.
    let request: Value = serde_json::from_str(&fixture("send_callflow_request")).unwrap();
    let flow = Callflow {
        client_action_id: None,
        callflow: serde_json::from_value(request["callflow"].clone()).unwrap(),
    };
    assert!(matches!(flow.callflow[0], Action::MakeCall(_)));
    let violation = validate(&flow, &ReplyLimits::default()).unwrap_err();
    assert_eq!(violation.at, "callflow[1].params.overallTimeout");
    assert!(
        violation.rule.contains("greater than digitTimeout"),
        "{violation}"
    );
}
