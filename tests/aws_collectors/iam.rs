//! `aws_iam` against moto: paging, the exact items of seeded identities, the credential report.

use super::refusing::RefusingProxy;
use super::{assert_no_secret, collect_ok, find, iam_server, items, recent, seed, settings};
use serde_json::{json, Value};

const ACCOUNT: &str = "123456789012";
/// Roles besides backup-role: 201 in all, so ListRoles (100 a page) takes three pages. (moto
/// 5.2.1 pages ListRoles and ListPolicies as AWS does, but answers ListUsers in one page
/// whatever the count, so roles are what shows the paging.)
const EXTRA_ROLES: &str = "200";

fn arn(resource: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:{resource}")
}

#[test]
fn every_role_is_collected_over_several_pages_and_each_identity_exactly() {
    let server = iam_server();
    let seeded = seed(&["iam", &server.endpoint(), EXTRA_ROLES]);
    let snapshot = collect_ok("aws_iam", &settings(&server.endpoint(), ""));
    let items = items(&snapshot);

    // No secret the seed made (the key's secret, the console password) is anywhere.
    for secret in ["secret_access_key", "password"] {
        let secret = seeded[secret]
            .as_str()
            .expect("the seed prints its secrets");
        assert_no_secret(&snapshot, secret);
    }

    let details = &snapshot.details;
    assert_eq!(details["api_calls"]["ListRoles"], 3, "{details}");
    assert_eq!(details["api_calls"]["ListRolePolicies"], 201);
    assert_eq!(details["api_calls"]["GetLoginProfile"], 2);
    assert_eq!(
        details["counts"],
        json!({"iam_group": 1, "iam_policy": 2, "iam_role": 201, "iam_user": 2})
    );
    assert_eq!(details["region"], "us-east-1");
    assert_eq!(details["warnings"], json!([]));
    assert_eq!(details["credential_report"]["status"], "included");
    assert_eq!(details["credential_report"]["rows"], 2);
    for i in 0..200 {
        let role = find(&items, "iam_role", &arn(&format!("role/role-{i:03}")));
        assert_eq!(
            role["trust_policy"]["Statement"][0]["Action"],
            "sts:AssumeRole"
        );
    }

    let alice = find(&items, "iam_user", &arn("user/staff/alice"));
    let report = &alice["credential_report"];
    assert_eq!(report["password_enabled"], "true", "{report}");
    assert_eq!(report["mfa_active"], "true");
    assert_eq!(report["access_key_1_active"], "true");
    assert_eq!(report["access_key_2_active"], "false");
    assert!(report.get("user").is_none() && report.get("arn").is_none());
    let key_id = seeded["access_key_id"].as_str().unwrap();
    let expected = json!({
        "type": "iam_user",
        "id": arn("user/staff/alice"),
        "arn": arn("user/staff/alice"),
        "name": "alice",
        "user_id": alice["user_id"].as_str().filter(|id| !id.is_empty()).expect("a user id"),
        "path": "/staff/",
        "create_date": recent(&alice["create_date"]),
        "password_last_used": null,
        "groups": ["admins"],
        "inline_policies": [{"name": "no-iam", "document": {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Deny", "Action": "iam:*", "Resource": "*"}],
        }}],
        "attached_policies": [{"name": "deploy", "arn": arn("policy/app/deploy")}],
        "access_keys": [{
            "access_key_id": key_id,
            "status": "Active",
            "create_date": recent(&alice["access_keys"][0]["create_date"]),
            "age_days": 0,
            "last_used": {"date": null, "service_name": "N/A", "region": "N/A"},
        }],
        "mfa_devices": [{
            "serial_number": seeded["mfa_serial"],
            "enable_date": recent(&alice["mfa_devices"][0]["enable_date"]),
        }],
        "console_access": {
            "enabled": true,
            "create_date": recent(&alice["console_access"]["create_date"]),
            "password_reset_required": true,
        },
        "credential_report": report,
    });
    assert_eq!(alice, &expected);

    let bob = find(&items, "iam_user", &arn("user/bob"));
    for empty in [
        "groups",
        "inline_policies",
        "attached_policies",
        "access_keys",
        "mfa_devices",
    ] {
        assert_eq!(bob[empty], json!([]), "bob's {empty}");
    }
    assert_eq!(
        bob["console_access"],
        json!({"enabled": false, "create_date": null, "password_reset_required": null})
    );
    assert_eq!(bob["credential_report"]["password_enabled"], "false");

    let admins = find(&items, "iam_group", &arn("group/admins"));
    assert_eq!(
        admins,
        &json!({
            "type": "iam_group",
            "id": arn("group/admins"),
            "arn": arn("group/admins"),
            "name": "admins",
            "group_id": admins["group_id"].as_str().filter(|id| !id.is_empty()).expect("an id"),
            "path": "/",
            "create_date": recent(&admins["create_date"]),
            "members": ["alice"],
            "inline_policies": [{"name": "describe", "document": {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"}],
            }}],
            "attached_policies": [{
                "name": "ReadOnlyAccess",
                "arn": "arn:aws:iam::aws:policy/ReadOnlyAccess",
            }],
        })
    );

    let role = find(&items, "iam_role", &arn("role/backup-role"));
    assert_eq!(
        role,
        &json!({
            "type": "iam_role",
            "id": arn("role/backup-role"),
            "arn": arn("role/backup-role"),
            "name": "backup-role",
            "role_id": role["role_id"].as_str().filter(|id| !id.is_empty()).expect("an id"),
            "path": "/",
            "create_date": recent(&role["create_date"]),
            "description": "AWS Backup service role",
            "max_session_duration": 7200,
            "trust_policy": {
                "Version": "2012-10-17",
                "Statement": [{
                    "Effect": "Allow",
                    "Principal": {"Service": "backup.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }],
            },
            "inline_policies": [{"name": "backup", "document": {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "backup:*", "Resource": "*"}],
            }}],
            "attached_policies": [{"name": "deploy", "arn": arn("policy/app/deploy")}],
        })
    );

    // The customer managed policy, whose document needed URL-encoding.
    let deploy = find(&items, "iam_policy", &arn("policy/app/deploy"));
    assert_eq!(
        deploy,
        &json!({
            "type": "iam_policy",
            "id": arn("policy/app/deploy"),
            "arn": arn("policy/app/deploy"),
            "name": "deploy",
            "policy_id": deploy["policy_id"].as_str().filter(|id| !id.is_empty()).expect("an id"),
            "path": "/app/",
            "aws_managed": false,
            "default_version_id": "v1",
            "attachment_count": 2,
            "permissions_boundary_usage_count": deploy["permissions_boundary_usage_count"],
            "is_attachable": true,
            "create_date": recent(&deploy["create_date"]),
            "update_date": deploy["update_date"],
            "document": {
                "Version": "2012-10-17",
                "Statement": [{
                    "Sid": "Deploy100%",
                    "Effect": "Allow",
                    "Action": ["s3:PutObject", "s3:GetObject"],
                    "Resource": "arn:aws:s3:::releases/a b+c&d/*",
                }],
            },
        })
    );
    // Only the AWS managed policy that is attached is there, with its document.
    let read_only = find(
        &items,
        "iam_policy",
        "arn:aws:iam::aws:policy/ReadOnlyAccess",
    );
    assert_eq!(read_only["aws_managed"], true);
    assert_eq!(read_only["attachment_count"], 1);
    assert!(read_only["document"]["Statement"].is_array(), "{read_only}");
}

#[test]
fn a_refused_credential_report_is_a_warning_and_the_rest_is_collected() {
    let server = iam_server();
    seed(&["iam", &server.endpoint(), "0"]);
    let proxy = RefusingProxy::start(
        server.port(),
        &["GenerateCredentialReport", "GetCredentialReport"],
    );
    let snapshot = collect_ok("aws_iam", &settings(&proxy.endpoint(), ""));
    let items = items(&snapshot);
    assert!(proxy.refused() >= 1, "the proxy refused the report");
    let report = &snapshot.details["credential_report"];
    assert_eq!(report["status"], "unavailable", "{report}");
    let reason = report["reason"].as_str().unwrap();
    assert!(
        reason.contains("GenerateCredentialReport") && reason.contains("HTTP 403 AccessDenied"),
        "{reason}"
    );
    let warnings = snapshot.details["warnings"].as_array().unwrap();
    assert!(
        warnings.iter().any(|w| w
            .as_str()
            .unwrap()
            .starts_with("credential report unavailable: AWS Generate")),
        "{warnings:?}"
    );
    let alice = find(&items, "iam_user", &arn("user/staff/alice"));
    assert_eq!(alice["credential_report"], Value::Null);
    assert_eq!(alice["mfa_devices"].as_array().unwrap().len(), 1);
    assert_eq!(snapshot.details["counts"]["iam_user"], 2);

    // Switched off, it is not asked for at all.
    let before = proxy.refused();
    let snapshot = collect_ok(
        "aws_iam",
        &settings(&proxy.endpoint(), "credential_report = false"),
    );
    assert_eq!(
        snapshot.details["credential_report"],
        json!({"status": "disabled"})
    );
    assert_eq!(snapshot.details["warnings"], json!([]));
    assert_eq!(proxy.refused(), before);
}
