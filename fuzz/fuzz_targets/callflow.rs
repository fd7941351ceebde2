//! Callflow validation and serialization: whatever JSON reads as a
//! callflow, validation never panics, and an accepted callflow serializes
//! to JSON that reads back as the same callflow.
#![no_main]

use ivr_protocol::{Callflow, ReplyLimits, check_size, validate};

libfuzzer_sys::fuzz_target!(|json: &[u8]| {
    let Ok(flow) = serde_json::from_slice::<Callflow>(json) else {
        return;
    };
    let limits = ReplyLimits::default();
    if validate(&flow, &limits).is_ok() {
        let bytes = flow.to_json();
        let back: Callflow = serde_json::from_slice(&bytes).expect("a valid callflow reads back");
        assert_eq!(back, flow);
        let _ = check_size(&bytes, &limits);
    }
});
