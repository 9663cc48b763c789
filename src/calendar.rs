//! The ASX cash market's calendar and clock: which Sydney dates trade, when
//! each session phase starts, and what "today" is.
//!
//! Trading days come from the exchange's rules rather than a table of dates,
//! so the calendar never runs out: weekends, the national holidays with the
//! observance rules the ASX applies, Easter computed from the year, and the
//! few one-off closures since 2010. Rules as they stand today are applied to
//! every year; dates before 2011 may differ from what the exchange did then.
//!
//! Everything is in `Australia/Sydney` time. This module knows nothing of
//! configuration: `SKIM_NOW` is parsed elsewhere and handed to [`Clock::fixed`].

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveDate, NaiveTime, Utc, Weekday};
use chrono_tz::Tz;
use serde::Serialize;

/// The exchange's time zone.
pub const EXCHANGE_TZ: Tz = chrono_tz::Australia::Sydney;

/// The first trading day on which all equities opened together through one
/// opening auction (ASX Service Release 15). Before it the open was staggered
/// by the first character of the code.
pub const SINGLE_OPEN_SINCE: NaiveDate = match NaiveDate::from_ymd_opt(2025, 6, 23) {
    Some(date) => date,
    None => panic!("2025-06-23 is a valid date"),
};

/// Closures that no rule produces: the day, and the name reported for it.
const ONE_OFF_CLOSURES: [((i32, u32, u32), &str); 3] = [
    // Anzac Day fell on a Sunday and was moved, unlike the rule since 2011.
    ((2010, 4, 26), "Anzac Day (observed)"),
    // Anzac Day coincided with Easter Monday.
    ((2011, 4, 26), "Easter Tuesday"),
    ((2022, 9, 22), "National Day of Mourning"),
];

/// How the market opens on a given day.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OpenKind {
    /// One opening auction for every code (from [`SINGLE_OPEN_SINCE`]).
    SingleAuction,
    /// Five groups by first character of the code, 10:00:00 to 10:09:00.
    Staggered,
}

/// The phases of one trading day, as Sydney times.
///
/// The auction's start and length are randomised by the exchange; the fields
/// give the earliest moment a phase can begin and the moment by which it has
/// surely begun, so a scheduler waiting for `continuous_start` never acts on
/// auction prices.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Session {
    /// The trading date.
    pub date: NaiveDate,
    /// Pre-open starts (07:00): orders queue, nothing trades.
    pub pre_open: DateTime<Tz>,
    /// Earliest start of the opening auction: 09:59:00 under the single
    /// auction, 09:59:45 for the first group of the staggered open.
    pub open_auction: DateTime<Tz>,
    /// By this moment continuous trading has started for every code: 10:00:00
    /// under the single auction (it starts at random from 09:59:45), 10:09:15
    /// under the staggered open (see [`Session::open_for`] for one code).
    pub continuous_start: DateTime<Tz>,
    /// Continuous trading ends and the pre-close phase starts: 16:00, or
    /// 14:00 on an early-close day.
    pub continuous_end: DateTime<Tz>,
    /// The closing auction starts: 16:10, or 14:10 on an early-close day
    /// (the time the exchange calls its early close).
    pub closing_auction: DateTime<Tz>,
    /// Whether this is one of the 14:10 early-close days.
    pub early_close: bool,
    /// Single auction or staggered groups.
    pub open_kind: OpenKind,
}

impl Session {
    /// The moment by which continuous trading has begun for `code`.
    ///
    /// Under the single auction that is `continuous_start` for every code.
    /// Under the staggered open each group opened at its nominal time plus up
    /// to 15 s: codes starting with a digit or A-B at 10:00:00, C-F 10:02:15,
    /// G-M 10:04:30, N-R 10:06:45, S-Z 10:09:00. An empty or odd code gets
    /// the last group's time, the safe side.
    pub fn open_for(&self, code: &str) -> DateTime<Tz> {
        if self.open_kind == OpenKind::SingleAuction {
            return self.continuous_start;
        }
        let first = code.chars().next().map(|c| c.to_ascii_uppercase());
        let offset_secs = match first {
            Some('0'..='9' | 'A'..='B') => 0,
            Some('C'..='F') => 135,
            Some('G'..='M') => 270,
            Some('N'..='R') => 405,
            _ => 540,
        };
        // continuous_start is the last group's latest open (10:09:15), so
        // the first group's nominal 10:00:00 lies 9 min 15 s before it.
        let nominal = self.continuous_start - Duration::seconds(555);
        nominal + Duration::seconds(offset_secs + 15)
    }
}

/// Easter Sunday of `year` in the Gregorian calendar (the anonymous
/// Gregorian algorithm). `None` only for years outside chrono's range.
pub fn easter_sunday(year: i32) -> Option<NaiveDate> {
    let a = year.rem_euclid(19);
    let b = year.div_euclid(100);
    let c = year.rem_euclid(100);
    let d = b.div_euclid(4);
    let e = b.rem_euclid(4);
    let f = (b + 8).div_euclid(25);
    let g = (b - f + 1).div_euclid(3);
    let h = (19 * a + b - d - g + 15).rem_euclid(30);
    let i = c.div_euclid(4);
    let k = c.rem_euclid(4);
    let l = (32 + 2 * e + 2 * i - h - k).rem_euclid(7);
    let m = (a + 11 * h + 22 * l).div_euclid(451);
    let month = (h + l - 7 * m + 114).div_euclid(31);
    let day = (h + l - 7 * m + 114).rem_euclid(31) + 1;
    NaiveDate::from_ymd_opt(year, u32::try_from(month).ok()?, u32::try_from(day).ok()?)
}

/// The name of the holiday that closes the market on `date`, for weekdays
/// only; `None` on weekends and on ordinary weekdays.
///
/// Observance follows the ASX: New Year's Day and Australia Day on a weekend
/// move to the Monday; Christmas and Boxing Day on a weekend move to the next
/// free weekdays (27 and 28 December); Anzac Day on a weekend is not moved;
/// King's Birthday is the second Monday of June.
pub fn holiday(date: NaiveDate) -> Option<&'static str> {
    let weekday = date.weekday();
    if matches!(weekday, Weekday::Sat | Weekday::Sun) {
        return None;
    }
    let monday = weekday == Weekday::Mon;
    let monday_or_tuesday = matches!(weekday, Weekday::Mon | Weekday::Tue);
    let name = match (date.month(), date.day()) {
        (1, 1) => Some("New Year's Day"),
        (1, 2 | 3) if monday => Some("New Year's Day (observed)"),
        (1, 26) => Some("Australia Day"),
        (1, 27 | 28) if monday => Some("Australia Day (observed)"),
        (4, 25) => Some("Anzac Day"),
        (6, 8..=14) if monday && date.year() >= 2023 => Some("King's Birthday"),
        (6, 8..=14) if monday => Some("Queen's Birthday"),
        (12, 25) => Some("Christmas Day"),
        (12, 26) => Some("Boxing Day"),
        // 27 Dec on a Monday means Christmas fell on Saturday; on a Tuesday,
        // Christmas fell on Sunday and Boxing Day took the Monday.
        (12, 27) if monday_or_tuesday => Some("Christmas Day (observed)"),
        // 28 Dec on a Monday or Tuesday means Boxing Day fell on a weekend.
        (12, 28) if monday_or_tuesday => Some("Boxing Day (observed)"),
        _ => None,
    };
    name.or_else(|| easter_holiday(date))
        .or_else(|| one_off_closure(date))
}

fn easter_holiday(date: NaiveDate) -> Option<&'static str> {
    if !matches!(date.month(), 3 | 4) {
        return None;
    }
    let easter = easter_sunday(date.year())?;
    if date == easter - Duration::days(2) {
        Some("Good Friday")
    } else if date == easter + Duration::days(1) {
        Some("Easter Monday")
    } else {
        None
    }
}

fn one_off_closure(date: NaiveDate) -> Option<&'static str> {
    let key = (date.year(), date.month(), date.day());
    ONE_OFF_CLOSURES
        .iter()
        .find(|(day, _)| *day == key)
        .map(|(_, name)| *name)
}

/// Whether the ASX cash market trades on `date` (a Sydney date).
pub fn is_trading_day(date: NaiveDate) -> bool {
    closed_reason(date).is_none()
}

/// Why the market is closed on `date`: "Saturday", "Sunday" or the holiday's
/// name (e.g. "Anzac Day", "Boxing Day (observed)"); `None` on trading days.
pub fn closed_reason(date: NaiveDate) -> Option<String> {
    match date.weekday() {
        Weekday::Sat => Some("Saturday".to_string()),
        Weekday::Sun => Some("Sunday".to_string()),
        _ => holiday(date).map(str::to_string),
    }
}

/// Whether `date` is a trading day that closes early (closing auction at
/// 14:10): the last trading day before Christmas and the last trading day of
/// the year, except in 2022 when both kept normal hours.
pub fn is_early_close(date: NaiveDate) -> bool {
    if date.month() != 12 || date.year() == 2022 || !is_trading_day(date) {
        return false;
    }
    // 24 and 31 December are never holidays, and the days before them that a
    // weekend pushes the early close back to are never holidays either, so
    // "the last weekday on or before" is the last trading day.
    [24, 31].into_iter().any(|day| {
        NaiveDate::from_ymd_opt(date.year(), 12, day)
            .map(|target| last_weekday_on_or_before(target) == date)
            .unwrap_or(false)
    })
}

fn last_weekday_on_or_before(date: NaiveDate) -> NaiveDate {
    match date.weekday() {
        Weekday::Sat => date - Duration::days(1),
        Weekday::Sun => date - Duration::days(2),
        _ => date,
    }
}

/// The session of `date`, or `None` when the market is closed that day.
pub fn session(date: NaiveDate) -> Option<Session> {
    if !is_trading_day(date) {
        return None;
    }
    let early_close = is_early_close(date);
    let open_kind = if date >= SINGLE_OPEN_SINCE {
        OpenKind::SingleAuction
    } else {
        OpenKind::Staggered
    };
    let (auction, continuous) = match open_kind {
        OpenKind::SingleAuction => ((9, 59, 0), (10, 0, 0)),
        OpenKind::Staggered => ((9, 59, 45), (10, 9, 15)),
    };
    let (end_hour, auction_hour) = if early_close { (14, 14) } else { (16, 16) };
    Some(Session {
        date,
        pre_open: sydney(date, (7, 0, 0))?,
        open_auction: sydney(date, auction)?,
        continuous_start: sydney(date, continuous)?,
        continuous_end: sydney(date, (end_hour, 0, 0))?,
        closing_auction: sydney(date, (auction_hour, 10, 0))?,
        early_close,
        open_kind,
    })
}

/// `date` at a Sydney wall-clock time. Session times lie far from the 02:00
/// and 03:00 daylight-saving switches, so they always exist and are unique.
fn sydney(date: NaiveDate, (hour, min, sec): (u32, u32, u32)) -> Option<DateTime<Tz>> {
    let time = NaiveTime::from_hms_opt(hour, min, sec)?;
    date.and_time(time)
        .and_local_timezone(EXCHANGE_TZ)
        .earliest()
}

/// The first trading day strictly after `date`; `None` only at the end of
/// chrono's date range.
pub fn next_trading_day(date: NaiveDate) -> Option<NaiveDate> {
    let mut day = date.succ_opt()?;
    while !is_trading_day(day) {
        day = day.succ_opt()?;
    }
    Some(day)
}

/// The last trading day strictly before `date`; `None` only at the start of
/// chrono's date range.
pub fn previous_trading_day(date: NaiveDate) -> Option<NaiveDate> {
    let mut day = date.pred_opt()?;
    while !is_trading_day(day) {
        day = day.pred_opt()?;
    }
    Some(day)
}

/// The number of trading days after `from` up to and including `to`, so an
/// entry on Monday is 3 trading days old on Thursday of a normal week.
/// Negative when `to` is before `from`; 0 when they are equal.
pub fn trading_days_between(from: NaiveDate, to: NaiveDate) -> i64 {
    if to < from {
        return -trading_days_between(to, from);
    }
    let weekdays = weekdays_before(to.succ_opt().unwrap_or(to))
        - weekdays_before(from)
        - i64::from(is_weekday(from))
        + i64::from(to == NaiveDate::MAX && is_weekday(to));
    let holidays: i64 = (from.year()..=to.year())
        .map(|year| {
            let count = weekday_closures(year)
                .filter(|day| *day > from && *day <= to)
                .count();
            i64::try_from(count).unwrap_or(0)
        })
        .sum();
    weekdays - holidays
}

fn is_weekday(date: NaiveDate) -> bool {
    !matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

/// Weekdays before `date`, counted from a fixed Monday; only differences
/// between two calls mean anything.
fn weekdays_before(date: NaiveDate) -> i64 {
    // Day 1 of the common era (0001-01-01) was a Monday, so shifting by one
    // puts Mondays at multiples of seven.
    let days = i64::from(date.num_days_from_ce()) - 1;
    days.div_euclid(7) * 5 + days.rem_euclid(7).min(5)
}

/// Every weekday of `year` that a holiday or one-off closure shuts.
fn weekday_closures(year: i32) -> impl Iterator<Item = NaiveDate> {
    let candidates = [
        (1, 1),
        (1, 2),
        (1, 3),
        (1, 26),
        (1, 27),
        (1, 28),
        (4, 25),
        (12, 25),
        (12, 26),
        (12, 27),
        (12, 28),
    ];
    let easter = easter_sunday(year);
    let easter_days = easter
        .into_iter()
        .flat_map(|sunday| [sunday - Duration::days(2), sunday + Duration::days(1)]);
    let kings_birthday = (8..=14).filter_map(move |day| NaiveDate::from_ymd_opt(year, 6, day));
    let one_off = ONE_OFF_CLOSURES
        .iter()
        .filter(move |((y, _, _), _)| *y == year)
        .filter_map(|((y, m, d), _)| NaiveDate::from_ymd_opt(*y, *m, *d));
    candidates
        .into_iter()
        .filter_map(move |(month, day)| NaiveDate::from_ymd_opt(year, month, day))
        .chain(easter_days)
        .chain(kings_birthday)
        .chain(one_off)
        .filter(|day| holiday(*day).is_some())
}

/// The trading day `n` trading days after `date` (before it when `n` is
/// negative). With `n == 0` the answer is `date` itself, trading day or not.
/// `None` only when the answer would leave chrono's date range. Steps one
/// day at a time, so it is meant for counts of days to weeks, not millennia.
pub fn add_trading_days(date: NaiveDate, n: i64) -> Option<NaiveDate> {
    let mut day = date;
    for _ in 0..n.unsigned_abs() {
        day = if n > 0 {
            next_trading_day(day)?
        } else {
            previous_trading_day(day)?
        };
    }
    Some(day)
}

/// Where "now" comes from: the system clock, or a fixed instant for tests,
/// replays and demos (`SKIM_NOW`). Copy it freely; a fixed clock never moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clock {
    fixed: Option<DateTime<Utc>>,
}

impl Clock {
    /// A clock that reads the system's UTC time on every call.
    pub fn system() -> Self {
        Clock { fixed: None }
    }

    /// A clock stopped at `instant`.
    pub fn fixed(instant: DateTime<Utc>) -> Self {
        Clock {
            fixed: Some(instant),
        }
    }

    /// A clock stopped at `instant`, as parsed from an RFC 3339 string with
    /// any offset.
    pub fn fixed_at_offset(instant: DateTime<FixedOffset>) -> Self {
        Clock::fixed(instant.with_timezone(&Utc))
    }

    /// Whether this clock is stopped at a fixed instant.
    pub fn is_fixed(&self) -> bool {
        self.fixed.is_some()
    }

    /// The current instant in UTC.
    pub fn now(&self) -> DateTime<Utc> {
        self.fixed.unwrap_or_else(Utc::now)
    }

    /// The current instant in Sydney time.
    pub fn now_sydney(&self) -> DateTime<Tz> {
        self.now().with_timezone(&EXCHANGE_TZ)
    }

    /// Today's date in Sydney, the date the exchange is trading (or not).
    pub fn today(&self) -> NaiveDate {
        self.now_sydney().date_naive()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn closed(y: i32, m: u32, d: u32) -> String {
        closed_reason(date(y, m, d)).unwrap_or_else(|| panic!("{y}-{m}-{d} should be closed"))
    }

    fn assert_trading(days: &[(i32, u32, u32)]) {
        for &(y, m, d) in days {
            assert_eq!(
                closed_reason(date(y, m, d)),
                None,
                "{y}-{m}-{d} should trade"
            );
            assert!(
                session(date(y, m, d)).is_some(),
                "{y}-{m}-{d} should have a session"
            );
        }
    }

    #[test]
    fn easter_matches_known_dates() {
        let known = [
            (1961, 4, 2),
            (2000, 4, 23),
            (2008, 3, 23),
            (2011, 4, 24),
            (2019, 4, 21),
            (2024, 3, 31),
            (2025, 4, 20),
            (2026, 4, 5),
            (2027, 3, 28),
            (2028, 4, 16),
            (2038, 4, 25),
            (2285, 3, 22),
        ];
        for (y, m, d) in known {
            assert_eq!(easter_sunday(y), Some(date(y, m, d)), "Easter {y}");
        }
    }

    #[test]
    fn closures_2026_match_the_reference() {
        assert_eq!(closed(2026, 1, 1), "New Year's Day");
        assert_eq!(closed(2026, 1, 26), "Australia Day");
        assert_eq!(closed(2026, 4, 3), "Good Friday");
        assert_eq!(closed(2026, 4, 6), "Easter Monday");
        assert_eq!(closed(2026, 6, 8), "King's Birthday");
        assert_eq!(closed(2026, 12, 25), "Christmas Day");
        assert_eq!(closed(2026, 12, 28), "Boxing Day (observed)");
        // Anzac Day on a Saturday: no weekday closure, Monday trades.
        assert_eq!(closed(2026, 4, 25), "Saturday");
        assert_trading(&[
            (2026, 1, 2),
            (2026, 1, 23),
            (2026, 1, 27),
            (2026, 4, 2),
            (2026, 4, 7),
            (2026, 4, 24),
            (2026, 4, 27),
            (2026, 6, 5),
            (2026, 6, 9),
            (2026, 12, 24),
            (2026, 12, 29),
            (2026, 12, 31),
        ]);
    }

    #[test]
    fn closures_2027_match_the_reference() {
        assert_eq!(closed(2027, 1, 1), "New Year's Day");
        assert_eq!(closed(2027, 1, 26), "Australia Day");
        assert_eq!(closed(2027, 3, 26), "Good Friday");
        assert_eq!(closed(2027, 3, 29), "Easter Monday");
        assert_eq!(closed(2027, 6, 14), "King's Birthday");
        assert_eq!(closed(2027, 12, 27), "Christmas Day (observed)");
        assert_eq!(closed(2027, 12, 28), "Boxing Day (observed)");
        assert_eq!(closed(2027, 4, 25), "Sunday");
        assert_trading(&[
            (2027, 1, 4),
            (2027, 1, 25),
            (2027, 1, 27),
            (2027, 3, 25),
            (2027, 3, 30),
            (2027, 4, 26),
            (2027, 6, 11),
            (2027, 6, 15),
            (2027, 12, 24),
            (2027, 12, 29),
            (2027, 12, 31),
        ]);
    }

    #[test]
    fn closures_2025_and_observance_corners() {
        assert_eq!(closed(2025, 1, 27), "Australia Day (observed)");
        assert_eq!(closed(2025, 4, 18), "Good Friday");
        assert_eq!(closed(2025, 4, 21), "Easter Monday");
        assert_eq!(closed(2025, 4, 25), "Anzac Day");
        assert_eq!(closed(2025, 6, 9), "King's Birthday");
        assert_eq!(closed(2025, 12, 26), "Boxing Day");
        // 2022: New Year's Day on Saturday, Christmas on Sunday.
        assert_eq!(closed(2022, 1, 3), "New Year's Day (observed)");
        assert_eq!(closed(2022, 12, 26), "Boxing Day");
        assert_eq!(closed(2022, 12, 27), "Christmas Day (observed)");
        assert_eq!(closed(2022, 6, 13), "Queen's Birthday");
        assert_eq!(closed(2022, 9, 22), "National Day of Mourning");
        // New Year's Day on Sunday moves to Monday 2 January.
        assert_eq!(closed(2023, 1, 2), "New Year's Day (observed)");
        assert_trading(&[(2022, 1, 4), (2022, 12, 28), (2023, 1, 3), (2025, 6, 23)]);
    }

    #[test]
    fn early_closes_are_the_last_days_before_christmas_and_new_year() {
        let early = [
            (2026, 12, 24),
            (2026, 12, 31),
            (2027, 12, 24),
            (2027, 12, 31),
        ];
        for (y, m, d) in early {
            let s = session(date(y, m, d)).unwrap();
            assert!(s.early_close, "{y}-{m}-{d}");
            assert_eq!(
                s.closing_auction.time(),
                NaiveTime::from_hms_opt(14, 10, 0).unwrap()
            );
            assert_eq!(
                s.continuous_end.time(),
                NaiveTime::from_hms_opt(14, 0, 0).unwrap()
            );
        }
        // Christmas Eve 2022 was a Saturday; the exchange kept normal hours.
        assert!(!is_early_close(date(2022, 12, 23)));
        // 24 Dec 2028 is a Sunday, so Friday 22nd closes early.
        assert!(is_early_close(date(2028, 12, 22)));
        assert!(!is_early_close(date(2028, 12, 21)));
        assert!(!is_early_close(date(2026, 12, 23)));
        assert!(!is_early_close(date(2026, 12, 26)));
        let normal = session(date(2026, 12, 23)).unwrap();
        assert!(!normal.early_close);
        assert_eq!(
            normal.closing_auction.time(),
            NaiveTime::from_hms_opt(16, 10, 0).unwrap()
        );
    }

    #[test]
    fn session_times_follow_sydney_daylight_saving() {
        // 2026: daylight saving ends Sun 5 Apr, starts Sun 4 Oct.
        let utc_open = |y, m, d| session(date(y, m, d)).unwrap().continuous_start.to_utc();
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        assert_eq!(utc_open(2026, 4, 2), at("2026-04-01T23:00:00Z"));
        assert_eq!(utc_open(2026, 4, 7), at("2026-04-07T00:00:00Z"));
        assert_eq!(utc_open(2026, 10, 2), at("2026-10-02T00:00:00Z"));
        assert_eq!(utc_open(2026, 10, 5), at("2026-10-04T23:00:00Z"));
        let s = session(date(2026, 10, 5)).unwrap();
        assert_eq!(s.continuous_start.to_rfc3339(), "2026-10-05T10:00:00+11:00");
        assert_eq!(s.open_auction.to_rfc3339(), "2026-10-05T09:59:00+11:00");
        assert_eq!(s.pre_open.to_rfc3339(), "2026-10-05T07:00:00+11:00");
        assert_eq!(s.continuous_end.to_rfc3339(), "2026-10-05T16:00:00+11:00");
        let july = session(date(2027, 7, 1)).unwrap();
        assert_eq!(
            july.closing_auction.to_rfc3339(),
            "2027-07-01T16:10:00+10:00"
        );
    }

    #[test]
    fn open_kind_changes_on_23_june_2025() {
        let before = session(date(2025, 6, 20)).unwrap();
        let after = session(date(2025, 6, 23)).unwrap();
        assert_eq!(before.open_kind, OpenKind::Staggered);
        assert_eq!(after.open_kind, OpenKind::SingleAuction);
        assert_eq!(after.open_for("ZIP"), after.continuous_start);
        let hms = |s: &str| NaiveTime::parse_from_str(s, "%H:%M:%S").unwrap();
        assert_eq!(before.open_for("14D").time(), hms("10:00:15"));
        assert_eq!(before.open_for("BHP").time(), hms("10:00:15"));
        assert_eq!(before.open_for("cba").time(), hms("10:02:30"));
        assert_eq!(before.open_for("MQG").time(), hms("10:04:45"));
        assert_eq!(before.open_for("RIO").time(), hms("10:07:00"));
        assert_eq!(before.open_for("WES").time(), hms("10:09:15"));
        assert_eq!(before.open_for(""), before.continuous_start);
    }

    #[test]
    fn stepping_over_holidays_and_weekends() {
        assert_eq!(next_trading_day(date(2026, 4, 2)), Some(date(2026, 4, 7)));
        assert_eq!(
            previous_trading_day(date(2026, 4, 7)),
            Some(date(2026, 4, 2))
        );
        assert_eq!(
            next_trading_day(date(2026, 12, 24)),
            Some(date(2026, 12, 29))
        );
        assert_eq!(
            next_trading_day(date(2027, 12, 24)),
            Some(date(2027, 12, 29))
        );
        assert_eq!(
            previous_trading_day(date(2027, 1, 4)),
            Some(date(2026, 12, 31))
        );
        assert_eq!(
            add_trading_days(date(2026, 4, 1), 3),
            Some(date(2026, 4, 8))
        );
        assert_eq!(
            add_trading_days(date(2026, 4, 8), -3),
            Some(date(2026, 4, 1))
        );
        assert_eq!(
            add_trading_days(date(2026, 4, 4), 0),
            Some(date(2026, 4, 4))
        );
        assert_eq!(next_trading_day(NaiveDate::MAX), None);
    }

    #[test]
    fn counting_matches_stepping() {
        assert_eq!(trading_days_between(date(2026, 4, 1), date(2026, 4, 8)), 3);
        assert_eq!(trading_days_between(date(2026, 4, 8), date(2026, 4, 1)), -3);
        assert_eq!(trading_days_between(date(2026, 4, 4), date(2026, 4, 4)), 0);
        // 2026: 261 weekdays less 7 weekday closures.
        assert_eq!(
            trading_days_between(date(2025, 12, 31), date(2026, 12, 31)),
            254
        );
        // 2027: 261 weekdays less 7 weekday closures.
        assert_eq!(
            trading_days_between(date(2026, 12, 31), date(2027, 12, 31)),
            254
        );
        let start = date(2024, 11, 29);
        let mut day = start;
        for n in 1..=900 {
            day = next_trading_day(day).unwrap();
            assert_eq!(trading_days_between(start, day), n, "to {day}");
            assert_eq!(add_trading_days(start, n), Some(day));
            // Counting from a closed day skips nothing extra.
            let sat = date(2024, 11, 30);
            assert_eq!(trading_days_between(sat, day), n);
        }
    }

    #[test]
    fn clock_fixed_gives_the_sydney_date() {
        let instant: DateTime<FixedOffset> = "2026-04-05T14:30:00Z".parse().unwrap();
        let clock = Clock::fixed_at_offset(instant);
        assert!(clock.is_fixed());
        // 14:30 UTC on 5 April is 00:30 on 6 April in Sydney (AEST).
        assert_eq!(clock.today(), date(2026, 4, 6));
        assert_eq!(clock.now_sydney().to_rfc3339(), "2026-04-06T00:30:00+10:00");
        assert_eq!(clock.now(), clock.now());
        let system = Clock::system();
        assert!(!system.is_fixed());
        assert!(system.now() >= "2025-01-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap());
    }
}
