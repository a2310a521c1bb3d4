//! The IAM credential report: asked for with GenerateCredentialReport, fetched with
//! GetCredentialReport once complete, and parsed from its CSV.
//!
//! The report is an extra: when it cannot be had (the permission is missing, the report is not
//! ready within the wait, the service answers it is not present or expired, its CSV cannot be
//! read) the run goes on without it and says why. A transport failure or a server error that
//! outlasts the retries still fails the run, as for every other request.

use super::Iam;
use crate::aws::{error_code, error_status, sdk_error, timestamp};
use crate::CollectError;
use aws_sdk_iam::types::ReportStateType;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How long a run waits for AWS to generate the report (at most; less near the deadline).
const MAX_WAIT: Duration = Duration::from_secs(60);
/// The first pause between asking whether the report is ready; doubled up to `MAX_PAUSE`.
const FIRST_PAUSE: Duration = Duration::from_millis(250);
const MAX_PAUSE: Duration = Duration::from_secs(4);
/// GetCredentialReport's answers while a report is being generated.
const NOT_READY: &[&str] = &["ReportInProgress", "ReportNotPresent"];

/// One row of the report: column name to value, as AWS writes them (`true`, `N/A`,
/// `not_supported`, ISO 8601 dates).
pub(super) type Row = BTreeMap<String, String>;

#[derive(Debug)]
pub(super) enum Report {
    Included {
        generated_time: serde_json::Value,
        rows: Vec<Row>,
    },
    Unavailable(String),
}

pub(super) async fn fetch(iam: &Iam) -> Result<Report, CollectError> {
    let wait_until = {
        let limit = Instant::now() + MAX_WAIT;
        // Leave the rest of the run a little time after the wait.
        match iam.deadline {
            Some(deadline) => limit.min(
                deadline
                    .checked_sub(Duration::from_secs(5))
                    .unwrap_or(deadline),
            ),
            None => limit,
        }
    };
    let waiting = Instant::now();
    let mut pause = FIRST_PAUSE;
    loop {
        let generated = match iam.client.generate_credential_report().send().await {
            Ok(out) => out,
            Err(err) if is_client_error(error_status(&err)) => {
                return Ok(unavailable(sdk_error(
                    "GenerateCredentialReport",
                    "account",
                    &err,
                )))
            }
            Err(err) => return Err(sdk_error("GenerateCredentialReport", "account", &err)),
        };
        iam.log.call("GenerateCredentialReport");
        let complete = generated.state == Some(ReportStateType::Complete);
        match iam.client.get_credential_report().send().await {
            Ok(out) => {
                iam.log.call("GetCredentialReport");
                let Some(content) = out.content else {
                    return Ok(Report::Unavailable(
                        "GetCredentialReport returned no content".to_owned(),
                    ));
                };
                return Ok(match parse(content.as_ref()) {
                    Ok(rows) => Report::Included {
                        generated_time: timestamp(out.generated_time.as_ref()),
                        rows,
                    },
                    Err(problem) => {
                        Report::Unavailable(format!("its CSV cannot be read: {problem}"))
                    }
                });
            }
            Err(err) if !complete && error_code(&err).is_some_and(|c| NOT_READY.contains(&c)) => {}
            Err(err) if is_client_error(error_status(&err)) => {
                return Ok(unavailable(sdk_error(
                    "GetCredentialReport",
                    "account",
                    &err,
                )))
            }
            Err(err) => return Err(sdk_error("GetCredentialReport", "account", &err)),
        }
        if Instant::now() + pause > wait_until {
            return Ok(Report::Unavailable(format!(
                "still being generated after {} s",
                waiting.elapsed().as_secs()
            )));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// A 4xx answer: the service refused (no permission, not present, expired, limit): the report
/// is unavailable, which does not fail the run.
fn is_client_error(status: Option<u16>) -> bool {
    status.is_some_and(|s| (400..500).contains(&s))
}

fn unavailable(err: CollectError) -> Report {
    Report::Unavailable(err.to_string())
}

/// The report's rows, each a map from the header's column names. Every row must have a
/// `user` and an `arn`.
pub(super) fn parse(csv: &[u8]) -> Result<Vec<Row>, String> {
    let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(csv);
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| e.to_string())?
        .iter()
        .map(str::to_owned)
        .collect();
    for required in ["user", "arn"] {
        if !headers.iter().any(|h| h == required) {
            return Err(format!("no {required:?} column in its header"));
        }
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| e.to_string())?;
        let row: Row = headers
            .iter()
            .cloned()
            .zip(record.iter().map(str::to_owned))
            .collect();
        rows.push(row);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_keyed_by_the_header_and_quoted_names_survive() {
        let csv = b"user,arn,password_enabled,mfa_active\n\
            <root_account>,arn:aws:iam::123456789012:root,not_supported,true\n\
            \"a,b\",\"arn:aws:iam::123456789012:user/a,b\",false,false\n";
        let rows = parse(csv).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["user"], "<root_account>");
        assert_eq!(rows[0]["mfa_active"], "true");
        assert_eq!(rows[1]["arn"], "arn:aws:iam::123456789012:user/a,b");
    }

    #[test]
    fn an_unreadable_report_is_an_error_not_a_panic() {
        assert!(parse(b"<html><body>Bad Gateway</body></html>\n").is_err());
        assert!(parse(b"user,arn\nalice\n").is_err());
        assert!(parse(b"").is_err());
    }
}
