//! The one loop: terminal input, cluster snapshots, command results and a slow tick; draw once
//! per batch of changes, never when idle. The terminal is restored on every exit and on panic.

use super::app::{App, Header, Reply, Request, SelfCost, Ticket};
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
    // A dashboard killed outright (SIGKILL) could not restore its terminal: raw mode stays,
    // and what is saved now is restored at the end. Repaired first, this exit leaves it sane.
    super::tty::repair_left_raw_mode();
    // `ratatui::init` also chains a panic hook that restores the terminal before the report.
    let mut terminal = ratatui::try_init()?;
    let _guard = TerminalGuard;
    // ratatui's hook restores the screen on a panic; mouse reporting is turned off first, or
    // the shell would be sent the mouse's moves.
    let restore = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        mouse_capture(false);
        restore(info);
        super::crash::on_panic(info);
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
    let (done_tx, mut done) = mpsc::channel::<(Ticket, Reply)>(16);
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
    let mut cost = CostMeter::new(handle.subscribe_link().is_some());

    loop {
        if dirty {
            let started = Instant::now();
            terminal.draw(|f| render::draw(f, &app))?;
            cost.frame(started.elapsed());
            dirty = false;
        }
        tokio::select! {
            ev = keys.recv() => {
                // The reader ended: the terminal is gone (its window closed, tmux killed).
                // Nobody can see or quit this dashboard any more, so it ends itself.
                let Some(ev) = ev else {
                    return Ok(());
                };
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
            Some((ticket, reply)) = done.recv() => {
                dirty |= app.on_answer(ticket, reply);
            }
            _ = tick.tick() => {
                if let Some(c) = cost.sample() {
                    // Shown on the Metrics tab only: no frame elsewhere for it.
                    dirty |= app.tab == super::tabs::Tab::Metrics && c != app.self_cost;
                    app.self_cost = c;
                }
                dirty |= app.expire_toast(Instant::now());
                // The banner counts the time since the link was lost.
                dirty |= app.link != Link::Up;
                if let Some(req) = app.on_tick(Instant::now()) {
                    spawn_request(&mut app, req, handle.clone(), done_tx.clone());
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

/// Counts frames and their time; samples the process's own CPU and memory when attached.
struct CostMeter {
    frames: u32,
    last_frame: Duration,
    since: Instant,
    sys: Option<(sysinfo::System, sysinfo::Pid)>,
}

impl CostMeter {
    /// How often the figures are worked out.
    const EVERY: Duration = Duration::from_secs(2);

    fn new(attached: bool) -> CostMeter {
        let sys = attached
            .then(sysinfo::System::new)
            .and_then(Result::ok)
            .map(|s| (s, sysinfo::Pid::from_u32(std::process::id())));
        CostMeter {
            frames: 0,
            last_frame: Duration::ZERO,
            since: Instant::now(),
            sys,
        }
    }

    fn frame(&mut self, took: Duration) {
        self.frames += 1;
        self.last_frame = took;
    }

    /// The figures, every [`CostMeter::EVERY`].
    fn sample(&mut self) -> Option<SelfCost> {
        let elapsed = self.since.elapsed();
        if elapsed < Self::EVERY {
            return None;
        }
        let process = self.sys.as_mut().and_then(|(sys, pid)| {
            use sysinfo::{ProcessRefreshKind, ProcessesToUpdate};
            sys.refresh_processes_specifics(
                ProcessesToUpdate::Some(&[*pid]),
                true,
                ProcessRefreshKind::nothing().with_cpu().with_memory(),
            );
            sys.process(*pid)
                .map(|p| (f64::from(p.cpu_usage()), p.memory()))
        });
        let c = SelfCost {
            frames_per_s: f64::from(self.frames) / elapsed.as_secs_f64(),
            frame_ms: self.last_frame.as_secs_f64() * 1000.0,
            process,
        };
        self.frames = 0;
        self.since = Instant::now();
        Some(c)
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

fn on_event(
    app: &mut App,
    ev: Event,
    handle: &ClusterHandle,
    done: &mpsc::Sender<(Ticket, Reply)>,
) -> bool {
    match ev {
        Event::Key(key) if app.prompt.is_some() && !is_ctrl_c(key) => {
            if key.kind != KeyEventKind::Press && key.kind != KeyEventKind::Repeat {
                return false;
            }
            if let Some(req) = app.on_prompt_key(key) {
                spawn_request(app, req, handle.clone(), done.clone());
            }
            true
        }
        Event::Key(key) if app.config.env_preview.is_some() && !is_ctrl_c(key) => {
            if key.kind != KeyEventKind::Press {
                return false;
            }
            if let Some(req) = app.on_env_preview_key(key) {
                spawn_request(app, req, handle.clone(), done.clone());
            }
            true
        }
        Event::Key(key) if app.config.editing.is_some() && !is_ctrl_c(key) => {
            if key.kind != KeyEventKind::Press && key.kind != KeyEventKind::Repeat {
                return false;
            }
            if let Some(req) = app.on_config_key(key) {
                spawn_request(app, req, handle.clone(), done.clone());
            }
            true
        }
        Event::Key(key) if app.inspector.is_some() && !is_ctrl_c(key) => {
            if key.kind != KeyEventKind::Press && key.kind != KeyEventKind::Repeat {
                return false;
            }
            if let Some(req) = app.on_inspector_key(key) {
                spawn_request(app, req, handle.clone(), done.clone());
            }
            true
        }
        Event::Key(key) => {
            if app.keymap.binding(app.tab, key).is_none() {
                return false;
            }
            if let Some(req) = app.on_key(key) {
                spawn_request(app, req, handle.clone(), done.clone());
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
                spawn_request(app, req, handle.clone(), done.clone());
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

/// Runs a request off the drawing path; its outcome comes back as a `Reply` with the ticket
/// it was sent under.
fn spawn_request(
    app: &mut App,
    req: Request,
    handle: ClusterHandle,
    done: mpsc::Sender<(Ticket, Reply)>,
) {
    let ticket = app.ticket(&req);
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
            Request::InstanceEvents(id, f) => {
                Reply::InstanceEvents(id, handle.logs(&f).await.map_err(|e| e.to_string()))
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
        let _ = done.send((ticket, reply)).await;
    });
}
