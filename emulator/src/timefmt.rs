//! UTC timestamps in the shape Azure's JSON uses (`2020-04-10T03:11:13.0276997Z`, seven
//! fractional digits), HTTP dates, and the two parsers storage SAS tokens and hub settings
//! need (an ISO 8601 UTC instant, an ISO 8601 duration) — without pulling in a date-time
//! crate for a handful of fixed shapes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Formats `t` as ISO 8601 UTC with 100-ns precision, as DPS and IoT Hub do.
pub fn utc_timestamp(t: SystemTime) -> String {
    let since_epoch = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let ticks = since_epoch.subsec_nanos() / 100;
    format!("{}.{ticks:07}Z", date_and_time(since_epoch.as_secs()))
}

/// `YYYY-MM-DDThh:mm:ss` of a Unix time, in UTC.
fn date_and_time(secs: u64) -> String {
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Formats `t` as an RFC 1123 HTTP date (`Thu, 12 Oct 2017 19:23:50 GMT`), the shape the
/// Azure Resource Manager APIs give certificate times in.
pub(crate) fn http_date(t: SystemTime) -> String {
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = unix_seconds(t);
    let days = secs / 86_400;
    let (year, month, day) = civil_from_days(days as i64);
    let rem = secs % 86_400;
    let weekday = WEEKDAYS.get((days % 7) as usize).copied().unwrap_or("Thu");
    let month_name = MONTHS
        .get((month as usize).saturating_sub(1))
        .copied()
        .unwrap_or("Jan");
    format!(
        "{weekday}, {day:02} {month_name} {year:04} {:02}:{:02}:{:02} GMT",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Seconds since the Unix epoch, saturating at zero for clocks set before 1970.
pub(crate) fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Formats `t` as ISO 8601 UTC to the second (`2026-12-04T19:00:00Z`): the shape storage
/// SAS tokens carry their start and expiry in.
pub(crate) fn utc_seconds(t: SystemTime) -> String {
    format!("{}Z", date_and_time(unix_seconds(t)))
}

/// Parses an ISO 8601 UTC instant as storage SAS tokens give it: `YYYY-MM-DD`,
/// `YYYY-MM-DDThh:mmZ`, `YYYY-MM-DDThh:mm:ssZ` or with a fraction of a second (dropped).
/// `None` for anything else, including dates before 1970 or fields out of range.
pub(crate) fn parse_utc(text: &str) -> Option<SystemTime> {
    let (date, time) = match text.split_once('T') {
        Some((date, time)) => (date, Some(time.strip_suffix('Z')?)),
        None => (text, None),
    };
    let mut date_fields = date.splitn(3, '-');
    let year: i64 = digits(date_fields.next()?, 4)?;
    let month: u32 = digits(date_fields.next()?, 2)?;
    let day: u32 = digits(date_fields.next()?, 2)?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || year < 1970 {
        return None;
    }
    let mut seconds_of_day = 0u64;
    if let Some(time) = time {
        let whole = time.split_once('.').map_or(time, |(whole, fraction)| {
            if fraction.is_empty() || !fraction.bytes().all(|b| b.is_ascii_digit()) {
                ""
            } else {
                whole
            }
        });
        let mut fields = whole.split(':');
        let hour: u64 = digits(fields.next()?, 2)?;
        let minute: u64 = digits(fields.next()?, 2)?;
        let second: u64 = match fields.next() {
            Some(second) => digits(second, 2)?,
            None => 0,
        };
        if fields.next().is_some() || hour > 23 || minute > 59 || second > 59 {
            return None;
        }
        seconds_of_day = hour * 3600 + minute * 60 + second;
    }
    let days = days_from_civil(year, month, day);
    // A day that does not exist (31 February) comes back as another date.
    if civil_from_days(days) != (year, month, day) {
        return None;
    }
    let secs = u64::try_from(days).ok()?.checked_mul(86_400)?;
    Some(UNIX_EPOCH + Duration::from_secs(secs.checked_add(seconds_of_day)?))
}

/// Parses an ISO 8601 duration of days and time (`PT1H`, `P1DT30M`, `PT45S`), the shape of
/// IoT Hub's `sasTtlAsIso8601` and `lockDurationAsIso8601` settings. Years, months and weeks
/// (whose length depends on the calendar) are refused, as are fractions.
pub(crate) fn parse_iso_duration(text: &str) -> Option<Duration> {
    let rest = text.strip_prefix('P')?;
    let (days_part, time_part) = match rest.split_once('T') {
        Some((days, time)) => (days, Some(time)),
        None => (rest, None),
    };
    let mut seconds = 0u64;
    let mut any = false;
    let mut add = |number: &str, unit: u64| -> Option<()> {
        let value: u64 = number.parse().ok()?;
        seconds = seconds.checked_add(value.checked_mul(unit)?)?;
        any = true;
        Some(())
    };
    if !days_part.is_empty() {
        add(days_part.strip_suffix('D')?, 86_400)?;
    }
    if let Some(mut time) = time_part {
        if time.is_empty() {
            return None;
        }
        for (letter, unit) in [('H', 3600), ('M', 60), ('S', 1)] {
            if let Some((number, after)) = time.split_once(letter) {
                if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                add(number, unit)?;
                time = after;
            }
        }
        if !time.is_empty() {
            return None;
        }
    }
    any.then(|| Duration::from_secs(seconds))
}

/// A field of exactly `width` ASCII digits.
fn digits<T: std::str::FromStr>(field: &str, width: usize) -> Option<T> {
    if field.len() != width || !field.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    field.parse().ok()
}

/// (year, month, day) to days since 1970-01-01: the inverse of [`civil_from_days`].
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = year - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let month = i64::from(month);
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(utc_timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.0000000Z");
        let t = UNIX_EPOCH + Duration::new(1_586_488_273, 27_699_700);
        assert_eq!(utc_timestamp(t), "2020-04-10T03:11:13.0276997Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(utc_timestamp(leap), "2000-02-29T00:00:00.0000000Z");
    }

    #[test]
    fn parses_sas_instants_and_round_trips() {
        let t = UNIX_EPOCH + Duration::from_secs(1_586_488_273);
        assert_eq!(utc_seconds(t), "2020-04-10T03:11:13Z");
        assert_eq!(parse_utc("2020-04-10T03:11:13Z"), Some(t));
        assert_eq!(parse_utc("2020-04-10T03:11:13.0276997Z"), Some(t));
        assert_eq!(
            parse_utc("2020-04-10T03:11Z"),
            Some(t - Duration::from_secs(13))
        );
        assert_eq!(
            parse_utc("2000-02-29"),
            Some(UNIX_EPOCH + Duration::from_secs(951_782_400))
        );
        for bad in [
            "",
            "2020-04-10T03:11:13",
            "2021-02-29",
            "2020-13-01",
            "2020-04-10T24:00:00Z",
            "1969-12-31",
            "2020-4-10",
            "2020-04-10T03:11:13.Z",
            "+2020-04-10",
            "99999999999999999999-01-01",
        ] {
            assert_eq!(parse_utc(bad), None, "{bad}");
        }
    }

    #[test]
    fn parses_iso_durations() {
        assert_eq!(parse_iso_duration("PT1H"), Some(Duration::from_secs(3600)));
        assert_eq!(
            parse_iso_duration("P1DT2H3M4S"),
            Some(Duration::from_secs(93_784))
        );
        assert_eq!(
            parse_iso_duration("P2D"),
            Some(Duration::from_secs(172_800))
        );
        assert_eq!(parse_iso_duration("PT0S"), Some(Duration::ZERO));
        for bad in [
            "",
            "P",
            "PT",
            "1H",
            "PT1.5H",
            "P1M",
            "P1W",
            "PTH",
            "PT1H2",
            "PT99999999999999999999S",
        ] {
            assert_eq!(parse_iso_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn formats_http_dates() {
        assert_eq!(http_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 GMT");
        // The example in the DPS certificate API's specification.
        let t = UNIX_EPOCH + Duration::from_secs(1_507_836_230);
        assert_eq!(http_date(t), "Thu, 12 Oct 2017 19:23:50 GMT");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(http_date(leap), "Tue, 29 Feb 2000 00:00:00 GMT");
    }
}
