//! The one loop: terminal input, cluster snapshots, command results and a slow tick; draw once
//! per batch of changes, never when idle. The terminal is restored on every exit and on panic.

use super::action::action_for;
use super::app::{App, Command, Header};
use super::render;
use devcluster::ClusterHandle;
use ratatui::crossterm::event::{self, Event};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Tick for time-based changes on screen (toasts expiring).
const TICK: Duration = Duration::from_millis(500);

/// Restores the terminal when dropped, so `?` and early returns restore it too.
struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

pub async fn run(handle: ClusterHandle, header: Header) -> anyhow::Result<()> {
    // `ratatui::init` also chains a panic hook that restores the terminal before the report.
    let mut terminal = ratatui::try_init()?;
    let _guard = TerminalGuard;

    let (key_tx, mut keys) = mpsc::channel::<Event>(64);
    // crossterm's reader blocks; it lives on its own thread and ends when the loop is gone.
    std::thread::spawn(move || {
        while let Ok(ev) = event::read() {
            if key_tx.blocking_send(ev).is_err() {
                break;
            }
        }
    });
    let (done_tx, mut done) = mpsc::channel::<(String, bool)>(16);
    let mut snapshots = handle.subscribe();
    let mut app = App::new(header, handle.snapshot());
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
            Some((text, error)) = done.recv() => {
                app.toast(text, error);
                dirty = true;
            }
            _ = tick.tick() => dirty |= app.expire_toast(Instant::now()),
        }
        if app.quit {
            return Ok(());
        }
    }
}

fn on_event(
    app: &mut App,
    ev: Event,
    handle: &ClusterHandle,
    done: &mpsc::Sender<(String, bool)>,
) -> bool {
    match ev {
        Event::Key(key) => {
            let Some(action) = action_for(key) else {
                return false;
            };
            if let Some(cmd) = app.on_action(action) {
                spawn_command(cmd, handle.clone(), done.clone());
            }
            true
        }
        Event::Resize(..) => true,
        _ => false,
    }
}

/// Runs a cluster command off the drawing path; its outcome comes back as a toast.
fn spawn_command(cmd: Command, handle: ClusterHandle, done: mpsc::Sender<(String, bool)>) {
    tokio::spawn(async move {
        let msg = match handle.send(cmd).await {
            Ok(text) => (text, false),
            Err(e) => (e.to_string(), true),
        };
        let _ = done.send(msg).await;
    });
}
