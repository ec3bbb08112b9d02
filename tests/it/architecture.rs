//! The layers of `src/`, checked: every `crate::…` reference between top-level modules points
//! down the order written in docs/architecture.md (its `layers` block, the one place it is
//! written), so no import cycle can come back, and sqlx is used in `store/` only.

use std::collections::BTreeMap;
use std::path::Path;

use crate::common::repo_root;

/// The layers, top first, from docs/architecture.md's fenced block that starts with ```layers.
/// A line is one layer; the modules on a line must not import each other either.
fn layers() -> BTreeMap<String, usize> {
    let doc = std::fs::read_to_string(repo_root().join("docs/architecture.md")).expect("docs/architecture.md");
    let block = doc.split("```layers\n").nth(1).expect("docs/architecture.md has a ```layers block");
    let block = block.split("```").next().unwrap();
    let mut order = BTreeMap::new();
    for (depth, line) in block.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        for module in line.split_whitespace() {
            assert!(order.insert(module.to_string(), depth).is_none(), "{module} listed twice");
        }
    }
    order
}

/// The top-level module a file of `src/` belongs to (`src/http/x.rs` -> `http`).
fn top_module(relative: &Path) -> String {
    let first = relative.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
    first.strip_suffix(".rs").unwrap_or(&first).to_string()
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without its `//` comments (a doc comment may name any module).
fn code_of(text: &str) -> String {
    text.lines().map(|line| line.split("//").next().unwrap()).collect::<Vec<_>>().join("\n")
}

/// Every top-level module a piece of code names through `crate::` (or `driftballoon::`, from the
/// binary), including the ones in a grouped `use crate::{a::x, b}`.
fn referenced_modules(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    for prefix in ["crate::", "driftballoon::"] {
        for (at, _) in code.match_indices(prefix) {
            let rest = &code[at + prefix.len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let group = &group[..group.find('}').unwrap_or(group.len())];
                for item in group.split(',') {
                    let name: String =
                        item.trim().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                    if !name.is_empty() {
                        found.push(name);
                    }
                }
            } else {
                let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                if !name.is_empty() {
                    found.push(name);
                }
            }
        }
    }
    found
}

#[test]
fn every_import_points_down_the_layers() {
    let order = layers();
    let src = repo_root().join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut wrong = Vec::new();
    for file in files {
        let relative = file.strip_prefix(&src).unwrap();
        let module = top_module(relative);
        if module == "lib" || module == "build" {
            continue;
        }
        let Some(&depth) = order.get(&module) else {
            wrong.push(format!(
                "src/{} is in module `{module}`, which docs/architecture.md does not place",
                relative.display()
            ));
            continue;
        };
        let code = code_of(&std::fs::read_to_string(&file).unwrap());
        for target in referenced_modules(&code) {
            if target == module || target == "self" || target == "super" {
                continue;
            }
            match order.get(&target) {
                Some(&target_depth) if target_depth > depth => {}
                Some(_) => wrong
                    .push(format!("src/{} (`{module}`) uses `{target}`, which is not below it", relative.display())),
                None => wrong.push(format!(
                    "src/{} uses `{target}`, which docs/architecture.md does not place",
                    relative.display()
                )),
            }
        }
        if module != "store" && (code.contains("sqlx::") || code.contains("use sqlx")) {
            wrong.push(format!("src/{} uses sqlx outside store/", relative.display()));
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(wrong.is_empty(), "layer rules broken:\n{}", wrong.join("\n"));
}

#[test]
fn the_check_sees_grouped_and_plain_references() {
    let code = code_of("use crate::{store::Store, web::AppState};\nlet x = crate::domain::now(); // crate::http");
    assert_eq!(referenced_modules(&code), ["store", "web", "domain"]);
}
