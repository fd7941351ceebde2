//! The Voice Session Summary (VSS, `eventType: SESSION_SUMMARY`, reference
//! §5): parsed leniently — unknown statuses and actions kept as text, legs
//! under any key, `errorCode` as a number or a string — with only
//! `payload.sessionId` required.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A session's final outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionSummary {
    /// The session (same id as in its VCAs).
    #[serde(default)]
    pub session_id: String,
    /// The subaccount.
    #[serde(default)]
    pub sub_account_id: String,
    /// `COMPLETED`, `BUSY`, `NO_ANSWER`, `FAILED`, `CANCELED`, `ERROR`, or any other value verbatim.
    #[serde(default)]
    pub session_status: String,
    /// Start time, as sent.
    #[serde(default)]
    pub start_time: String,
    /// End time, as sent.
    #[serde(default)]
    pub end_time: String,
    /// The last action executed (`HANGUP`, `MAKE_CALL`, …), verbatim.
    #[serde(default)]
    pub last_action: String,
    /// Number of call legs.
    #[serde(default)]
    pub call_count: u64,
    /// Echoed client request id, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_request_id: Option<String>,
    /// Error details when the session failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_details: Option<ErrorDetails>,
    /// Legs by name (`callA`, `callB`, or any other key).
    #[serde(default)]
    pub details: BTreeMap<String, Leg>,
}

/// `errorDetails`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorDetails {
    /// The session error code (reference §8.3), from a number or a string.
    #[serde(
        default,
        deserialize_with = "crate::lenient::i64_or_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub error_code: Option<i64>,
    /// The message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_msg: Option<String>,
}

/// One call leg of the session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Leg {
    /// The leg's call id.
    #[serde(default)]
    pub call_id: String,
    /// `INBOUND` / `OUTBOUND`, verbatim.
    #[serde(default)]
    pub call_direction: String,
    /// `PSTN` / `VOIP`, verbatim.
    #[serde(default)]
    pub call_type: String,
    /// Source number.
    #[serde(default)]
    pub source: String,
    /// Destination number.
    #[serde(default)]
    pub destination: String,
    /// `COMPLETED`, `BUSY`, `NO_ANSWER`, `FAILED`, `CANCELED`, `ERROR`, … verbatim.
    #[serde(default)]
    pub call_status: String,
    /// Connected seconds.
    #[serde(default, deserialize_with = "crate::lenient::u64_or_zero")]
    pub call_duration: u64,
    /// When the leg was initiated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initiated_timestamp: Option<String>,
    /// When it connected (absent when it never did).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected_timestamp: Option<String>,
    /// When it disconnected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disconnected_timestamp: Option<String>,
    /// The VN reference on the source side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ref_id: Option<String>,
    /// The VN reference on the destination side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_ref_id: Option<String>,
    /// `SourceRefId`, as one Voice Messaging example spells it.
    #[serde(
        default,
        rename = "SourceRefId",
        skip_serializing_if = "Option::is_none"
    )]
    pub source_ref_id_capitalized: Option<String>,
}

impl Leg {
    /// The source-side VN reference under either spelling.
    pub fn source_ref(&self) -> Option<&str> {
        self.source_ref_id
            .as_deref()
            .or(self.source_ref_id_capitalized.as_deref())
    }
}

/// The meaning of a session error code (reference §8.3).
pub fn error_code_meaning(code: i64) -> &'static str {
    match code {
        -2001 => "An internal error has occurred",
        -2002 => "An internal connectivity error has occurred",
        -2003 => "The call flow provided is invalid",
        -2004 => "No coverage available for requested area",
        -2005 => "Unable to synthesize text to speech",
        -2006 => "Unable to download file for playback",
        -2007 => "The validity period of the call flow request has expired",
        -2008 => "The provided source MSISDN or caller ID is not whitelisted",
        -2009 => "The scenario parameters provided is invalid",
        -2010 => "The trunk capacity has been exceeded",
        -9999 => "An unknown error has occurred",
        _ => "unknown error code",
    }
}
