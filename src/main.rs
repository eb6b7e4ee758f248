fn main() -> std::process::ExitCode {
    opsconsole::cli::main()
}
