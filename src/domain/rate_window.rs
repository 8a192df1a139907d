//! The sliding-window counter behind per-IP rate limits: the current fixed window's count plus the
//! previous window's, weighted by how much of it still overlaps the last `window`. Smoother than a fixed
//! window (no double burst at the boundary), and two counters per key are all that has to be stored, in
//! process or in Redis alike.

/// Where a moment falls: the window's index and the milliseconds elapsed in it.
pub fn position(now_ms: i64, window_ms: i64) -> (i64, i64) {
    (now_ms.div_euclid(window_ms), now_ms.rem_euclid(window_ms))
}

/// `None` to allow the request (already counted in `current`), or the seconds to wait (1..=window).
pub fn decide(limit: u64, window_ms: i64, elapsed_ms: i64, previous: u64, current: u64) -> Option<u64> {
    let remaining_share = (window_ms - elapsed_ms) as f64 / window_ms as f64;
    let estimate = previous as f64 * remaining_share + current as f64;
    if estimate <= limit as f64 {
        return None;
    }
    let window_secs = (window_ms / 1000).max(1) as u64;
    let wait_ms = if current >= limit || previous == 0 {
        // Only the next window helps.
        window_ms - elapsed_ms
    } else {
        // The previous window's weight must fall until the estimate is back under the limit.
        let share_needed = (limit - current) as f64 / previous as f64;
        ((remaining_share - share_needed) * window_ms as f64).ceil() as i64
    };
    Some(((wait_ms.max(1) as u64).div_ceil(1000)).clamp(1, window_secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: i64 = 60_000;

    #[test]
    fn allows_up_to_the_limit_then_refuses() {
        for n in 1..=60 {
            assert_eq!(decide(60, MINUTE, 10_000, 0, n), None);
        }
        assert_eq!(decide(60, MINUTE, 10_000, 0, 61), Some(50), "wait for the next window");
    }

    #[test]
    fn the_previous_window_counts_while_it_overlaps() {
        // 60 requests in the last window, 15 s into this one: 45 of them still count.
        assert_eq!(decide(60, MINUTE, 15_000, 60, 15), None);
        let wait = decide(60, MINUTE, 15_000, 60, 16).unwrap();
        assert!((1..=2).contains(&wait), "{wait}");
        assert!(decide(60, MINUTE, 59_000, 60, 59).is_none());
    }

    #[test]
    fn retry_after_stays_within_the_window() {
        for elapsed in [0, 1, 30_000, 59_999] {
            for (prev, cur) in [(0, 61), (1000, 1), (61, 61), (1000, 1000)] {
                if let Some(wait) = decide(60, MINUTE, elapsed, prev, cur) {
                    assert!((1..=60).contains(&wait), "{elapsed} {prev} {cur}: {wait}");
                }
            }
        }
    }

    #[test]
    fn positions() {
        assert_eq!(position(125_000, MINUTE), (2, 5_000));
    }
}
