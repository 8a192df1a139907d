//! The admin dashboard's figures: accounts, live sessions, sign-ins and failures in the last 24 hours, locked
//! accounts, and the last 14 days of sign-ins, failures and locks.

use super::Services;
use crate::{
    clock,
    error::Result,
    store::dashboard::{self, FAILED_SIGN_IN, LOCKED, SIGN_IN},
};

/// Days in the chart, today included.
pub const DAYS: i64 = 14;
const DAY_MS: i64 = 86_400_000;

pub struct Dashboard {
    pub users: i64,
    pub active_sessions: i64,
    pub sign_ins_24h: i64,
    pub failed_sign_ins_24h: i64,
    pub locked_accounts: i64,
    /// Oldest first, one per UTC day, days without events included.
    pub days: Vec<Day>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Day {
    /// The day's start, Unix ms.
    pub start: i64,
    pub sign_ins: i64,
    pub failed: i64,
    pub locked: i64,
}

impl Services {
    pub async fn dashboard(&self) -> Result<Dashboard> {
        let now = clock::now_ms();
        let pool = self.db.pool();
        let last_24h = dashboard::counts_since(pool, now - DAY_MS, i64::MAX).await?;
        let of = |action: &str| last_24h.iter().find(|(_, a, _)| a == action).map_or(0, |(_, _, n)| *n);
        let first_day = now / DAY_MS - (DAYS - 1);
        let daily = dashboard::counts_since(pool, first_day * DAY_MS, DAY_MS).await?;
        Ok(Dashboard {
            users: dashboard::user_count(pool).await?,
            active_sessions: self.active_sessions().await?,
            sign_ins_24h: of(SIGN_IN),
            failed_sign_ins_24h: of(FAILED_SIGN_IN),
            locked_accounts: dashboard::locked_accounts(pool, now).await?,
            days: days_of(first_day, &daily),
        })
    }
}

/// Spreads `(day, action, count)` rows over the `DAYS` days from `first_day`.
fn days_of(first_day: i64, rows: &[(i64, String, i64)]) -> Vec<Day> {
    let mut days: Vec<Day> = (0..DAYS).map(|n| Day { start: (first_day + n) * DAY_MS, ..Day::default() }).collect();
    for (day, action, count) in rows {
        let Some(slot) = usize::try_from(day - first_day).ok().and_then(|i| days.get_mut(i)) else { continue };
        match action.as_str() {
            SIGN_IN => slot.sign_ins += count,
            FAILED_SIGN_IN => slot.failed += count,
            LOCKED => slot.locked += count,
            _ => {}
        }
    }
    days
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_fill_their_days_and_empty_days_stay() {
        let rows = [(100, SIGN_IN.to_string(), 3), (113, FAILED_SIGN_IN.to_string(), 2), (99, LOCKED.into(), 9)];
        let days = days_of(100, &rows);
        assert_eq!(days.len(), 14);
        assert_eq!((days[0].sign_ins, days[0].start), (3, 100 * DAY_MS));
        assert_eq!(days[13].failed, 2);
        assert!(days[1..13].iter().all(|d| d.sign_ins + d.failed + d.locked == 0), "day 99 is outside");
    }
}
