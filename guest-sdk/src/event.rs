//! The typed 8x8 Voice Call Action event an app receives.

use crate::wit;

pub use wit::{CallDirection, CallStatus, CallType};

/// One Voice Call Action (VCA) event of a call, as 8x8 sent it.
///
/// ```
/// use ivr_sdk::{CallEvent, CallStatus};
///
/// let event = CallEvent::example();
/// assert_eq!(event.session_id(), "a4fad4b3-b388-12ee-b217-2fb8260fcf59");
/// assert_eq!(event.dtmf(), Some("1"));
/// assert!(matches!(event.call_status(), CallStatus::ActionCompleted));
/// ```
#[derive(Debug, Clone)]
pub struct CallEvent {
    raw: wit::CallEvent,
}

impl CallEvent {
    pub(crate) fn from_wit(raw: wit::CallEvent) -> Self {
        Self { raw }
    }

    /// The event of 8x8's documented VCA sample (caller pressed `1` at menu
    /// `ivr1_level1`), for tests and documentation.
    ///
    /// ```
    /// let event = ivr_sdk::CallEvent::example();
    /// assert_eq!(event.client_action_id(), Some("ivr1_level1"));
    /// ```
    pub fn example() -> Self {
        Self::from_wit(wit::CallEvent {
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
        })
    }

    /// Digits captured by the previous `sayAndCapture`, verbatim; `None` when
    /// nothing was captured (no input, timeout) or on first contact.
    ///
    /// ```
    /// assert_eq!(ivr_sdk::CallEvent::example().dtmf(), Some("1"));
    /// ```
    pub fn dtmf(&self) -> Option<&str> {
        self.raw.dtmf.as_deref()
    }

    /// The `client_action_id` of this app's previous reply in this call
    /// (8x8 echoes it back); `None` on first contact.
    ///
    /// ```
    /// assert_eq!(ivr_sdk::CallEvent::example().client_action_id(), Some("ivr1_level1"));
    /// ```
    pub fn client_action_id(&self) -> Option<&str> {
        self.raw.client_action_id.as_deref()
    }

    /// True when this is the call's first event: no previous reply was echoed.
    ///
    /// ```
    /// assert!(!ivr_sdk::CallEvent::example().is_first_contact());
    /// ```
    pub fn is_first_contact(&self) -> bool {
        self.raw.client_action_id.is_none()
    }

    /// Why 8x8 sent the event.
    ///
    /// ```
    /// use ivr_sdk::CallStatus;
    /// assert!(matches!(ivr_sdk::CallEvent::example().call_status(), CallStatus::ActionCompleted));
    /// ```
    pub fn call_status(&self) -> &CallStatus {
        &self.raw.call_status
    }

    /// Direction of the leg that triggered the event.
    ///
    /// ```
    /// use ivr_sdk::CallDirection;
    /// assert!(matches!(ivr_sdk::CallEvent::example().call_direction(), CallDirection::Outbound));
    /// ```
    pub fn call_direction(&self) -> &CallDirection {
        &self.raw.call_direction
    }

    /// Network of the leg (PSTN or VoIP).
    ///
    /// ```
    /// use ivr_sdk::CallType;
    /// assert!(matches!(ivr_sdk::CallEvent::example().call_type(), CallType::Pstn));
    /// ```
    pub fn call_type(&self) -> &CallType {
        &self.raw.call_type
    }

    /// The number of the person calling in: the source of an inbound leg, the
    /// destination of an outbound one.
    ///
    /// ```
    /// assert_eq!(ivr_sdk::CallEvent::example().caller_number(), "+6598888888");
    /// ```
    pub fn caller_number(&self) -> &str {
        let outbound = matches!(self.raw.call_direction, CallDirection::Outbound);
        ivr_protocol::rules::caller_number(outbound, &self.raw.source, &self.raw.destination)
    }

    /// The virtual number of the subaccount on this call: the destination of
    /// an inbound leg, the source of an outbound one.
    ///
    /// ```
    /// assert_eq!(ivr_sdk::CallEvent::example().virtual_number(), "+6568888888");
    /// ```
    pub fn virtual_number(&self) -> &str {
        let outbound = matches!(self.raw.call_direction, CallDirection::Outbound);
        ivr_protocol::rules::virtual_number(outbound, &self.raw.source, &self.raw.destination)
    }

    /// Id of the whole voice session; every event of a call shares it.
    ///
    /// ```
    /// assert_eq!(ivr_sdk::CallEvent::example().session_id(), "a4fad4b3-b388-12ee-b217-2fb8260fcf59");
    /// ```
    pub fn session_id(&self) -> &str {
        &self.raw.session_id
    }

    /// Unique id of this event.
    ///
    /// ```
    /// assert_eq!(ivr_sdk::CallEvent::example().event_id(), "77e6a667-133a-11ef-9dd4-e911cc6fc82f");
    /// ```
    pub fn event_id(&self) -> &str {
        &self.raw.event_id
    }

    /// Id of the call leg that triggered the event.
    ///
    /// ```
    /// assert_eq!(ivr_sdk::CallEvent::example().call_id(), "627e25f1-133a-11ef-b08c-e33c09483244");
    /// ```
    pub fn call_id(&self) -> &str {
        &self.raw.call_id
    }

    /// The 8x8 subaccount the call belongs to.
    ///
    /// ```
    /// assert_eq!(ivr_sdk::CallEvent::example().sub_account_id(), "account_x");
    /// ```
    pub fn sub_account_id(&self) -> &str {
        &self.raw.sub_account_id
    }

    /// Source number of the leg.
    ///
    /// ```
    /// assert_eq!(ivr_sdk::CallEvent::example().source(), "+6568888888");
    /// ```
    pub fn source(&self) -> &str {
        &self.raw.source
    }

    /// Destination number of the leg.
    ///
    /// ```
    /// assert_eq!(ivr_sdk::CallEvent::example().destination(), "+6598888888");
    /// ```
    pub fn destination(&self) -> &str {
        &self.raw.destination
    }

    /// Duration of the leg so far, in seconds.
    ///
    /// ```
    /// assert_eq!(ivr_sdk::CallEvent::example().call_duration_secs(), 0);
    /// ```
    pub fn call_duration_secs(&self) -> u64 {
        self.raw.call_duration
    }

    /// Final SIP status of the leg (0 when 8x8 sent none).
    ///
    /// ```
    /// assert_eq!(ivr_sdk::CallEvent::example().sip_code(), 200);
    /// ```
    pub fn sip_code(&self) -> u32 {
        self.raw.sip_code
    }

    /// Event time, ISO 8601 UTC, as 8x8 sent it.
    ///
    /// ```
    /// assert_eq!(ivr_sdk::CallEvent::example().timestamp(), "2024-05-16T04:12:11.217Z");
    /// ```
    pub fn timestamp(&self) -> &str {
        &self.raw.timestamp
    }

    /// Every field of the event, including the number formats, country codes
    /// and virtual-number reference ids.
    ///
    /// ```
    /// let event = ivr_sdk::CallEvent::example();
    /// assert_eq!(event.raw().source_country_code.as_deref(), Some("SG"));
    /// ```
    pub fn raw(&self) -> &wit::CallEvent {
        &self.raw
    }
}
