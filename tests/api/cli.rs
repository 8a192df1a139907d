//! The `latchkey` binary: `migrate` and `user create`, against the database a server then uses.

use std::{io::Write, process::Stdio};

use latchkey::config::Config;
use reqwest::StatusCode;

use crate::helpers::{PASSWORD, expect_error, expect_json};

/// Runs the binary and waits for it off the runtime's thread: a server under test runs on that thread, and
/// must go on answering (and finish the transaction it may hold) while the command waits for the database.
async fn latchkey(dir: &std::path::Path, args: &[&str], stdin: &str) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_latchkey"));
    command
        .args(args)
        .current_dir(dir)
        .env("LATCHKEY_ARGON2_MEMORY_KIB", "1024")
        .env("LATCHKEY_ARGON2_ITERATIONS", "1")
        .env("LATCHKEY_DATABASE_URL", format!("sqlite://{}", dir.join("cli.db").display()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let stdin = stdin.to_string();
    tokio::task::spawn_blocking(move || {
        let mut child = command.spawn().expect("latchkey runs");
        child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
        child.wait_with_output().expect("latchkey exits")
    })
    .await
    .expect("the command's waiter")
}

#[tokio::test]
async fn user_create_makes_an_admin_who_can_log_in() {
    let dir = tempfile::tempdir().unwrap();
    let migrate = latchkey(dir.path(), &["migrate"], "").await;
    assert!(migrate.status.success(), "{}", String::from_utf8_lossy(&migrate.stderr));
    let out = latchkey(
        dir.path(),
        &["user", "create", "--email", "Root@Example.com", "--role", "admin"],
        &format!("{PASSWORD}\n"),
    )
    .await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("root@example.com"));
    // The key file was created next to the database, private to its owner.
    let key = dir.path().join("latchkey.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let weak = latchkey(dir.path(), &["user", "create", "--email", "b@example.com"], "password1234\n").await;
    assert!(!weak.status.success());
    assert!(String::from_utf8_lossy(&weak.stderr).contains("too easy to guess"));
    let dup = latchkey(dir.path(), &["user", "create", "--email", "root@example.com"], &format!("{PASSWORD}\n")).await;
    assert!(!dup.status.success());

    let app = crate::helpers::spawn(crate::helpers::Backend::Sqlite, |c: &mut Config| {
        c.database_url = format!("sqlite://{}", dir.path().join("cli.db").display());
        c.secret_key = latchkey::config::SecretKeySource::File(key.clone());
    })
    .await
    .unwrap();
    let pair = expect_json(app.login("root@example.com", PASSWORD).await, StatusCode::OK).await;
    let me = expect_json(app.me(pair["access_token"].as_str().unwrap()).await, StatusCode::OK).await;
    assert_eq!(me["role"], "admin");
    expect_error(app.login("b@example.com", "password1234").await, StatusCode::UNAUTHORIZED, "invalid_credentials")
        .await;
    app.finish().await;
}

#[tokio::test]
async fn a_database_opened_with_another_key_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("k.db").display());
    let first = crate::helpers::spawn(crate::helpers::Backend::Sqlite, |c: &mut Config| c.database_url = url.clone())
        .await
        .unwrap();
    first.finish().await;
    let mut config = Config { database_url: url, bind: "127.0.0.1:0".parse().unwrap(), ..Config::default() };
    config.secret_key = latchkey::config::SecretKeySource::Inline(zeroize::Zeroizing::new([3u8; 32]));
    let err = latchkey::app::Application::build(config).await.err().expect("refused");
    assert!(format!("{err:#}").contains("does not open the signing key"), "{err:#}");
}

#[tokio::test]
async fn operators_manage_accounts_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let run = async |args: &[&str], stdin: &str| {
        let out = latchkey(dir.path(), args, stdin).await;
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    run(&["user", "create", "--email", "ed@example.com", "--username", "eddie"], &format!("{PASSWORD}\n")).await;
    run(&["user", "set-role", "eddie", "editor"], "").await;
    assert!(run(&["user", "list", "--query", "ed@"], "").await.contains("\teditor\tactive"));
    run(&["user", "deactivate", "ed@example.com"], "").await;
    assert!(run(&["user", "list"], "").await.contains("\tdeactivated"));

    let key = dir.path().join("latchkey.key");
    let db = format!("sqlite://{}", dir.path().join("cli.db").display());
    let app = crate::helpers::spawn(crate::helpers::Backend::Sqlite, |c: &mut Config| {
        c.database_url = db.clone();
        c.secret_key = latchkey::config::SecretKeySource::File(key.clone());
    })
    .await
    .unwrap();
    expect_error(app.login("eddie", PASSWORD).await, StatusCode::FORBIDDEN, "inactive_user").await;
    run(&["user", "reactivate", "eddie"], "").await;
    for _ in 0..5 {
        app.login("eddie", "not the password at all").await;
    }
    expect_error(app.login("eddie", PASSWORD).await, StatusCode::TOO_MANY_REQUESTS, "account_locked").await;
    run(&["user", "unlock", "eddie"], "").await;
    let pair = expect_json(app.login("eddie", PASSWORD).await, StatusCode::OK).await;
    assert_eq!(
        expect_json(app.me(pair["access_token"].as_str().unwrap()).await, StatusCode::OK).await["role"],
        "editor"
    );
    run(&["user", "reset-mfa", "eddie"], "").await;
    let unknown = latchkey(dir.path(), &["user", "unlock", "nobody"], "").await;
    assert!(!unknown.status.success());
    app.finish().await;
}

/// `latchkey rules check` validates a rules file; `rules explain` says which rule decides, for an account.
#[tokio::test]
async fn rules_check_and_explain() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        "default_policy = \"deny\"\n\n[[rules]]\nhosts = [\"*.example.com\"]\npaths = [\"/admin\"]\npolicy = \"mfa\"\nroles = [\"admin\"]\n",
    )
    .unwrap();
    let rules = rules.to_str().unwrap();
    let out = latchkey(dir.path(), &["rules", "check", rules], "").await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid; rules: 1, default policy: deny"));

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[[rules]]\nhosts = [\"a.example.com:8080\"]\npolicy = \"bypass\"\n").unwrap();
    let out = latchkey(dir.path(), &["rules", "check", bad.to_str().unwrap()], "").await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 1: \"a.example.com:8080\" is not a host name"));

    let created = latchkey(
        dir.path(),
        &["user", "create", "--email", "boss@example.com", "--role", "admin"],
        &format!("{PASSWORD}\n"),
    )
    .await;
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let explain = async |extra: &[&str]| {
        let mut args = vec!["rules", "explain", rules, "https://app.example.com/admin/users"];
        args.extend_from_slice(extra);
        String::from_utf8_lossy(&latchkey(dir.path(), &args, "").await.stdout).into_owned()
    };
    let anonymous = explain(&[]).await;
    assert!(anonymous.starts_with("SignIn by the rule at line 3 (policy mfa)"), "{anonymous}");
    assert!(explain(&["--user", "boss@example.com"]).await.starts_with("StepUp by the rule at line 3"));
    assert!(explain(&["--user", "boss@example.com", "--mfa"]).await.starts_with("Allow by the rule at line 3"));
}

/// `latchkey client ...` and `latchkey keys rotate`, as an operator registers an application.
#[tokio::test]
async fn operators_register_clients_and_rotate_keys() {
    let dir = tempfile::tempdir().unwrap();
    let json = |out: std::process::Output| -> serde_json::Value {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("JSON on stdout")
    };
    let args =
        ["client", "create", "--name", "Grafana", "--redirect-uri", "https://grafana.example/login/generic_oauth"];
    let created = json(latchkey(dir.path(), &args, "").await);
    let id = created["client_id"].as_str().unwrap().to_string();
    assert!(created["client_secret"].as_str().unwrap().len() >= 43);
    assert_eq!(created["grant_types"], serde_json::json!(["authorization_code", "refresh_token"]));
    let public = json(
        latchkey(
            dir.path(),
            &[
                "client",
                "create",
                "--name",
                "SPA",
                "--public",
                "--redirect-uri",
                "http://localhost:3000/cb",
                "--id-token-alg",
                "EdDSA",
            ],
            "",
        )
        .await,
    );
    assert!(public.get("client_secret").is_none());
    assert_eq!((&public["require_pkce"], &public["id_token_signed_response_alg"]), (&true.into(), &"EdDSA".into()));
    let refused =
        latchkey(dir.path(), &["client", "create", "--name", "Bad", "--redirect-uri", "http://app.example/cb"], "")
            .await;
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("redirect_uris"));
    let listed = json(latchkey(dir.path(), &["client", "list"], "").await);
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert!(listed.as_array().unwrap().iter().all(|c| c.get("client_secret").is_none()));
    let rotated = json(latchkey(dir.path(), &["client", "rotate-secret", &id], "").await);
    assert_ne!(rotated["client_secret"], created["client_secret"]);
    assert_eq!(json(latchkey(dir.path(), &["client", "show", &id], "").await)["name"], "Grafana");
    json(latchkey(dir.path(), &["client", "delete", &id], "").await);
    assert!(!latchkey(dir.path(), &["client", "show", &id], "").await.status.success());
    let keys = json(latchkey(dir.path(), &["keys", "rotate"], "").await);
    assert_eq!(keys["current"].as_array().unwrap().len(), 3);
}
