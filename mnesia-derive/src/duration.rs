//! The lifetime syntax of `#[table(ttl = "..")]`, checked when the struct compiles.

/// Parses a lifetime such as `"30m"`, `"1h30m"` or `"500ms"` into milliseconds: whole
/// numbers, each followed by a unit `ms`, `s`, `m`, `h`, `d` or `w`.
pub(crate) fn parse_millis(s: &str) -> Result<u64, String> {
    let expected =
        "expected whole numbers with units, like \"30m\", \"1h30m\" or \"500ms\" (units: ms, s, m, h, d, w)";
    if s.is_empty() {
        return Err(format!("an empty lifetime: {expected}"));
    }
    let too_long = || format!("`{s}` is too long a lifetime");
    let mut total: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return Err(format!("`{s}` is not a lifetime: {expected}"));
        }
        let n: u64 = rest[..digits].parse().map_err(|_| too_long())?;
        rest = &rest[digits..];
        let unit_len = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_alphabetic()).len();
        let unit_ms: u64 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            "" => return Err(format!("`{s}` has a number without a unit: {expected}")),
            other => return Err(format!("`{s}` has an unknown unit `{other}`: {expected}")),
        };
        rest = &rest[unit_len..];
        total = n.checked_mul(unit_ms).and_then(|ms| total.checked_add(ms)).ok_or_else(too_long)?;
    }
    if total == 0 {
        return Err(format!("`{s}` is a zero lifetime: records would expire as they are written"));
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::parse_millis;

    #[test]
    fn every_unit_parses_and_the_rest_is_refused() {
        assert_eq!(parse_millis("30m"), Ok(1_800_000));
        assert_eq!(parse_millis("2d"), Ok(172_800_000));
        assert_eq!(parse_millis("1w"), Ok(604_800_000));
        assert_eq!(parse_millis("1h30m"), Ok(5_400_000));
        assert_eq!(parse_millis("1s500ms"), Ok(1_500));
        for bad in
            ["", "m", "30", "30 m", "30x", "1.5h", "-1s", "0s", "99999999999999999999d", "9999999999999999w"]
        {
            assert!(parse_millis(bad).is_err(), "{bad} was accepted");
        }
    }
}
