//! Declares every file under `plugins/<kind>/` (and every folder holding a
//! `mod.rs`, for a plugin of several files) as a module, so adding a
//! plugin is adding one file and nothing else (its `inventory::submit!`
//! registers it; this makes sure it is compiled and linked).

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("plugins");
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    println!("cargo:rerun-if-changed=plugins");
    for kind in ["caches", "credentials", "exporters", "registries"] {
        let dir = root.join(kind);
        let mut files: Vec<(String, std::path::PathBuf)> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let path = e.path();
                if path.join("mod.rs").is_file() {
                    Some((name, path.join("mod.rs")))
                } else if name.ends_with(".rs") && name != "mod.rs" {
                    Some((name.trim_end_matches(".rs").to_string(), path))
                } else {
                    None
                }
            })
            .collect();
        files.sort();
        let mut code = String::new();
        for (module, path) in files {
            writeln!(
                code,
                "#[path = {:?}]\npub mod {module};",
                path.display().to_string()
            )
            .unwrap();
        }
        std::fs::write(Path::new(&out).join(format!("plugins_{kind}.rs")), code).unwrap();
    }
}
