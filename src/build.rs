//! Build script: embeds the files of `migrations/` in the binary.
//!
//! It writes `$OUT_DIR/migrations.rs`, one `include_str!` per file and backend, which
//! `store::migrations` turns into sqlx migrations at start-up. This does what `sqlx::migrate!`
//! does without sqlx's proc macros, whose compile-time copies of sqlx, its drivers and the
//! bundled SQLite were a tenth of the cold test build. The `rerun-if-changed` line makes a
//! migration added to an existing checkout reach the next incremental build.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut code = String::new();
    for (constant, folder) in [("SQLITE", "sqlite"), ("POSTGRES", "postgres")] {
        let dir = root.join(folder);
        println!("cargo:rerun-if-changed={}", dir.display());
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
            .map(|entry| entry.expect("a readable migrations folder").path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "sql"))
            .collect();
        files.sort();
        writeln!(code, "pub(super) const {constant}: &[EmbeddedFile] = &[").unwrap();
        for path in files {
            let name = path.file_name().unwrap().to_string_lossy();
            writeln!(
                code,
                "    EmbeddedFile {{ name: {name:?}, sql: include_str!({:?}) }},",
                path.display().to_string()
            )
            .unwrap();
        }
        writeln!(code, "];").unwrap();
    }
    let out = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("migrations.rs");
    std::fs::write(out, code).expect("writing migrations.rs");
}
