//! Policies: the inline and attached policies of a user, group or role, the account's managed
//! policies with their default version's document, and the decoding of policy documents.
//!
//! IAM returns policy documents URL-encoded (RFC 3986); they are recorded as the JSON they
//! encode, so that a diff between snapshots shows which statement changed.

use super::Iam;
use crate::aws::{all_pages, sdk_error, timestamp, RunLog, CONCURRENCY};
use crate::concurrent::each_bounded;
use crate::CollectError;
use aws_sdk_iam::types::{Policy, PolicyScopeType};
use percent_encoding::percent_decode_str;
use serde_json::{json, Value};

/// Whose policies: the three kinds of IAM identity that hold inline and attached policies.
#[derive(Debug, Clone, Copy)]
pub(super) enum Holder {
    User,
    Group,
    Role,
}

/// The inline policies of `name`, sorted by policy name: `[{"name", "document"}]`.
pub(super) async fn inline(
    iam: &Iam,
    holder: Holder,
    name: &str,
) -> Result<Vec<Value>, CollectError> {
    let (client, log) = (&iam.client, &*iam.log);
    let resource = holder.resource(name);
    let names: Vec<String> = match holder {
        Holder::User => all_pages!(
            log,
            "ListUserPolicies",
            &resource,
            client.list_user_policies().user_name(name),
            |page| page.policy_names
        ),
        Holder::Group => all_pages!(
            log,
            "ListGroupPolicies",
            &resource,
            client.list_group_policies().group_name(name),
            |page| page.policy_names
        ),
        Holder::Role => all_pages!(
            log,
            "ListRolePolicies",
            &resource,
            client.list_role_policies().role_name(name),
            |page| page.policy_names
        ),
    };
    let mut policies = Vec::new();
    for policy in names {
        let what = format!("{resource} inline policy {policy}");
        let encoded = match holder {
            Holder::User => {
                let out = client
                    .get_user_policy()
                    .user_name(name)
                    .policy_name(&policy)
                    .send()
                    .await
                    .map_err(|e| sdk_error("GetUserPolicy", &what, &e))?;
                log.call("GetUserPolicy");
                out.policy_document
            }
            Holder::Group => {
                let out = client
                    .get_group_policy()
                    .group_name(name)
                    .policy_name(&policy)
                    .send()
                    .await
                    .map_err(|e| sdk_error("GetGroupPolicy", &what, &e))?;
                log.call("GetGroupPolicy");
                out.policy_document
            }
            Holder::Role => {
                let out = client
                    .get_role_policy()
                    .role_name(name)
                    .policy_name(&policy)
                    .send()
                    .await
                    .map_err(|e| sdk_error("GetRolePolicy", &what, &e))?;
                log.call("GetRolePolicy");
                out.policy_document
            }
        };
        let document = document(&encoded, log, &what);
        policies.push(json!({ "name": policy, "document": document }));
    }
    policies.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Ok(policies)
}

/// The managed policies attached to `name`, sorted by ARN: `[{"name", "arn"}]`.
pub(super) async fn attached(
    iam: &Iam,
    holder: Holder,
    name: &str,
) -> Result<Vec<Value>, CollectError> {
    let (client, log) = (&iam.client, &*iam.log);
    let resource = holder.resource(name);
    let attached = match holder {
        Holder::User => all_pages!(
            log,
            "ListAttachedUserPolicies",
            &resource,
            client.list_attached_user_policies().user_name(name),
            |page| page.attached_policies.unwrap_or_default()
        ),
        Holder::Group => all_pages!(
            log,
            "ListAttachedGroupPolicies",
            &resource,
            client.list_attached_group_policies().group_name(name),
            |page| page.attached_policies.unwrap_or_default()
        ),
        Holder::Role => all_pages!(
            log,
            "ListAttachedRolePolicies",
            &resource,
            client.list_attached_role_policies().role_name(name),
            |page| page.attached_policies.unwrap_or_default()
        ),
    };
    let mut policies: Vec<Value> = attached
        .into_iter()
        .map(|p| json!({ "name": p.policy_name, "arn": p.policy_arn }))
        .collect();
    policies.sort_by(|a, b| a["arn"].as_str().cmp(&b["arn"].as_str()));
    Ok(policies)
}

impl Holder {
    fn resource(self, name: &str) -> String {
        match self {
            Holder::User => format!("user {name}"),
            Holder::Group => format!("group {name}"),
            Holder::Role => format!("role {name}"),
        }
    }
}

/// Every customer managed policy, and every AWS managed policy that is attached to something,
/// as `iam_policy` items with their default version's document.
pub(super) async fn managed(iam: &Iam) -> Result<Vec<Value>, CollectError> {
    let (client, log) = (&iam.client, &*iam.log);
    let mut listed: Vec<(Policy, bool)> = Vec::new();
    let local = all_pages!(
        log,
        "ListPolicies",
        "(customer managed)",
        client.list_policies().scope(PolicyScopeType::Local),
        |page| page.policies.unwrap_or_default()
    );
    listed.extend(local.into_iter().map(|p| (p, false)));
    let aws = all_pages!(
        log,
        "ListPolicies",
        "(AWS managed, attached)",
        client
            .list_policies()
            .scope(PolicyScopeType::Aws)
            .only_attached(true),
        |page| page.policies.unwrap_or_default()
    );
    listed.extend(aws.into_iter().map(|p| (p, true)));
    each_bounded(
        listed,
        CONCURRENCY,
        iam.deadline,
        |(policy, aws_managed)| {
            let iam = iam.clone();
            async move { managed_item(&iam, policy, aws_managed).await }
        },
    )
    .await
}

async fn managed_item(iam: &Iam, policy: Policy, aws_managed: bool) -> Result<Value, CollectError> {
    let arn = policy.arn.clone().unwrap_or_default();
    let what = format!("policy {arn}");
    let document = match &policy.default_version_id {
        Some(version) => {
            let out = iam
                .client
                .get_policy_version()
                .policy_arn(&arn)
                .version_id(version)
                .send()
                .await
                .map_err(|e| {
                    sdk_error("GetPolicyVersion", &format!("{what} version {version}"), &e)
                })?;
            iam.log.call("GetPolicyVersion");
            match out.policy_version.and_then(|v| v.document) {
                Some(encoded) => document(&encoded, &iam.log, &what),
                None => {
                    iam.log
                        .warn(format!("{what}: GetPolicyVersion returned no document"));
                    Value::Null
                }
            }
        }
        None => {
            iam.log
                .warn(format!("{what}: ListPolicies gave no default version"));
            Value::Null
        }
    };
    Ok(json!({
        "type": "iam_policy",
        "id": arn,
        "arn": arn,
        "name": policy.policy_name,
        "policy_id": policy.policy_id,
        "path": policy.path,
        "aws_managed": aws_managed,
        "default_version_id": policy.default_version_id,
        "attachment_count": policy.attachment_count,
        "permissions_boundary_usage_count": policy.permissions_boundary_usage_count,
        "is_attachable": policy.is_attachable,
        "create_date": timestamp(policy.create_date.as_ref()),
        "update_date": timestamp(policy.update_date.as_ref()),
        "document": document,
    }))
}

/// A policy document as the JSON it encodes. IAM sends it URL-encoded; a document that is
/// already plain JSON (some S3/IAM-compatible services) is taken as it is; anything else is
/// kept as text with a warning.
pub(super) fn document(encoded: &str, log: &RunLog, what: &str) -> Value {
    let decoded = percent_decode_str(encoded).decode_utf8();
    if let Ok(text) = &decoded {
        if let Ok(value) = serde_json::from_str::<Value>(text) {
            return value;
        }
    }
    if let Ok(value) = serde_json::from_str::<Value>(encoded) {
        return value;
    }
    log.warn(format!(
        "{what}: the policy document is not JSON; recorded as text"
    ));
    Value::String(decoded.map_or_else(|_| encoded.to_owned(), |text| text.into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_url_decoded_json() {
        let log = RunLog::default();
        let encoded = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%22s3%3AGetObject%22%2C%22Resource%22%3A%22arn%3Aaws%3As3%3A%3A%3Ab%2Fa+b%25%22%7D%5D%7D";
        assert_eq!(
            document(encoded, &log, "test"),
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/a+b%"}]})
        );
        let plain = r#"{"Version":"2012-10-17","Statement":[{"Sid":"100%"}]}"#;
        assert_eq!(document(plain, &log, "test")["Statement"][0]["Sid"], "100%");
        assert_eq!(log.warnings_json(), json!([]));
        assert_eq!(document("not json", &log, "p"), json!("not json"));
        assert_eq!(
            log.warnings_json(),
            json!(["p: the policy document is not JSON; recorded as text"])
        );
    }
}
