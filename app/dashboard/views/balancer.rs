//! The Balancer tab: per target service its strategy, each instance's share of picks as bars,
//! and a live stream of picks with the candidate set and why one was chosen. `s` / `S` change
//! the strategy, `+` / `-` the selected instance's weight.

use crate::dashboard::action::Action;
use crate::dashboard::app::Command;
use crate::dashboard::tabs::{Cx, Outcome, Pivot, TabView, filter_prompt};
use crate::dashboard::views::filter::ListFilter;
use crate::dashboard::views::prompt::PromptFor;
use crate::dashboard::views::rows::Drawn;
use devcluster::balance::Strategy;
use devcluster::balance::record::PickRecord;
use devcluster::balance::service::BalancerSnapshot;
use devcluster::handle::{ClusterSnapshot, InstanceSnapshot};
use devcluster::registry::Health;
use devcluster::telemetry::TraceId;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, List, ListItem, ListState, Row, Table, TableState};
use widgets::columns::{Column, constraints, fit, shown, widest};
use widgets::{DistributionBars, Notice, ShareKind, ShareRow, Theme};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Focus {
    #[default]
    Targets,
    Instances,
    /// The recent picks: Enter opens the selected one's trace.
    Picks,
}

#[derive(Debug, Default)]
pub struct BalancerView {
    pub target: usize,
    pub instance: usize,
    pub focus: Focus,
    /// The pick selected in the recent picks (by its sequence number: new picks arrive above
    /// it without moving the selection to another pick).
    pub pick: Option<u64>,
    /// The picks as they were when the cursor moved into them: they stand still while the user
    /// reads them (a busy balancer replaces its recent picks within seconds); newer ones are
    /// counted in the title and shown from the top (k there).
    pub held: Option<Vec<PickRecord>>,
    /// Keeps the picks whose caller, chosen instance, reason or trace id holds its text.
    pub filter: ListFilter,
    pub drawn_targets: Drawn,
}

/// The instances a balancer chooses among (its service's registered instances), by id.
fn instances_of<'a>(snap: &'a ClusterSnapshot, target: &str) -> Vec<&'a InstanceSnapshot> {
    let mut v: Vec<_> = snap
        .instances
        .iter()
        .filter(|i| i.view.service == target)
        .collect();
    v.sort_by(|a, b| a.view.id.cmp(&b.view.id));
    v
}

impl BalancerView {
    pub fn selected_balancer<'a>(&self, snap: &'a ClusterSnapshot) -> Option<&'a BalancerSnapshot> {
        snap.balancers.get(self.target)
    }

    pub fn selected_instance<'a>(&self, snap: &'a ClusterSnapshot) -> Option<&'a InstanceSnapshot> {
        if self.focus != Focus::Instances {
            return None;
        }
        let b = self.selected_balancer(snap)?;
        instances_of(snap, &b.target).get(self.instance).copied()
    }

    /// The recent picks of `b` (held while the cursor is in them) the filter keeps, newest
    /// first.
    pub fn picks<'a>(&'a self, b: &'a BalancerSnapshot) -> Vec<&'a PickRecord> {
        let list = match (&self.held, self.focus) {
            (Some(held), Focus::Picks) => held.as_slice(),
            _ => b.recent.as_slice(),
        };
        list.iter()
            .rev()
            .filter(|p| {
                self.filter.keeps([
                    p.caller.as_str(),
                    p.chosen.as_str(),
                    p.reason.as_str(),
                    p.trace_id.as_deref().unwrap_or_default(),
                ])
            })
            .collect()
    }

    /// Where the selected pick is among `picks`; aged out of the list, the oldest shown.
    fn pick_index(&self, picks: &[&PickRecord]) -> usize {
        self.pick
            .and_then(|seq| picks.iter().position(|p| p.seq == seq))
            .unwrap_or(picks.len().saturating_sub(1))
    }

    /// Picks newer than those held (0 when none are held).
    pub fn new_picks(&self, b: &BalancerSnapshot) -> usize {
        let Some(newest) = self
            .held
            .as_ref()
            .filter(|_| self.focus == Focus::Picks)
            .and_then(|h| h.iter().map(|p| p.seq).max())
        else {
            return 0;
        };
        b.recent.iter().filter(|p| p.seq > newest).count()
    }

    /// The selected pick, while the picks have the focus.
    pub fn selected_pick<'a>(&'a self, snap: &'a ClusterSnapshot) -> Option<&'a PickRecord> {
        if self.focus != Focus::Picks {
            return None;
        }
        let picks = self.picks(self.selected_balancer(snap)?);
        picks.get(self.pick_index(&picks)).copied()
    }

    pub fn clamp(&mut self, snap: &ClusterSnapshot) {
        self.target = self.target.min(snap.balancers.len().saturating_sub(1));
        let n = self
            .selected_balancer(snap)
            .map_or(0, |b| instances_of(snap, &b.target).len());
        self.instance = self.instance.min(n.saturating_sub(1));
    }

    /// j/k, Enter and Esc within the lists.
    fn step(&mut self, action: &Action, snap: &ClusterSnapshot) {
        let n = self
            .selected_balancer(snap)
            .map_or(0, |b| instances_of(snap, &b.target).len());
        match (action, self.focus) {
            (Action::Down, Focus::Targets) if self.target + 1 < snap.balancers.len() => {
                self.target += 1;
                self.instance = 0;
            }
            (Action::Up, Focus::Targets) if self.target > 0 => {
                self.target -= 1;
                self.instance = 0;
            }
            (Action::Down, Focus::Instances) if self.instance + 1 < n => self.instance += 1,
            (Action::Up, Focus::Instances) => self.instance = self.instance.saturating_sub(1),
            (Action::Open, Focus::Targets) => self.focus = Focus::Instances,
            (Action::Open, Focus::Instances) => {
                self.focus = Focus::Picks;
                self.held = self.selected_balancer(snap).map(|b| b.recent.clone());
                self.pick = self
                    .selected_balancer(snap)
                    .and_then(|b| self.picks(b).first().map(|p| p.seq));
            }
            (Action::Up | Action::Down, Focus::Picks) => {
                let Some(b) = self.selected_balancer(snap) else {
                    return;
                };
                let picks = self.picks(b);
                let at = self.pick_index(&picks);
                if *action == Action::Up && at == 0 {
                    // Up at the top: the newest picks again.
                    self.held = Some(b.recent.clone());
                    self.pick = self.picks(b).first().map(|p| p.seq);
                    return;
                }
                let to = if *action == Action::Down {
                    (at + 1).min(picks.len().saturating_sub(1))
                } else {
                    at - 1
                };
                self.pick = picks.get(to).map(|p| p.seq);
            }
            (Action::Back, Focus::Targets) if self.filter.clear() => {}
            (Action::Back, Focus::Picks) => {
                self.focus = Focus::Instances;
                self.held = None;
            }
            (Action::Back, _) => self.focus = Focus::Targets,
            _ => {}
        }
    }
}

impl TabView for BalancerView {
    fn on_action(&mut self, action: &Action, cx: &Cx) -> Outcome {
        let snap = cx.snap;
        match action {
            // A pivot: the selected pick's trace.
            Action::Open if self.focus == Focus::Picks => {
                match self.selected_pick(snap).map(|p| p.trace_id.as_deref()) {
                    Some(Some(id)) => match TraceId::parse(id) {
                        Some(id) => Outcome::Show(Pivot::Trace(id)),
                        None => Outcome::Toast(format!("{id}: not a trace id"), true),
                    },
                    Some(None) => Outcome::Toast("this pick has no trace".into(), true),
                    None => Outcome::Done,
                }
            }
            Action::Up | Action::Down | Action::Open | Action::Back => {
                self.step(action, snap);
                Outcome::Done
            }
            Action::NextStrategy | Action::PrevStrategy => match self.selected_balancer(snap) {
                Some(b) => Outcome::Send(Command::Strategy {
                    service: b.target.clone(),
                    strategy: cycle(b.strategy, *action == Action::NextStrategy),
                }),
                None => Outcome::Done,
            },
            Action::WeightUp | Action::WeightDown => {
                let Some(inst) = self.selected_instance(snap) else {
                    let text = "select an instance first (Enter, then j/k)";
                    return Outcome::Toast(text.into(), true);
                };
                let w = inst.view.weight;
                let weight = if *action == Action::WeightUp {
                    (w + 1).min(1000)
                } else {
                    w.saturating_sub(1)
                };
                Outcome::Send(Command::Weight {
                    id: inst.view.id.clone(),
                    weight,
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
        BalancerView::clamp(self, snap);
    }

    fn cursor(&self) -> [usize; 3] {
        // The pick's sequence number moves one way as the cursor goes down: steps stop when it
        // stops changing.
        let pick = self.pick.map_or(0, |seq| seq as usize);
        [self.target, self.instance, pick]
    }

    fn row_at(&mut self, column: u16, row: u16) -> Option<(usize, usize)> {
        let i = self.drawn_targets.row_at(column, row)?;
        self.focus = Focus::Targets;
        Some((self.target, i))
    }

    fn on_prompt(&mut self, purpose: PromptFor, text: String, _cx: &Cx) -> Outcome {
        if purpose != PromptFor::ListFilter {
            return Outcome::Ignored;
        }
        // It filters the picks shown, not the balancers: the cursor stays.
        self.filter.set(text);
        Outcome::Done
    }
}

/// The strategy after (or before) `s` in the fixed order, wrapping around.
pub fn cycle(s: Strategy, forward: bool) -> Strategy {
    let all = Strategy::ALL;
    let i = all.iter().position(|x| *x == s).unwrap_or(0);
    let n = all.len();
    all[if forward {
        (i + 1) % n
    } else {
        (i + n - 1) % n
    }]
}

/// Share rows for the bars: every registered instance, with its picks since the strategy was set.
pub fn share_rows(snap: &ClusterSnapshot, b: &BalancerSnapshot) -> Vec<ShareRow> {
    instances_of(snap, &b.target)
        .into_iter()
        .map(|i| {
            let load = b.loads.iter().find(|l| l.id == i.view.id);
            let ejected = load.and_then(|l| l.ejected_for_ms);
            let kind = if i.view.health != Health::Passing {
                ShareKind::Down
            } else if ejected.is_some() {
                ShareKind::Ejected
            } else {
                ShareKind::Normal
            };
            let mut note = format!("w={}", i.view.weight);
            if let Some(l) = load {
                note.push_str(&format!(
                    " in-flight {} ewma {:.1}ms",
                    l.in_flight, l.ewma_ms
                ));
            }
            match kind {
                ShareKind::Down => note.push_str(&format!(" {}", i.view.health)),
                ShareKind::Ejected => {
                    note.push_str(&format!(
                        " ejected {}s",
                        ejected.unwrap_or(0).div_ceil(1000)
                    ));
                }
                ShareKind::Normal => {}
            }
            ShareRow {
                label: i.view.id.clone(),
                count: b.counts.get(&i.view.id).copied().unwrap_or(0),
                note,
                kind,
            }
        })
        .collect()
}

/// "12:04:31.250" (UTC) from unix milliseconds.
pub fn clock(unix_ms: u64) -> String {
    let day_ms = unix_ms % 86_400_000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        day_ms / 3_600_000,
        day_ms / 60_000 % 60,
        day_ms / 1000 % 60,
        day_ms % 1000
    )
}

pub fn render(
    frame: &mut Frame,
    area: Rect,
    view: &BalancerView,
    snap: &ClusterSnapshot,
    theme: &Theme,
) {
    if snap.balancers.is_empty() {
        let notice = Notice::new([
            "No balancer yet.",
            "",
            "A balancer appears for each target service once something calls it",
            "(the gateway, order-service, or the traffic generator).",
        ])
        .title("Balancer")
        .theme(*theme);
        frame.render_widget(&notice, area);
        return;
    }
    let border = |f: Focus| {
        if view.focus == f {
            theme.border_focused
        } else {
            theme.border
        }
    };
    // As wide as the names and strategies need (up to 40): the picks beside it want the room.
    let name_w = widest(snap.balancers.iter().map(|b| b.target.as_str()), 8).min(24);
    let strategy_w = widest(snap.balancers.iter().map(|b| b.strategy.as_str()), 0);
    let pane = (name_w + 1 + strategy_w + 2).min(40);
    let [left, right] =
        Layout::horizontal([Constraint::Length(pane), Constraint::Fill(1)]).areas(area);
    let items: Vec<ListItem> = snap
        .balancers
        .iter()
        .map(|b| {
            ListItem::new(Line::from(vec![
                Span::raw(format!("{:<w$} ", b.target, w = usize::from(name_w))),
                Span::styled(b.strategy.as_str(), theme.key),
            ]))
        })
        .collect();
    let mut state = ListState::default().with_selected(Some(view.target));
    frame.render_stateful_widget(
        List::new(items)
            .block(
                Block::bordered()
                    .title(Line::styled(" Targets ", theme.title))
                    .border_style(border(Focus::Targets)),
            )
            .highlight_style(theme.selected),
        left,
        &mut state,
    );
    view.drawn_targets.set(left, 0, state.offset());

    let Some(b) = view.selected_balancer(snap) else {
        return;
    };
    let rows = share_rows(snap, b);
    let bars_height = rows.len() as u16 + 2;
    let [bars_area, picks_area] =
        Layout::vertical([Constraint::Length(bars_height), Constraint::Fill(1)]).areas(right);
    let total: u64 = rows.iter().map(|r| r.count).sum();
    // Narrow, the count without its explanation rather than a sentence cut mid-word.
    let head = format!(" {} · {} · ", b.target, b.strategy.as_str());
    let long = format!("{total} picks since the strategy was set ");
    let picks = if head.chars().count() + long.chars().count() + 2 <= usize::from(bars_area.width) {
        long
    } else {
        format!("{total} picks ")
    };
    let title = Line::from(vec![
        Span::styled(format!(" {} · ", b.target), theme.title),
        Span::styled(b.strategy.as_str(), theme.key),
        Span::styled(" · ", theme.title),
        Span::styled(picks, theme.dim),
    ]);
    let selected = (view.focus == Focus::Instances).then_some(view.instance);
    let bars = DistributionBars::new(&rows)
        .selected(selected)
        .theme(*theme)
        .block(
            Block::bordered()
                .title(title)
                .border_style(border(Focus::Instances)),
        );
    frame.render_widget(&bars, bars_area);

    // The chosen instance is never cut; the trace, the caller and why go before it.
    let chosen_w = widest(b.recent.iter().map(|p| p.chosen.as_str()), 6);
    let caller_w = widest(b.recent.iter().map(|p| p.caller.as_str()), 6);
    let widths = fit(
        &[
            Column::drop(12, 3),
            Column::drop(caller_w, 4),
            Column::keep(chosen_w),
            Column::drop(5, 2),
            Column::drop(7, 1),
            Column::fill(8, 5),
            Column::drop(8, 6),
        ],
        picks_area.width.saturating_sub(2),
        1,
    );
    // Newest first: the stream reads top-down like a log being written.
    let kept = view.picks(b);
    let hint = if view.focus == Focus::Picks {
        "Recent picks · Enter opens its trace"
    } else {
        "Recent picks (newest first)"
    };
    let title = view.filter.title(hint, kept.len(), b.recent.len())
        + &match view.new_picks(b) {
            0 => String::new(),
            n => format!("· {n} new (k at the top) "),
        };
    let picks = kept.iter().map(|p| {
        let eligible = p.candidates.iter().filter(|c| c.eligible).count();
        // A record of a very large service keeps only some candidates: then show the total.
        let cand = if p.candidates_total > p.candidates.len() {
            p.candidates_total.to_string()
        } else {
            format!("{eligible}/{}", p.candidates.len())
        };
        let f = &view.filter;
        Row::new(shown(
            [
                Line::styled(clock(p.at_unix_ms), theme.dim),
                f.mark(&p.caller, theme.text, theme),
                f.mark(&p.chosen, theme.passing, theme),
                Line::raw(cand),
                Line::raw(if p.attempt > 1 {
                    format!("retry {}", p.attempt)
                } else {
                    String::new()
                }),
                f.mark(&p.reason, theme.text, theme),
                f.mark(
                    p.trace_id
                        .as_deref()
                        .map_or("", |t| t.get(..8).unwrap_or(t)),
                    theme.dim,
                    theme,
                ),
            ],
            &widths,
        ))
    });
    let header = ["TIME", "CALLER", "CHOSEN", "CAND", "", "WHY", "TRACE"];
    let table = Table::new(picks, constraints(&widths))
        .header(Row::new(shown(header, &widths)).style(theme.title))
        .row_highlight_style(theme.selected)
        .block(
            Block::bordered()
                .title(Line::styled(title, theme.title))
                .border_style(border(Focus::Picks)),
        );
    let selected = (view.focus == Focus::Picks).then(|| view.pick_index(&kept));
    let mut state = TableState::default().with_selected(selected);
    frame.render_stateful_widget(table, picks_area, &mut state);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategies_cycle_both_ways_and_wrap() {
        let mut s = Strategy::RoundRobin;
        for _ in 0..Strategy::ALL.len() {
            s = cycle(s, true);
        }
        assert_eq!(s, Strategy::RoundRobin);
        assert_eq!(cycle(Strategy::RoundRobin, false), Strategy::ConsistentHash);
        assert_eq!(cycle(Strategy::RoundRobin, true), Strategy::Random);
    }

    #[test]
    fn clock_reads_utc_time_of_day() {
        assert_eq!(clock(0), "00:00:00.000");
        assert_eq!(clock(86_400_000 + 3_723_045), "01:02:03.045");
    }
}
