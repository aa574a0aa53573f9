//! The `:` command palette: every `lgo-dash ctl` command, typed in the dashboard and parsed by
//! the same clap definitions (`:kill user-service-2`, `:breaker gateway->user-service open`,
//! `:fault user-service-3 --latency 200`, `:trace ID`), plus `:env NAME`, `:help` and `:q`.
//! Tab completes the word under the cursor from the commands, their flags and what the cluster
//! holds (instances, breakers, services, strategies, config keys, environments, trace ids).

use crate::cli::CtlCommand;
use clap::{CommandFactory, Parser};

/// A palette line as clap reads it: a `ctl` command without `ctl`.
#[derive(Debug, Parser)]
#[command(
    name = ":",
    no_binary_name = true,
    disable_help_flag = true,
    disable_help_subcommand = true,
    disable_version_flag = true
)]
struct PaletteLine {
    #[command(subcommand)]
    command: CtlCommand,
}

/// What a palette line asks for.
#[derive(Debug)]
pub enum Run {
    Quit,
    Help,
    /// Show what switching to this environment changes (`y` applies).
    Env(String),
    Ctl(CtlCommand),
}

/// Commands only the palette has, beside `ctl`'s.
const OWN: [&str; 4] = ["env", "help", "q", "quit"];

/// Reads a palette line; an error says what is wrong in clap's words, on one line.
pub fn parse(line: &str) -> Result<Run, String> {
    let words = shlex::split(line).ok_or_else(|| format!("{line}: a quote is not closed"))?;
    match words
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] => Err("type a command (Tab lists them)".into()),
        ["q" | "quit"] => Ok(Run::Quit),
        ["help"] => Ok(Run::Help),
        ["env", name] => Ok(Run::Env((*name).to_string())),
        ["env", ..] => Err("env NAME: the environment to switch to (Tab lists them)".into()),
        _ => PaletteLine::try_parse_from(&words)
            .map(|p| Run::Ctl(p.command))
            .map_err(|e| one_line(&e.render().to_string())),
    }
}

/// clap's message without its usage block, on one line.
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:"))
        .filter(|l| !l.is_empty() && !l.starts_with("For more information"))
        .map(|l| l.trim_start_matches("error: "))
        .collect::<Vec<_>>()
        .join(" · ")
}

/// What completion can offer besides the commands and flags: the cluster's names.
#[derive(Debug, Default)]
pub struct Names {
    pub instances: Vec<String>,
    pub breakers: Vec<String>,
    pub services: Vec<String>,
    pub keys: Vec<String>,
    pub traces: Vec<String>,
}

/// Where the last word of `line` starts (a byte offset): the word Tab completes.
pub fn word_start(line: &str) -> usize {
    line.rfind(char::is_whitespace).map_or(0, |i| i + 1)
}

/// Where the word being completed starts (a byte offset in `line`), and what could go there,
/// sorted. Only the text before the cursor counts.
pub fn complete(line: &str, names: &Names) -> (usize, Vec<String>) {
    let start = word_start(line);
    let (done, word) = (&line[..start], &line[start..]);
    let words: Vec<&str> = done.split_whitespace().collect();
    let mut all = candidates(&words, word, names);
    all.retain(|c| c.starts_with(word));
    all.sort();
    all.dedup();
    (start, all)
}

fn candidates(words: &[&str], word: &str, names: &Names) -> Vec<String> {
    let strings = |v: &[String]| v.to_vec();
    let root = PaletteLine::command();
    if words.is_empty() {
        let mut all: Vec<String> = root
            .get_subcommands()
            .map(|c| c.get_name().to_string())
            .collect();
        all.extend(OWN.map(String::from));
        return all;
    }
    if words == ["env"] {
        return devcluster::config::layers::Layer::environments()
            .map(String::from)
            .collect();
    }
    // Down the subcommands the line names; then count its positional values so far.
    let mut cmd = &root;
    let mut rest = words;
    while let Some((first, tail)) = rest.split_first() {
        match cmd.find_subcommand(first) {
            Some(sub) => {
                cmd = sub;
                rest = tail;
            }
            None => break,
        }
    }
    let takes_value = |w: &str| {
        w.strip_prefix("--").is_some_and(|long| {
            cmd.get_arguments().any(|a| {
                a.get_long() == Some(long)
                    && a.get_num_args().is_none_or(|n| n.takes_values())
                    && !matches!(
                        a.get_action(),
                        clap::ArgAction::SetTrue | clap::ArgAction::SetFalse
                    )
            })
        })
    };
    if word.starts_with('-') {
        return cmd
            .get_arguments()
            .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
            .collect();
    }
    // The value of an option (`--service NAME`).
    if let Some(last) = rest.last().filter(|w| takes_value(w)) {
        let long = &last[2..];
        let arg = cmd.get_arguments().find(|a| a.get_long() == Some(long));
        return match long {
            "service" => strings(&names.services),
            "trace" => strings(&names.traces),
            "level" => ["trace", "debug", "info", "warn", "error"]
                .map(String::from)
                .to_vec(),
            _ => arg.map_or_else(Vec::new, possible),
        };
    }
    if cmd.has_subcommands() && rest.is_empty() {
        return cmd
            .get_subcommands()
            .map(|c| c.get_name().to_string())
            .collect();
    }
    // Which positional this word is: the words after the command that are neither flags nor
    // an option's value.
    let mut k = 0;
    let mut skip = false;
    for w in rest {
        if skip {
            skip = false;
        } else if w.starts_with("--") {
            skip = takes_value(w);
        } else {
            k += 1;
        }
    }
    let Some(arg) = cmd.get_positionals().nth(k) else {
        return Vec::new();
    };
    match (cmd.get_name(), arg.get_id().as_str()) {
        ("breaker", "name") => strings(&names.breakers),
        ("env", "name") => devcluster::config::layers::Layer::environments()
            .map(String::from)
            .collect(),
        (_, "id") if cmd.get_name() == "trace" => strings(&names.traces),
        (_, "id") => strings(&names.instances),
        (_, "service") => strings(&names.services),
        (_, "strategy") => devcluster::balance::Strategy::ALL
            .iter()
            .map(|s| s.as_str().to_string())
            .collect(),
        (_, "key") => strings(&names.keys),
        (_, "method") => ["GET", "POST", "PUT", "DELETE", "PATCH"]
            .map(String::from)
            .to_vec(),
        _ => possible(arg),
    }
}

fn possible(arg: &clap::Arg) -> Vec<String> {
    arg.get_possible_values()
        .iter()
        .map(|v| v.get_name().to_string())
        .collect()
}

/// The longest text every candidate starts with.
pub fn common_prefix(all: &[String]) -> &str {
    let Some(first) = all.first() else {
        return "";
    };
    let mut end = first.len();
    for c in &all[1..] {
        end = end.min(
            first
                .char_indices()
                .zip(c.chars())
                .find(|((_, a), b)| a != b)
                .map_or(first.len().min(c.len()), |((i, _), _)| i),
        );
    }
    &first[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Names {
        Names {
            instances: vec![
                "user-service-1".into(),
                "user-service-2".into(),
                "order-service-1".into(),
            ],
            breakers: vec![
                "gateway->user-service".into(),
                "order-service->user-service".into(),
            ],
            services: vec!["order-service".into(), "user-service".into()],
            keys: vec!["traffic.rps".into(), "traffic.enabled".into()],
            traces: vec!["4bf92f3577b34da6a3ce929d0e0e4736".into()],
        }
    }

    fn offered(line: &str) -> Vec<String> {
        complete(line, &names()).1
    }

    #[test]
    fn the_issues_examples_parse_as_ctl_would() {
        for line in [
            "breaker gateway->user-service open",
            "kill user-service-2",
            "strategy user-service p2c",
            "fault user-service-3 --latency 200",
            "trace 4bf92f3577b34da6a3ce929d0e0e4736",
            "config set traffic.rps 40",
            "logs --level warn --grep \"not found\"",
        ] {
            assert!(matches!(parse(line), Ok(Run::Ctl(_))), "{line}");
        }
        assert!(matches!(parse("env staging"), Ok(Run::Env(e)) if e == "staging"));
        assert!(matches!(parse("q"), Ok(Run::Quit)));
        assert!(matches!(parse("help"), Ok(Run::Help)));
    }

    #[test]
    fn a_bad_line_says_why_on_one_line() {
        let e = parse("kil user-service-2").unwrap_err();
        assert!(
            e.contains("unrecognized subcommand 'kil'") && e.contains("'kill'"),
            "{e}"
        );
        assert!(!e.contains('\n') && !e.contains("Usage"), "{e}");
        let e = parse("breaker gateway->user-service ajar").unwrap_err();
        assert!(e.contains("ajar") && e.contains("open"), "{e}");
        assert!(parse("logs --grep \"open").unwrap_err().contains("quote"));
        assert!(parse("").is_err());
    }

    #[test]
    fn tab_offers_commands_flags_and_the_clusters_names() {
        assert!(offered("").contains(&"kill".to_string()));
        assert!(offered("").contains(&"env".to_string()));
        assert_eq!(offered("br"), ["breaker", "breakers"]);
        assert_eq!(
            offered("kill "),
            ["order-service-1", "user-service-1", "user-service-2"]
        );
        assert_eq!(
            offered("kill user-service-"),
            ["user-service-1", "user-service-2"]
        );
        assert_eq!(offered("breaker g"), ["gateway->user-service"]);
        assert_eq!(
            offered("breaker gateway->user-service "),
            ["auto", "closed", "open"]
        );
        assert!(offered("strategy user-service ").contains(&"p2c".to_string()));
        assert_eq!(offered("strategy u"), ["user-service"]);
        assert!(offered("fault user-service-1 --").contains(&"--latency".to_string()));
        assert_eq!(offered("fault user-service-1 --latency 200 c"), ["clear"]);
        assert_eq!(
            offered("config "),
            ["env", "get", "history", "list", "set", "undo", "unset"]
        );
        assert_eq!(offered("config set t"), ["traffic.enabled", "traffic.rps"]);
        assert_eq!(offered("env s"), ["staging"]);
        assert_eq!(offered("config env p"), ["production"]);
        assert_eq!(offered("logs --service o"), ["order-service"]);
        assert_eq!(offered("logs --level w"), ["warn"]);
        assert_eq!(offered("trace 4b"), ["4bf92f3577b34da6a3ce929d0e0e4736"]);
        assert_eq!(offered("route explain G"), ["GET"]);
        assert!(offered("kill user-service-1 ").is_empty());
        assert_eq!(complete("kill user", &names()).0, 5);
    }

    #[test]
    fn the_common_prefix_stops_at_the_first_difference() {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            common_prefix(&v(&["user-service-1", "user-service-2"])),
            "user-service-"
        );
        assert_eq!(common_prefix(&v(&["breaker", "breakers"])), "breaker");
        assert_eq!(common_prefix(&v(&["kill"])), "kill");
        assert_eq!(common_prefix(&[]), "");
    }
}
