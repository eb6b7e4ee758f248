//! The binary defines the five C math functions it calls (src/libm_shim.rs) so that the
//! system's libm is not loaded: checked here through the dynamic loader's own list of what
//! it would load (`LD_TRACE_LOADED_OBJECTS`, what `ldd` prints).

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn the_binary_does_not_load_libm() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_opsconsole"))
        .env("LD_TRACE_LOADED_OBJECTS", "1")
        .output()
        .expect("run the binary under the loader's trace");
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(list.contains("libc.so"), "the trace lists what the loader loads:\n{list}");
    assert!(!list.contains("libm.so"), "libm is loaded:\n{list}");
}

/// Defined in the binary, the functions must not be exported: a library loaded later
/// (NVML, with `dlopen`) would otherwise bind its own `pow` or `exp` to them instead of
/// to the system's libm. Read with `nm -D` (binutils; `.ci/run` installs it with gcc).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn the_binary_does_not_export_its_math_functions() {
    let out = std::process::Command::new("nm")
        .args(["-D", "--defined-only", env!("CARGO_BIN_EXE_opsconsole")])
        .output()
        .expect("nm (binutils) is needed for this test: apt-get install binutils");
    assert!(out.status.success(), "nm failed: {}", String::from_utf8_lossy(&out.stderr));
    let exported = String::from_utf8_lossy(&out.stdout);
    for name in ["pow", "log", "sin", "cos", "exp"] {
        assert!(
            !exported.lines().any(|l| l.split_whitespace().last() == Some(name)),
            "{name} is exported:\n{exported}"
        );
    }
}
