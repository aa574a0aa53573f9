//! Config layers, later wins: the defaults, the environment's file, the user's `--config` file,
//! `LGO__SECTION__KEY` variables, then the KV store (`lgo/section/key`). Merged key by key;
//! each leaf remembers the layer it came from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The environment files shipped in `assets/config/`, embedded like the defaults.
const ENV_FILES: &[(&str, &str, &str)] = &[
    (
        "development",
        "assets/config/development.toml",
        include_str!("../../../assets/config/development.toml"),
    ),
    (
        "staging",
        "assets/config/staging.toml",
        include_str!("../../../assets/config/staging.toml"),
    ),
    (
        "production",
        "assets/config/production.json",
        include_str!("../../../assets/config/production.json"),
    ),
];

/// The prefix of config keys in the KV store.
pub const KV_PREFIX: &str = "lgo/";
/// The prefix of config variables in the environment.
pub const ENV_PREFIX: &str = "LGO__";

/// One source of keys.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    /// Where it came from, as shown: `defaults`, `assets/config/staging.toml`, `mine.toml`,
    /// `env LGO__…`.
    pub origin: String,
    /// What it is, for the code that must find a layer (the environment's, the user's file).
    pub kind: LayerKind,
    pub table: toml::Table,
}

/// What a layer is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LayerKind {
    /// The embedded defaults.
    Defaults,
    /// A shipped environment's file, by the environment's name.
    Environment(String),
    /// The user's `--config` file.
    File(PathBuf),
    /// An `LGO__…` variable.
    Var,
    /// The KV store's `lgo/` keys.
    Kv,
    /// Built in code (a `Config` handed to the cluster, a test).
    #[default]
    Code,
}

impl Layer {
    /// The embedded defaults.
    pub fn defaults() -> Result<Layer, String> {
        Ok(Layer {
            kind: LayerKind::Defaults,
            ..Layer::parse("defaults", super::DEFAULTS_TOML)?
        })
    }

    /// The user's file at `path` (TOML, or JSON by its extension), from its `text`.
    pub fn file(path: &Path, text: &str) -> Result<Layer, String> {
        Ok(Layer {
            kind: LayerKind::File(path.to_path_buf()),
            ..Layer::parse(&path.display().to_string(), text)?
        })
    }

    /// A TOML or (by its name) JSON document.
    pub fn parse(origin: &str, text: &str) -> Result<Layer, String> {
        let table = if origin.ends_with(".json") {
            let v: serde_json::Value =
                serde_json::from_str(text).map_err(|e| format!("{origin}: {e}"))?;
            match toml::Value::try_from(v) {
                Ok(toml::Value::Table(t)) => t,
                Ok(_) => return Err(format!("{origin}: expected a JSON object")),
                Err(e) => return Err(format!("{origin}: {e}")),
            }
        } else {
            toml::from_str(text).map_err(|e| format!("{origin}: {e}"))?
        };
        Ok(Layer {
            origin: origin.into(),
            kind: LayerKind::Code,
            table,
        })
    }

    /// The environments a file is shipped for: `development`, `staging`, `production`.
    pub fn environments() -> impl Iterator<Item = &'static str> {
        ENV_FILES.iter().map(|e| e.0)
    }

    /// The shipped file of `env`; an unknown environment is an error naming the known ones.
    pub fn environment(env: &str) -> Result<Layer, String> {
        let (_, path, text) = ENV_FILES
            .iter()
            .find(|(name, _, _)| *name == env)
            .ok_or_else(|| {
                let known: Vec<&str> = ENV_FILES.iter().map(|e| e.0).collect();
                // Said under "environment NAME: " by the caller.
                format!(
                    "no assets/config/{env}.toml or .json (known: {})",
                    known.join(", ")
                )
            })?;
        Ok(Layer {
            kind: LayerKind::Environment(env.into()),
            ..Layer::parse(path, text)?
        })
    }

    /// `LGO__SECTION__KEY=value` variables, each its own origin. Parts are matched to the keys
    /// of `known` ignoring case and `_` against `-` (`LGO__BALANCER__USER_SERVICE__STRATEGY`).
    pub fn from_env(
        vars: impl IntoIterator<Item = (String, String)>,
        known: &toml::Table,
    ) -> Vec<Layer> {
        let mut out = Vec::new();
        for (name, value) in vars {
            let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let mut parts = Vec::new();
            let mut here = Some(known);
            for raw in rest.split("__") {
                let found = here.and_then(|t| {
                    t.keys()
                        .find(|k| k.replace('-', "_").eq_ignore_ascii_case(raw))
                        .cloned()
                });
                let part = found.unwrap_or_else(|| raw.to_ascii_lowercase());
                here = here.and_then(|t| t.get(&part)).and_then(|v| v.as_table());
                parts.push(part);
            }
            let mut table = toml::Table::new();
            set_path(&mut table, &parts, parse_value(&value));
            out.push(Layer {
                origin: format!("env {name}"),
                kind: LayerKind::Var,
                table,
            });
        }
        out
    }
}

/// A value as typed by a person: a TOML literal (`40`, `true`, `"x"`, `[1, 2]`), else the text
/// itself as a string (`round_robin`).
pub fn parse_value(text: &str) -> toml::Value {
    let text = text.trim();
    toml::from_str::<toml::Table>(&format!("v = {text}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(text.to_string()))
}

/// `balancer.user-service.strategy` → its parts.
pub fn split_key(key: &str) -> Vec<String> {
    key.split('.').map(str::to_string).collect()
}

/// `balancer.user-service.strategy` ↔ `lgo/balancer/user-service/strategy`.
pub fn kv_key(key: &str) -> String {
    format!("{KV_PREFIX}{}", key.replace('.', "/"))
}

pub fn key_of_kv(kv_key: &str) -> Option<String> {
    let rest = kv_key.strip_prefix(KV_PREFIX)?;
    (!rest.is_empty() && !rest.ends_with('/')).then(|| rest.replace('/', "."))
}

pub fn set_path(table: &mut toml::Table, parts: &[String], value: toml::Value) {
    let Some((last, parents)) = parts.split_last() else {
        return;
    };
    let mut here = table;
    for p in parents {
        let entry = here
            .entry(p.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        let Some(t) = entry.as_table_mut() else {
            return;
        };
        here = t;
    }
    here.insert(last.clone(), value);
}

pub fn get_path<'a>(table: &'a toml::Table, parts: &[String]) -> Option<&'a toml::Value> {
    let (last, parents) = parts.split_last()?;
    let mut here = table;
    for p in parents {
        here = here.get(p)?.as_table()?;
    }
    here.get(last)
}

/// Merges `over` into `base`, recording `origin` for every leaf it sets (a table's leaves are
/// its scalar and array values; arrays, such as `routes`, are one leaf).
pub fn merge(
    base: &mut toml::Table,
    over: &toml::Table,
    origin: &str,
    origins: &mut BTreeMap<String, String>,
    prefix: &str,
) {
    for (k, v) in over {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match (base.get_mut(k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => {
                merge(b, o, origin, origins, &key);
            }
            (_, v) => {
                base.insert(k.clone(), v.clone());
                record_leaves(v, &key, origin, origins);
            }
        }
    }
}

fn record_leaves(v: &toml::Value, key: &str, origin: &str, origins: &mut BTreeMap<String, String>) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t {
                record_leaves(v, &format!("{key}.{k}"), origin, origins);
            }
        }
        _ => {
            origins.insert(key.to_string(), origin.to_string());
        }
    }
}

/// Every leaf of `table` with its value as TOML text, by key.
pub fn leaves(table: &toml::Table) -> BTreeMap<String, String> {
    fn walk(t: &toml::Table, prefix: &str, out: &mut BTreeMap<String, String>) {
        for (k, v) in t {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                toml::Value::Table(t) => walk(t, &key, out),
                v => {
                    out.insert(key, v.to_string());
                }
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(table, "", &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_values_and_bare_words() {
        assert_eq!(parse_value("40"), toml::Value::Integer(40));
        assert_eq!(parse_value(" true "), toml::Value::Boolean(true));
        assert_eq!(parse_value("p2c"), toml::Value::String("p2c".into()));
        assert_eq!(parse_value("\"40\""), toml::Value::String("40".into()));
    }

    #[test]
    fn kv_keys_map_to_config_keys() {
        let k = "breaker.gateway->user-service.window";
        assert_eq!(kv_key(k), "lgo/breaker/gateway->user-service/window");
        assert_eq!(key_of_kv(&kv_key(k)).as_deref(), Some(k));
        assert_eq!(key_of_kv("other/x"), None);
        assert_eq!(key_of_kv("lgo/"), None);
    }

    #[test]
    fn env_variables_find_their_keys_despite_case_and_dashes() {
        let known: toml::Table =
            toml::from_str("[balancer.user-service]\nstrategy = \"x\"\n[traffic]\nrps = 1\n")
                .unwrap();
        let layers = Layer::from_env(
            [
                ("LGO__BALANCER__USER_SERVICE__STRATEGY".into(), "p2c".into()),
                ("LGO__TRAFFIC__RPS".into(), "75".into()),
                ("PATH".into(), "/bin".into()),
            ],
            &known,
        );
        assert_eq!(layers.len(), 2);
        assert_eq!(
            get_path(
                &layers[0].table,
                &split_key("balancer.user-service.strategy")
            ),
            Some(&toml::Value::String("p2c".into()))
        );
        assert_eq!(
            get_path(&layers[1].table, &split_key("traffic.rps")),
            Some(&toml::Value::Integer(75))
        );
        assert_eq!(layers[1].origin, "env LGO__TRAFFIC__RPS");
    }

    #[test]
    fn every_shipped_environment_parses() {
        for (name, _, _) in ENV_FILES {
            Layer::environment(name).unwrap();
        }
        let err = Layer::environment("qa").unwrap_err();
        assert!(
            err.contains("known: development, staging, production"),
            "{err}"
        );
    }
}
