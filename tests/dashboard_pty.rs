//! The dashboard binary in a real pseudo-terminal (tmux): it starts its embedded cluster, shows
//! the Services tab with live health, switches tabs on keys, and `q` restores the terminal.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_lgo-dash");

/// A private tmux server, killed when the test ends however it ends.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn new() -> Tmux {
        let found = Command::new("tmux")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            found,
            "tmux is required for the dashboard end-to-end test and was not found: \
             install it (apt-get install tmux; .ci/run does this)"
        );
        Tmux {
            socket: format!("lgo-dash-test-{}", std::process::id()),
        }
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .unwrap()
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "dash"]).stdout)
            .into_owned()
    }

    fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let s = self.screen();
            if pred(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

#[test]
fn dashboard_shows_live_services_switches_tabs_and_restores_the_terminal() {
    let tmux = Tmux::new();
    // The shell prints the exit code after the dashboard ends, on the restored screen.
    let cmd = format!("{BIN} --ports auto; echo \"EXITED $?\"; sleep 60");
    let out = tmux.run(&[
        "new-session",
        "-d",
        "-x",
        "160",
        "-y",
        "48",
        "-s",
        "dash",
        &cmd,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let s = tmux.wait_for("all instances passing", |s| {
        s.contains("5/5 instances passing")
    });
    assert!(s.contains("1 Services") && s.contains("7 Logs"), "{s}");
    assert!(s.contains("order-service") && s.contains("2/2 up"), "{s}");

    // Into user-service's instances, kill the second one, watch it turn critical.
    tmux.run(&["send-keys", "-t", "dash", "j", "Enter", "j", "x"]);
    let s = tmux.wait_for("user-service-2 critical", |s| {
        s.lines().any(|l| {
            l.contains("user-service-2") && l.contains("✖ critical") && l.contains("killed")
        })
    });
    assert!(s.contains("2/3 up"), "{s}");
    tmux.run(&["send-keys", "-t", "dash", "r"]);
    tmux.wait_for("user-service-2 back", |s| {
        s.contains("5/5 instances passing")
    });

    tmux.run(&["send-keys", "-t", "dash", "5"]);
    tmux.wait_for("the Traces placeholder", |s| {
        s.contains("Tracing is not wired in yet")
    });

    tmux.run(&["send-keys", "-t", "dash", "q"]);
    let s = tmux.wait_for("the dashboard to exit", |s| s.contains("EXITED 0"));
    assert!(
        !s.contains("1 Services"),
        "the alternate screen is gone after quitting:\n{s}"
    );
}
