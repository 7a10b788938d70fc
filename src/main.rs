fn main() {
    std::process::exit(imgpull::cli::main());
}
