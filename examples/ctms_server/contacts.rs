//! The contact API itself: its state, authentication, and handlers. Nothing
//! here knows about metrics; `main.rs` wires these routes into the layer.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tower_prometheus::ClientId;
use uuid::Uuid;

/// Credentials of the API clients, keyed by client id.
pub(crate) type Clients = HashMap<String, String>;

#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) clients: Arc<Clients>,
    pub(crate) contacts: Arc<RwLock<HashMap<Uuid, Contact>>>,
}

#[derive(Clone)]
pub(crate) struct Contact {
    email_id: Uuid,
    email: EmailFields,
}

impl Contact {
    fn to_json(&self) -> Value {
        let email_id = self.email_id.to_string();
        let mut email = json!(self.email);
        email["email_id"] = json!(email_id);
        json!({ "email_id": email_id, "email": email })
    }
}

/// Request body of POST, PUT and PATCH; unknown fields are ignored.
#[derive(Deserialize)]
pub(crate) struct ContactBody {
    email: Option<EmailFields>,
}

#[derive(Clone, Default, Deserialize, Serialize)]
pub(crate) struct EmailFields {
    primary_email: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct SearchParams {
    primary_email: Option<String>,
    email_id: Option<String>,
}

/// An error answered as `{"detail": "..."}`.
pub(crate) type ApiError = (StatusCode, Json<Value>);

pub(crate) fn api_error(status: StatusCode, detail: impl std::fmt::Display) -> ApiError {
    (status, Json(json!({ "detail": detail.to_string() })))
}

pub(crate) fn unprocessable(detail: impl std::fmt::Display) -> ApiError {
    api_error(StatusCode::UNPROCESSABLE_ENTITY, detail)
}

pub(crate) fn not_found() -> ApiError {
    api_error(StatusCode::NOT_FOUND, "Unknown contact")
}

/// Returns the configured client id whose credentials match the `Authorization` header.
pub(crate) fn authenticate(clients: &Clients, request: &Request) -> Option<String> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let (known_id, expected) = clients.get_key_value(id)?;
    constant_time_eq(secret.as_bytes(), expected.as_bytes()).then(|| known_id.clone())
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(crate) async fn require_client(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(client_id) = authenticate(&state.clients, &request) else {
        let error = api_error(StatusCode::UNAUTHORIZED, "Invalid or missing credentials");
        let challenge = [(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic"))];
        return (challenge, error).into_response();
    };
    let mut response = next.run(request).await;
    response.extensions_mut().insert(ClientId::new(client_id));
    response
}

pub(crate) async fn version() -> Json<Value> {
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "source": env!("CARGO_PKG_REPOSITORY"),
        "commit": option_env!("GIT_COMMIT").unwrap_or("unknown"),
    }))
}

pub(crate) async fn heartbeat(State(state): State<AppState>) -> Json<Value> {
    let contacts = state.read().len();
    Json(json!({ "status": "ok", "storage": "memory", "contacts": contacts }))
}

pub(crate) async fn crash() -> StatusCode {
    panic!("crash requested through /__crash__");
}

impl AppState {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Uuid, Contact>> {
        self.contacts.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<Uuid, Contact>> {
        self.contacts
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

pub(crate) fn parse_email_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| unprocessable("email_id is not a valid UUID"))
}

pub(crate) fn path_email_id(path: Result<Path<String>, PathRejection>) -> Result<Uuid, ApiError> {
    path.map_err(|_| unprocessable("email_id is not a valid UUID"))
        .and_then(|Path(raw)| parse_email_id(&raw))
}

/// Decodes a JSON object body: a bad body is answered 422 (413 if too large).
pub(crate) fn parse_body(body: Result<Bytes, BytesRejection>) -> Result<ContactBody, ApiError> {
    let bytes = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => api_error(rejection.status(), "Body too large"),
        _ => unprocessable("Unreadable body"),
    })?;
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|err| unprocessable(format!("Invalid JSON: {err}")))?;
    if !value.is_object() {
        return Err(unprocessable("Expected a JSON object"));
    }
    serde_json::from_value(value).map_err(unprocessable)
}

/// The `email` of a POST or PUT body, which needs a non-empty `primary_email`.
pub(crate) fn full_email(body: Result<Bytes, BytesRejection>) -> Result<EmailFields, ApiError> {
    let email = parse_body(body)?.email.unwrap_or_default();
    match &email.primary_email {
        Some(primary) if !primary.trim().is_empty() => Ok(email),
        _ => Err(unprocessable("Missing field: email.primary_email")),
    }
}

pub(crate) async fn create_contact(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let contact = Contact {
        email_id: Uuid::new_v4(),
        email: full_email(body)?,
    };
    let response = contact.to_json();
    state.write().insert(contact.email_id, contact);
    Ok((StatusCode::CREATED, Json(response)))
}

pub(crate) async fn search_contacts(
    State(state): State<AppState>,
    query: Result<Query<SearchParams>, QueryRejection>,
) -> Result<Json<Vec<Value>>, ApiError> {
    let Query(params) = query.map_err(|err| api_error(StatusCode::BAD_REQUEST, err.body_text()))?;
    let primary_email = params.primary_email.filter(|email| !email.is_empty());
    let email_id = params.email_id.filter(|id| !id.is_empty());
    if primary_email.is_none() && email_id.is_none() {
        let detail = "No identifiers provided: use primary_email or email_id";
        return Err(api_error(StatusCode::BAD_REQUEST, detail));
    }
    let email_id = email_id.as_deref().map(parse_email_id).transpose()?;
    let matches = |contact: &&Contact| {
        email_id.map_or(true, |id| id == contact.email_id)
            && primary_email.as_deref().map_or(true, |wanted| {
                let primary = contact.email.primary_email.as_deref().unwrap_or_default();
                wanted.eq_ignore_ascii_case(primary)
            })
    };
    let found = state
        .read()
        .values()
        .filter(matches)
        .map(Contact::to_json)
        .collect();
    Ok(Json(found))
}

pub(crate) async fn get_contact(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let email_id = path_email_id(path)?;
    let contacts = state.read();
    let contact = contacts.get(&email_id).ok_or_else(not_found)?;
    Ok(Json(contact.to_json()))
}

/// PATCH merges the given fields into the contact.
pub(crate) async fn update_contact(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let email_id = path_email_id(path)?;
    let patch = parse_body(body)?.email.unwrap_or_default();
    if patch
        .primary_email
        .as_deref()
        .is_some_and(|e| e.trim().is_empty())
    {
        return Err(unprocessable("email.primary_email must not be empty"));
    }
    let mut contacts = state.write();
    let contact = contacts.get_mut(&email_id).ok_or_else(not_found)?;
    for (field, value) in [
        (&mut contact.email.primary_email, patch.primary_email),
        (&mut contact.email.first_name, patch.first_name),
        (&mut contact.email.last_name, patch.last_name),
    ] {
        if value.is_some() {
            *field = value;
        }
    }
    Ok(Json(contact.to_json()))
}

/// PUT replaces the contact's fields.
pub(crate) async fn replace_contact(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let email_id = path_email_id(path)?;
    let email = full_email(body)?;
    let mut contacts = state.write();
    let contact = contacts.get_mut(&email_id).ok_or_else(not_found)?;
    contact.email = email;
    Ok(Json(contact.to_json()))
}
