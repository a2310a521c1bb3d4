//! Users (with access keys, MFA devices and console access), groups (with members) and roles
//! (with their trust policy), each with its inline and attached policies.

use super::policies::{self, Holder};
use super::Iam;
use crate::aws::{all_pages, error_code, sdk_error, timestamp};
use crate::CollectError;
use aws_sdk_iam::types::{Group, Role, User};
use serde_json::{json, Value};

const SECONDS_PER_DAY: i64 = 86_400;

/// An `iam_user` item, without `groups` and `credential_report` (added from the groups'
/// members and the report).
pub(super) async fn user(iam: &Iam, user: User) -> Result<Value, CollectError> {
    let name = user.user_name.as_str();
    let resource = format!("user {name}");
    let inline_policies = policies::inline(iam, Holder::User, name).await?;
    let attached_policies = policies::attached(iam, Holder::User, name).await?;
    let access_keys = access_keys(iam, name, &resource).await?;
    let (client, log) = (&iam.client, &*iam.log);
    let mut mfa: Vec<Value> = all_pages!(
        log,
        "ListMFADevices",
        &resource,
        client.list_mfa_devices().user_name(name),
        |page| page.mfa_devices.into_iter().map(|d| json!({
            "serial_number": d.serial_number,
            "enable_date": timestamp(Some(&d.enable_date)),
        }))
    );
    mfa.sort_by(|a, b| {
        a["serial_number"]
            .as_str()
            .cmp(&b["serial_number"].as_str())
    });
    let console_access = console_access(iam, name, &resource).await?;
    Ok(json!({
        "type": "iam_user",
        "id": user.arn,
        "arn": user.arn,
        "name": user.user_name,
        "user_id": user.user_id,
        "path": user.path,
        "create_date": timestamp(Some(&user.create_date)),
        "password_last_used": timestamp(user.password_last_used.as_ref()),
        "inline_policies": inline_policies,
        "attached_policies": attached_policies,
        "access_keys": access_keys,
        "mfa_devices": mfa,
        "console_access": console_access,
    }))
}

/// The user's access keys (ids only: a secret access key is only ever shown by
/// CreateAccessKey), with their age at the run's start and their last use.
async fn access_keys(iam: &Iam, name: &str, resource: &str) -> Result<Vec<Value>, CollectError> {
    let (client, log) = (&iam.client, &*iam.log);
    let keys = all_pages!(
        log,
        "ListAccessKeys",
        resource,
        client.list_access_keys().user_name(name),
        |page| page.access_key_metadata
    );
    let mut items = Vec::new();
    for key in keys {
        let id = key.access_key_id.unwrap_or_default();
        let out = client
            .get_access_key_last_used()
            .access_key_id(&id)
            .send()
            .await
            .map_err(|e| {
                sdk_error(
                    "GetAccessKeyLastUsed",
                    &format!("{resource} access key {id}"),
                    &e,
                )
            })?;
        log.call("GetAccessKeyLastUsed");
        let last_used = out.access_key_last_used.map(|used| {
            json!({
                "date": timestamp(used.last_used_date.as_ref()),
                "service_name": used.service_name,
                "region": used.region,
            })
        });
        let age_days = key
            .create_date
            .map(|created| ((iam.started - created.secs()).max(0)) / SECONDS_PER_DAY);
        items.push(json!({
            "access_key_id": id,
            "status": key.status.map(|s| s.as_str().to_owned()),
            "create_date": timestamp(key.create_date.as_ref()),
            "age_days": age_days,
            "last_used": last_used,
        }));
    }
    items.sort_by(|a, b| {
        a["access_key_id"]
            .as_str()
            .cmp(&b["access_key_id"].as_str())
    });
    Ok(items)
}

/// Whether the user can sign in to the console: a login profile exists. Its password is
/// never returned by IAM, and nothing asks for it.
async fn console_access(iam: &Iam, name: &str, resource: &str) -> Result<Value, CollectError> {
    match iam.client.get_login_profile().user_name(name).send().await {
        Ok(out) => {
            iam.log.call("GetLoginProfile");
            let profile = out.login_profile;
            Ok(json!({
                "enabled": true,
                "create_date": timestamp(profile.as_ref().map(|p| &p.create_date)),
                "password_reset_required": profile.map(|p| p.password_reset_required),
            }))
        }
        Err(err) if error_code(&err) == Some("NoSuchEntity") => {
            iam.log.call("GetLoginProfile");
            Ok(json!({ "enabled": false, "create_date": null, "password_reset_required": null }))
        }
        Err(err) => Err(sdk_error("GetLoginProfile", resource, &err)),
    }
}

/// An `iam_group` item with its members (user names, sorted).
pub(super) async fn group(iam: &Iam, group: Group) -> Result<Value, CollectError> {
    let name = group.group_name.as_str();
    let resource = format!("group {name}");
    let (client, log) = (&iam.client, &*iam.log);
    let mut members: Vec<String> = all_pages!(
        log,
        "GetGroup",
        &resource,
        client.get_group().group_name(name),
        |page| page.users.into_iter().map(|u| u.user_name)
    );
    members.sort();
    members.dedup();
    let inline_policies = policies::inline(iam, Holder::Group, name).await?;
    let attached_policies = policies::attached(iam, Holder::Group, name).await?;
    Ok(json!({
        "type": "iam_group",
        "id": group.arn,
        "arn": group.arn,
        "name": group.group_name,
        "group_id": group.group_id,
        "path": group.path,
        "create_date": timestamp(Some(&group.create_date)),
        "members": members,
        "inline_policies": inline_policies,
        "attached_policies": attached_policies,
    }))
}

/// An `iam_role` item with its trust policy (who may assume it).
pub(super) async fn role(iam: &Iam, role: Role) -> Result<Value, CollectError> {
    let name = role.role_name.as_str();
    let what = format!("role {name} trust policy");
    let trust_policy = role
        .assume_role_policy_document
        .as_deref()
        .map(|doc| policies::document(doc, &iam.log, &what));
    let inline_policies = policies::inline(iam, Holder::Role, name).await?;
    let attached_policies = policies::attached(iam, Holder::Role, name).await?;
    Ok(json!({
        "type": "iam_role",
        "id": role.arn,
        "arn": role.arn,
        "name": role.role_name,
        "role_id": role.role_id,
        "path": role.path,
        "create_date": timestamp(Some(&role.create_date)),
        "description": role.description,
        "max_session_duration": role.max_session_duration,
        "trust_policy": trust_policy,
        "inline_policies": inline_policies,
        "attached_policies": attached_policies,
    }))
}
