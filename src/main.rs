#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod libm_shim;

fn main() -> std::process::ExitCode {
    opsconsole::cli::main()
}
