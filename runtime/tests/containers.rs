fn main() {
    rbuild_runtime::init_hook();
}
