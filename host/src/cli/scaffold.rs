//! `crmsync plugin new --lang L [--role R] NAME [--dir D]`: creates a
//! buildable plugin project from the templates in `sdk/templates/<lang>/`,
//! which are compiled into the binary: the role's source, a README, the
//! role's fixtures, a build script, and the contract (`wit/plugin.wit`) the
//! plugin is built against. Every role has a template in every language.
//!
//! Template files may use `{{name}}` (the plugin's name), `{{crate}}` (the
//! name with `_` for `-`) and `{{role}}`; a `.tmpl` suffix is dropped (it
//! keeps template manifests out of the way of the tools that read real ones).
//! A Rust project gets a copy of the SDK (`crmsync-sdk/`, built against the
//! project's `wit/`), so it builds wherever it is moved.

use std::path::{Path, PathBuf};

use crmsync_runtime::Role;

/// The languages a plugin can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Js,
    Python,
    Go,
    C,
}

/// One template file: its path in the project and its text.
struct File {
    path: &'static str,
    text: &'static str,
}

macro_rules! files {
    ($lang:literal: $($path:literal),+ $(,)?) => {
        &[$(File {
            path: $path,
            text: include_str!(concat!("../../../sdk/templates/", $lang, "/", $path)),
        }),+]
    };
}

const RUST: &[File] = files!("rust": "Cargo.toml.tmpl", "build.sh", "README.md");
const JS: &[File] = files!("js": "build.sh", "README.md");
const PYTHON: &[File] = files!("python": "build.sh", "README.md");
const C: &[File] = files!("c": "build.sh", "README.md");
const GO: &[File] = files!("go":
    "build.sh",
    "README.md",
    "runtime-overlay.py",
    "witrt/go.mod",
    "witrt/wit/runtime/runtime.go",
    "witrt/wit/types/types.go",
);

/// The role's source in a language: where it goes in the project, and its text.
fn source(lang: Lang, role: Role) -> (&'static str, &'static str) {
    macro_rules! src {
        ($lang:literal, $file:literal, $to:literal) => {
            ($to, include_str!(concat!("../../../sdk/templates/", $lang, "/", $file)))
        };
    }
    match (lang, role) {
        (Lang::Rust, Role::Selector) => src!("rust", "selector.rs", "src/lib.rs"),
        (Lang::Rust, Role::Mapper) => src!("rust", "mapper.rs", "src/lib.rs"),
        (Lang::Rust, Role::Resolver) => src!("rust", "resolver.rs", "src/lib.rs"),
        (Lang::Js, Role::Selector) => src!("js", "selector.js", "selector.js"),
        (Lang::Js, Role::Mapper) => src!("js", "mapper.js", "mapper.js"),
        (Lang::Js, Role::Resolver) => src!("js", "resolver.js", "resolver.js"),
        (Lang::Python, Role::Selector) => src!("python", "selector.py", "app.py"),
        (Lang::Python, Role::Mapper) => src!("python", "mapper.py", "app.py"),
        (Lang::Python, Role::Resolver) => src!("python", "resolver.py", "app.py"),
        (Lang::C, Role::Selector) => src!("c", "selector.c", "selector.c"),
        (Lang::C, Role::Mapper) => src!("c", "mapper.c", "mapper.c"),
        (Lang::C, Role::Resolver) => src!("c", "resolver.c", "resolver.c"),
        (Lang::Go, Role::Selector) => src!("go", "selector.go", "selector.go"),
        (Lang::Go, Role::Mapper) => src!("go", "mapper.go", "mapper.go"),
        (Lang::Go, Role::Resolver) => src!("go", "resolver.go", "resolver.go"),
    }
}

/// Each role's fixtures, shared by every language (the templates agree).
fn fixtures(role: Role) -> &'static str {
    match role {
        Role::Selector => include_str!("../../../sdk/templates/fixtures-selector.jsonl"),
        Role::Mapper => include_str!("../../../sdk/templates/fixtures.jsonl"),
        Role::Resolver => include_str!("../../../sdk/templates/fixtures-resolver.jsonl"),
    }
}

/// Each role's config schema, shared by every language but Rust, whose
/// `cargo test` writes it from the typed `Config`.
fn schema(role: Role) -> &'static str {
    match role {
        Role::Selector => include_str!("../../../sdk/templates/schema-selector.json"),
        Role::Mapper => include_str!("../../../sdk/templates/schema-mapper.json"),
        Role::Resolver => include_str!("../../../sdk/templates/schema-resolver.json"),
    }
}
/// The contract version plugins are built against: the newest this host implements.
const CONTRACT: &str = include_str!("../../../wit/since_v1.0.0/plugin.wit");

fn template(lang: Lang) -> &'static [File] {
    match lang {
        Lang::Rust => RUST,
        Lang::Js => JS,
        Lang::Python => PYTHON,
        Lang::Go => GO,
        Lang::C => C,
    }
}

/// Why a project could not be created.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error(
        "{0:?} is not a plugin name: use lower-case letters, digits and '-', starting with a letter (e.g. lead-mapping)"
    )]
    BadName(String),
    #[error(
        "there is no {role} template in {lang:?} (experimental) yet: a {role} can be written in Rust, JavaScript, Python or C (`--lang rust|js|python|c`)"
    )]
    NoTemplate { lang: Lang, role: Role },
    #[error("{0} already exists and is not empty")]
    Exists(String),
    #[error("cannot write {path}: {source}")]
    Write { path: String, source: std::io::Error },
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
        && name.len() <= 64
}

/// The Rust SDK as a Rust project gets it: its manifest and sources, with
/// its contract path pointed at the project's `wit/`.
fn sdk_files() -> Vec<(String, String)> {
    macro_rules! sdk {
        ($($file:literal),+) => {
            vec![$((concat!("crmsync-sdk/src/", $file).to_string(),
                    include_str!(concat!("../../../sdk/src/", $file)).replace("../wit/since_v1.0.0", "../wit"))),+]
        };
    }
    let mut files =
        sdk!("lib.rs", "__private.rs", "convert.rs", "fixtures.rs", "log.rs", "testing.rs", "types.rs");
    let manifest = include_str!("../../../sdk/templates/rust/sdk-Cargo.toml.tmpl");
    files.push((
        "crmsync-sdk/Cargo.toml".into(),
        manifest.replace("{{sdk_version}}", env!("CARGO_PKG_VERSION")),
    ));
    files
}

/// Creates `<dir>/<name>/` from the language's template for `role`; returns the files written.
pub fn scaffold(lang: Lang, role: Role, name: &str, dir: &Path) -> Result<Vec<PathBuf>, ScaffoldError> {
    if !valid_name(name) {
        return Err(ScaffoldError::BadName(name.to_string()));
    }
    let (source_path, source_text) = source(lang, role);
    let root = dir.join(name);
    if root.read_dir().is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(ScaffoldError::Exists(root.display().to_string()));
    }
    let fill = |text: &str| {
        text.replace("{{name}}", name)
            .replace("{{crate}}", &name.replace('-', "_"))
            .replace("{{role}}", &role.to_string())
    };
    let mut files: Vec<(String, String)> =
        template(lang).iter().map(|f| (f.path.trim_end_matches(".tmpl").to_string(), fill(f.text))).collect();
    files.push((source_path.into(), fill(source_text)));
    files.push(("fixtures.jsonl".into(), fill(fixtures(role))));
    files.push(("wit/plugin.wit".into(), CONTRACT.to_string()));
    if lang == Lang::Rust {
        files.extend(sdk_files());
    } else {
        files.push((format!("{name}.schema.json"), schema(role).to_string()));
    }
    let mut written = Vec::new();
    for (path, text) in files {
        let path = root.join(path);
        let err = |source| ScaffoldError::Write { path: path.display().to_string(), source };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(err)?;
        }
        std::fs::write(&path, text).map_err(err)?;
        if path.extension().is_some_and(|e| e == "sh") {
            make_executable(&path).map_err(err)?;
        }
        written.push(path);
    }
    Ok(written)
}

#[cfg(unix)]
fn make_executable(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
}

#[cfg(not(unix))]
fn make_executable(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

/// The command: scaffolds and prints what to do next.
pub fn run(lang: Lang, role: Role, name: &str, dir: Option<&Path>) -> std::process::ExitCode {
    let dir = dir.map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    match scaffold(lang, role, name, &dir) {
        Ok(files) => {
            let root = dir.join(name);
            out!("created {} ({} files)", root.display(), files.len());
            out!("next: cd {} && ./build.sh", root.display());
            out!("then: crmsync plugin test {name}.wasm --role {role} --input fixtures.jsonl");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => super::fail(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_language_gets_sources_readme_fixtures_build_script_and_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        for lang in [Lang::Rust, Lang::Js, Lang::Python, Lang::Go, Lang::C] {
            let name = format!("my-{}-rule", format!("{lang:?}").to_lowercase());
            scaffold(lang, Role::Mapper, &name, dir.path()).unwrap();
            let root = dir.path().join(&name);
            for file in ["README.md", "fixtures.jsonl", "build.sh", "wit/plugin.wit"] {
                let text =
                    std::fs::read_to_string(root.join(file)).unwrap_or_else(|e| panic!("{name}/{file}: {e}"));
                assert!(!text.contains("{{"), "{name}/{file} has an unfilled placeholder");
            }
            let build = std::fs::read_to_string(root.join("build.sh")).unwrap();
            assert!(build.contains(&format!("{name}.wasm")), "{name}: build.sh names the output");
            assert!(
                std::fs::read_to_string(root.join("wit/plugin.wit"))
                    .unwrap()
                    .contains("crmsync:plugin@1.0.0")
            );
        }
        let manifest = std::fs::read_to_string(dir.path().join("my-rust-rule/Cargo.toml")).unwrap();
        assert!(
            manifest.contains("name = \"my-rust-rule\"")
                && manifest.contains("crmsync-sdk = { path = \"crmsync-sdk\" }")
        );
        assert!(
            dir.path().join("my-rust-rule/crmsync-sdk/src/lib.rs").exists(),
            "the SDK travels with the project"
        );
        assert!(dir.path().join("my-go-rule/witrt/wit/runtime/runtime.go").exists());
    }

    #[test]
    fn each_role_gets_its_own_source_and_fixtures() {
        let dir = tempfile::tempdir().unwrap();
        for (lang, source) in
            [(Lang::Rust, "src/lib.rs"), (Lang::Js, "selector.js"), (Lang::Python, "app.py")]
        {
            let name = format!("sel-{}", format!("{lang:?}").to_lowercase());
            scaffold(lang, Role::Selector, &name, dir.path()).unwrap();
            let root = dir.path().join(&name);
            let text = std::fs::read_to_string(root.join(source)).unwrap();
            assert!(text.contains("selector plugin") && !text.contains("{{"), "{name}: {source}");
            let fixtures = std::fs::read_to_string(root.join("fixtures.jsonl")).unwrap();
            assert!(
                fixtures.contains("--role selector") && fixtures.contains("\"expect\":\"sync\""),
                "{name}"
            );
            assert!(
                std::fs::read_to_string(root.join("build.sh")).unwrap().contains("--role selector"),
                "{name}"
            );
        }
    }

    /// The copied SDK builds with the versions crmsync builds it with.
    #[test]
    fn the_copied_sdk_pins_the_workspace_versions() {
        let workspace = include_str!("../../../Cargo.toml");
        let copied = include_str!("../../../sdk/templates/rust/sdk-Cargo.toml.tmpl");
        for dep in ["wit-bindgen", "serde", "serde_json", "schemars", "rust_decimal", "chrono"] {
            let line = |text: &'static str| {
                text.lines().find(|l| l.starts_with(&format!("{dep} = "))).unwrap_or_default()
            };
            assert_eq!(line(copied), line(workspace), "{dep}");
        }
        let sdk = include_str!("../../../sdk/Cargo.toml");
        for dep in ["wit-bindgen", "serde", "serde_json", "schemars", "rust_decimal", "chrono"] {
            assert!(sdk.contains(&format!("{dep}.workspace = true")), "the SDK's own dependencies: {dep}");
        }
        assert_eq!(sdk.matches(".workspace = true").count() - 4, 6, "no dependency the copy lacks");
    }

    #[test]
    fn bad_names_and_non_empty_directories_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["", "Lead", "1lead", "lead_map", "lead-", "a b", "../x"] {
            assert!(
                matches!(scaffold(Lang::C, Role::Mapper, bad, dir.path()), Err(ScaffoldError::BadName(_))),
                "{bad:?}"
            );
        }
        scaffold(Lang::C, Role::Mapper, "lead", dir.path()).unwrap();
        assert!(matches!(
            scaffold(Lang::Js, Role::Mapper, "lead", dir.path()),
            Err(ScaffoldError::Exists(_))
        ));
    }
}
