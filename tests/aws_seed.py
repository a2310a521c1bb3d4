#!/usr/bin/env python3
"""Seeds a moto server with IAM identities and S3 buckets for tests/aws_collectors.rs (boto3).

Usage:
    aws_seed.py iam ENDPOINT EXTRA_ROLES   the identities below plus EXTRA_ROLES plain roles
    aws_seed.py s3  ENDPOINT               the buckets below

iam: user `alice` (path /staff/) with an inline policy, an attached customer managed policy,
an access key, a virtual MFA device and a login profile (console password, reset required),
member of `admins`; user `bob` with nothing; group `admins`
with an inline policy and the AWS managed ReadOnlyAccess attached; role `backup-role` trusted
by AWS Backup with an inline policy and the customer managed policy attached; the customer
managed policy `deploy` (its document needs URL-encoding: spaces, `+`, `%`, `&`); EXTRA_ROLES
roles `role-000`... with the same trust policy and nothing else. Prints JSON:
{"access_key_id", "secret_access_key", "password", "mfa_serial"}, the secrets for the tests to
look for in the evidence.

s3: `backup-full` (Object Lock, GOVERNANCE 30 days; lifecycle; replication to
`backup-replica`; SSE-KMS with a bucket key), `backup-replica` (versioning only), `plain-a` and
`plain-b` (nothing), `suspended` (versioning suspended). Prints {}.

Credentials and region come from the environment (the tests' aws_env()).
"""

import json
import sys

import boto3
import botocore.config

ACCOUNT = "123456789012"
KMS_KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/0b7e4d64-6a3c-4c6e-9d8a-5f1e2a3b4c5d"
PASSWORD = "Corr3ct-Horse-Battery-Staple!"
DEPLOY_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "Deploy100%",
            "Effect": "Allow",
            "Action": ["s3:PutObject", "s3:GetObject"],
            "Resource": "arn:aws:s3:::releases/a b+c&d/*",
        }
    ],
}
ALICE_INLINE = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Deny", "Action": "iam:*", "Resource": "*"}],
}
ADMINS_INLINE = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"}],
}
TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "backup.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}
ROLE_INLINE = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "backup:*", "Resource": "*"}],
}


def client(service, endpoint):
    config = botocore.config.Config(
        s3={"addressing_style": "path"}, retries={"mode": "standard", "max_attempts": 5}
    )
    return boto3.client(service, endpoint_url=endpoint, config=config)


def seed_iam(endpoint, extra_roles):
    iam = client("iam", endpoint)
    policy_arn = iam.create_policy(
        PolicyName="deploy", Path="/app/", PolicyDocument=json.dumps(DEPLOY_POLICY)
    )["Policy"]["Arn"]

    iam.create_user(UserName="alice", Path="/staff/")
    iam.put_user_policy(
        UserName="alice", PolicyName="no-iam", PolicyDocument=json.dumps(ALICE_INLINE)
    )
    iam.attach_user_policy(UserName="alice", PolicyArn=policy_arn)
    key = iam.create_access_key(UserName="alice")["AccessKey"]
    mfa = iam.create_virtual_mfa_device(VirtualMFADeviceName="alice-phone")["VirtualMFADevice"]
    iam.enable_mfa_device(
        UserName="alice",
        SerialNumber=mfa["SerialNumber"],
        AuthenticationCode1="123456",
        AuthenticationCode2="654321",
    )
    iam.create_login_profile(UserName="alice", Password=PASSWORD, PasswordResetRequired=True)
    # moto 5.2.1's CreateLoginProfile drops PasswordResetRequired; UpdateLoginProfile keeps it.
    iam.update_login_profile(UserName="alice", Password=PASSWORD, PasswordResetRequired=True)
    iam.create_user(UserName="bob")

    iam.create_group(GroupName="admins")
    iam.add_user_to_group(GroupName="admins", UserName="alice")
    iam.put_group_policy(
        GroupName="admins", PolicyName="describe", PolicyDocument=json.dumps(ADMINS_INLINE)
    )
    iam.attach_group_policy(
        GroupName="admins", PolicyArn="arn:aws:iam::aws:policy/ReadOnlyAccess"
    )

    iam.create_role(
        RoleName="backup-role",
        AssumeRolePolicyDocument=json.dumps(TRUST),
        Description="AWS Backup service role",
        MaxSessionDuration=7200,
    )
    iam.put_role_policy(
        RoleName="backup-role", PolicyName="backup", PolicyDocument=json.dumps(ROLE_INLINE)
    )
    iam.attach_role_policy(RoleName="backup-role", PolicyArn=policy_arn)

    for i in range(extra_roles):
        iam.create_role(RoleName=f"role-{i:03}", AssumeRolePolicyDocument=json.dumps(TRUST))
    print(
        json.dumps(
            {
                "access_key_id": key["AccessKeyId"],
                "secret_access_key": key["SecretAccessKey"],
                "password": PASSWORD,
                "mfa_serial": mfa["SerialNumber"],
            }
        )
    )


def seed_s3(endpoint):
    s3 = client("s3", endpoint)
    s3.create_bucket(Bucket="backup-full", ObjectLockEnabledForBucket=True)
    s3.put_bucket_versioning(
        Bucket="backup-full", VersioningConfiguration={"Status": "Enabled"}
    )
    s3.put_object_lock_configuration(
        Bucket="backup-full",
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 30}},
        },
    )
    s3.put_bucket_lifecycle_configuration(
        Bucket="backup-full",
        LifecycleConfiguration={
            "Rules": [
                {
                    "ID": "archive-then-expire",
                    "Status": "Enabled",
                    "Filter": {"Prefix": "db/"},
                    "Transitions": [{"Days": 30, "StorageClass": "GLACIER"}],
                    "Expiration": {"Days": 365},
                    "NoncurrentVersionExpiration": {"NoncurrentDays": 90},
                    "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
                }
            ]
        },
    )
    s3.create_bucket(Bucket="backup-replica")
    s3.put_bucket_versioning(
        Bucket="backup-replica", VersioningConfiguration={"Status": "Enabled"}
    )
    s3.put_bucket_replication(
        Bucket="backup-full",
        ReplicationConfiguration={
            "Role": f"arn:aws:iam::{ACCOUNT}:role/replication",
            "Rules": [
                {
                    "ID": "to-replica",
                    "Priority": 1,
                    "Status": "Enabled",
                    "Filter": {"Prefix": ""},
                    "DeleteMarkerReplication": {"Status": "Disabled"},
                    "Destination": {
                        "Bucket": "arn:aws:s3:::backup-replica",
                        "StorageClass": "STANDARD_IA",
                    },
                }
            ],
        },
    )
    s3.put_bucket_encryption(
        Bucket="backup-full",
        ServerSideEncryptionConfiguration={
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {
                        "SSEAlgorithm": "aws:kms",
                        "KMSMasterKeyID": KMS_KEY,
                    },
                    "BucketKeyEnabled": True,
                }
            ]
        },
    )
    s3.create_bucket(Bucket="plain-a")
    s3.create_bucket(Bucket="plain-b")
    s3.create_bucket(Bucket="suspended")
    s3.put_bucket_versioning(
        Bucket="suspended", VersioningConfiguration={"Status": "Suspended"}
    )
    print("{}")


def main():
    args = sys.argv[1:]
    if len(args) == 3 and args[0] == "iam":
        seed_iam(args[1], int(args[2]))
    elif len(args) == 2 and args[0] == "s3":
        seed_s3(args[1])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
