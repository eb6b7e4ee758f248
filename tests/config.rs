//! Config fixtures: valid ones load, invalid ones fail naming file, line and key — through
//! the library and through the binary.

use std::path::{Path, PathBuf};
use std::process::Command;

use opsconsole::config::{Config, DEFAULT_CONFIG};

fn fixtures(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config").join(kind);
    let mut v: Vec<_> = std::fs::read_dir(&dir).expect("fixture dir").map(|e| e.expect("entry").path()).collect();
    v.sort();
    assert!(!v.is_empty(), "no fixtures in {}", dir.display());
    v
}

/// An invalid fixture states what the error must say on its first line: `# expect: ...`.
fn expectations(text: &str) -> Vec<String> {
    text.lines().filter_map(|l| l.strip_prefix("# expect: ")).map(str::to_string).collect()
}

#[test]
fn the_shipped_default_equals_the_built_in_defaults() {
    let parsed = Config::from_toml(DEFAULT_CONFIG, Path::new("assets/default-config.toml")).expect("default parses");
    assert_eq!(parsed, Config::default());
    // And the file spells out every key: the same table, key for key.
    let shipped: toml::Table = toml::from_str(DEFAULT_CONFIG).expect("toml");
    let built: toml::Table = toml::from_str(&Config::default().to_toml()).expect("toml");
    assert_eq!(shipped, built, "assets/default-config.toml must set every key to its default");
}

#[test]
fn valid_fixtures_load() {
    for f in fixtures("valid") {
        let text = std::fs::read_to_string(&f).expect("read");
        if let Err(e) = Config::from_toml(&text, &f) {
            panic!("{} should load: {e}", f.display());
        }
    }
}

#[test]
fn valid_fixture_values_are_applied_over_defaults() {
    let f = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config/valid/thresholds.toml");
    let cfg = Config::from_toml(&std::fs::read_to_string(&f).expect("read"), &f).expect("loads");
    assert_eq!(cfg.disk.warn_pct, 70.0);
    assert_eq!(cfg.disk.critical_pct, 85.0);
    assert_eq!(cfg.disk.full_pct, 100.0, "keys left out keep their default");
    assert_eq!(cfg.keys.quit, vec!["ctrl-q".to_string()]);
    assert_eq!(cfg.keys.help, vec!["?".to_string()]);
}

#[test]
fn invalid_fixtures_fail_naming_file_line_and_key() {
    for f in fixtures("invalid") {
        let text = std::fs::read_to_string(&f).expect("read");
        let want = expectations(&text);
        assert!(!want.is_empty(), "{} lacks an `# expect:` line", f.display());
        let err = match Config::from_toml(&text, &f) {
            Ok(_) => panic!("{} should fail", f.display()),
            Err(e) => e.to_string(),
        };
        assert!(err.starts_with(&f.display().to_string()), "names the file: {err}");
        for w in want {
            assert!(err.contains(&w), "{}: error {err:?} should contain {w:?}", f.display());
        }
    }
}

#[test]
fn invalid_fixtures_fail_through_the_binary_with_exit_code_2() {
    for f in fixtures("invalid") {
        let text = std::fs::read_to_string(&f).expect("read");
        let out = Command::new(env!("CARGO_BIN_EXE_opsconsole"))
            .arg("--config")
            .arg(&f)
            .arg("config")
            .output()
            .expect("run opsconsole");
        assert_eq!(out.status.code(), Some(2), "{}", f.display());
        let stderr = String::from_utf8_lossy(&out.stderr);
        for w in expectations(&text) {
            assert!(stderr.contains(&w), "{}: stderr {stderr:?} should contain {w:?}", f.display());
        }
        assert!(out.stdout.is_empty(), "nothing on stdout for a bad config");
    }
}

#[test]
fn init_writes_a_config_that_loads_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = || Command::new(env!("CARGO_BIN_EXE_opsconsole")).arg("init").current_dir(dir.path()).output().unwrap();
    let first = run();
    assert!(first.status.success());
    let written = std::fs::read_to_string(dir.path().join("opsconsole.toml")).expect("written");
    assert_eq!(written, DEFAULT_CONFIG);
    std::fs::write(dir.path().join("opsconsole.toml"), "[disk]\nwarn_pct = 50.0\n").unwrap();
    let second = run();
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("already exists"));
    assert_eq!(std::fs::read_to_string(dir.path().join("opsconsole.toml")).unwrap(), "[disk]\nwarn_pct = 50.0\n");
}

#[test]
fn config_command_prints_the_resolved_config_found_by_walking_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("opsconsole.toml"), "[disk]\nwarn_pct = 65.0\n").unwrap();
    let sub = dir.path().join("experiments/v01/logs");
    std::fs::create_dir_all(&sub).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_opsconsole")).arg("config").current_dir(&sub).output().unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("warn_pct = 65.0"), "{stdout}");
    assert!(stdout.contains("critical_pct = 90.0"), "{stdout}");
    let resolved: Config =
        toml::from_str(&stdout.lines().filter(|l| !l.starts_with('#')).collect::<Vec<_>>().join("\n"))
            .expect("printed config parses");
    assert_eq!(resolved.disk.warn_pct, 65.0);
}

#[test]
fn status_json_has_the_documented_disk_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_opsconsole"))
        .args(["status", "--json"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let disks = v["disks"].as_array().expect("disks array");
    assert!(!disks.is_empty());
    let root = disks.iter().find(|d| d["roles"].as_array().unwrap().iter().any(|r| r == "root")).expect("/");
    for k in ["mount", "total_bytes", "used_bytes", "fill_pct", "level"] {
        assert!(!root[k].is_null(), "disk key {k} in {root}");
    }
    assert!(["ok", "warn", "critical", "full"].contains(&root["level"].as_str().unwrap()));
    let used = root["used_bytes"].as_u64().unwrap();
    let total = root["total_bytes"].as_u64().unwrap();
    assert!(used <= total && total > 0);
    assert!(v["host"]["hostname"].as_str().is_some_and(|h| !h.is_empty()));
    assert_eq!(v["workspace"].as_str().unwrap(), dir.path().canonicalize().unwrap().to_str().unwrap());
}
