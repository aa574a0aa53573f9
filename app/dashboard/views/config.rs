//! The Config tab: every key of the live config with its value and the layer it comes from, the
//! selected key's editor (Enter) with the refusal shown in place, and the history of changes.
//! `u` undoes the newest change, `d` removes the selected key's override.

use super::balancer::clock;
use super::line::LineEdit;
use crate::dashboard::action::Action;
use crate::dashboard::app::Request;
use crate::dashboard::tabs::{Cx, Outcome, TabView, filter_prompt};
use crate::dashboard::views::filter::ListFilter;
use crate::dashboard::views::prompt::{Prompt, PromptFor};
use crate::dashboard::views::rows::Drawn;
use devcluster::config::center::{Change, ConfigView};
use devcluster::handle::ClusterSnapshot;
use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Block, Cell, Clear, List, ListItem, Paragraph, Row, Table, TableState, Wrap,
};
use widgets::columns::{Column, constraints, fit, shown, widest};
use widgets::{Notice, Theme};

#[derive(Debug, Default)]
pub struct ConfigTab {
    /// The selected row of the tree (sections and the keys of unfolded ones).
    pub selected: usize,
    /// Sections (first part of a key) shown folded.
    pub folded: std::collections::BTreeSet<String>,
    pub editing: Option<Editor>,
    /// What switching environment would change, shown before it is applied.
    pub env_preview: Option<EnvPreview>,
    /// Keeps the keys whose whole name (`traffic.rps`) holds its text; their sections show
    /// unfolded.
    pub filter: ListFilter,
    pub drawn: Drawn,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EnvPreview {
    pub name: String,
    pub changes: Vec<Change>,
}

/// The value being typed for one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Editor {
    pub key: String,
    pub text: LineEdit,
    /// Why the last try was refused (the key, the value, what was expected).
    pub error: Option<String>,
    /// Sent, waiting for the answer.
    pub pending: bool,
}

/// What a key did to the editor.
#[derive(Debug, PartialEq, Eq)]
pub enum EditKey {
    Edited,
    Cancelled,
    /// Set `key` to `value`.
    Submit {
        key: String,
        value: String,
    },
}

/// A row of the key tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TreeRow<'a> {
    /// A section (`breaker`), with how many keys it holds and whether it is folded.
    Section(&'a str, usize, bool),
    /// A key, by its index in the view's entries.
    Key(usize),
}

/// `breaker.default.window` → (`breaker`, `default.window`).
fn section(key: &str) -> (&str, &str) {
    key.split_once('.').unwrap_or((key, ""))
}

impl ConfigTab {
    /// The tree's visible rows: each section, then its keys unless it is folded. Filtered,
    /// only the sections with a key that matches, unfolded, and those keys.
    pub fn rows<'a>(&self, view: &'a ConfigView) -> Vec<TreeRow<'a>> {
        let mut rows = Vec::new();
        let mut i = 0;
        let filtering = self.filter.text().is_some();
        while i < view.entries.len() {
            let name = section(&view.entries[i].key).0;
            let n = view.entries[i..]
                .iter()
                .take_while(|e| section(&e.key).0 == name)
                .count();
            let keys: Vec<usize> = (i..i + n)
                .filter(|&k| self.filter.keeps([view.entries[k].key.as_str()]))
                .collect();
            i += n;
            if keys.is_empty() {
                continue;
            }
            let folded = !filtering && self.folded.contains(name);
            rows.push(TreeRow::Section(name, keys.len(), folded));
            if !folded {
                rows.extend(keys.into_iter().map(TreeRow::Key));
            }
        }
        rows
    }

    /// j/k, Enter and Esc within the lists.
    fn step(&mut self, action: &Action, view: &ConfigView) {
        let rows = self.rows(view);
        match (action, rows.get(self.selected).copied()) {
            (Action::Down, _) if self.selected + 1 < rows.len() => self.selected += 1,
            (Action::Up, _) => self.selected = self.selected.saturating_sub(1),
            (Action::Open, Some(TreeRow::Key(i))) => {
                let e = &view.entries[i];
                self.editing = Some(Editor {
                    key: e.key.clone(),
                    text: LineEdit::new(e.value.clone()),
                    error: None,
                    pending: false,
                });
            }
            (Action::Open | Action::Toggle, Some(TreeRow::Section(name, _, _))) => {
                self.toggle(name);
            }
            (Action::Back, _) if self.filter.clear() => self.clamp(view),
            (Action::Toggle, Some(TreeRow::Key(i))) => {
                // Folding from a key folds its section and selects the section's row.
                let name = section(&view.entries[i].key).0.to_string();
                self.toggle(&name);
                self.selected = self
                    .rows(view)
                    .iter()
                    .position(|r| matches!(r, TreeRow::Section(n, _, _) if *n == name))
                    .unwrap_or(0);
            }
            _ => {}
        }
    }

    fn toggle(&mut self, name: &str) {
        if !self.folded.remove(name) {
            self.folded.insert(name.to_string());
        }
    }

    pub fn clamp(&mut self, view: &ConfigView) {
        self.selected = self.selected.min(self.rows(view).len().saturating_sub(1));
    }

    pub fn selected_key<'a>(&self, view: &'a ConfigView) -> Option<&'a str> {
        match self.rows(view).get(self.selected) {
            Some(TreeRow::Key(i)) => Some(view.entries[*i].key.as_str()),
            _ => None,
        }
    }

    pub fn on_edit_key(&mut self, key: KeyEvent) -> EditKey {
        let Some(ed) = self.editing.as_mut() else {
            return EditKey::Cancelled;
        };
        match key.code {
            KeyCode::Esc => {
                self.editing = None;
                EditKey::Cancelled
            }
            KeyCode::Enter if !ed.pending => {
                ed.pending = true;
                EditKey::Submit {
                    key: ed.key.clone(),
                    value: ed.text.value().trim().to_string(),
                }
            }
            _ => {
                if ed.text.on_key(key) {
                    ed.error = None;
                }
                EditKey::Edited
            }
        }
    }

    /// The answer to a submitted edit: accepted closes the editor, refused keeps it open with
    /// the reason under the value.
    pub fn on_answer(&mut self, key: &str, result: Result<String, String>) -> Option<String> {
        let ed = self.editing.as_mut().filter(|e| e.key == key)?;
        ed.pending = false;
        match result {
            Ok(text) => {
                self.editing = None;
                Some(text)
            }
            Err(e) => {
                ed.error = Some(e);
                None
            }
        }
    }
}

impl TabView for ConfigTab {
    fn on_action(&mut self, action: &Action, cx: &Cx) -> Outcome {
        let view = &cx.snap.config;
        match action {
            Action::Undo => Outcome::Ask(Request::ConfigUndo),
            Action::SwitchEnv => Outcome::Prompt(Prompt::new(PromptFor::Environment, cx.env)),
            Action::Unset => match self.selected_key(view) {
                Some(key) => Outcome::Ask(Request::ConfigSet {
                    key: key.to_string(),
                    value: None,
                }),
                None => Outcome::Done,
            },
            Action::Search => filter_prompt(&self.filter),
            Action::Up | Action::Down | Action::Open | Action::Toggle | Action::Back => {
                self.step(action, view);
                Outcome::Done
            }
            _ => Outcome::Ignored,
        }
    }

    fn render(&self, frame: &mut Frame, area: Rect, cx: &Cx, theme: &Theme) {
        let bound = bound_ports(cx.snap);
        render(frame, area, self, &cx.snap.config, &bound, theme);
    }

    fn clamp(&mut self, snap: &ClusterSnapshot) {
        ConfigTab::clamp(self, &snap.config);
    }

    fn cursor(&self) -> [usize; 3] {
        [self.selected, 0, 0]
    }

    fn row_at(&mut self, column: u16, row: u16) -> Option<(usize, usize)> {
        Some((self.selected, self.drawn.row_at(column, row)?))
    }

    fn on_prompt(&mut self, purpose: PromptFor, text: String, cx: &Cx) -> Outcome {
        if purpose != PromptFor::ListFilter {
            return Outcome::Ignored;
        }
        self.filter.set(text);
        self.selected = 0;
        ConfigTab::clamp(self, &cx.snap.config);
        Outcome::Done
    }
}

/// The port each `ports.*` key's listener is bound to, from the endpoints and the first
/// instance of each sample service: with `--ports auto` they are not the configured ones.
pub fn bound_ports(snap: &ClusterSnapshot) -> Vec<(String, u16)> {
    let port_of = |url: &str| url.rsplit(':').next()?.trim_end_matches('/').parse().ok();
    let mut out: Vec<(String, u16)> = snap
        .endpoints
        .iter()
        .filter_map(|e| {
            Some((
                format!("ports.{}", e.name.replace('-', "_")),
                port_of(&e.url)?,
            ))
        })
        .collect();
    for (key, first) in [
        ("ports.user_service", "user-service-1"),
        ("ports.user_service_grpc", "user-service-1-grpc"),
        ("ports.order_service", "order-service-1"),
    ] {
        if let Some(i) = snap.instances.iter().find(|i| i.view.id == first) {
            out.push((key.to_string(), i.view.port));
        }
    }
    out
}

/// A key's value as the table shows it, and for a port taken elsewhere (`--ports auto`) what
/// is really listening (` → bound 38512`).
fn value_text(
    e: &devcluster::config::center::Entry,
    bound: &[(String, u16)],
) -> (String, Option<String>) {
    match bound.iter().find(|(k, _)| *k == e.key) {
        Some((_, port)) if e.value != port.to_string() => {
            (clip(&e.value, 20), Some(format!(" → bound {port}")))
        }
        _ => (clip(&e.value, 40), None),
    }
}

pub fn render(
    frame: &mut Frame,
    area: Rect,
    tab: &ConfigTab,
    view: &ConfigView,
    bound: &[(String, u16)],
    theme: &Theme,
) {
    if view.entries.is_empty() {
        let notice = Notice::new([
            "No config to show.",
            "",
            "A cluster shows its live config here: every key, its value and where it comes from.",
        ])
        .title("Config")
        .theme(*theme);
        frame.render_widget(&notice, area);
        return;
    }
    let area = match &view.file_error {
        Some(e) => {
            // As many rows as the reason takes (the key, the value, what was expected): whole.
            let rows = crate::dashboard::render::wrapped_lines(
                e,
                usize::from(area.width.saturating_sub(2)),
            )
            .clamp(1, 4) as u16;
            let [banner, rest] =
                Layout::vertical([Constraint::Length(rows + 2), Constraint::Fill(1)]).areas(area);
            frame.render_widget(
                Paragraph::new(Line::styled(e.as_str(), theme.critical))
                    .wrap(Wrap { trim: true })
                    .block(
                        Block::bordered()
                            .title(Line::styled(
                                " The config file's last edit was refused ",
                                theme.critical,
                            ))
                            .border_style(theme.critical),
                    ),
                banner,
            );
            rest
        }
        None => area,
    };
    // Side by side when there is room; on a narrow terminal the history goes under the keys,
    // so the keys keep the whole width.
    let [keys, history] = if area.width >= 110 {
        Layout::horizontal([Constraint::Percentage(62), Constraint::Percentage(38)]).areas(area)
    } else {
        Layout::vertical([Constraint::Fill(1), Constraint::Length(8)]).areas(area)
    };
    let tree = tab.rows(view);
    // A key's name is never cut; the origin column goes first, then values are cut.
    let name_w = widest(
        tree.iter().map(|r| match r {
            TreeRow::Key(i) => section(&view.entries[*i].key).1,
            TreeRow::Section(name, ..) => name,
        }),
        3,
    );
    // A value is a number or a name: as wide as the widest shown (up to 30), cut only when
    // even the origin column's going leaves no room.
    let value_w = tree
        .iter()
        .filter_map(|r| match r {
            TreeRow::Key(i) => {
                let (value, bound) = value_text(&view.entries[*i], bound);
                Some(value.chars().count() + bound.map_or(0, |b| b.chars().count()))
            }
            TreeRow::Section(..) => None,
        })
        .max()
        .unwrap_or(0)
        .clamp(12, 30) as u16;
    // Keys sit under their section's name, indented by 4; where the longest key and its value
    // would not fit side by side, by 2.
    let indent = if name_w + 4 + 1 + value_w > keys.width.saturating_sub(2) {
        2
    } else {
        4
    };
    let key_w = name_w + indent;
    // The value is never dropped: where even the room left by the key is short of the widest
    // value, long values are cut (a port or a number still fits in what is left).
    let room = keys.width.saturating_sub(2).saturating_sub(key_w + 1);
    let widths = fit(
        &[
            Column::keep(key_w),
            Column::fill(value_w.min(room).max(8), 0),
            Column::drop(
                widest(view.entries.iter().map(|e| e.origin.as_str()), 4).min(36),
                2,
            ),
        ],
        keys.width.saturating_sub(2),
        1,
    );
    let rows = tree.into_iter().map(|r| match r {
        TreeRow::Section(name, n, folded) => Row::new(shown(
            [
                Cell::from({
                    let mut line = tab.filter.mark(name, theme.title, theme);
                    let fold = if folded { "▸ " } else { "▾ " };
                    line.spans.insert(0, Span::styled(fold, theme.title));
                    line
                }),
                Cell::from(Span::styled(
                    match (folded, n) {
                        (false, _) => String::new(),
                        (true, 1) => "1 key".into(),
                        (true, n) => format!("{n} keys"),
                    },
                    theme.dim,
                )),
                Cell::from(""),
            ],
            &widths,
        )),
        TreeRow::Key(i) => {
            let e = &view.entries[i];
            let origin_style = if e.origin == "defaults" {
                theme.dim
            } else {
                theme.warning
            };
            let value = match value_text(e, bound) {
                (value, Some(b)) => {
                    Line::from(vec![Span::raw(value), Span::styled(b, theme.warning)])
                }
                (value, None) => Line::from(value),
            };
            Row::new(shown(
                [
                    Cell::from({
                        let mut line = tab.filter.mark(section(&e.key).1, theme.text, theme);
                        line.spans
                            .insert(0, Span::raw(" ".repeat(usize::from(indent))));
                        line
                    }),
                    Cell::from(value),
                    Cell::from(Span::styled(e.origin.as_str(), origin_style)),
                ],
                &widths,
            ))
        }
    });
    let table = Table::new(rows, constraints(&widths))
        .header(Row::new(shown(["KEY", "VALUE", "FROM"], &widths)).style(theme.title))
    .row_highlight_style(theme.selected)
    .block(
        Block::bordered()
            .title(Line::styled(
                match tab.filter.text() {
                    None => format!(
                        " Config v{} · Enter edits · space folds · d back to the file's value · u undo ",
                        view.version
                    ),
                    Some(_) => {
                        let kept = tab.rows(view).iter().filter(|r| matches!(r, TreeRow::Key(_))).count();
                        tab.filter
                            .title(&format!("Config v{} · keys", view.version), kept, view.entries.len())
                    }
                },
                theme.title,
            ))
            .border_style(theme.border_focused),
    );
    let mut state = TableState::default().with_selected(Some(tab.selected));
    frame.render_stateful_widget(table, keys, &mut state);
    tab.drawn.set(keys, 1, state.offset());

    let history = if view.running.is_empty() {
        history
    } else {
        let rows = view.running.len().min(8) as u16 + 2;
        let [history, running] =
            Layout::vertical([Constraint::Fill(1), Constraint::Length(rows)]).areas(history);
        let lines: Vec<Line> = view
            .running
            .iter()
            .map(|(id, &v)| {
                let style = if v == view.version {
                    theme.passing
                } else {
                    theme.warning
                };
                Line::from(vec![
                    Span::raw(format!("{id:<20}")),
                    Span::styled(format!("v{v}"), style),
                ])
            })
            .collect();
        frame.render_widget(
            Paragraph::new(lines).block(
                Block::bordered()
                    .title(Line::styled(
                        " Running under (each server's last request) ",
                        theme.title,
                    ))
                    .border_style(theme.border),
            ),
            running,
        );
        history
    };
    let items: Vec<ListItem> = view
        .history
        .iter()
        .rev()
        .map(|c| ListItem::new(change_lines(c, theme)))
        .collect();
    let list = List::new(items).block(
        Block::bordered()
            .title(Line::styled(" History (newest first) ", theme.title))
            .border_style(theme.border),
    );
    if view.history.is_empty() {
        frame.render_widget(
            Paragraph::new("No change since the start.")
                .style(theme.dim)
                .block(
                    Block::bordered()
                        .title(Line::styled(" History ", theme.title))
                        .border_style(theme.border),
                ),
            history,
        );
    } else {
        frame.render_widget(list, history);
    }

    if let Some(ed) = &tab.editing {
        render_editor(frame, keys, ed, theme);
    }
    if let Some(p) = &tab.env_preview {
        render_env_preview(frame, area, p, view, theme);
    }
}

/// The diff an environment switch would bring, over the tab, until `y` or another key.
fn render_env_preview(
    frame: &mut Frame,
    area: Rect,
    p: &EnvPreview,
    view: &ConfigView,
    theme: &Theme,
) {
    let mut lines: Vec<Line> = p
        .changes
        .iter()
        .map(|c| {
            Line::from(vec![
                Span::raw(format!("{:<44}", c.key)),
                Span::styled(clip(c.old_text(), 20), theme.critical),
                Span::raw(" → "),
                Span::styled(clip(c.new_text(), 20), theme.passing),
            ])
        })
        .collect();
    if lines.is_empty() {
        lines.push(Line::styled("No key would change.", theme.dim));
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled(
        "y switches · any other key cancels",
        theme.key,
    ));
    let height = (lines.len() as u16 + 2).min(area.height);
    let width = 96.min(area.width);
    let rect = Rect::new(
        area.x + (area.width - width) / 2,
        area.y + (area.height - height) / 2,
        width,
        height,
    );
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::bordered()
                .title(Line::styled(
                    format!(" Switch environment {} → {} ", view.env, p.name),
                    theme.title,
                ))
                .border_style(theme.border_focused),
        ),
        rect,
    );
}

fn change_lines<'a>(c: &'a Change, theme: &Theme) -> Vec<Line<'a>> {
    vec![
        Line::from(vec![
            Span::styled(format!("v{} ", c.version), theme.title),
            Span::styled(
                // HH:MM:SS (the milliseconds of `clock` left off).
                format!("{} {} ", &clock(c.at_unix_ms)[..8], c.who),
                theme.dim,
            ),
            Span::raw(c.key.as_str()),
        ]),
        Line::from(vec![
            Span::raw("   "),
            Span::styled(clip(c.old_text(), 24), theme.critical),
            Span::raw(" → "),
            Span::styled(clip(c.new_text(), 24), theme.passing),
            Span::styled(
                format!("  in {:.2} ms", c.applied_in_us as f64 / 1000.0),
                theme.dim,
            ),
        ]),
    ]
}

/// The editor: a box over the bottom of the key list with the value and, when refused, why.
fn render_editor(frame: &mut Frame, area: Rect, ed: &Editor, theme: &Theme) {
    let height = if ed.error.is_some() { 6 } else { 4 };
    if area.height < height + 2 {
        return;
    }
    let rect = Rect::new(
        area.x + 1,
        area.y + area.height - height - 1,
        area.width.saturating_sub(2),
        height,
    );
    let prefix = format!("{} = ", ed.key);
    let prefix_w = prefix.chars().count() as u16;
    let (text, cursor) = ed
        .text
        .visible(rect.width.saturating_sub(2 + prefix_w), theme.text);
    let mut lines = vec![
        Line::from(vec![Span::styled(prefix, theme.key), text]),
        Line::styled(
            if ed.pending {
                "checking…"
            } else {
                "Enter applies (a TOML value or a bare word) · Esc cancels"
            },
            theme.dim,
        ),
    ];
    if let Some(e) = &ed.error {
        lines.push(Line::styled(e.as_str(), theme.critical));
    }
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: false }).block(
            Block::bordered()
                .title(Line::styled(" Edit ", theme.title))
                .border_style(theme.border_focused),
        ),
        rect,
    );
    if !ed.pending {
        let x = (rect.x + 1 + prefix_w + cursor).min(rect.right().saturating_sub(2));
        frame.set_cursor_position((x, rect.y + 1));
    }
}

/// At most `max` characters, with an ellipsis when cut.
pub fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        s.chars().take(max - 1).chain(['…']).collect()
    }
}
