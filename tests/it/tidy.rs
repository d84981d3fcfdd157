//! Layout rules that can be tests (docs/ARCHITECTURE.md, "Pure modules take values"): no file
//! under `src/serve/plan/` names tokio, `std::fs`, `Instant` or `SystemTime`. The planner takes
//! the time as a value and touches no socket or file; a runtime, a file system or a clock there is
//! a layer crossed.
//!
//! Comments and string literals are skipped (a doc may say what the module must never do); every
//! identifier of the code is compared: `tokio` and any `tokio_*` crate, `Instant`, `SystemTime`,
//! and `fs` (which catches `std::fs`, `use std::{fs, ..}` and `fs::read` alike).

use std::path::{Path, PathBuf};

/// An identifier the planner must never name, and why.
fn forbidden(ident: &str) -> Option<&'static str> {
    if ident == "tokio" || ident.starts_with("tokio_") {
        Some("the async runtime")
    } else if ident == "fs" {
        Some("std::fs, the file system")
    } else if ident == "Instant" {
        Some("Instant, a clock (take the time as a value)")
    } else if ident == "SystemTime" {
        Some("SystemTime, a clock (take whole seconds as a value)")
    } else {
        None
    }
}

/// The identifiers of the code in `source`, each with its line, comments and literals skipped.
fn identifiers(source: &str) -> Vec<(usize, String)> {
    let chars: Vec<char> = source.chars().collect();
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c == '/' && at(i + 1) == '/' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            // Block comments nest in Rust.
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if chars[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
        } else if c == 'r'
            && (at(i + 1) == '"' || (at(i + 1) == '#' && matches!(at(i + 2), '"' | '#')))
        {
            // A raw string: r"..", r#".."#, ...
            let mut j = i + 1;
            let mut hashes = 0;
            while at(j) == '#' {
                hashes += 1;
                j += 1;
            }
            j += 1;
            loop {
                if j >= chars.len() {
                    break;
                }
                if chars[j] == '"' && (1..=hashes).all(|k| at(j + k) == '#') {
                    j += 1 + hashes;
                    break;
                }
                if chars[j] == '\n' {
                    line += 1;
                }
                j += 1;
            }
            i = j;
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                if at(i) == '\n' {
                    line += 1;
                }
                i += 1;
            }
            i += 1;
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{..}'), or a lifetime ('a), which is code.
            if at(i + 1) == '\\' {
                i += 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if at(i + 2) == '\'' {
                i += 3;
            } else {
                i += 1;
            }
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push((line, chars[start..i].iter().collect()));
        } else {
            i += 1;
        }
    }
    out
}

/// Every `.rs` file below `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            rust_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// What in `source` breaks the rule: "line: identifier (why)".
fn violations(source: &str) -> Vec<String> {
    identifiers(source)
        .into_iter()
        .filter_map(|(line, ident)| {
            forbidden(&ident).map(|why| format!("{line}: `{ident}` ({why})"))
        })
        .collect()
}

#[test]
fn the_planner_names_no_runtime_file_system_or_clock() -> std::io::Result<()> {
    let plan = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/serve/plan");
    let mut files = Vec::new();
    rust_files(&plan, &mut files)?;
    files.sort();
    assert!(files.len() >= 8, "the planner's files are found: {files:?}");
    let mut found = Vec::new();
    for file in &files {
        let source = std::fs::read_to_string(file)?;
        for v in violations(&source) {
            found.push(format!("{}:{v}", file.display()));
        }
    }
    assert!(
        found.is_empty(),
        "src/serve/plan/ must not name tokio, std::fs, Instant or SystemTime:\n{}",
        found.join("\n")
    );
    Ok(())
}

#[test]
fn the_check_sees_code_and_skips_comments_and_literals() {
    for code in [
        "use tokio::net::TcpStream;",
        "use std::fs;",
        "use std::{fs, io};",
        "let t = std::time::Instant::now();",
        "fn f(t: SystemTime) {}",
        "use tokio_rustls::TlsAcceptor;",
        "let c = 'a'; let x: tokio::sync::Notify;",
        "fn f<'a>(x: &'a str) -> SystemTime { todo!() }",
    ] {
        assert!(!violations(code).is_empty(), "{code}");
    }
    for fine in [
        "// tokio, std::fs, Instant and SystemTime are never named here",
        "//! must never name `tokio`",
        "/* SystemTime /* nested */ Instant */ let x = 1;",
        r#"let s = "tokio::spawn and std::fs"; let c = '"'; let d = '\'';"#,
        r##"let s = r#"Instant "SystemTime""#;"##,
        "let fsync = 1; let instant_seconds = 2; let tokioish = false;",
    ] {
        assert_eq!(violations(fine), Vec::<String>::new(), "{fine}");
    }
}
