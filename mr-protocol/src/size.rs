//! Parsing of human-friendly sizes (`64MiB`, `512KiB`, `1000`) and durations.

/// Parses a byte size: a plain number of bytes, or a number with a suffix
/// `B`, `K`/`KB`/`KiB`, `M`/`MB`/`MiB`, `G`/`GB`/`GiB` (all powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits_end);
    if num.is_empty() {
        return Err(format!(
            "'{s}' is not a size; use bytes or a unit, e.g. 1048576, 512KiB, 64MiB"
        ));
    }
    let n: u64 = num
        .parse()
        .map_err(|_| format!("size '{s}' is too large"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit '{other}' in '{s}'; use KiB, MiB or GiB"
            ))
        }
    };
    let v = n
        .checked_mul(mult)
        .ok_or_else(|| format!("size '{s}' is too large"))?;
    if v == 0 {
        return Err(format!("size '{s}' must be greater than zero"));
    }
    Ok(v)
}

/// Parses a positive duration in seconds (fractions allowed, e.g. `0.5`).
pub fn parse_secs(s: &str) -> Result<std::time::Duration, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number of seconds"))?;
    if !v.is_finite() || v <= 0.0 || v > 1e9 {
        return Err(format!("'{s}' must be a positive number of seconds"));
    }
    Ok(std::time::Duration::from_secs_f64(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("512KiB"), Ok(512 << 10));
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        for bad in [
            "",
            "-1",
            "1.5MiB",
            "12XB",
            "0",
            "MiB",
            "99999999999999999999",
        ] {
            assert!(parse_size(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_secs("10").unwrap().as_secs(), 10);
        assert_eq!(parse_secs("0.5").unwrap().as_millis(), 500);
        for bad in ["", "-3", "0", "abc", "inf", "NaN"] {
            assert!(parse_secs(bad).is_err(), "{bad} should be refused");
        }
    }
}
