//! When to try again: exponential backoff with full jitter, the server's
//! `Retry-After` (seconds or an HTTP date) honoured but capped, and the
//! limits after which an entry is dead-lettered instead.

use crate::rng::Rng;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The ceiling of the first delay.
    pub base_ms: u64,
    /// How much the ceiling grows per failed attempt.
    pub factor: u32,
    /// The largest ceiling.
    pub cap_ms: u64,
    /// A `Retry-After` longer than this is shortened to it, so a server
    /// (or a proxy) cannot park the queue for days.
    pub retry_after_cap_ms: u64,
    /// After this many failed attempts the entry is dead-lettered.
    pub max_attempts: u32,
    /// An entry undelivered for this long is dead-lettered.
    pub max_age_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base_ms: 1_000,
            factor: 2,
            cap_ms: 5 * 60_000,
            retry_after_cap_ms: 60 * 60_000,
            max_attempts: 12,
            max_age_ms: 7 * 24 * 60 * 60_000,
        }
    }
}

impl RetryPolicy {
    /// The largest backoff after `attempts` failed attempts (1 or more):
    /// `min(cap, base * factor^(attempts-1))`.
    pub fn ceiling_ms(&self, attempts: u32) -> u64 {
        let exponent = attempts.saturating_sub(1);
        let growth = u64::from(self.factor).checked_pow(exponent).unwrap_or(u64::MAX);
        self.base_ms.saturating_mul(growth).min(self.cap_ms)
    }

    /// The delay before the next attempt. Without `Retry-After`: uniform in
    /// `0..=ceiling` ("full jitter", so that many clients that failed
    /// together do not come back together). With it: exactly what the
    /// server asked, up to `retry_after_cap_ms`.
    pub(crate) fn delay_ms(&self, attempts: u32, retry_after_ms: Option<u64>, rng: &mut Rng) -> u64 {
        match retry_after_ms {
            Some(asked) => asked.min(self.retry_after_cap_ms),
            None => rng.up_to(self.ceiling_ms(attempts)),
        }
    }

    /// [`Self::delay_ms`] with the jitter given: `draw` (uniform over
    /// `u64`) scaled to `0..=ceiling`. Entries that share a draw and their
    /// attempt count wait exactly as long.
    pub(crate) fn delay_with_draw(&self, attempts: u32, retry_after_ms: Option<u64>, draw: u64) -> u64 {
        match retry_after_ms {
            Some(asked) => asked.min(self.retry_after_cap_ms),
            // The draw as a fraction of 2^64 (a shift: a u128 division would
            // bring a kilobyte of division routine into the wasm).
            None => (((u128::from(self.ceiling_ms(attempts)) + 1) * u128::from(draw)) >> 64) as u64,
        }
    }
}

/// Parses a `Retry-After` value into a delay from `now_ms`: delta-seconds,
/// or an HTTP date (IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`). A date in
/// the past means "now"; anything else unreadable means "not given".
pub fn parse_retry_after(value: &str, now_ms: u64) -> Option<u64> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return Some(value.parse::<u64>().unwrap_or(u64::MAX / 1000).saturating_mul(1000));
    }
    let at_ms = parse_http_date(value)?;
    Some(at_ms.saturating_sub(now_ms))
}

/// IMF-fixdate to milliseconds since the Unix epoch.
///
/// Never inlined: inlined into the engine's answer handling (rustc 1.95,
/// `opt-level = "z"`), its splits kept a `str` slicing panic, and with it
/// `char`'s Debug and the Unicode printable tables, in the worker's wasm:
/// 4 KB gzip of it.
#[inline(never)]
fn parse_http_date(value: &str) -> Option<u64> {
    // "Sun, 06 Nov 1994 08:49:37 GMT"
    let (_weekday, rest) = value.split_once(", ")?;
    let mut parts = rest.split(' ');
    let day: u32 = parts.next()?.parse().ok()?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = parts.next()?.parse().ok()?;
    let mut clock = parts.next()?.split(':').map(|p| p.parse::<u64>().ok());
    let (h, m, s) = (clock.next()??, clock.next()??, clock.next()??);
    if parts.next()? != "GMT" || parts.next().is_some() || !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let secs = u64::try_from(days).ok()? * 86_400 + h * 3600 + m * 60 + s;
    Some(secs * 1000)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ceilings_grow_then_cap() {
        let p = RetryPolicy::default();
        let ceilings: Vec<_> = (1..=10).map(|a| p.ceiling_ms(a)).collect();
        assert_eq!(ceilings, [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 256_000, 300_000]);
        assert_eq!(p.ceiling_ms(1_000), 300_000, "no overflow");
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        assert_eq!(parse_retry_after("120", 0), Some(120_000));
        assert_eq!(parse_retry_after(" 0 ", 5), Some(0));
        let date = "Sun, 06 Nov 1994 08:49:37 GMT";
        let at = 784_111_777_000;
        assert_eq!(parse_retry_after(date, at - 2_500), Some(2_500));
        assert_eq!(parse_retry_after(date, at + 10), Some(0), "a past date means now");
        for bad in ["", "-1", "1.5", "soon", "Sun, 06 Nov 1994 08:49:37 UTC", "Sun, 32 Nov 1994 08:49:37 GMT"] {
            assert_eq!(parse_retry_after(bad, 0), None, "{bad:?}");
        }
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(parse_http_date("Thu, 29 Feb 2024 12:00:00 GMT"), Some(1_709_208_000_000));
    }

    proptest! {
        #[test]
        fn jitter_stays_within_the_ceiling(attempts in 1u32..64, seed: u64, base in 1u64..10_000, factor in 1u32..5, cap in 1u64..1_000_000) {
            let p = RetryPolicy { base_ms: base, factor, cap_ms: cap, ..RetryPolicy::default() };
            let mut rng = crate::rng::Rng::new(seed);
            let d = p.delay_ms(attempts, None, &mut rng);
            prop_assert!(d <= p.ceiling_ms(attempts));
            prop_assert!(p.ceiling_ms(attempts) <= cap);
            prop_assert!(p.ceiling_ms(attempts + 1) >= p.ceiling_ms(attempts));
        }

        #[test]
        fn retry_after_is_honoured_up_to_its_cap(asked in 0u64..10_000_000, cap in 0u64..5_000_000, seed: u64) {
            let p = RetryPolicy { retry_after_cap_ms: cap, ..RetryPolicy::default() };
            let d = p.delay_ms(3, Some(asked), &mut crate::rng::Rng::new(seed));
            prop_assert_eq!(d, asked.min(cap));
        }

        #[test]
        fn any_second_count_parses(secs in 0u64..10_000_000) {
            prop_assert_eq!(parse_retry_after(&secs.to_string(), 42), Some(secs * 1000));
        }
    }
}
