//! Whole-screen tests: a fixed snapshot → App → TestBackend, and keys → actions → commands.

use super::action::{Action, action_for};
use super::app::{App, Command, Header};
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
            protocol: "http".into(),
            health_path: "/health".into(),
            health,
            checks: vec![CheckView {
                id: format!("service:{id}"),
                name: "http".into(),
                kind: "http".into(),
                status: health,
                output,
                notes: String::new(),
                definition: format!("GET http://127.0.0.1:{port}/health every 1s"),
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
        ],
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
    let action = action_for(KeyEvent::new(code, KeyModifiers::NONE))?;
    app.on_action(action)
}

#[test]
fn services_tab_shows_services_instances_and_their_health() {
    let mut app = app();
    press(&mut app, KeyCode::Char('j')); // select user-service
    let lines = screen(&app, 140, 30);
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
fn empty_tabs_say_what_they_will_hold() {
    let mut app = app();
    press(&mut app, KeyCode::Char('3'));
    assert_eq!(app.tab, Tab::Breakers);
    let all = screen(&app, 120, 24).join("\n");
    assert!(
        all.contains("Circuit breakers are not wired in yet"),
        "{all}"
    );
    press(&mut app, KeyCode::Tab);
    assert_eq!(app.tab, Tab::Metrics);
    press(&mut app, KeyCode::BackTab);
    press(&mut app, KeyCode::BackTab);
    assert_eq!(app.tab, Tab::Balancer);
}

#[test]
fn a_small_terminal_gets_a_message_not_a_panic() {
    let app = app();
    let all = screen(&app, 40, 10).join("\n");
    assert!(all.contains("terminal too small"), "{all}");
    assert!(all.contains("40×10"), "{all}");
    for (w, h) in [(1, 1), (0, 0), (79, 40), (200, 15)] {
        screen(&app, w.max(1), h.max(1));
    }
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
    let all = screen(&app, 120, 30).join("\n");
    for b in super::action::bindings() {
        assert!(all.contains(b.help), "help lists {:?}", b.help);
    }
    // While help is open, other keys do nothing; Esc closes it; q quits.
    assert_eq!(press(&mut app, KeyCode::Char('x')), None);
    press(&mut app, KeyCode::Esc);
    assert!(!app.help);
    assert_eq!(
        action_for(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
        Some(Action::Quit)
    );
    press(&mut app, KeyCode::Char('q'));
    assert!(app.quit);
}
