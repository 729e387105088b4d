//! Seasons: how long one lasts (`--season-length week|month|Nd`) and when the next begins. A
//! season ends at a boundary in UTC: a week at Monday 00:00, a month on the 1st at 00:00, `Nd`
//! N days after its start's midnight. Season numbers count from 1; the all-time board is
//! season 0 in the tables. The calendar arithmetic is done here on day numbers (no time-zone
//! crate: boundaries are UTC).

use std::fmt;
use std::str::FromStr;

const DAY_MS: i64 = 86_400_000;

/// How long a season lasts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SeasonLength {
    /// Monday 00:00 UTC to the next.
    Week,
    /// The 1st 00:00 UTC to the next 1st.
    #[default]
    Month,
    /// This many days from the start's midnight (UTC), 1..=366.
    Days(u16),
}

impl FromStr for SeasonLength {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "week" | "weekly" => Ok(SeasonLength::Week),
            "month" | "monthly" => Ok(SeasonLength::Month),
            _ => match text.strip_suffix('d').map(str::parse::<u16>) {
                Some(Ok(days)) if (1..=366).contains(&days) => Ok(SeasonLength::Days(days)),
                _ => Err(format!("a season is week, month or 1d..366d, not {text:?}")),
            },
        }
    }
}

impl fmt::Display for SeasonLength {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SeasonLength::Week => f.write_str("week"),
            SeasonLength::Month => f.write_str("month"),
            SeasonLength::Days(days) => write!(f, "{days}d"),
        }
    }
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The civil date (year, month, day) of a day number.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

impl SeasonLength {
    /// When a season that starts at `start` (ms since the epoch) ends: the first boundary after it.
    pub fn end_after(self, start: i64) -> i64 {
        let day = start.div_euclid(DAY_MS);
        let next_day = match self {
            // 1970-01-01 was a Thursday: Monday is day 4 of the week counted from it.
            SeasonLength::Week => day + 7 - (day - 4).rem_euclid(7),
            SeasonLength::Month => {
                let (year, month, _) = civil_from_days(day);
                if month == 12 { days_from_civil(year + 1, 1, 1) } else { days_from_civil(year, month + 1, 1) }
            }
            SeasonLength::Days(days) => day + i64::from(days),
        };
        next_day * DAY_MS
    }
}

/// A date for people, `YYYY-MM-DD` (UTC).
pub fn date(unix_ms: i64) -> String {
    let (year, month, day) = civil_from_days(unix_ms.div_euclid(DAY_MS));
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(year: i64, month: i64, day: i64) -> i64 {
        days_from_civil(year, month, day) * DAY_MS
    }

    #[test]
    fn seasons_end_on_utc_boundaries() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        for day in [-800_000, -1, 0, 59, 10_957, 20_454, 2_932_896] {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day, "{y}-{m}-{d}");
        }
        // Monday 2026-12-07, midday: the week ends on Monday the 14th; the month on 2027-01-01.
        let noon = ms(2026, 12, 7) + DAY_MS / 2;
        assert_eq!(SeasonLength::Week.end_after(noon), ms(2026, 12, 14));
        assert_eq!(SeasonLength::Week.end_after(ms(2026, 12, 6)), ms(2026, 12, 7), "from a Sunday");
        assert_eq!(SeasonLength::Month.end_after(noon), ms(2027, 1, 1));
        assert_eq!(SeasonLength::Month.end_after(ms(2028, 2, 29)), ms(2028, 3, 1), "a leap day");
        assert_eq!(SeasonLength::Days(3).end_after(noon), ms(2026, 12, 10));
        assert_eq!(date(noon), "2026-12-07");
        assert_eq!("week".parse(), Ok(SeasonLength::Week));
        assert_eq!("monthly".parse(), Ok(SeasonLength::Month));
        assert_eq!("14d".parse(), Ok(SeasonLength::Days(14)));
        for bad in ["0d", "400d", "-1d", "year", ""] {
            assert!(bad.parse::<SeasonLength>().is_err(), "{bad}");
        }
        assert_eq!(SeasonLength::Days(14).to_string(), "14d");
    }
}
