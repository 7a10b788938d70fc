//! Declares every file under `plugins/<kind>/` as a module, so adding a
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
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".rs") && n != "mod.rs")
            .collect();
        files.sort();
        let mut code = String::new();
        for f in files {
            let module = f.trim_end_matches(".rs");
            let path = dir.join(&f);
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
