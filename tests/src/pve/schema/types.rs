//! Scalar type checks of PVE::JSONSchema: what counts as an integer, a number, a boolean, and
//! the numbers a schema writes for its bounds (sometimes as strings, `"minimum": "0"`).

use serde_json::Value;

/// Perl's `$` accepts one final newline; PVE's checks are `m/^...$/`.
fn perl_line(value: &str) -> &str {
    value.strip_suffix('\n').unwrap_or(value)
}

/// PVE's `is_integer`: `^[+-]?\d+$`.
pub(crate) fn is_integer(value: &str) -> bool {
    let v = perl_line(value);
    let digits = v.strip_prefix(['+', '-']).unwrap_or(v);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// PVE's `is_number`: `^[+-]?(\d+\.\d+|\d+\.|\.\d+|\d+)([eE][+-]?\d+)?$`.
pub(crate) fn is_number(value: &str) -> bool {
    let v = perl_line(value);
    let v = v.strip_prefix(['+', '-']).unwrap_or(v);
    let (mantissa, exponent) = match v.find(['e', 'E']) {
        Some(at) => (&v[..at], Some(&v[at + 1..])),
        None => (v, None),
    };
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some((int, frac)) => (!int.is_empty() || !frac.is_empty()) && all_digits(int) && all_digits(frac),
        None => !mantissa.is_empty() && all_digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && all_digits(e)
    });
    mantissa_ok && exponent_ok
}

/// The numeric value of a string that passed [`is_number`].
pub(crate) fn numeric(value: &str) -> Option<f64> {
    perl_line(value).parse().ok()
}

/// PVE's `parse_boolean`, used for booleans inside property strings (`firewall=yes`).
pub(crate) fn parse_boolean(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "on" | "yes" | "true" => Some(true),
        "0" | "off" | "no" | "false" => Some(false),
        _ => None,
    }
}

/// A bound (`minimum`, `maximum`, `maxLength`) as the schema writes it: a JSON number or a
/// numeric string.
pub(crate) fn bound(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) if is_number(s) => numeric(s),
        _ => None,
    }
}

/// A bound or enum member as Perl would print it in an error text.
pub(crate) fn display(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// PVE's `check_type` for the value of one parameter. Top-level booleans must be `1` or `0`:
/// the API does not run `parse_boolean` on them (Proxmox answers `skipsmart=true` with a 400).
pub(crate) fn check_type(type_name: &str, value: &str) -> Result<(), String> {
    let ok = match type_name {
        "boolean" => value == "1" || value == "0",
        "integer" => is_integer(value),
        "number" => is_number(value),
        _ => true,
    };
    if ok { Ok(()) } else { Err(format!("type check ('{type_name}') failed - got '{value}'")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers() {
        for ok in ["0", "100", "+5", "-7", "100\n"] {
            assert!(is_integer(ok), "{ok:?}");
        }
        for bad in ["", "abc", "1.0", "1e3", " 1", "1 ", "+", "0x10"] {
            assert!(!is_integer(bad), "{bad:?}");
        }
    }

    #[test]
    fn numbers() {
        for ok in ["0", "1.5", "1.", ".5", "-2.5e-3", "+1E10", "7"] {
            assert!(is_number(ok), "{ok:?}");
        }
        for bad in ["", ".", "e5", "1e", "abc", "1.2.3", "inf", "NaN", "1,5"] {
            assert!(!is_number(bad), "{bad:?}");
        }
    }

    #[test]
    fn booleans() {
        assert_eq!(parse_boolean("YES"), Some(true));
        assert_eq!(parse_boolean("Off"), Some(false));
        assert_eq!(parse_boolean("maybe"), None);
        assert!(check_type("boolean", "1").is_ok());
        assert_eq!(
            check_type("boolean", "true"),
            Err("type check ('boolean') failed - got 'true'".to_owned())
        );
        assert!(check_type("string", "anything").is_ok());
    }

    #[test]
    fn bounds_may_be_strings() {
        assert_eq!(bound(&Value::from("0")), Some(0.0));
        assert_eq!(bound(&Value::from(999_999_999)), Some(999_999_999.0));
        assert_eq!(bound(&Value::from("N")), None);
        assert_eq!(display(&Value::from(100)), "100");
        assert_eq!(display(&Value::from("0")), "0");
    }
}
