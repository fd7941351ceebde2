//! The one place where 8x8 protocol types and WIT types meet.

use super::ivr::app::types as wit;
use crate::protocol::callflow as cf;
use crate::protocol::event::{CallAction, CallDirection, CallStatus, CallType};
use crate::protocol::summary::SessionSummary;

/// An 8x8 VCA event as the guest sees it.
pub(crate) fn event_to_wit(event: &CallAction) -> wit::CallEvent {
    wit::CallEvent {
        event_id: event.event_id.clone(),
        call_id: event.call_id.clone(),
        session_id: event.session_id.clone(),
        sub_account_id: event.sub_account_id.clone(),
        call_status: match &event.call_status {
            CallStatus::ActionCompleted => wit::CallStatus::ActionCompleted,
            CallStatus::CallReceived => wit::CallStatus::CallReceived,
            CallStatus::Other(s) => wit::CallStatus::Other(s.clone()),
        },
        call_direction: match &event.call_direction {
            CallDirection::Inbound => wit::CallDirection::Inbound,
            CallDirection::Outbound => wit::CallDirection::Outbound,
            CallDirection::Other(s) => wit::CallDirection::Other(s.clone()),
        },
        call_type: match &event.call_type {
            CallType::Pstn => wit::CallType::Pstn,
            CallType::Voip => wit::CallType::Voip,
            CallType::Other(s) => wit::CallType::Other(s.clone()),
        },
        source: event.source.clone(),
        destination: event.destination.clone(),
        source_format: event.source_format.clone(),
        destination_format: event.destination_format.clone(),
        source_country_code: event.source_country_code.clone(),
        destination_country_code: event.destination_country_code.clone(),
        source_ref_id: event.source_ref_id.clone(),
        destination_ref_id: event.destination_ref_id.clone(),
        call_duration: event.call_duration,
        dtmf: event.dtmf.clone(),
        sip_code: event.sip_code,
        timestamp: event.timestamp.clone(),
        client_action_id: event.client_action_id.clone(),
    }
}

/// A session summary as the guest sees it.
pub(crate) fn summary_to_wit(summary: &SessionSummary) -> wit::SessionSummary {
    wit::SessionSummary {
        session_id: summary.session_id.clone(),
        sub_account_id: summary.sub_account_id.clone(),
        session_status: summary.session_status.clone(),
        start_time: summary.start_time.clone(),
        end_time: summary.end_time.clone(),
        last_action: summary.last_action.clone(),
        call_count: u32::try_from(summary.call_count).unwrap_or(u32::MAX),
        error_code: summary.error_details.as_ref().and_then(|e| e.error_code),
        error_message: summary
            .error_details
            .as_ref()
            .and_then(|e| e.error_msg.clone()),
        legs: summary
            .details
            .iter()
            .map(|(name, leg)| wit::CallLeg {
                name: name.clone(),
                call_id: leg.call_id.clone(),
                call_direction: leg.call_direction.clone(),
                call_type: leg.call_type.clone(),
                source: leg.source.clone(),
                destination: leg.destination.clone(),
                call_status: leg.call_status.clone(),
                call_duration: leg.call_duration,
                connected_timestamp: leg.connected_timestamp.clone(),
            })
            .collect(),
    }
}

/// A guest's reply as the 8x8 callflow it stands for (not yet validated).
pub(crate) fn reply_from_wit(reply: wit::Reply) -> cf::Callflow {
    cf::Callflow {
        client_action_id: reply.client_action_id,
        callflow: reply.actions.into_iter().map(action_from_wit).collect(),
    }
}

fn action_from_wit(action: wit::Action) -> cf::Action {
    match action {
        wit::Action::MakeCall(a) => cf::Action::MakeCall(cf::MakeCall {
            source: a.source,
            destination: a.destination,
            call_recording: a.call_recording,
        }),
        wit::Action::Say(a) => cf::Action::Say(cf::Say {
            text: a.text,
            voice_profile: a.voice_profile,
            repetition: a.repetition,
            speed: a.speed,
            language: a.language,
        }),
        wit::Action::SayAndCapture(a) => cf::Action::SayAndCapture(cf::SayAndCapture {
            prompt_message: a.prompt_message,
            voice_profile: a.voice_profile,
            speed: a.speed,
            repetition: a.repetition,
            min_digits: a.min_digits,
            max_digits: a.max_digits,
            digit_timeout: a.digit_timeout,
            overall_timeout: a.overall_timeout,
            complete_on_hash: a.complete_on_hash,
            no_of_tries: a.no_of_tries,
            success_message: a.success_message,
            failure_message: a.failure_message,
        }),
        wit::Action::PlayFile(a) => cf::Action::PlayFile(cf::PlayFile {
            file_url: a.file_url,
            repetition: a.repetition,
        }),
        wit::Action::Hangup => cf::Action::Hangup,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::event::Webhook;
    use crate::protocol::parse_webhook;

    #[test]
    fn every_event_field_reaches_the_guest() {
        let body = br#"{"eventType":"CALL_ACTION","payload":{"eventId":"e","callId":"c","sessionId":"s",
            "subAccountId":"acc","callStatus":"SOMETHING_NEW","callDirection":"INBOUND","callType":"VOIP",
            "source":"+1","destination":"+2","sourceFormat":"MSISDN","destinationFormat":"MSISDN",
            "sourceCountryCode":"SG","destinationCountryCode":"US","sourceRefId":"sr","destinationRefId":"dr",
            "callDuration":"12","eventData":{"dtmf":"0042"},"sipCode":486,"timestamp":"2024-05-16T04:12:11Z",
            "clientActionId":"m"}}"#;
        let Ok(Webhook::CallAction(event)) = parse_webhook(body) else {
            panic!("not a call action")
        };
        let w = event_to_wit(&event);
        assert_eq!(
            (
                w.event_id.as_str(),
                w.call_id.as_str(),
                w.session_id.as_str()
            ),
            ("e", "c", "s")
        );
        assert_eq!(w.sub_account_id, "acc");
        assert_eq!(
            w.call_status,
            wit::CallStatus::Other("SOMETHING_NEW".into())
        );
        assert_eq!(w.call_direction, wit::CallDirection::Inbound);
        assert_eq!(w.call_type, wit::CallType::Voip);
        assert_eq!((w.source.as_str(), w.destination.as_str()), ("+1", "+2"));
        assert_eq!(w.source_format.as_deref(), Some("MSISDN"));
        assert_eq!(w.destination_format.as_deref(), Some("MSISDN"));
        assert_eq!(w.source_country_code.as_deref(), Some("SG"));
        assert_eq!(w.destination_country_code.as_deref(), Some("US"));
        assert_eq!(w.source_ref_id.as_deref(), Some("sr"));
        assert_eq!(w.destination_ref_id.as_deref(), Some("dr"));
        assert_eq!(w.call_duration, 12);
        assert_eq!(w.dtmf.as_deref(), Some("0042"));
        assert_eq!(w.sip_code, 486);
        assert_eq!(w.timestamp, "2024-05-16T04:12:11Z");
        assert_eq!(w.client_action_id.as_deref(), Some("m"));
    }

    #[test]
    fn every_action_round_trips_from_wit() {
        let reply = wit::Reply {
            client_action_id: Some("x".into()),
            actions: vec![
                wit::Action::Say(wit::Say {
                    text: "t".into(),
                    voice_profile: "v".into(),
                    repetition: Some(2),
                    speed: Some(1.5),
                    language: Some("en".into()),
                }),
                wit::Action::PlayFile(wit::PlayFile {
                    file_url: "https://a/b.mp3".into(),
                    repetition: Some(1),
                }),
                wit::Action::MakeCall(wit::MakeCall {
                    source: "+651".into(),
                    destination: "+652".into(),
                    call_recording: Some(true),
                }),
                wit::Action::SayAndCapture(wit::SayAndCapture {
                    prompt_message: "p".into(),
                    voice_profile: "v".into(),
                    speed: Some(1.0),
                    repetition: Some(1),
                    min_digits: Some(1),
                    max_digits: Some(4),
                    digit_timeout: Some(1000),
                    overall_timeout: Some(2000),
                    complete_on_hash: Some(true),
                    no_of_tries: Some(2),
                    success_message: Some("ok".into()),
                    failure_message: Some("no".into()),
                }),
                wit::Action::Hangup,
            ],
        };
        let flow = reply_from_wit(reply);
        let json = String::from_utf8(flow.to_json()).unwrap();
        assert_eq!(
            json,
            concat!(
                r#"{"clientActionId":"x","callflow":["#,
                r#"{"action":"say","params":{"text":"t","voiceProfile":"v","repetition":2,"speed":1.5,"language":"en"}},"#,
                r#"{"action":"playFile","params":{"fileUrl":"https://a/b.mp3","repetition":1}},"#,
                r#"{"action":"makeCall","params":{"source":"+651","destination":"+652","callRecording":true}},"#,
                r#"{"action":"sayAndCapture","params":{"promptMessage":"p","voiceProfile":"v","speed":1.0,"repetition":1,"#,
                r#""minDigits":1,"maxDigits":4,"digitTimeout":1000,"overallTimeout":2000,"completeOnHash":true,"#,
                r#""noOfTries":2,"successMessage":"ok","failureMessage":"no"}},"#,
                r#"{"action":"hangup"}]}"#
            )
        );
    }
}
