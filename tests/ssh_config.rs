//! `opsconsole ssh-config HOST IP` on a corpus of real-shaped OpenSSH configs
//! (`tests/fixtures/ssh_config/`): only the named host's HostName value changes and every
//! other byte stays; the result is read back by the real OpenSSH client (`ssh -G`), which
//! must resolve HOST to the new address (or, where an earlier wildcard block wins, to what
//! the warning says). Backups, modes, links, a missing file (created 0600), `--print`
//! (a diff that `patch` applies), bad arguments.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const NEW: &str = "34.123.45.67";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ssh_config").join(name)).expect("fixture")
}

fn run(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_opsconsole"))
        .arg("ssh-config")
        .args(args)
        .env("HOME", home)
        .env("XDG_STATE_HOME", home.join("state"))
        .current_dir(home)
        .output()
        .expect("runs")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// What OpenSSH itself makes of HOST in this file.
fn ssh_hostname(file: &Path, host: &str) -> Option<String> {
    let o = match Command::new("ssh").arg("-G").arg("-F").arg(file).arg(host).output() {
        Ok(o) => o,
        Err(_) => {
            assert!(std::env::var_os("CI").is_none(), "ssh (openssh-client) is needed in CI: .ci/run installs it");
            eprintln!("SKIPPED the ssh -G check: no ssh client here");
            return None;
        }
    };
    assert!(o.status.success(), "ssh -G failed: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).lines().find_map(|l| l.strip_prefix("hostname ").map(str::to_string))
}

/// Runs the command on a copy of `name` and checks the result is exactly `expected`.
fn case(name: &str, host: &str, expected: &[u8]) -> (tempfile::TempDir, PathBuf, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("config");
    let original = fixture(name);
    std::fs::write(&file, &original).expect("copy");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("mode");
    let o = run(dir.path(), &[host, NEW, "--file", file.to_str().expect("utf8")]);
    assert!(o.status.success(), "{name}: {}", text(&o));
    let got = std::fs::read(&file).expect("read");
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(expected),
        "{name}: only the HostName may change"
    );
    assert_eq!(got, expected, "{name}: byte for byte");
    let backup = dir.path().join("config.opsconsole.bak");
    assert_eq!(std::fs::read(&backup).expect("backup"), original, "{name}: the backup is the original");
    assert_eq!(std::fs::metadata(&file).expect("meta").permissions().mode() & 0o777, 0o600);
    (dir, file, text(&o))
}

fn replace_once(hay: &[u8], from: &str, to: &str) -> Vec<u8> {
    let s = String::from_utf8(hay.to_vec()).expect("utf8 fixture");
    assert_eq!(s.matches(from).count(), 1, "{from:?} must be unique in the fixture");
    s.replacen(from, to, 1).into_bytes()
}

#[test]
fn basic_config_only_the_hosts_hostname_changes() {
    let orig = fixture("basic.conf");
    let want = replace_once(&orig, "HostName 35.222.10.4", &format!("HostName {NEW}"));
    let (_d, file, out) = case("basic.conf", "gpu-vm", &want);
    assert!(out.contains("set HostName of gpu-vm to 34.123.45.67 (line 7, was 35.222.10.4)"), "{out}");
    assert!(out.contains("backup:"), "{out}");
    if let Some(h) = ssh_hostname(&file, "gpu-vm") {
        assert_eq!(h, NEW);
    }
    assert_eq!(ssh_hostname(&file, "github.com").as_deref().unwrap_or("github.com"), "github.com");
}

#[test]
fn host_lists_tabs_equals_comments_quotes_include_and_match_are_kept() {
    let orig = fixture("lists_match_include.conf");
    let want = replace_once(&orig, "HostName=35.222.10.4   #", &format!("HostName={NEW}   #"));
    let (_d, file, _) = case("lists_match_include.conf", "gpu-vm", &want);
    // The same block answers for the other names of its list.
    let (_d2, _, _) = case("lists_match_include.conf", "l4", &want);
    let (_d3, _, _) = case("lists_match_include.conf", "train-box", &want);
    if let Some(h) = ssh_hostname(&file, "gpu-vm") {
        assert_eq!(h, NEW);
    }
    // `gpu-old` matches `gpu-*` but is negated; `a100` keeps its own address.
    assert_eq!(ssh_hostname(&file, "a100").as_deref().unwrap_or("34.10.0.9"), "34.10.0.9");
}

#[test]
fn generated_configs_and_an_ip_named_host_block() {
    let orig = fixture("vscode_generated.conf");
    // `Host 35.222.10.4` is another block (named by the old address): left alone.
    let s = String::from_utf8(orig.clone()).expect("utf8");
    let at = s.find("Host gpu-vm").expect("block");
    let want = format!("{}{}", &s[..at], s[at..].replacen("HostName 35.222.10.4", &format!("HostName {NEW}"), 1));
    let (_d, file, _) = case("vscode_generated.conf", "gpu-vm", want.as_bytes());
    if let Some(h) = ssh_hostname(&file, "gpu-vm") {
        assert_eq!(h, NEW);
    }
}

#[test]
fn uppercase_keywords_spaces_around_equals_and_quotes() {
    let orig = fixture("quoted_equals_uppercase.conf");
    let want = replace_once(&orig, "\"35.222.10.4\"", &format!("\"{NEW}\""));
    let (_d, file, _) = case("quoted_equals_uppercase.conf", "gpu-vm", &want);
    if let Some(h) = ssh_hostname(&file, "gpu-vm") {
        assert_eq!(h, NEW);
    }
}

#[test]
fn the_first_hostname_of_a_block_naming_the_host_changes_and_an_earlier_wildcard_is_reported() {
    let orig = fixture("duplicate_blocks.conf");
    let want = replace_once(&orig, "HostName 35.222.10.4", &format!("HostName {NEW}"));
    let (_d, file, out) = case("duplicate_blocks.conf", "gpu-vm", &want);
    assert!(out.contains("warning: line 2 sets HostName in `Host gpu-*` (line 1)"), "{out}");
    // And OpenSSH agrees with the warning: the wildcard block's value wins.
    if let Some(h) = ssh_hostname(&file, "gpu-vm") {
        assert_eq!(h, "gpu-vm.internal.example.com");
    }
}

#[test]
fn a_block_without_hostname_gets_one_and_a_last_line_without_newline_keeps_none() {
    let orig = fixture("no_hostname_no_newline.conf");
    let want = replace_once(&orig, "Host gpu-vm\n", &format!("Host gpu-vm\n    HostName {NEW}\n"));
    let (_d, file, out) = case("no_hostname_no_newline.conf", "gpu-vm", &want);
    assert!(out.contains("added HostName 34.123.45.67 to the block of gpu-vm (line 3)"), "{out}");
    assert!(!want.ends_with(b"\n"));
    if let Some(h) = ssh_hostname(&file, "gpu-vm") {
        assert_eq!(h, NEW);
    }
}

#[test]
fn crlf_and_latin1_bytes_survive() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("config");
    let mut orig = b"# caf\xe9 (Latin-1)\r\nHost gpu-vm\r\n  HostName 35.222.10.4\r\n  User alice\r\n".to_vec();
    std::fs::write(&file, &orig).expect("write");
    let o = run(dir.path(), &["gpu-vm", NEW, "--file", file.to_str().expect("utf8")]);
    assert!(o.status.success(), "{}", text(&o));
    let got = std::fs::read(&file).expect("read");
    let pos = orig.windows(11).position(|w| w == b"35.222.10.4").expect("value");
    orig.splice(pos..pos + 11, NEW.bytes());
    assert_eq!(got, orig);
}

#[test]
fn a_missing_host_is_added_at_the_end_and_include_is_warned_about() {
    let orig = fixture("lists_match_include.conf");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("config");
    std::fs::write(&file, &orig).expect("copy");
    let o = run(dir.path(), &["h100", NEW, "--file", file.to_str().expect("utf8")]);
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("no block names h100: added `Host h100`"), "{t}");
    assert!(t.contains("warning: h100 may be defined in a file named by Include (line 1, 2)"), "{t}");
    let mut want = orig.clone();
    want.extend_from_slice(format!("\nHost h100\n\tHostName {NEW}\n").as_bytes());
    assert_eq!(String::from_utf8_lossy(&std::fs::read(&file).expect("read")), String::from_utf8_lossy(&want));
    if let Some(h) = ssh_hostname(&file, "h100") {
        assert_eq!(h, NEW);
    }
}

#[test]
fn a_missing_file_is_created_0600_in_a_0700_folder() {
    let home = tempfile::tempdir().expect("tempdir");
    let o = run(home.path(), &["gpu-vm", NEW]);
    assert!(o.status.success(), "{}", text(&o));
    let file = home.path().join(".ssh/config");
    assert_eq!(std::fs::read_to_string(&file).expect("created"), format!("Host gpu-vm\n    HostName {NEW}\n"));
    assert_eq!(std::fs::metadata(&file).expect("meta").permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(home.path().join(".ssh")).expect("dir").permissions().mode() & 0o777, 0o700);
    assert!(text(&o).contains("mode 0600"), "{}", text(&o));
    assert!(!home.path().join(".ssh/config.opsconsole.bak").exists(), "nothing to back up");
    // Run again: nothing to change, nothing written.
    let before = std::fs::metadata(&file).expect("meta").modified().expect("mtime");
    let o = run(home.path(), &["gpu-vm", NEW]);
    assert!(text(&o).contains("already 34.123.45.67"), "{}", text(&o));
    assert_eq!(std::fs::metadata(&file).expect("meta").modified().expect("mtime"), before);
}

#[test]
fn a_link_is_followed_and_the_mode_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dotfiles = dir.path().join("dotfiles");
    std::fs::create_dir_all(&dotfiles).expect("mkdir");
    let target = dotfiles.join("ssh_config");
    std::fs::write(&target, fixture("basic.conf")).expect("write");
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).expect("mode");
    let link = dir.path().join("config");
    std::os::unix::fs::symlink(&target, &link).expect("link");
    let o = run(dir.path(), &["gpu-vm", NEW, "--file", link.to_str().expect("utf8")]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(std::fs::symlink_metadata(&link).expect("meta").file_type().is_symlink(), "the link stays a link");
    assert!(std::fs::read_to_string(&target).expect("read").contains(&format!("HostName {NEW}")));
    assert_eq!(std::fs::metadata(&target).expect("meta").permissions().mode() & 0o777, 0o644, "mode kept");
    assert_eq!(std::fs::read(dotfiles.join("ssh_config.opsconsole.bak")).expect("backup"), fixture("basic.conf"));
    let leftovers: Vec<_> = std::fs::read_dir(&dotfiles)
        .expect("ls")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("opsconsole-tmp"))
        .collect();
    assert!(leftovers.is_empty(), "no temporary file left");
}

#[test]
fn print_shows_a_diff_that_patch_applies_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("config");
    let orig = fixture("lists_match_include.conf");
    std::fs::write(&file, &orig).expect("write");
    let o = run(dir.path(), &["gpu-vm", NEW, "--file", "config", "--print"]);
    assert!(o.status.success(), "{}", text(&o));
    let diff = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(std::fs::read(&file).expect("read"), orig, "--print writes nothing");
    assert!(!dir.path().join("config.opsconsole.bak").exists());
    assert!(diff.starts_with("--- config\n+++ config\n@@ -10,7 +10,7 @@\n"), "{diff}");
    assert!(
        diff.contains("-\tHostName=35.222.10.4   # ephemeral")
            && diff.contains("+\tHostName=34.123.45.67   # ephemeral")
    );
    // The real `patch` applies it and gives what a write gives.
    let o2 =
        Command::new("patch").arg("-s").arg(&file).stdin(std::process::Stdio::piped()).spawn().and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().expect("stdin").write_all(diff.as_bytes())?;
            c.wait_with_output()
        });
    let o2 = o2.expect("patch runs");
    assert!(o2.status.success(), "patch: {}", text(&o2));
    let want = replace_once(&orig, "HostName=35.222.10.4", &format!("HostName={NEW}"));
    assert_eq!(std::fs::read(&file).expect("read"), want);

    // Adding to a file without a final newline: the diff says so, and patch still applies.
    let f2 = dir.path().join("nonl");
    std::fs::write(&f2, fixture("no_hostname_no_newline.conf")).expect("write");
    let o = run(dir.path(), &["newhost", NEW, "--file", "nonl", "--print"]);
    let diff = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        diff.contains("-    Port 2222\n\\ No newline at end of file\n+    Port 2222\n+\n+Host newhost\n"),
        "{diff}"
    );
    let o3 = Command::new("patch").arg("-s").arg(&f2).stdin(std::process::Stdio::piped()).spawn().and_then(|mut c| {
        use std::io::Write;
        c.stdin.take().expect("stdin").write_all(diff.as_bytes())?;
        c.wait_with_output()
    });
    assert!(o3.expect("patch").status.success());
    let mut want = fixture("no_hostname_no_newline.conf");
    want.extend_from_slice(format!("\n\nHost newhost\n    HostName {NEW}\n").as_bytes());
    assert_eq!(String::from_utf8_lossy(&std::fs::read(&f2).expect("read")), String::from_utf8_lossy(&want));
}

#[test]
fn bad_arguments_exit_2_and_touch_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    for args in [["gpu-vm", "34.1.2"], ["gpu-*", NEW], ["-x", NEW], ["two words", NEW]] {
        let o = run(dir.path(), &[args[0], args[1], "--file", "config"]);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
    }
    assert!(!dir.path().join("config").exists());
    // IPv6 is an address too.
    let o = run(dir.path(), &["gpu-vm", "2600:1900:4000::1", "--file", "config"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(std::fs::read_to_string(dir.path().join("config")).expect("read").contains("HostName 2600:1900:4000::1"));
}
