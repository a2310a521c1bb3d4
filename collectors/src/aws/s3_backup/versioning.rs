//! GetBucketVersioning, with a reader for one known deviation of S3-compatible stores.
//!
//! S3 answers `<VersioningConfiguration>` holding `<Status>` and `<MfaDelete>` (both left out
//! while versioning was never enabled). moto 5.2.1 names the root element
//! `<GetBucketVersioningResponse>`, which the SDK refuses. An answer the SDK cannot read is
//! read here instead, but only if it is exactly that: one root element holding nothing but
//! those two fields with values S3 uses; anything else stays an error.

use crate::aws::{sdk_error, unreadable_answer, xml_text, RunLog};
use crate::CollectError;
use serde_json::{json, Value};

/// `{"status": "Enabled"|"Suspended"|null, "mfa_delete": "Enabled"|"Disabled"|null}`.
pub(super) async fn get(
    client: &aws_sdk_s3::Client,
    log: &RunLog,
    bucket: &str,
    resource: &str,
) -> Result<Value, CollectError> {
    let versioning = match client.get_bucket_versioning().bucket(bucket).send().await {
        Ok(out) => json!({
            "status": out.status.as_ref().map(|s| s.as_str()),
            "mfa_delete": out.mfa_delete.as_ref().map(|s| s.as_str()),
        }),
        Err(err) => match unreadable_answer(&err) {
            Some((200, body)) => match read(&body) {
                Some(versioning) => versioning,
                None => return Err(sdk_error("GetBucketVersioning", resource, &err)),
            },
            _ => return Err(sdk_error("GetBucketVersioning", resource, &err)),
        },
    };
    log.call("GetBucketVersioning");
    Ok(versioning)
}

/// The versioning state from an answer whose root element has another name than S3's.
fn read(body: &str) -> Option<Value> {
    let mut rest = body.trim();
    if rest.starts_with("<?xml") {
        rest = rest[rest.find("?>")? + 2..].trim_start();
    }
    let inner = rest.strip_prefix('<')?;
    let open_end = inner.find('>')?;
    let open = &inner[..open_end];
    let name = open.split(|c: char| c.is_whitespace() || c == '/').next()?;
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    let content = if open.ends_with('/') {
        if !inner[open_end + 1..].trim().is_empty() {
            return None;
        }
        ""
    } else {
        inner[open_end + 1..]
            .trim_end()
            .strip_suffix(&format!("</{name}>"))?
    };
    let status = xml_text(content, "Status");
    let mfa_delete = xml_text(content, "MfaDelete");
    // Nothing but those two fields, with S3's values.
    let mut left = content.to_owned();
    for (field, value) in [("Status", &status), ("MfaDelete", &mfa_delete)] {
        if let Some(value) = value {
            left = left.replacen(&format!("<{field}>{value}</{field}>"), "", 1);
        }
    }
    let status_ok = matches!(status.as_deref(), None | Some("Enabled" | "Suspended"));
    let mfa_ok = matches!(mfa_delete.as_deref(), None | Some("Enabled" | "Disabled"));
    (left.trim().is_empty() && status_ok && mfa_ok)
        .then(|| json!({ "status": status, "mfa_delete": mfa_delete }))
}

#[cfg(test)]
mod tests {
    use super::read;
    use serde_json::json;

    const DECLARATION: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n";

    #[test]
    fn another_root_with_s3s_fields_is_read() {
        let moto = format!(
            "{DECLARATION}<GetBucketVersioningResponse xmlns=\"http://s3.amazonaws.com/doc/\
             2006-03-01/\"><Status>Enabled</Status></GetBucketVersioningResponse>"
        );
        assert_eq!(
            read(&moto),
            Some(json!({"status": "Enabled", "mfa_delete": null}))
        );
        let never = format!("{DECLARATION}<GetBucketVersioningResponse xmlns=\"x\"/>");
        assert_eq!(
            read(&never),
            Some(json!({"status": null, "mfa_delete": null}))
        );
        let both = "<R><MfaDelete>Disabled</MfaDelete> <Status>Suspended</Status></R>";
        assert_eq!(
            read(both),
            Some(json!({"status": "Suspended", "mfa_delete": "Disabled"}))
        );
    }

    #[test]
    fn anything_else_is_not() {
        for body in [
            "",
            "<!DOCTYPE html><html><body>Bad Gateway</body></html>",
            "<R><Status>Enabled</Status><Other>1</Other></R>",
            "<R><Status>Maybe</Status></R>",
            "<R><Status>Enabled</Status></S>",
            "<R/><R/>",
            "<?xml version=\"1.0\"?>",
        ] {
            assert_eq!(read(body), None, "{body:?}");
        }
    }
}
