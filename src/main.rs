fn main() {
    std::process::exit(rbuild::cli::main());
}
