//! Tests of the redaction rules.

use super::*;

fn redactor() -> Redactor {
    Redactor::new(Vec::new(), [7; 32])
}

fn redacted(text: &str) -> String {
    String::from_utf8(redactor().redact(text.as_bytes()).0).unwrap()
}

#[test]
fn key_words_are_recognised_without_catching_every_key_substring() {
    for key in [
        "ssh_key",
        "encryptionKey",
        "Key",
        "KEY",
        "key-file",
        "aws_secret",
        "DB_PASSWORD",
    ] {
        assert!(redactor().key_is_secret(key.as_bytes()), "{key}");
    }
    for key in [
        "PubkeyAuthentication",
        "AuthorizedKeysFile",
        "monkey",
        "KeyboardLayout",
        "user",
    ] {
        assert!(!redactor().key_is_secret(key.as_bytes()), "{key}");
    }
}

#[test]
fn common_config_syntaxes_are_redacted() {
    let m = |v: &str| String::from_utf8(redactor().marker(v.as_bytes())).unwrap();
    assert_eq!(
        redacted("password = hunter2\n"),
        format!("password = {}\n", m("hunter2"))
    );
    assert_eq!(
        redacted("  \"api_key\": \"abc\",\n"),
        format!("  \"api_key\": \"{}\",\n", m("abc"))
    );
    assert_eq!(
        redacted("export AWS_SECRET_ACCESS_KEY='s3'"),
        format!("export AWS_SECRET_ACCESS_KEY='{}'", m("s3"))
    );
    assert_eq!(
        redacted("# token: old1\r\n"),
        format!("# token: {}\r\n", m("old1"))
    );
    assert_eq!(
        redacted("ExecStart=/bin/app --token=t0k serve"),
        format!("ExecStart=/bin/app --token={} serve", m("t0k"))
    );
    assert_eq!(
        redacted("dsn = Server=db;Password=pw1;"),
        format!("dsn = Server=db;Password={};", m("pw1"))
    );
    assert_eq!(
        redacted("dsn = Password=pw1"),
        format!("dsn = Password={}", m("pw1"))
    );
    assert_eq!(
        redacted("<user name=\"a\" password=\"p 3\"/>"),
        format!("<user name=\"a\" password=\"{}\"/>", m("p 3"))
    );
    assert_eq!(
        redacted("<password>x1</password>"),
        format!("<password>{}</password>", m("x1"))
    );
    assert_eq!(
        redacted("url: postgres://app:pw2@db/x"),
        format!("url: postgres://app:{}@db/x", m("pw2"))
    );
}

#[test]
fn password_hashes_are_redacted_wherever_they_are() {
    let shadow = "alice:$6$rG8kTz1Q$Jd3nV0pXyC7aW2sLq9mE4uB6tR1hZ8fK5gN3oP7iY0xM2cV4bA9sD6fG1hJ3kL5zX7qW9eR2tY4uI6oP8aS0d.:19722:0:99999:7:::";
    let out = redacted(shadow);
    assert!(
        out.starts_with("alice:[REDACTED sha256:") && out.ends_with("]:19722:0:99999:7:::"),
        "{out}"
    );
    let yescrypt = redacted("root:$y$j9T$Qm7y5Yb0bKp2lQx1a9Xz1/$7cVv2rE9yq3lWm8ZfH0aJq4tYpN6sLkB2xRdU1oG5iC:19640::::::");
    assert!(!yescrypt.contains("7cVv2rE9"), "{yescrypt}");
    let htpasswd = redacted("admin:$2y$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy");
    assert!(!htpasswd.contains("N9qo8uLO"), "{htpasswd}");
    assert_eq!(redacted("echo \"$1$2\" $6$x"), "echo \"$1$2\" $6$x");
}

#[test]
fn harmless_values_stay_readable() {
    for line in [
        "PasswordAuthentication no",
        "HostKey /etc/ssh/ssh_host_ed25519_key",
        "AuthorizedKeysFile .ssh/authorized_keys",
        "PermitRootLogin prohibit-password",
        "password:",
    ] {
        assert_eq!(redacted(line), line);
    }
}

#[test]
fn private_key_blocks_lose_their_body() {
    let pem = "a=1\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE=\nAAAA\n-----END OPENSSH PRIVATE KEY-----\nz=2\n";
    let (out, count) = redactor().redact(pem.as_bytes());
    let out = String::from_utf8(out).unwrap();
    assert_eq!(count, 1);
    assert!(!out.contains("b3BlbnNzaC1rZXktdjE"));
    assert!(out.starts_with("a=1\n-----BEGIN OPENSSH PRIVATE KEY-----\n[REDACTED sha256:"));
    assert!(out.ends_with("]\n-----END OPENSSH PRIVATE KEY-----\nz=2\n"));
}

#[test]
fn user_patterns_extend_the_secret_keys() {
    let r = Redactor::new(vec![regex::Regex::new("(?i)^pin$").unwrap()], [0; 32]);
    let (out, count) = r.redact(b"pin 4321\n");
    assert_eq!(count, 1);
    assert!(!String::from_utf8(out).unwrap().contains("4321"));
}

/// `text` redacted, checking that none of `secrets` is left and that there are `markers`.
fn assert_hidden(text: &str, secrets: &[&str], markers: usize) -> String {
    let (out, count) = redactor().redact(text.as_bytes());
    let out = String::from_utf8(out).unwrap();
    for secret in secrets {
        assert!(!out.contains(secret), "{secret} left in {out}");
    }
    assert_eq!(out.matches("[REDACTED sha256:").count(), markers, "{out}");
    assert_eq!(count, markers, "{out}");
    out
}

#[test]
fn compact_json_values_are_redacted() {
    let out = assert_hidden(
        r#"{"db":{"password":"hunter2","user":"app"},"api":{"token":"tok-abc123"},"n":{"secret":42}}"#,
        &["hunter2", "tok-abc123", "42"],
        3,
    );
    assert!(out.contains(r#""user":"app""#), "{out}");
    assert!(
        out.starts_with(r#"{"db":{"password":"[REDACTED sha256:"#),
        "{out}"
    );
    assert!(out.ends_with("]}}"), "the closing braces stay: {out}");
    // An object under a secret key is not a value: its keys are looked at in turn.
    let out = assert_hidden(r#"{"secret":{"token":"t1","kind":"k"}}"#, &["t1"], 1);
    assert!(out.contains(r#""kind":"k""#), "{out}");
}

#[test]
fn yaml_block_scalars_under_secret_keys_are_redacted() {
    let text = "db:\n  password: |\n    hunter2\n    second line\n\n  user: app\nnote: |\n  kept\n";
    let out = assert_hidden(text, &["hunter2", "second line"], 1);
    assert!(
        out.starts_with("db:\n  password: |\n    [REDACTED sha256:"),
        "{out}"
    );
    assert!(
        out.ends_with("]\n\n  user: app\nnote: |\n  kept\n"),
        "{out}"
    );
    // Folded, chomped, at the end of the file, in a list item.
    assert_hidden("- token: >-\n    abc\n    def", &["abc", "def"], 1);
    let out = assert_hidden("- api_key: |2\n    xyz\n  name: n\n", &["xyz"], 1);
    assert!(out.ends_with("\n  name: n\n"), "{out}");
    // A secret key whose block is empty changes nothing.
    assert_eq!(redacted("password: |\nuser: x\n"), "password: |\nuser: x\n");
}

#[test]
fn pass_is_a_secret_word_of_its_own() {
    assert_hidden(
        "[global]\nrepo1-cipher-pass=zWaf6XtpjIVZC5444yXB\nrepo1-cipher-type=aes-256-cbc\n",
        &["zWaf6XtpjIVZC5444yXB"],
        1,
    );
    assert_hidden(
        "[remote]\ntype = sftp\npass = obscured123\n",
        &["obscured123"],
        1,
    );
    assert_hidden("DB_PASS=s3cr3t\n", &["s3cr3t"], 1);
    for line in [
        "PASS_MAX_DAYS 99999",
        "location / { proxy_pass http://127.0.0.1:8080; }",
        "ProxyPass /app http://backend/app",
        "bypass = 1",
        "passive = 1",
    ] {
        assert_eq!(redacted(line), line);
    }
}

#[test]
fn pgpass_files_lose_their_password_field() {
    let text =
        "# host:port:db:user:password\ndb.internal:5432:*:backup:S3cr3t\\:pw\n*:*:*:*:other\n";
    let r = redactor();
    for name in [".pgpass", "backup.pgpass"] {
        let (out, count) = r.redact_file(text.as_bytes(), Path::new(name));
        let out = String::from_utf8(out).unwrap();
        assert_eq!(count, 2, "{out}");
        assert!(!out.contains("S3cr3t") && !out.contains("other"), "{out}");
        assert!(
            out.contains("db.internal:5432:*:backup:[REDACTED sha256:"),
            "{out}"
        );
        assert!(out.starts_with("# host:port:db:user:password\n"), "{out}");
    }
    // The same line in another file is not taken for a password file.
    let (out, _) = r.redact_file(text.as_bytes(), Path::new("pgpass.txt"));
    assert!(String::from_utf8(out).unwrap().contains("other"));
}

#[test]
fn a_path_like_value_is_a_secret_under_a_password_key() {
    assert_hidden("password=/Passw0rd\n", &["Passw0rd"], 1);
    assert_hidden("token: /abc/def\n", &["abc/def"], 1);
    assert_hidden("api_key = /K7MDENG/bPxRfiCY\n", &["K7MDENG"], 1);
    assert_hidden("--password=/Passw0rd", &["Passw0rd"], 1);
    // Keys that name a file keep their path.
    for line in [
        "PasswordFile /etc/app/password",
        "HostKey /etc/ssh/ssh_host_ed25519_key",
        "ssl_key: /etc/ssl/private/web.key",
        "password_file = /run/secrets/db",
    ] {
        assert_eq!(redacted(line), line);
    }
    // A key word alone does not keep a base64 value that starts with a slash.
    assert_hidden("encryption_key: /Qm9ndXM+a2V5\n", &["Qm9ndXM"], 1);
}

#[test]
fn agent_private_keys_are_redacted_whole() {
    let key = "PRIVATE+KEY+web-01+5a3b9c1d+AQj0o5ZqKzXcYd8mNnW1Jg7bK3sPpQ8uT2vR6wE4yH9=";
    let out = assert_hidden(&format!("{key}\n"), &["AQj0o5", "web-01"], 1);
    assert!(
        out.starts_with("[REDACTED sha256:") && out.ends_with("]\n"),
        "{out}"
    );
    assert_hidden(&format!("  {key}"), &["AQj0o5"], 1);
    let out = assert_hidden(&format!("note: copied {key} here\n"), &["AQj0o5"], 1);
    assert!(out.ends_with("] here\n"), "{out}");
}

#[test]
fn command_lines_lose_their_secrets() {
    let argv: Vec<String> = [
        "mysqldump",
        "-uroot",
        "-pS3cretPw",
        "--password=hunter2",
        "--token",
        "tok-9f8e",
        "token=abc123",
        "--password-file",
        "pw.txt",
        "mysql -pInner1 --password 'two words' db",
        "sh -c 'mysql -pNested2 db'",
        "-password",
        "java-style",
        "app_db",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = redactor().redact_argv(&argv);
    let joined = out.join(" ");
    for secret in [
        "S3cretPw",
        "hunter2",
        "tok-9f8e",
        "abc123",
        "Inner1",
        "two words",
        "Nested2",
        "java-style",
    ] {
        assert!(!joined.contains(secret), "{secret} left in {joined}");
    }
    assert_eq!(out[0], "mysqldump");
    assert_eq!(out[1], "-uroot");
    assert!(out[2].starts_with("-p[REDACTED sha256:"), "{}", out[2]);
    assert!(
        out[3].starts_with("--password=[REDACTED sha256:"),
        "{}",
        out[3]
    );
    assert_eq!(out[4], "--token");
    assert_eq!(out[7], "--password-file");
    assert_eq!(out[8], "pw.txt");
    assert!(
        out[9].starts_with("mysql -p[REDACTED sha256:"),
        "{}",
        out[9]
    );
    assert!(out[9].ends_with("' db"), "{}", out[9]);
    assert!(out[10].ends_with(" db'"), "{}", out[10]);
    assert_eq!(out[13], "app_db");
}

#[test]
fn command_output_is_redacted_word_by_word() {
    let r = redactor();
    let text = b"error: can't connect\nretry: backup --token tok-xyz --user bob\n\
                 mysql -p'two words' db\nunclosed 'quote --password pw9\n";
    let out = String::from_utf8(r.redact_command_text(text)).unwrap();
    for secret in ["tok-xyz", "two words", "pw9"] {
        assert!(!out.contains(secret), "{secret} left in {out}");
    }
    assert!(
        out.starts_with("error: can't connect\nretry: backup --token [REDACTED"),
        "{out}"
    );
    assert!(out.contains("] --user bob\n"), "{out}");
}
