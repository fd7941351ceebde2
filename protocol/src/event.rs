//! Inbound 8x8 voice webhooks: the envelope and the Voice Call Action event.
//!
//! Parsing is lenient where 8x8's documentation is inconsistent (reference
//! §12): unknown fields are ignored, enums keep unknown values, `eventData`
//! may be an object, a bare string or absent, numbers may arrive as strings.
//! It is strict where it is not: the body must be JSON (the documentation's
//! printed sample, with its comment and trailing comma, is refused), and the
//! fields the host cannot work without must be present.

use serde::Deserialize;
use serde::de;
use serde_json::value::RawValue;

use super::summary::SessionSummary;

/// Why an inbound webhook body was refused; names the field or the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    /// What is wrong, naming the field (e.g. `payload.sessionId is missing`).
    pub message: String,
}

impl ParseError {
    fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    fn missing(field: &str) -> Self {
        Self::new(format!("{field} is missing"))
    }
}

/// The `eventType` values 8x8 voice webhooks carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventType {
    /// VCA: the call waits for the next callflow.
    CallAction,
    /// VSS: the session ended.
    SessionSummary,
    /// VCS: per-leg progress.
    CallStatus,
    /// VRU: a recording was uploaded.
    CallRecordingStatus,
    /// VNU: the subaccount's virtual numbers changed.
    VirtualNumberUpdate,
    /// Anything else, kept verbatim.
    Other(String),
}

impl EventType {
    fn parse(value: &str) -> Self {
        match value {
            "CALL_ACTION" => Self::CallAction,
            "SESSION_SUMMARY" => Self::SessionSummary,
            "CALL_STATUS" => Self::CallStatus,
            "CALL_RECORDING_STATUS" => Self::CallRecordingStatus,
            "VIRTUAL_NUMBER_UPDATE" => Self::VirtualNumberUpdate,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The wire spelling.
    pub fn as_str(&self) -> &str {
        match self {
            Self::CallAction => "CALL_ACTION",
            Self::SessionSummary => "SESSION_SUMMARY",
            Self::CallStatus => "CALL_STATUS",
            Self::CallRecordingStatus => "CALL_RECORDING_STATUS",
            Self::VirtualNumberUpdate => "VIRTUAL_NUMBER_UPDATE",
            Self::Other(s) => s,
        }
    }
}

/// An inbound webhook after the envelope was read.
// The large variant is the common one (every VCA); boxing it would add an
// allocation per event to save a move.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Webhook {
    /// A Voice Call Action: the caller waits for the next callflow.
    CallAction(CallAction),
    /// A Voice Session Summary: the call ended.
    SessionSummary {
        /// The summary, typed.
        summary: Box<SessionSummary>,
        /// The payload, verbatim (what is stored).
        payload: Box<RawValue>,
    },
    /// Any other event type; its payload is kept as raw JSON text.
    Other {
        /// The event type.
        event_type: EventType,
        /// The payload, verbatim.
        payload: Box<RawValue>,
    },
}

/// `payload.callStatus` of a VCA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallStatus {
    /// An action (typically `sayAndCapture`) finished.
    ActionCompleted,
    /// A caller reached a virtual number.
    CallReceived,
    /// Unknown or absent (empty), kept verbatim.
    Other(String),
}

/// `payload.callDirection`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallDirection {
    /// The caller dialled a virtual number.
    Inbound,
    /// 8x8 dialled out.
    Outbound,
    /// Unknown or absent (empty), kept verbatim.
    Other(String),
}

/// `payload.callType`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallType {
    /// Public telephone network.
    Pstn,
    /// App or SDK user.
    Voip,
    /// Unknown or absent (empty), kept verbatim.
    Other(String),
}

/// A Voice Call Action event (reference §3.2), typed.
///
/// Strings 8x8 documents as always present are empty when a delivery lacks
/// them; only `sessionId` is required, because per-call state, version
/// pinning and traces hang on it.
#[derive(Debug, Clone, PartialEq)]
pub struct CallAction {
    /// `eventId`: the idempotency key of this delivery.
    pub event_id: String,
    /// `callId`: the leg.
    pub call_id: String,
    /// `sessionId`: the whole call.
    pub session_id: String,
    /// `subAccountId`.
    pub sub_account_id: String,
    /// `callStatus`.
    pub call_status: CallStatus,
    /// `callDirection`.
    pub call_direction: CallDirection,
    /// `callType`.
    pub call_type: CallType,
    /// `source`.
    pub source: String,
    /// `destination`.
    pub destination: String,
    /// `sourceFormat`.
    pub source_format: Option<String>,
    /// `destinationFormat`.
    pub destination_format: Option<String>,
    /// `sourceCountryCode`.
    pub source_country_code: Option<String>,
    /// `destinationCountryCode`.
    pub destination_country_code: Option<String>,
    /// `sourceRefId`.
    pub source_ref_id: Option<String>,
    /// `destinationRefId`.
    pub destination_ref_id: Option<String>,
    /// `callDuration` in seconds (number or numeric string on the wire; 0 when absent).
    pub call_duration: u64,
    /// Captured digits: `eventData.dtmf`, a bare-string `eventData`, or a top-level `dtmf`.
    pub dtmf: Option<String>,
    /// `sipCode` (0 when absent).
    pub sip_code: u32,
    /// `timestamp`, verbatim.
    pub timestamp: String,
    /// `clientActionId`: the echo of the previous reply's id.
    pub client_action_id: Option<String>,
}

impl CallAction {
    /// The subaccount's virtual number on this call: the destination of an
    /// inbound leg, the source of an outbound leg (what routing keys on).
    pub fn virtual_number(&self) -> &str {
        let outbound = self.call_direction == CallDirection::Outbound;
        crate::rules::virtual_number(outbound, &self.source, &self.destination)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEnvelope<'a> {
    event_type: Option<String>,
    #[serde(borrow)]
    payload: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct RawCallAction {
    event_id: Option<String>,
    call_id: Option<String>,
    session_id: Option<String>,
    sub_account_id: Option<String>,
    call_status: Option<String>,
    call_direction: Option<String>,
    call_type: Option<String>,
    source: Option<String>,
    destination: Option<String>,
    source_format: Option<String>,
    destination_format: Option<String>,
    source_country_code: Option<String>,
    destination_country_code: Option<String>,
    source_ref_id: Option<String>,
    destination_ref_id: Option<String>,
    #[serde(deserialize_with = "crate::lenient::u64_or_none")]
    call_duration: Option<u64>,
    event_data: Option<RawEventData>,
    #[serde(deserialize_with = "crate::lenient::string_or_number")]
    dtmf: Option<String>,
    #[serde(deserialize_with = "crate::lenient::u64_or_none")]
    sip_code: Option<u64>,
    timestamp: Option<String>,
    client_action_id: Option<String>,
}

/// `eventData` as an object `{dtmf}` or a bare string of digits.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawEventData {
    Digits(String),
    Object {
        #[serde(default, deserialize_with = "crate::lenient::string_or_number")]
        dtmf: Option<String>,
    },
}

/// Read a webhook body: the envelope, then the payload of a `CALL_ACTION`.
pub fn parse_webhook(body: &[u8]) -> Result<Webhook, ParseError> {
    expect_object(body, "body")?;
    let envelope: RawEnvelope = deserialize(body, "")?;
    let event_type = envelope
        .event_type
        .map(|t| EventType::parse(&t))
        .ok_or_else(|| ParseError::missing("eventType"))?;
    let payload = envelope
        .payload
        .filter(|p| p.get() != "null")
        .ok_or_else(|| ParseError::missing("payload"))?;
    match event_type {
        EventType::CallAction => {
            parse_call_action(payload.get().as_bytes()).map(Webhook::CallAction)
        }
        EventType::SessionSummary => {
            expect_object(payload.get().as_bytes(), "payload")?;
            let summary: SessionSummary = deserialize(payload.get().as_bytes(), "payload.")?;
            if summary.session_id.is_empty() {
                return Err(ParseError::missing("payload.sessionId"));
            }
            Ok(Webhook::SessionSummary {
                summary: Box::new(summary),
                payload: payload.to_owned(),
            })
        }
        event_type => Ok(Webhook::Other {
            event_type,
            payload: payload.to_owned(),
        }),
    }
}

/// Read the `payload` object of a VCA.
fn parse_call_action(payload: &[u8]) -> Result<CallAction, ParseError> {
    expect_object(payload, "payload")?;
    let raw: RawCallAction = deserialize(payload, "payload.")?;
    let session_id = raw
        .session_id
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ParseError::missing("payload.sessionId"))?;
    let dtmf = match raw.event_data {
        Some(RawEventData::Digits(digits)) => Some(digits),
        Some(RawEventData::Object { dtmf }) => dtmf,
        None => None,
    }
    .or(raw.dtmf);
    let sip_code = raw.sip_code.unwrap_or(0);
    Ok(CallAction {
        event_id: raw.event_id.unwrap_or_default(),
        call_id: raw.call_id.unwrap_or_default(),
        session_id,
        sub_account_id: raw.sub_account_id.unwrap_or_default(),
        call_status: match raw.call_status.as_deref() {
            Some("ACTION_COMPLETED") => CallStatus::ActionCompleted,
            Some("CALL_RECEIVED") => CallStatus::CallReceived,
            other => CallStatus::Other(other.unwrap_or_default().to_owned()),
        },
        call_direction: match raw.call_direction.as_deref() {
            Some("INBOUND") => CallDirection::Inbound,
            Some("OUTBOUND") => CallDirection::Outbound,
            other => CallDirection::Other(other.unwrap_or_default().to_owned()),
        },
        call_type: match raw.call_type.as_deref() {
            Some("PSTN") => CallType::Pstn,
            Some("VOIP") => CallType::Voip,
            other => CallType::Other(other.unwrap_or_default().to_owned()),
        },
        source: raw.source.unwrap_or_default(),
        destination: raw.destination.unwrap_or_default(),
        source_format: raw.source_format,
        destination_format: raw.destination_format,
        source_country_code: raw.source_country_code,
        destination_country_code: raw.destination_country_code,
        source_ref_id: raw.source_ref_id,
        destination_ref_id: raw.destination_ref_id,
        call_duration: raw.call_duration.unwrap_or(0),
        dtmf,
        sip_code: u32::try_from(sip_code).map_err(|_| {
            ParseError::new(format!(
                "payload.sipCode: {sip_code} is not a SIP status code"
            ))
        })?,
        timestamp: raw.timestamp.unwrap_or_default(),
        client_action_id: raw.client_action_id,
    })
}

/// Refuse JSON that is not an object (serde would read a struct from an array).
fn expect_object(bytes: &[u8], what: &str) -> Result<(), ParseError> {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
        return Ok(());
    }
    match serde_json::from_slice::<de::IgnoredAny>(bytes) {
        Ok(_) => Err(ParseError::new(format!("{what} must be a JSON object"))),
        Err(err) => Err(ParseError::new(format!("body is not valid JSON: {err}"))),
    }
}

/// Deserialize `bytes`, turning any error into one that names the field
/// (prefixed with `prefix`) and the position in the body.
///
/// A well-formed body is read once, without tracking the path; only a body
/// that fails is read again with the path tracked, to name the field.
fn deserialize<'de, T: Deserialize<'de>>(bytes: &'de [u8], prefix: &str) -> Result<T, ParseError> {
    if let Ok(value) = serde_json::from_slice(bytes) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ParseError::new(format!("body is not valid JSON: {inner}"))
        } else if path == "." || path.is_empty() {
            ParseError::new(format!(
                "{}: {inner}",
                if prefix.is_empty() {
                    "body"
                } else {
                    prefix.trim_end_matches('.')
                }
            ))
        } else {
            ParseError::new(format!("{prefix}{path}: {inner}"))
        }
    })?;
    de.end()
        .map_err(|err| ParseError::new(format!("body is not valid JSON: {err}")))?;
    Ok(value)
}
