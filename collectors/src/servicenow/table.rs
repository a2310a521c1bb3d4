//! Reading ServiceNow's Table API (`GET /api/now/table/{table}`): every record an encoded query
//! matches, page by page with `sysparm_offset`, while the table may change underneath.
//!
//! Docs: <https://www.servicenow.com/docs/bundle/zurich-api-reference/page/integrate/inbound-rest/concept/c_TableAPI.html>.
//! Requests ask for database values (`sysparm_display_value=false`: every value a string, times
//! in UTC as `yyyy-MM-dd HH:mm:ss`) and plain sys_ids for references
//! (`sysparm_exclude_reference_link=true`); the fields of referenced records are read by
//! dot-walking in `sysparm_fields` (`requested_by.user_name`), so no extra lookups are needed.
//!
//! Offset paging over a live table can skip a record: when a record before the current offset
//! leaves the result set (updated out of the queried window, or deleted), every later record
//! moves one place down and the next page starts one record too far. Each page's
//! `X-Total-Count` tells: when it dropped by `d` since the previous page, the next request
//! steps back `d` places (reading a few records twice, which the caller merges by sys_id). When
//! it grew, a record entered the set at an unknown place, and the listing starts over (a few
//! times at most). `sysparm_limit` is applied before ACLs, so a short page does not mean the
//! end: the end is `X-Total-Count`.

use crate::http::{Api, JsonResponse};
use crate::CollectError;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use url::Url;

/// One record as the Table API returns it: field name (or dot-walked path) to value.
pub(super) type Record = Map<String, Value>;

/// Times a listing may start over because its result set grew while it was read.
const MAX_RESTARTS: u32 = 5;

/// What one listing read.
#[derive(Debug, Default)]
pub(super) struct Listing {
    /// Every record returned, in the order read; a record may appear more than once.
    pub records: Vec<Record>,
    pub pages: u64,
    /// Times the listing started over (the result set grew).
    pub restarts: u32,
    /// Times a page was read again (the result set shrank).
    pub step_backs: u32,
}

/// A listing request: `table`'s records matching `query`, `fields` of each, `page_size` a page.
pub(super) struct Query<'q> {
    pub table: &'q str,
    pub query: &'q str,
    pub fields: &'q str,
    pub page_size: u32,
}

/// Read every record of `q`. `clock_check` is called with the first answer (for its `Date`).
pub(super) async fn read_all(
    api: &Api,
    base: &Url,
    q: &Query<'_>,
    mut clock_check: impl FnMut(&JsonResponse) -> Result<(), CollectError>,
) -> Result<Listing, CollectError> {
    let table_url = base
        .join(&format!("api/now/table/{}", q.table))
        .map_err(|e| CollectError::Other(format!("cannot build the URL of {}: {e}", q.table)))?;
    let page_size = u64::from(q.page_size);
    let mut listing = Listing::default();
    let mut offset = 0u64;
    let mut last_total: Option<u64> = None;
    loop {
        let url = page_url(&table_url, q, offset);
        let response = api.get(&url).await?;
        if listing.pages == 0 {
            clock_check(&response)?;
        }
        listing.pages += 1;
        let total = total_count(&response)?;
        listing.records.extend(result_records(&response)?);
        offset = match last_total {
            Some(previous) if total > previous => {
                listing.restarts += 1;
                if listing.restarts > MAX_RESTARTS {
                    return Err(CollectError::Other(format!(
                        "GET {}: the {} records kept changing while they were read \
                         (X-Total-Count grew {MAX_RESTARTS} times); try again later",
                        response.url, q.table
                    )));
                }
                0
            }
            Some(previous) if total < previous => {
                listing.step_backs += 1;
                offset.saturating_sub(previous - total)
            }
            _ => offset + page_size,
        };
        last_total = Some(total);
        if offset >= total {
            return Ok(listing);
        }
    }
}

fn page_url(table_url: &Url, q: &Query<'_>, offset: u64) -> Url {
    let mut url = table_url.clone();
    url.query_pairs_mut()
        .append_pair("sysparm_query", q.query)
        .append_pair("sysparm_fields", q.fields)
        .append_pair("sysparm_limit", &q.page_size.to_string())
        .append_pair("sysparm_offset", &offset.to_string())
        .append_pair("sysparm_display_value", "false")
        .append_pair("sysparm_exclude_reference_link", "true");
    url
}

fn total_count(response: &JsonResponse) -> Result<u64, CollectError> {
    let text = response.header("x-total-count").ok_or_else(|| {
        CollectError::Other(format!(
            "GET {}: the answer has no X-Total-Count header",
            response.url
        ))
    })?;
    text.trim().parse().map_err(|_| {
        CollectError::Other(format!(
            "GET {}: X-Total-Count {text:?} is not a count",
            response.url
        ))
    })
}

/// The records of `{"result": [...]}`.
fn result_records(response: &JsonResponse) -> Result<Vec<Record>, CollectError> {
    let malformed =
        |why: &str| CollectError::Other(format!("GET {}: unexpected answer: {why}", response.url));
    let list = response
        .body
        .get("result")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("no \"result\" list"))?;
    list.iter()
        .map(|record| {
            record
                .as_object()
                .cloned()
                .ok_or_else(|| malformed("a result that is not an object"))
        })
        .collect()
}

/// A field's value as non-empty text: a string, or the `value` of a reference link object
/// (in case an instance ignores `sysparm_exclude_reference_link`).
pub(super) fn text<'r>(record: &'r Record, field: &str) -> Option<&'r str> {
    let value = match record.get(field)? {
        Value::String(s) => s.as_str(),
        Value::Object(link) => link.get("value")?.as_str()?,
        _ => return None,
    };
    let value = value.trim();
    (!value.is_empty()).then_some(value)
}

/// A time for an encoded query: ServiceNow's internal format, which a plain value in
/// `sysparm_query` is read in (UTC). `gs.dateGenerate()` would instead read it in the API
/// user's time zone.
pub(super) fn query_time(time: &DateTime<Utc>) -> String {
    time.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// The server's clock, from an answer's `Date` header.
pub(super) fn server_date(response: &JsonResponse) -> Option<DateTime<Utc>> {
    let text = response.header("date")?;
    DateTime::parse_from_rfc2822(text.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_reads_strings_and_reference_links_and_drops_empty_values() {
        let record = json!({
            "number": "CHG0030001",
            "parent": "",
            "cmdb_ci": {"link": "https://x/api/now/table/cmdb_ci/abc", "value": "abc"},
            "count": 3,
        });
        let record = record.as_object().unwrap();
        assert_eq!(text(record, "number"), Some("CHG0030001"));
        assert_eq!(text(record, "parent"), None);
        assert_eq!(text(record, "cmdb_ci"), Some("abc"));
        assert_eq!(text(record, "count"), None);
        assert_eq!(text(record, "missing"), None);
    }

    #[test]
    fn query_times_are_the_internal_format() {
        let t = DateTime::parse_from_rfc3339("2026-03-01T12:05:09Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(query_time(&t), "2026-03-01 12:05:09");
    }
}
