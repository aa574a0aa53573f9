//! The registry shared through a Consul agent (`--registry consul://HOST:PORT`).
//!
//! This process's instances are registered with the agent (`/v1/agent/service/register`), each
//! with a TTL check this process passes with the instance's health as its own checks see it, and
//! refreshes well within the TTL: a process that dies stops passing, its instances turn critical
//! and the agent removes them (`DeregisterCriticalServiceAfter`). The others' instances are read
//! with blocking queries (`/v1/catalog/services`, then `/v1/health/service/NAME` per service)
//! and taken in like the etcd backend's ([`super::shared`]); services that registered with the
//! agent themselves come in too. Config keys live under `lgo/` in Consul's KV store, as in the
//! embedded one, followed by a blocking recursive read; values are base64 on the wire and kept
//! as bytes.
//!
//! The client is a small one on reqwest: rs-consul registers through the catalog API (which a
//! real agent's anti-entropy undoes), cannot pass TTL checks and reads KV values as text.

use super::mirror::{self, Event, Events, Writer};
use super::model::{CheckView, Health, InstanceView};
use super::shared::{LOCAL_CONFIG, OWNER_META, Outgoing, SharedInstance};
use base64::Engine;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use super::mirror::Link;

/// Where config keys live in Consul's KV store: where the embedded registry's KV API keeps
/// them too (`lgo/traffic/rps`), so an lgo-dash can itself be the agent the others share.
pub const CONFIG_PREFIX: &str = "lgo/";

/// How long a blocking query waits for a change before it answers anyway.
const WAIT: &str = "30s";

#[derive(Debug, Clone)]
pub struct ConsulOptions {
    /// `http://host:port` of a Consul agent.
    pub address: String,
    /// The TTL of each instance's check: how long after this process stops passing it the
    /// instance turns critical.
    pub check_ttl: Duration,
    /// How long a critical instance stays before the agent removes it.
    pub deregister_after: Duration,
}

impl ConsulOptions {
    pub fn new(address: impl Into<String>) -> Self {
        ConsulOptions {
            address: address.into(),
            check_ttl: Duration::from_secs(10),
            deregister_after: Duration::from_secs(60),
        }
    }
}

/// A Consul agent as a [`mirror::Store`].
pub struct ConsulStore {
    options: ConsulOptions,
}

impl From<ConsulOptions> for ConsulStore {
    fn from(options: ConsulOptions) -> Self {
        ConsulStore { options }
    }
}

/// A registry mirrored through a Consul agent.
pub type ConsulMirror = mirror::Mirror<ConsulStore>;

/// The agent's HTTP API, the parts the mirror uses.
#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    base: String,
}

type Result<T> = std::result::Result<T, String>;

fn failed(what: &str, e: impl std::fmt::Display) -> String {
    format!("{what}: {e}")
}

impl Client {
    fn new(address: &str) -> Client {
        Client {
            http: reqwest::Client::builder()
                .no_proxy()
                .connect_timeout(Duration::from_secs(2))
                .build()
                .unwrap_or_default(),
            base: address.trim_end_matches('/').to_string(),
        }
    }

    async fn put(&self, path: &str, body: Option<Vec<u8>>) -> Result<()> {
        let mut req = self
            .http
            .put(format!("{}{path}", self.base))
            .timeout(Duration::from_secs(5));
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = req.send().await.map_err(|e| failed(path, e))?;
        if !resp.status().is_success() {
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            return Err(format!("{path}: {status} {}", text.trim()));
        }
        Ok(())
    }

    async fn delete(&self, path: &str) -> Result<()> {
        let resp = self
            .http
            .delete(format!("{}{path}", self.base))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| failed(path, e))?;
        if !resp.status().is_success() {
            return Err(format!("{path}: {}", resp.status()));
        }
        Ok(())
    }

    /// A blocking read: the answer once the index passes `index` (or the wait ends), and the
    /// index to wait from next. `None`: not found (a KV prefix with no keys).
    async fn blocking(&self, path: &str, index: u64) -> Result<(u64, Option<Value>)> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let resp = self
            .http
            .get(format!("{}{path}{sep}index={index}&wait={WAIT}", self.base))
            .timeout(Duration::from_secs(40))
            .send()
            .await
            .map_err(|e| failed(path, e))?;
        let next = resp
            .headers()
            .get("x-consul-index")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        // An index that goes back (the agent restarted): start over, as Consul's docs say.
        let next = if next < index { 0 } else { next };
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok((next, None));
        }
        if !resp.status().is_success() {
            return Err(format!("{path}: {}", resp.status()));
        }
        let body = resp.json::<Value>().await.map_err(|e| failed(path, e))?;
        Ok((next, Some(body)))
    }

    async fn register(&self, view: &InstanceView, owner: &str, o: &ConsulOptions) -> Result<()> {
        let mut meta = view.meta.clone();
        meta.insert(OWNER_META.into(), owner.into());
        let check = view.checks.first();
        let body = json!({
            "ID": view.id, "Name": view.service, "Address": view.address, "Port": view.port,
            "Tags": view.tags, "Meta": meta,
            "Weights": {"Passing": view.weight, "Warning": view.weight_warning},
            "EnableTagOverride": view.enable_tag_override,
            "Check": {
                "CheckID": check_id(&view.id),
                "Name": check.map_or("health", |c| c.name.as_str()),
                "Notes": check.map_or(String::new(), |c| format!("{} ({})", c.definition, c.kind)),
                "TTL": format!("{}s", o.check_ttl.as_secs().max(1)),
                "DeregisterCriticalServiceAfter": format!("{}s", o.deregister_after.as_secs().max(1)),
            },
        });
        self.put(
            "/v1/agent/service/register",
            Some(serde_json::to_vec(&body).unwrap_or_default()),
        )
        .await
    }

    /// Passes (or warns, or fails) an instance's TTL check with its health and output.
    async fn report(&self, view: &InstanceView) -> Result<()> {
        let action = match view.health {
            Health::Passing => "pass",
            Health::Warning => "warn",
            Health::Critical => "fail",
        };
        let output = view
            .checks
            .iter()
            .max_by_key(|c| c.status)
            .map_or(String::new(), |c| c.output.clone());
        let path = format!(
            "/v1/agent/check/{action}/{}?note={}",
            check_id(&view.id),
            urlencode(&output)
        );
        self.put(&path, None).await
    }

    async fn deregister(&self, id: &str) -> Result<()> {
        self.put(&format!("/v1/agent/service/deregister/{id}"), None)
            .await
    }
}

fn check_id(instance: &str) -> String {
    format!("lgo:{instance}")
}

fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One element of `/v1/health/service/NAME` as an instance of another process.
fn shared_of(entry: &Value) -> Option<SharedInstance> {
    let s = &entry["Service"];
    let id = s["ID"].as_str()?.to_string();
    let service = s["Service"].as_str()?.to_string();
    let meta: std::collections::BTreeMap<String, String> = s["Meta"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    let owner = meta
        .get(OWNER_META)
        .cloned()
        .unwrap_or_else(|| "consul".into());
    let mut meta = meta;
    meta.remove(OWNER_META);
    let address = match s["Address"].as_str() {
        Some(a) if !a.is_empty() => a.to_string(),
        _ => entry["Node"]["Address"]
            .as_str()
            .unwrap_or("127.0.0.1")
            .to_string(),
    };
    let checks: Vec<CheckView> = entry["Checks"]
        .as_array()
        .into_iter()
        .flatten()
        // The node's own checks (serfHealth) are not the instance's.
        .filter(|c| c["ServiceID"].as_str() == Some(id.as_str()))
        .map(|c| CheckView {
            id: c["CheckID"].as_str().unwrap_or_default().to_string(),
            name: c["Name"].as_str().unwrap_or_default().to_string(),
            kind: c["Type"].as_str().unwrap_or("ttl").to_string(),
            status: c["Status"]
                .as_str()
                .and_then(Health::parse)
                .unwrap_or(Health::Critical),
            output: c["Output"].as_str().unwrap_or_default().to_string(),
            notes: c["Notes"].as_str().unwrap_or_default().to_string(),
            definition: c["Notes"].as_str().unwrap_or_default().to_string(),
            spec: Vec::new(),
            create_index: 0,
            modify_index: 0,
        })
        .collect();
    let health = checks
        .iter()
        .map(|c| c.status)
        .max()
        .unwrap_or(Health::Passing);
    let weight = |k: &str, d: u32| {
        s["Weights"][k]
            .as_u64()
            .map_or(d, |w| u32::try_from(w).unwrap_or(d))
    };
    Some(SharedInstance {
        owner,
        instance: InstanceView {
            version: meta.get("version").cloned().unwrap_or_default(),
            protocol: meta
                .get("protocol")
                .cloned()
                .unwrap_or_else(|| "http".into()),
            health_path: meta.get("health_path").cloned().unwrap_or_default(),
            id,
            service,
            address,
            port: s["Port"]
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .unwrap_or(0),
            tags: s["Tags"]
                .as_array()
                .map(|t| {
                    t.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            weight: meta
                .get("weight")
                .and_then(|w| w.parse().ok())
                .unwrap_or_else(|| weight("Passing", 1)),
            weight_warning: weight("Warning", 1),
            enable_tag_override: s["EnableTagOverride"].as_bool().unwrap_or(false),
            meta,
            health,
            checks,
            create_index: 0,
            modify_index: 0,
            via: String::new(),
        },
    })
}

/// What the watchers tell the session.
enum Seen {
    Services(Vec<String>),
    Service(String, Vec<SharedInstance>),
    Config(HashMap<String, Vec<u8>>),
    Failed(String),
}

/// Follows `path` with blocking queries, sending what each answer means.
fn watcher(
    client: Client,
    path: String,
    tx: mpsc::Sender<Seen>,
    read: impl Fn(Option<Value>) -> Seen + Send + 'static,
) -> JoinHandle<()> {
    crate::telemetry::spawn(async move {
        let mut index = 0;
        loop {
            match client.blocking(&path, index).await {
                Ok((next, body)) => {
                    let changed = next != index || index == 0;
                    index = next.max(1);
                    if changed && tx.send(read(body)).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.send(Seen::Failed(e)).await;
                    return;
                }
            }
        }
    })
}

/// The config keys of a recursive KV read: local key → value (base64 on the wire).
fn config_of(body: Option<Value>) -> HashMap<String, Vec<u8>> {
    body.and_then(|b| b.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|e| {
            let path = e["Key"].as_str()?.strip_prefix(CONFIG_PREFIX)?;
            if path.is_empty() {
                return None;
            }
            let value = match e["Value"].as_str() {
                Some(b64) => base64::engine::general_purpose::STANDARD.decode(b64).ok()?,
                None => Vec::new(),
            };
            Some((format!("{LOCAL_CONFIG}{path}"), value))
        })
        .collect()
}

/// An instance without its health: what a registration carries.
fn shape(v: &InstanceView) -> InstanceView {
    let mut s = v.clone();
    s.health = Health::Passing;
    for c in &mut s.checks {
        c.status = Health::Passing;
        c.output.clear();
    }
    s
}

impl mirror::Store for ConsulStore {
    type Writer = ConsulWriter;
    type Events = ConsulEvents;

    fn name(&self) -> String {
        format!("consul {}", self.options.address)
    }

    fn refresh_every(&self) -> Duration {
        (self.options.check_ttl / 3).max(Duration::from_millis(200))
    }

    async fn open(&self, owner: &str) -> Result<(ConsulWriter, ConsulEvents)> {
        let client = Client::new(&self.options.address);
        // The agent answers: this session can start (the watchers say when it stops).
        client
            .blocking("/v1/catalog/services", 0)
            .await
            .map(|_| ())?;
        let (tx, rx) = mpsc::channel(64);
        let mut watchers = HashMap::new();
        watchers.insert(
            Watched::Catalog,
            watcher(
                client.clone(),
                "/v1/catalog/services".into(),
                tx.clone(),
                |body| {
                    Seen::Services(
                        body.and_then(|b| b.as_object().map(|m| m.keys().cloned().collect()))
                            .unwrap_or_default(),
                    )
                },
            ),
        );
        watchers.insert(
            Watched::Config,
            watcher(
                client.clone(),
                format!("/v1/kv/{CONFIG_PREFIX}?recurse"),
                tx.clone(),
                |body| Seen::Config(config_of(body)),
            ),
        );
        Ok((
            ConsulWriter {
                client: client.clone(),
                owner: owner.to_string(),
                options: self.options.clone(),
                registered: HashMap::new(),
            },
            ConsulEvents {
                client,
                tx,
                rx,
                watchers,
            },
        ))
    }

    async fn withdraw(&self, own: Vec<String>) {
        let client = Client::new(&self.options.address);
        for id in own {
            let _ = client.deregister(&id).await;
        }
    }
}

pub struct ConsulWriter {
    client: Client,
    owner: String,
    options: ConsulOptions,
    /// Own instances as registered in this session (their shape: a change of health only is a
    /// check report, not a registration, which would reset the check).
    registered: HashMap<String, InstanceView>,
}

impl Writer for ConsulWriter {
    async fn publish(&mut self, _owner: &str, out: Outgoing) -> Result<()> {
        for view in &out.puts {
            let shape = shape(view);
            if self.registered.get(&view.id) != Some(&shape) {
                self.client
                    .register(view, &self.owner, &self.options)
                    .await?;
                self.registered.insert(view.id.clone(), shape);
            }
            self.client.report(view).await?;
        }
        for id in &out.deletes {
            self.client.deregister(id).await?;
            self.registered.remove(id);
        }
        Ok(())
    }

    async fn refresh(&mut self, own: Vec<InstanceView>) -> Result<()> {
        // Each own instance's TTL, passed again with its health.
        for v in &own {
            self.client.report(v).await?;
        }
        Ok(())
    }

    async fn put_config(&mut self, key: &str, value: Vec<u8>) -> Result<()> {
        let path = mirror::config_path(key);
        self.client
            .put(&format!("/v1/kv/{CONFIG_PREFIX}{path}"), Some(value))
            .await
    }

    async fn delete_config(&mut self, key: &str) -> Result<()> {
        let path = mirror::config_path(key);
        self.client
            .delete(&format!("/v1/kv/{CONFIG_PREFIX}{path}"))
            .await
    }
}

/// What a session follows with blocking queries.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Watched {
    Catalog,
    Config,
    Service(String),
}

pub struct ConsulEvents {
    client: Client,
    tx: mpsc::Sender<Seen>,
    rx: mpsc::Receiver<Seen>,
    watchers: HashMap<Watched, JoinHandle<()>>,
}

impl Drop for ConsulEvents {
    fn drop(&mut self) {
        for t in self.watchers.values() {
            t.abort();
        }
    }
}

impl Events for ConsulEvents {
    async fn next(&mut self) -> Result<Event> {
        let Some(seen) = self.rx.recv().await else {
            return Err("the watchers stopped".into());
        };
        Ok(match seen {
            Seen::Failed(e) => return Err(e),
            Seen::Config(there) => Event::Config(there),
            Seen::Service(name, list) => Event::Service(name, list),
            Seen::Services(names) => {
                let names: HashSet<String> = names.into_iter().filter(|n| n != "consul").collect();
                // A watcher per service, for as long as the catalog has it.
                self.watchers.retain(|w, t| {
                    let keep = match w {
                        Watched::Service(n) => names.contains(n),
                        _ => true,
                    };
                    if !keep {
                        t.abort();
                    }
                    keep
                });
                for name in &names {
                    let key = Watched::Service(name.clone());
                    if self.watchers.contains_key(&key) {
                        continue;
                    }
                    let n = name.clone();
                    let w = watcher(
                        self.client.clone(),
                        format!("/v1/health/service/{name}"),
                        self.tx.clone(),
                        move |body| {
                            Seen::Service(
                                n.clone(),
                                body.and_then(|b| b.as_array().cloned())
                                    .unwrap_or_default()
                                    .iter()
                                    .filter_map(shared_of)
                                    .collect(),
                            )
                        },
                    );
                    self.watchers.insert(key, w);
                }
                Event::Services(names.into_iter().collect())
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_values_come_back_byte_for_byte() {
        let raw: &[u8] = &[0x22, 0xc3, 0xa9, 0xff, 0x00, 0x22];
        let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
        let body = json!([
            {"Key": "lgo/", "Value": null},
            {"Key": "lgo/traffic/rps", "Value": base64::engine::general_purpose::STANDARD.encode("42")},
            {"Key": "lgo/odd/bytes", "Value": b64},
        ]);
        let got = config_of(Some(body));
        assert_eq!(got.len(), 2, "the folder key is no config key: {got:?}");
        assert_eq!(got["lgo/traffic/rps"], b"42");
        assert_eq!(got["lgo/odd/bytes"], raw);
    }

    #[test]
    fn a_health_entry_reads_as_an_instance_with_its_own_checks_only() {
        let entry = json!({
            "Node": {"Node": "n1", "Address": "10.0.0.9"},
            "Service": {"ID": "pay-1", "Service": "payments", "Address": "", "Port": 7001,
                        "Tags": ["v2"], "Meta": {"version": "2.1.0", "lgo_owner": "lgo-dash-1a2b"},
                        "Weights": {"Passing": 3, "Warning": 1}},
            "Checks": [
                {"CheckID": "serfHealth", "ServiceID": "", "Status": "passing", "Type": ""},
                {"CheckID": "lgo:pay-1", "ServiceID": "pay-1", "Name": "alive", "Status": "warning",
                 "Output": "slow", "Type": "ttl", "Notes": "GET /health every 1s (http)"}
            ]
        });
        let s = shared_of(&entry).unwrap();
        assert_eq!(s.owner, "lgo-dash-1a2b");
        let v = s.instance;
        assert_eq!(
            (v.id.as_str(), v.service.as_str(), v.port),
            ("pay-1", "payments", 7001)
        );
        assert_eq!(
            v.address, "10.0.0.9",
            "the node's address when the service has none"
        );
        assert_eq!(v.weight, 3);
        assert_eq!(v.version, "2.1.0");
        assert!(!v.meta.contains_key(OWNER_META));
        assert_eq!(v.checks.len(), 1, "serfHealth is the node's");
        assert_eq!(v.health, Health::Warning);
        assert_eq!(v.checks[0].output, "slow");
    }
}
