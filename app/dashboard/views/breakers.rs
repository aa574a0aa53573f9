//! The Breakers tab: every `CALLER->TARGET` breaker with state, mode, failure and slow-call
//! rates in its window, calls, rejections and time in state; the selected one's settings and
//! last transitions below. `o` / `c` / `a` force it open, closed or back to auto; space cycles.

use crate::dashboard::action::Action;
use crate::dashboard::app::Command;
use crate::dashboard::tabs::{Cx, Outcome, Pivot, TabView, filter_prompt};
use crate::dashboard::views::balancer::clock;
use crate::dashboard::views::filter::ListFilter;
use crate::dashboard::views::prompt::PromptFor;
use crate::dashboard::views::rows::Drawn;
use crate::dashboard::views::traces::filter_text;
use devcluster::breaker::WindowSize;
use devcluster::breaker::{BreakerSnapshot, Mode, State};
use devcluster::handle::ClusterSnapshot;
use devcluster::telemetry::TraceFilter;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table, TableState, Wrap};
use widgets::columns::{Column, constraints, fit, shown, widest};
use widgets::{BreakerBadge, BreakerLight, Notice, Theme};

#[derive(Debug, Default)]
pub struct BreakersView {
    /// The row selected among those the filter keeps.
    pub selected: usize,
    pub filter: ListFilter,
    pub drawn: Drawn,
}

impl BreakersView {
    pub fn clamp(&mut self, snap: &ClusterSnapshot) {
        self.selected = self.selected.min(self.shown(snap).len().saturating_sub(1));
    }

    /// The breakers the filter keeps (by name).
    pub fn shown<'a>(&self, snap: &'a ClusterSnapshot) -> Vec<&'a BreakerSnapshot> {
        snap.breakers
            .iter()
            .filter(|b| self.filter.keeps([b.name.as_str()]))
            .collect()
    }

    /// j/k, Enter and Esc within the lists.
    fn step(&mut self, action: &Action, snap: &ClusterSnapshot) {
        match action {
            Action::Down if self.selected + 1 < self.shown(snap).len() => self.selected += 1,
            Action::Up => self.selected = self.selected.saturating_sub(1),
            Action::Back if self.filter.clear() => self.clamp(snap),
            _ => {}
        }
    }

    pub fn selected_breaker<'a>(&self, snap: &'a ClusterSnapshot) -> Option<&'a BreakerSnapshot> {
        self.shown(snap).get(self.selected).copied()
    }
}

impl TabView for BreakersView {
    fn on_action(&mut self, action: &Action, cx: &Cx) -> Outcome {
        let snap = cx.snap;
        match action {
            Action::Up | Action::Down | Action::Back => {
                self.step(action, snap);
                Outcome::Done
            }
            Action::Open => match self.selected_breaker(snap) {
                Some(b) => Outcome::Show(tripped_by(b)),
                None => Outcome::Done,
            },
            Action::ForceOpen | Action::ForceClosed | Action::BreakerAuto | Action::Toggle => {
                let Some(b) = self.selected_breaker(snap) else {
                    return Outcome::Done;
                };
                let mode = match action {
                    Action::ForceOpen => Mode::ForcedOpen,
                    Action::ForceClosed => Mode::ForcedClosed,
                    Action::BreakerAuto => Mode::Auto,
                    _ => b.mode.next(),
                };
                Outcome::Send(Command::BreakerMode {
                    name: b.name.clone(),
                    mode,
                })
            }
            Action::Search => filter_prompt(&self.filter),
            _ => Outcome::Ignored,
        }
    }

    fn render(&self, frame: &mut Frame, area: Rect, cx: &Cx, theme: &Theme) {
        render(frame, area, self, cx.snap, theme);
    }

    fn clamp(&mut self, snap: &ClusterSnapshot) {
        BreakersView::clamp(self, snap);
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
        BreakersView::clamp(self, cx.snap);
        Outcome::Done
    }
}

/// A pivot from a breaker to the failed traces through its target: those of its window before
/// it last tripped open from closed, or (it never opened) every recent one.
fn tripped_by(b: &BreakerSnapshot) -> Pivot {
    let (caller, target) = b.name.split_once("->").unwrap_or(("", &b.name));
    let mut filter = TraceFilter {
        service: Some(target.to_string()),
        errors_only: true,
        ..Default::default()
    };
    // The trip from closed, not a half-open probe's re-opening: the calls that tripped it are
    // in the window before that one.
    let trip = b
        .transitions
        .iter()
        .rev()
        .find(|t| t.to == State::Open && t.from == State::Closed)
        .or_else(|| b.transitions.iter().rev().find(|t| t.to == State::Open));
    let why = match trip {
        Some(t) => {
            let window_ms = match b.settings.window {
                WindowSize::Time(d) => d.as_millis() as u64,
                // A window of calls has no length in time: the default time window's.
                WindowSize::Calls(_) => 10_000,
            };
            filter.since_unix_ms = Some(t.at_unix_ms.saturating_sub(window_ms));
            filter.until_unix_ms = Some(t.at_unix_ms);
            format!(
                "failed traces through {target} in the {}s before {} opened at {}",
                window_ms as f64 / 1000.0,
                b.name,
                clock(t.at_unix_ms)
            )
        }
        None => format!(
            "failed traces through {target} (the breaker {caller}->{target} counts them; it has not opened)"
        ),
    };
    Pivot::Traces {
        text: filter_text(&filter),
        filter,
        why: Some(why),
    }
}

pub fn badge(b: &BreakerSnapshot) -> BreakerBadge {
    BreakerBadge {
        light: match b.state {
            State::Closed => BreakerLight::Closed,
            State::HalfOpen => BreakerLight::HalfOpen,
            State::Open => BreakerLight::Open,
        },
        forced: b.mode != Mode::Auto,
    }
}

/// "850ms", "12.3s", "4m05s".
pub fn span_of(ms: u64) -> String {
    match ms {
        0..1000 => format!("{ms}ms"),
        1000..60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        _ => format!("{}m{:02}s", ms / 60_000, ms / 1000 % 60),
    }
}

pub fn render(
    frame: &mut Frame,
    area: Rect,
    view: &BreakersView,
    snap: &ClusterSnapshot,
    theme: &Theme,
) {
    if snap.breakers.is_empty() {
        let notice = Notice::new([
            "No circuit breaker yet.",
            "",
            "Each CALLER->TARGET pair gets one on its first call.",
        ])
        .title("Breakers")
        .theme(*theme);
        frame.render_widget(&notice, area);
        return;
    }
    // On a wide terminal the selected breaker's settings and transitions go beside the table.
    let [table_area, detail_area] = if area.width >= super::services::WIDE {
        Layout::horizontal([Constraint::Fill(1), Constraint::Length(72)]).areas(area)
    } else {
        Layout::vertical([Constraint::Fill(1), Constraint::Length(10)]).areas(area)
    };
    let breakers = view.shown(snap);
    // The breaker's whole name and its state stay; the rest go as the width asks, probes and
    // the time in state first, the failure rate last.
    let widths = fit(
        &[
            Column::keep(widest(breakers.iter().map(|b| b.name.as_str()), 7)),
            Column::keep(11),
            Column::drop(13, 3),
            Column::drop(5, 1),
            Column::drop(5, 2),
            Column::drop(7, 4),
            Column::drop(8, 6),
            Column::drop(8, 5),
            Column::drop(8, 7),
            Column::drop(6, 8),
        ],
        table_area.width.saturating_sub(2),
        1,
    );
    let rows = breakers.iter().map(|b| {
        let rate_style = |rate: f64, threshold: u32| {
            if rate >= f64::from(threshold) {
                theme.critical
            } else if rate > 0.0 {
                theme.warning
            } else {
                theme.text
            }
        };
        let s = &b.settings;
        // Open or half-open after tripping, the window was cleared: the figures it tripped
        // on say why, marked ↯.
        let tripped = b.tripped.filter(|_| b.state != State::Closed);
        let (failure_rate, slow_rate) = tripped.map_or((b.failure_rate, b.slow_rate), |t| {
            (t.failure_rate, t.slow_rate)
        });
        let mark = if tripped.is_some() { "↯" } else { "" };
        let window = match tripped {
            Some(t) => format!("{}↯", t.calls),
            None => format!("{}/{}", b.calls_in_window, s.window),
        };
        Row::new(shown(
            [
                Cell::from(view.filter.mark(&b.name, theme.text, theme)),
                Cell::from(badge(b).span(theme)),
                Cell::from(Span::styled(
                    b.mode.as_str(),
                    if b.mode == Mode::Auto {
                        theme.dim
                    } else {
                        theme.warning
                    },
                )),
                Cell::from(
                    Line::from(Span::styled(
                        format!("{failure_rate:.0}%{mark}"),
                        rate_style(failure_rate, s.failure_rate_threshold),
                    ))
                    .right_aligned(),
                ),
                Cell::from(
                    Line::from(Span::styled(
                        format!("{slow_rate:.0}%{mark}"),
                        rate_style(slow_rate, s.slow_call_rate_threshold),
                    ))
                    .right_aligned(),
                ),
                Cell::from(Line::from(window).right_aligned()),
                Cell::from(Line::from(b.total_calls.to_string()).right_aligned()),
                Cell::from(Line::from(b.rejected.to_string()).right_aligned()),
                Cell::from(Line::from(span_of(b.in_state_ms)).right_aligned()),
                Cell::from(
                    Line::from(format!("{}/{}", b.probes_in_flight, s.half_open_probes))
                        .right_aligned(),
                ),
            ],
            &widths,
        ))
    });
    let table = Table::new(rows, constraints(&widths))
        .header(
            Row::new(shown(
                [
                    "BREAKER", "STATE", "MODE", "FAIL%", "SLOW%", "WINDOW", "CALLS", "REJECTED",
                    "IN STATE", "PROBES",
                ],
                &widths,
            ))
            .style(theme.title),
        )
        .row_highlight_style(theme.selected)
        .block(
            Block::bordered()
                .title(Line::styled(
                    view.filter
                        .title("Circuit breakers", breakers.len(), snap.breakers.len()),
                    theme.title,
                ))
                .border_style(theme.border_focused),
        );
    let mut state = TableState::default().with_selected(Some(view.selected));
    frame.render_stateful_widget(table, table_area, &mut state);
    view.drawn.set(table_area, 1, state.offset());

    if let Some(b) = view.selected_breaker(snap) {
        frame.render_widget(details(b, theme), detail_area);
    }
}

fn details<'a>(b: &'a BreakerSnapshot, theme: &Theme) -> Paragraph<'a> {
    let s = &b.settings;
    let mut lines = vec![Line::from(vec![
        Span::styled("settings  ", theme.dim),
        Span::raw(format!(
            "opens at {}% failures or {}% slower than {}ms, over {} (at least {} calls); \
             open {}; {} probe(s) half-open",
            s.failure_rate_threshold,
            s.slow_call_rate_threshold,
            s.slow_call_ms,
            s.window.describe(),
            s.minimum_calls,
            span_of(s.open_for_ms),
            s.half_open_probes
        )),
    ])];
    if let Some(t) = b.tripped.filter(|_| b.state != State::Closed) {
        lines.push(Line::from(vec![
            Span::styled("tripped   ", theme.dim),
            Span::styled(
                format!(
                    "at {:.0}% failures and {:.0}% slow calls over {} calls (↯ in the row above)",
                    t.failure_rate, t.slow_rate, t.calls
                ),
                theme.critical,
            ),
        ]));
    }
    if b.transitions.is_empty() {
        lines.push(Line::styled("no transitions yet", theme.dim));
    }
    for t in b.transitions.iter().rev() {
        lines.push(Line::from(vec![
            Span::styled(format!("{}  ", clock(t.at_unix_ms)), theme.dim),
            Span::raw(format!("{:<9} → {:<9}  ", t.from.as_str(), t.to.as_str())),
            Span::styled(t.reason.as_str(), theme.dim),
        ]));
    }
    Paragraph::new(lines).wrap(Wrap { trim: false }).block(
        Block::bordered()
            .title(Line::styled(
                format!(" {} · last transitions ", b.name),
                theme.title,
            ))
            .border_style(theme.border),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(span_of(850), "850ms");
        assert_eq!(span_of(12_345), "12.3s");
        assert_eq!(span_of(245_000), "4m05s");
    }
}
