//! The keys of every binding: `assets/keymap.toml` (built in), then the user's file
//! (`~/.config/lgo-dash/keymap.toml`, or `--keymap FILE`) over it. Dispatch, the footer and the
//! help overlay read the one table this makes.

use super::action::{Action, Def, Scope, defs};
use super::tabs::Tab;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use std::fmt;
use std::path::{Path, PathBuf};

/// The built-in keymap.
pub const DEFAULT: &str = include_str!("../../assets/keymap.toml");

/// One key as a binding names it: shift is in the character (`G`), not a modifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub code: KeyCode,
    pub ctrl: bool,
    pub alt: bool,
}

impl Key {
    pub const fn plain(code: KeyCode) -> Key {
        Key {
            code,
            ctrl: false,
            alt: false,
        }
    }

    fn of(ev: KeyEvent) -> Key {
        let code = match ev.code {
            // Some terminals send ctrl-C for ctrl-shift-c: a binding names the letter.
            KeyCode::Char(c) if ev.modifiers.contains(KeyModifiers::CONTROL) => {
                KeyCode::Char(c.to_ascii_lowercase())
            }
            c => c,
        };
        Key {
            code,
            ctrl: ev.modifiers.contains(KeyModifiers::CONTROL),
            alt: ev.modifiers.contains(KeyModifiers::ALT),
        }
    }

    /// Parses a key as the keymap file writes it: `x`, `G`, `Enter`, `ctrl-d`, `alt-Left`.
    pub fn parse(text: &str) -> Result<Key, String> {
        let mut rest = text;
        let (mut ctrl, mut alt) = (false, false);
        loop {
            let lower = rest.to_ascii_lowercase();
            // A lone `-` is the key itself, not a modifier's dash.
            if rest.len() > 1 && (lower.starts_with("ctrl-") || lower.starts_with("c-")) {
                ctrl = true;
                rest = &rest[rest.find('-').map_or(0, |i| i + 1)..];
            } else if rest.len() > 1 && (lower.starts_with("alt-") || lower.starts_with("m-")) {
                alt = true;
                rest = &rest[rest.find('-').map_or(0, |i| i + 1)..];
            } else {
                break;
            }
        }
        let mut chars = rest.chars();
        let code = match (chars.next(), chars.next()) {
            (Some(c), None) if ctrl => KeyCode::Char(c.to_ascii_lowercase()),
            (Some(c), None) => match c {
                '↑' => KeyCode::Up,
                '↓' => KeyCode::Down,
                '←' => KeyCode::Left,
                '→' => KeyCode::Right,
                c => KeyCode::Char(c),
            },
            _ => match rest.to_ascii_lowercase().as_str() {
                "enter" | "return" => KeyCode::Enter,
                "esc" | "escape" => KeyCode::Esc,
                "tab" => KeyCode::Tab,
                "backtab" | "shift-tab" | "s-tab" => KeyCode::BackTab,
                "space" => KeyCode::Char(' '),
                "backspace" => KeyCode::Backspace,
                "delete" | "del" => KeyCode::Delete,
                "insert" | "ins" => KeyCode::Insert,
                "up" => KeyCode::Up,
                "down" => KeyCode::Down,
                "left" => KeyCode::Left,
                "right" => KeyCode::Right,
                "home" => KeyCode::Home,
                "end" => KeyCode::End,
                "pageup" | "pgup" => KeyCode::PageUp,
                "pagedown" | "pgdn" | "pgdown" => KeyCode::PageDown,
                f if f.starts_with('f')
                    && f[1..].parse::<u8>().is_ok_and(|n| (1..=12).contains(&n)) =>
                {
                    KeyCode::F(f[1..].parse().unwrap_or(1))
                }
                _ => {
                    return Err(format!(
                        "\"{text}\" is not a key: expected a character (\"x\", \"G\", \"?\") or one of \
                         Enter, Esc, Tab, BackTab, Space, Backspace, Delete, Insert, Up, Down, Left, \
                         Right, Home, End, PageUp, PageDown, F1–F12, with ctrl- or alt- in front"
                    ));
                }
            },
        };
        Ok(Key { code, ctrl, alt })
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ctrl {
            f.write_str("ctrl-")?;
        }
        if self.alt {
            f.write_str("alt-")?;
        }
        match self.code {
            KeyCode::Char(' ') => f.write_str("space"),
            KeyCode::Char(c) => write!(f, "{c}"),
            KeyCode::Up => f.write_str("↑"),
            KeyCode::Down => f.write_str("↓"),
            KeyCode::Left => f.write_str("←"),
            KeyCode::Right => f.write_str("→"),
            KeyCode::BackTab => f.write_str("S-Tab"),
            KeyCode::PageUp => f.write_str("PgUp"),
            KeyCode::PageDown => f.write_str("PgDn"),
            KeyCode::F(n) => write!(f, "F{n}"),
            other => write!(f, "{other}"),
        }
    }
}

/// A binding: what it does (from the code's table) and its keys (from the keymap).
pub struct Binding {
    pub def: Def,
    pub keys: Vec<Key>,
}

impl Binding {
    /// Its keys as help shows them: `j ↓`.
    pub fn keys_text(&self) -> String {
        let keys: Vec<String> = self.keys.iter().map(Key::to_string).collect();
        keys.join(" ")
    }
}

/// Why a keymap file was refused: where, and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("keymap {origin}, line {line}: {why}")]
pub struct KeymapError {
    pub origin: String,
    pub line: usize,
    pub why: String,
}

/// Every binding with its keys.
pub struct Keymap {
    bindings: Vec<Binding>,
}

/// ctrl-c quits whatever a keymap file says.
const CTRL_C: Key = Key {
    code: KeyCode::Char('c'),
    ctrl: true,
    alt: false,
};

impl Default for Keymap {
    fn default() -> Keymap {
        let mut map = Keymap::unbound();
        // A test holds the built-in file to every rule a user's file is held to.
        if let Err(e) = map.apply(DEFAULT, "built in") {
            debug_assert!(false, "{e}");
        }
        map
    }
}

impl Keymap {
    /// Every binding of the code's table, without keys yet.
    fn unbound() -> Keymap {
        Keymap {
            bindings: defs()
                .into_iter()
                .map(|def| Binding { def, keys: vec![] })
                .collect(),
        }
    }

    /// The built-in keymap, then the user's: `path` when given (it must exist), else
    /// `~/.config/lgo-dash/keymap.toml` when there is one.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Keymap> {
        let mut map = Keymap::default();
        let path = match path {
            Some(p) => Some(p.to_path_buf()),
            None => user_file().filter(|p| p.exists()),
        };
        if let Some(p) = path {
            let text = std::fs::read_to_string(&p)
                .map_err(|e| anyhow::anyhow!("cannot read keymap {}: {e}", p.display()))?;
            map.apply(&text, &p.display().to_string())?;
        }
        Ok(map)
    }

    /// The built-in keymap with `text` over it (`origin` names it in errors).
    pub fn with(text: &str, origin: &str) -> Result<Keymap, KeymapError> {
        let mut map = Keymap::default();
        map.apply(text, origin)?;
        Ok(map)
    }

    /// Sets the keys `text` names; nothing changes when it is refused.
    fn apply(&mut self, text: &str, origin: &str) -> Result<(), KeymapError> {
        let refuse = |at: Option<std::ops::Range<usize>>, why: String| KeymapError {
            origin: origin.to_string(),
            line: at.map_or(1, |r| line_of(text, r.start)),
            why,
        };
        let doc = toml_edit::Document::parse(text).map_err(|e| {
            let why = e.message().to_string();
            refuse(e.span(), why)
        })?;
        // (binding, keys, where the keys were written)
        let mut set: Vec<(usize, Vec<Key>, Option<std::ops::Range<usize>>)> = Vec::new();
        for (section, item) in doc.iter() {
            let at = item.span();
            let Some(scope) = Scope::all().find(|s| s.section() == section) else {
                let known: Vec<String> = Scope::all().map(Scope::section).collect();
                return Err(refuse(
                    at,
                    format!(
                        "no section [{section}]: expected one of {}",
                        known.join(", ")
                    ),
                ));
            };
            let Some(table) = item.as_table_like() else {
                return Err(refuse(
                    at,
                    format!("{section} is a section: write it as [{section}]"),
                ));
            };
            for (name, value) in table.iter() {
                let at = value
                    .span()
                    .or_else(|| table.key(name).and_then(|k| k.span()));
                let Some(i) = self
                    .bindings
                    .iter()
                    .position(|b| b.def.scope == scope && b.def.name == name)
                else {
                    let known: Vec<&str> = self
                        .bindings
                        .iter()
                        .filter(|b| b.def.scope == scope)
                        .map(|b| b.def.name)
                        .collect();
                    return Err(refuse(
                        at,
                        format!(
                            "[{section}] has no action {name}: expected one of {}",
                            known.join(", ")
                        ),
                    ));
                };
                let texts: Vec<&str> = match value.as_value() {
                    Some(toml_edit::Value::String(s)) => vec![s.value().as_str()],
                    Some(toml_edit::Value::Array(a)) => {
                        let mut all = Vec::new();
                        for v in a.iter() {
                            match v.as_str() {
                                Some(s) => all.push(s),
                                None => {
                                    return Err(refuse(
                                        v.span().or(at),
                                        format!(
                                            "{name} = {}: expected keys as strings, like [\"x\", \"ctrl-d\"]",
                                            value.to_string().trim()
                                        ),
                                    ));
                                }
                            }
                        }
                        all
                    }
                    _ => {
                        return Err(refuse(
                            at,
                            format!(
                                "{name} = {}: expected a key or a list of keys, like [\"x\", \"ctrl-d\"]",
                                value.to_string().trim()
                            ),
                        ));
                    }
                };
                let keys = texts
                    .iter()
                    .map(|t| Key::parse(t))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|why| refuse(at.clone(), format!("{name}: {why}")))?;
                set.push((i, keys, at));
            }
        }
        let mut next: Vec<Vec<Key>> = self.bindings.iter().map(|b| b.keys.clone()).collect();
        for (i, keys, _) in &set {
            next[*i] = keys.clone();
        }
        // Two actions of one section on one key: the second could never be reached.
        for (i, keys, at) in &set {
            let b = &self.bindings[*i];
            for key in keys {
                if let Some(j) = (0..next.len()).find(|&j| {
                    j != *i
                        && self.bindings[j].def.scope == b.def.scope
                        && next[j].contains(key)
                        && !(key == &CTRL_C && self.bindings[j].def.action == Action::Quit)
                }) {
                    return Err(refuse(
                        at.clone(),
                        format!(
                            "{key} is bound to both {} and {} in [{}]",
                            b.def.name,
                            self.bindings[j].def.name,
                            b.def.scope.section()
                        ),
                    ));
                }
            }
        }
        for (b, keys) in self.bindings.iter_mut().zip(next) {
            b.keys = keys;
            if b.def.action == Action::Quit && !b.keys.contains(&CTRL_C) {
                b.keys.push(CTRL_C);
            }
        }
        Ok(())
    }

    pub fn bindings(&self) -> &[Binding] {
        &self.bindings
    }

    /// The binding for a key press on `tab`: the tab's own first, then the global ones.
    pub fn binding(&self, tab: Tab, ev: KeyEvent) -> Option<&Binding> {
        if ev.kind != KeyEventKind::Press && ev.kind != KeyEventKind::Repeat {
            return None;
        }
        let key = Key::of(ev);
        let find = |scope: Scope| {
            self.bindings
                .iter()
                .find(|b| b.def.scope == scope && b.keys.contains(&key))
        };
        find(Scope::Tab(tab)).or_else(|| find(Scope::Global))
    }

    /// The action for a key press on `tab`.
    pub fn action(&self, tab: Tab, ev: KeyEvent) -> Option<Action> {
        self.binding(tab, ev).map(|b| b.def.action.clone())
    }

    /// The binding named `name` in `scope`.
    pub fn named(&self, scope: Scope, name: &str) -> Option<&Binding> {
        self.bindings
            .iter()
            .find(|b| b.def.scope == scope && b.def.name == name)
    }

    /// Whether a global binding is hidden on `tab`: the tab takes its first key, the one its
    /// hint shows (Enter edits on Config, though `l` and → still open there).
    pub fn hidden_on(&self, tab: Tab, b: &Binding) -> bool {
        b.def.scope == Scope::Global
            && b.keys.first().is_some_and(|k| {
                self.bindings
                    .iter()
                    .any(|o| o.def.scope == Scope::Tab(tab) && o.keys.contains(k))
            })
    }
}

/// Every binding as a Markdown table (the README's list of keys is this, checked by a test).
pub fn markdown(map: &Keymap) -> String {
    let mut out = String::from("| where | keys | does |\n|---|---|---|\n");
    for b in map.bindings() {
        let keys: Vec<String> = b.keys.iter().map(|k| format!("`{k}`")).collect();
        let place = b.def.scope.tab().map_or("anywhere", |t| t.title());
        out.push_str(&format!(
            "| {place} | {} | {} |\n",
            keys.join(" "),
            b.def.help
        ));
    }
    out
}

/// `$XDG_CONFIG_HOME/lgo-dash/keymap.toml`, or under `~/.config`.
pub fn user_file() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("lgo-dash").join("keymap.toml"))
}

/// The 1-based line of a byte offset.
fn line_of(text: &str, at: usize) -> usize {
    text.as_bytes()[..at.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(c: KeyCode) -> KeyEvent {
        KeyEvent::new(c, KeyModifiers::NONE)
    }

    #[test]
    fn the_built_in_file_binds_every_action_and_passes_every_rule() {
        let mut map = Keymap::unbound();
        map.apply(DEFAULT, "built in").unwrap();
        for b in map.bindings() {
            assert!(!b.keys.is_empty(), "{} has no key", b.def.name);
        }
    }

    /// The README lists every key as the built-in keymap binds it.
    #[test]
    fn the_readme_lists_every_key() {
        let table = markdown(&Keymap::default());
        let readme = include_str!("../../README.md");
        assert!(
            readme.contains(&table),
            "README.md's list of keys is out of date; put this under \"Every key\":\n{table}"
        );
    }

    #[test]
    fn keys_parse_and_print_back() {
        for (text, shown) in [
            ("x", "x"),
            ("G", "G"),
            ("?", "?"),
            ("-", "-"),
            ("ctrl-d", "ctrl-d"),
            ("C-D", "ctrl-d"),
            ("alt-Left", "alt-←"),
            ("Enter", "Enter"),
            ("space", "space"),
            ("BackTab", "S-Tab"),
            ("shift-tab", "S-Tab"),
            ("PgDn", "PgDn"),
            ("F5", "F5"),
            ("↓", "↓"),
        ] {
            let k = Key::parse(text).unwrap();
            assert_eq!(k.to_string(), shown, "{text}");
            assert_eq!(Key::parse(&k.to_string()), Ok(k), "{text} round trip");
        }
        for bad in ["", "ctrl-", "Entr", "F13", "xy"] {
            assert!(Key::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_tab_key_comes_before_the_global_one_and_ctrl_shift_counts_as_ctrl() {
        let map = Keymap::default();
        let enter = press(KeyCode::Enter);
        assert_eq!(map.binding(Tab::Config, enter).unwrap().def.name, "edit");
        assert_eq!(map.binding(Tab::Services, enter).unwrap().def.name, "open");
        assert_eq!(
            map.action(Tab::Services, press(KeyCode::Char('x'))),
            Some(Action::KillSelected)
        );
        assert_eq!(
            map.action(Tab::Logs, press(KeyCode::Char('x'))),
            None,
            "kill is the Services tab's"
        );
        let ctrl_shift_c = KeyEvent::new(
            KeyCode::Char('C'),
            KeyModifiers::CONTROL | KeyModifiers::SHIFT,
        );
        assert_eq!(map.action(Tab::Logs, ctrl_shift_c), Some(Action::Quit));
    }

    #[test]
    fn a_remapped_key_works_and_the_old_one_no_longer_does() {
        let map = Keymap::with(
            "[services]\nkill = \"K\"\n\n[global]\nquit = [\"ctrl-q\"]\n",
            "test",
        )
        .unwrap();
        assert_eq!(
            map.action(Tab::Services, press(KeyCode::Char('K'))),
            Some(Action::KillSelected)
        );
        assert_eq!(map.action(Tab::Services, press(KeyCode::Char('x'))), None);
        let ctrl_q = KeyEvent::new(KeyCode::Char('q'), KeyModifiers::CONTROL);
        assert_eq!(map.action(Tab::Traces, ctrl_q), Some(Action::Quit));
        assert_eq!(map.action(Tab::Traces, press(KeyCode::Char('q'))), None);
        // ctrl-c still quits.
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(map.action(Tab::Traces, ctrl_c), Some(Action::Quit));
        // Swapping two keys of one section is no conflict.
        let swapped = Keymap::with("[services]\nkill = \"r\"\nrestart = \"x\"\n", "test").unwrap();
        assert_eq!(
            swapped.action(Tab::Services, press(KeyCode::Char('r'))),
            Some(Action::KillSelected)
        );
    }

    #[test]
    fn a_bad_file_is_refused_with_its_line_and_why() {
        let cases = [
            (
                "[global]\nquit = \"q\"\n[servces]\nkill = \"x\"\n",
                3,
                "no section [servces]",
            ),
            (
                "[global]\n\nquti = \"q\"\n",
                3,
                "[global] has no action quti: expected one of",
            ),
            ("[services]\nkill = \"ctrl-\"\n", 2, "is not a key"),
            (
                "[services]\nkill = 3\n",
                2,
                "expected a key or a list of keys",
            ),
            (
                "[services]\nkill = [\"x\", 3]\n",
                2,
                "expected keys as strings",
            ),
            ("[global]\nquit = [\"q\"\n", 2, ""),
            (
                "[services]\n\nkill = \"r\"\n",
                3,
                "r is bound to both kill and restart in [services]",
            ),
            ("global = 1\n", 1, "write it as [global]"),
        ];
        for (text, line, why) in cases {
            let e = Keymap::with(text, "my.toml")
                .err()
                .unwrap_or_else(|| panic!("accepted {text:?}"));
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.why.contains(why), "{text:?}: {e}");
            assert!(
                e.to_string()
                    .starts_with(&format!("keymap my.toml, line {line}: ")),
                "{e}"
            );
        }
    }
}
