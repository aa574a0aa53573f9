//! The user's config file: edits made with `ctl` or in the dashboard are written back to it
//! keeping its comments and layout (`toml_edit`), atomically (a temporary file, fsync, rename),
//! and hand edits of it are noticed (`notify`, debounced) and reloaded.

use super::layers::split_key;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml_edit::{DocumentMut, Item, TableLike};

/// Editors write a file in bursts (truncate, write, rename): wait this long after the first
/// event for the rest before reading it.
pub const DEBOUNCE: Duration = Duration::from_millis(150);

/// Sets `key` to `value` (TOML text; `None` removes it) in the TOML file at `path`, keeping
/// everything else as written.
pub fn write_key(path: &Path, key: &str, value: Option<&str>) -> Result<(), String> {
    let shown = path.display();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("cannot read {shown}: {e}")),
    };
    let mut doc: DocumentMut = text
        .parse()
        .map_err(|e| format!("{shown} is not valid TOML, not written: {e}"))?;
    let parts = split_key(key);
    let Some((last, parents)) = parts.split_last() else {
        return Err("empty key".into());
    };
    if value.is_none() {
        remove_key(&mut doc, &parts);
        return save_atomic(path, &doc.to_string())
            .map_err(|e| format!("cannot write {shown}: {e}"));
    }
    let mut table: &mut dyn TableLike = doc.as_table_mut();
    for p in parents {
        let item = table.entry(p).or_insert_with(|| {
            let mut t = toml_edit::Table::new();
            t.set_implicit(true);
            Item::Table(t)
        });
        table = item
            .as_table_like_mut()
            .ok_or_else(|| format!("{key}: `{p}` is not a table in {shown}"))?;
    }
    match value {
        Some(text) => {
            let new: toml_edit::Value = text
                .parse()
                .map_err(|e| format!("{key} = {text}: not a TOML value: {e}"))?;
            match table.get_mut(last) {
                // Keep the comment after the old value.
                Some(Item::Value(old)) => {
                    let decor = old.decor().clone();
                    *old = new;
                    *old.decor_mut() = decor;
                }
                _ => {
                    table.insert(last, toml_edit::value(new));
                }
            }
        }
        None => {
            table.remove(last);
        }
    }
    save_atomic(path, &doc.to_string()).map_err(|e| format!("cannot write {shown}: {e}"))
}

/// Removes the key at `parts`, and the tables it leaves empty: an empty `[balancer.foo]` would
/// read as a section without its keys (a config that no longer adds up), and a key never set
/// changes nothing.
fn remove_key(doc: &mut DocumentMut, parts: &[String]) {
    for depth in (1..=parts.len()).rev() {
        let (name, above) = (&parts[depth - 1], &parts[..depth - 1]);
        let mut table: &mut dyn TableLike = doc.as_table_mut();
        for p in above {
            match table.get_mut(p).and_then(Item::as_table_like_mut) {
                Some(t) => table = t,
                None => return,
            }
        }
        let is_leaf = depth == parts.len();
        let empty = table
            .get(name)
            .and_then(Item::as_table_like)
            .is_some_and(|t| t.is_empty());
        if is_leaf || empty {
            table.remove(name);
        } else {
            return;
        }
    }
}

/// Replaces `path` with `text` so that a crash at any moment leaves the old file or the new one,
/// never a mix: write a temporary file beside it, fsync it, rename it over, fsync the directory.
pub fn save_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map_or_else(|| "config".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    {
        // Readable by its owner only: a config may hold what the cluster is guarded with.
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut f = options.open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Calls `changed` (debounced) whenever the file at `path` is written, replaced or created.
/// The directory is watched, not the file: editors and `save_atomic` replace it by renaming.
pub fn watch(
    path: PathBuf,
    changed: impl Fn() + Send + 'static,
) -> notify::Result<notify::RecommendedWatcher> {
    use notify::{EventKind, RecursiveMode, Watcher};
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let name = path.file_name().map(|n| n.to_os_string());
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let Ok(ev) = res else {
            return;
        };
        let ours = ev.paths.iter().any(|p| p.file_name() == name.as_deref());
        if ours && !matches!(ev.kind, EventKind::Access(_)) {
            let _ = tx.send(());
        }
    })?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    watcher.watch(dir, RecursiveMode::NonRecursive)?;
    crate::telemetry::spawn(async move {
        while rx.recv().await.is_some() {
            tokio::time::sleep(DEBOUNCE).await;
            while rx.try_recv().is_ok() {}
            changed();
        }
    });
    Ok(watcher)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_keep_comments_and_layout() {
        let dir = std::env::temp_dir().join(format!("lgo-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("mine.toml");
        std::fs::write(
            &path,
            "# my overrides\n[traffic]\nrps = 20   # calm\n\n[retries]\nattempts = 2\n",
        )
        .unwrap();
        write_key(&path, "traffic.rps", Some("75")).unwrap();
        write_key(&path, "breaker.gateway->user-service.window", Some("4")).unwrap();
        write_key(&path, "retries.attempts", None).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("# my overrides\n[traffic]\nrps = 75   # calm\n"),
            "{text}"
        );
        assert!(
            text.contains("[breaker.\"gateway->user-service\"]\nwindow = 4"),
            "{text}"
        );
        assert!(!text.contains("attempts"), "{text}");
        assert!(
            !text.contains("[retries]"),
            "the emptied section goes too: {text}"
        );
        // A key set then unset leaves no empty section behind (it would read as a section
        // without its keys); a key never set changes nothing.
        write_key(&path, "balancer.foo.strategy", Some("\"p2c\"")).unwrap();
        write_key(&path, "balancer.foo.strategy", None).unwrap();
        write_key(&path, "nosuch.key", None).unwrap();
        let after = std::fs::read_to_string(&path).unwrap();
        assert_eq!(after, text, "as before the set");
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "no temporary file left");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "written for its owner only: {mode:o}");
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}
