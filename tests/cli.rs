//! The `sapa` command as an operator types it: managing accounts against a database file,
//! and output piped into a reader that stops early (`sapa ... | head`).

use std::process::{Command, Output, Stdio};

fn sapa(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sapa"))
        .args(args)
        .env_remove("SAPA_PASSWORD")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn an_operator_adds_resets_disables_and_enables_an_account() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("s.db").display());
    let db = db.as_str();
    let ok = |args: &[&str]| {
        let out = sapa(args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    ok(&[
        "user",
        "add",
        "--db",
        db,
        "--name",
        "ana",
        "--role",
        "agent",
        "--password",
        "a",
    ]);
    ok(&[
        "user",
        "add",
        "--db",
        db,
        "--name",
        "sri",
        "--role",
        "supervisor",
        "--password",
        "s",
    ]);
    ok(&[
        "user",
        "set-password",
        "--db",
        db,
        "--name",
        "ana",
        "--password",
        "b",
    ]);
    ok(&["user", "disable", "--db", db, "--name", "ana"]);
    let list = ok(&["user", "list", "--db", db]);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 2, "{list}");
    assert!(
        lines[0].starts_with("ana\tAgent\tdisabled since 20"),
        "{list}"
    );
    assert_eq!(lines[1], "sri\tSupervisor");
    ok(&["user", "enable", "--db", db, "--name", "ana"]);
    assert_eq!(
        ok(&["user", "list", "--db", db]).lines().next(),
        Some("ana\tAgent")
    );

    // Mistakes get one clear line and a failing exit, never a panic.
    for args in [
        &["user", "disable", "--db", db, "--name", "nobody"][..],
        &[
            "user",
            "set-password",
            "--db",
            db,
            "--name",
            "nobody",
            "--password",
            "x",
        ],
        &[
            "user",
            "set-password",
            "--db",
            db,
            "--name",
            "ana",
            "--password",
            "",
        ],
    ] {
        let out = sapa(args);
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stderr.starts_with("sapa: "), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn output_into_a_reader_that_went_away_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("s.db").display());
    sapa(&[
        "user",
        "add",
        "--db",
        &db,
        "--name",
        "ana",
        "--role",
        "agent",
        "--password",
        "a",
    ]);
    // The reader closes its end before `sapa` has opened the database and written.
    let mut child = Command::new(env!("CARGO_BIN_EXE_sapa"))
        .args(["user", "list", "--db", &db])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
}
