//! Go duration strings ("10s", "1m30s", "500ms", "1.5h") as Consul clients send them.

use std::time::Duration;

/// Parses a Go `time.Duration` string. A bare number is taken as nanoseconds, as Go does for
/// numbers in JSON; clients in practice always send units.
pub fn parse_go_duration(input: &str) -> Result<Duration, String> {
    let s = input.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if let Some(rest) = s.strip_prefix('-') {
        return Err(format!("negative duration \"-{rest}\" is not allowed"));
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    // Whole nanoseconds, in integers as Go counts them: a float would lose the last digits of
    // long durations and turn 1.000001ms into 1ms.
    let mut total_ns: u128 = 0;
    let too_large = || format!("invalid duration \"{s}\": too large");
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        let whole = &s[start..i];
        let mut fraction = "";
        if i < bytes.len() && bytes[i] == b'.' {
            i += 1;
            let from = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            fraction = &s[from..i];
        }
        if whole.is_empty() && fraction.is_empty() {
            return Err(format!(
                "invalid duration \"{s}\": expected a number at \"{}\"",
                &s[start..]
            ));
        }
        let unit_start = i;
        while i < bytes.len() && !(bytes[i].is_ascii_digit() || bytes[i] == b'.') {
            i += 1;
        }
        let factor: u128 = match &s[unit_start..i] {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => {
                return Err(format!(
                    "invalid duration \"{s}\": missing unit (e.g. \"10s\")"
                ));
            }
            other => {
                return Err(format!(
                    "invalid duration \"{s}\": unknown unit \"{other}\" (use ns, us, ms, s, m, h)"
                ));
            }
        };
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| too_large())?
        };
        // The fraction's digits beyond a nanosecond are dropped, as Go drops them.
        let mut part: u128 = 0;
        let mut scale: u128 = 1;
        for d in fraction.bytes().take(30) {
            part = part * 10 + u128::from(d - b'0');
            scale *= 10;
        }
        let ns = whole
            .checked_mul(factor)
            .and_then(|w| w.checked_add(part * factor / scale))
            .ok_or_else(too_large)?;
        total_ns = total_ns.checked_add(ns).ok_or_else(too_large)?;
    }
    let ns = u64::try_from(total_ns).map_err(|_| too_large())?;
    Ok(Duration::from_nanos(ns))
}

/// Formats a duration the way Go prints one ("10s", "1m0s", "1.5ms", "250µs", "4ns"), to the
/// nanosecond: what is written reads back the same.
pub fn format_go_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    match ns {
        0 => "0s".into(),
        1..1_000 => format!("{ns}ns"),
        1_000..1_000_000 => format!("{}µs", decimal(ns, 1_000)),
        1_000_000..1_000_000_000 => format!("{}ms", decimal(ns, 1_000_000)),
        _ => {
            let whole = d.as_secs();
            let (h, m) = (whole / 3600, (whole % 3600) / 60);
            let secs = decimal(
                u128::from(whole % 60) * 1_000_000_000 + u128::from(d.subsec_nanos()),
                1_000_000_000,
            );
            match (h, m) {
                (0, 0) => format!("{secs}s"),
                (0, _) => format!("{m}m{secs}s"),
                _ => format!("{h}h{m}m{secs}s"),
            }
        }
    }
}

/// `value / unit` in decimal, without trailing zeros: (1_500_000, 1_000_000) → "1.5".
fn decimal(value: u128, unit: u128) -> String {
    let (int, rest) = (value / unit, value % unit);
    if rest == 0 {
        return int.to_string();
    }
    let width = unit.ilog10() as usize;
    let digits = format!("{rest:0width$}");
    format!("{int}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_clients_send() {
        assert_eq!(parse_go_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_go_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_go_duration("90m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_garbage_with_a_reason() {
        assert!(parse_go_duration("ten seconds").is_err());
        assert!(
            parse_go_duration("10")
                .unwrap_err()
                .contains("missing unit")
        );
        assert!(
            parse_go_duration("10x")
                .unwrap_err()
                .contains("unknown unit")
        );
        assert!(parse_go_duration("-1s").is_err());
        assert!(parse_go_duration("").is_err());
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(format_go_duration(Duration::from_secs(10)), "10s");
        assert_eq!(format_go_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(format_go_duration(Duration::from_secs(90)), "1m30s");
        // Below a millisecond too (the fuzzer found 4ns written as 0s).
        assert_eq!(format_go_duration(Duration::from_nanos(4)), "4ns");
        assert_eq!(format_go_duration(Duration::from_nanos(1_500)), "1.5µs");
        assert_eq!(
            format_go_duration(Duration::from_nanos(1_000_001)),
            "1.000001ms"
        );
        assert_eq!(format_go_duration(Duration::from_secs(3600)), "1h0m0s");
        for d in [4, 1_500, 1_000_001, 60_001_000_000, 90_000_000_123] {
            let d = Duration::from_nanos(d);
            assert_eq!(parse_go_duration(&format_go_duration(d)), Ok(d));
        }
        assert!(parse_go_duration("99999999999999999999h").is_err());
    }
}
