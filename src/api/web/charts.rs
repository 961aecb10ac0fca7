//! Pictures where people would rather look than read (issue 23.6): server-rendered SVG, drawn
//! with presentation attributes (no inline style, which the CSP refuses), each with its text
//! alternative: the SVG is `role="img"` with a `<title>`, and the figure's caption says the
//! figures in words. Pure: the pages pass numbers and their labels in the page's language.

use std::fmt::Write;

/// Colours with at least 3:1 contrast on white (WCAG 1.4.11, non-text contrast).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Good,
    Warn,
    Bad,
    Neutral,
}

impl Tone {
    fn fill(self) -> &'static str {
        match self {
            Tone::Good => "#1a7f37",
            Tone::Warn => "#9a6700",
            Tone::Bad => "#cf222e",
            Tone::Neutral => "#57606a",
        }
    }
}

/// One part of a whole: its label, how many, its colour.
pub struct Part {
    pub label: String,
    pub value: i64,
    pub tone: Tone,
}

const WIDTH: f64 = 600.0;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A figure: the SVG (labelled by `title`) and its caption in words.
fn figure(id: &str, title: &str, height: u32, shapes: &str, caption: &str) -> String {
    format!(
        "<figure class=\"chart\"><svg role=\"img\" aria-labelledby=\"{id}-title\" viewBox=\"0 0 {WIDTH} {height}\" width=\"100%\" height=\"{height}\" preserveAspectRatio=\"none\"><title id=\"{id}-title\">{}</title>{shapes}</svg><figcaption>{}</figcaption></figure>",
        escape(title),
        escape(caption)
    )
}

/// A whole split into its parts, as one bar (the tenants per sync state, say); the caption names
/// each part with its count, `summary` first.
pub fn parts_bar(id: &str, title: &str, summary: &str, parts: &[Part]) -> String {
    let total: i64 = parts.iter().map(|p| p.value.max(0)).sum();
    let mut shapes = String::new();
    let mut x = 0.0;
    for part in parts.iter().filter(|p| p.value > 0) {
        let width = WIDTH * part.value as f64 / total as f64;
        let _ = write!(
            shapes,
            "<rect x=\"{x:.1}\" y=\"0\" width=\"{width:.1}\" height=\"24\" fill=\"{}\"><title>{}: {}</title></rect>",
            part.tone.fill(),
            escape(&part.label),
            part.value
        );
        x += width;
    }
    if total == 0 {
        shapes.push_str("<rect x=\"0\" y=\"0\" width=\"600\" height=\"24\" fill=\"none\" stroke=\"#57606a\"/>");
    }
    let named = parts.iter().map(|p| format!("{}: {}", p.label, p.value)).collect::<Vec<_>>().join(", ");
    figure(id, title, 24, &shapes, &format!("{summary} {named}."))
}

/// Usage against a limit and its warning thresholds (percentages of the limit), as a meter.
pub fn usage_meter(id: &str, title: &str, caption: &str, usage: i64, limit: Option<i64>, thresholds: &[i64]) -> String {
    let scale = limit.unwrap_or(usage).max(usage).max(1) as f64;
    let filled = WIDTH * usage.max(0) as f64 / scale;
    let tone = match limit {
        Some(limit) if usage >= limit => Tone::Bad,
        Some(limit) if thresholds.iter().any(|t| usage * 100 >= limit * t) => Tone::Warn,
        _ => Tone::Good,
    };
    let mut shapes = format!(
        "<rect x=\"0\" y=\"4\" width=\"600\" height=\"20\" fill=\"none\" stroke=\"#57606a\"/><rect x=\"0\" y=\"4\" width=\"{filled:.1}\" height=\"20\" fill=\"{}\"/>",
        tone.fill()
    );
    if let Some(limit) = limit {
        for threshold in thresholds {
            let x = WIDTH * (limit * threshold) as f64 / 100.0 / scale;
            let _ = write!(
                shapes,
                "<line x1=\"{x:.1}\" y1=\"0\" x2=\"{x:.1}\" y2=\"28\" stroke=\"#1a1a1a\" stroke-dasharray=\"3 2\"/>"
            );
        }
        let x = (WIDTH * limit as f64 / scale).min(WIDTH - 1.0);
        let _ = write!(
            shapes,
            "<line x1=\"{x:.1}\" y1=\"0\" x2=\"{x:.1}\" y2=\"28\" stroke=\"#1a1a1a\" stroke-width=\"2\"/>"
        );
    }
    figure(id, title, 28, &shapes, caption)
}

/// A count per day (audit events, say) as columns, oldest first; the caption says the total and
/// the busiest day.
pub fn daily_columns(id: &str, title: &str, caption: &str, days: &[(String, i64)]) -> String {
    let most = days.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1) as f64;
    let width = WIDTH / days.len().max(1) as f64;
    let mut shapes = String::new();
    for (i, (day, count)) in days.iter().enumerate() {
        let height = 80.0 * *count as f64 / most;
        let _ = write!(
            shapes,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{height:.1}\" fill=\"{}\"><title>{}: {count}</title></rect>",
            i as f64 * width + 1.0,
            80.0 - height,
            (width - 2.0).max(1.0),
            Tone::Neutral.fill(),
            escape(day)
        );
    }
    shapes.push_str("<line x1=\"0\" y1=\"80\" x2=\"600\" y2=\"80\" stroke=\"#1a1a1a\"/>");
    figure(id, title, 80, &shapes, caption)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(label: &str, value: i64, tone: Tone) -> Part {
        Part { label: label.into(), value, tone }
    }

    #[test]
    fn a_bar_gives_each_part_its_share_and_names_every_part_in_words() {
        let svg = parts_bar(
            "sync",
            "Tenants by sync state",
            "3 tenants.",
            &[part("Synced", 2, Tone::Good), part("Drifted", 1, Tone::Warn), part("Error", 0, Tone::Bad)],
        );
        assert!(svg.contains("role=\"img\" aria-labelledby=\"sync-title\""), "{svg}");
        assert!(svg.contains("width=\"400.0\" height=\"24\" fill=\"#1a7f37\""), "two thirds: {svg}");
        assert!(svg.contains("x=\"400.0\" y=\"0\" width=\"200.0\""), "the rest: {svg}");
        assert!(!svg.contains("Error: 0</title>"), "an empty part draws nothing: {svg}");
        assert!(svg.contains("<figcaption>3 tenants. Synced: 2, Drifted: 1, Error: 0.</figcaption>"), "{svg}");
        assert!(!svg.contains("style="), "no inline style: the CSP refuses it");
    }

    #[test]
    fn a_meter_marks_the_limit_and_thresholds_and_turns_with_them() {
        let ok = usage_meter("u", "Usage", "10 of 100", 10, Some(100), &[75, 90]);
        assert!(ok.contains("width=\"60.0\" height=\"20\" fill=\"#1a7f37\""), "{ok}");
        assert!(ok.contains("x1=\"450.0\"") && ok.contains("x1=\"540.0\""), "thresholds at 75 % and 90 %: {ok}");
        let warned = usage_meter("u", "Usage", "80 of 100", 80, Some(100), &[75, 90]);
        assert!(warned.contains("fill=\"#9a6700\""), "{warned}");
        let over = usage_meter("u", "Usage", "150 of 100", 150, Some(100), &[]);
        assert!(
            over.contains("width=\"600.0\" height=\"20\" fill=\"#cf222e\""),
            "over the limit fills the meter: {over}"
        );
        assert!(over.contains("x1=\"400.0\""), "the limit at two thirds of the scale: {over}");
        let unlimited = usage_meter("u", "Usage", "5, no limit", 5, None, &[75]);
        assert!(!unlimited.contains("<line x1"), "no limit, no marks: {unlimited}");
    }

    #[test]
    fn columns_scale_to_the_busiest_day_and_escape_their_labels() {
        let svg = daily_columns(
            "a",
            "Events <per> day",
            "7 events",
            &[("d1".into(), 2), ("d2".into(), 4), ("x&y".into(), 1)],
        );
        assert!(svg.contains("y=\"0.0\" width=\"198.0\" height=\"80.0\""), "the busiest is full height: {svg}");
        assert!(svg.contains("<title>x&amp;y: 1</title>") && svg.contains("Events &lt;per&gt; day"), "{svg}");
    }
}
