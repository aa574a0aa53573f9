//! A list filter's match, marked in the text it was found in.

use ratatui::style::Style;
use ratatui::text::{Line, Span};

/// Whether `needle` occurs in `text`, ignoring ASCII case; an empty needle is everywhere.
pub fn contains(text: &str, needle: &str) -> bool {
    needle.is_empty() || find(text, needle, 0).is_some()
}

/// Byte offset of the first occurrence of `needle` at or after `from`, ignoring ASCII case.
/// ASCII case folding keeps every byte where it was, so offsets in the folded text are offsets
/// in `text`.
fn find(text: &str, needle: &str, from: usize) -> Option<usize> {
    let (hay, pin) = (text.as_bytes(), needle.as_bytes());
    if pin.is_empty() || pin.len() > hay.len() {
        return None;
    }
    (from..=hay.len() - pin.len()).find(|&i| hay[i..i + pin.len()].eq_ignore_ascii_case(pin))
}

/// `text` in `base`, every occurrence of `needle` (ignoring ASCII case) in `hit`.
pub fn highlight<'a>(text: &'a str, needle: Option<&str>, base: Style, hit: Style) -> Line<'a> {
    let Some(needle) = needle.filter(|n| !n.is_empty()) else {
        return Line::from(Span::styled(text, base));
    };
    let mut spans = Vec::new();
    let mut at = 0;
    while let Some(i) = find(text, needle, at) {
        // A match inside a multi-byte character cannot happen for an ASCII needle; for any
        // other, only whole-character matches are marked.
        let end = i + needle.len();
        if !text.is_char_boundary(i) || !text.is_char_boundary(end) {
            break;
        }
        if i > at {
            spans.push(Span::styled(&text[at..i], base));
        }
        spans.push(Span::styled(&text[i..end], hit));
        at = end;
    }
    if at < text.len() {
        spans.push(Span::styled(&text[at..], base));
    }
    Line::from(spans)
}

/// Like [`highlight`], for a line that must own its text.
pub fn highlight_owned(text: &str, needle: Option<&str>, base: Style, hit: Style) -> Line<'static> {
    let spans: Vec<Span<'static>> = highlight(text, needle, base, hit)
        .spans
        .into_iter()
        .map(|s| Span::styled(s.content.into_owned(), s.style))
        .collect();
    Line::from(spans)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::style::Modifier;

    #[test]
    fn every_match_is_marked_whatever_its_case() {
        let hit = Style::new().add_modifier(Modifier::UNDERLINED);
        let line = highlight("User-service-2 user", Some("USER"), Style::new(), hit);
        let parts: Vec<(&str, bool)> = line
            .spans
            .iter()
            .map(|s| (s.content.as_ref(), s.style == hit))
            .collect();
        assert_eq!(
            parts,
            [("User", true), ("-service-2 ", false), ("user", true)]
        );
        assert!(contains("gateway->user-service", "R-S"));
        assert!(!contains("gateway", "gateways"));
        assert!(contains("anything", ""));
        // Non-ASCII text keeps its characters whole.
        let line = highlight("→ café ←", Some("É"), Style::new(), hit);
        assert_eq!(line.to_string(), "→ café ←");
        let line = highlight("naïve", Some("ï"), Style::new(), hit);
        assert_eq!(line.spans.iter().filter(|s| s.style == hit).count(), 1);
    }
}
