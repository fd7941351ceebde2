//! Builders for the five 8x8 callflow actions.
//!
//! Where 8x8's documentation gives two different defaults for a parameter
//! (`maxDigits`, `overallTimeout`, `noOfTries` of `sayAndCapture`), the
//! builders always send an explicit value, so the app's behaviour never
//! depends on which default the platform applies.

use crate::wit;

/// The text-to-speech voice used when a builder is not given one.
pub use ivr_protocol::rules::DEFAULT_VOICE;

/// One step of a callflow. Build it with [`Say`], [`SayAndCapture`],
/// [`MakeCall`], [`PlayFile`] or [`Action::Hangup`], or let [`crate::Reply`]
/// do it.
///
/// ```
/// use ivr_sdk::{Action, Say};
/// let steps: Vec<Action> = vec![Say::new("Goodbye.").into(), Action::Hangup];
/// assert_eq!(steps.len(), 2);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Bridge the call to another number.
    MakeCall(MakeCall),
    /// Speak a text.
    Say(Say),
    /// Speak a prompt and capture digits; must be the reply's last action.
    SayAndCapture(SayAndCapture),
    /// Play an audio file.
    PlayFile(PlayFile),
    /// End the call; must be the reply's last action.
    Hangup,
}

impl Action {
    pub(crate) fn into_wit(self) -> wit::Action {
        match self {
            Action::MakeCall(a) => wit::Action::MakeCall(wit::MakeCall {
                source: a.source,
                destination: a.destination,
                call_recording: a.call_recording,
            }),
            Action::Say(a) => wit::Action::Say(wit::Say {
                text: a.text,
                voice_profile: a.voice_profile,
                repetition: a.repetition,
                speed: a.speed,
                language: a.language,
            }),
            Action::SayAndCapture(a) => wit::Action::SayAndCapture(wit::SayAndCapture {
                prompt_message: a.prompt_message,
                voice_profile: a.voice_profile,
                speed: a.speed,
                repetition: a.repetition,
                min_digits: Some(a.min_digits),
                max_digits: Some(a.max_digits),
                digit_timeout: Some(a.digit_timeout_ms),
                overall_timeout: Some(a.overall_timeout_ms),
                complete_on_hash: Some(a.complete_on_hash),
                no_of_tries: Some(a.no_of_tries),
                success_message: a.success_message,
                failure_message: a.failure_message,
            }),
            Action::PlayFile(a) => wit::Action::PlayFile(wit::PlayFile {
                file_url: a.file_url,
                repetition: a.repetition,
            }),
            Action::Hangup => wit::Action::Hangup,
        }
    }
}

/// `say`: speak a text into the call.
///
/// ```
/// use ivr_sdk::Say;
/// let hello = Say::new("Welcome to Example Bank.").voice("en-US-BenjaminRUS").speed(1.2);
/// assert_eq!(hello.text, "Welcome to Example Bank.");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Say {
    /// What to say; 1 to 3000 characters.
    pub text: String,
    /// The text-to-speech voice.
    pub voice_profile: String,
    /// How many times to say it (1–3); 8x8 says it once when `None`.
    pub repetition: Option<u8>,
    /// Speaking speed (0.5–2.0); 8x8 uses 1.0 when `None`.
    pub speed: Option<f64>,
    /// Legacy language code; rarely needed.
    pub language: Option<String>,
}

impl Say {
    /// Say `text` once, in [`DEFAULT_VOICE`].
    ///
    /// ```
    /// let s = ivr_sdk::Say::new("Hello.");
    /// assert_eq!(s.voice_profile, ivr_sdk::DEFAULT_VOICE);
    /// ```
    pub fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            voice_profile: DEFAULT_VOICE.to_owned(),
            repetition: None,
            speed: None,
            language: None,
        }
    }

    /// Use another voice profile, e.g. `en-IE-EmilyNeural`.
    ///
    /// ```
    /// let s = ivr_sdk::Say::new("Hello.").voice("en-IE-EmilyNeural");
    /// assert_eq!(s.voice_profile, "en-IE-EmilyNeural");
    /// ```
    pub fn voice(mut self, voice_profile: impl Into<String>) -> Self {
        self.voice_profile = voice_profile.into();
        self
    }

    /// Say it `times` times (1–3).
    ///
    /// ```
    /// let s = ivr_sdk::Say::new("Hello.").repetition(2);
    /// assert_eq!(s.repetition, Some(2));
    /// ```
    pub fn repetition(mut self, times: u8) -> Self {
        self.repetition = Some(times);
        self
    }

    /// Speaking speed, 0.5 to 2.0.
    ///
    /// ```
    /// let s = ivr_sdk::Say::new("Hello.").speed(0.8);
    /// assert_eq!(s.speed, Some(0.8));
    /// ```
    pub fn speed(mut self, speed: f64) -> Self {
        self.speed = Some(speed);
        self
    }
}

impl From<Say> for Action {
    fn from(say: Say) -> Self {
        Action::Say(say)
    }
}

/// `sayAndCapture`: speak a prompt and collect the caller's key presses,
/// which arrive in the next event's [`crate::CallEvent::dtmf`].
///
/// Defaults (all sent explicitly): exactly one digit, no `#` needed, 5 s
/// between key presses, 10 s overall, one try.
///
/// ```
/// use ivr_sdk::SayAndCapture;
/// let account = SayAndCapture::new("Enter your account number, then press hash.")
///     .digits(4, 8)
///     .complete_on_hash(true)
///     .timeouts_ms(5_000, 20_000);
/// assert_eq!(account.max_digits, 8);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SayAndCapture {
    /// The prompt; 1 to 3000 characters.
    pub prompt_message: String,
    /// The text-to-speech voice.
    pub voice_profile: String,
    /// Speaking speed (0.5–2.0).
    pub speed: Option<f64>,
    /// How many times to say the prompt (1–3).
    pub repetition: Option<u8>,
    /// Fewest digits accepted.
    pub min_digits: u32,
    /// Most digits accepted (1–25).
    pub max_digits: u32,
    /// Longest pause between key presses, in milliseconds.
    pub digit_timeout_ms: u32,
    /// Time for the whole input, in milliseconds (greater than `digit_timeout_ms`).
    pub overall_timeout_ms: u32,
    /// Whether `#` ends the input.
    pub complete_on_hash: bool,
    /// How many times 8x8 replays the prompt after failed input.
    pub no_of_tries: u32,
    /// Said after a valid capture.
    pub success_message: Option<String>,
    /// Said after a failed capture.
    pub failure_message: Option<String>,
}

impl SayAndCapture {
    /// Capture one digit after `prompt`, in [`DEFAULT_VOICE`].
    ///
    /// ```
    /// let menu = ivr_sdk::SayAndCapture::new("Press 1 for sales.");
    /// assert_eq!((menu.min_digits, menu.max_digits, menu.no_of_tries), (1, 1, 1));
    /// ```
    pub fn new(prompt: impl Into<String>) -> Self {
        Self {
            prompt_message: prompt.into(),
            voice_profile: DEFAULT_VOICE.to_owned(),
            speed: None,
            repetition: None,
            min_digits: 1,
            max_digits: 1,
            digit_timeout_ms: 5_000,
            overall_timeout_ms: 10_000,
            complete_on_hash: false,
            no_of_tries: 1,
            success_message: None,
            failure_message: None,
        }
    }

    /// Accept between `min` and `max` digits.
    ///
    /// ```
    /// let pin = ivr_sdk::SayAndCapture::new("Enter your PIN.").digits(4, 6);
    /// assert_eq!((pin.min_digits, pin.max_digits), (4, 6));
    /// ```
    pub fn digits(mut self, min: u32, max: u32) -> Self {
        self.min_digits = min;
        self.max_digits = max;
        self
    }

    /// Whether `#` ends the input.
    ///
    /// ```
    /// let p = ivr_sdk::SayAndCapture::new("Enter digits, then hash.").complete_on_hash(true);
    /// assert!(p.complete_on_hash);
    /// ```
    pub fn complete_on_hash(mut self, on: bool) -> Self {
        self.complete_on_hash = on;
        self
    }

    /// Time allowed between key presses and for the whole input, in
    /// milliseconds; `overall` must be greater than `between_digits`.
    ///
    /// ```
    /// let p = ivr_sdk::SayAndCapture::new("Press a key.").timeouts_ms(3_000, 8_000);
    /// assert_eq!((p.digit_timeout_ms, p.overall_timeout_ms), (3_000, 8_000));
    /// ```
    pub fn timeouts_ms(mut self, between_digits: u32, overall: u32) -> Self {
        self.digit_timeout_ms = between_digits;
        self.overall_timeout_ms = overall;
        self
    }

    /// How many times 8x8 itself replays the prompt after failed input.
    ///
    /// ```
    /// let p = ivr_sdk::SayAndCapture::new("Press a key.").tries(2);
    /// assert_eq!(p.no_of_tries, 2);
    /// ```
    pub fn tries(mut self, tries: u32) -> Self {
        self.no_of_tries = tries;
        self
    }

    /// Use another voice profile.
    ///
    /// ```
    /// let p = ivr_sdk::SayAndCapture::new("Press a key.").voice("en-GB-Emma");
    /// assert_eq!(p.voice_profile, "en-GB-Emma");
    /// ```
    pub fn voice(mut self, voice_profile: impl Into<String>) -> Self {
        self.voice_profile = voice_profile.into();
        self
    }

    /// Speaking speed, 0.5 to 2.0.
    ///
    /// ```
    /// let p = ivr_sdk::SayAndCapture::new("Press a key.").speed(1.5);
    /// assert_eq!(p.speed, Some(1.5));
    /// ```
    pub fn speed(mut self, speed: f64) -> Self {
        self.speed = Some(speed);
        self
    }

    /// Say the prompt `times` times (1–3).
    ///
    /// ```
    /// let p = ivr_sdk::SayAndCapture::new("Press a key.").repetition(2);
    /// assert_eq!(p.repetition, Some(2));
    /// ```
    pub fn repetition(mut self, times: u8) -> Self {
        self.repetition = Some(times);
        self
    }

    /// Said by 8x8 after a valid capture.
    ///
    /// ```
    /// let p = ivr_sdk::SayAndCapture::new("Press a key.").success_message("Thank you.");
    /// assert_eq!(p.success_message.as_deref(), Some("Thank you."));
    /// ```
    pub fn success_message(mut self, text: impl Into<String>) -> Self {
        self.success_message = Some(text.into());
        self
    }

    /// Said by 8x8 after a failed capture.
    ///
    /// ```
    /// let p = ivr_sdk::SayAndCapture::new("Press a key.").failure_message("Sorry.");
    /// assert_eq!(p.failure_message.as_deref(), Some("Sorry."));
    /// ```
    pub fn failure_message(mut self, text: impl Into<String>) -> Self {
        self.failure_message = Some(text.into());
        self
    }
}

impl From<SayAndCapture> for Action {
    fn from(capture: SayAndCapture) -> Self {
        Action::SayAndCapture(capture)
    }
}

/// `makeCall`: dial a number and bridge it to the current call.
///
/// ```
/// use ivr_sdk::MakeCall;
/// let transfer = MakeCall::new("+6561115777", "+6512345678").record(true);
/// assert_eq!(transfer.call_recording, Some(true));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct MakeCall {
    /// Caller id: a virtual number of the subaccount.
    pub source: String,
    /// The number to dial, E.164.
    pub destination: String,
    /// Record the bridged call.
    pub call_recording: Option<bool>,
}

impl MakeCall {
    /// Dial `destination` showing `source` as the caller id.
    ///
    /// ```
    /// let call = ivr_sdk::MakeCall::new("+6561115777", "+6512345678");
    /// assert_eq!(call.destination, "+6512345678");
    /// ```
    pub fn new(source: impl Into<String>, destination: impl Into<String>) -> Self {
        Self {
            source: source.into(),
            destination: destination.into(),
            call_recording: None,
        }
    }

    /// Record the bridged call (the 8x8 account must have recording set up).
    ///
    /// ```
    /// let call = ivr_sdk::MakeCall::new("+6561115777", "+6512345678").record(true);
    /// assert_eq!(call.call_recording, Some(true));
    /// ```
    pub fn record(mut self, on: bool) -> Self {
        self.call_recording = Some(on);
        self
    }
}

impl From<MakeCall> for Action {
    fn from(call: MakeCall) -> Self {
        Action::MakeCall(call)
    }
}

/// `playFile`: play an `.mp3` or `.wav` file (http or https, under 5 MB).
///
/// ```
/// use ivr_sdk::PlayFile;
/// let music = PlayFile::new("https://example.com/audio/hold.mp3").repetition(3);
/// assert_eq!(music.repetition, Some(3));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct PlayFile {
    /// URL of the audio file.
    pub file_url: String,
    /// How many times to play it (1–3).
    pub repetition: Option<u8>,
}

impl PlayFile {
    /// Play the file at `url` once.
    ///
    /// ```
    /// let f = ivr_sdk::PlayFile::new("https://example.com/audio/goodbye.mp3");
    /// assert_eq!(f.repetition, None);
    /// ```
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            file_url: url.into(),
            repetition: None,
        }
    }

    /// Play it `times` times (1–3).
    ///
    /// ```
    /// let f = ivr_sdk::PlayFile::new("https://example.com/a.wav").repetition(2);
    /// assert_eq!(f.repetition, Some(2));
    /// ```
    pub fn repetition(mut self, times: u8) -> Self {
        self.repetition = Some(times);
        self
    }
}

impl From<PlayFile> for Action {
    fn from(file: PlayFile) -> Self {
        Action::PlayFile(file)
    }
}
