//! Builds the default rules (`plugins/selection`, `plugins/standard-mapping`,
//! `plugins/field-policy-resolver`) to WebAssembly components and puts them,
//! with their fixtures, in `OUT_DIR`, where `src/defaults.rs` embeds them:
//! an installed `crmsync` binary needs no plugin files to demo or to start
//! with the default rules.
//!
//! The components are built by a nested `cargo build --target wasm32-wasip2
//! --profile plugin` into a target directory of their own under `OUT_DIR`
//! (so it never waits on the outer build's lock). When
//! `CRMSYNC_PREBUILT_PLUGINS` names a directory holding them already (as
//! `scripts/build-plugins.sh` leaves them in `target/plugins`), they are
//! copied from there instead of being built twice.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const DEFAULTS: [&str; 3] = ["selection", "standard-mapping", "field-policy-resolver"];

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest.parent().expect("host/ sits in the workspace").to_path_buf();
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    for dir in
        ["plugins/selection", "plugins/standard-mapping", "plugins/field-policy-resolver", "sdk", "wit"]
    {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    println!("cargo:rerun-if-env-changed=CRMSYNC_PREBUILT_PLUGINS");

    let prebuilt = env::var_os("CRMSYNC_PREBUILT_PLUGINS").map(PathBuf::from);
    match prebuilt {
        Some(dir) if DEFAULTS.iter().all(|n| dir.join(format!("{n}.wasm")).exists()) => {
            for name in DEFAULTS {
                copy(&dir.join(format!("{name}.wasm")), &out.join(format!("{name}.wasm")));
            }
        }
        _ => build(&root, &out),
    }
    for name in DEFAULTS {
        copy(
            &root.join("plugins").join(name).join("fixtures.jsonl"),
            &out.join(format!("{name}.fixtures.jsonl")),
        );
    }
}

fn build(root: &Path, out: &Path) {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target_dir = out.join("wasm-target");
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args(["build", "--locked", "--profile", "plugin", "--target", "wasm32-wasip2", "--target-dir"])
        .arg(&target_dir);
    for name in DEFAULTS {
        cmd.args(["-p", name]);
    }
    // The outer build's settings are not the plugins' (host flags, its target dir).
    for var in [
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().unwrap_or_else(|e| panic!("cannot run cargo to build the default rules: {e}"));
    if !status.success() {
        panic!(
            "building the default rules for wasm32-wasip2 failed (is the target installed? \
             `rustup target add wasm32-wasip2`)"
        );
    }
    for name in DEFAULTS {
        let built = target_dir.join("wasm32-wasip2/plugin").join(format!("{}.wasm", name.replace('-', "_")));
        copy(&built, &out.join(format!("{name}.wasm")));
    }
}

fn copy(from: &Path, to: &Path) {
    std::fs::copy(from, to)
        .unwrap_or_else(|e| panic!("cannot copy {} to {}: {e}", from.display(), to.display()));
}
