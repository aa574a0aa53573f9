//! The user's config file: hand edits reach the running cluster (and a bad one is refused with
//! the old config kept), edits through the admin API are written back keeping comments, and a
//! process killed while saving leaves the old file or the new one, never a torn one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{http, start_layered};
use devcluster::cluster::Cluster;
use devcluster::config::file::save_atomic;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lgo-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn start_with_file(path: &Path) -> Cluster {
    start_layered("development", Some(path)).await
}

async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_hand_edit_of_the_file_reaches_the_running_cluster_and_a_bad_one_is_refused() {
    let dir = temp_dir("hand-edit");
    let path = dir.join("mine.toml");
    std::fs::write(&path, "# mine\n[traffic]\nrps = 5\n").unwrap();
    let cluster = start_with_file(&path).await;
    assert_eq!(cluster.config().config().traffic.rps, 5);

    // As an editor saves: write the new text over the file.
    std::fs::write(
        &path,
        "# mine\n[traffic]\nrps = 33\n[balancer.user-service]\nstrategy = \"p2c\"\n",
    )
    .unwrap();
    let center = cluster.config().clone();
    eventually("the edit applied", || center.config().traffic.rps == 33).await;
    eventually("the balancer switched", || {
        cluster
            .config()
            .get("balancer.user-service.strategy")
            .is_some_and(|e| e.value == "\"p2c\"" && e.origin.ends_with("mine.toml"))
    })
    .await;
    let last = center.history().last().cloned().unwrap();
    assert_eq!(last.who, "file");

    // A bad edit: refused, the reason kept for the dashboard, the live config unchanged.
    let version = center.version();
    std::fs::write(&path, "[traffic]\nrps = \"lots\"\n").unwrap();
    eventually("the refusal recorded", || {
        center.view(10).file_error.is_some()
    })
    .await;
    let err = center.view(10).file_error.unwrap();
    assert!(
        err.contains("rps") && err.contains("previous config stays"),
        "{err}"
    );
    assert_eq!(center.config().traffic.rps, 33);
    assert_eq!(center.version(), version);

    // Fixed: applied again, the error gone.
    std::fs::write(&path, "[traffic]\nrps = 7\n").unwrap();
    eventually("the fix applied", || center.config().traffic.rps == 7).await;
    assert!(center.view(10).file_error.is_none());
    cluster.shutdown().await;
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn edits_through_the_admin_api_are_written_back_keeping_comments() {
    let dir = temp_dir("write-back");
    let path = dir.join("mine.toml");
    std::fs::write(&path, "# my cluster\n[traffic]\nrps = 5   # quiet please\n").unwrap();
    let cluster = start_with_file(&path).await;
    let r = http()
        .post(format!("{}/api/config", cluster.admin_url()))
        .json(&serde_json::json!({"key": "traffic.rps", "value": "12"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http()
        .post(format!("{}/api/config", cluster.admin_url()))
        .json(&serde_json::json!({"key": "retries.attempts", "value": "4"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.starts_with("# my cluster\n[traffic]\nrps = 12   # quiet please\n"),
        "{text}"
    );
    assert!(text.contains("[retries]\nattempts = 4"), "{text}");
    let e = cluster.config().get("retries.attempts").unwrap();
    assert!(e.origin.ends_with("mine.toml"), "{e:?}");
    // A refused edit leaves the file alone.
    let r = http()
        .post(format!("{}/api/config", cluster.admin_url()))
        .json(&serde_json::json!({"key": "traffic.rps", "value": "-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);

    // A key the KV store sets above the file: an edit of the file would change nothing live,
    // so it is refused, naming the layer (it was said done before).
    let r = http()
        .put(format!("{}/v1/kv/lgo/traffic/rps", cluster.registry_url()))
        .body("50")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let center = cluster.config().clone();
    eventually("the KV value applied", || center.config().traffic.rps == 50).await;
    let r = http()
        .post(format!("{}/api/config", cluster.admin_url()))
        .json(&serde_json::json!({"key": "traffic.rps", "value": "70"}))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let said = r.text().await.unwrap();
    assert!(!status.is_success(), "{status} {said}");
    assert!(
        said.contains("KV store") && said.contains("lgo/traffic/rps"),
        "{said}"
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        text,
        "the file untouched"
    );

    // Set then unset a key of a new section: no empty section is left to break the config.
    let set = |key: &str, value: Option<&str>| {
        let admin = cluster.admin_url();
        let body = match value {
            Some(v) => serde_json::json!({"key": key, "value": v}),
            None => serde_json::json!({"key": key}),
        };
        async move {
            http()
                .post(format!("{admin}/api/config"))
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(set("balancer.foo.strategy", Some("\"p2c\"")).await, 200);
    let _ = set("balancer.foo.strategy", None).await;
    assert!(
        !std::fs::read_to_string(&path)
            .unwrap()
            .contains("[balancer.foo]"),
        "no empty section left"
    );
    assert_eq!(
        set("retries.attempts", Some("3")).await,
        200,
        "edits still go through"
    );

    // Undo of an edit to a key the file did not set removes the override from the file (it
    // wrote the default's value into it).
    assert_eq!(set("timeouts.call_ms", Some("3000")).await, 200);
    assert!(
        std::fs::read_to_string(&path)
            .unwrap()
            .contains("call_ms = 3000")
    );
    let r = http()
        .post(format!("{}/api/config/undo", cluster.admin_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let after = std::fs::read_to_string(&path).unwrap();
    assert!(!after.contains("call_ms"), "{after}");
    let e = cluster.config().get("timeouts.call_ms").unwrap();
    assert_eq!(e.value, "2000");
    assert!(!e.origin.ends_with("mine.toml"), "{e:?}");
    cluster.shutdown().await;
    std::fs::remove_dir_all(&dir).ok();
}

/// Set by the crash-safety test when it runs this test binary as the process to kill.
const CHILD_ENV: &str = "LGO_SAVE_FOREVER";

/// Two versions of a config file, large so that a save takes long enough to be interrupted.
fn version_text(n: u8) -> String {
    let mut t = format!("# version {n}\n[traffic]\nrps = {n}\n");
    for i in 0..40_000 {
        t.push_str(&format!("# padding line {i} of version {n}\n"));
    }
    t
}

#[test]
#[ignore = "the process the crash-safety test runs and kills, not a test by itself"]
fn save_forever_child() {
    // Only when run as the child of the test below: save the two versions in turns until killed.
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (a, b) = (version_text(1), version_text(2));
    loop {
        save_atomic(Path::new(&path), &a).unwrap();
        save_atomic(Path::new(&path), &b).unwrap();
    }
}

#[test]
fn a_process_killed_while_saving_leaves_the_old_or_the_new_file() {
    let dir = temp_dir("crash");
    let path = dir.join("mine.toml");
    let (a, b) = (version_text(1), version_text(2));
    std::fs::write(&path, &a).unwrap();
    let exe = std::env::current_exe().unwrap();
    for round in 0..12u64 {
        let mut child = std::process::Command::new(&exe)
            .args(["--exact", "save_forever_child", "--ignored", "--nocapture"])
            .env(CHILD_ENV, &path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Kill it at a different moment each round, mid-save more often than not.
        std::thread::sleep(Duration::from_millis(40 + round * 17));
        child.kill().unwrap(); // SIGKILL: no destructor, no flush
        child.wait().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text == a || text == b,
            "round {round}: a torn file of {} bytes",
            text.len()
        );
        toml::from_str::<toml::Table>(&text).unwrap();
    }
    std::fs::remove_dir_all(&dir).ok();
}
