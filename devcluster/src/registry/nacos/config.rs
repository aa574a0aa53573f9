//! Nacos config: get, publish and delete a `dataId` in a group, and the long-polling listener
//! that answers as soon as a watched entry's MD5 differs from the one the client holds.
//!
//! Group `LGO` is the cluster's own live config: reading a data id there renders it (TOML, or
//! properties for a `.properties` data id), and publishing one applies its keys through the
//! config center's checks, all or none, exactly as `ctl config set` would. Any other data id
//! is kept as plain content in the KV store, under `nacos/<namespace>/<group>/<dataId>`, with
//! its type in the entry's flags.

use super::{Answer, Failure, LGO_GROUP, Nacos, PUBLIC, Params};
use crate::config::layers;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use md5::{Digest, Md5};
use std::time::Duration;

/// The KV prefix of configs published through Nacos.
pub const KV_PREFIX: &str = "nacos/";

/// The longest a listener is held (Nacos clients ask for 30 s).
const MAX_HOLD: Duration = Duration::from_secs(120);

/// The config types Nacos knows, by the number kept in the KV entry's flags.
const TYPES: [&str; 7] = ["text", "json", "xml", "yaml", "html", "properties", "toml"];

/// One config entry as a request names it.
#[derive(Debug, Clone, PartialEq)]
struct Key {
    data_id: String,
    group: String,
    namespace: String,
}

impl Key {
    fn of(p: &Params) -> Result<Key, Failure> {
        let data_id = p.require("dataId")?.to_string();
        let group = p.get("group").unwrap_or(super::DEFAULT_GROUP).to_string();
        let namespace = p
            .get("tenant")
            .or_else(|| p.get("namespaceId"))
            .unwrap_or(PUBLIC)
            .to_string();
        Key::new(data_id, group, namespace)
    }

    fn new(data_id: String, group: String, namespace: String) -> Result<Key, Failure> {
        super::valid_name("dataId", &data_id)?;
        super::valid_name("group", &group)?;
        super::valid_name("namespace", &namespace)?;
        if [&data_id, &group, &namespace]
            .iter()
            .any(|s| s.split('.').all(str::is_empty) || s.contains(".."))
        {
            return Err(Failure::new(
                StatusCode::BAD_REQUEST,
                20002,
                "a dataId, group or namespace of dots only, or with \"..\", is not a name",
            ));
        }
        Ok(Key {
            data_id,
            group,
            namespace,
        })
    }

    fn kv_key(&self) -> String {
        format!(
            "{KV_PREFIX}{}/{}/{}",
            self.namespace, self.group, self.data_id
        )
    }

    fn is_live_config(&self) -> bool {
        self.group == LGO_GROUP
    }

    fn properties(&self, kind: Option<&str>) -> bool {
        kind == Some("properties") || self.data_id.ends_with(".properties")
    }
}

/// What a GET answers: the content and its type, `None` when there is none.
fn read(n: &Nacos, key: &Key) -> Option<(String, &'static str)> {
    if key.is_live_config() {
        let table = n.config.table();
        return Some(if key.properties(None) {
            (render_properties(&table), "properties")
        } else {
            (toml::to_string(&table).unwrap_or_default(), "toml")
        });
    }
    let e = n.kv.get(&key.kv_key())?;
    let kind = TYPES
        .get(usize::try_from(e.flags).unwrap_or(0))
        .copied()
        .unwrap_or("text");
    Some((String::from_utf8_lossy(&e.value).into_owned(), kind))
}

fn md5_hex(text: &str) -> String {
    Md5::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The live config as `key=value` lines (strings without their quotes).
fn render_properties(table: &toml::Table) -> String {
    layers::leaves(table)
        .into_iter()
        .map(|(k, v)| {
            let v = match toml::from_str::<toml::Table>(&format!("v = {v}"))
                .ok()
                .and_then(|mut t| t.remove("v"))
            {
                Some(toml::Value::String(s)) => s,
                _ => v,
            };
            format!("{k}={v}\n")
        })
        .collect()
}

/// A published document's keys: `key` → value as typed.
fn keys_of(content: &str, properties: bool) -> Result<Vec<(String, String)>, Failure> {
    let refused = |why: String| Failure::new(StatusCode::BAD_REQUEST, 20002, why);
    if properties {
        let mut out = Vec::new();
        for (n, line) in content.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            let Some((k, v)) = line.split_once(['=', ':']) else {
                return Err(refused(format!(
                    "line {}: expected key=value, not {line:?}",
                    n + 1
                )));
            };
            out.push((k.trim().to_string(), v.trim().to_string()));
        }
        return Ok(out);
    }
    let table: toml::Table =
        toml::from_str(content).map_err(|e| refused(format!("not TOML: {e}")))?;
    Ok(layers::leaves(&table).into_iter().collect())
}

fn get(n: &Nacos, p: &Params) -> Result<Answer, Failure> {
    let key = Key::of(p)?;
    let (content, kind) =
        read(n, &key).ok_or_else(|| Failure::not_found("config data not exist"))?;
    let md5 = md5_hex(&content);
    Ok(Answer::Text(
        content,
        vec![("config-type", kind.into()), ("content-md5", md5)],
    ))
}

fn publish(n: &Nacos, p: &Params) -> Result<Answer, Failure> {
    let key = Key::of(p)?;
    let content =
        p.0.get("content")
            .filter(|c| !c.trim().is_empty())
            .ok_or_else(|| {
                Failure::new(
                    StatusCode::BAD_REQUEST,
                    10000,
                    "Param 'content' is required.",
                )
            })?;
    let kind = p.get("type");
    if key.is_live_config() {
        // Only what differs from the live config: publishing back what was read changes nothing.
        let live = layers::leaves(&n.config.table());
        let changed: Vec<(String, String)> = keys_of(content, key.properties(kind))?
            .into_iter()
            .filter(|(k, v)| {
                live.get(k)
                    .is_none_or(|now| *now != layers::parse_value(v).to_string())
            })
            .collect();
        if !changed.is_empty() {
            n.config
                .set_many(&changed, "nacos")
                .map_err(|e| Failure::new(StatusCode::BAD_REQUEST, 20002, e.to_string()))?;
        }
        return Ok(Answer::Text("true".into(), Vec::new()));
    }
    let flags = kind
        .and_then(|k| TYPES.iter().position(|t| t.eq_ignore_ascii_case(k)))
        .unwrap_or(0) as u64;
    n.kv.put(
        &key.kv_key(),
        content.clone().into_bytes(),
        Some(flags),
        None,
    )
    .map_err(|e| Failure::new(StatusCode::BAD_REQUEST, 20002, e.to_string()))?;
    Ok(Answer::Text("true".into(), Vec::new()))
}

fn delete(n: &Nacos, p: &Params) -> Result<Answer, Failure> {
    let key = Key::of(p)?;
    if key.is_live_config() {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            20002,
            "group LGO is the cluster's live config: it cannot be deleted (publish the keys to change)",
        ));
    }
    n.kv.delete(&key.kv_key(), false, None);
    Ok(Answer::Text("true".into(), Vec::new()))
}

/// `Listening-Configs`: `dataId^2group^2md5[^2tenant]^1`, repeated.
fn listened(text: &str) -> Result<Vec<(Key, String)>, Failure> {
    let mut out = Vec::new();
    for entry in text.split('\u{1}').filter(|e| !e.is_empty()) {
        let f: Vec<&str> = entry.split('\u{2}').collect();
        if f.len() < 3 {
            return Err(Failure::new(
                StatusCode::BAD_REQUEST,
                20002,
                format!("invalid Listening-Configs entry {entry:?}: expected dataId, group, md5"),
            ));
        }
        let namespace = f.get(3).filter(|t| !t.is_empty()).unwrap_or(&PUBLIC);
        let key = Key::new(f[0].into(), f[1].into(), (*namespace).to_string())?;
        out.push((key, f[2].to_string()));
    }
    Ok(out)
}

/// The entries whose content's MD5 is no longer the one the client holds, as the listener
/// answers them (URL-encoded `dataId^2group[^2tenant]^1` lines).
fn changed(n: &Nacos, entries: &[(Key, String)]) -> String {
    let mut out = String::new();
    for (key, md5) in entries {
        let now = read(n, key).map(|(c, _)| md5_hex(&c)).unwrap_or_default();
        if now != *md5 {
            out.push_str(&key.data_id);
            out.push('\u{2}');
            out.push_str(&key.group);
            if key.namespace != PUBLIC {
                out.push('\u{2}');
                out.push_str(&key.namespace);
            }
            out.push('\u{1}');
        }
    }
    if out.is_empty() {
        out
    } else {
        form_encoded(&out)
    }
}

fn form_encoded(text: &str) -> String {
    serde_urlencoded::to_string([("", text)])
        .map(|s| s.trim_start_matches('=').to_string())
        .unwrap_or_default()
}

pub(super) async fn v1_listen(
    State(n): State<Nacos>,
    headers: HeaderMap,
    query: RawQuery,
    body: Bytes,
) -> Response {
    let p = Params::of(&query, &body);
    let entries = match p.require("Listening-Configs").and_then(listened) {
        Ok(e) => e,
        Err(f) => return f.v1(),
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let hold = header("Long-Pulling-Timeout")
        .and_then(|t| t.trim().parse::<u64>().ok())
        .map_or(Duration::from_secs(30), Duration::from_millis)
        .min(MAX_HOLD);
    let no_hangup = header("Long-Pulling-Timeout-No-Hangup") == Some("true");
    let deadline = tokio::time::Instant::now() + hold;
    // Subscribed before the first look: a change between the look and the wait still wakes it.
    let mut kv = n.kv.subscribe();
    let mut versions = n.config.subscribe();
    loop {
        let answer = changed(&n, &entries);
        if !answer.is_empty() || no_hangup {
            return super::v1(Ok(Answer::Text(answer, Vec::new())));
        }
        tokio::select! {
            r = kv.changed() => if r.is_err() { break },
            r = versions.changed() => if r.is_err() { break },
            () = tokio::time::sleep_until(deadline) => break,
        }
    }
    super::v1(Ok(Answer::Text(String::new(), Vec::new())))
}

handlers! {
    v1_get, v2_get => get;
    v1_publish, v2_publish => publish;
    v1_delete, v2_delete => delete;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_configs_are_read_and_answered_url_encoded() {
        let e = listened("a.toml\u{2}G\u{2}abc\u{1}b\u{2}LGO\u{2}\u{2}dev\u{1}").unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(
            (e[0].0.data_id.as_str(), e[0].1.as_str()),
            ("a.toml", "abc")
        );
        assert_eq!(e[1].0.namespace, "dev");
        assert!(listened("only-one-field").is_err());
        assert_eq!(form_encoded("a\u{2}G\u{1}"), "a%02G%01");
    }

    #[test]
    fn properties_and_toml_documents_give_their_keys() {
        assert_eq!(
            keys_of(
                "# c\ntraffic.rps=40\nbalancer.user-service.strategy: p2c\n",
                true
            )
            .unwrap(),
            vec![
                ("traffic.rps".to_string(), "40".to_string()),
                ("balancer.user-service.strategy".into(), "p2c".into())
            ]
        );
        assert!(keys_of("just words", true).is_err());
        assert_eq!(
            keys_of("[traffic]\nrps = 40\n", false).unwrap(),
            vec![("traffic.rps".to_string(), "40".to_string())]
        );
        assert_eq!(md5_hex(""), "d41d8cd98f00b204e9800998ecf8427e");
    }
}
