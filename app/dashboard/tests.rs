//! Whole-screen tests: a fixed snapshot → App → TestBackend, and keys → actions → commands.

use super::action::Action;
use super::app::{App, Command, Header, Reply, Request};
use super::render::draw;
use super::tabs::Tab;
use devcluster::handle::{ClusterSnapshot, InstanceSnapshot, ProcessState};
use devcluster::registry::{CheckView, Health, InstanceView};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use std::sync::Arc;

fn instance(
    id: &str,
    service: &str,
    port: u16,
    health: Health,
    process: ProcessState,
) -> InstanceSnapshot {
    let output = match health {
        Health::Passing => format!("HTTP GET http://127.0.0.1:{port}/health: 200 OK"),
        _ => format!("HTTP GET http://127.0.0.1:{port}/health: connection refused"),
    };
    InstanceSnapshot {
        view: InstanceView {
            id: id.into(),
            service: service.into(),
            version: "1.0.0".into(),
            address: "127.0.0.1".into(),
            port,
            tags: vec!["sample".into()],
            meta: [("version".to_string(), "1.0.0".to_string())].into(),
            weight: 1,
            weight_warning: 1,
            enable_tag_override: false,
            protocol: "http".into(),
            health_path: "/health".into(),
            health,
            via: String::new(),
            checks: vec![CheckView {
                id: format!("service:{id}"),
                name: "http".into(),
                kind: "http".into(),
                status: health,
                output,
                notes: String::new(),
                definition: format!("GET http://127.0.0.1:{port}/health every 1s"),
                spec: Vec::new(),
                create_index: 1,
                modify_index: 1,
            }],
            create_index: 1,
            modify_index: 1,
        },
        process,
        fault: None,
        restart_in_ms: None,
        load: None,
        stale: false,
    }
}

fn snapshot() -> Arc<ClusterSnapshot> {
    Arc::new(ClusterSnapshot {
        version: 1,
        registry_index: 9,
        endpoints: Vec::new(),
        instances: vec![
            instance(
                "order-service-1",
                "order-service",
                8091,
                Health::Passing,
                ProcessState::Running,
            ),
            instance(
                "user-service-1",
                "user-service",
                8081,
                Health::Passing,
                ProcessState::Running,
            ),
            instance(
                "user-service-2",
                "user-service",
                8082,
                Health::Critical,
                ProcessState::Killed,
            ),
            instance(
                "user-service-3",
                "user-service",
                8083,
                Health::Passing,
                ProcessState::Running,
            ),
        ]
        .into(),
        ..Default::default()
    })
}

fn app() -> App {
    App::new(
        Header {
            mode: "embedded cluster".into(),
            env: "development".into(),
        },
        snapshot(),
    )
}

fn screen(app: &App, w: u16, h: u16) -> Vec<String> {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| draw(f, app)).unwrap();
    let buf = t.backend().buffer();
    (0..h)
        .map(|y| (0..w).map(|x| buf[(x, y)].symbol()).collect::<String>())
        .collect()
}

fn press(app: &mut App, code: KeyCode) -> Option<Command> {
    match app.on_key(KeyEvent::new(code, KeyModifiers::NONE))? {
        Request::Command(c) => Some(c),
        // Switching to the Traces or Logs tab fetches; not what these tests look at.
        Request::Traces(_) | Request::Logs(_) => None,
        other => panic!("expected a command, got {other:?}"),
    }
}

#[test]
fn services_tab_shows_services_instances_and_their_health() {
    let mut app = app();
    press(&mut app, KeyCode::Char('j')); // select user-service
    let lines = screen(&app, 160, 30);
    let all = lines.join("\n");
    for (i, tab) in Tab::ALL.iter().enumerate() {
        assert!(
            lines[1].contains(&format!("{} {}", i + 1, tab.title())),
            "tab bar: {}",
            lines[1]
        );
    }
    assert!(
        all.contains("order-service") && all.contains("1/1 up"),
        "{all}"
    );
    assert!(
        all.contains("2/3 up"),
        "user-service has one of three down:\n{all}"
    );
    let row = |id: &str| {
        lines
            .iter()
            .find(|l| l.contains(id) && l.contains("127.0.0.1:"))
            .cloned()
            .unwrap_or_default()
    };
    assert!(row("user-service-1").contains("● passing"), "{all}");
    let killed = row("user-service-2");
    assert!(
        killed.contains("✖ critical")
            && killed.contains("killed")
            && killed.contains("connection refused"),
        "{killed}"
    );
    assert!(
        lines[0].contains("3/4 instances passing"),
        "header: {}",
        lines[0]
    );
}

#[test]
fn tabs_cycle_with_tab_and_back_tab() {
    let mut app = app();
    press(&mut app, KeyCode::Char('6'));
    assert_eq!(app.tab, Tab::Config);
    press(&mut app, KeyCode::Tab);
    assert_eq!(app.tab, Tab::Logs);
    press(&mut app, KeyCode::BackTab);
    press(&mut app, KeyCode::BackTab);
    assert_eq!(app.tab, Tab::Traces);
}

#[test]
fn a_small_terminal_gets_a_message_not_a_panic() {
    let app = app();
    let all = screen(&app, 40, 10).join("\n");
    assert!(all.contains("terminal too small"), "{all}");
    assert!(all.contains("40×10"), "{all}");
    // Just under the minimum either way: the message, with the size, never the layout.
    for (w, h) in [(79, 40), (200, 15)] {
        let all = screen(&app, w, h).join("\n");
        assert!(
            all.contains("terminal too small") && all.contains(&format!("{w}×{h}")),
            "{w}×{h}: {all}"
        );
        assert!(
            !all.contains("Services"),
            "{w}×{h}: no layout squeezed in: {all}"
        );
    }
    // Too small for the message itself (a window being resized, a pane collapsed): what fits
    // of it is drawn, and a 0×0 terminal draws nothing — neither panics.
    assert_eq!(screen(&app, 1, 1), vec!["t".to_string()]);
    assert_eq!(screen(&app, 3, 1), vec!["ter".to_string()]);
    assert!(screen(&app, 0, 0).is_empty());
}

#[test]
fn kill_and_restart_keys_target_the_selected_instance() {
    let mut app = app();
    press(&mut app, KeyCode::Char('j')); // user-service
    press(&mut app, KeyCode::Enter); // into its instances
    press(&mut app, KeyCode::Char('j')); // user-service-2
    assert_eq!(
        press(&mut app, KeyCode::Char('r')),
        Some(Command::Restart {
            id: "user-service-2".into()
        })
    );
    press(&mut app, KeyCode::Char('j'));
    assert_eq!(
        press(&mut app, KeyCode::Char('x')),
        Some(Command::Kill {
            id: "user-service-3".into(),
            for_s: None
        })
    );
    // The selection is drawn where the keys put it.
    let lines = screen(&app, 140, 30);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("user-service-3") && l.contains("http://127.0.0.1:8083"))
    );
}

#[test]
fn pause_freezes_the_view_and_help_lists_every_key() {
    let mut app = app();
    press(&mut app, KeyCode::Char('p'));
    let newer = Arc::new(ClusterSnapshot::default());
    assert!(
        !app.on_snapshot(newer.clone()),
        "a paused view does not change"
    );
    assert_eq!(app.snapshot.instances.len(), 4);
    assert!(screen(&app, 120, 24)[0].contains("PAUSED"));
    press(&mut app, KeyCode::Char('p'));
    assert!(app.on_snapshot(newer));
    assert!(
        screen(&app, 120, 24)
            .join("\n")
            .contains("No service is registered yet")
    );

    press(&mut app, KeyCode::Char('?'));
    let rows = screen(&app, 120, 60);
    // Every key the dispatcher handles is in help, on the row of what it does.
    for b in app.keymap.bindings() {
        assert!(
            rows.iter()
                .any(|r| r.contains(b.def.help) && r.contains(&b.keys_text())),
            "help lists {} {:?}",
            b.keys_text(),
            b.def.help
        );
    }
    // While help is open, other keys do nothing; Esc closes it; q quits.
    assert_eq!(press(&mut app, KeyCode::Char('x')), None);
    press(&mut app, KeyCode::Esc);
    assert!(!app.help);
    assert_eq!(
        app.keymap.action(
            app.tab,
            KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)
        ),
        Some(Action::Quit)
    );
    press(&mut app, KeyCode::Char('q'));
    assert!(app.quit);
}

use devcluster::balance::Strategy;
use devcluster::balance::record::{CandidateView, PickRecord};
use devcluster::balance::service::{BalancerSnapshot, LoadView};
use devcluster::breaker::{BreakerSettings, BreakerSnapshot, Mode, State, Transition};
use devcluster::control::Endpoint;

fn load(id: &str, requests: u64, failures: u64, ejected_for_ms: Option<u64>) -> LoadView {
    LoadView {
        id: id.into(),
        in_flight: 2,
        ewma_ms: 1.5,
        requests,
        failures,
        consecutive_failures: 0,
        ejected_for_ms,
    }
}

fn pick(seq: u64, chosen: &str, attempt: u32) -> PickRecord {
    PickRecord {
        seq,
        at_unix_ms: 3_723_045 + seq,
        caller: "gateway".into(),
        target: "user-service".into(),
        strategy: Strategy::P2c,
        candidates_total: 2,
        candidates: ["user-service-1", "user-service-3"]
            .iter()
            .map(|id| CandidateView {
                id: (*id).into(),
                health: Health::Passing,
                weight: 1,
                in_flight: 0,
                ejected: false,
                eligible: true,
            })
            .collect(),
        chosen: chosen.into(),
        reason: format!("lower cost than the other draw (seq {seq})"),
        trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
        attempt,
    }
}

fn breaker(name: &str, state: State, mode: Mode) -> BreakerSnapshot {
    BreakerSnapshot {
        name: name.into(),
        state,
        mode,
        failure_rate: 60.0,
        slow_rate: 0.0,
        calls_in_window: 10,
        failures_in_window: 6,
        total_calls: 1234,
        rejected: 56,
        in_state_ms: 12_300,
        probes_in_flight: 0,
        settings: BreakerSettings::default(),
        transitions: vec![Transition {
            at_unix_ms: 3_723_045,
            from: State::Closed,
            to: State::Open,
            reason: "failure rate 60% ≥ 50% over 10 calls".into(),
        }],
        tripped: None,
    }
}

/// The fixed snapshot plus balancers, breakers, an admin endpoint and live load.
fn busy_snapshot() -> Arc<ClusterSnapshot> {
    let mut s = (*snapshot()).clone();
    s.endpoints = vec![Endpoint::new("admin", "http://127.0.0.1:9900")];
    s.balancers = vec![
        BalancerSnapshot {
            target: "order-service".into(),
            strategy: Strategy::RoundRobin,
            counts: [("order-service-1".to_string(), 10)].into(),
            loads: vec![],
            recent: vec![],
        },
        BalancerSnapshot {
            target: "user-service".into(),
            strategy: Strategy::P2c,
            counts: [
                ("user-service-1".to_string(), 75),
                ("user-service-3".to_string(), 25),
            ]
            .into(),
            loads: vec![
                load("user-service-1", 75, 0, None),
                load("user-service-3", 25, 5, Some(3_500)),
            ],
            recent: vec![pick(1, "user-service-1", 1), pick(2, "user-service-3", 2)],
        },
    ];
    s.breakers = vec![
        breaker("gateway->order-service", State::Closed, Mode::Auto),
        breaker("gateway->user-service", State::Open, Mode::ForcedOpen),
    ];
    for i in Arc::make_mut(&mut s.instances).iter_mut() {
        if i.view.id == "user-service-3" {
            i.load = Some(load("user-service-3", 25, 5, Some(3_500)));
        }
    }
    Arc::new(s)
}

fn busy_app() -> App {
    let mut app = app();
    app.on_snapshot(busy_snapshot());
    app
}

#[test]
fn header_names_the_admin_url_for_ctl_and_attach() {
    let app = busy_app();
    assert!(
        screen(&app, 160, 30)[0].contains("admin http://127.0.0.1:9900"),
        "{}",
        screen(&app, 160, 30)[0]
    );
}

#[test]
fn balancer_tab_shows_strategy_shares_ejection_and_the_pick_stream() {
    let mut app = busy_app();
    press(&mut app, KeyCode::Char('2'));
    press(&mut app, KeyCode::Char('j')); // user-service
    let lines = screen(&app, 160, 40);
    let all = lines.join("\n");
    assert!(all.contains("user-service · p2c · 100 picks"), "{all}");
    let row = |id: &str| {
        lines
            .iter()
            .find(|l| l.contains(id) && l.contains('%'))
            .cloned()
            .unwrap_or_else(|| panic!("no bar for {id}:\n{all}"))
    };
    assert!(row("user-service-1").contains("75.0%"), "{all}");
    assert!(row("user-service-3").contains("25.0%"), "{all}");
    assert!(row("user-service-3").contains("ejected 4s"), "{all}");
    // The killed instance is listed with no share, marked critical.
    assert!(
        row("user-service-2").contains("0.0%") && row("user-service-2").contains("critical"),
        "{all}"
    );
    assert!(
        row("user-service-1").matches('█').count() > row("user-service-3").matches('█').count()
    );
    // Newest pick first, with the retry marked and the trace id shortened.
    let first = lines.iter().position(|l| l.contains("(seq 2)")).unwrap();
    let second = lines.iter().position(|l| l.contains("(seq 1)")).unwrap();
    assert!(first < second, "{all}");
    assert!(lines[first].contains("retry 2") && lines[first].contains("4bf92f35"));
    assert!(lines[first].contains("01:02:03.047"), "{}", lines[first]);
}

#[test]
fn balancer_keys_change_strategy_and_weight_of_the_selection() {
    let mut app = busy_app();
    press(&mut app, KeyCode::Char('2'));
    press(&mut app, KeyCode::Char('j'));
    assert_eq!(
        press(&mut app, KeyCode::Char('s')),
        Some(Command::Strategy {
            service: "user-service".into(),
            strategy: Strategy::ConsistentHash
        })
    );
    assert_eq!(
        press(&mut app, KeyCode::Char('S')),
        Some(Command::Strategy {
            service: "user-service".into(),
            strategy: Strategy::P2c
        }),
        "a second key press steps on from the first, before the cluster confirms"
    );
    assert_eq!(
        press(&mut app, KeyCode::Char('S')),
        Some(Command::Strategy {
            service: "user-service".into(),
            strategy: Strategy::LeastRequest
        })
    );
    // No instance selected yet: a hint, no command.
    assert_eq!(press(&mut app, KeyCode::Char('+')), None);
    assert!(app.toast.as_ref().is_some_and(|t| t.error));
    press(&mut app, KeyCode::Enter);
    press(&mut app, KeyCode::Char('j'));
    assert_eq!(
        press(&mut app, KeyCode::Char('+')),
        Some(Command::Weight {
            id: "user-service-2".into(),
            weight: 2
        })
    );
    assert_eq!(
        press(&mut app, KeyCode::Char('+')),
        Some(Command::Weight {
            id: "user-service-2".into(),
            weight: 3
        })
    );
    press(&mut app, KeyCode::Char('-'));
    press(&mut app, KeyCode::Char('-'));
    assert_eq!(
        press(&mut app, KeyCode::Char('-')),
        Some(Command::Weight {
            id: "user-service-2".into(),
            weight: 0
        })
    );
    assert_eq!(
        press(&mut app, KeyCode::Char('-')),
        Some(Command::Weight {
            id: "user-service-2".into(),
            weight: 0
        }),
        "weights do not go below zero"
    );
    // Breaker keys mean nothing here.
    assert_eq!(press(&mut app, KeyCode::Char('o')), None);
}

#[test]
fn breakers_tab_shows_state_mode_rates_and_transitions() {
    let mut app = busy_app();
    press(&mut app, KeyCode::Char('3'));
    press(&mut app, KeyCode::Char('j'));
    let lines = screen(&app, 160, 40);
    let all = lines.join("\n");
    let row = lines
        .iter()
        .find(|l| l.contains("gateway->user-service") && l.contains("forced_open"))
        .unwrap_or_else(|| panic!("{all}"));
    assert!(row.contains("✖ open ⚿"), "{row}");
    assert!(row.contains("60%") && row.contains("10/") && row.contains("1234"));
    assert!(row.contains("56") && row.contains("12.3s"), "{row}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("gateway->order-service") && l.contains("● closed"))
    );
    assert!(all.contains("closed    → open"), "{all}");
    assert!(
        all.contains("failure rate 60% ≥ 50% over 10 calls"),
        "{all}"
    );
    // The footer offers this tab's keys, not the Services tab's.
    let footer = lines.last().unwrap();
    assert!(
        footer.contains("auto") && !footer.contains("kill"),
        "{footer}"
    );
}

#[test]
fn breaker_keys_set_the_selected_breakers_mode() {
    let mut app = busy_app();
    press(&mut app, KeyCode::Char('3'));
    let mode = |app: &mut App, key| match press(app, key) {
        Some(Command::BreakerMode { name, mode }) => (name, mode),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        mode(&mut app, KeyCode::Char('o')),
        ("gateway->order-service".into(), Mode::ForcedOpen)
    );
    press(&mut app, KeyCode::Char('j'));
    assert_eq!(mode(&mut app, KeyCode::Char('c')).1, Mode::ForcedClosed);
    assert_eq!(mode(&mut app, KeyCode::Char('a')).1, Mode::Auto);
    // Space goes on from the mode just set: auto → forced open → forced closed.
    assert_eq!(
        mode(&mut app, KeyCode::Char(' ')),
        ("gateway->user-service".into(), Mode::ForcedOpen)
    );
    assert_eq!(mode(&mut app, KeyCode::Char(' ')).1, Mode::ForcedClosed);
    assert_eq!(
        press(&mut app, KeyCode::Char('x')),
        None,
        "kill is a Services key"
    );
}

#[test]
fn services_tab_shows_live_rates_and_countdowns() {
    use devcluster::telemetry::rolling::Series;
    // The instance's own rates over the last ten seconds, as the metrics windows give them.
    let mut snap = (*busy_snapshot()).clone();
    snap.metrics.instances.insert(
        "user-service-3".into(),
        Series {
            rps: 10.0,
            error_pct: 25.0,
            ..Default::default()
        },
    );
    let mut app = app();
    app.on_snapshot(Arc::new(snap));
    press(&mut app, KeyCode::Char('j'));
    let lines = screen(&app, 160, 30);
    let row = lines
        .iter()
        .find(|l| l.contains("user-service-3") && l.contains("passing"))
        .unwrap_or_else(|| panic!("{}", lines.join("\n")));
    // 10 requests a second, 25 % of them failed; in flight 2; ejected with 3.5 s left.
    assert!(row.contains("10.0") && row.contains("25.0"), "{row}");
    assert!(row.contains("ejected 4s"), "{row}");
    let other = lines
        .iter()
        .find(|l| l.contains("user-service-1") && l.contains("passing"))
        .unwrap();
    assert!(other.contains(" - "), "no load, no rate: {other}");
}

#[test]
fn route_inspector_takes_typing_and_shows_the_explanation() {
    use devcluster::cluster::RouteExplain;
    let mut app = busy_app();
    press(&mut app, KeyCode::Char('e'));
    assert!(app.inspector.is_some());
    let key = |c| KeyEvent::new(c, KeyModifiers::NONE);
    // The example it opens with is replaced by what is typed, not added to.
    for c in "post /api/orders q".chars() {
        app.on_inspector_key(key(KeyCode::Char(c)));
    }
    assert!(
        !app.quit,
        "q is typed, not obeyed, while the inspector is open"
    );
    assert_eq!(app.on_inspector_key(key(KeyCode::Enter)), None);
    let all = screen(&app, 160, 40).join("\n");
    assert!(all.contains("expected METHOD PATH"), "{all}");
    app.on_inspector_key(key(KeyCode::Backspace));
    app.on_inspector_key(key(KeyCode::Backspace));
    assert_eq!(
        app.on_inspector_key(key(KeyCode::Enter)),
        Some(Request::Explain {
            method: "POST".into(),
            path: "/api/orders".into()
        })
    );
    app.on_reply(Reply::Explained(Box::new(Ok(RouteExplain {
        method: "POST".into(),
        path: "/api/orders".into(),
        route: Some("/api/orders".into()),
        service: Some("order-service".into()),
        rewritten: Some("/orders".into()),
        hash_key: None,
        strategy: Some("round_robin".into()),
        candidates: vec![],
        chosen: Some("order-service-1".into()),
        reason: Some("next in turn".into()),
        breaker: Some("gateway->order-service".into()),
        breaker_state: Some(State::Closed),
        breaker_mode: Some(Mode::Auto),
        outcome: "forwarded to order-service-1".into(),
    }))));
    let all = screen(&app, 160, 40).join("\n");
    assert!(all.contains("Route inspector"), "{all}");
    assert!(all.contains("rewritten   /orders"), "{all}");
    assert!(all.contains("forwarded to order-service-1"), "{all}");
    app.on_inspector_key(key(KeyCode::Esc));
    assert!(app.inspector.is_none());
}

mod traces_tab {
    use super::*;
    use devcluster::telemetry::{SpanId, SpanRecord, TraceFilter, TraceId, TraceSummary};

    fn span(
        id: u64,
        parent: Option<u64>,
        service: &str,
        name: &str,
        start_ms: u64,
        dur_ms: u64,
    ) -> SpanRecord {
        SpanRecord {
            trace_id: TraceId(0xabc),
            span_id: SpanId(id),
            parent_id: parent.map(SpanId),
            service: service.into(),
            instance: format!("{service}-1"),
            name: name.into(),
            start_unix_ns: 1_000_000_000 + start_ms * 1_000_000,
            duration_ns: dur_ms * 1_000_000,
            error: name.starts_with("rejected"),
            attributes: vec![("peer.instance".into(), "user-service-2".into())],
            events: vec![],
        }
    }

    pub(super) fn spans() -> Vec<SpanRecord> {
        vec![
            span(1, None, "gateway", "GET /api/orders/{id}", 0, 40),
            span(2, Some(1), "gateway", "call order-service", 2, 36),
            span(3, Some(2), "order-service", "GET /orders/{id}", 5, 30),
            span(
                4,
                Some(3),
                "order-service",
                "rejected by breaker order-service->user-service, forced_open",
                6,
                1,
            ),
        ]
    }

    pub(super) fn summary() -> TraceSummary {
        let s = spans();
        TraceSummary::of(&s.iter().collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn the_tab_asks_for_traces_and_lists_them() {
        let mut app = busy_app();
        match app.on_key(KeyEvent::new(KeyCode::Char('5'), KeyModifiers::NONE)) {
            Some(Request::Traces(TraceFilter { limit: Some(_), .. })) => {}
            other => panic!("switching to Traces asks for them: {other:?}"),
        }
        // Not again within the refresh interval; again after it.
        let now = std::time::Instant::now();
        assert_eq!(app.on_tick(now), None);
        assert!(
            app.on_tick(now + super::super::app::TRACES_REFRESH)
                .is_some()
        );
        app.on_reply(Reply::Traces(Ok(vec![summary()])));
        let all = screen(&app, 160, 30).join("\n");
        assert!(all.contains("Recent traces (1)"), "{all}");
        assert!(all.contains("GET /api/orders/{id}"), "{all}");
        assert!(all.contains("gateway → order-service"), "{all}");
        assert!(all.contains("✖") && all.contains("40.0ms"), "{all}");
    }

    #[test]
    fn enter_opens_a_waterfall_space_folds_esc_returns() {
        let mut app = busy_app();
        press(&mut app, KeyCode::Char('5'));
        app.on_reply(Reply::Traces(Ok(vec![summary()])));
        let open = KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE);
        assert_eq!(app.on_key(open), Some(Request::Trace(TraceId(0xabc))));
        assert_eq!(app.on_key(open), None, "no second fetch while loading");
        app.on_reply(Reply::Trace(TraceId(0xabc), Ok(spans())));
        let lines = screen(&app, 160, 30);
        let all = lines.join("\n");
        assert!(all.contains("4 spans") && all.contains("1 errors"), "{all}");
        let row = |name: &str| {
            lines
                .iter()
                .position(|l| l.contains(name))
                .unwrap_or_else(|| panic!("{name}:\n{all}"))
        };
        assert!(row("GET /api/orders/{id}") < row("call order-service"));
        assert!(
            lines[row("GET /orders/{id}")].contains("    ▾ GET /orders/{id}"),
            "{all}"
        );
        assert!(
            lines[row("rejected by breaker")].contains("✖ rejected"),
            "{all}"
        );
        assert!(
            all.contains("peer.instance=user-service-2"),
            "detail pane: {all}"
        );

        // Down to the order-service span, fold it: its child disappears.
        press(&mut app, KeyCode::Char('j'));
        press(&mut app, KeyCode::Char('j'));
        press(&mut app, KeyCode::Char(' '));
        let all = screen(&app, 160, 30).join("\n");
        assert!(
            all.contains("▸ GET /orders/{id}") && !all.contains("rejected by breaker"),
            "{all}"
        );
        press(&mut app, KeyCode::Esc);
        assert!(screen(&app, 160, 30).join("\n").contains("Recent traces"));
    }

    #[test]
    fn an_evicted_trace_says_so() {
        let mut app = busy_app();
        press(&mut app, KeyCode::Char('5'));
        app.on_reply(Reply::Traces(Ok(vec![summary()])));
        app.on_reply(Reply::Trace(TraceId(0xabc), Ok(vec![])));
        assert!(app.traces.open.is_none());
        assert!(
            app.toast
                .as_ref()
                .is_some_and(|t| t.error && t.text.contains("no longer"))
        );
    }

    fn listed(ids: std::ops::RangeInclusive<u128>) -> Vec<TraceSummary> {
        // Newest first, as the cluster lists them.
        ids.rev()
            .map(|n| TraceSummary {
                trace_id: TraceId(n),
                ..summary()
            })
            .collect()
    }

    /// A slow answer never overwrites a newer one: the trace list asked twice, the first
    /// answer arriving last is dropped. Every command's answer is still said.
    #[test]
    fn an_older_answer_never_overwrites_a_newer_one() {
        let mut app = busy_app();
        press(&mut app, KeyCode::Char('5'));
        let first = app.ticket(&Request::Traces(TraceFilter::default()));
        let second = app.ticket(&Request::Traces(TraceFilter::default()));
        assert!(app.on_answer(second, Reply::Traces(Ok(listed(10..=12)))));
        assert!(!app.on_answer(first, Reply::Traces(Ok(listed(1..=3)))));
        assert_eq!(app.traces.list[0].trace_id, TraceId(12));
        let cmd = Request::Command(Command::Traffic { rps: 1 });
        let (a, b) = (app.ticket(&cmd), app.ticket(&cmd));
        assert!(app.on_answer(b, Reply::Done("second".into())));
        assert!(app.on_answer(a, Reply::Done("first".into())));
        assert_eq!(app.toast.as_ref().unwrap().text, "first");
    }

    /// The list under the cursor does not move: new traces are held back (counted in the
    /// title) while the cursor is below the top, Enter opens the highlighted trace even when
    /// the cluster has let it go, and the top shows the held ones.
    #[test]
    fn the_trace_list_holds_still_under_the_cursor() {
        let mut app = busy_app();
        press(&mut app, KeyCode::Char('5'));
        app.on_reply(Reply::Traces(Ok(listed(1..=20))));
        press(&mut app, KeyCode::Down);
        press(&mut app, KeyCode::Down);
        let looked_at = app.traces.selected_trace().unwrap().trace_id;
        assert_eq!(looked_at, TraceId(18));
        // Three newer traces; the oldest ones (the one looked at included) aged out.
        app.on_reply(Reply::Traces(Ok(listed(10..=23))));
        assert_eq!(app.traces.selected_trace().unwrap().trace_id, looked_at);
        assert_eq!(app.traces.list.len(), 20, "the shown rows stay");
        let all = screen(&app, 160, 40).join("\n");
        assert!(all.contains("3 new above"), "{all}");
        let open = KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE);
        assert_eq!(app.on_key(open), Some(Request::Trace(looked_at)));
        app.on_reply(Reply::Trace(looked_at, Err("gone".into())));
        // Home: the top, following the newest again.
        press(&mut app, KeyCode::Home);
        assert_eq!(app.traces.selected, 0);
        assert_eq!(app.traces.selected_trace().unwrap().trace_id, TraceId(23));
        assert_eq!(app.traces.new_count(), 0);
        // At the top a new list shows at once.
        app.on_reply(Reply::Traces(Ok(listed(11..=24))));
        assert_eq!(app.traces.selected_trace().unwrap().trace_id, TraceId(24));
        // End and PgUp: the last row, then ten up.
        press(&mut app, KeyCode::End);
        assert_eq!(app.traces.selected, 13);
        press(&mut app, KeyCode::PageUp);
        assert_eq!(app.traces.selected, 3);
        press(&mut app, KeyCode::Char('g'));
        assert_eq!(app.traces.selected, 0);
    }
}

mod metrics_tab {
    use super::*;
    use devcluster::telemetry::metrics::{CallSeries, MetricsView, ProcessView, RouteSeries};
    use devcluster::telemetry::rolling::Series;

    fn series(rps: f64, err: f64, p99: f64, total: u64) -> Series {
        Series {
            start_unix_s: 1000,
            requests: (0..120).map(|i| (i % 20) as u32).collect(),
            errors: vec![0; 120],
            p50_ms: vec![1.0; 120],
            p99_ms: (0..120).map(|i| f64::from(i as u32)).collect(),
            rps,
            error_pct: err,
            p50: 0.8,
            p90: 2.5,
            p99,
            total_requests: total,
            total_errors: 3,
        }
    }

    /// The busy cluster with figures: two services, two routes, one caller → target.
    pub(super) fn snapshot() -> ClusterSnapshot {
        let mut snap = (*busy_snapshot()).clone();
        snap.metrics = MetricsView {
            services: [
                ("gateway".to_string(), series(20.0, 0.0, 12.5, 2400)),
                ("user-service".to_string(), series(18.3, 7.5, 4.25, 2100)),
            ]
            .into(),
            instances: Default::default(),
            routes: vec![
                RouteSeries {
                    service: "user-service".into(),
                    route: "/users/{id}".into(),
                    series: series(17.1, 8.0, 4.5, 2000),
                },
                RouteSeries {
                    service: "gateway".into(),
                    route: "/api/orders".into(),
                    series: series(2.0, 0.0, 30.0, 240),
                },
            ],
            calls: vec![CallSeries {
                caller: "order-service".into(),
                target: "user-service".into(),
                series: series(6.5, 1.5, 3.0, 780),
            }],
            process: ProcessView {
                cpu_percent: 3.5,
                rss_bytes: 21_000_000,
                host_cpu_percent: 12.0,
                host_memory_used_bytes: 3_000_000_000,
                host_memory_total_bytes: 24_000_000_000,
                load_average_1m: 0.42,
                cpus: 2,
            },
        };
        snap
    }

    #[test]
    fn services_with_rates_percentiles_sparklines_and_the_process() {
        let mut app = app();
        app.on_snapshot(Arc::new(snapshot()));
        press(&mut app, KeyCode::Char('4'));
        press(&mut app, KeyCode::Char('j'));
        let lines = screen(&app, 160, 40);
        let all = lines.join("\n");
        let row = lines
            .iter()
            .find(|l| l.contains("user-service") && l.contains("18.3"))
            .unwrap_or_else(|| panic!("{all}"));
        assert!(
            row.contains("7.5") && row.contains("4.25ms") && row.contains("2100"),
            "{row}"
        );
        assert!(
            all.contains("user-service · requests per second"),
            "the selection's charts: {all}"
        );
        assert!(
            all.contains("(max 19)") && all.contains("max 119ms"),
            "{all}"
        );
        let route = lines
            .iter()
            .find(|l| l.contains("/users/{id}"))
            .unwrap_or_else(|| panic!("the selected service's routes: {all}"));
        assert!(route.contains("17.1") && route.contains("2000"), "{route}");
        assert!(
            !all.contains("/api/orders"),
            "only the selected service's routes: {all}"
        );
        let call = lines
            .iter()
            .find(|l| l.contains("order-service → user-service"))
            .unwrap_or_else(|| panic!("the client side: {all}"));
        assert!(call.contains("6.5") && call.contains("780"), "{call}");
        assert!(all.contains("cpu 3.5%  rss 21.0 MB"), "{all}");
        assert!(
            all.contains("of 2 cores") && all.contains("load 0.42"),
            "{all}"
        );
        assert!(all.contains('█'), "sparklines drawn: {all}");
        // What the dashboard itself costs, under the process.
        app.self_cost = crate::dashboard::app::SelfCost {
            frames_per_s: 1.5,
            frame_ms: 0.42,
            process: Some((0.3, 12_000_000)),
        };
        let all = screen(&app, 160, 40).join("\n");
        assert!(
            all.contains("dashboard  1.5 frames/s  last frame 0.42ms  cpu 0.3%  rss 12.0 MB"),
            "{all}"
        );

        // Short, one chart with its bars rather than two empty boxes; shorter, none.
        let short = screen(&app, 80, 20).join("\n");
        assert!(
            short.contains("requests per second")
                && short.contains('█')
                && !short.contains("p99 latency per second"),
            "{short}"
        );
        // The host's figures on a line of their own, whole, at 80 columns.
        assert!(
            short.contains("load 0.42") && short.contains("rss 21.0 MB"),
            "{short}"
        );
        let shorter = screen(&app, 80, 17).join("\n");
        assert!(
            !shorter.contains("requests per second") && shorter.contains("Process and host"),
            "{shorter}"
        );

        // `/gate` keeps the gateway's row (selected: its routes show) and no client path.
        press(&mut app, KeyCode::Char('/'));
        for c in "gate".chars() {
            app.on_prompt_key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
        }
        app.on_prompt_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE));
        let all = screen(&app, 160, 40).join("\n");
        assert!(all.contains("(1 of 2, Esc clears)"), "{all}");
        assert!(
            !all.contains("18.3") && all.contains("/api/orders"),
            "{all}"
        );
        assert!(!all.contains("order-service → user-service"), "{all}");
        press(&mut app, KeyCode::Esc);
        assert!(screen(&app, 160, 40).join("\n").contains("18.3"));
    }

    /// At every common size, each tab's identifying text is whole (instances, breakers, picks,
    /// routes, caller → target, config keys) and no latency is cut; less needed columns go
    /// instead. Then every size down to 1×1 and back draws without a panic.
    #[test]
    fn identifiers_are_whole_and_numbers_uncut_at_every_size() {
        use devcluster::config::center::{ConfigView, Entry};
        let mut snap = (*busy_snapshot()).clone();
        snap.breakers.push(breaker(
            "order-service->user-service",
            State::HalfOpen,
            Mode::Auto,
        ));
        snap.metrics = MetricsView {
            services: [
                ("gateway".to_string(), series(20.0, 0.0, 1234.25, 2400)),
                ("order-service".to_string(), series(5.5, 0.0, 0.49, 600)),
            ]
            .into(),
            instances: Default::default(),
            routes: vec![RouteSeries {
                service: "gateway".into(),
                route: "/api/orders/{id}".into(),
                series: series(2.0, 0.0, 0.45, 240),
            }],
            calls: vec![CallSeries {
                caller: "order-service".into(),
                target: "user-service".into(),
                series: series(6.5, 1.5, 0.25, 780),
            }],
            process: ProcessView::default(),
        };
        snap.config = ConfigView {
            version: 1,
            entries: vec![
                Entry {
                    key: "breaker.gateway->user-service.failure_rate_threshold".into(),
                    value: "50".into(),
                    origin: "assets/config/development.toml".into(),
                },
                // The longest key a user meets, beside a port bound elsewhere (--ports auto).
                Entry {
                    key: "breaker.order-service->user-service-grpc.slow_call_rate_threshold".into(),
                    value: "40".into(),
                    origin: "kv".into(),
                },
                Entry {
                    key: "ports.admin".into(),
                    value: "9900".into(),
                    origin: "defaults".into(),
                },
                // A long value elsewhere must not take the values' column away.
                Entry {
                    key: "balancer.user-service.hash_key".into(),
                    value: "\"header:x-tenant-id-of-the-caller\"".into(),
                    origin: "assets/config/production.json".into(),
                },
            ],
            ..ConfigView::default()
        };
        snap.endpoints = vec![devcluster::control::Endpoint::new(
            "admin",
            "http://127.0.0.1:33812",
        )];
        let snap = Arc::new(snap);
        let tabs: [(char, &[&str]); 5] = [
            ('1', &["order-service-1", "order-service"]),
            ('2', &["order-service", "round_robin", "user-service"]),
            (
                '3',
                &[
                    "gateway->order-service",
                    "gateway->user-service",
                    "order-service->user-service",
                ],
            ),
            (
                '4',
                &[
                    "order-service",
                    "/api/orders/{id}",
                    "order-service → user-service",
                ],
            ),
            (
                '6',
                &[
                    "gateway->user-service.failure_rate_threshold",
                    "order-service->user-service-grpc.slow_call_rate_threshold",
                    "9900 → bound 33812",
                ],
            ),
        ];
        for (w, h) in [(80, 24), (100, 30), (160, 48), (220, 60)] {
            for (tab, names) in tabs {
                let mut app = app();
                app.on_snapshot(snap.clone());
                press(&mut app, KeyCode::Char(tab));
                if tab == '4' {
                    press(&mut app, KeyCode::Char('j')); // the selected service: order-service
                    press(&mut app, KeyCode::Char('k'));
                }
                let all = screen(&app, w, h).join("\n");
                for name in names {
                    assert!(
                        all.contains(name),
                        "tab {tab} at {w}×{h}: {name} cut:\n{all}"
                    );
                }
                // A latency is digits, a point, digits and "ms": never ".25ms", nor cut on the
                // right ("0.49m"); the services' p99 stays at every size.
                for word in all.split(|c: char| c.is_whitespace() || c == '│') {
                    if let Some(num) = word.strip_suffix("ms") {
                        assert!(
                            !num.is_empty()
                                && !num.starts_with('.')
                                && num.chars().all(|c| c.is_ascii_digit() || c == '.'),
                            "tab {tab} at {w}×{h}: {word:?}:\n{all}"
                        );
                    }
                    let cut = word.strip_suffix('m').is_some_and(|n| {
                        n.ends_with(|c: char| c.is_ascii_digit())
                            && n.chars().all(|c| c.is_ascii_digit() || c == '.')
                    });
                    assert!(!cut, "tab {tab} at {w}×{h}: {word:?} cut:\n{all}");
                }
                if tab == '4' {
                    assert!(
                        all.contains("1234ms") && all.contains("0.49ms"),
                        "{w}×{h}:\n{all}"
                    );
                }
            }
        }
        for tab in ['1', '2', '3', '4', '5', '6', '7'] {
            let mut app = app();
            app.on_snapshot(snap.clone());
            press(&mut app, KeyCode::Char(tab));
            // Down from 220×60 to 1×1 and back up, as a window being resized.
            let down = (1..=60).rev().step_by(3).chain([1]);
            let sizes = down
                .clone()
                .chain(down.rev())
                .map(|h: u16| (h * 220 / 60, h));
            for (w, h) in sizes.chain([(1, 1), (2, 40), (200, 2)]) {
                screen(&app, w.max(1), h);
            }
        }
    }

    /// `t` on Services: the call graph, every path from a service nobody calls, each edge with
    /// its rate, errors and the breaker at its end.
    #[test]
    fn topology_shows_the_call_graph_with_rates_and_breakers() {
        let mut snap = (*busy_snapshot()).clone();
        let call = |caller: &str, target: &str, rps: f64, err: f64| CallSeries {
            caller: caller.into(),
            target: target.into(),
            series: series(rps, err, 3.0, 100),
        };
        snap.metrics.calls = vec![
            call("gateway", "order-service", 5.4, 0.0),
            call("gateway", "user-service", 12.5, 0.0),
            call("order-service", "user-service", 3.6, 8.0),
        ];
        let mut app = app();
        app.on_snapshot(Arc::new(snap));
        press(&mut app, KeyCode::Char('t'));
        for (w, h) in [(80, 24), (160, 48)] {
            let all = screen(&app, w, h).join("\n");
            assert!(
                all.contains("gateway ─▶ order-service ─▶ user-service"),
                "{all}"
            );
            assert!(all.contains("gateway ─▶ user-service"), "{all}");
            let row = |name: &str| {
                all.lines()
                    .find(|l| l.contains(name) && l.contains('.'))
                    .unwrap_or_else(|| panic!("{name}: {all}"))
                    .to_string()
            };
            // busy_snapshot's gateway->user-service breaker is forced open: the same badge as on Breakers.
            assert!(row("gateway → user-service").contains("✖ open ⚿"), "{all}");
            assert!(row("gateway → order-service").contains("● closed"), "{all}");
            assert!(row("order-service → user-service").contains("8.0"), "{all}");
        }
        press(&mut app, KeyCode::Char('t'));
        assert!(!screen(&app, 160, 48).join("\n").contains("Topology"));
    }
}

mod logs_tab {
    use super::*;
    use devcluster::telemetry::{Level, LogRecord, TraceId};

    pub(super) fn line(
        seq: u64,
        level: Level,
        service: &str,
        msg: &str,
        trace: Option<u128>,
    ) -> LogRecord {
        LogRecord {
            seq,
            at_unix_ns: 3_723_045_000_000 + seq * 1_000_000,
            level,
            service: service.into(),
            instance: format!("{service}-2"),
            target: "devcluster".into(),
            message: msg.into(),
            fields: vec![("status".into(), "404".into())],
            trace_id: trace.map(TraceId),
            span_id: None,
        }
    }

    fn request(app: &mut App, code: KeyCode) -> Option<Request> {
        app.on_key(KeyEvent::new(code, KeyModifiers::NONE))
    }

    /// A thousand lines are kept; the ones on screen are the window around the selection,
    /// whichever way it moves.
    #[test]
    fn the_shown_lines_follow_the_selection_through_a_long_list() {
        let mut app = busy_app();
        request(&mut app, KeyCode::Char('7'));
        let msg = |i: u64| format!("line number {i:04}");
        app.on_reply(Reply::Logs(Ok((0..1000)
            .map(|i| line(i, Level::Info, "gateway", &msg(i), None))
            .collect())));
        let selected_row = |app: &App| {
            let mut t = Terminal::new(TestBackend::new(120, 24)).unwrap();
            t.draw(|f| draw(f, app)).unwrap();
            let buf = t.backend().buffer();
            (0..24u16)
                .find(|&y| {
                    buf[(30, y)]
                        .modifier
                        .contains(ratatui::style::Modifier::REVERSED)
                })
                .map(|y| {
                    (0..120u16)
                        .map(|x| buf[(x, y)].symbol().to_string())
                        .collect::<String>()
                })
                .unwrap_or_default()
        };
        assert!(
            selected_row(&app).contains(&msg(999)),
            "following: the newest"
        );
        for _ in 0..600 {
            request(&mut app, KeyCode::Char('k'));
        }
        assert!(
            selected_row(&app).contains(&msg(399)),
            "{}",
            selected_row(&app)
        );
        request(&mut app, KeyCode::Char('g'));
        assert!(selected_row(&app).contains(&msg(0)));
        assert!(
            screen(&app, 120, 24).join("\n").contains(&msg(1)),
            "the next ones below it"
        );
        request(&mut app, KeyCode::PageDown);
        assert!(selected_row(&app).contains(&msg(10)));
    }

    #[test]
    fn lines_follow_filter_by_level_search_and_open_their_trace() {
        let mut app = busy_app();
        match request(&mut app, KeyCode::Char('7')) {
            Some(Request::Logs(f)) => assert_eq!(f.level, Some(Level::Info)),
            other => panic!("{other:?}"),
        }
        app.on_reply(Reply::Logs(Ok(vec![
            line(
                1,
                Level::Info,
                "user-service",
                "user 999 not found",
                Some(0xabc),
            ),
            line(
                2,
                Level::Warn,
                "gateway",
                "user-service-1 failed: Connection refused",
                None,
            ),
            line(
                3,
                Level::Error,
                "order-service",
                "user-service: no passing instance",
                Some(0xdef),
            ),
        ])));
        let lines = screen(&app, 160, 20);
        let all = lines.join("\n");
        assert!(all.contains("● following"), "{all}");
        let row = lines
            .iter()
            .find(|l| l.contains("user 999 not found"))
            .unwrap();
        assert!(
            row.contains("01:02:03.046") && row.contains("info") && row.contains("user-service-2"),
            "{row}"
        );
        assert!(
            row.contains("status=404") && row.contains("00000000"),
            "{row}"
        );

        // Following: Enter opens the newest line's trace, in the Traces tab.
        assert_eq!(
            request(&mut app, KeyCode::Enter),
            Some(Request::Trace(TraceId(0xdef)))
        );
        assert_eq!(app.tab, Tab::Traces);
        press(&mut app, KeyCode::Char('7'));
        // Up leaves follow mode; the line without a trace says so.
        press(&mut app, KeyCode::Char('k'));
        assert!(screen(&app, 160, 20).join("\n").contains("f follows"));
        assert_eq!(request(&mut app, KeyCode::Enter), None);
        assert!(
            app.toast
                .as_ref()
                .is_some_and(|t| t.text.contains("no trace"))
        );
        press(&mut app, KeyCode::Char('f'));
        assert_eq!(app.logs.selected, None);

        match request(&mut app, KeyCode::Char('v')) {
            Some(Request::Logs(f)) => assert_eq!(f.level, Some(Level::Warn)),
            other => panic!("{other:?}"),
        }
        // `/` opens the search prompt; typed keys are text, not commands.
        assert_eq!(request(&mut app, KeyCode::Char('/')), None);
        for c in "refused q".chars() {
            assert_eq!(
                app.on_prompt_key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)),
                None
            );
        }
        assert!(!app.quit);
        app.on_prompt_key(KeyEvent::new(KeyCode::Backspace, KeyModifiers::NONE));
        let prompt_line = screen(&app, 160, 20)[18].clone();
        assert!(
            prompt_line.contains("search logs › refused"),
            "{prompt_line:?}"
        );
        match app.on_prompt_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE)) {
            Some(Request::Logs(f)) => assert_eq!(f.q.as_deref(), Some("refused")),
            other => panic!("{other:?}"),
        }
        // The found text is marked in the line.
        let mut t = Terminal::new(TestBackend::new(160, 20)).unwrap();
        t.draw(|f| draw(f, &app)).unwrap();
        let buf = t.backend().buffer();
        let marked: String = (0..20u16)
            .flat_map(|y| (0..160u16).map(move |x| (x, y)))
            .filter(|&(x, y)| {
                buf[(x, y)]
                    .modifier
                    .contains(app.theme.matched.add_modifier)
            })
            .map(|(x, y)| buf[(x, y)].symbol().to_string())
            .collect();
        assert_eq!(marked, "refused");
    }

    #[test]
    fn l_in_a_waterfall_shows_that_traces_logs() {
        let mut app = busy_app();
        press(&mut app, KeyCode::Char('5'));
        app.on_reply(Reply::Trace(TraceId(0xabc), Ok(vec![])));
        assert_eq!(
            request(&mut app, KeyCode::Char('L')),
            None,
            "no trace open, nothing to show"
        );
        app.traces.loading = Some(TraceId(0xabc));
        app.on_reply(Reply::Trace(
            TraceId(0xabc),
            Ok(vec![devcluster::telemetry::SpanRecord {
                trace_id: TraceId(0xabc),
                span_id: devcluster::telemetry::SpanId(1),
                parent_id: None,
                service: "gateway".into(),
                instance: String::new(),
                name: "GET /x".into(),
                start_unix_ns: 1,
                duration_ns: 1,
                error: false,
                attributes: vec![],
                events: vec![],
            }]),
        ));
        match request(&mut app, KeyCode::Char('L')) {
            Some(Request::Logs(f)) => {
                assert_eq!(f.trace, Some(TraceId(0xabc)));
                // The trace's access lines are debug: they must show.
                assert_eq!(f.level, Some(devcluster::telemetry::Level::Debug));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(app.tab, Tab::Logs);
        assert!(screen(&app, 160, 20)[2].contains("(Esc shows all)"));
        match request(&mut app, KeyCode::Esc) {
            Some(Request::Logs(f)) => assert_eq!(f.trace, None),
            other => panic!("{other:?}"),
        }
        // S: the selected span's own lines.
        press(&mut app, KeyCode::Char('5'));
        match request(&mut app, KeyCode::Char('S')) {
            Some(Request::Logs(f)) => {
                assert_eq!(f.trace, Some(TraceId(0xabc)));
                assert_eq!(f.span, Some(devcluster::telemetry::SpanId(1)));
            }
            other => panic!("{other:?}"),
        }
        assert!(screen(&app, 160, 20)[2].contains("span 0000000000000001"));
        match request(&mut app, KeyCode::Esc) {
            Some(Request::Logs(f)) => assert_eq!((f.trace, f.span), (None, None)),
            other => panic!("{other:?}"),
        }
    }
}

mod traces_search {
    use super::*;
    use devcluster::telemetry::{SpanId, SpanRecord, TraceId};

    fn key(app: &mut App, c: KeyCode) -> Option<Request> {
        app.on_prompt_key(KeyEvent::new(c, KeyModifiers::NONE))
    }

    fn typed(app: &mut App, text: &str) -> Option<Request> {
        for c in text.chars() {
            key(app, KeyCode::Char(c));
        }
        key(app, KeyCode::Enter)
    }

    #[test]
    fn slash_filters_the_list_and_finds_spans_in_a_waterfall() {
        let mut app = busy_app();
        press(&mut app, KeyCode::Char('5'));
        app.on_key(KeyEvent::new(KeyCode::Char('/'), KeyModifiers::NONE));
        assert!(screen(&app, 160, 20)[18].contains("filter traces"));
        match typed(&mut app, "service:user-service min:20 error GET") {
            Some(Request::Traces(f)) => {
                assert_eq!(f.service.as_deref(), Some("user-service"));
                assert_eq!(f.min_duration_ms, Some(20.0));
                assert!(f.errors_only);
                assert_eq!(f.operation.as_deref(), Some("GET"));
            }
            other => panic!("{other:?}"),
        }
        // A bad filter is refused with the reason; the old one stays.
        app.on_key(KeyEvent::new(KeyCode::Char('/'), KeyModifiers::NONE));
        for _ in 0..40 {
            key(&mut app, KeyCode::Backspace);
        }
        assert_eq!(typed(&mut app, "min:soon"), None);
        assert!(
            app.toast
                .as_ref()
                .is_some_and(|t| t.error && t.text.contains("min:soon"))
        );
        assert_eq!(app.traces.filter.service.as_deref(), Some("user-service"));

        let span = |id: u64, parent: Option<u64>, name: &str| SpanRecord {
            trace_id: TraceId(1),
            span_id: SpanId(id),
            parent_id: parent.map(SpanId),
            service: "gateway".into(),
            instance: String::new(),
            name: name.into(),
            start_unix_ns: 10 + id,
            duration_ns: 100,
            error: false,
            attributes: vec![],
            events: vec![],
        };
        app.traces.loading = Some(TraceId(1));
        app.on_reply(Reply::Trace(
            TraceId(1),
            Ok(vec![
                span(1, None, "root"),
                span(2, Some(1), "charge card"),
                span(3, Some(1), "charge again"),
            ]),
        ));
        app.on_key(KeyEvent::new(KeyCode::Char('/'), KeyModifiers::NONE));
        assert_eq!(typed(&mut app, "charge"), None);
        let open = app.traces.open.as_ref().unwrap();
        assert_eq!(open.selected, 1, "the first match is selected");
        assert!(
            screen(&app, 160, 20)
                .join("\n")
                .contains("\"charge\" (2 found, n next)")
        );
        press(&mut app, KeyCode::Char('n'));
        assert_eq!(app.traces.open.as_ref().unwrap().selected, 2);
        press(&mut app, KeyCode::Char('n'));
        assert_eq!(app.traces.open.as_ref().unwrap().selected, 1);
        app.on_key(KeyEvent::new(KeyCode::Char('/'), KeyModifiers::NONE));
        for _ in 0..10 {
            key(&mut app, KeyCode::Backspace);
        }
        typed(&mut app, "nowhere");
        assert!(
            app.toast
                .as_ref()
                .is_some_and(|t| t.text.contains("no span matches"))
        );
    }
}

mod config_tab {
    use super::*;
    use devcluster::config::center::{Change, ConfigView, Entry};

    fn config_app() -> App {
        let mut snap = (*busy_snapshot()).clone();
        let entry = |key: &str, value: &str, origin: &str| Entry {
            key: key.into(),
            value: value.into(),
            origin: origin.into(),
        };
        snap.config = ConfigView {
            version: 3,
            entries: vec![
                entry("balancer.user-service.strategy", "\"p2c\"", "kv"),
                entry("traffic.rps", "50", "assets/config/staging.toml"),
                entry("timeouts.call_ms", "2000", "defaults"),
            ],
            history: vec![Change {
                version: 3,
                at_unix_ms: 45_296_000,
                who: "dashboard".into(),
                key: "balancer.user-service.strategy".into(),
                old: Some("\"round_robin\"".into()),
                new: Some("\"p2c\"".into()),
                applied_in_us: 180,
            }],
            file_error: None,
            env: String::new(),
            running: [
                ("gateway".to_string(), 3),
                ("user-service-2".to_string(), 2),
            ]
            .into(),
        };
        let mut app = app();
        app.on_snapshot(Arc::new(snap));
        press(&mut app, KeyCode::Char('6'));
        app
    }

    fn key(app: &mut App, code: KeyCode) -> Option<Request> {
        if app.config.editing.is_some() {
            return app.on_config_key(KeyEvent::new(code, KeyModifiers::NONE));
        }
        app.on_key(KeyEvent::new(code, KeyModifiers::NONE))
    }

    #[test]
    fn keys_values_origins_and_history() {
        let app = config_app();
        let lines = screen(&app, 160, 30);
        let all = lines.join("\n");
        // A tree: the section, then its keys without the section's name.
        let at = |t: &str| {
            lines
                .iter()
                .position(|l| l.contains(t))
                .unwrap_or_else(|| panic!("{t}: {all}"))
        };
        assert_eq!(at("▾ traffic") + 1, at(" rps "), "{all}");
        let row = &lines[at(" rps ")];
        assert!(
            row.contains("50") && row.contains("assets/config/staging.toml"),
            "{row}"
        );
        assert!(all.contains("Config v3"), "{all}");
        assert!(
            all.contains("v3 12:34:56 dashboard balancer.user-service.strategy"),
            "{all}"
        );
        assert!(all.contains("\"round_robin\" → \"p2c\""), "{all}");
        assert!(all.contains("Running under"), "{all}");
        let row = |id: &str| {
            lines
                .iter()
                .find(|l| l.contains(id) && l.contains(" v"))
                .cloned()
        };
        assert!(
            row("user-service-2").is_some_and(|l| l.contains("v2")),
            "{all}"
        );
        assert!(row("gateway ").is_some_and(|l| l.contains("v3")), "{all}");
    }

    #[test]
    fn an_edit_is_sent_and_a_refusal_stays_in_place_until_fixed() {
        let mut app = config_app();
        // Rows: ▾ balancer, its key, ▾ traffic, rps.
        for _ in 0..3 {
            key(&mut app, KeyCode::Char('j'));
        }
        assert_eq!(
            key(&mut app, KeyCode::Enter),
            None,
            "Enter opens the editor"
        );
        assert_eq!(app.config.editing.as_ref().unwrap().text.value(), "50");
        key(&mut app, KeyCode::Backspace);
        key(&mut app, KeyCode::Backspace);
        for c in "lots".chars() {
            key(&mut app, KeyCode::Char(c));
        }
        assert_eq!(
            key(&mut app, KeyCode::Enter),
            Some(Request::ConfigSet {
                key: "traffic.rps".into(),
                value: Some("lots".into())
            })
        );
        app.on_reply(Reply::ConfigSet(
            "traffic.rps".into(),
            Err("refused: traffic.rps = lots: invalid type: string \"lots\", expected u32".into()),
        ));
        let all = screen(&app, 160, 30).join("\n");
        assert!(
            all.contains("traffic.rps = lots "),
            "the value stays: {all}"
        );
        assert!(
            all.contains("refused: traffic.rps = lots: invalid type"),
            "{all}"
        );
        for _ in 0..4 {
            key(&mut app, KeyCode::Backspace);
        }
        key(&mut app, KeyCode::Char('7'));
        key(&mut app, KeyCode::Char('5'));
        assert!(
            app.config.editing.as_ref().unwrap().error.is_none(),
            "typing clears it"
        );
        assert!(matches!(
            key(&mut app, KeyCode::Enter),
            Some(Request::ConfigSet { .. })
        ));
        app.on_reply(Reply::ConfigSet(
            "traffic.rps".into(),
            Ok("traffic.rps: 50 → 75 (v4)".into()),
        ));
        assert!(app.config.editing.is_none(), "accepted: the editor closes");
        assert!(
            app.toast
                .as_ref()
                .is_some_and(|t| t.text.contains("50 → 75"))
        );
    }

    #[test]
    fn sections_fold_and_unfold() {
        let mut app = config_app();
        key(&mut app, KeyCode::Char('j'));
        key(&mut app, KeyCode::Char(' '));
        let all = screen(&app, 160, 30).join("\n");
        assert!(all.contains("▸ balancer") && all.contains("1 key"), "{all}");
        assert!(!all.contains("│    user-service.strategy"), "folded: {all}");
        assert_eq!(app.config.selected, 0, "the folded section is selected");
        key(&mut app, KeyCode::Enter);
        let all = screen(&app, 160, 30).join("\n");
        assert!(
            all.contains("▾ balancer") && all.contains("    user-service.strategy"),
            "{all}"
        );
        assert!(
            app.config.editing.is_none(),
            "Enter on a section unfolds, it does not edit"
        );
    }

    #[test]
    fn a_refused_hand_edit_of_the_file_is_shown() {
        let mut app = config_app();
        let mut snap = (*app.snapshot).clone();
        snap.config.file_error = Some(
            "mine.toml: traffic.rps = \"lots\": expected u32 (the previous config stays live)"
                .into(),
        );
        app.on_snapshot(Arc::new(snap));
        let all = screen(&app, 160, 30).join("\n");
        assert!(
            all.contains("The config file's last edit was refused"),
            "{all}"
        );
        assert!(all.contains("(the previous config stays live)"), "{all}");
        assert!(all.contains("▾ traffic"), "the keys still show: {all}");
    }

    #[test]
    fn switching_environment_shows_the_diff_and_waits_for_y() {
        let mut app = config_app();
        assert_eq!(key(&mut app, KeyCode::Char('E')), None, "a prompt opens");
        let typed =
            |app: &mut App, code| app.on_prompt_key(KeyEvent::new(code, KeyModifiers::NONE));
        for _ in 0.."development".len() {
            typed(&mut app, KeyCode::Backspace);
        }
        for c in "staging".chars() {
            typed(&mut app, KeyCode::Char(c));
        }
        assert_eq!(
            typed(&mut app, KeyCode::Enter),
            Some(Request::EnvDiff("staging".into()))
        );
        app.on_reply(Reply::EnvDiff(
            "staging".into(),
            Ok(vec![Change {
                version: 4,
                at_unix_ms: 0,
                who: "env".into(),
                key: "traffic.rps".into(),
                old: Some("20".into()),
                new: Some("50".into()),
                applied_in_us: 0,
            }]),
        ));
        let all = screen(&app, 160, 30).join("\n");
        assert!(all.contains("Switch environment"), "{all}");
        assert!(all.contains("→ staging"), "{all}");
        assert!(
            all.contains("traffic.rps") && all.contains("20 → 50"),
            "{all}"
        );
        let y = KeyEvent::new(KeyCode::Char('y'), KeyModifiers::NONE);
        assert_eq!(
            app.on_env_preview_key(y),
            Some(Request::EnvSwitch("staging".into()))
        );
        assert!(app.config.env_preview.is_none());
        // The header follows the cluster's environment.
        let mut snap = (*app.snapshot).clone();
        snap.config.env = "staging".into();
        app.on_snapshot(Arc::new(snap));
        assert!(screen(&app, 160, 30)[0].contains("env staging"));
    }

    #[test]
    fn undo_and_unset_keys() {
        let mut app = config_app();
        assert_eq!(key(&mut app, KeyCode::Char('u')), Some(Request::ConfigUndo));
        assert_eq!(
            key(&mut app, KeyCode::Char('d')),
            None,
            "a section is not a key"
        );
        key(&mut app, KeyCode::Char('j'));
        assert_eq!(
            key(&mut app, KeyCode::Char('d')),
            Some(Request::ConfigSet {
                key: "balancer.user-service.strategy".into(),
                value: None
            })
        );
        key(&mut app, KeyCode::Enter);
        assert_eq!(key(&mut app, KeyCode::Esc), None);
        assert!(app.config.editing.is_none(), "Esc cancels the edit");
        assert_eq!(app.tab, Tab::Config, "and stays on the tab");
    }
}

/// A lost attached cluster: a banner says since when and when it is tried again, whole at 80
/// columns; what is shown is greyed; when it answers again the banner goes and a toast says so.
#[test]
fn a_lost_cluster_is_a_banner_over_greyed_data_until_it_answers_again() {
    use devcluster::handle::Link;
    use std::time::{Duration, Instant};
    let mut app = busy_app();
    let now = Instant::now();
    let error = "nothing answers at http://127.0.0.1:9900 (Connection refused (os error 111)): \
                 is `lgo-dash serve` running? (--admin URL or LGO_ADMIN)";
    assert!(app.on_link(Link::Lost {
        since: now - Duration::from_secs(12),
        error: error.into(),
        retry_at: now + Duration::from_millis(1500),
        ever_up: true,
    }));
    for (w, h) in [(80, 24), (160, 48)] {
        let lines = screen(&app, w, h);
        let all = lines.join("\n");
        let banner = lines[1..4].join(" ");
        let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(words(&banner).contains("cluster lost 12 s ago"), "{all}");
        assert!(words(&banner).contains("trying again in 2 s"), "{all}");
        // The dashboard's own flag in the advice, not ctl's.
        let said = error.replace("(--admin URL or LGO_ADMIN)", "(--attach URL)");
        assert!(words(&banner).contains(&words(&said)), "{w}x{h}:\n{all}");
        if w >= 160 {
            // Narrow, the banner says it and the header keeps the admin URL whole.
            assert!(all.contains("(stale)"), "last known counts marked: {all}");
        }
        // The tabs and the services are still there, below it.
        assert!(
            all.contains("1 Services") && all.contains("order-service"),
            "{all}"
        );
    }
    let mut t = Terminal::new(TestBackend::new(160, 48)).unwrap();
    t.draw(|f| draw(f, &app)).unwrap();
    let buf = t.backend().buffer();
    let (x, y) = (0..48u16)
        .flat_map(|y| (0..160u16).map(move |x| (x, y)))
        .find(|&(x, y)| buf[(x, y)].symbol() == "●" && y > 3)
        .expect("a health dot");
    assert_eq!(
        buf[(x, y)].fg,
        ratatui::style::Color::DarkGray,
        "stale health is greyed"
    );
    assert!(app.on_link(Link::Up));
    let lines = screen(&app, 80, 24);
    assert!(!lines.join("\n").contains("cluster lost"));
    assert!(
        lines[23].contains("the cluster answers again"),
        "{lines:#?}"
    );
}

/// Attaching where nothing answers says so at once rather than showing an empty cluster.
#[test]
fn attaching_where_nothing_answers_says_so() {
    use devcluster::handle::Link;
    use std::time::{Duration, Instant};
    let mut app = app();
    let now = Instant::now();
    app.on_link(Link::Lost {
        since: now,
        error: "nothing answers at http://127.0.0.1:1 (Connection refused (os error 111))".into(),
        retry_at: now + Duration::from_secs(4),
        ever_up: false,
    });
    let all = screen(&app, 80, 24).join("\n");
    assert!(all.contains("no cluster yet"), "{all}");
    assert!(all.contains("http://127.0.0.1:1"), "{all}");
    // Not an empty cluster: no count of nothing, no invitation to register into nothing.
    assert!(all.contains("not connected"), "{all}");
    assert!(all.contains("No cluster to show yet"), "{all}");
    assert!(
        !all.contains("0/0") && !all.contains("No service is registered"),
        "{all}"
    );
}

/// Esc goes back the way a pivot came, as a browser's back: a trace opened from a log line
/// closes back to the Logs tab; a trace's lines (`L`, shown at every level) close back to the
/// waterfall with the level the user had; Esc on a filtered trace list clears the filter.
#[test]
fn esc_goes_back_where_a_pivot_came_from() {
    use devcluster::telemetry::Level;
    let mut app = busy_app();
    let sum = traces_tab::summary();
    let id = sum.trace_id;
    press(&mut app, KeyCode::Char('7'));
    app.logs.level = Level::Warn;
    app.on_reply(Reply::Logs(Ok(vec![logs_tab::line(
        1,
        Level::Warn,
        "gateway",
        "slow",
        Some(id.0),
    )])));
    // A log line's trace, then Esc: back on Logs, as it was.
    assert_eq!(
        app.on_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE)),
        Some(Request::Trace(id))
    );
    assert_eq!(app.tab, Tab::Traces);
    app.on_reply(Reply::Trace(id, Ok(traces_tab::spans())));
    assert!(app.traces.open.is_some());
    press(&mut app, KeyCode::Esc);
    assert_eq!(app.tab, Tab::Logs, "back where the trace was opened from");
    assert_eq!(app.logs.level, Level::Warn);

    // From the waterfall, L shows its lines at every level; Esc puts the level back and
    // returns to the waterfall.
    press(&mut app, KeyCode::Char('5'));
    app.traces.loading = Some(id);
    app.on_reply(Reply::Trace(id, Ok(traces_tab::spans())));
    press(&mut app, KeyCode::Char('L'));
    assert_eq!(app.tab, Tab::Logs);
    assert_eq!(app.logs.level, Level::Debug);
    press(&mut app, KeyCode::Esc);
    assert_eq!(app.logs.level, Level::Warn, "the user's level again");
    assert_eq!(app.tab, Tab::Traces);
    assert!(app.traces.open.is_some(), "the waterfall it came from");

    // A filtered list: Esc clears the filter.
    press(&mut app, KeyCode::Esc);
    press(&mut app, KeyCode::Char('/'));
    for c in "DELETE".chars() {
        app.on_prompt_key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
    }
    app.on_prompt_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE));
    assert!(app.traces.filter_text.is_some());
    app.on_reply(Reply::Traces(Ok(vec![])));
    let empty = screen(&app, 80, 24).join("\n");
    assert!(empty.contains("No trace matches \"DELETE\""), "{empty}");
    press(&mut app, KeyCode::Esc);
    assert!(app.traces.filter_text.is_none(), "Esc clears the filter");
    assert!(!screen(&app, 80, 24).join("\n").contains("matching"));
}

/// A palette command the cluster refuses opens the palette again with the line, to be fixed;
/// the reason wraps above the footer rather than being cut at the edge.
#[test]
fn a_refused_palette_command_comes_back_to_be_fixed() {
    let mut app = busy_app();
    press(&mut app, KeyCode::Char(':'));
    let line = "strategy user-service fastest";
    for c in line.chars() {
        app.on_prompt_key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
    }
    let sent = app.on_prompt_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE));
    // The palette reads it; whether the cluster takes it is the cluster's call.
    let reason = "unknown strategy \"fastest\": expected one of round_robin, random, weighted, \
                  least_request, p2c, consistent_hash";
    if matches!(sent, Some(Request::Command(_))) {
        assert!(app.prompt.is_none());
        app.on_reply(Reply::Failed(reason.into()));
    }
    let prompt = app.prompt.as_ref().expect("the palette again");
    assert_eq!(prompt.text(), line);
    let all = screen(&app, 80, 24).join(" ");
    let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        words(&all).contains("least_request, p2c, consistent_hash")
            && words(&all).contains("unknown strategy"),
        "the whole reason, beside the line: {}",
        screen(&app, 80, 24).join("\n")
    );
    assert!(all.contains(line), "{all}");

    // A config edit the cluster refuses comes back the same way.
    app.prompt = None;
    press(&mut app, KeyCode::Char(':'));
    let line = "config set traffic.rps abc";
    for c in line.chars() {
        app.on_prompt_key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
    }
    let sent = app.on_prompt_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE));
    assert!(matches!(sent, Some(Request::ConfigSet { .. })), "{sent:?}");
    app.on_reply(Reply::ConfigSet(
        "traffic.rps".into(),
        Err("refused: traffic.rps = \"abc\": expected a whole number from 0 to 4294967295".into()),
    ));
    assert_eq!(
        app.prompt.as_ref().map(|p| p.text().to_string()).as_deref(),
        Some(line)
    );
}

/// The selection is a service and an instance, not a row: a service registered above the
/// selected one (or gone) moves the rows, the selection stays where the user put it.
#[test]
fn the_selection_follows_its_service_when_rows_move() {
    let mut app = app();
    press(&mut app, KeyCode::Char('j')); // user-service
    press(&mut app, KeyCode::Enter);
    press(&mut app, KeyCode::Char('j')); // its second instance
    let chosen = app
        .services
        .selected_instance(&app.snapshot)
        .unwrap()
        .view
        .id
        .clone();
    let mut snap = (*app.snapshot).clone();
    let mut instances = snap.instances.to_vec();
    instances.push(instance(
        "payments-1",
        "payments",
        7001,
        Health::Passing,
        ProcessState::External,
    ));
    snap.instances = instances.into();
    app.on_snapshot(Arc::new(snap));
    let now = app.services.selected_instance(&app.snapshot).unwrap();
    assert_eq!(now.view.id, chosen, "still the same instance");
    assert!(screen(&app, 160, 48).join("\n").contains("user-service · "));
}

/// At 80×24 the help overlay scrolls, and every binding's text can be read whole in it.
#[test]
fn help_scrolls_at_80x24_and_every_line_is_whole() {
    let mut app = busy_app();
    press(&mut app, KeyCode::Char('?'));
    let mut seen = String::new();
    let first = screen(&app, 80, 24).join("\n");
    assert!(first.contains("Keys 1–"), "{first}");
    for _ in 0..app.keymap.bindings().len() {
        seen.push_str(&screen(&app, 80, 24).join("\n"));
        press(&mut app, KeyCode::Char('j'));
    }
    for b in app.keymap.bindings() {
        assert!(
            seen.contains(b.def.help),
            "help shows {:?} whole at 80×24",
            b.def.help
        );
    }
    press(&mut app, KeyCode::Home);
    assert_eq!(screen(&app, 80, 24).join("\n"), first);
    press(&mut app, KeyCode::Esc);
    assert!(!app.help);
}

/// The footer names what each key does on this tab, fits 80 columns, and keeps `? help`.
#[test]
fn footer_hints_say_what_the_keys_do_on_each_tab() {
    let footer = |tab: char| {
        let mut app = busy_app();
        press(&mut app, KeyCode::Char(tab));
        app.toast = None;
        screen(&app, 80, 24)[23].clone()
    };
    let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    for tab in '1'..='7' {
        let f = words(&footer(tab));
        assert!(f.ends_with("? help q quit"), "tab {tab}: {f}");
    }
    let config = words(&footer('6'));
    assert!(
        config.contains("Enter edit") && !config.contains("Enter open"),
        "{config}"
    );
    // Wide, where the global hints have room too: still one meaning for Enter.
    let mut app = busy_app();
    press(&mut app, KeyCode::Char('6'));
    let wide = words(&screen(&app, 200, 24)[23]);
    assert!(
        wide.contains("Enter edit") && !wide.contains("Enter open"),
        "{wide}"
    );
    let metrics = words(&footer('4'));
    assert!(
        !metrics.contains("Enter"),
        "Enter does nothing on Metrics: {metrics}"
    );
    let breakers = words(&footer('3'));
    assert!(breakers.contains("o force open"), "{breakers}");
    assert!(breakers.contains("space cycle"), "{breakers}");
    assert!(!breakers.contains("Enter"), "{breakers}");
    // The list: its filter; the waterfall's keys only once a trace is open.
    let traces = words(&footer('5'));
    assert!(
        traces.contains("/ filter") && !traces.contains("n next") && !traces.contains("L logs"),
        "{traces}"
    );
    let mut app = busy_app();
    press(&mut app, KeyCode::Char('5'));
    let sum = traces_tab::summary();
    app.on_reply(Reply::Traces(Ok(vec![sum.clone()])));
    app.traces.loading = Some(sum.trace_id);
    app.on_reply(Reply::Trace(sum.trace_id, Ok(traces_tab::spans())));
    app.toast = None;
    let waterfall = words(&screen(&app, 120, 24)[23]);
    assert!(
        waterfall.contains("n next") && waterfall.contains("L logs"),
        "{waterfall}"
    );
    let mut app = busy_app();
    press(&mut app, KeyCode::Char('p'));
    press(&mut app, KeyCode::Char('p'));
    assert!(screen(&app, 80, 24)[23].contains("resumed: live updates again"));
}

/// Every endpoint a user needs is on screen: the gateway and the admin API in the header at
/// 80 columns (shortened) and whole at 160; `ports.*` keys show the port really bound.
#[test]
fn the_gateway_and_admin_urls_are_in_the_header_and_ports_show_what_is_bound() {
    use devcluster::config::center::{ConfigView, Entry};
    let mut snap = (*busy_snapshot()).clone();
    snap.endpoints = vec![
        Endpoint::new("registry", "http://127.0.0.1:41999"),
        Endpoint::new("gateway", "http://127.0.0.1:45901"),
        Endpoint::new("admin", "http://127.0.0.1:37531"),
    ];
    snap.config = ConfigView {
        version: 1,
        entries: vec![
            Entry {
                key: "ports.admin".into(),
                value: "9900".into(),
                origin: "defaults".into(),
            },
            Entry {
                key: "ports.gateway".into(),
                value: "8080".into(),
                origin: "defaults".into(),
            },
        ],
        ..ConfigView::default()
    };
    let mut app = app();
    app.on_snapshot(Arc::new(snap));
    let narrow = &screen(&app, 80, 24)[0];
    assert!(
        narrow.contains("gateway :45901") && narrow.contains("admin :37531"),
        "{narrow}"
    );
    let wide = &screen(&app, 160, 48)[0];
    assert!(
        wide.contains("gateway 127.0.0.1:45901") && wide.contains("admin 127.0.0.1:37531"),
        "{wide}"
    );
    assert!(wide.contains("registry 127.0.0.1:41999"), "{wide}");
    press(&mut app, KeyCode::Char('6'));
    let all = screen(&app, 160, 48).join("\n");
    assert!(all.contains("8080 → bound 45901"), "{all}");
    assert!(all.contains("9900 → bound 37531"), "{all}");
}

/// An open breaker's row says what tripped it (its window is empty once open), marked ↯, and
/// the detail pane says it in words.
#[test]
fn an_open_breaker_shows_the_figures_it_tripped_on() {
    let mut snap = (*busy_snapshot()).clone();
    let mut open = breaker("gateway->user-service", State::Open, Mode::Auto);
    open.failure_rate = 0.0;
    open.calls_in_window = 0;
    open.tripped = Some(devcluster::breaker::Tripped {
        failure_rate: 55.0,
        slow_rate: 0.0,
        calls: 20,
    });
    snap.breakers = vec![open];
    let mut app = app();
    app.on_snapshot(Arc::new(snap));
    press(&mut app, KeyCode::Char('3'));
    for (w, h) in [(80, 24), (160, 48)] {
        let all = screen(&app, w, h).join("\n");
        let row = all
            .lines()
            .find(|l| l.contains("gateway->user-service") && l.contains("open"))
            .unwrap_or_else(|| panic!("{all}"));
        assert!(row.contains("55%↯"), "{row}");
        assert!(
            all.contains("tripped   at 55% failures and 0% slow calls over 20 calls"),
            "{all}"
        );
    }
}

/// With `NO_COLOR` the screen has no colour at all, and states stay readable from their
/// symbols and words: every tab, and a waterfall with an error span.
#[test]
fn no_color_draws_without_colour_and_states_stay_readable() {
    use devcluster::telemetry::{SpanId, SpanRecord, TraceId};
    use ratatui::style::Color;
    let mut app = busy_app();
    app.theme = widgets::Theme::from_env(Some("1"), None);
    let colourless = |app: &App, what: &str| {
        let mut t = Terminal::new(TestBackend::new(160, 48)).unwrap();
        t.draw(|f| draw(f, app)).unwrap();
        let buf = t.backend().buffer().clone();
        for y in 0..48 {
            for x in 0..160 {
                let c = &buf[(x, y)];
                assert!(
                    c.fg == Color::Reset && c.bg == Color::Reset,
                    "{what}: colour at {x},{y} ({:?}/{:?}) on {:?}",
                    c.fg,
                    c.bg,
                    c.symbol()
                );
            }
        }
        (0..48u16)
            .map(|y| {
                (0..160u16)
                    .map(|x| buf[(x, y)].symbol())
                    .collect::<String>()
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let services = colourless(&app, "services");
    assert!(services.contains('●'), "{services}");
    for tab in ['2', '3', '4', '6', '7'] {
        press(&mut app, KeyCode::Char(tab));
        let screen = colourless(&app, &format!("tab {tab}"));
        if tab == '3' {
            assert!(
                screen.contains("open") && screen.contains("closed"),
                "{screen}"
            );
        }
    }
    press(&mut app, KeyCode::Char('5'));
    let span = |id: u64, parent: Option<u64>, error: bool| SpanRecord {
        trace_id: TraceId(7),
        span_id: SpanId(id),
        parent_id: parent.map(SpanId),
        service: format!("svc-{id}"),
        instance: String::new(),
        name: format!("op {id}"),
        start_unix_ns: 1_000_000_000 + id * 1_000_000,
        duration_ns: 5_000_000,
        error,
        attributes: vec![],
        events: vec![],
    };
    app.traces.loading = Some(TraceId(7));
    app.on_reply(Reply::Trace(
        TraceId(7),
        Ok(vec![span(1, None, false), span(2, Some(1), true)]),
    ));
    let waterfall = colourless(&app, "waterfall");
    assert!(
        waterfall.contains("✖ op 2"),
        "the error is marked: {waterfall}"
    );
    press(&mut app, KeyCode::Char('?'));
    colourless(&app, "help");
}

/// The mouse: a click on a tab's title switches to it (below the attach banner too), the wheel
/// moves the selection, and `m` turns mouse capture off for the terminal's own selection.
#[test]
fn a_click_on_a_tab_switches_and_the_wheel_scrolls() {
    use ratatui::crossterm::event::{MouseButton, MouseEvent, MouseEventKind};
    let mut app = busy_app();
    let lines = screen(&app, 160, 48);
    let tabs_row = lines.iter().position(|l| l.contains("3 Breakers")).unwrap();
    let x = lines[tabs_row].find("Breakers").unwrap();
    let x = lines[tabs_row][..x].chars().count() as u16;
    let mouse = |kind, column, row| MouseEvent {
        kind,
        column,
        row,
        modifiers: KeyModifiers::NONE,
    };
    app.on_mouse(mouse(
        MouseEventKind::Down(MouseButton::Left),
        x,
        tabs_row as u16,
    ));
    assert_eq!(app.tab, Tab::Breakers);
    assert_eq!(app.breakers.selected, 0);
    app.on_mouse(mouse(MouseEventKind::ScrollDown, 40, 10));
    assert_eq!(app.breakers.selected, 1);
    // With the attach banner the tab bar is lower: the click follows it.
    app.on_link(devcluster::handle::Link::Connecting);
    let lines = screen(&app, 160, 48);
    let tabs_row = lines.iter().position(|l| l.contains("1 Services")).unwrap();
    assert_eq!(tabs_row, 2);
    app.on_mouse(mouse(
        MouseEventKind::Down(MouseButton::Left),
        3,
        tabs_row as u16,
    ));
    assert_eq!(app.tab, Tab::Services);
    // A click elsewhere does nothing.
    app.on_mouse(mouse(MouseEventKind::Down(MouseButton::Left), x, 20));
    assert_eq!(app.tab, Tab::Services);
    press(&mut app, KeyCode::Char('m'));
    assert!(!app.mouse);
    assert!(screen(&app, 160, 48)[47].contains("mouse off"));
}

/// Dispatch, help and the footer come from one table: each binding's keys do what help says on
/// the tab it names, and those with a footer label are in that tab's footer with their key.
#[test]
fn every_binding_dispatches_and_shows_in_help_and_the_footer() {
    use super::action::Scope;
    use super::keymap::Keymap;
    use super::render::footer_hints;
    let map = Keymap::default();
    for b in map.bindings() {
        let tabs: Vec<Tab> = match b.def.scope {
            Scope::Global => Tab::ALL
                .into_iter()
                .filter(|t| !map.hidden_on(*t, b))
                .collect(),
            Scope::Tab(t) => vec![t],
        };
        assert!(!tabs.is_empty(), "{} acts nowhere", b.def.name);
        for tab in &tabs {
            for key in &b.keys {
                let mods = if key.ctrl {
                    KeyModifiers::CONTROL
                } else {
                    KeyModifiers::NONE
                };
                let got = map.action(*tab, KeyEvent::new(key.code, mods));
                // A global key a tab takes for itself is that tab's.
                if b.def.scope == Scope::Global
                    && map
                        .bindings()
                        .iter()
                        .any(|o| o.def.scope == Scope::Tab(*tab) && o.keys.contains(key))
                {
                    continue;
                }
                assert_eq!(got, Some(b.def.action.clone()), "{key} on {tab:?}");
            }
            if let Some(label) = b.def.footer
                && !b.def.idle_on.contains(tab)
            {
                let hints = footer_hints(&map, *tab);
                let first = b.keys[0].to_string();
                assert!(
                    hints
                        .iter()
                        .any(|h| h.label == label && h.keys.starts_with(&first)),
                    "footer on {tab:?} has {first} {label}"
                );
            }
        }
    }
}

/// A user's keymap file remaps keys in the running dashboard: its help and footer follow.
#[test]
fn a_remapped_key_drives_the_app_and_shows_in_help_and_footer() {
    use super::keymap::Keymap;
    let mut app = busy_app();
    app.keymap = Arc::new(
        Keymap::with(
            "[services]\nkill = \"X\"\n[global]\nhelp = [\"F1\"]\n",
            "test",
        )
        .unwrap(),
    );
    assert_eq!(
        press(&mut app, KeyCode::Char('x')),
        None,
        "x no longer kills"
    );
    match press(&mut app, KeyCode::Char('X')) {
        Some(Command::Kill { .. }) => {}
        other => panic!("X kills: {other:?}"),
    }
    let footer = screen(&app, 160, 24)[23].clone();
    assert!(
        footer.contains("X kill") && footer.contains("F1 help"),
        "{footer}"
    );
    press(&mut app, KeyCode::Char('?'));
    assert!(!app.help, "? is no longer help");
    press(&mut app, KeyCode::F(1));
    assert!(app.help);
    let all = screen(&app, 120, 60).join("\n");
    assert!(all.contains("F1") && all.contains("X "), "{all}");
}

/// `/` filters the list of every tab: the rows kept hold the text (any case), the match is
/// marked, the title says how many are kept, the selection acts on what is shown, Esc clears.
#[test]
fn slash_filters_every_list_and_marks_the_match() {
    fn filter(app: &mut App, text: &str) {
        assert_eq!(press(app, KeyCode::Char('/')), None);
        assert!(app.prompt.is_some(), "/ opens the filter on {:?}", app.tab);
        for c in text.chars() {
            app.on_prompt_key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
        }
        app.on_prompt_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE));
    }
    /// Whether `text` is on screen with its first character drawn in the theme's match style.
    fn marked(app: &App, text: &str) -> bool {
        let mut t = Terminal::new(TestBackend::new(160, 48)).unwrap();
        t.draw(|f| draw(f, app)).unwrap();
        let buf = t.backend().buffer();
        (0..48).any(|y| {
            let row: String = (0..160).map(|x| buf[(x, y)].symbol()).collect();
            row.find(text).is_some_and(|at| {
                let x = row[..at].chars().count() as u16;
                buf[(x, y)]
                    .modifier
                    .contains(app.theme.matched.add_modifier)
            })
        })
    }

    // Services: an instance id finds its service and only that instance.
    let mut app = busy_app();
    filter(&mut app, "SERVICE-3");
    let all = screen(&app, 160, 48).join("\n");
    assert!(all.contains("Services 1/2"), "{all}");
    assert!(
        all.contains("user-service · 1 of 3 instances · / \"SERVICE-3\" (Esc clears)"),
        "{all}"
    );
    assert!(
        all.contains("user-service-3") && !all.contains("user-service-1"),
        "{all}"
    );
    assert!(!all.contains("order-service-1"), "{all}");
    assert!(marked(&app, "service-3"), "{all}");
    press(&mut app, KeyCode::Enter);
    match press(&mut app, KeyCode::Char('x')) {
        Some(Command::Kill { id, .. }) => assert_eq!(id, "user-service-3"),
        other => panic!("x kills the instance shown: {other:?}"),
    }
    press(&mut app, KeyCode::Esc);
    press(&mut app, KeyCode::Esc);
    assert!(
        screen(&app, 160, 48).join("\n").contains("order-service"),
        "Esc cleared it"
    );

    // Breakers: by name; the selected one is the one shown.
    press(&mut app, KeyCode::Char('3'));
    filter(&mut app, "user");
    let all = screen(&app, 160, 48).join("\n");
    assert!(all.contains("(1 of 2, Esc clears)"), "{all}");
    assert!(!all.contains("gateway->order-service"), "{all}");
    assert!(marked(&app, "user"), "{all}");
    match press(&mut app, KeyCode::Char('c')) {
        Some(Command::BreakerMode { name, .. }) => assert_eq!(name, "gateway->user-service"),
        other => panic!("{other:?}"),
    }
    press(&mut app, KeyCode::Esc);
    assert!(
        screen(&app, 160, 48)
            .join("\n")
            .contains("gateway->order-service")
    );

    // Balancer: the picks stream by chosen instance.
    press(&mut app, KeyCode::Char('2'));
    press(&mut app, KeyCode::Char('j'));
    filter(&mut app, "service-3");
    let all = screen(&app, 160, 48).join("\n");
    assert!(
        all.contains("Recent picks (newest first) · / \"service-3\" (1 of 2"),
        "{all}"
    );
    assert!(!all.contains("(seq 1)"), "{all}");
    assert!(marked(&app, "service-3 2/2"), "{all}");

    // Config: keys by their whole name, their sections unfolded even when folded before.
    let entry = |key: &str| devcluster::config::center::Entry {
        key: key.into(),
        value: "1".into(),
        origin: "defaults".into(),
    };
    let mut snap = (*app.snapshot).clone();
    snap.config.entries = vec![
        entry("timeouts.call_ms"),
        entry("traffic.enabled"),
        entry("traffic.rps"),
        entry("user.rps_limit"),
    ];
    app.on_snapshot(Arc::new(snap));
    press(&mut app, KeyCode::Char('6'));
    press(&mut app, KeyCode::Char('j'));
    press(&mut app, KeyCode::Char('j'));
    press(&mut app, KeyCode::Char(' '));
    assert!(app.config.folded.contains("traffic"));
    filter(&mut app, "RPS");
    let all = screen(&app, 160, 48).join("\n");
    assert!(all.contains("(2 of 4, Esc clears)"), "{all}");
    assert!(
        all.contains("rps_limit") && all.contains("    rps "),
        "{all}"
    );
    assert!(
        !all.contains("call_ms") && !all.contains("enabled"),
        "{all}"
    );
    assert!(marked(&app, "rps_limit"), "{all}");
    press(&mut app, KeyCode::Char('j'));
    press(&mut app, KeyCode::Enter);
    assert_eq!(
        app.config.editing.as_ref().map(|e| e.key.as_str()),
        Some("traffic.rps")
    );
    app.config.editing = None;
    press(&mut app, KeyCode::Esc);
    assert!(screen(&app, 160, 48).join("\n").contains("call_ms"));
    // A filter nothing matches says so.
    press(&mut app, KeyCode::Char('1'));
    filter(&mut app, "no-such-thing");
    let all = screen(&app, 160, 48).join("\n");
    assert!(
        all.contains("No service or instance matches \"no-such-thing\""),
        "{all}"
    );
}

/// Every text input is the same line editor: word deletion and moves work in the `/` prompt,
/// the route inspector and the Config editor, and the terminal's cursor is where typing goes.
#[test]
fn text_inputs_share_one_editor_and_show_the_cursor_where_typing_goes() {
    let ctrl = |c| KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL);
    let plain = |c| KeyEvent::new(c, KeyModifiers::NONE);
    let cursor = |app: &App| {
        let mut t = Terminal::new(TestBackend::new(100, 30)).unwrap();
        t.draw(|f| draw(f, app)).unwrap();
        let p = t.get_cursor_position().unwrap();
        let row: String = (0..100)
            .map(|x| t.backend().buffer()[(x, p.y)].symbol().to_string())
            .collect();
        let before: String = row.chars().take(usize::from(p.x)).collect();
        (
            before,
            t.backend().buffer()[(p.x, p.y)].symbol().to_string(),
        )
    };

    let mut app = busy_app();
    press(&mut app, KeyCode::Char('3'));
    press(&mut app, KeyCode::Char('/'));
    for c in "gateway user".chars() {
        app.on_prompt_key(plain(KeyCode::Char(c)));
    }
    app.on_prompt_key(ctrl('w'));
    assert_eq!(app.prompt.as_ref().unwrap().text(), "gateway ");
    app.on_prompt_key(plain(KeyCode::Home));
    app.on_prompt_key(plain(KeyCode::Char('>')));
    let (before, at) = cursor(&app);
    assert!(before.ends_with("› >"), "{before:?}");
    assert_eq!(at, "g");
    app.on_prompt_key(plain(KeyCode::Esc));

    press(&mut app, KeyCode::Char('e'));
    for c in "/api/users/7".chars() {
        app.on_inspector_key(plain(KeyCode::Char(c)));
    }
    for _ in 0..2 {
        app.on_inspector_key(plain(KeyCode::Left));
    }
    app.on_inspector_key(plain(KeyCode::Backspace));
    assert_eq!(app.inspector.as_ref().unwrap().input.value(), "/api/user/7");
    let (before, at) = cursor(&app);
    assert!(before.ends_with("› /api/user"), "{before:?}");
    assert_eq!(at, "/");
}

/// The `:` palette runs `ctl` commands typed in the dashboard: Tab completes commands and the
/// cluster's names, a mistake is said and kept for fixing, ↑ recalls, reading commands show
/// their tab.
#[test]
fn the_palette_completes_runs_and_recalls_ctl_commands() {
    fn typed(app: &mut App, text: &str) -> Option<Request> {
        let mut last = None;
        for c in text.chars() {
            let code = match c {
                '\t' => KeyCode::Tab,
                '\n' => KeyCode::Enter,
                '↑' => KeyCode::Up,
                c => KeyCode::Char(c),
            };
            last = app.on_prompt_key(KeyEvent::new(code, KeyModifiers::NONE));
        }
        last
    }
    fn line(app: &App) -> String {
        app.prompt
            .as_ref()
            .map(|p| p.text().to_string())
            .unwrap_or_default()
    }
    let mut app = busy_app();
    assert_eq!(press(&mut app, KeyCode::Char(':')), None);
    typed(&mut app, "br\t");
    assert_eq!(line(&app), "breaker");
    let shown = screen(&app, 100, 30).join("\n");
    assert!(
        shown.contains("breaker  breakers"),
        "what Tab offers is shown: {shown}"
    );
    typed(&mut app, " gateway->u\t");
    assert_eq!(line(&app), "breaker gateway->user-service ");
    typed(&mut app, "o\t");
    assert_eq!(line(&app), "breaker gateway->user-service open ");
    match typed(&mut app, "\n") {
        Some(Request::Command(Command::BreakerMode { name, mode })) => {
            assert_eq!(name, "gateway->user-service");
            assert_eq!(mode, Mode::ForcedOpen);
        }
        other => panic!("{other:?}"),
    }
    assert!(app.prompt.is_none());

    // Several instances: the common part, then Tab cycles through them.
    press(&mut app, KeyCode::Char(':'));
    typed(&mut app, "kill user\t");
    assert_eq!(line(&app), "kill user-service-");
    typed(&mut app, "\t");
    assert_eq!(line(&app), "kill user-service-1");
    typed(&mut app, "\t");
    assert_eq!(line(&app), "kill user-service-2");
    match typed(&mut app, "\n") {
        Some(Request::Command(Command::Kill { id, .. })) => assert_eq!(id, "user-service-2"),
        other => panic!("{other:?}"),
    }

    // A mistake: said in clap's words, the line kept to fix.
    press(&mut app, KeyCode::Char(':'));
    assert_eq!(typed(&mut app, "kil user-service-2\n"), None);
    assert_eq!(line(&app), "kil user-service-2");
    let toast = app.toast.as_ref().unwrap();
    assert!(
        toast.error && toast.text.contains("'kill'"),
        "{}",
        toast.text
    );
    app.on_prompt_key(KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE));
    assert!(app.prompt.is_none());

    // ↑ recalls the newest line first.
    press(&mut app, KeyCode::Char(':'));
    typed(&mut app, "↑");
    assert_eq!(line(&app), "kill user-service-2");
    typed(&mut app, "↑");
    assert_eq!(line(&app), "breaker gateway->user-service open");
    app.on_prompt_key(KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE));

    // Reading commands show their tab with the filters given.
    press(&mut app, KeyCode::Char(':'));
    match typed(&mut app, "logs --level warn --grep refused\n") {
        Some(Request::Logs(f)) => {
            assert_eq!(f.level, Some(devcluster::telemetry::Level::Warn));
            assert_eq!(f.q.as_deref(), Some("refused"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(app.tab, Tab::Logs);
    press(&mut app, KeyCode::Char(':'));
    assert_eq!(
        typed(&mut app, "env staging\n"),
        Some(Request::EnvDiff("staging".into()))
    );
    assert_eq!(app.tab, Tab::Config);
    press(&mut app, KeyCode::Char(':'));
    match typed(&mut app, "route explain GET /api/users/7\n") {
        Some(Request::Explain { method, path }) => {
            assert_eq!((method.as_str(), path.as_str()), ("GET", "/api/users/7"));
        }
        other => panic!("{other:?}"),
    }
    assert!(app.inspector.is_some());
    app.inspector = None;
    press(&mut app, KeyCode::Char(':'));
    typed(&mut app, "q\n");
    assert!(app.quit);
}

/// Every tab at 80×24 and 160×48, a trace's waterfall and help, as text, against the snapshots
/// in `app/dashboard/snapshots/`: what a change does to the screen shows as a diff to review
/// (`cargo insta review`, or `INSTA_UPDATE=always cargo test -p lgo-dash` to accept it).
#[test]
fn every_tab_as_it_looks_at_80x24_and_160x48() {
    use devcluster::telemetry::Level;
    let text = |app: &App, w, h| {
        screen(app, w, h)
            .iter()
            .map(|l| l.trim_end().to_string())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let mut app = busy_app();
    let sum = traces_tab::summary();
    let id = sum.trace_id;
    app.on_reply(Reply::Traces(Ok(vec![sum])));
    app.on_reply(Reply::Logs(Ok(vec![
        logs_tab::line(
            1,
            Level::Info,
            "user-service",
            "user 999 not found",
            Some(0xabc),
        ),
        logs_tab::line(
            2,
            Level::Warn,
            "gateway",
            "user-service-1 failed: refused",
            None,
        ),
    ])));
    for (w, h) in [(80, 24), (160, 48)] {
        for tab in Tab::ALL {
            app.tab = tab;
            insta::assert_snapshot!(
                format!("tab_{}_{w}x{h}", tab.title().to_lowercase()),
                text(&app, w, h)
            );
        }
        app.tab = Tab::Traces;
        app.traces.loading = Some(id);
        app.on_reply(Reply::Trace(id, Ok(traces_tab::spans())));
        insta::assert_snapshot!(format!("waterfall_{w}x{h}"), text(&app, w, h));
        app.traces.open = None;
        app.help = true;
        insta::assert_snapshot!(format!("help_{w}x{h}"), text(&app, w, h));
        app.help = false;
    }
}

/// The trace list and the log lines keep their identifying text whole at every common size:
/// a trace's root operation and the first services of its path, the instance a line came from
/// (the grpc instances are the longest names); the trace id and the time go first instead.
#[test]
fn trace_and_log_rows_keep_their_names_whole_at_every_size() {
    use devcluster::telemetry::Level;
    let mut app = busy_app();
    let mut sum = traces_tab::summary();
    sum.services = vec![
        "gateway".into(),
        "order-service".into(),
        "user-service-grpc".into(),
    ];
    app.on_reply(Reply::Traces(Ok(vec![sum])));
    let mut line = logs_tab::line(
        1,
        Level::Info,
        "user-service-grpc",
        "passing: back in rotation (was critical)",
        Some(0xabc),
    );
    line.instance = "user-service-1-grpc".into();
    app.on_reply(Reply::Logs(Ok(vec![line])));
    for (w, h) in [(80, 24), (100, 30), (160, 48), (220, 60)] {
        app.tab = Tab::Traces;
        let all = screen(&app, w, h).join("\n");
        for whole in ["GET /api/orders/{id}", "gateway → order-service", "40.0ms"] {
            assert!(
                all.contains(whole),
                "traces at {w}×{h}: {whole} cut:\n{all}"
            );
        }
        // The path's last service whole, or said to go on: never a name cut in two.
        assert!(
            all.contains("→ user-service-grpc") || all.contains("order-service → …"),
            "traces at {w}×{h}:\n{all}"
        );
        app.tab = Tab::Logs;
        let all = screen(&app, w, h).join("\n");
        for whole in ["user-service-1-grpc", "passing: back in rotation"] {
            assert!(all.contains(whole), "logs at {w}×{h}: {whole} cut:\n{all}");
        }
    }
}

/// A click on a list's row selects it, whichever pane it is in; a click on the selected row
/// opens it, as Enter does.
#[test]
fn clicking_a_row_selects_it_and_clicking_it_again_opens_it() {
    use ratatui::crossterm::event::{MouseButton, MouseEvent, MouseEventKind};
    fn click_on(app: &mut App, text: &str, after_col: u16) -> Option<Request> {
        let rows = screen(app, 160, 48);
        let (y, line) = rows
            .iter()
            .enumerate()
            .skip(2)
            .find(|(_, l)| {
                l.chars()
                    .skip(usize::from(after_col))
                    .collect::<String>()
                    .contains(text)
            })
            .unwrap_or_else(|| panic!("{text} not on screen:\n{}", rows.join("\n")));
        let skipped: String = line.chars().skip(usize::from(after_col)).collect();
        let x = after_col + skipped[..skipped.find(text).unwrap()].chars().count() as u16;
        app.on_mouse(MouseEvent {
            kind: MouseEventKind::Down(MouseButton::Left),
            column: x,
            row: y as u16,
            modifiers: KeyModifiers::NONE,
        })
    }
    let mut app = busy_app();
    // The services pane, then an instance in the table beside it.
    click_on(&mut app, "user-service ", 0);
    assert_eq!(
        app.services
            .selected_instance(&app.snapshot)
            .unwrap()
            .view
            .service,
        "user-service"
    );
    click_on(&mut app, "user-service-3", 24);
    match press(&mut app, KeyCode::Char('x')) {
        Some(Command::Kill { id, .. }) => assert_eq!(id, "user-service-3"),
        other => panic!("{other:?}"),
    }
    // Breakers: the clicked row is the one the keys act on.
    press(&mut app, KeyCode::Char('3'));
    click_on(&mut app, "gateway->user-service", 0);
    match press(&mut app, KeyCode::Char('c')) {
        Some(Command::BreakerMode { name, .. }) => assert_eq!(name, "gateway->user-service"),
        other => panic!("{other:?}"),
    }
    // Logs: a line selected, then opened: its trace.
    press(&mut app, KeyCode::Char('7'));
    app.on_reply(Reply::Logs(Ok(vec![
        logs_tab::line(
            1,
            devcluster::telemetry::Level::Info,
            "user-service",
            "first line",
            Some(0xabc),
        ),
        logs_tab::line(
            2,
            devcluster::telemetry::Level::Info,
            "gateway",
            "second line",
            None,
        ),
    ])));
    assert_eq!(click_on(&mut app, "first line", 0), None);
    assert_eq!(app.logs.selected, Some(0));
    assert_eq!(
        click_on(&mut app, "first line", 0),
        Some(Request::Trace(devcluster::telemetry::TraceId(0xabc)))
    );
}

/// Enter on an instance shows it in detail: now, its health timeline (the cluster's lines about
/// it), the picks that chose it and the breakers in front of its service; Enter again opens its
/// newest pick's trace, L its log lines, Esc goes back.
#[test]
fn an_instance_in_detail_with_its_timeline_picks_and_pivots() {
    use devcluster::telemetry::Level;
    let key = |app: &mut App, c: KeyCode| app.on_key(KeyEvent::new(c, KeyModifiers::NONE));
    let mut app = busy_app();
    key(&mut app, KeyCode::Char('j'));
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Char('j'));
    key(&mut app, KeyCode::Char('j'));
    let asked = key(&mut app, KeyCode::Enter);
    match &asked {
        Some(Request::InstanceEvents(id, f)) => {
            assert_eq!(id, "user-service-3");
            assert_eq!(f.q.as_deref(), Some("user-service-3"));
        }
        other => panic!("{other:?}"),
    }
    app.on_reply(Reply::InstanceEvents(
        "user-service-3".into(),
        Ok(vec![
            logs_tab::line(
                1,
                Level::Warn,
                "registry",
                "critical: out of rotation (was passing)",
                None,
            ),
            logs_tab::line(
                2,
                Level::Info,
                "registry",
                "passing: back in rotation (was critical)",
                None,
            ),
        ]),
    ));
    let all = screen(&app, 160, 48).join("\n");
    for text in [
        "user-service-3 · Esc back",
        "Health timeline",
        "critical: out of rotation (was passing)",
        "passing: back in rotation",
        "Picks that chose it (1)",
        "retry 2 lower cost than the other draw (seq 2)",
        "gateway->user-service",
    ] {
        assert!(all.contains(text), "{text}:\n{all}");
    }
    assert!(
        !all.contains("INSTANCE "),
        "the detail takes the instance table's place"
    );
    // At 80 columns the breaker's sentence wraps rather than being cut.
    let narrow = screen(&app, 80, 24).join(" ");
    let words = |s: &str| {
        s.split(|c: char| c.is_whitespace() || c == '│')
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert!(
        words(&narrow).contains("failed of 10 calls in its window"),
        "{}",
        screen(&app, 80, 24).join("\n")
    );
    // ↑ in detail: the previous instance, in detail.
    match key(&mut app, KeyCode::Char('k')) {
        Some(Request::InstanceEvents(id, _)) => assert_eq!(id, "user-service-2"),
        other => panic!("{other:?}"),
    }
    assert!(
        screen(&app, 160, 48)
            .join("\n")
            .contains("user-service-2 · Esc back")
    );
    key(&mut app, KeyCode::Char('j'));
    // L: its log lines.
    match key(&mut app, KeyCode::Char('L')) {
        Some(Request::Logs(f)) => assert_eq!(f.q.as_deref(), Some("user-service-3")),
        other => panic!("{other:?}"),
    }
    assert_eq!(app.tab, Tab::Logs);
    key(&mut app, KeyCode::Char('1'));
    // Enter: its newest pick's trace.
    match key(&mut app, KeyCode::Enter) {
        Some(Request::Trace(id)) => assert_eq!(id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736"),
        other => panic!("{other:?}"),
    }
    assert_eq!(app.tab, Tab::Traces);
    key(&mut app, KeyCode::Char('1'));
    key(&mut app, KeyCode::Esc);
    assert!(app.services.detail.is_none());
    assert!(screen(&app, 160, 48).join("\n").contains("INSTANCE "));
}

/// Enter on a breaker: the traces that failed through its target, in the Traces tab.
#[test]
fn enter_on_a_breaker_shows_the_failed_traces_through_it() {
    let mut app = busy_app();
    press(&mut app, KeyCode::Char('3'));
    press(&mut app, KeyCode::Char('j'));
    // It opened at 01:02:03.045 over a 10 s window: the traces of those 10 s.
    match app.on_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE)) {
        Some(Request::Traces(f)) => {
            assert_eq!(f.service.as_deref(), Some("user-service"));
            assert!(f.errors_only);
            assert_eq!(f.since_unix_ms, Some(3_713_045));
            assert_eq!(f.until_unix_ms, Some(3_723_045));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(app.tab, Tab::Traces);
    assert_eq!(
        app.traces.filter_text.as_deref(),
        Some("service:user-service from:01:01:53.045 to:01:02:03.045 error")
    );
    let toast = app
        .toast
        .as_ref()
        .map(|t| t.text.clone())
        .unwrap_or_default();
    assert!(
        toast.contains("in the 10s before gateway->user-service opened at 01:02:03.045"),
        "{toast}"
    );

    // A probe that failed re-opened it later: still the window before it tripped from closed.
    let mut snap = (*busy_snapshot()).clone();
    for b in &mut snap.breakers {
        let tripped = b.transitions.clone();
        for (at, from, to) in [
            (3_728_045, State::Open, State::HalfOpen),
            (3_728_050, State::HalfOpen, State::Open),
        ] {
            b.transitions.push(Transition {
                at_unix_ms: at,
                from,
                to,
                reason: "probe failed".into(),
            });
        }
        assert!(!tripped.is_empty());
    }
    let mut app = self::app();
    app.on_snapshot(Arc::new(snap));
    press(&mut app, KeyCode::Char('3'));
    press(&mut app, KeyCode::Char('j'));
    match app.on_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE)) {
        Some(Request::Traces(f)) => {
            assert_eq!(
                f.until_unix_ms,
                Some(3_723_045),
                "the trip, not the re-open"
            );
        }
        other => panic!("{other:?}"),
    }

    // A breaker that never opened: every recent failed trace through its target.
    let mut snap = (*busy_snapshot()).clone();
    for b in &mut snap.breakers {
        b.transitions.clear();
    }
    let mut app = self::app();
    app.on_snapshot(Arc::new(snap));
    press(&mut app, KeyCode::Char('3'));
    match app.on_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE)) {
        Some(Request::Traces(f)) => {
            assert_eq!(f.service.as_deref(), Some("order-service"));
            assert_eq!((f.since_unix_ms, f.until_unix_ms), (None, None));
        }
        other => panic!("{other:?}"),
    }
}

/// At 200 columns and more, the panes stacked on smaller terminals stand side by side: the
/// instance's detail beside the instances, a breaker's detail beside the breakers.
#[test]
fn wide_terminals_put_detail_panes_beside_the_lists() {
    let mut app = busy_app();
    let rows = screen(&app, 220, 60);
    let top = rows
        .iter()
        .position(|l| l.contains(" Instance "))
        .unwrap_or_else(|| panic!("{}", rows.join("\n")));
    assert!(
        rows[top].contains("1 instance ·"),
        "side by side:\n{}",
        rows.join("\n")
    );
    let narrow = screen(&app, 160, 48);
    let below = narrow
        .iter()
        .position(|l| l.contains(" Instance "))
        .unwrap();
    assert!(!narrow[below].contains("instances ·"), "stacked at 160");
    press(&mut app, KeyCode::Char('3'));
    let rows = screen(&app, 220, 60);
    let title = rows
        .iter()
        .position(|l| l.contains("Circuit breakers"))
        .unwrap();
    assert!(
        rows[title].contains("gateway->order-service · last transitions"),
        "the breaker's detail beside the table:\n{}",
        rows.join("\n")
    );
    // Its text wraps in the narrower pane rather than being cut.
    let all = rows.join("\n");
    assert!(all.contains("probe(s) half-open"), "{all}");

    // Metrics: the per-route and caller → target tables beside the services, the two charts
    // side by side.
    app.on_snapshot(Arc::new(metrics_tab::snapshot()));
    press(&mut app, KeyCode::Char('4'));
    let rows = screen(&app, 220, 60);
    let all = rows.join("\n");
    let at = |text: &str| {
        rows.iter()
            .position(|l| l.contains(text))
            .unwrap_or_else(|| panic!("{text}:\n{all}"))
    };
    assert_eq!(at("Services · last 10 s"), at("per route"), "{all}");
    assert_eq!(
        at("requests per second"),
        at("p99 latency per second"),
        "{all}"
    );
    let narrow = screen(&app, 160, 48);
    let narrow_at = |text: &str| narrow.iter().position(|l| l.contains(text)).unwrap();
    assert!(narrow_at("requests per second") < narrow_at("p99 latency per second"));

    // Traces: the list stays beside an open trace.
    press(&mut app, KeyCode::Char('5'));
    app.on_reply(Reply::Traces(Ok(vec![traces_tab::summary()])));
    let id = devcluster::telemetry::TraceId(0xabc);
    let enter = KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE);
    assert_eq!(app.on_key(enter), Some(Request::Trace(id)));
    app.on_reply(Reply::Trace(id, Ok(traces_tab::spans())));
    let rows = screen(&app, 220, 60);
    let all = rows.join("\n");
    let title = rows
        .iter()
        .position(|l| l.contains("Recent traces (1)"))
        .unwrap_or_else(|| panic!("{all}"));
    assert!(rows[title].contains("4 spans"), "{all}");
    let narrow = screen(&app, 160, 48).join("\n");
    assert!(
        narrow.contains("4 spans") && !narrow.contains("Recent traces"),
        "{narrow}"
    );
}

/// A pivot from a pick to its trace: Enter on a balancer's instances moves into its recent
/// picks; Enter there opens the selected pick's trace. The selection stays on its pick while
/// newer ones arrive above it.
#[test]
fn enter_on_a_pick_opens_its_trace() {
    let trace = |n: u128| format!("{n:032x}");
    let mut snap = (*busy_snapshot()).clone();
    for p in &mut snap.balancers[1].recent {
        p.trace_id = Some(trace(u128::from(p.seq)));
    }
    let mut app = app();
    app.on_snapshot(Arc::new(snap.clone()));
    press(&mut app, KeyCode::Char('2'));
    press(&mut app, KeyCode::Char('j')); // user-service
    press(&mut app, KeyCode::Enter); // its instances
    press(&mut app, KeyCode::Enter); // its picks, the newest selected
    let all = screen(&app, 160, 40).join("\n");
    assert!(all.contains("Enter opens its trace"), "{all}");
    let enter = KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE);
    assert_eq!(
        app.on_key(enter),
        Some(Request::Trace(devcluster::telemetry::TraceId(2)))
    );
    assert_eq!(app.tab, Tab::Traces);

    press(&mut app, KeyCode::Char('2'));
    press(&mut app, KeyCode::Char('j')); // the older pick
    let mut newer = pick(3, "user-service-1", 1);
    newer.trace_id = Some(trace(3));
    snap.balancers[1].recent.push(newer);
    // A busy balancer: the picks looked at have even left its recent list.
    let gone = std::mem::take(&mut snap.balancers[1].recent);
    snap.balancers[1].recent = gone.into_iter().filter(|p| p.seq == 3).collect();
    app.on_snapshot(Arc::new(snap.clone()));
    let all = screen(&app, 160, 40).join("\n");
    assert!(all.contains("1 new (k at the top)"), "{all}");
    assert_eq!(
        app.on_key(enter),
        Some(Request::Trace(devcluster::telemetry::TraceId(1))),
        "still the pick the cursor was put on"
    );
    // Up at the top shows the newest.
    press(&mut app, KeyCode::Char('2'));
    press(&mut app, KeyCode::Char('k'));
    press(&mut app, KeyCode::Char('k'));
    assert_eq!(
        app.on_key(enter),
        Some(Request::Trace(devcluster::telemetry::TraceId(3)))
    );

    press(&mut app, KeyCode::Char('2'));
    press(&mut app, KeyCode::Esc);
    let all = screen(&app, 160, 40).join("\n");
    assert!(
        !all.contains("Enter opens its trace"),
        "back on the instances:\n{all}"
    );
}

/// Services registered from outside say which API they came through: in the header, on their
/// row, and in their details.
#[test]
fn outside_instances_show_the_api_they_came_through() {
    let mut snap = (*snapshot()).clone();
    let mut instances: Vec<InstanceSnapshot> = snap.instances.to_vec();
    let mut nacos = instance(
        "10.0.0.7#9001#DEFAULT#DEFAULT_GROUP@@payments",
        "payments",
        9001,
        Health::Passing,
        ProcessState::External,
    );
    nacos.view.via = "nacos".into();
    let mut consul = instance(
        "billing-1",
        "billing",
        7001,
        Health::Passing,
        ProcessState::External,
    );
    consul.view.via = "consul".into();
    instances.extend([nacos, consul]);
    snap.instances = instances.into();
    let mut app = app();
    app.on_snapshot(Arc::new(snap));
    let rows = screen(&app, 160, 48);
    assert!(
        rows[0].contains("external: 1 consul, 1 nacos"),
        "header: {}",
        rows[0]
    );
    // The first service (billing) is shown: its row and its details say where it came from.
    let billing = rows
        .iter()
        .find(|r| r.contains("billing-1 "))
        .expect("the Consul instance's row");
    assert!(billing.contains("consul"), "{billing}");
    assert!(
        rows.iter()
            .any(|r| r.contains("external, registered through consul")),
        "the details pane"
    );
    // Two services down: payments, registered through Nacos.
    press(&mut app, KeyCode::Char('j'));
    press(&mut app, KeyCode::Char('j'));
    let rows = screen(&app, 160, 48);
    let payments = rows
        .iter()
        .find(|r| r.contains("10.0.0.7#9001"))
        .unwrap_or_else(|| panic!("the Nacos instance's row:\n{}", rows.join("\n")));
    assert!(payments.contains("nacos"), "{payments}");
    // At 80 columns the header leaves it to the rows (its endpoints matter more there).
    let narrow = screen(&app, 80, 24);
    assert!(!narrow[0].contains("external"), "{}", narrow[0]);
    assert!(
        narrow.iter().any(|r| r.contains("10.0.0.7#9001")),
        "the row, still"
    );
}
