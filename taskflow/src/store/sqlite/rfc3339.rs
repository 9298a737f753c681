//! The timestamps of a row's `record` text: RFC 3339 in UTC, byte for byte as chrono's serde
//! writes a `DateTime<Utc>` (seconds, then 0, 3, 6 or 9 digits of fraction, whichever is the
//! shortest exact one, then `Z`), but formatted in one pass on the stack and appended as a JSON
//! string with nothing to escape. Chrono writes it character by character through `Display`,
//! which `serde_json` escapes character by character: that took a third of the runtime threads'
//! instructions in the persisted benchmark.

use chrono::{DateTime, Datelike, Timelike, Utc};

/// The longest text: `9999-12-31T23:59:60.999999999Z`.
const MAX_LEN: usize = 30;

/// Appends `time` as a JSON string, as chrono's serde writes it.
pub(super) fn write(out: &mut Vec<u8>, time: &DateTime<Utc>) -> serde_json::Result<()> {
    let mut buffer = [0; MAX_LEN];
    match format(time, &mut buffer) {
        // Digits and separators only: nothing to escape.
        Some(len) => {
            out.push(b'"');
            out.extend_from_slice(&buffer[..len]);
            out.push(b'"');
            Ok(())
        }
        // Years before 0 or after 9999: chrono's own form, with a sign.
        None => serde_json::to_writer(out, time),
    }
}

/// Writes `time` into `buffer`; returns the length, or `None` for a year outside 0..=9999.
fn format(time: &DateTime<Utc>, buffer: &mut [u8; MAX_LEN]) -> Option<usize> {
    // Each of `DateTime`'s own accessors converts to local time again: convert once.
    let (date, clock) = (time.date_naive(), time.time());
    let year = u32::try_from(date.year())
        .ok()
        .filter(|year| *year <= 9999)?;
    // A leap second is kept as a fraction of a second above one: shown as second 60.
    let (second, nanos) = match clock.nanosecond() {
        nanos if nanos >= 1_000_000_000 => (clock.second() + 1, nanos - 1_000_000_000),
        nanos => (clock.second(), nanos),
    };
    digits(&mut buffer[0..4], year);
    buffer[4] = b'-';
    digits(&mut buffer[5..7], date.month());
    buffer[7] = b'-';
    digits(&mut buffer[8..10], date.day());
    buffer[10] = b'T';
    digits(&mut buffer[11..13], clock.hour());
    buffer[13] = b':';
    digits(&mut buffer[14..16], clock.minute());
    buffer[16] = b':';
    digits(&mut buffer[17..19], second);
    let (places, fraction) = match nanos {
        0 => (0, 0),
        n if n % 1_000_000 == 0 => (3, n / 1_000_000),
        n if n % 1_000 == 0 => (6, n / 1_000),
        n => (9, n),
    };
    let mut len = 19;
    if places > 0 {
        buffer[19] = b'.';
        digits(&mut buffer[20..20 + places], fraction);
        len = 20 + places;
    }
    buffer[len] = b'Z';
    Some(len + 1)
}

/// Writes the last `out.len()` decimal digits of `value` into `out`, zero-padded.
fn digits(out: &mut [u8], mut value: u32) {
    for place in out.iter_mut().rev() {
        *place = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeZone};

    use super::*;

    fn assert_same(time: DateTime<Utc>) {
        let mut ours = Vec::new();
        write(&mut ours, &time).expect("writes");
        let chrono = serde_json::to_vec(&time).expect("serializes");
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&chrono),
            "{time:?}"
        );
    }

    #[test]
    fn writes_what_chrono_writes() {
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..20_000 {
            let seconds = rng.i64(-62_167_219_200..253_402_300_800);
            let nanos = match rng.u8(0..4) {
                0 => 0,
                1 => rng.u32(0..1_000) * 1_000_000,
                2 => rng.u32(0..1_000_000) * 1_000,
                _ => rng.u32(0..1_000_000_000),
            };
            assert_same(
                Utc.timestamp_opt(seconds, nanos)
                    .single()
                    .expect("in range"),
            );
        }
        assert_same(Utc::now());
        assert_same(DateTime::UNIX_EPOCH);
    }

    #[test]
    fn writes_leap_seconds_and_out_of_range_years_as_chrono_does() {
        let leap = NaiveDate::from_ymd_opt(2016, 12, 31)
            .and_then(|d| d.and_hms_nano_opt(23, 59, 59, 1_250_000_000))
            .expect("a leap second");
        assert_same(leap.and_utc());
        for year in [-1, 10_000, 262_000] {
            let time = NaiveDate::from_ymd_opt(year, 1, 2)
                .and_then(|d| d.and_hms_opt(3, 4, 5))
                .expect("a date");
            assert_same(time.and_utc());
        }
    }
}
