//! The reply validator: every rule with a passing and a failing case.

use ivr_host::protocol::callflow::{Action, Callflow, MakeCall, PlayFile, Say, SayAndCapture};
use ivr_host::protocol::{ReplyLimits, check_size, validate};

fn say(text: &str) -> Action {
    Action::Say(Say {
        text: text.into(),
        voice_profile: "en-US-ZiraRUS".into(),
        repetition: None,
        speed: None,
        language: None,
    })
}

fn capture() -> SayAndCapture {
    SayAndCapture {
        prompt_message: "Press 1.".into(),
        voice_profile: "en-US-ZiraRUS".into(),
        speed: None,
        repetition: None,
        min_digits: Some(1),
        max_digits: Some(1),
        digit_timeout: Some(5000),
        overall_timeout: Some(10000),
        complete_on_hash: Some(false),
        no_of_tries: Some(1),
        success_message: None,
        failure_message: None,
    }
}

fn make_call() -> Action {
    Action::MakeCall(MakeCall {
        source: "+6561115777".into(),
        destination: "+6512345678".into(),
        call_recording: None,
    })
}

fn play(url: &str) -> Action {
    Action::PlayFile(PlayFile {
        file_url: url.into(),
        repetition: None,
    })
}

fn flow(actions: Vec<Action>) -> Callflow {
    Callflow {
        client_action_id: None,
        callflow: actions,
    }
}

fn ok(actions: Vec<Action>) {
    let f = flow(actions);
    if let Err(v) = validate(&f, &ReplyLimits::default()) {
        panic!("expected valid, got {v} for {f:?}");
    }
}

/// Assert the callflow is refused at `at` with a rule containing `words`.
fn refused(actions: Vec<Action>, at: &str, words: &str) {
    let f = flow(actions);
    match validate(&f, &ReplyLimits::default()) {
        Ok(()) => panic!("expected {at}: {words}, but {f:?} passed"),
        Err(v) => {
            assert_eq!(v.at, at, "{v}");
            assert!(v.rule.contains(words), "expected {words:?} in {v}");
        }
    }
}

fn capture_with(edit: impl FnOnce(&mut SayAndCapture)) -> Vec<Action> {
    let mut c = capture();
    edit(&mut c);
    vec![Action::SayAndCapture(c)]
}

fn say_with(edit: impl FnOnce(&mut Say)) -> Vec<Action> {
    let Action::Say(mut s) = say("Hello.") else {
        unreachable!()
    };
    edit(&mut s);
    vec![Action::Say(s), Action::Hangup]
}

#[test]
fn at_least_one_action() {
    ok(vec![Action::Hangup]);
    refused(vec![], "callflow", "at least one action");
}

#[test]
fn at_most_the_configured_number_of_actions() {
    ok((0..31)
        .map(|_| say("Hi."))
        .chain([Action::Hangup])
        .collect());
    refused(
        (0..32)
            .map(|_| say("Hi."))
            .chain([Action::Hangup])
            .collect(),
        "callflow",
        "at most 32",
    );
}

#[test]
fn hangup_only_last() {
    ok(vec![say("Bye."), Action::Hangup]);
    refused(
        vec![Action::Hangup, say("Bye.")],
        "callflow[0]",
        "hangup must be the last action",
    );
}

#[test]
fn nothing_after_say_and_capture() {
    ok(vec![say("Welcome."), Action::SayAndCapture(capture())]);
    refused(
        vec![Action::SayAndCapture(capture()), Action::Hangup],
        "callflow[0]",
        "found hangup after it",
    );
    refused(
        vec![Action::SayAndCapture(capture()), say("x")],
        "callflow[0]",
        "sayAndCapture must be the last",
    );
}

#[test]
fn at_most_two_make_calls() {
    ok(vec![make_call(), make_call()]);
    refused(
        vec![make_call(), make_call(), make_call()],
        "callflow",
        "3 makeCall actions",
    );
}

#[test]
fn text_is_required_and_at_most_3000_characters() {
    ok(vec![say(&"é".repeat(3000)), Action::Hangup]);
    refused(
        vec![say(&"a".repeat(3001)), Action::Hangup],
        "callflow[0].params.text",
        "at most 3000 characters",
    );
    refused(
        vec![say("  "), Action::Hangup],
        "callflow[0].params.text",
        "must not be empty",
    );
    refused(
        capture_with(|c| c.prompt_message = "a".repeat(3001)),
        "callflow[0].params.promptMessage",
        "at most 3000",
    );
    refused(
        capture_with(|c| c.prompt_message.clear()),
        "callflow[0].params.promptMessage",
        "must not be empty",
    );
    ok(capture_with(|c| {
        c.failure_message = Some("Invalid input, please try again".into())
    }));
    refused(
        capture_with(|c| c.failure_message = Some("a".repeat(3001))),
        "callflow[0].params.failureMessage",
        "at most 3000",
    );
    refused(
        capture_with(|c| c.success_message = Some(String::new())),
        "callflow[0].params.successMessage",
        "empty",
    );
}

#[test]
fn voice_profile_is_required() {
    refused(
        say_with(|s| s.voice_profile.clear()),
        "callflow[0].params.voiceProfile",
        "must not be empty",
    );
    refused(
        capture_with(|c| c.voice_profile.clear()),
        "callflow[0].params.voiceProfile",
        "must not be empty",
    );
}

#[test]
fn repetition_is_1_to_3() {
    ok(say_with(|s| s.repetition = Some(3)));
    refused(
        say_with(|s| s.repetition = Some(4)),
        "callflow[0].params.repetition",
        "1, 2 or 3",
    );
    refused(
        say_with(|s| s.repetition = Some(0)),
        "callflow[0].params.repetition",
        "1, 2 or 3",
    );
    ok(vec![play("https://example.com/a.mp3")]);
    let Action::PlayFile(mut p) = play("https://example.com/a.mp3") else {
        unreachable!()
    };
    p.repetition = Some(9);
    refused(
        vec![Action::PlayFile(p)],
        "callflow[0].params.repetition",
        "1, 2 or 3",
    );
    refused(
        capture_with(|c| c.repetition = Some(5)),
        "callflow[0].params.repetition",
        "1, 2 or 3",
    );
}

#[test]
fn speed_is_half_to_double() {
    ok(say_with(|s| s.speed = Some(0.5)));
    ok(say_with(|s| s.speed = Some(2.0)));
    refused(
        say_with(|s| s.speed = Some(2.5)),
        "callflow[0].params.speed",
        "between 0.5 and 2.0",
    );
    refused(
        say_with(|s| s.speed = Some(f64::NAN)),
        "callflow[0].params.speed",
        "between 0.5 and 2.0",
    );
    refused(
        capture_with(|c| c.speed = Some(0.1)),
        "callflow[0].params.speed",
        "between 0.5 and 2.0",
    );
}

#[test]
fn min_digits_needs_max_digits_and_not_more() {
    ok(capture_with(|c| c.min_digits = Some(4))
        .into_iter()
        .map(|a| match a {
            Action::SayAndCapture(mut c) => {
                c.max_digits = Some(8);
                Action::SayAndCapture(c)
            }
            other => other,
        })
        .collect());
    refused(
        capture_with(|c| c.max_digits = None),
        "callflow[0].params.maxDigits",
        "required when minDigits",
    );
    refused(
        capture_with(|c| c.min_digits = Some(0)),
        "callflow[0].params.minDigits",
        "at least 1",
    );
    refused(
        capture_with(|c| {
            c.min_digits = Some(5);
            c.max_digits = Some(4);
        }),
        "callflow[0].params.minDigits",
        "must not exceed maxDigits",
    );
}

#[test]
fn max_digits_is_1_to_25_and_required_without_hash() {
    ok(capture_with(|c| c.max_digits = Some(25)));
    refused(
        capture_with(|c| c.max_digits = Some(26)),
        "callflow[0].params.maxDigits",
        "between 1 and 25",
    );
    refused(
        capture_with(|c| c.max_digits = Some(99)),
        "callflow[0].params.maxDigits",
        "between 1 and 25",
    );
    ok(capture_with(|c| {
        c.min_digits = None;
        c.max_digits = None;
        c.complete_on_hash = Some(true);
    }));
    refused(
        capture_with(|c| {
            c.min_digits = None;
            c.max_digits = None;
        }),
        "callflow[0].params.maxDigits",
        "required when completeOnHash is false",
    );
}

#[test]
fn digit_timeout_needs_a_greater_overall_timeout() {
    ok(capture_with(|c| {
        c.digit_timeout = None;
        c.overall_timeout = Some(5000);
    }));
    refused(
        capture_with(|c| c.overall_timeout = None),
        "callflow[0].params.overallTimeout",
        "required when digitTimeout",
    );
    refused(
        capture_with(|c| c.overall_timeout = Some(5000)),
        "callflow[0].params.overallTimeout",
        "greater than digitTimeout",
    );
    refused(
        capture_with(|c| c.digit_timeout = Some(0)),
        "callflow[0].params.digitTimeout",
        "at least 1",
    );
    refused(
        capture_with(|c| {
            c.digit_timeout = None;
            c.overall_timeout = Some(0);
        }),
        "callflow[0].params.overallTimeout",
        "at least 1",
    );
}

#[test]
fn no_of_tries_is_at_least_one() {
    ok(capture_with(|c| c.no_of_tries = Some(3)));
    refused(
        capture_with(|c| c.no_of_tries = Some(0)),
        "callflow[0].params.noOfTries",
        "at least 1",
    );
}

#[test]
fn file_url_is_http_or_https() {
    ok(vec![play("http://example.com/audio/a.wav"), Action::Hangup]);
    refused(
        vec![play("ftp://example.com/a.mp3")],
        "callflow[0].params.fileUrl",
        "http or https",
    );
    refused(
        vec![play("https:///a.mp3")],
        "callflow[0].params.fileUrl",
        "with a host",
    );
    refused(
        vec![play("https://example.com/a b.mp3")],
        "callflow[0].params.fileUrl",
        "no spaces",
    );
}

#[test]
fn make_call_numbers_are_e164() {
    ok(vec![Action::MakeCall(MakeCall {
        source: "6512345678".into(),
        destination: "+6543212345".into(),
        call_recording: Some(true),
    })]);
    refused(
        vec![Action::MakeCall(MakeCall {
            source: "+6561115777".into(),
            destination: "call me".into(),
            call_recording: None,
        })],
        "callflow[0].params.destination",
        "E.164",
    );
    refused(
        vec![Action::MakeCall(MakeCall {
            source: String::new(),
            destination: "+6512345678".into(),
            call_recording: None,
        })],
        "callflow[0].params.source",
        "E.164",
    );
}

#[test]
fn client_action_id_is_short_and_printable() {
    let mut f = flow(vec![Action::Hangup]);
    f.client_action_id = Some("ivr1_level2".into());
    assert!(validate(&f, &ReplyLimits::default()).is_ok());
    f.client_action_id = Some("a".repeat(257));
    assert_eq!(
        validate(&f, &ReplyLimits::default()).unwrap_err().at,
        "clientActionId"
    );
    f.client_action_id = Some("line\nbreak".into());
    assert_eq!(
        validate(&f, &ReplyLimits::default()).unwrap_err().at,
        "clientActionId"
    );
    f.client_action_id = Some(String::new());
    assert_eq!(
        validate(&f, &ReplyLimits::default()).unwrap_err().at,
        "clientActionId"
    );
}

#[test]
fn serialized_size_is_limited() {
    let limits = ReplyLimits::default();
    assert!(check_size(&vec![b' '; 64 * 1024], &limits).is_ok());
    let err = check_size(&vec![b' '; 64 * 1024 + 1], &limits).unwrap_err();
    assert!(err.rule.contains("at most 65536"), "{err}");
}
