//! The one loop: terminal input, cluster snapshots, command results and a slow tick; draw once
//! per batch of changes, never when idle. The terminal is restored on every exit and on panic.

use super::app::{App, Header, Reply, Request};
use super::keymap::Keymap;
use super::render;
use devcluster::ClusterHandle;
use devcluster::handle::Link;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// Tick for time-based changes on screen (toasts expiring).
const TICK: Duration = Duration::from_millis(500);

/// Restores the terminal when dropped, so `?` and early returns restore it too.
struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        mouse_capture(false);
        ratatui::restore();
    }
}

/// Turns the terminal's mouse reporting on or off.
fn mouse_capture(on: bool) {
    use ratatui::crossterm::event::{DisableMouseCapture, EnableMouseCapture};
    let mut out = std::io::stdout();
    let _ = if on {
        ratatui::crossterm::execute!(out, EnableMouseCapture)
    } else {
        ratatui::crossterm::execute!(out, DisableMouseCapture)
    };
}

pub async fn run(handle: ClusterHandle, header: Header, keymap: Keymap) -> anyhow::Result<()> {
    run_on(handle, header, keymap, super::tabs::Tab::default()).await
}

/// Like [`run`], opening on `tab`.
pub async fn run_on(
    handle: ClusterHandle,
    header: Header,
    keymap: Keymap,
    tab: super::tabs::Tab,
) -> anyhow::Result<()> {
    // `ratatui::init` also chains a panic hook that restores the terminal before the report.
    let mut terminal = ratatui::try_init()?;
    let _guard = TerminalGuard;
    // ratatui's hook restores the screen on a panic; mouse reporting is turned off first, or
    // the shell would be sent the mouse's moves.
    let restore = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        mouse_capture(false);
        restore(info);
    }));

    let (key_tx, mut keys) = mpsc::channel::<Event>(64);
    // crossterm's reader blocks; it lives on its own thread and ends when the loop is gone.
    std::thread::spawn(move || {
        while let Ok(ev) = event::read() {
            if key_tx.blocking_send(ev).is_err() {
                break;
            }
        }
    });
    let (done_tx, mut done) = mpsc::channel::<Reply>(16);
    let mut snapshots = handle.subscribe();
    let mut link = handle.subscribe_link();
    let mut app = App::new(header, handle.snapshot());
    app.keymap = std::sync::Arc::new(keymap);
    app.theme = widgets::Theme::from_env(
        std::env::var("NO_COLOR").ok().as_deref(),
        std::env::var("LGO_THEME").ok().as_deref(),
    );
    let mut mouse = app.mouse;
    mouse_capture(mouse);
    app.link = handle.link();
    app.tab = tab;
    let mut tick = tokio::time::interval(TICK);
    let mut dirty = true;

    loop {
        if dirty {
            terminal.draw(|f| render::draw(f, &app))?;
            dirty = false;
        }
        tokio::select! {
            Some(ev) = keys.recv() => {
                dirty |= on_event(&mut app, ev, &handle, &done_tx);
                // Drain what is queued so a burst of keys costs one frame.
                while let Ok(ev) = keys.try_recv() {
                    dirty |= on_event(&mut app, ev, &handle, &done_tx);
                }
            }
            changed = snapshots.changed() => {
                if changed.is_err() {
                    app.toast("the cluster is gone", true);
                    dirty = true;
                    snapshots = handle.subscribe();
                    tokio::time::sleep(TICK).await;
                } else {
                    let snap = snapshots.borrow_and_update().clone();
                    dirty |= app.on_snapshot(snap);
                }
            }
            changed = link_changed(&mut link) => match changed {
                Some(l) => dirty |= app.on_link(l),
                None => link = None,
            },
            Some(reply) = done.recv() => {
                app.on_reply(reply);
                dirty = true;
            }
            _ = tick.tick() => {
                dirty |= app.expire_toast(Instant::now());
                // The banner counts the time since the link was lost.
                dirty |= app.link != Link::Up;
                if let Some(req) = app.on_tick(Instant::now()) {
                    spawn_request(req, handle.clone(), done_tx.clone());
                }
            }
        }
        if app.mouse != mouse {
            mouse = app.mouse;
            mouse_capture(mouse);
        }
        if app.quit {
            return Ok(());
        }
    }
}

/// The link's next state; `None` when it can no longer change. Pends for a cluster in this
/// process.
async fn link_changed(link: &mut Option<watch::Receiver<Link>>) -> Option<Link> {
    match link {
        Some(rx) => match rx.changed().await {
            Ok(()) => Some(rx.borrow_and_update().clone()),
            Err(_) => None,
        },
        None => std::future::pending().await,
    }
}

fn on_event(app: &mut App, ev: Event, handle: &ClusterHandle, done: &mpsc::Sender<Reply>) -> bool {
    match ev {
        Event::Key(key) if app.prompt.is_some() && !is_ctrl_c(key) => {
            if key.kind != KeyEventKind::Press && key.kind != KeyEventKind::Repeat {
                return false;
            }
            if let Some(req) = app.on_prompt_key(key) {
                spawn_request(req, handle.clone(), done.clone());
            }
            true
        }
        Event::Key(key) if app.config.env_preview.is_some() && !is_ctrl_c(key) => {
            if key.kind != KeyEventKind::Press {
                return false;
            }
            if let Some(req) = app.on_env_preview_key(key) {
                spawn_request(req, handle.clone(), done.clone());
            }
            true
        }
        Event::Key(key) if app.config.editing.is_some() && !is_ctrl_c(key) => {
            if key.kind != KeyEventKind::Press && key.kind != KeyEventKind::Repeat {
                return false;
            }
            if let Some(req) = app.on_config_key(key) {
                spawn_request(req, handle.clone(), done.clone());
            }
            true
        }
        Event::Key(key) if app.inspector.is_some() && !is_ctrl_c(key) => {
            if key.kind != KeyEventKind::Press && key.kind != KeyEventKind::Repeat {
                return false;
            }
            if let Some(req) = app.on_inspector_key(key) {
                spawn_request(req, handle.clone(), done.clone());
            }
            true
        }
        Event::Key(key) => {
            if app.keymap.binding(app.tab, key).is_none() {
                return false;
            }
            if let Some(req) = app.on_key(key) {
                spawn_request(req, handle.clone(), done.clone());
            }
            true
        }
        Event::Mouse(m)
            if app.mouse
                && app.prompt.is_none()
                && app.inspector.is_none()
                && app.config.editing.is_none()
                && app.config.env_preview.is_none() =>
        {
            if let Some(req) = app.on_mouse(m) {
                spawn_request(req, handle.clone(), done.clone());
            }
            true
        }
        Event::Resize(..) => true,
        _ => false,
    }
}

fn is_ctrl_c(key: KeyEvent) -> bool {
    key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c')
}

/// Runs a request off the drawing path; its outcome comes back as a `Reply`.
fn spawn_request(req: Request, handle: ClusterHandle, done: mpsc::Sender<Reply>) {
    tokio::spawn(async move {
        let reply = match req {
            Request::Command(cmd) => match handle.send(cmd).await {
                Ok(text) => Reply::Done(text),
                Err(e) => Reply::Failed(e.to_string()),
            },
            Request::Traces(f) => Reply::Traces(handle.traces(&f).await.map_err(|e| e.to_string())),
            Request::Trace(id) => {
                Reply::Trace(id, handle.trace(id).await.map_err(|e| e.to_string()))
            }
            Request::Logs(f) => Reply::Logs(handle.logs(&f).await.map_err(|e| e.to_string())),
            Request::ConfigSet { key, value } => {
                let r = handle.config_set(&key, value.as_deref()).await;
                Reply::ConfigSet(key, r.map_err(|e| e.to_string()))
            }
            Request::EnvDiff(name) => {
                let r = handle.env_diff(&name).await;
                Reply::EnvDiff(name, r.map_err(|e| e.to_string()))
            }
            Request::EnvSwitch(name) => match handle.env_switch(&name).await {
                Ok(text) => Reply::Done(text),
                Err(e) => Reply::Failed(e.to_string()),
            },
            Request::ConfigUndo => match handle.config_undo().await {
                Ok(text) => Reply::Done(text),
                Err(e) => Reply::Failed(e.to_string()),
            },
            Request::Explain { method, path } => Reply::Explained(Box::new(
                handle
                    .explain(&method, &path)
                    .await
                    .map_err(|e| e.to_string()),
            )),
        };
        let _ = done.send(reply).await;
    });
}
