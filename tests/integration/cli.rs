//! The command line: start-up refuses bad configuration naming the key, every command has
//! help, `migrate` creates the database, the binary runs on the allocator settings it ships.

use std::process::Command;

use reminder_harness::prelude::*;

fn reminder(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_reminder"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("the reminder binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_configuration_stops_start_up_with_one_line_naming_the_key() {
    for (key, value, expected) in [
        (
            "REMINDER__WHATSAPP__PROVIDER",
            "carrier_pigeon",
            "whatsapp.provider",
        ),
        (
            "REMINDER__PRODUCER__SCHEDULE",
            "every morning",
            "producer.schedule",
        ),
        ("REMINDER__AMQP__URL", "rabbit://nowhere", "amqp.url"),
        (
            "REMINDER__DATABASE__URL",
            "mysql://localhost/x",
            "database.url",
        ),
        (
            "REMINDER__PRODUCER__TIMEZONE",
            "Mars/Olympus",
            "producer.timezone",
        ),
        ("REMINDER__HTTP__BIND", "everywhere", "http.bind"),
    ] {
        let (code, _, err) = reminder(&["run"], &[(key, value)]);
        assert_eq!(code, 1, "{key}: {err}");
        assert!(err.contains(expected), "{key}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{key}: {err}");
    }
}

#[test]
fn a_config_file_given_with_config_is_layered_and_checked() {
    let dir = std::env::temp_dir().join(format!("reminder-cli-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    std::fs::write(&file, "[whatsapp]\nprovider = \"cloud_api\"\n").unwrap();
    let (code, _, err) = reminder(&["--config", file.to_str().unwrap(), "migrate"], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("whatsapp.cloud_api.phone_number_id"), "{err}");
    let (code, _, err) = reminder(
        &[
            "--config",
            dir.join("missing.toml").to_str().unwrap(),
            "migrate",
        ],
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("missing.toml"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_binary_runs_on_jemalloc_returning_freed_pages_after_a_second() {
    // jemalloc prints its options at exit when asked to; the binary's own settings come first.
    let (code, _, err) = reminder(&["--version"], &[("_RJEM_MALLOC_CONF", "stats_print:true")]);
    assert_eq!(code, 0);
    assert!(
        err.contains("opt.dirty_decay_ms: 1000 "),
        "jemalloc's dirty pages are not decayed after 1 s: {}",
        err.lines()
            .filter(|l| l.contains("decay_ms"))
            .collect::<Vec<_>>()
            .join("; ")
    );
    assert!(err.contains("opt.muzzy_decay_ms: 0 "));
}

#[test]
fn every_command_has_help() {
    let (code, out, _) = reminder(&["--help"], &[]);
    assert_eq!(code, 0);
    for command in ["run", "migrate", "produce", "report", "dead", "demo"] {
        assert!(out.contains(command), "{command} missing from --help");
    }
    for args in [
        &["run", "--help"][..],
        &["produce", "--help"],
        &["report", "delete", "--help"],
        &["report", "reset-frequency", "--help"],
        &["report", "export", "--help"],
        &["dead", "list", "--help"],
        &["dead", "replay", "--help"],
        &["demo", "--help"],
    ] {
        let (code, out, _) = reminder(args, &[]);
        assert_eq!(code, 0, "{args:?}");
        assert!(out.contains("--config"), "{args:?}: {out}");
    }
}

#[test]
fn migrate_creates_the_database_and_applies_every_migration() {
    let env = TestEnv::new();
    let (code, out, err) = reminder(
        &["migrate"],
        &[("REMINDER__DATABASE__URL", &env.settings.database.url)],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("migrations applied"), "{out}");
    // Idempotent.
    let (code, _, err) = reminder(
        &["migrate"],
        &[("REMINDER__DATABASE__URL", &env.settings.database.url)],
    );
    assert_eq!(code, 0, "{err}");
}
