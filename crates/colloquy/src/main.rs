//! The `colloquy` binary. Everything lives in the library; this only hands over the exit code.

fn main() -> std::process::ExitCode {
    colloquy::cli::main()
}
