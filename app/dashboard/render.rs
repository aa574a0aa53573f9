//! Draws the whole screen from `App`: header, tab bar, the active tab, footer, overlays.

use super::action::{Action, Scope};
use super::app::App;
use super::keymap::Keymap;
use super::tabs::Tab;
use super::views;
use devcluster::handle::Link;
use devcluster::registry::Health;
use ratatui::Frame;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Row, Table, Tabs, Wrap};
use std::time::Instant;
use widgets::{Notice, Theme};

/// Below this the layout cannot fit; a message is shown instead.
pub const MIN_WIDTH: u16 = 80;
pub const MIN_HEIGHT: u16 = 16;

pub fn health_style(h: Health, theme: &Theme) -> Style {
    match h {
        Health::Passing => theme.passing,
        Health::Warning => theme.warning,
        Health::Critical => theme.critical,
    }
}

pub fn draw(frame: &mut Frame, app: &App) {
    let theme = app.theme;
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        let msg = Notice::new([
            "terminal too small".to_string(),
            format!(
                "need {MIN_WIDTH}×{MIN_HEIGHT}, have {}×{}",
                area.width, area.height
            ),
            "q quits".to_string(),
        ])
        .theme(theme);
        frame.render_widget(&msg, area);
        return;
    }
    let banner = link_banner(&app.link, Instant::now());
    let banner_rows = banner.as_ref().map_or(0, |b| {
        wrapped_lines(b, usize::from(area.width)).min(3) as u16
    });
    // A toast longer than a line takes up to four (the body and an open prompt sit above it):
    // a refusal's reason is read whole.
    let footer_rows = app.toast.as_ref().map_or(1, |t| {
        wrapped_lines(&format!(" {}", t.text), usize::from(area.width)).clamp(1, 4) as u16
    });
    let [header, banner_area, tabs, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(banner_rows),
        Constraint::Length(1),
        Constraint::Fill(1),
        Constraint::Length(footer_rows),
    ])
    .areas(area);
    app.tabs_row.set(tabs.y);
    draw_header(frame, header, app, &theme);
    if let Some(text) = banner {
        let style = match app.link {
            Link::Connecting => theme.warning,
            _ => theme.error.add_modifier(Modifier::REVERSED),
        };
        frame.render_widget(
            Paragraph::new(Span::styled(text, style)).wrap(Wrap { trim: false }),
            banner_area,
        );
    }
    draw_tabs(frame, tabs, app, &theme);
    if never_connected(&app.link) {
        // Nothing has answered yet: not an empty cluster, no cluster.
        let notice = Notice::new([
            "No cluster to show yet.".to_string(),
            String::new(),
            "The dashboard is attached to an admin URL where nothing answers (see above);"
                .to_string(),
            "it keeps trying and shows the cluster as soon as it answers.".to_string(),
            String::new(),
            "Start one with `lgo-dash serve` (it prints its `admin URL`), then".to_string(),
            "`lgo-dash --attach URL`; or run `lgo-dash` alone for an embedded cluster.".to_string(),
        ])
        .title("Not connected")
        .theme(theme);
        frame.render_widget(&notice, body);
    } else {
        app.view().render(frame, body, &app.cx(), &theme);
    }
    if matches!(app.link, Link::Lost { .. }) {
        // What the cluster last sent, greyed: it is not live.
        frame.buffer_mut().set_style(body, theme.dim);
    }
    draw_footer(frame, footer, app, &theme);
    if let Some(p) = &app.prompt {
        views::prompt::render(frame, body, p, &theme);
    }
    if let Some(insp) = &app.inspector {
        views::inspector::render(frame, body, insp, &theme);
    }
    if app.help {
        draw_help(frame, body, app, &theme);
    }
}

/// Attached and nothing has answered yet (connecting, or lost before the first answer).
fn never_connected(link: &Link) -> bool {
    matches!(link, Link::Connecting | Link::Lost { ever_up: false, .. })
}

/// What the banner under the header says about the link to an attached cluster, if anything.
pub fn link_banner(link: &Link, now: Instant) -> Option<String> {
    match link {
        Link::Up => None,
        Link::Connecting => Some(" ⟳ connecting to the cluster…".to_string()),
        Link::Lost {
            since,
            error,
            retry_at,
            ever_up,
        } => {
            let retry = match retry_at.saturating_duration_since(now).as_secs_f64().ceil() {
                0.0 => "trying again now".to_string(),
                s => format!("trying again in {s:.0} s"),
            };
            Some(if *ever_up {
                let ago = now.saturating_duration_since(*since).as_secs();
                format!(
                    " ⚠ cluster lost {ago} s ago — what is shown is from then · {retry} · {error}"
                )
            } else {
                format!(" ⚠ no cluster yet · {retry} · {error}")
            }
            // The dashboard's flag, not ctl's.
            .replace("(--admin URL or LGO_ADMIN)", "(--attach URL)"))
        }
    }
}

fn draw_header(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let snap = &app.snapshot;
    let total = snap.instances.len();
    let passing = snap
        .instances
        .iter()
        .filter(|i| i.view.health == Health::Passing)
        .count();
    // Not live: the counts are what was last known, and not green.
    let stale = matches!(app.link, Link::Lost { ever_up: true, .. });
    let health = if stale {
        theme.dim
    } else if passing == total {
        theme.passing
    } else {
        theme.warning
    };
    let url = |name: &str| {
        snap.endpoints
            .iter()
            .find(|e| e.name == name)
            .map(|e| e.url.as_str())
    };
    // The gateway is where requests go; the admin URL is what `ctl --admin` and `--attach`
    // need; both stay in sight. Narrower, parts shorten, then the least needed go.
    // 0: the whole URL; 1: without `http://`; 2: only the port of a loopback one.
    let endpoint = |name: &'static str, short: u8| {
        url(name).map(|u| {
            let bare = u.strip_prefix("http://").unwrap_or(u);
            let shown = match short {
                0 => u,
                1 => bare,
                _ => bare.strip_prefix("127.0.0.1").unwrap_or(bare),
            };
            (format!(" · {name} {shown}"), theme.dim)
        })
    };
    let store_away = snap
        .endpoints
        .iter()
        .any(|e| e.name == "store" && e.problem.is_some());
    // Services registered from outside, by the API they came through: "2 consul, 1 nacos".
    let mut outside: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for i in snap.instances.iter() {
        if !i.view.via.is_empty() {
            *outside.entry(i.view.via.as_str()).or_default() += 1;
        }
    }
    let outside_count: usize = outside.values().sum();
    let outside_text = outside
        .iter()
        .map(|(via, n)| format!("{n} {via}"))
        .collect::<Vec<_>>()
        .join(", ");
    let paused = app
        .paused
        .then(|| ("  ⏸ PAUSED (p resumes)".to_string(), theme.warning));
    // (URL form, terse count, registry shown, mode shown): the fullest that fits.
    let layouts = [
        (0, false, true, true),
        (1, false, true, true),
        (1, false, false, true),
        (2, true, true, true),
        (2, true, false, true),
        (2, true, false, false),
    ];
    let width = usize::from(area.width);
    let mut chosen = Vec::new();
    for (short, terse, with_registry, with_mode) in layouts {
        let mut parts: Vec<(String, Style)> = vec![(" lgo-dash ".into(), theme.tab_active)];
        if with_mode {
            parts.push((format!("· {} ", app.header.mode), theme.dim));
            // A registry shared through etcd: which one, and whether it can be reached.
            if let Some(store) = url("store") {
                parts.push((format!("on {store} "), theme.dim));
                if store_away {
                    parts.push(("(unreachable: last known instances) ".into(), theme.warning));
                }
            }
        }
        parts.push((format!("· env {} · ", app.env()), theme.dim));
        let store = url("store");
        parts.push(if never_connected(&app.link) {
            ("not connected".to_string(), theme.warning)
        } else {
            (
                match (terse, store) {
                    // Shared: room for which store, even at 80 columns.
                    (true, Some(_)) => format!("{passing}/{total} up"),
                    (true, None) => format!("{passing}/{total} passing"),
                    _ => format!("{passing}/{total} instances passing"),
                } + if stale && !terse { " (stale)" } else { "" },
                health,
            )
        });
        // Outside services by API where there is room; narrow, the rows say it (the admin
        // URL matters more).
        if outside_count > 0 && !terse {
            parts.push((format!(" · external: {outside_text}"), theme.dim));
        }
        if let (false, Some(s)) = (with_mode, store) {
            let kind = s.split("://").next().unwrap_or(s);
            if store_away {
                parts.push((format!(" · {kind} unreachable"), theme.warning));
            } else {
                parts.push((format!(" · {kind}"), theme.dim));
            }
        }
        parts.extend(endpoint("gateway", short));
        parts.extend(endpoint("admin", short));
        if with_registry {
            parts.extend(endpoint("registry", short));
        }
        parts.extend(paused.clone());
        let fits = parts.iter().map(|(t, _)| t.chars().count()).sum::<usize>() <= width;
        chosen = parts;
        if fits {
            break;
        }
    }
    let spans: Vec<Span> = chosen
        .into_iter()
        .map(|(t, s)| Span::styled(t, s))
        .collect();
    frame.render_widget(Line::from(spans), area);
}

/// The tab whose title is drawn at column `x` of the tab bar (as `Tabs` lays it out: a space,
/// the title, a space, the divider).
pub fn tab_at(x: u16) -> Option<usize> {
    let mut start = 0u16;
    for (i, t) in Tab::ALL.iter().enumerate() {
        let width = format!("{} {}", i + 1, t.title()).chars().count() as u16 + 2;
        if x >= start && x < start + width {
            return Some(i);
        }
        start += width + 1;
    }
    None
}

fn draw_tabs(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let titles = Tab::ALL
        .iter()
        .enumerate()
        .map(|(i, t)| format!("{} {}", i + 1, t.title()));
    let tabs = Tabs::new(titles)
        .select(app.tab.index())
        .style(theme.dim)
        .highlight_style(theme.tab_active)
        .divider("│");
    frame.render_widget(tabs, area);
}

fn draw_footer(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    if let Some(t) = &app.toast {
        let style = if t.error { theme.error } else { theme.passing };
        // As many rows as the layout gave it (see `draw`): wrapped, not cut at the edge.
        frame.render_widget(
            Paragraph::new(Span::styled(format!(" {}", t.text), style)).wrap(Wrap { trim: false }),
            area,
        );
        return;
    }
    let mut shown = footer_hints(&app.keymap, app.tab);
    // The waterfall's keys only where they act: with a trace open.
    if app.tab == Tab::Traces && app.traces.open.is_none() {
        shown.retain(|h| {
            !matches!(
                h.action,
                Action::NextMatch | Action::Toggle | Action::TraceLogs | Action::SpanLogs
            )
        });
    }
    // What fits, the least needed dropped first (from the end): global keys before this tab's;
    // help and quit stay.
    let width = |h: &[Hint]| {
        h.iter()
            .map(|h| h.keys.chars().count() + h.label.chars().count() + 3)
            .sum::<usize>()
    };
    for rank in [0, 1] {
        while width(&shown) > usize::from(area.width) {
            match shown.iter().rposition(|h| h.rank == rank) {
                Some(i) => {
                    shown.remove(i);
                }
                None => break,
            }
        }
    }
    let mut spans = Vec::new();
    for h in shown {
        spans.push(Span::styled(format!(" {}", h.keys), theme.key));
        spans.push(Span::styled(format!(" {} ", h.label), theme.dim));
    }
    frame.render_widget(Line::from(spans), area);
}

/// How many lines `text` takes wrapped at word boundaries to `width` columns (as `Wrap` does).
pub fn wrapped_lines(text: &str, width: usize) -> usize {
    let width = width.max(1);
    let (mut lines, mut used) = (1, 0);
    for word in text.split(' ') {
        let w = word.chars().count();
        if used > 0 && used + 1 + w <= width {
            used += 1 + w;
            continue;
        }
        if used == 0 && w <= width {
            used = w;
            continue;
        }
        // On a new line (unless this one is empty); a word longer than a line breaks.
        if used > 0 {
            lines += 1;
        }
        let extra = w.saturating_sub(1) / width;
        lines += extra;
        used = w - extra * width;
    }
    lines
}

/// A footer hint and how much it is needed: 0 global keys, 1 this tab's, 2 help and quit.
pub struct Hint {
    pub keys: String,
    pub label: &'static str,
    pub action: Action,
    rank: u8,
}

/// The footer's hints on `tab`, in the bindings' order: this tab's bindings, and the global
/// ones that do something here and are not hidden by this tab's own (Enter edits on Config).
/// A pair shows as one hint with each half's first key (`j/k move`).
pub fn footer_hints(keymap: &Keymap, tab: Tab) -> Vec<Hint> {
    keymap
        .bindings()
        .iter()
        .filter(|b| b.def.scope.tab().is_none_or(|t| t == tab))
        .filter(|b| {
            b.def.scope != Scope::Global
                || (!b.def.idle_on.contains(&tab) && !keymap.hidden_on(tab, b))
        })
        .filter_map(|b| {
            let rank = match (b.def.scope, &b.def.action) {
                (_, Action::ToggleHelp | Action::Quit) => 2,
                (Scope::Tab(_), _) => 1,
                (Scope::Global, _) => 0,
            };
            let first = b.keys.first()?.to_string();
            let keys = match b.def.pair {
                Some((other, join)) => match keymap
                    .named(b.def.scope, other)
                    .and_then(|o| o.keys.first())
                {
                    Some(k) => format!("{first}{join}{k}"),
                    None => first,
                },
                None => first,
            };
            Some(Hint {
                keys,
                label: b.def.footer?,
                action: b.def.action.clone(),
                rank,
            })
        })
        .collect()
}

fn draw_help(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let all = app.keymap.bindings();
    let height = (all.len() as u16 + 2).min(area.height);
    let rows_shown = usize::from(height.saturating_sub(2)).max(1);
    app.help_rows.set(rows_shown);
    let first = app.help_offset.min(all.len().saturating_sub(rows_shown));
    let [popup] = Layout::vertical([Constraint::Length(height)])
        .flex(Flex::Center)
        .areas(area);
    let [popup] = Layout::horizontal([Constraint::Length(84.min(area.width))])
        .flex(Flex::Center)
        .areas(popup);
    let rows = all.iter().skip(first).take(rows_shown).map(|b| {
        Row::new([
            Span::styled(b.keys_text(), theme.key),
            Span::styled(b.def.scope.tab().map_or("", |t| t.title()), theme.dim),
            Span::raw(b.def.help),
        ])
    });
    let widths = [
        Constraint::Length(12),
        Constraint::Length(9),
        Constraint::Fill(1),
    ];
    let table = Table::new(rows, widths).block(
        Block::bordered()
            .title(Line::styled(
                if rows_shown < all.len() {
                    format!(
                        " Keys {}–{} of {} · j k PgUp PgDn scroll · ? or Esc closes ",
                        first + 1,
                        (first + rows_shown).min(all.len()),
                        all.len()
                    )
                } else {
                    " Keys (? or Esc closes) ".to_string()
                },
                theme.title,
            ))
            .border_style(theme.border_focused),
    );
    frame.render_widget(Clear, popup);
    frame.render_widget(table, popup);
}

#[cfg(test)]
mod tests {
    use super::wrapped_lines;

    #[test]
    fn lines_counted_as_words_wrap() {
        assert_eq!(wrapped_lines("", 10), 1);
        assert_eq!(wrapped_lines("one two", 7), 1);
        assert_eq!(wrapped_lines("one two", 6), 2);
        assert_eq!(wrapped_lines("abcdefghij", 4), 3, "a long word breaks");
        assert_eq!(wrapped_lines("ab abcdefghij", 4), 4);
        assert_eq!(wrapped_lines("a b c d", 3), 2);
    }
}
