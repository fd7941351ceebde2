//! Properties that must hold for any input, checked on stable in the normal
//! test command (the same properties as the fuzz targets in `fuzz/`, which
//! run far longer on a nightly toolchain; see the README).

use ivr_protocol::callflow::{MakeCall, PlayFile, Say, SayAndCapture};
use ivr_protocol::{Action, Callflow, ReplyLimits, Webhook, check_size, parse_webhook, validate};
use proptest::prelude::*;
use serde_json::{Value, json};

/// Any JSON value, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,20}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(".{0,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A webhook as 8x8 might send it, with any field possibly missing, of the
/// wrong type, or unexpected.
fn webhook_like() -> impl Strategy<Value = Value> {
    let field = |name: &'static str, typical: BoxedStrategy<Value>| {
        prop_oneof![
            3 => typical.prop_map(move |v| Some((name, v))),
            1 => json_value().prop_map(move |v| Some((name, v))),
            1 => Just(None),
        ]
    };
    let text = |values: &'static [&'static str]| {
        prop::sample::select(values).prop_map(Value::from).boxed()
    };
    (
        field(
            "eventType",
            text(&["CALL_ACTION", "SESSION_SUMMARY", "CALL_STATUS", "NEW_TYPE"]),
        ),
        (
            field("eventId", "[a-z0-9-]{0,12}".prop_map(Value::from).boxed()),
            field("sessionId", "[a-z0-9-]{0,12}".prop_map(Value::from).boxed()),
            field(
                "callStatus",
                text(&["CALL_RECEIVED", "ACTION_COMPLETED", "WHATEVER"]),
            ),
            field("callDirection", text(&["INBOUND", "OUTBOUND", "SIDEWAYS"])),
            field("source", "\\+?[0-9]{0,15}".prop_map(Value::from).boxed()),
            field(
                "destination",
                "\\+?[0-9]{0,15}".prop_map(Value::from).boxed(),
            ),
            field("clientActionId", ".{0,12}".prop_map(Value::from).boxed()),
            field(
                "eventData",
                prop::option::of("[0-9#*]{0,6}")
                    .prop_map(|d| json!({ "dtmf": d }))
                    .boxed(),
            ),
            field(
                "sessionStatus",
                text(&["COMPLETED", "BUSY", "ERROR", "NEW"]),
            ),
            field("callDuration", any::<i64>().prop_map(Value::from).boxed()),
        ),
    )
        .prop_map(|(event_type, payload_fields)| {
            let (a, b, c, d, e, f, g, h, i, j) = payload_fields;
            let payload: serde_json::Map<String, Value> = [a, b, c, d, e, f, g, h, i, j]
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.to_owned(), v))
                .collect();
            let mut body = serde_json::Map::new();
            if let Some((k, v)) = event_type {
                body.insert(k.to_owned(), v);
            }
            body.insert("payload".into(), Value::Object(payload));
            Value::Object(body)
        })
}

fn optional_text() -> impl Strategy<Value = Option<String>> {
    prop::option::of(".{0,12}")
}

/// Any callflow the types can express, valid or not.
fn callflow() -> impl Strategy<Value = Callflow> {
    let speed = prop::option::of((0u8..12).prop_map(|q| f64::from(q) * 0.25));
    let say = (
        ".{0,40}",
        "[a-zA-Z-]{0,12}",
        prop::option::of(0u8..5),
        speed.clone(),
        optional_text(),
    )
        .prop_map(|(text, voice_profile, repetition, speed, language)| {
            Action::Say(Say {
                text,
                voice_profile,
                repetition,
                speed,
                language,
            })
        });
    let capture = (
        (
            ".{0,40}",
            "[a-zA-Z-]{0,12}",
            speed,
            prop::option::of(0u8..5),
        ),
        (
            prop::option::of(0u32..30),
            prop::option::of(0u32..30),
            prop::option::of(0u32..30_000),
            prop::option::of(0u32..30_000),
        ),
        (
            prop::option::of(any::<bool>()),
            prop::option::of(0u32..5),
            optional_text(),
            optional_text(),
        ),
    )
        .prop_map(|(a, b, c)| {
            Action::SayAndCapture(SayAndCapture {
                prompt_message: a.0,
                voice_profile: a.1,
                speed: a.2,
                repetition: a.3,
                min_digits: b.0,
                max_digits: b.1,
                digit_timeout: b.2,
                overall_timeout: b.3,
                complete_on_hash: c.0,
                no_of_tries: c.1,
                success_message: c.2,
                failure_message: c.3,
            })
        });
    let make_call = (
        "\\+?[0-9a-z]{0,16}",
        "\\+?[0-9a-z]{0,16}",
        prop::option::of(any::<bool>()),
    )
        .prop_map(|(source, destination, call_recording)| {
            Action::MakeCall(MakeCall {
                source,
                destination,
                call_recording,
            })
        });
    let play = (
        "(https?|ftp)://[a-z.]{0,10}/[a-z]{0,5}",
        prop::option::of(0u8..5),
    )
        .prop_map(|(file_url, repetition)| {
            Action::PlayFile(PlayFile {
                file_url,
                repetition,
            })
        });
    let action = prop_oneof![say, capture, make_call, play, Just(Action::Hangup)];
    (
        prop::option::of(".{0,20}"),
        prop::collection::vec(action, 0..6),
    )
        .prop_map(|(client_action_id, callflow)| Callflow {
            client_action_id,
            callflow,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Any bytes: an answer, never a panic.
    #[test]
    fn parsing_any_bytes_never_panics(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_webhook(&body);
    }

    /// Any webhook-shaped JSON: a typed event or a reason naming a field.
    #[test]
    fn parsing_webhook_shaped_json_gives_an_event_or_names_the_problem(body in webhook_like()) {
        let bytes = serde_json::to_vec(&body).unwrap();
        match parse_webhook(&bytes) {
            Ok(Webhook::CallAction(event)) => {
                prop_assert_eq!(body["eventType"].as_str(), Some("CALL_ACTION"));
                prop_assert_eq!(Some(event.session_id.as_str()), body["payload"]["sessionId"].as_str());
            }
            Ok(_) => {}
            Err(err) => prop_assert!(!err.to_string().is_empty()),
        }
    }

    /// Validation never panics; what it accepts serializes to JSON that
    /// reads back as the same callflow, within the size rule or refused by it.
    #[test]
    fn valid_callflows_round_trip(flow in callflow()) {
        let limits = ReplyLimits::default();
        if validate(&flow, &limits).is_ok() {
            let json = flow.to_json();
            let back: Callflow = serde_json::from_slice(&json).unwrap();
            prop_assert_eq!(&back, &flow);
            prop_assert!(check_size(&json, &limits).is_ok());
            // Every action is spelled as 8x8 expects.
            let value: Value = serde_json::from_slice(&json).unwrap();
            for (action, sent) in flow.callflow.iter().zip(value["callflow"].as_array().unwrap()) {
                prop_assert_eq!(sent["action"].as_str(), Some(action.name()));
            }
        }
    }
}

/// The round-trip property is not vacuous: the generator produces valid
/// callflows too, not only ones the rules refuse.
#[test]
fn the_callflow_generator_produces_valid_callflows() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = callflow();
    let valid = (0..2000)
        .filter(|_| {
            let flow = strategy.new_tree(&mut runner).unwrap().current();
            validate(&flow, &ReplyLimits::default()).is_ok()
        })
        .count();
    assert!(
        valid >= 20,
        "only {valid} of 2000 generated callflows were valid"
    );
}
