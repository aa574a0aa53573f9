//! The one line editor of every text input (the `/` and environment prompts, the `:` palette,
//! the route inspector, the Config editor): tui-input's, with a cursor, word moves (ctrl-←/→,
//! alt-b/f), Home/End (ctrl-a/e) and deletions (ctrl-w word, ctrl-u line, ctrl-k to the end).

use ratatui::Frame;
use ratatui::crossterm::event::{Event, KeyEvent};
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::Span;
use tui_input::Input;
use tui_input::backend::crossterm::to_input_request;
use unicode_width::UnicodeWidthChar;

#[derive(Debug, Clone, Default)]
pub struct LineEdit {
    input: Input,
    /// The text was put in to be replaced (a search's last words): the first character typed
    /// takes its place; a move or a deletion keeps it to be edited.
    selected: bool,
}

impl PartialEq for LineEdit {
    fn eq(&self, other: &Self) -> bool {
        self.value() == other.value() && self.input.cursor() == other.input.cursor()
    }
}

impl Eq for LineEdit {}

impl LineEdit {
    /// `text` with the cursor after it.
    pub fn new(text: impl Into<String>) -> LineEdit {
        LineEdit {
            input: Input::new(text.into()),
            selected: false,
        }
    }

    /// `text` shown selected: typing replaces it, a cursor key starts editing it.
    pub fn selected(text: impl Into<String>) -> LineEdit {
        let input = Input::new(text.into());
        let selected = !input.value().is_empty();
        LineEdit { input, selected }
    }

    pub fn value(&self) -> &str {
        self.input.value()
    }

    /// `text` with the cursor after its first `cursor` characters.
    pub fn with_cursor(text: impl Into<String>, cursor: usize) -> LineEdit {
        LineEdit {
            input: Input::new(text.into()).with_cursor(cursor),
            selected: false,
        }
    }

    /// Replaces the text; the cursor goes after it.
    pub fn set(&mut self, text: impl Into<String>) {
        self.input = Input::new(text.into());
        self.selected = false;
    }

    /// Characters before the cursor.
    pub fn cursor(&self) -> usize {
        self.input.cursor()
    }

    /// An editing key (a character, a deletion, a cursor move); returns whether it was one.
    pub fn on_key(&mut self, key: KeyEvent) -> bool {
        use ratatui::crossterm::event::{KeyCode, KeyModifiers};
        let typed = matches!(key.code, KeyCode::Char(_))
            && !key
                .modifiers
                .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT);
        if std::mem::take(&mut self.selected) && typed {
            self.input = Input::default();
        }
        match to_input_request(&Event::Key(key)) {
            Some(req) => {
                self.input.handle(req);
                true
            }
            None => false,
        }
    }

    /// The part of the text that fits `width` columns around the cursor, and the cursor's
    /// column within it.
    pub fn visible(&self, width: u16, style: Style) -> (Span<'static>, u16) {
        let width = usize::from(width.max(1));
        let scroll = self.input.visual_scroll(width.saturating_sub(1));
        let mut skipped = 0;
        let shown: String = self
            .value()
            .chars()
            .skip_while(|c| {
                let w = c.width().unwrap_or(0);
                if skipped + w <= scroll {
                    skipped += w;
                    true
                } else {
                    false
                }
            })
            .collect();
        let cursor = self.input.visual_cursor().saturating_sub(skipped);
        (Span::styled(shown, style), cursor as u16)
    }

    /// Draws the text in `area` (one row) and puts the terminal's cursor at its place.
    pub fn render(&self, frame: &mut Frame, area: Rect, style: Style) {
        if area.width == 0 || area.height == 0 {
            return;
        }
        let style = if self.selected {
            style.add_modifier(ratatui::style::Modifier::REVERSED)
        } else {
            style
        };
        let (span, cursor) = self.visible(area.width, style);
        frame.render_widget(span, area);
        frame.set_cursor_position((area.x + cursor.min(area.width - 1), area.y));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::crossterm::event::{KeyCode, KeyModifiers};

    fn key(code: KeyCode, m: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, m)
    }

    #[test]
    fn words_move_and_delete_like_a_shell() {
        let mut e = LineEdit::new("kill user-service-2");
        assert!(e.on_key(key(KeyCode::Char('w'), KeyModifiers::CONTROL)));
        assert_eq!(e.value(), "kill user-service-");
        e.on_key(key(KeyCode::Home, KeyModifiers::NONE));
        e.on_key(key(KeyCode::Char('x'), KeyModifiers::NONE));
        assert_eq!(e.value(), "xkill user-service-");
        e.on_key(key(KeyCode::Char('k'), KeyModifiers::CONTROL));
        assert_eq!(e.value(), "x");
        e.on_key(key(KeyCode::Char('u'), KeyModifiers::CONTROL));
        assert_eq!(e.value(), "");
        assert!(
            !e.on_key(key(KeyCode::Enter, KeyModifiers::NONE)),
            "Enter is not editing"
        );
        assert!(
            !e.on_key(key(KeyCode::Tab, KeyModifiers::NONE)),
            "Tab completes, elsewhere"
        );
    }

    /// A search's last text is offered selected: typing replaces it (it was appended to),
    /// a cursor key keeps it to edit.
    #[test]
    fn a_selected_text_is_replaced_by_typing_or_kept_by_a_move() {
        let mut e = LineEdit::selected("ejected");
        e.on_key(key(KeyCode::Char('s'), KeyModifiers::NONE));
        assert_eq!(e.value(), "s");
        e.on_key(key(KeyCode::Char('t'), KeyModifiers::NONE));
        assert_eq!(e.value(), "st", "once replaced, typing appends");
        let mut e = LineEdit::selected("ejected");
        e.on_key(key(KeyCode::Left, KeyModifiers::NONE));
        e.on_key(key(KeyCode::Char('X'), KeyModifiers::NONE));
        assert_eq!(e.value(), "ejecteXd");
    }

    #[test]
    fn a_long_line_scrolls_to_keep_the_cursor_in_view() {
        let e = LineEdit::new("0123456789abcdef");
        let (shown, cursor) = e.visible(8, Style::new());
        assert!(shown.content.ends_with('f'), "{}", shown.content);
        assert!(cursor < 8);
        let (shown, cursor) = LineEdit::new("ab").visible(8, Style::new());
        assert_eq!((shown.content.as_ref(), cursor), ("ab", 2));
    }
}
