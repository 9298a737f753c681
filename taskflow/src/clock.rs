//! Wall-clock readings as [`DateTime<Utc>`] for the path every task takes (its creation, the end
//! of each attempt). chrono turns a [`SystemTime`] into a calendar date with some hundred
//! instructions of arithmetic; each thread keeps the date of its last reading, so a reading on the
//! same day only splits off the time of day.

use std::cell::Cell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};

const SECONDS_PER_DAY: u64 = 86_400;

thread_local! {
    /// The day (counted from the Unix epoch) of this thread's last reading, and its date.
    static DAY: Cell<Option<(u64, NaiveDate)>> = const { Cell::new(None) };
}

/// The current time, as [`Utc::now`] gives it.
pub(crate) fn now() -> DateTime<Utc> {
    utc(SystemTime::now())
}

/// `time` as a [`DateTime<Utc>`]: the same value as `DateTime::<Utc>::from(time)`.
pub(crate) fn utc(time: SystemTime) -> DateTime<Utc> {
    utc_since_epoch(time, since_epoch(time))
}

/// How long after the Unix epoch `time` is; `None` before it.
pub(crate) fn since_epoch(time: SystemTime) -> Option<Duration> {
    time.duration_since(UNIX_EPOCH).ok()
}

/// [`utc`] of `time` for a caller that already has its [`since_epoch`], which a task's id needs
/// too: the subtraction is done once per task, not twice.
pub(crate) fn utc_since_epoch(time: SystemTime, since_epoch: Option<Duration>) -> DateTime<Utc> {
    let Some(since_epoch) = since_epoch else {
        return DateTime::from(time);
    };
    let seconds = since_epoch.as_secs();
    let day = seconds / SECONDS_PER_DAY;
    let of_day = u32::try_from(seconds % SECONDS_PER_DAY).ok();
    let time_of_day = of_day
        .and_then(|s| NaiveTime::from_num_seconds_from_midnight_opt(s, since_epoch.subsec_nanos()));
    match (DAY.get(), time_of_day) {
        (Some((cached, date)), Some(time_of_day)) if cached == day => {
            date.and_time(time_of_day).and_utc()
        }
        _ => {
            let full = DateTime::from(time);
            DAY.set(Some((day, full.date_naive())));
            full
        }
    }
}

/// Seconds from `start` to `end` (negative when `end` is earlier), as `(end - start)` gives
/// them: two readings of one day, the usual case for a task's start and end, differ by their
/// times of day alone, without chrono's calendar arithmetic on the dates.
pub(crate) fn seconds_between(start: DateTime<Utc>, end: DateTime<Utc>) -> f64 {
    // `naive_utc`, not `date_naive` or `time`: those add the (zero) offset, with date arithmetic.
    let (start_utc, end_utc) = (start.naive_utc(), end.naive_utc());
    if start_utc.date() == end_utc.date() {
        (end_utc.time() - start_utc.time()).as_seconds_f64()
    } else {
        (end - start).as_seconds_f64()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn readings_match_chrono_across_days_and_before_the_epoch() {
        let mut rng = fastrand::Rng::with_seed(5);
        let start = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let mut times = vec![UNIX_EPOCH, UNIX_EPOCH - Duration::from_nanos(1_500_000_001)];
        for _ in 0..20_000 {
            // Steps from a nanosecond to two days, forwards and back, so that readings land on
            // the cached day, on the next one and on earlier ones.
            let step = Duration::from_nanos(rng.u64(1..=2 * SECONDS_PER_DAY * 1_000_000_000));
            let last = *times.last().unwrap_or(&start);
            let base = if last < UNIX_EPOCH { start } else { last };
            times.push(if rng.bool() {
                base + step
            } else {
                base - step / 3
            });
        }
        times.push(start + Duration::from_secs(SECONDS_PER_DAY) - Duration::from_nanos(1));
        times.push(start + Duration::from_secs(SECONDS_PER_DAY));
        for time in times {
            assert_eq!(utc(time), DateTime::<Utc>::from(time), "{time:?}");
        }
    }

    #[test]
    fn seconds_between_match_chrono_within_a_day_and_across_days() {
        let mut rng = fastrand::Rng::with_seed(11);
        let base = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        for _ in 0..20_000 {
            let start = base + Duration::from_nanos(rng.u64(..4 * SECONDS_PER_DAY * 1_000_000_000));
            // From a nanosecond to three days, either way: mostly on the same day.
            let step = Duration::from_nanos(
                rng.u64(1..=3 * SECONDS_PER_DAY * 1_000_000_000) >> rng.u32(0..40),
            );
            let end = if rng.bool() {
                start + step
            } else {
                start - step
            };
            let (start, end) = (utc(start), utc(end));
            assert_eq!(
                seconds_between(start, end),
                (end - start).as_seconds_f64(),
                "{start} to {end}"
            );
        }
    }

    #[test]
    fn now_is_the_current_time() {
        let before = Utc::now();
        let now = now();
        assert!(before <= now && now <= Utc::now());
    }
}
