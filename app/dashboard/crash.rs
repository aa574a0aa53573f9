//! What a crash leaves behind: a short report file — the panic's message, where it happened,
//! a backtrace, and where the logs were — next to the state of other runs
//! (`$XDG_STATE_HOME/lgo-dash/`, else `~/.local/state/lgo-dash/`, else the temp directory).

use std::path::PathBuf;

/// The report's text.
pub fn report_text(message: &str, location: &str, backtrace: &str, unix_s: u64) -> String {
    format!(
        "lgo-dash {} crashed (unix time {unix_s})\n\
         panic: {message}\n\
         at: {location}\n\n\
         Logs: the cluster's log lines were kept in memory (the Logs tab) and went with it.\n\
         To keep them across a crash, run the cluster apart and attach to it:\n\
         \x20 LGO_LOG=debug lgo-dash serve 2> lgo-dash.log    then    lgo-dash --attach ADMIN_URL\n\n\
         backtrace:\n{backtrace}\n",
        env!("CARGO_PKG_VERSION"),
    )
}

/// Where reports go.
pub fn report_dir() -> PathBuf {
    let state = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".local/state"))
        })
        .unwrap_or_else(std::env::temp_dir);
    state.join("lgo-dash")
}

/// Writes `text` as a new report in `dir`; its path, or `None` when it could not be written.
pub fn write_report(dir: &std::path::Path, text: &str, unix_s: u64) -> Option<PathBuf> {
    std::fs::create_dir_all(dir).ok()?;
    let path = dir.join(format!("crash-{unix_s}-{}.txt", std::process::id()));
    std::fs::write(&path, text).ok()?;
    Some(path)
}

/// From the panic hook: the report written, its path said on stderr (the terminal is restored
/// by then).
pub fn on_panic(info: &std::panic::PanicHookInfo<'_>) {
    let message = info
        .payload()
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| info.payload().downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into());
    let location = info.location().map_or_else(
        || "unknown".into(),
        |l| format!("{}:{}", l.file(), l.line()),
    );
    let unix_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let backtrace = std::backtrace::Backtrace::force_capture().to_string();
    let text = report_text(&message, &location, &backtrace, unix_s);
    match write_report(&report_dir(), &text, unix_s) {
        Some(path) => eprintln!("lgo-dash crashed: {message}\nreport: {}", path.display()),
        None => eprintln!("lgo-dash crashed: {message} (no report could be written)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_says_what_where_and_how_to_keep_the_logs() {
        let text = report_text(
            "index out of bounds",
            "app/x.rs:12",
            "0: main",
            1_700_000_000,
        );
        assert!(text.contains("panic: index out of bounds"), "{text}");
        assert!(text.contains("at: app/x.rs:12"), "{text}");
        assert!(
            text.contains("lgo-dash serve") && text.contains("--attach"),
            "{text}"
        );
        let dir = std::env::temp_dir().join(format!("lgo-crash-test-{}", std::process::id()));
        let path = write_report(&dir, &text, 1_700_000_000).expect("written");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        assert!(path.starts_with(&dir));
        std::fs::remove_dir_all(&dir).ok();
    }
}
