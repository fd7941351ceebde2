//! Webhook parsing: any bytes give an event or a reason, never a panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|body: &[u8]| {
    if let Err(err) = ivr_protocol::parse_webhook(body) {
        assert!(!err.to_string().is_empty());
    }
});
