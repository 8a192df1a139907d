//! The dashboard's 14-day chart as SVG geometry, drawn on the server: grouped bars (sign-ins, failed
//! sign-ins, locks) per day, a scale with three ticks, and a date under every other day.

use crate::service::dashboard::Day;

pub const WIDTH: i64 = 700;
pub const HEIGHT: i64 = 220;
const LEFT: i64 = 44;
const BOTTOM: i64 = 28;
const TOP: i64 = 8;
const BAR: i64 = 12;

pub struct Chart {
    pub bars: Vec<Bar>,
    pub ticks: Vec<Tick>,
    pub labels: Vec<Label>,
    /// Where the horizontal axis is drawn.
    pub baseline: i64,
}

pub struct Bar {
    pub x: i64,
    pub y: i64,
    pub height: i64,
    /// `sign-ins`, `failed` or `locked`: the colour, from app.css.
    pub class: &'static str,
    /// What a pointer hovering the bar shows: "3 Dec: 12 sign-ins".
    pub title: String,
}

pub struct Tick {
    pub y: i64,
    pub value: i64,
}

pub struct Label {
    pub x: i64,
    pub text: String,
}

/// "3 Dec" for the day starting at `start` (Unix ms).
pub fn day_label(start: i64) -> String {
    let date = crate::clock::from_ms(start);
    let month = date.month().to_string();
    format!("{} {}", date.day(), &month[..3])
}

pub fn draw(days: &[Day]) -> Chart {
    let baseline = HEIGHT - BOTTOM;
    let plot = baseline - TOP;
    let top = days.iter().flat_map(|d| [d.sign_ins, d.failed, d.locked]).max().unwrap_or(0).max(1);
    // A scale that ends on an even number, so the middle tick is whole.
    let top = top + top % 2;
    let scaled = |value: i64| value * plot / top;
    let group = (WIDTH - LEFT) / days.len().max(1) as i64;
    let mut bars = Vec::new();
    let mut labels = Vec::new();
    for (n, day) in days.iter().enumerate() {
        let x0 = LEFT + n as i64 * group + (group - 3 * BAR - 4) / 2;
        let date = day_label(day.start);
        let series = [
            (day.sign_ins, "sign-ins", "sign-ins"),
            (day.failed, "failed", "failed sign-ins"),
            (day.locked, "locked", "locks"),
        ];
        for (k, (value, class, what)) in series.into_iter().enumerate() {
            let height = scaled(value);
            bars.push(Bar {
                x: x0 + k as i64 * (BAR + 2),
                y: baseline - height,
                height,
                class,
                title: format!("{date}: {value} {what}"),
            });
        }
        if n % 2 == 0 || n + 1 == days.len() {
            labels.push(Label { x: x0 + (3 * BAR + 4) / 2, text: date });
        }
    }
    let ticks = [0, top / 2, top].into_iter().map(|value| Tick { y: baseline - scaled(value), value }).collect();
    Chart { bars, ticks, labels, baseline }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tallest_bar_fills_the_plot_and_zero_draws_nothing() {
        let days: Vec<Day> = (0..14)
            .map(|n| Day { start: n * 86_400_000, sign_ins: n, failed: if n == 13 { 26 } else { 0 }, locked: 0 })
            .collect();
        let chart = draw(&days);
        assert_eq!(chart.bars.len(), 42);
        let tallest = chart.bars.iter().max_by_key(|b| b.height).unwrap();
        assert_eq!((tallest.class, tallest.y), ("failed", TOP));
        assert_eq!(chart.bars[0].height, 0);
        assert_eq!(chart.ticks.iter().map(|t| t.value).collect::<Vec<_>>(), [0, 13, 26]);
        assert!(chart.bars.iter().all(|b| b.x >= LEFT && b.x + BAR <= WIDTH));
        assert_eq!(tallest.title, "14 Jan: 26 failed sign-ins");
    }
}
