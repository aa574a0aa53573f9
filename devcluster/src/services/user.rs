//! user-service: CRUD on `/users` over a store shared by all its instances (as if they shared a
//! database), with validation and JSON errors.

use super::{ApiError, finish, parse_id, parse_json};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

pub const SERVICE: &str = "user-service";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: u64,
    pub name: String,
    pub email: String,
    pub age: u32,
}

/// The body of POST and PUT.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserInput {
    pub(crate) name: String,
    pub(crate) email: String,
    #[serde(default)]
    pub(crate) age: u32,
}

impl UserInput {
    fn validate(&self) -> Result<(), ApiError> {
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(ApiError::bad_request(format!(
                "name: expected 1 to 100 characters, got \"{}\"",
                self.name
            )));
        }
        let email_ok = self.email.split_once('@').is_some_and(|(user, host)| {
            !user.is_empty() && host.contains('.') && !host.starts_with('.')
        });
        if !email_ok {
            return Err(ApiError::bad_request(format!(
                "email: expected an address like ada@example.com, got \"{}\"",
                self.email
            )));
        }
        if self.age > 150 {
            return Err(ApiError::bad_request(format!(
                "age: expected 0 to 150, got {}",
                self.age
            )));
        }
        Ok(())
    }
}

#[derive(Debug, Default)]
pub struct UserStore {
    inner: RwLock<(u64, BTreeMap<u64, User>)>,
}

impl UserStore {
    /// A store with a few users, so the cluster has data from the first request.
    pub fn seeded() -> Arc<UserStore> {
        let seed = [
            ("Ada Lovelace", "ada@example.com", 36),
            ("Alan Turing", "alan@example.com", 41),
            ("Grace Hopper", "grace@example.com", 85),
            ("Edsger Dijkstra", "edsger@example.com", 72),
            ("Barbara Liskov", "barbara@example.com", 86),
        ];
        let users = seed
            .iter()
            .enumerate()
            .map(|(i, (name, email, age))| {
                let id = i as u64 + 1;
                (
                    id,
                    User {
                        id,
                        name: (*name).into(),
                        email: (*email).into(),
                        age: *age,
                    },
                )
            })
            .collect::<BTreeMap<_, _>>();
        Arc::new(UserStore {
            inner: RwLock::new((users.len() as u64, users)),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, (u64, BTreeMap<u64, User>)> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, (u64, BTreeMap<u64, User>)> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, id: u64) -> Option<User> {
        self.read().1.get(&id).cloned()
    }

    pub fn list(&self) -> Vec<User> {
        self.read().1.values().cloned().collect()
    }

    /// A new user from a validated input (HTTP's POST and gRPC's CreateUser).
    pub(crate) fn create(&self, input: UserInput) -> Result<User, ApiError> {
        input.validate()?;
        let mut w = self.write();
        w.0 += 1;
        let user = User {
            id: w.0,
            name: input.name.trim().to_string(),
            email: input.email,
            age: input.age,
        };
        w.1.insert(user.id, user.clone());
        Ok(user)
    }
}

/// The router of one user-service instance.
pub fn router(
    store: Arc<UserStore>,
    instance_id: &str,
    faults: Arc<super::faults::Faults>,
    metrics: Arc<crate::telemetry::metrics::ServerMetrics>,
) -> Router {
    let routes = Router::new()
        .route("/users", get(list).post(create))
        .route("/users/{id}", get(read).put(update).delete(remove))
        .with_state(store);
    finish(routes, SERVICE, instance_id, faults, metrics)
}

async fn list(State(store): State<Arc<UserStore>>) -> Response {
    axum::Json(store.list()).into_response()
}

async fn read(
    State(store): State<Arc<UserStore>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    store
        .get(id)
        .map(|u| axum::Json(u).into_response())
        .ok_or_else(|| ApiError::not_found(format!("user {id} not found")))
}

async fn create(State(store): State<Arc<UserStore>>, body: Bytes) -> Result<Response, ApiError> {
    let input: UserInput = parse_json(&body)?;
    let user = store.create(input)?;
    Ok((StatusCode::CREATED, axum::Json(user)).into_response())
}

async fn update(
    State(store): State<Arc<UserStore>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let input: UserInput = parse_json(&body)?;
    input.validate()?;
    let mut w = store.write();
    let Some(user) = w.1.get_mut(&id) else {
        return Err(ApiError::not_found(format!("user {id} not found")));
    };
    user.name = input.name.trim().to_string();
    user.email = input.email;
    user.age = input.age;
    Ok(axum::Json(user.clone()).into_response())
}

async fn remove(
    State(store): State<Arc<UserStore>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    match store.write().1.remove(&id) {
        Some(_) => Ok(StatusCode::NO_CONTENT.into_response()),
        None => Err(ApiError::not_found(format!("user {id} not found"))),
    }
}
