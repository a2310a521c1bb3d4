//! Response bodies: parsing the JSON of a success, and saying in one line what an error body
//! holds (the vendor's own message, or what kind of page it is) without dumping it.

use serde_json::Value;

/// At most this much of a vendor's message goes into an error.
const MESSAGE_LIMIT: usize = 300;

/// A one-line description of an error body: the vendor's message when it is JSON in a known
/// shape, "an HTML page titled …" for HTML, or the start of the text.
pub fn describe(body: &[u8], content_type: Option<&str>) -> String {
    if body.iter().all(u8::is_ascii_whitespace) {
        return "an empty body".to_owned();
    }
    if let Ok(json) = serde_json::from_slice::<Value>(body) {
        return match vendor_message(&json) {
            Some(message) => format!("\"{}\"", clip(&message)),
            None => format!("JSON {}", clip(&json.to_string())),
        };
    }
    let text = String::from_utf8_lossy(body);
    if is_html(&text, content_type) {
        return match html_title(&text) {
            Some(title) => format!("an HTML page titled \"{}\"", clip(&title)),
            None => "an HTML page".to_owned(),
        };
    }
    format!("\"{}\"", clip(&text))
}

/// Why a success body is not the JSON expected: the parse error and what the body is.
pub fn not_json(body: &[u8], content_type: Option<&str>, err: &serde_json::Error) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(4096)]);
    if is_html(&text, content_type) {
        format!("the body is {}, not JSON", describe(body, content_type))
    } else {
        format!("the body is not valid JSON ({err})")
    }
}

/// The message a vendor puts in its error body:
/// GitHub and GitLab `{"message": …}`, Jira `{"errorMessages": […], "errors": {…}}`,
/// ServiceNow `{"error": {"message", "detail"}}`, OAuth `{"error", "error_description"}`.
fn vendor_message(json: &Value) -> Option<String> {
    if let Some(message) = json.get("message").and_then(Value::as_str) {
        return Some(message.to_owned());
    }
    let mut parts: Vec<String> = Vec::new();
    if let Some(list) = json.get("errorMessages").and_then(Value::as_array) {
        parts.extend(list.iter().filter_map(Value::as_str).map(str::to_owned));
    }
    if let Some(map) = json.get("errors").and_then(Value::as_object) {
        parts.extend(
            map.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| format!("{k}: {v}"))),
        );
    }
    match json.get("error") {
        Some(Value::String(error)) => {
            parts.push(error.clone());
            if let Some(d) = json.get("error_description").and_then(Value::as_str) {
                parts.push(d.to_owned());
            }
        }
        Some(Value::Object(error)) => {
            for key in ["message", "detail"] {
                if let Some(text) = error.get(key).and_then(Value::as_str) {
                    parts.push(text.to_owned());
                }
            }
        }
        _ => {}
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

fn is_html(text: &str, content_type: Option<&str>) -> bool {
    content_type.is_some_and(|t| t.to_ascii_lowercase().contains("html")) || {
        let start = text
            .trim_start()
            .get(..15)
            .unwrap_or("")
            .to_ascii_lowercase();
        start.starts_with("<!doctype html") || start.starts_with("<html")
    }
}

fn html_title(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let start = lower.find("<title")?;
    let open_end = start + lower[start..].find('>')? + 1;
    let close = open_end + lower[open_end..].find("</title")?;
    let title = text
        .get(open_end..close)?
        .split_whitespace()
        .collect::<Vec<_>>();
    (!title.is_empty()).then(|| title.join(" "))
}

/// One line, control characters replaced, at most [`MESSAGE_LIMIT`] characters.
fn clip(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MESSAGE_LIMIT)
        .collect();
    if text.chars().count() > MESSAGE_LIMIT {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_messages_are_quoted() {
        let github =
            br#"{"message":"Bad credentials","documentation_url":"https://docs.github.com/rest"}"#;
        assert_eq!(describe(github, None), "\"Bad credentials\"");
        let jira = br#"{"errorMessages":["The value 'X' does not exist for the field 'project'."],"errors":{}}"#;
        assert_eq!(
            describe(jira, None),
            "\"The value 'X' does not exist for the field 'project'.\""
        );
        let servicenow = br#"{"error":{"message":"User Not Authenticated","detail":"Required to provide Auth information"},"status":"failure"}"#;
        assert_eq!(
            describe(servicenow, None),
            "\"User Not Authenticated; Required to provide Auth information\""
        );
        let gitlab_oauth = br#"{"error":"invalid_token","error_description":"Token was revoked."}"#;
        assert_eq!(
            describe(gitlab_oauth, None),
            "\"invalid_token; Token was revoked.\""
        );
    }

    #[test]
    fn html_pages_are_named_by_title() {
        let page = b"<!DOCTYPE html>\n<html><head><title>502 Bad\n Gateway</title></head><body>nginx</body></html>";
        assert_eq!(
            describe(page, Some("text/html")),
            "an HTML page titled \"502 Bad Gateway\""
        );
        assert_eq!(
            describe(b"<html><body>x</body></html>", None),
            "an HTML page"
        );
        let err = serde_json::from_slice::<Value>(page).unwrap_err();
        assert_eq!(
            not_json(page, None, &err),
            "the body is an HTML page titled \"502 Bad Gateway\", not JSON"
        );
    }

    #[test]
    fn other_bodies_are_clipped_to_one_line() {
        let long = "x\n".repeat(400);
        let described = describe(long.as_bytes(), Some("text/plain"));
        assert!(!described.contains('\n'));
        assert!(
            described.chars().count() <= MESSAGE_LIMIT + 3,
            "{described}"
        );
        assert_eq!(describe(b"  ", None), "an empty body");
        let err = serde_json::from_slice::<Value>(b"{\"items\": [1,").unwrap_err();
        assert!(not_json(b"{\"items\": [1,", None, &err).starts_with("the body is not valid JSON"));
    }
}
