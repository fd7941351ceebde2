//! The VCA reply: `{"clientActionId"?, "callflow": [...]}` (reference §4).
//!
//! Emitted strictly: exact action spellings, camelCase parameter names,
//! optional parameters omitted when unset, `{"action":"hangup"}` without
//! `params`.

use serde::{Deserialize, Serialize};

/// The voice used by the host's own prompts (the default fallback apology).
pub use crate::rules::DEFAULT_VOICE as HOST_VOICE;

/// What the host says when an app cannot answer (fault, no route).
pub const DEFAULT_APOLOGY: &str =
    "We are sorry, we cannot take your call right now. Please try again later. Goodbye.";

/// A VCA reply body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Callflow {
    /// Echoed back by 8x8 in the call's next VCA.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub client_action_id: Option<String>,
    /// The actions 8x8 runs, in order.
    pub callflow: Vec<Action>,
}

impl Callflow {
    /// The host's default fallback: a short apology, then hangup.
    pub fn apology() -> Self {
        Self {
            client_action_id: None,
            callflow: vec![
                Action::Say(Say {
                    text: DEFAULT_APOLOGY.to_owned(),
                    voice_profile: HOST_VOICE.to_owned(),
                    repetition: None,
                    speed: None,
                    language: None,
                }),
                Action::Hangup,
            ],
        }
    }

    /// The exact JSON 8x8 receives.
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing these plain structs cannot fail: every map key is a
        // string and every float is checked finite by the validator first;
        // a non-finite float serializes as `null` rather than failing.
        serde_json::to_vec(self)
            .unwrap_or_else(|_| b"{\"callflow\":[{\"action\":\"hangup\"}]}".to_vec())
    }
}

/// One callflow action, `{"action": NAME, "params": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", content = "params", rename_all = "camelCase")]
pub enum Action {
    /// `makeCall`.
    MakeCall(MakeCall),
    /// `say`.
    Say(Say),
    /// `sayAndCapture`.
    SayAndCapture(SayAndCapture),
    /// `playFile`.
    PlayFile(PlayFile),
    /// `hangup` (no params).
    Hangup,
}

impl Action {
    /// The 8x8 action name.
    pub fn name(&self) -> &'static str {
        match self {
            Action::MakeCall(_) => "makeCall",
            Action::Say(_) => "say",
            Action::SayAndCapture(_) => "sayAndCapture",
            Action::PlayFile(_) => "playFile",
            Action::Hangup => "hangup",
        }
    }
}

/// `makeCall` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MakeCall {
    /// Caller id (a virtual number).
    pub source: String,
    /// Number to dial.
    pub destination: String,
    /// Record the call.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub call_recording: Option<bool>,
}

/// `say` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Say {
    /// Text to speak.
    pub text: String,
    /// TTS voice.
    pub voice_profile: String,
    /// 1–3.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub repetition: Option<u8>,
    /// 0.5–2.0.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub speed: Option<f64>,
    /// Legacy language code.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub language: Option<String>,
}

/// `sayAndCapture` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SayAndCapture {
    /// Prompt to speak.
    pub prompt_message: String,
    /// TTS voice.
    pub voice_profile: String,
    /// 0.5–2.0.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub speed: Option<f64>,
    /// 1–3.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub repetition: Option<u8>,
    /// Fewest digits.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub min_digits: Option<u32>,
    /// Most digits.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub max_digits: Option<u32>,
    /// Gap between key presses, ms.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub digit_timeout: Option<u32>,
    /// Time for the whole input, ms.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub overall_timeout: Option<u32>,
    /// `#` ends input.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub complete_on_hash: Option<bool>,
    /// Replays after failed input.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub no_of_tries: Option<u32>,
    /// Said after a valid capture.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub success_message: Option<String>,
    /// Said after a failed capture.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub failure_message: Option<String>,
}

/// `playFile` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlayFile {
    /// http(s) URL of an mp3 or wav file.
    pub file_url: String,
    /// 1–3.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub repetition: Option<u8>,
}
