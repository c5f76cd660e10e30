//! The `mvault` command: parse, dispatch, print, exit.

mod cli;

fn main() {
    std::process::exit(cli::run());
}
