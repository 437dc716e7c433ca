//! The admin HTTP API: push, groups, presence, kick, health, metrics.
//!
//! Every `/v1` endpoint needs `Authorization: Bearer <admin key>` (unless
//! the gateway runs in development mode without a key). Errors are JSON:
//! `{"error": "what went wrong"}` with 400, 401 or 404.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router as HttpRouter};
use jim_router::{
    Audience, KeyRefusal, Router, RouterError, SessionInfo, UserId, check_bearer, push_messages,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::state::Shared;

pub(crate) fn router<R: Router + Clone>(shared: Arc<Shared<R>>) -> HttpRouter {
    HttpRouter::new()
        .route("/v1/push", post(push::<R>))
        .route(
            "/v1/groups/{group}/members",
            get(members::<R>)
                .post(add_members::<R>)
                .delete(remove_members::<R>),
        )
        .route("/v1/groups/{group}/reads", get(group_reads::<R>))
        .route("/v1/users/{user}/sessions", get(presence::<R>))
        .route("/v1/users/{user}/kick", post(kick::<R>))
        .route("/v1/users/{user}/inbox", get(inbox::<R>))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz::<R>))
        .route("/metrics", get(metrics::<R>))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such endpoint") })
        .layer(middleware::from_fn_with_state(
            shared.config.session.handshake_timeout(),
            within,
        ))
        .with_state(shared)
}

/// A request (its body included) must arrive within the handshake timeout:
/// a client that trickles its body in does not hold a connection for long.
async fn within(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request did not arrive within {} ms (session.handshake_timeout_ms)",
                limit.as_millis()
            ),
        )
        .into_response(),
    }
}

/// A JSON error response.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
}

impl From<RouterError> for ApiError {
    fn from(error: RouterError) -> ApiError {
        // The router's table ([`jim_router::Refusal`]) says which.
        let status =
            StatusCode::from_u16(error.refusal().http_status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        ApiError::new(status, error.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(json!({ "error": self.message }))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Proof that the request carried the admin key.
struct Authorized;

impl<R: Send + Sync> FromRequestParts<Arc<Shared<R>>> for Authorized {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, shared: &Arc<Shared<R>>) -> Result<Self, ApiError> {
        // No key: only possible in development mode (validated at start-up).
        let given = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        match check_bearer(given, shared.config.admin.key.as_deref()) {
            Ok(()) => Ok(Authorized),
            Err(KeyRefusal::Wrong) => Err(ApiError::new(StatusCode::UNAUTHORIZED, "wrong admin key")),
            Err(KeyRefusal::Missing) => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing admin key: send Authorization: Bearer <key>",
            )),
        }
    }
}

/// A JSON body, whatever the `Content-Type` says (curl's `-d` sends a form
/// type); a body that is not the expected JSON is a JSON 400 saying why.
struct Body<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = bytes::Bytes::from_request(request, state)
            .await
            .map_err(|rejection| ApiError::new(rejection.status(), rejection.body_text()))?;
        serde_json::from_slice(&bytes)
            .map(Body)
            .map_err(|e| ApiError::bad_request(format!("the body is not the expected JSON: {e}")))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PushRequest {
    /// Push to these users, each with their own `receiver_id`.
    #[serde(default)]
    users: Option<Vec<String>>,
    /// Push to every member of this group (`receiver_id` is the group).
    #[serde(default)]
    group: Option<String>,
    /// Push to every session (`receiver_id` is `*`).
    #[serde(default)]
    everyone: bool,
    /// The business message: `{"type":..,"data":{..}}`.
    message: Box<serde_json::value::RawValue>,
    /// The `sender_id` stamped into the message.
    #[serde(default = "default_sender")]
    sender_id: String,
    /// Answer with every message pushed (its receiver, id and sessions),
    /// not only the counts: a push to 100,000 users would list them all.
    #[serde(default)]
    list: bool,
}

fn default_sender() -> String {
    "system".to_owned()
}

#[derive(Debug, Serialize)]
struct Pushed {
    receiver_id: String,
    message_id: String,
    sessions: Option<usize>,
}

async fn push<R: Router + Clone>(
    _: Authorized,
    State(shared): State<Arc<Shared<R>>>,
    Body(request): Body<PushRequest>,
) -> Result<Json<Value>, ApiError> {
    // At shutdown, sessions say goodbye only after what is being pushed.
    let _routing = shared.routing.token();
    let audience = Audience::from_parts(request.users, request.group, request.everyone)?;
    let messages = push_messages(
        &audience,
        request.message.get().as_bytes(),
        &request.sender_id,
        &shared.ids,
        shared.config.limits.max_body,
    )?;
    let count = messages.len();
    let mut pushed = Vec::with_capacity(if request.list { count } else { 0 });
    let mut sessions = 0;
    for (receiver, outgoing) in messages {
        let (message_id, kind) = (outgoing.message_id, outgoing.kind);
        let receipt = shared.router.route(outgoing).await?;
        shared.metrics.routed(jim_protocol::Command::S2C, kind);
        sessions += receipt.sessions.unwrap_or(0);
        if request.list {
            pushed.push(Pushed {
                receiver_id: receiver,
                message_id: message_id.to_string(),
                sessions: receipt.sessions,
            });
        }
    }
    let mut reply = json!({ "messages": count, "sessions": sessions });
    if request.list {
        reply["pushed"] = json!(pushed);
    }
    Ok(Json(reply))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersBody {
    users: Vec<String>,
}

impl UsersBody {
    fn ids(self) -> Result<Vec<UserId>, ApiError> {
        if self.users.is_empty() || self.users.iter().any(String::is_empty) {
            return Err(ApiError::bad_request(
                "`users` must list at least one non-empty user id",
            ));
        }
        Ok(self.users.into_iter().map(Into::into).collect())
    }
}

fn members_json(group: &str, members: &[UserId]) -> Json<Value> {
    let members: Vec<&str> = members.iter().map(|m| &**m).collect();
    Json(json!({ "group": group, "members": members }))
}

async fn members<R: Router + Clone>(
    _: Authorized,
    State(shared): State<Arc<Shared<R>>>,
    Path(group): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(members_json(&group, &shared.router.members(&group).await?))
}

async fn add_members<R: Router + Clone>(
    _: Authorized,
    State(shared): State<Arc<Shared<R>>>,
    Path(group): Path<String>,
    Body(body): Body<UsersBody>,
) -> Result<Json<Value>, ApiError> {
    shared.router.add_members(&group, &body.ids()?).await?;
    Ok(members_json(&group, &shared.router.members(&group).await?))
}

async fn remove_members<R: Router + Clone>(
    _: Authorized,
    State(shared): State<Arc<Shared<R>>>,
    Path(group): Path<String>,
    Body(body): Body<UsersBody>,
) -> Result<Json<Value>, ApiError> {
    shared.router.remove_members(&group, &body.ids()?).await?;
    let remaining = match shared.router.members(&group).await {
        Ok(members) => members,
        Err(RouterError::UnknownGroup { .. }) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    Ok(members_json(&group, &remaining))
}

/// Each member's read and delivered marks in the group (the contract's
/// section 8): `{member:{"read":id|null,"delivered":id|null}}`, every
/// member listed.
async fn group_reads<R: Router + Clone>(
    _: Authorized,
    State(shared): State<Arc<Shared<R>>>,
    Path(group): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let members = shared.router.members(&group).await?;
    let conversation = jim_model::Conversation::Group(group.clone());
    let mut reads = serde_json::Map::new();
    for member in members {
        let mut marks = json!({"read": null, "delivered": null});
        for (key, id) in shared.router.marks(&member).await? {
            if let Some((status, of)) = jim_model::Mark::from_key(&key)
                && of == conversation
            {
                marks[status.as_str()] = json!(id.to_string());
            }
        }
        reads.insert(member.to_string(), marks);
    }
    Ok(Json(Value::Object(reads)))
}

fn session_json(info: &SessionInfo) -> Value {
    json!({
        "session_id": info.id.to_string(),
        "device": info.device.as_deref(),
        "transport": info.transport.as_str(),
        "node": info.node,
        "since_ms": info.since_ms,
    })
}

async fn presence<R: Router + Clone>(
    _: Authorized,
    State(shared): State<Arc<Shared<R>>>,
    Path(user): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let sessions = shared.router.presence(&user).await?;
    let sessions: Vec<Value> = sessions.iter().map(session_json).collect();
    Ok(Json(json!({ "user": user, "sessions": sessions })))
}

/// Where a user's inbox stands: epoch, oldest and head offsets, entries
/// held (404 when the gateway keeps no inbox).
async fn inbox<R: Router + Clone>(
    _: Authorized,
    State(shared): State<Arc<Shared<R>>>,
    Path(user): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let Some(state) = shared.router.inbox_state(&user).await? else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "this gateway keeps no inbox (inbox.store = \"off\")",
        ));
    };
    Ok(Json(json!({
        "user": user,
        "epoch": &*state.epoch,
        "oldest": state.oldest,
        "head": state.head,
        "entries": state.held,
    })))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct KickBody {
    #[serde(default)]
    reason: Option<String>,
}

async fn kick<R: Router + Clone>(
    _: Authorized,
    State(shared): State<Arc<Shared<R>>>,
    Path(user): Path<String>,
    body: bytes::Bytes,
) -> Result<Json<Value>, ApiError> {
    // The body is optional: no body, no reason.
    let body: KickBody = if body.iter().all(u8::is_ascii_whitespace) {
        KickBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("bad kick body: {e}")))?
    };
    let reason = body.reason.unwrap_or_default();
    let kicked = shared.router.kick(&user, &reason).await?;
    Ok(Json(json!({ "user": user, "kicked": kicked })))
}

async fn readyz<R: Router + Clone>(State(shared): State<Arc<Shared<R>>>) -> Response {
    if shared.shutdown.is_cancelled() {
        return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
    if !shared.router.is_ready() {
        return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "routing backend not ready").into_response();
    }
    Json(json!({ "ready": true })).into_response()
}

async fn metrics<R: Router + Clone>(State(shared): State<Arc<Shared<R>>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        shared.metrics.render(),
    )
        .into_response()
}
