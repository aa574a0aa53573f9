//! The dashboard's state and how actions change it. Drawing reads this; nothing here awaits.

use super::action::Action;
use super::tabs::Tab;
use super::views::services::ServicesView;
use devcluster::handle::ClusterSnapshot;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a toast stays in the footer.
pub const TOAST_DURATION: Duration = Duration::from_secs(5);

/// What the header says about where the data comes from.
#[derive(Debug, Clone)]
pub struct Header {
    pub mode: String,
    pub env: String,
}

/// A request for the cluster, carried out by the event loop off the drawing path.
pub use devcluster::control::Command;

#[derive(Debug, Clone)]
pub struct Toast {
    pub text: String,
    pub error: bool,
    pub at: Instant,
}

pub struct App {
    pub header: Header,
    pub tab: Tab,
    /// The snapshot being shown (frozen while paused).
    pub snapshot: Arc<ClusterSnapshot>,
    pub paused: bool,
    pub help: bool,
    pub services: ServicesView,
    pub toast: Option<Toast>,
    pub quit: bool,
}

impl App {
    pub fn new(header: Header, snapshot: Arc<ClusterSnapshot>) -> App {
        App {
            header,
            tab: Tab::default(),
            snapshot,
            paused: false,
            help: false,
            services: ServicesView::default(),
            toast: None,
            quit: false,
        }
    }

    /// A new snapshot arrived; returns whether the screen must be redrawn.
    pub fn on_snapshot(&mut self, snapshot: Arc<ClusterSnapshot>) -> bool {
        if self.paused {
            return false;
        }
        self.snapshot = snapshot;
        self.services.clamp(&self.snapshot);
        true
    }

    /// Applies an action; returns a command for the cluster when the action needs one.
    pub fn on_action(&mut self, action: Action) -> Option<Command> {
        if self.help && !matches!(action, Action::Quit | Action::ToggleHelp | Action::Back) {
            return None;
        }
        match action {
            Action::Quit => self.quit = true,
            Action::ToggleHelp => self.help = !self.help,
            Action::Back if self.help => self.help = false,
            Action::NextTab => self.tab = Tab::from_index(self.tab.index() + 1),
            Action::PrevTab => self.tab = Tab::from_index(self.tab.index() + Tab::ALL.len() - 1),
            Action::GoToTab(i) => self.tab = Tab::from_index(i),
            Action::TogglePause => {
                self.paused = !self.paused;
                self.toast(
                    if self.paused {
                        "paused: the view is frozen (p resumes)"
                    } else {
                        "live"
                    },
                    false,
                );
            }
            Action::Up | Action::Down | Action::Open | Action::Back
                if self.tab == Tab::Services =>
            {
                self.services.on_action(&action, &self.snapshot);
            }
            Action::KillSelected | Action::RestartSelected if self.tab == Tab::Services => {
                let Some(inst) = self.services.selected_instance(&self.snapshot) else {
                    self.toast("no instance selected", true);
                    return None;
                };
                let id = inst.view.id.clone();
                return Some(if action == Action::KillSelected {
                    Command::Kill { id, for_s: None }
                } else {
                    Command::Restart { id }
                });
            }
            _ => {}
        }
        None
    }

    pub fn toast(&mut self, text: impl Into<String>, error: bool) {
        self.toast = Some(Toast {
            text: text.into(),
            error,
            at: Instant::now(),
        });
    }

    /// Drops an expired toast; returns whether that changed the screen.
    pub fn expire_toast(&mut self, now: Instant) -> bool {
        if self
            .toast
            .as_ref()
            .is_some_and(|t| now.duration_since(t.at) >= TOAST_DURATION)
        {
            self.toast = None;
            return true;
        }
        false
    }
}
