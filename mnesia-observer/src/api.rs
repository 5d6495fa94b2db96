//! The observer's server: its routes, the JSON each answers, and the sampler that feeds
//! the plots.

use std::convert::Infallible;
use std::future::IntoFuture;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, Request, State as With};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::StreamExt;
use mnesia_runtime::{Browse, Database, Error};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::history::History;

/// Live event tails served at once; more get 503 until one closes.
const MAX_TAILS: usize = 32;

/// Records a page may ask for.
const MAX_PAGE: usize = 1000;

/// Table reads (pages of records, table facts) running at once; more wait their turn.
const READERS: usize = 4;

/// What every request handler shares.
pub(crate) struct State {
    db: Database,
    token: Option<String>,
    history: parking_lot::Mutex<History>,
    tails: AtomicUsize,
    readers: tokio::sync::Semaphore,
}

impl State {
    pub(crate) fn new(db: Database, token: Option<String>, keep: usize) -> Self {
        State {
            db,
            token,
            history: parking_lot::Mutex::new(History::new(keep)),
            tails: AtomicUsize::new(0),
            readers: tokio::sync::Semaphore::new(READERS),
        }
    }
}

type Shared = Arc<State>;

/// Serves `listener` and samples every `every`, until `stop` fires (or is dropped).
pub(crate) async fn run(
    state: Shared,
    listener: std::net::TcpListener,
    every: Duration,
    stop: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(target: "mnesia::observer", error = %e, "the observer cannot serve");
            return;
        }
    };
    let server = axum::serve(listener, router(Arc::clone(&state))).into_future();
    tokio::select! {
        served = server => if let Err(e) = served {
            tracing::warn!(target: "mnesia::observer", error = %e, "the observer stopped serving");
        },
        () = sample(state, every) => {}
        _ = stop => {}
    }
}

/// Takes a reading of the database's activity every `every`, for the plots.
async fn sample(state: Shared, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let reading = state.db.activity();
        state.history.lock().add(reading, Instant::now());
    }
}

fn router(state: Shared) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/api/overview", get(overview))
        .route("/api/tables", get(tables))
        .route("/api/metrics", get(metrics))
        .route("/api/tables/{table}/records", get(records))
        .route("/api/tables/{table}/events", get(events))
        .fallback(|| async { problem(StatusCode::NOT_FOUND, "no such page".into()) })
        .layer(middleware::from_fn_with_state(Arc::clone(&state), guard))
        .with_state(state)
}

/// Refuses a request without the token, when one is set.
async fn guard(With(state): With<Shared>, request: Request, next: Next) -> Response {
    if crate::auth::allowed(state.token.as_deref(), request.headers(), request.uri().query()) {
        next.run(request).await
    } else {
        let why = match state.token {
            Some(_) => "this observer requires its token",
            // (Without a token, a page from another site whose name was rebound to this
            // address would otherwise read it.)
            None => {
                "this observer, served without a token, answers only requests to a loopback name (localhost, 127.0.0.1, [::1]): give it a token to be reached by another name"
            }
        };
        problem(crate::auth::REFUSED, why.into())
    }
}

/// An error as JSON: `{"error": ".."}`.
fn problem(status: StatusCode, error: String) -> Response {
    (status, Json(json!({ "error": error }))).into_response()
}

/// A database error with the status that fits it.
fn failed(e: Error) -> Response {
    let status = match &e {
        Error::NoSuchTable { .. } => StatusCode::NOT_FOUND,
        Error::Invalid(_) => StatusCode::BAD_REQUEST,
        Error::Unclaimed { .. } => StatusCode::CONFLICT,
        Error::Closed { .. } | Error::Conflict | Error::TooManyRetries { .. } => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    problem(status, e.to_string())
}

/// Runs `f` on the database off the server's thread (a table read can take a while, and
/// may wait for a lock), at most [`READERS`] at once.
async fn blocking<R: Send + 'static>(
    state: &Shared,
    f: impl FnOnce(&Database) -> R + Send + 'static,
) -> Result<R, Response> {
    let _turn =
        state.readers.acquire().await.map_err(|e| {
            problem(StatusCode::SERVICE_UNAVAILABLE, format!("the observer is stopping: {e}"))
        })?;
    let db = state.db.clone();
    tokio::task::spawn_blocking(move || f(&db))
        .await
        .map_err(|e| problem(StatusCode::INTERNAL_SERVER_ERROR, format!("the observer's reader failed: {e}")))
}

async fn page() -> Response {
    let mut response = Html(crate::page::HTML).into_response();
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:"),
    );
    response
}

/// The node(s), transactions so far, the log and checkpoint state.
async fn overview(With(state): With<Shared>) -> Response {
    let info = match blocking(&state, |db| db.system_info()).await {
        Ok(info) => info,
        Err(r) => return r,
    };
    let mut system = serde_json::to_value(&info).unwrap_or(Value::Null);
    if let Some(o) = system.as_object_mut() {
        o.remove("tables");
    }
    let nodes: Vec<Value> = match &info.cluster {
        // A cluster node: every member, its role, whether it answers, the leader, and (on
        // the leader, the only node that knows) how many entries of its log each lacks.
        Some(cluster) => cluster
            .members
            .iter()
            .map(|m| {
                let name = if m.id == cluster.node { format!("{} ({m})", info.node) } else { m.to_string() };
                json!({
                    "name": name,
                    "running": m.up,
                    "role": match (cluster.leader == Some(m.id), m.voter) {
                        (true, _) => "leader",
                        (false, true) => "follower",
                        (false, false) => "learner",
                    },
                    "leader": cluster.leader,
                    "lag": m.behind,
                })
            })
            .collect(),
        None => info
            .known_nodes
            .iter()
            .map(|n| {
                json!({
                    "name": n,
                    "running": info.running_nodes.contains(n),
                    "role": "standalone",
                    "leader": Value::Null,
                    "lag": Value::Null,
                })
            })
            .collect(),
    };
    Json(json!({ "system": system, "nodes": nodes, "tables": info.tables.len() })).into_response()
}

async fn tables(With(state): With<Shared>) -> Response {
    match blocking(&state, |db| db.table_infos()).await {
        Ok(infos) => Json(infos).into_response(),
        Err(r) => r,
    }
}

async fn metrics(With(state): With<Shared>) -> Response {
    let samples = state.history.lock().samples();
    Json(json!({ "samples": samples })).into_response()
}

/// What a records request may ask.
#[derive(Deserialize)]
struct RecordsQuery {
    after: Option<String>,
    limit: Option<usize>,
    field: Option<String>,
    contains: Option<String>,
}

async fn records(
    With(state): With<Shared>,
    Path(table): Path<String>,
    q: Result<Query<RecordsQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = match q {
        Ok(Query(q)) => q,
        Err(e) => return problem(StatusCode::BAD_REQUEST, e.body_text()),
    };
    if q.limit == Some(0) {
        return problem(StatusCode::BAD_REQUEST, "limit=0: a page holds 1 record or more".into());
    }
    let mut browse = Browse::new().limit(q.limit.unwrap_or(50).min(MAX_PAGE));
    if let Some(after) = q.after.filter(|a| !a.is_empty()) {
        match serde_json::from_str(&after) {
            Ok(key) => browse = browse.after(key),
            Err(e) => return problem(StatusCode::BAD_REQUEST, format!("after={after} is not JSON: {e}")),
        }
    }
    if let Some(field) = q.field.filter(|f| !f.is_empty()) {
        browse = browse.field(field);
    }
    if let Some(text) = q.contains.filter(|t| !t.is_empty()) {
        browse = browse.contains(text);
    }
    match blocking(&state, move |db| db.browse(&table, &browse)).await {
        // `after`: the next key as JSON text, to send back as it is (a page's script would
        // round integers past 2^53 in `next`).
        Ok(Ok(page)) => {
            let after = page.next.as_ref().map(Value::to_string);
            Json(json!({ "records": page.records, "next": page.next, "after": after })).into_response()
        }
        Ok(Err(e)) => failed(e),
        Err(r) => r,
    }
}

/// Gives back a tail's place when its stream ends.
struct Tail(Shared);

impl Drop for Tail {
    fn drop(&mut self) {
        self.0.tails.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn events(With(state): With<Shared>, Path(table): Path<String>) -> Response {
    if state.tails.fetch_add(1, Ordering::AcqRel) >= MAX_TAILS {
        state.tails.fetch_sub(1, Ordering::AcqRel);
        return problem(StatusCode::SERVICE_UNAVAILABLE, format!("{MAX_TAILS} event tails are open already"));
    }
    let tail = Tail(Arc::clone(&state));
    let events = match blocking(&state, move |db| db.subscribe_json(&table)).await {
        Ok(Ok(events)) => events,
        Ok(Err(e)) => return failed(e),
        Err(r) => return r,
    };
    // Ends after the table's `dropped` event: nothing follows it.
    let stream = futures_util::stream::unfold(Some((events, tail)), |open| async move {
        let (mut events, tail) = open?;
        let event = events.next().await?;
        let dropped = event["event"] == "dropped";
        let sent = Ok::<_, Infallible>(SseEvent::default().data(event.to_string()));
        Some((sent, (!dropped).then_some((events, tail))))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(10))).into_response()
}
