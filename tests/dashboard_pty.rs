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
    /// A tmux server of its own (`name` keeps tests in one process apart) running `cmd` in a
    /// 160×48 window named "dash".
    fn start(name: &str, cmd: &str) -> Tmux {
        let tmux = Tmux::new(name);
        let out = tmux.run(&[
            "new-session",
            "-d",
            "-x",
            "160",
            "-y",
            "48",
            "-s",
            "dash",
            cmd,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        tmux
    }

    fn new(name: &str) -> Tmux {
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
            socket: format!("lgo-dash-test-{name}-{}", std::process::id()),
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
    // The shell prints the exit code after the dashboard ends, on the restored screen.
    let cmd = format!("{BIN} --ports auto; echo \"EXITED $?\"; sleep 60");
    let tmux = Tmux::start("tabs", &cmd);

    let s = tmux.wait_for("all instances passing", |s| {
        s.contains("8/8 instances passing")
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
        s.contains("8/8 instances passing")
    });

    // Traces: the traffic generator's requests are listed; Enter opens one as a waterfall.
    tmux.run(&["send-keys", "-t", "dash", "5"]);
    tmux.wait_for("the trace list", |s| {
        s.contains("Recent traces") && s.contains("gateway → ")
    });
    tmux.run(&["send-keys", "-t", "dash", "Enter"]);
    // The whole frame, not one caught half drawn over the list.
    let s = tmux.wait_for("a waterfall with its span's attributes", |s| {
        s.contains("space folds") && s.contains("attributes")
    });
    assert!(s.contains("call ") && !s.contains("Recent traces"), "{s}");
    tmux.run(&["send-keys", "-t", "dash", "Escape"]);
    tmux.wait_for("back to the list", |s| s.contains("Recent traces"));

    // Metrics: the gateway's rate and the process panel; Logs: following the access lines.
    tmux.run(&["send-keys", "-t", "dash", "4"]);
    tmux.wait_for("the metrics", |s| {
        s.contains("Process and host")
            && s.lines().any(|l| l.contains("gateway") && l.contains("ms"))
    });
    // info → warn → error → fatal → debug
    tmux.run(&["send-keys", "-t", "dash", "7", "v", "v", "v", "v"]);
    tmux.wait_for("the logs at debug, following", |s| {
        s.contains("level ≥ debug") && s.contains("● following") && s.contains("GET /api/")
    });

    tmux.run(&["send-keys", "-t", "dash", "q"]);
    let s = tmux.wait_for("the dashboard to exit", |s| s.contains("EXITED 0"));
    assert!(
        !s.contains("1 Services"),
        "the alternate screen is gone after quitting:\n{s}"
    );
    // Mouse reporting (on while the dashboard runs) is off again for the shell.
    let flag = tmux.run(&["display", "-p", "-t", "dash", "#{mouse_any_flag}"]);
    assert_eq!(String::from_utf8_lossy(&flag.stdout).trim(), "0");
}

/// The admin URL the header shows ("· admin http://127.0.0.1:PORT").
fn admin_url(screen: &str) -> String {
    let at = screen
        .find(" admin ")
        .expect("the header names the admin URL")
        + 7;
    let shown = screen[at..].split_whitespace().next().unwrap();
    // Shortened to fit: without the scheme, or only the loopback port.
    match shown.strip_prefix(':') {
        Some(port) => format!("http://127.0.0.1:{port}"),
        None if shown.contains("://") => shown.to_string(),
        None => format!("http://{shown}"),
    }
}

/// `lgo-dash ctl breakers --json`, the named breaker's `(state, mode)`.
fn ctl_breaker(admin: &str, name: &str) -> (String, String) {
    let out = Command::new(BIN)
        .args(["ctl", "--admin", admin, "breakers", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let b = list
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == name)
        .unwrap_or_else(|| panic!("no breaker {name} in {list}"));
    (
        b["state"].as_str().unwrap().to_string(),
        b["mode"].as_str().unwrap().to_string(),
    )
}

#[test]
fn pressing_o_on_a_breaker_forces_it_open_as_ctl_sees_it() {
    let tmux = Tmux::start("breaker", &format!("{BIN} --ports auto"));
    let s = tmux.wait_for("all instances passing", |s| {
        s.contains("8/8 instances passing")
    });
    let admin = admin_url(&s);
    assert_eq!(
        ctl_breaker(&admin, "gateway->user-service"),
        ("closed".into(), "auto".into())
    );

    // Breakers tab; the second row is gateway->user-service (rows are sorted by name).
    tmux.run(&["send-keys", "-t", "dash", "3"]);
    tmux.wait_for("the breakers table", |s| {
        s.contains("order-service->user-service")
    });
    tmux.run(&["send-keys", "-t", "dash", "j", "o"]);
    tmux.wait_for("gateway->user-service forced open", |s| {
        s.lines()
            .any(|l| l.contains("gateway->user-service") && l.contains("forced_open"))
    });
    assert_eq!(
        ctl_breaker(&admin, "gateway->user-service"),
        ("open".into(), "forced_open".into())
    );
    // The others are untouched.
    assert_eq!(ctl_breaker(&admin, "gateway->order-service").1, "auto");

    tmux.run(&["send-keys", "-t", "dash", "a"]);
    tmux.wait_for("gateway->user-service back to auto", |s| {
        s.lines()
            .any(|l| l.contains("gateway->user-service") && l.contains(" auto "))
    });
    assert_eq!(ctl_breaker(&admin, "gateway->user-service").1, "auto");
    tmux.run(&["send-keys", "-t", "dash", "q"]);
}

#[test]
fn open_shows_the_traces_of_a_file_without_a_cluster() {
    use devcluster::telemetry::{SpanId, SpanRecord, TraceId};
    let span = |id: u64, parent: Option<u64>, service: &str, name: &str, start: u64, dur: u64| {
        SpanRecord {
            trace_id: TraceId(0x5eed),
            span_id: SpanId(id),
            parent_id: parent.map(SpanId),
            service: service.into(),
            instance: String::new(),
            name: name.into(),
            start_unix_ns: 1_700_000_000_000_000_000 + start * 1_000_000,
            duration_ns: dur * 1_000_000,
            error: false,
            attributes: vec![],
            events: vec![],
        }
    };
    let file = std::env::temp_dir().join(format!("lgo-dash-open-{}.json", std::process::id()));
    let spans = [
        span(1, None, "checkout", "POST /checkout", 0, 120),
        span(2, Some(1), "payments", "charge card", 10, 90),
    ];
    std::fs::write(
        &file,
        devcluster::telemetry::export::to_otlp_json(&spans).unwrap(),
    )
    .unwrap();
    let tmux = Tmux::start(
        "open",
        &format!(
            "{BIN} --open {}; echo \"EXITED $?\"; sleep 60",
            file.display()
        ),
    );
    let s = tmux.wait_for("the file's trace", |s| s.contains("Recent traces (1)"));
    assert!(s.contains("offline") && s.contains("POST /checkout"), "{s}");
    assert!(s.contains("checkout → payments"), "{s}");
    tmux.run(&["send-keys", "-t", "dash", "Enter"]);
    let s = tmux.wait_for("its waterfall", |s| s.contains("space folds"));
    assert!(s.contains("  charge card") && s.contains("120.0ms"), "{s}");
    tmux.run(&["send-keys", "-t", "dash", "q"]);
    tmux.wait_for("the dashboard to exit", |s| s.contains("EXITED 0"));
    let _ = std::fs::remove_file(&file);
}

#[test]
fn a_config_edit_in_the_dashboard_is_refused_in_place_then_applied_and_written_back() {
    let dir = std::env::temp_dir().join(format!("lgo-pty-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("mine.toml");
    std::fs::write(&file, "[traffic]\nrps = 5 # low\n").unwrap();
    let cmd = format!("{BIN} --ports auto --config {}", file.display());
    let tmux = Tmux::start("config", &cmd);
    let s = tmux.wait_for("the dashboard", |s| s.contains("instances passing"));
    let admin = admin_url(&s);

    // The Config tab; traffic.rps is the last key (they are sorted), so j until the end.
    tmux.run(&["send-keys", "-t", "dash", "6"]);
    tmux.wait_for("the config keys", |s| s.contains("Config v1"));
    for _ in 0..80 {
        tmux.run(&["send-keys", "-t", "dash", "j"]);
    }
    tmux.run(&["send-keys", "-t", "dash", "Enter"]);
    tmux.wait_for("the editor", |s| s.contains("traffic.rps = 5"));
    tmux.run(&["send-keys", "-t", "dash", "BSpace", "x", "Enter"]);
    let s = tmux.wait_for("the refusal in place", |s| {
        // The value as it was read (a string), and what would do, in words.
        s.contains("refused: traffic.rps = \"x\": expected a whole number")
    });
    assert!(
        s.contains("traffic.rps = x "),
        "the typed value stays:\n{s}"
    );

    tmux.run(&["send-keys", "-t", "dash", "BSpace", "9", "Enter"]);
    tmux.wait_for("the change in the history", |s| {
        s.contains("Config v2") && s.contains("5 → 9")
    });
    let out = Command::new(BIN)
        .args(["ctl", "--admin", &admin, "config", "get", "traffic.rps"])
        .output()
        .unwrap();
    let got = String::from_utf8_lossy(&out.stdout);
    assert!(
        got.starts_with("traffic.rps = 9") && got.contains("mine.toml"),
        "{got}"
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "[traffic]\nrps = 9 # low\n",
        "written back, the comment kept"
    );
    tmux.run(&["send-keys", "-t", "dash", "q"]);
    std::fs::remove_dir_all(&dir).ok();
}

#[path = "../devcluster/tests/common/fixed_ports.rs"]
mod fixed_ports;

/// A `serve` process on fixed free ports (from a config file), so it can be started again on
/// the same admin URL; killed when dropped.
struct Served {
    child: std::process::Child,
}

impl Served {
    fn start(config: &std::path::Path) -> Served {
        let child = Command::new(BIN)
            .args(["serve", "--no-traffic", "--config"])
            .arg(config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        Served { child }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The dashboard attached to a `serve` in another process: the process is killed and the
/// dashboard says so within 3 s; it is started again on the same admin port and the dashboard
/// picks it up by itself.
#[test]
fn an_attached_dashboard_notices_a_killed_cluster_and_recovers_when_it_is_back() {
    let (text, admin_port) = fixed_ports::fixed_ports_toml();
    let dir = std::env::temp_dir().join(format!("lgo-dash-attach-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("ports.toml");
    std::fs::write(&config, text).unwrap();
    let admin = format!("http://127.0.0.1:{admin_port}");
    let mut served = Served::start(&config);
    let tmux = Tmux::start("attach", &format!("{BIN} --attach {admin}; sleep 60"));
    tmux.wait_for("the attached cluster's instances", |s| {
        s.contains("3/3 instances passing")
    });

    served.child.kill().unwrap();
    served.child.wait().unwrap();
    let killed = Instant::now();
    let s = tmux.wait_for("the banner", |s| s.contains("cluster lost"));
    assert!(
        killed.elapsed() < Duration::from_secs(3),
        "the loss took {:?} to show:\n{s}",
        killed.elapsed()
    );
    // What it showed stays, under the banner.
    assert!(s.contains("order-service-1"), "{s}");

    let _again = Served::start(&config);
    let s = tmux.wait_for("the cluster picked up again", |s| {
        !s.contains("cluster lost") && s.contains("3/3 instances passing")
    });
    assert!(s.contains("order-service-1"), "{s}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A dashboard whose terminal goes away (its window closed, tmux killed) ends by itself, SIGHUP
/// or not, and takes its embedded cluster down with it: nothing is left running that nobody
/// can see.
#[test]
fn a_dashboard_whose_terminal_is_gone_ends_by_itself() {
    // SIGHUP ignored (as under nohup, or a terminal that closes without sending it): the
    // dashboard must notice the lost terminal by itself.
    let cmd = format!("trap '' HUP; exec {BIN} --ports auto --no-traffic");
    let tmux = Tmux::start("gone", &cmd);
    let s = tmux.wait_for("the dashboard", |s| s.contains("instances passing"));
    let admin = admin_url(&s);
    let pid = String::from_utf8_lossy(
        &tmux
            .run(&["list-panes", "-t", "dash", "-F", "#{pane_pid}"])
            .stdout,
    )
    .trim()
    .to_string();
    assert!(!pid.is_empty());
    tmux.run(&["kill-server"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        assert!(
            Instant::now() < deadline,
            "the dashboard (pid {pid}) still runs 10 s after its terminal went away"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Its cluster went with it.
    let refused = Command::new(BIN)
        .args(["ctl", "--admin", &admin, "instances"])
        .output()
        .unwrap();
    assert!(!refused.status.success(), "the admin API still answers");
}

/// What `stty -a` says of the pane's terminal, asked from the shell in it.
fn tty_flags(tmux: &Tmux, marker: &str) -> Vec<String> {
    // The answer line starts with `{marker}:`, which the typed command itself does not contain
    // (`"{marker}"':'`): the echo of the command line must never be read as its answer.
    let cmd = format!(
        "clear; f=$(stty -a | tr ' ;' '\\n\\n' | grep -x -e -icanon -e icanon -e -echo -e echo | tr '\\n' ' '); echo \"{marker}\"':' $f"
    );
    let prefix = format!("{marker}:");
    // A line feed ends the line in raw mode too (Enter's CR is not turned into one there).
    tmux.run(&["send-keys", "-t", "dash", &cmd, "C-j"]);
    let s = tmux.wait_for("stty's answer", |s| {
        s.lines().any(|l| l.starts_with(&prefix))
    });
    let line = s.lines().find(|l| l.starts_with(&prefix)).unwrap();
    line[prefix.len()..]
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Waits until no process runs the command line `pattern` starts: a dashboard that has quit
/// no longer reads the terminal, so what is typed next reaches the shell.
fn wait_exited(pattern: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Command::new("pgrep")
        .args(["-f", pattern])
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap()
        .success()
    {
        assert!(Instant::now() < deadline, "the dashboard never exited");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_dashboard_killed_outright_leaves_a_terminal_the_next_one_repairs() {
    // A shell in the pane, as a user's terminal: the dashboard runs in it, and is killed. A
    // plain `sh`: bash would put the terminal's modes back itself after a killed job.
    let tmux = Tmux::start("killed", "sh");
    let before = tty_flags(&tmux, "BEFORE");
    assert!(
        before.iter().any(|f| f == "icanon") && before.iter().any(|f| f == "echo"),
        "a shell's terminal edits lines and echoes: {before:?}"
    );
    tmux.run(&[
        "send-keys",
        "-t",
        "dash",
        &format!("{BIN} --ports auto --no-traffic"),
        "Enter",
    ]);
    tmux.wait_for("the dashboard", |s| s.contains("instances passing"));
    let killed = Command::new("pkill")
        .args(["-KILL", "-f", &format!("^{BIN} --ports auto --no-traffic")])
        .status()
        .unwrap();
    assert!(killed.success(), "the dashboard was found and killed");
    // Left in raw mode (no line editing, no echo), on the alternate screen, mouse reported.
    let shown = |format: &str| {
        String::from_utf8_lossy(&tmux.run(&["display", "-p", "-t", "dash", format]).stdout)
            .trim()
            .to_string()
    };
    assert_eq!(
        shown("#{alternate_on}"),
        "1",
        "killed on the alternate screen"
    );
    let left = tty_flags(&tmux, "LEFT");
    assert!(
        left.iter().any(|f| f == "-icanon"),
        "the killed dashboard left raw mode: {left:?}"
    );

    // The next dashboard repairs it first, so that leaving it restores a usable terminal.
    tmux.run(&[
        "send-keys",
        "-t",
        "dash",
        &format!("{BIN} --ports auto --no-traffic"),
        "C-j",
    ]);
    tmux.wait_for("the dashboard again", |s| s.contains("instances passing"));
    tmux.run(&["send-keys", "-t", "dash", "q"]);
    wait_exited(&format!("^{BIN} --ports auto --no-traffic"));
    let after = tty_flags(&tmux, "AFTER");
    assert!(
        after.iter().any(|f| f == "icanon") && after.iter().any(|f| f == "echo"),
        "line editing and echo are back: {after:?}"
    );
    assert_eq!(shown("#{alternate_on}"), "0", "back on the main screen");
    assert_eq!(
        shown("#{mouse_any_flag}"),
        "0",
        "the mouse no longer reported"
    );
}
