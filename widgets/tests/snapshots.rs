//! Every widget drawn at 80×24 and 160×48, as text, against the snapshots kept beside this file
//! (`widgets/tests/snapshots/`). A change in what a widget draws shows as a diff to review:
//! `cargo insta review`, or `INSTA_UPDATE=always cargo test -p widgets` to accept it.

#![allow(clippy::unwrap_used)]

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::text::Line;
use ratatui::widgets::{Block, TableState};
use widgets::columns::{Column, fit};
use widgets::{
    BreakerBadge, BreakerLight, DistributionBars, HealthMark, InstanceRow, InstanceTable, Notice,
    ShareKind, ShareRow, Theme, Waterfall, WaterfallRow,
};

const SIZES: [(u16, u16); 2] = [(80, 24), (160, 48)];

fn text(w: u16, h: u16, draw: impl FnOnce(&mut ratatui::Frame)) -> String {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(draw).unwrap();
    let buf = t.backend().buffer();
    (0..h)
        .map(|y| {
            let row: String = (0..w).map(|x| buf[(x, y)].symbol()).collect();
            row.trim_end().to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn instance(id: &str, health: HealthMark, process: &str, notes: &[&str]) -> InstanceRow {
    InstanceRow {
        id: id.into(),
        health,
        process: process.into(),
        address: format!("127.0.0.1:{}", 8080 + id.len()),
        version: "1.0.0".into(),
        weight: 1,
        in_flight: 2,
        rps: Some(12.5),
        error_pct: Some(if health == HealthMark::Passing {
            0.0
        } else {
            7.5
        }),
        notes: notes.iter().map(|n| n.to_string()).collect(),
        check: "HTTP GET http://127.0.0.1:8081/health: 200 OK".into(),
    }
}

#[test]
fn instance_table() {
    let rows = [
        instance("user-service-1", HealthMark::Passing, "running", &[]),
        instance(
            "user-service-2",
            HealthMark::Critical,
            "killed",
            &["restarts in 9s"],
        ),
        instance(
            "user-service-3",
            HealthMark::Warning,
            "running",
            &["fault +200ms 30%err 18s", "ejected 4s"],
        ),
    ];
    for (w, h) in SIZES {
        let shown = text(w, h, |f| {
            let table = InstanceTable::new(&rows)
                .mark(Some("service-3"))
                .block(Block::bordered().title(" user-service "));
            let mut state = TableState::default().with_selected(Some(1));
            f.render_stateful_widget(&table, f.area(), &mut state);
        });
        insta::assert_snapshot!(format!("instance_table_{w}x{h}"), shown);
    }
}

#[test]
fn distribution_bars() {
    let rows = [
        ShareRow {
            label: "user-service-1".into(),
            count: 75,
            note: "w=1 in-flight 2 ewma 1.5ms".into(),
            ..Default::default()
        },
        ShareRow {
            label: "user-service-2".into(),
            count: 0,
            kind: ShareKind::Down,
            note: "w=1 critical".into(),
        },
        ShareRow {
            label: "user-service-3".into(),
            count: 25,
            kind: ShareKind::Ejected,
            note: "w=1 ejected 4s".into(),
        },
    ];
    for (w, h) in SIZES {
        let shown = text(w, h, |f| {
            f.render_widget(&DistributionBars::new(&rows), f.area());
        });
        insta::assert_snapshot!(format!("distribution_bars_{w}x{h}"), shown);
    }
}

#[test]
fn waterfall() {
    let row = |depth, name: &str, service: &str, start_ms: u64, dur_ms: u64| WaterfallRow {
        depth,
        name: name.into(),
        service: service.into(),
        start_ns: start_ms * 1_000_000,
        duration_ns: dur_ms * 1_000_000,
        ..Default::default()
    };
    let mut rows = vec![
        row(0, "GET /api/orders/{id}", "gateway", 0, 40),
        row(1, "call order-service", "gateway", 1, 37),
        row(2, "GET /orders/{id}", "order-service", 2, 35),
        row(3, "call user-service", "order-service", 5, 30),
        row(4, "GET /users/{id}", "user-service", 6, 28),
    ];
    rows[0].has_children = true;
    rows[4].error = true;
    for (w, h) in SIZES {
        let shown = text(w, h, |f| {
            f.render_widget(
                &Waterfall::new(&rows, 40_000_000).selected(Some(3)),
                f.area(),
            );
        });
        insta::assert_snapshot!(format!("waterfall_{w}x{h}"), shown);
    }
}

#[test]
fn notice_and_breaker_badges() {
    let badges = [
        BreakerBadge {
            light: BreakerLight::Closed,
            forced: false,
        },
        BreakerBadge {
            light: BreakerLight::Closed,
            forced: true,
        },
        BreakerBadge {
            light: BreakerLight::HalfOpen,
            forced: false,
        },
        BreakerBadge {
            light: BreakerLight::Open,
            forced: false,
        },
        BreakerBadge {
            light: BreakerLight::Open,
            forced: true,
        },
    ];
    let theme = Theme::default();
    for (w, h) in SIZES {
        let shown = text(w, h, |f| {
            let notice = Notice::new([
                "No service is registered yet.",
                "",
                "Register one through the Consul API on the registry port.",
            ])
            .title("Services");
            let area = f.area();
            let top = ratatui::layout::Rect::new(0, 0, area.width, area.height - 5);
            f.render_widget(&notice, top);
            for (i, b) in badges.iter().enumerate() {
                let at = ratatui::layout::Rect::new(0, area.height - 5 + i as u16, area.width, 1);
                f.render_widget(Line::from(b.span(&theme)), at);
            }
        });
        insta::assert_snapshot!(format!("notice_and_badges_{w}x{h}"), shown);
    }
}

/// The column fitter as a table of which columns show at each width.
#[test]
fn columns_fitted_to_widths() {
    let cols = [
        Column::keep(20),
        Column::keep(10),
        Column::drop(12, 3),
        Column::drop(8, 1),
        Column::fill(10, 2),
    ];
    let mut out = String::new();
    for width in [20, 32, 40, 52, 60, 80, 120, 160] {
        out.push_str(&format!("{width:>4}: {:?}\n", fit(&cols, width, 1)));
    }
    insta::assert_snapshot!("columns", out);
}
