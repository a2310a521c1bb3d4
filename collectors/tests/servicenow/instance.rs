//! A ServiceNow instance for the tests: the Table API over in-memory tables.
//!
//! `GET /api/now/table/{tableName}` as documented in
//! <https://www.servicenow.com/docs/bundle/zurich-api-reference/page/integrate/inbound-rest/concept/c_TableAPI.html>:
//! `sysparm_query` is evaluated (conditions `=`, `!=`, `<`, `<=`, `>`, `>=`, `IN`, joined by `^`
//! and `^OR`, and `ORDERBY`/`ORDERBYDESC`), `sysparm_fields` projects fields including
//! dot-walked ones (`requested_by.user_name`), `sysparm_limit`/`sysparm_offset` page, and the
//! answer is `{"result": [...]}` with every value a string, references as sys_ids when
//! `sysparm_exclude_reference_link=true` and `{"link", "value"}` otherwise, plus the
//! `X-Total-Count` and `Link` (first/prev/next/last) headers.
//! Errors use ServiceNow's body `{"error": {"message", "detail"}, "status": "failure"}`; a
//! missing or wrong `Authorization` is the documented 401.

use crate::common::api_server::Fault;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

pub type Record = Map<String, Value>;
/// Something to do to the tables just before answering one page.
pub type Hook = Box<dyn FnOnce(&mut Db) + Send>;

/// The instance's state.
#[derive(Default)]
pub struct Db {
    pub tables: BTreeMap<&'static str, Vec<Record>>,
    /// The `Authorization` header the instance accepts.
    pub authorization: String,
    /// One-shot answers for a page: (table, sysparm_offset, answer).
    pub page_faults: Vec<(&'static str, u64, Fault)>,
    /// One-shot changes to the tables before a page is answered: (table, offset, change).
    pub hooks: Vec<(&'static str, u64, Hook)>,
    /// Seconds added to the clock in the `Date` header (0: the real one).
    pub clock_offset: i64,
}

impl Db {
    pub fn table(&mut self, name: &'static str) -> &mut Vec<Record> {
        self.tables.entry(name).or_default()
    }

    /// The record of `table` with `sys_id`.
    pub fn record(&mut self, table: &'static str, sys_id: &str) -> &mut Record {
        self.table(table)
            .iter_mut()
            .find(|r| r["sys_id"] == sys_id)
            .unwrap_or_else(|| panic!("no {table} {sys_id}"))
    }

    /// Look a record up by sys_id; `task` is every task table.
    fn lookup(&self, table: &str, sys_id: &str) -> Option<&Record> {
        let tables = match table {
            "task" => vec!["change_request", "incident", "problem"],
            other => vec![other],
        };
        tables
            .into_iter()
            .filter_map(|t| self.tables.get(t))
            .flatten()
            .find(|r| r.get("sys_id").and_then(Value::as_str) == Some(sys_id))
    }

    /// A field's value as the database holds it, following dot-walks.
    fn value(&self, table: &str, record: &Record, path: &str) -> Option<String> {
        let (field, rest) = match path.split_once('.') {
            Some((field, rest)) => (field, Some(rest)),
            None => (path, None),
        };
        let value = record.get(field)?.as_str()?.to_owned();
        match rest {
            None => Some(value),
            Some(rest) => {
                let target = reference_table(table, field)?;
                if value.is_empty() {
                    return Some(String::new());
                }
                let referenced = self.lookup(target, &value)?;
                Some(self.value(target, referenced, rest).unwrap_or_default())
            }
        }
    }
}

/// The table a reference field points to (the base system's dictionary, for the fields the
/// fixtures hold).
fn reference_table(table: &str, field: &str) -> Option<&'static str> {
    Some(match (table, field) {
        (_, "requested_by" | "opened_by" | "assigned_to" | "closed_by" | "caller_id") => "sys_user",
        ("sysapproval_approver", "approver") => "sys_user",
        ("sysapproval_approver", "sysapproval") => "task",
        (_, "assignment_group" | "sys_domain") => "sys_user_group",
        (_, "cmdb_ci") => "cmdb_ci",
        (_, "parent") => "task",
        ("incident" | "problem", "rfc" | "caused_by") => "change_request",
        _ => return None,
    })
}

pub type Shared = Arc<Mutex<Db>>;

pub fn router(db: Shared) -> Router {
    Router::new()
        .route("/api/now/table/{table}", get(table_get))
        .with_state(db)
}

fn failure(status: StatusCode, message: &str, detail: &str) -> Response {
    let body = json!({"error": {"message": message, "detail": detail}, "status": "failure"});
    (status, Json(body)).into_response()
}

/// Table - GET /now/table/{tableName} (docs URL in the module header).
async fn table_get(
    State(db): State<Shared>,
    Path(table): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut db = db.lock().unwrap();
    let given = headers.get("authorization").and_then(|v| v.to_str().ok());
    if given != Some(db.authorization.as_str()) {
        // The documented answer to a request without valid credentials.
        let mut response = failure(
            StatusCode::UNAUTHORIZED,
            "User Not Authenticated",
            "Required to provide Auth information",
        );
        response.headers_mut().insert(
            "www-authenticate",
            HeaderValue::from_static("BASIC realm=\"Service-now\""),
        );
        return response;
    }
    let param = |name: &str| params.get(name).map(String::as_str);
    let offset: u64 = param("sysparm_offset")
        .and_then(|o| o.parse().ok())
        .unwrap_or(0);
    let limit: u64 = param("sysparm_limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(10_000);
    if let Some(at) = db
        .page_faults
        .iter()
        .position(|(t, o, _)| *t == table && *o == offset)
    {
        let (_, _, fault) = db.page_faults.remove(at);
        return fault_response(&fault);
    }
    while let Some(at) = db
        .hooks
        .iter()
        .position(|(t, o, _)| *t == table && *o == offset)
    {
        let (_, _, hook) = db.hooks.remove(at);
        hook(&mut db);
    }
    let Some(records) = db.tables.get(table.as_str()) else {
        return failure(
            StatusCode::BAD_REQUEST,
            &format!("Invalid table {table}"),
            "",
        );
    };
    let query = match parse_query(param("sysparm_query").unwrap_or("")) {
        Ok(query) => query,
        Err(why) => return failure(StatusCode::BAD_REQUEST, "Invalid query", &why),
    };
    let mut matching: Vec<&Record> = records
        .iter()
        .filter(|r| query.matches(&db, &table, r))
        .collect();
    for (field, descending) in query.order.iter().rev() {
        matching.sort_by(|a, b| {
            let order = db.value(&table, a, field).cmp(&db.value(&table, b, field));
            if *descending {
                order.reverse()
            } else {
                order
            }
        });
    }
    let total = matching.len() as u64;
    let fields: Option<Vec<&str>> = param("sysparm_fields").map(|f| f.split(',').collect());
    let links = param("sysparm_exclude_reference_link") != Some("true");
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let origin = format!("http://{host}");
    let result: Vec<Value> = matching
        .iter()
        .skip(offset as usize)
        .take(limit as usize)
        .map(|r| Value::Object(project(&db, &table, r, fields.as_deref(), links, &origin)))
        .collect();
    let mut response = Json(json!({ "result": result })).into_response();
    let response_headers = response.headers_mut();
    response_headers.insert("x-total-count", total.into());
    let link = link_header(&origin, &table, &params, offset, limit, total);
    response_headers.insert("link", HeaderValue::from_str(&link).unwrap());
    if db.clock_offset != 0 {
        let date = chrono::Utc::now() + chrono::Duration::seconds(db.clock_offset);
        let date = date.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        response_headers.insert("date", HeaderValue::from_str(&date).unwrap());
    }
    response
}

fn fault_response(fault: &Fault) -> Response {
    let mut response = fault.body.clone().into_response();
    *response.status_mut() = StatusCode::from_u16(fault.status).unwrap();
    for (name, value) in &fault.headers {
        response.headers_mut().insert(
            axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    response
}

/// The requested fields of a record (all of them without `sysparm_fields`; unknown ones are
/// left out, as the docs say), references as link objects when `links`.
fn project(
    db: &Db,
    table: &str,
    record: &Record,
    fields: Option<&[&str]>,
    links: bool,
    origin: &str,
) -> Record {
    let all: Vec<&str> = record.keys().map(String::as_str).collect();
    let mut out = Map::new();
    for &field in fields.unwrap_or(&all) {
        let Some(value) = db.value(table, record, field) else {
            continue;
        };
        let rendered = match reference_table(table, field) {
            Some(target) if links && !value.is_empty() => json!({
                "link": format!("{origin}/api/now/table/{target}/{value}"),
                "value": value,
            }),
            _ => json!(value),
        };
        out.insert(field.to_owned(), rendered);
    }
    out
}

/// `Link: <…offset=0>;rel="first",<…>;rel="prev",<…>;rel="next",<…>;rel="last"`.
fn link_header(
    origin: &str,
    table: &str,
    params: &HashMap<String, String>,
    offset: u64,
    limit: u64,
    total: u64,
) -> String {
    let page = |at: u64| {
        let mut url = url::Url::parse(&format!("{origin}/api/now/table/{table}")).unwrap();
        {
            let mut pairs = url.query_pairs_mut();
            let mut names: Vec<&String> = params.keys().collect();
            names.sort();
            for name in names.into_iter().filter(|n| *n != "sysparm_offset") {
                pairs.append_pair(name, &params[name]);
            }
            pairs.append_pair("sysparm_offset", &at.to_string());
        }
        url.to_string()
    };
    let limit = limit.max(1);
    let last = total.saturating_sub(1) / limit * limit;
    let mut links = vec![format!("<{}>;rel=\"first\"", page(0))];
    if offset > 0 {
        links.push(format!(
            "<{}>;rel=\"prev\"",
            page(offset.saturating_sub(limit))
        ));
    }
    if offset + limit < total {
        links.push(format!("<{}>;rel=\"next\"", page(offset + limit)));
    }
    links.push(format!("<{}>;rel=\"last\"", page(last)));
    links.join(",")
}

/// A parsed encoded query: an AND of OR-groups, and the order.
struct EncodedQuery {
    groups: Vec<Vec<Condition>>,
    order: Vec<(String, bool)>,
}

struct Condition {
    field: String,
    op: &'static str,
    value: String,
}

fn parse_query(text: &str) -> Result<EncodedQuery, String> {
    let mut query = EncodedQuery {
        groups: Vec::new(),
        order: Vec::new(),
    };
    for token in text.split('^').filter(|t| !t.is_empty()) {
        if let Some(field) = token.strip_prefix("ORDERBYDESC") {
            query.order.push((field.to_owned(), true));
        } else if let Some(field) = token.strip_prefix("ORDERBY") {
            query.order.push((field.to_owned(), false));
        } else if let Some(condition) = token.strip_prefix("OR") {
            let group = query.groups.last_mut().ok_or("^OR without a condition")?;
            group.push(parse_condition(condition)?);
        } else {
            query.groups.push(vec![parse_condition(token)?]);
        }
    }
    Ok(query)
}

fn parse_condition(token: &str) -> Result<Condition, String> {
    let end = token
        .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.'))
        .ok_or_else(|| format!("no operator in {token:?}"))?;
    let (field, rest) = token.split_at(end);
    let op = [">=", "<=", "!=", "=", ">", "<", "IN"]
        .into_iter()
        .find(|op| rest.starts_with(op))
        .ok_or_else(|| format!("unsupported operator in {token:?}"))?;
    Ok(Condition {
        field: field.to_owned(),
        op,
        value: rest[op.len()..].to_owned(),
    })
}

impl EncodedQuery {
    fn matches(&self, db: &Db, table: &str, record: &Record) -> bool {
        self.groups.iter().all(|group| {
            group.iter().any(|c| {
                let Some(v) = db.value(table, record, &c.field) else {
                    return false;
                };
                let value = c.value.as_str();
                match c.op {
                    "=" => v == value,
                    "!=" => v != value,
                    ">=" => v.as_str() >= value,
                    "<=" => v.as_str() <= value,
                    ">" => v.as_str() > value,
                    "<" => v.as_str() < value,
                    _ => value.split(',').any(|x| x == v),
                }
            })
        })
    }
}
