//! Build script: `sqlx::migrate!` embeds the files of `migrations/` at compile time, but Cargo
//! only knows to recompile when Rust sources change. Without this, a migration added to an
//! existing checkout is silently missing from the next incremental build.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
