//! 8x8 rules that hold whatever the wire format: which number of a leg is
//! the subaccount's and which the caller's, what a phone number looks like,
//! and the voice used when none is chosen. Free of dependencies, so guests (the SDK) share them with the host.

/// The text-to-speech voice used when none is chosen: the host's own
/// prompts and the SDK's builders.
pub const DEFAULT_VOICE: &str = "en-US-ZiraRUS";

/// The subaccount's virtual number on a leg: the destination of an inbound
/// leg, the source of an outbound one (what routing keys on).
pub fn virtual_number<'a>(outbound: bool, source: &'a str, destination: &'a str) -> &'a str {
    if outbound { source } else { destination }
}

/// The number of the person on the other end: the source of an inbound
/// leg, the destination of an outbound one.
pub fn caller_number<'a>(outbound: bool, source: &'a str, destination: &'a str) -> &'a str {
    if outbound { destination } else { source }
}

/// An E.164 number, `+` optional: 3 to 15 digits and nothing else.
pub fn is_e164(number: &str) -> bool {
    let digits = number.strip_prefix('+').unwrap_or(number);
    (3..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

/// True when two numbers have the same digits (`+6568888888` is
/// `6568888888` is `+65 6888-8888`); an empty number matches nothing.
pub fn same_number(a: &str, b: &str) -> bool {
    let digits = |n: &str| n.chars().filter(char::is_ascii_digit).collect::<String>();
    let a = digits(a);
    !a.is_empty() && a == digits(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_follow_the_direction() {
        assert_eq!(virtual_number(false, "+65911", "+65688"), "+65688");
        assert_eq!(virtual_number(true, "+65688", "+65911"), "+65688");
        assert_eq!(caller_number(false, "+65911", "+65688"), "+65911");
        assert_eq!(caller_number(true, "+65688", "+65911"), "+65911");
    }

    #[test]
    fn e164_numbers() {
        for good in ["+6568888888", "6568888888", "+123", "123456789012345"] {
            assert!(is_e164(good), "{good}");
        }
        for bad in [
            "",
            "+",
            "+12",
            "1234567890123456",
            "+65 6888",
            "++65688",
            "65-688",
        ] {
            assert!(!is_e164(bad), "{bad}");
        }
        assert!(same_number("+65 6888-8888", "6568888888"));
        assert!(!same_number("", ""));
        assert!(!same_number("+656", "+657"));
    }
}
