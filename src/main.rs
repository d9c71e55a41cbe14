fn main() {
    rbuild_runtime::init_hook(); // container setup runs here in the runtime's re-executed copy
    std::process::exit(rbuild::cli::main());
}
