//! How long a non-renewing subscription lasts. Apple signs no `expiresDate`
//! for one: the developer decides its length, so the operator configures it
//! per product (`[[apps.products]]`, an ISO 8601 duration such as `P90D`).

use std::collections::BTreeMap;

use time::{Duration, Month, OffsetDateTime};

/// A length of time in calendar terms: months (a year is twelve) and days
/// (a week is seven), added to a purchase date in UTC as a calendar does,
/// so that `P1M` from January 31 ends on the last day of February.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProductDuration {
    months: u32,
    days: u32,
}

impl ProductDuration {
    /// Reads an ISO 8601 duration of years, months, weeks and days
    /// (`P1Y`, `P3M`, `P2W`, `P90D`, `P1Y6M`). Times of day (`PT12H`) are
    /// refused: no store sells them, and they would hide a typo.
    pub fn parse(text: &str) -> Result<ProductDuration, String> {
        let refuse = || {
            format!(
                "{text:?} is not an ISO 8601 duration of years, months, weeks or days (such as P30D, P1M, P1Y)"
            )
        };
        let rest = text.strip_prefix('P').ok_or_else(refuse)?;
        if rest.is_empty() {
            return Err(refuse());
        }
        let (mut months, mut days) = (0u32, 0u32);
        let mut number = String::new();
        let mut last_unit = 0;
        for c in rest.chars() {
            if c.is_ascii_digit() {
                number.push(c);
                continue;
            }
            // Units in order (Y, M, W, D), each once, each after a number.
            let unit = match c {
                'Y' => 1,
                'M' => 2,
                'W' => 3,
                'D' => 4,
                _ => return Err(refuse()),
            };
            if unit <= last_unit || number.is_empty() {
                return Err(refuse());
            }
            last_unit = unit;
            let n: u32 = number.parse().map_err(|_| refuse())?;
            number.clear();
            let (months_more, days_more) = match c {
                'Y' => (n.checked_mul(12), Some(0)),
                'M' => (Some(n), Some(0)),
                'W' => (Some(0), n.checked_mul(7)),
                _ => (Some(0), Some(n)),
            };
            months = months_more
                .and_then(|m| months.checked_add(m))
                .ok_or_else(refuse)?;
            days = days_more
                .and_then(|d| days.checked_add(d))
                .ok_or_else(refuse)?;
        }
        if !number.is_empty() || (months == 0 && days == 0) {
            return Err(refuse());
        }
        Ok(ProductDuration { months, days })
    }

    /// When a purchase made at `start` (milliseconds) ends; None when that
    /// falls outside the calendar `time` knows (a date Apple could not
    /// mean), so that no value can overflow.
    pub fn end_from(&self, start: i64) -> Option<i64> {
        let start =
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(start).checked_mul(1_000_000)?)
                .ok()?;
        let total_months = i64::from(start.year())
            .checked_mul(12)?
            .checked_add(i64::from(u8::from(start.month())).checked_sub(1)?)?
            .checked_add(i64::from(self.months))?;
        let year = i32::try_from(total_months.div_euclid(12)).ok()?;
        let month =
            Month::try_from(u8::try_from(total_months.rem_euclid(12).checked_add(1)?).ok()?)
                .ok()?;
        let day = start.day().min(time::util::days_in_month(month, year));
        let end = start
            .replace_day(1)
            .ok()?
            .replace_year(year)
            .ok()?
            .replace_month(month)
            .ok()?
            .replace_day(day)
            .ok()?
            .checked_add(Duration::days(i64::from(self.days)))?;
        i64::try_from(end.unix_timestamp_nanos().checked_div(1_000_000)?).ok()
    }
}

/// The configured length of each non-renewing product, by app and product.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Products {
    durations: BTreeMap<(String, String), ProductDuration>,
}

impl Products {
    pub fn new(durations: impl IntoIterator<Item = (String, String, ProductDuration)>) -> Products {
        Products {
            durations: durations
                .into_iter()
                .map(|(bundle_id, product_id, duration)| ((bundle_id, product_id), duration))
                .collect(),
        }
    }

    pub fn duration(&self, bundle_id: &str, product_id: &str) -> Option<ProductDuration> {
        self.durations
            .get(&(bundle_id.to_owned(), product_id.to_owned()))
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JAN_31_2026: i64 = 1_769_817_600_000; // 2026-01-31T00:00:00Z
    const DAY: i64 = 86_400_000;

    #[test]
    fn durations_of_years_months_weeks_and_days() {
        let parsed = |text| ProductDuration::parse(text).unwrap();
        assert_eq!(
            parsed("P90D"),
            ProductDuration {
                months: 0,
                days: 90
            }
        );
        assert_eq!(
            parsed("P1Y6M"),
            ProductDuration {
                months: 18,
                days: 0
            }
        );
        assert_eq!(
            parsed("P2W"),
            ProductDuration {
                months: 0,
                days: 14
            }
        );
        assert_eq!(parsed("P1M1D"), ProductDuration { months: 1, days: 1 });
        for bad in [
            "",
            "P",
            "90D",
            "P90",
            "PT12H",
            "P1D1M",
            "P1M1M",
            "PD",
            "p1d",
            "P0D",
            "P-1D",
            "P99999999999D",
            "P1.5M",
        ] {
            assert!(ProductDuration::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn months_follow_the_calendar_and_days_are_days() {
        let end = |text: &str, start| ProductDuration::parse(text).unwrap().end_from(start);
        // 2026-02-28: February has no 31st.
        assert_eq!(end("P1M", JAN_31_2026), Some(JAN_31_2026 + 28 * DAY));
        assert_eq!(end("P90D", JAN_31_2026), Some(JAN_31_2026 + 90 * DAY));
        // 2027-01-31.
        assert_eq!(end("P1Y", JAN_31_2026), Some(JAN_31_2026 + 365 * DAY));
        // Far outside any calendar: no end rather than an overflow.
        assert_eq!(end("P1Y", i64::MAX), None);
        assert_eq!(end("P1Y", i64::MIN), None);
    }
}
