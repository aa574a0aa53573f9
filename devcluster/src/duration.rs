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
    let mut total_ns: f64 = 0.0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
            i += 1;
        }
        let number: f64 = s[start..i].parse().map_err(|_| {
            format!(
                "invalid duration \"{s}\": expected a number at \"{}\"",
                &s[start..]
            )
        })?;
        let unit_start = i;
        while i < bytes.len() && !(bytes[i].is_ascii_digit() || bytes[i] == b'.') {
            i += 1;
        }
        let factor = match &s[unit_start..i] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
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
        total_ns += number * factor;
    }
    Ok(Duration::from_nanos(total_ns.round() as u64))
}

/// Formats a duration the way Go prints it in JSON responses ("10s", "1m0s", "500ms").
pub fn format_go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        return format!("{}s", trim_float(secs));
    }
    let whole = d.as_secs();
    let (h, m) = (whole / 3600, (whole % 3600) / 60);
    // The seconds keep their milliseconds, as Go's "1m0.5s" does: a value written out reads
    // back the same (a property test found "1m0s" for 60.001 s).
    let s = trim_float((whole % 60) as f64 + f64::from(d.subsec_millis()) / 1000.0);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else {
        format!("{m}m{s}s")
    }
}

fn trim_float(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
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
    }
}
