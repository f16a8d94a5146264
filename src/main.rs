//! The `miemu` binary: everything lives in the library; see `miemu::cli`.

fn main() -> std::process::ExitCode {
    miemu::cli::main()
}
