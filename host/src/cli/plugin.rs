//! `crmsync plugin …`: test a component against fixtures, validate it, install
//! it, activate or roll back a version, list the registry, watch a directory.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Subcommand;
use crmsync_sdk::types::Direction;

use crmsync_runtime::fixtures::{self, Case};
use crmsync_runtime::registry::{Manifest, Registry};
use crmsync_runtime::{Limits, Role, Runtime, watch};
use crmsync_store::State;

use super::fail;

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Runs a component over input records (JSONL) and prints each result;
    /// exits 1 when a line's expectation is not met.
    Test {
        /// The component (.wasm).
        file: PathBuf,
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Records, conflicts or fixture cases, one JSON object a line.
        #[arg(long)]
        input: PathBuf,
        /// The plugin's config (JSON file) for lines without their own.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Direction for lines without their own.
        #[arg(long, value_parser = parse_direction, default_value = "to-marketing")]
        direction: Direction,
        /// Target object type for lines without their own (e.g. Lead).
        #[arg(long)]
        target: Option<String>,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Checks a component: it loads, exports its roles for a supported contract
    /// version, and passes its fixtures.
    Validate {
        file: PathBuf,
        /// Roles to check (default: every role it exports).
        #[arg(long, value_parser = parse_role)]
        role: Vec<Role>,
        #[arg(long)]
        fixtures: Option<PathBuf>,
    },
    /// Validates and installs a version; with --activate, makes it active too.
    Install {
        file: PathBuf,
        /// Default: the file stem.
        #[arg(long)]
        name: Option<String>,
        /// Default: "sha-" and 12 digits of the content hash.
        #[arg(long)]
        version: Option<String>,
        #[arg(long, value_parser = parse_role)]
        role: Vec<Role>,
        /// Fixtures that must pass (default: <file stem>.fixtures.jsonl beside it, if present).
        #[arg(long)]
        fixtures: Option<PathBuf>,
        /// Connections to activate it for.
        #[arg(long)]
        activate: Vec<String>,
        /// The version's own config (a JSON file): used instead of the role's
        /// config in crmsync.toml while this version is active, so a rollback
        /// restores the old version with its old config.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The JSON Schema its config must satisfy, checked now and at every
        /// activation (default: <file stem>.schema.json beside it, if present).
        #[arg(long)]
        schema: Option<PathBuf>,
    },
    /// Makes an installed version active for a connection and role (from the next batch on).
    Activate {
        /// name@version
        plugin: String,
        #[arg(long)]
        connection: String,
        #[arg(long, value_parser = parse_role)]
        role: Role,
    },
    /// Re-activates the previous version for a connection and role.
    Rollback {
        #[arg(long)]
        connection: String,
        #[arg(long, value_parser = parse_role)]
        role: Role,
    },
    /// Lists installed versions and what is active where.
    List,
    /// Creates a plugin project (source, README, fixtures, build script, the
    /// contract) from the template for a language.
    New {
        /// The plugin's name: lower-case letters, digits and '-'.
        name: String,
        #[arg(long, value_enum)]
        lang: super::scaffold::Lang,
        /// The role it plays: selector, mapper (default) or resolver.
        #[arg(long, value_parser = parse_role, default_value = "mapper")]
        role: Role,
        /// Where to create it (default: the current directory).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Runs a candidate version beside the active one on a connection's most
    /// recent records and prints what would change, writing nothing; exit 1
    /// when the candidate fails on a record the active version handles.
    Preview(super::preview::PreviewArgs),
    /// Watches a directory: each .wasm dropped in is validated, installed and activated.
    Watch {
        dir: PathBuf,
        /// Connections to activate for, unless the plugin's .toml says otherwise.
        #[arg(long, default_value = "default")]
        connection: Vec<String>,
    },
}

#[derive(Debug, clap::Args)]
pub struct LimitArgs {
    /// Deadline per call, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub timeout_ms: u64,
    /// Memory cap per instance, in MiB.
    #[arg(long, default_value_t = 256)]
    pub memory_mib: usize,
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse()
}

fn parse_direction(s: &str) -> Result<Direction, String> {
    match s {
        "to-marketing" => Ok(Direction::ToMarketing),
        "to-salesforce" => Ok(Direction::ToSalesforce),
        other => Err(format!("{other:?}: expected to-marketing or to-salesforce")),
    }
}

/// `config` is the service's config file (for `preview`).
pub fn run(config: &Path, data_dir: &Path, cmd: PluginCommand) -> ExitCode {
    match cmd {
        PluginCommand::Preview(args) => super::preview::preview(config, data_dir, args),
        PluginCommand::Test { file, role, input, config, direction, target, limits } => {
            test(data_dir, &file, role, &input, config.as_deref(), direction, target, &limits)
        }
        PluginCommand::Validate { file, role, fixtures } => {
            validate(data_dir, &file, &role, fixtures.as_deref())
        }
        PluginCommand::Install { file, name, version, role, fixtures, activate, config: own, schema } => {
            install(
                config,
                data_dir,
                &file,
                Target { name, version, roles: role, config: own, schema },
                fixtures.as_deref(),
                &activate,
            )
        }
        PluginCommand::Activate { plugin, connection, role } => with_registry(config, data_dir, |r| {
            let id = r.activate(&connection, role, &plugin).map_err(|e| e.to_string())?;
            out!("{id} is now the {role} of connection {connection}");
            Ok(())
        }),
        PluginCommand::Rollback { connection, role } => with_registry(config, data_dir, |r| {
            let id = r.rollback(&connection, role).map_err(|e| e.to_string())?;
            out!("rolled back: {id} is again the {role} of connection {connection}");
            Ok(())
        }),
        PluginCommand::List => with_registry(config, data_dir, |r| {
            let active = r.active().map_err(|e| e.to_string())?;
            out!("{:<32} {:<10} {:<14} {:<8} active for", "plugin", "sha256", "roles", "fixtures");
            for v in r.list().map_err(|e| e.to_string())? {
                let key = v.id.to_string();
                let used: Vec<String> = active
                    .iter()
                    .filter(|(_, k)| *k == key)
                    .map(|((c, role), _)| format!("{c}/{role}"))
                    .collect();
                let roles: Vec<String> = v.roles.iter().map(Role::to_string).collect();
                out!(
                    "{key:<32} {:<10} {:<14} {:<8} {}",
                    &v.id.sha256[..10],
                    roles.join(","),
                    v.fixtures_passed,
                    used.join(" ")
                );
            }
            Ok(())
        }),
        PluginCommand::New { name, lang, role, dir } => {
            super::scaffold::run(lang, role, &name, dir.as_deref())
        }
        PluginCommand::Watch { dir, connection } => {
            let state = match State::open(data_dir) {
                Ok(s) => s,
                Err(e) => return fail(e),
            };
            let registry = match open_registry(config, &state) {
                Ok(r) => Arc::new(r),
                Err(e) => return fail(e),
            };
            let watcher = watch::watch(&dir, registry, connection, |path, result| match result {
                Ok(applied) => {
                    let to: Vec<String> = applied.activated.iter().map(|(c, r)| format!("{c}/{r}")).collect();
                    out!(
                        "{}: installed {} and activated it for {}",
                        path.display(),
                        applied.plugin,
                        to.join(" ")
                    );
                }
                Err(e) => out!("{}: refused: {e}", path.display()),
            });
            let _watcher = match watcher {
                Ok(w) => w,
                Err(e) => return fail(e),
            };
            out!("watching {} (Ctrl-C stops)", dir.display());
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => return fail(e),
            };
            rt.block_on(async {
                let _ = tokio::signal::ctrl_c().await;
            });
            ExitCode::SUCCESS
        }
    }
}

/// Opens the registry with each connection's role configs from crmsync.toml
/// (when there is one), so activation checks the config a version will run with.
fn open_registry(config: &Path, state: &State) -> Result<Registry, String> {
    let runtime = Runtime::new(Some(&state.cache_dir()), Limits::default()).map_err(|e| e.to_string())?;
    let registry = Registry::open(state.clone(), runtime).map_err(|e| e.to_string())?;
    if config.exists() {
        let config = crate::config::Config::load(config).map_err(|e| e.to_string())?;
        for (name, cc) in &config.connections {
            registry.set_role_configs(name, &crate::service::role_configs(name, cc));
            registry.set_require_preview(name, cc.rules.require_preview);
        }
    }
    Ok(registry)
}

fn with_registry(
    config: &Path,
    data_dir: &Path,
    f: impl FnOnce(&Registry) -> Result<(), String>,
) -> ExitCode {
    let result = State::open(data_dir)
        .map_err(|e| e.to_string())
        .and_then(|state| open_registry(config, &state))
        .and_then(|registry| f(&registry));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

fn read_cases(path: &Path, config: Option<&serde_json::Value>) -> Result<Vec<Case>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    fixtures::parse(&text, config).map_err(|e| format!("{}: {e}", path.display()))
}

fn file_stem(file: &Path) -> String {
    file.file_stem().and_then(|s| s.to_str()).unwrap_or("plugin").to_string()
}

/// Fixtures beside a component: `<stem>.fixtures.jsonl`.
fn default_fixtures(file: &Path) -> Option<PathBuf> {
    Some(file.with_file_name(format!("{}.fixtures.jsonl", file_stem(file)))).filter(|p| p.exists())
}

#[allow(clippy::too_many_arguments)]
fn test(
    data_dir: &Path,
    file: &Path,
    role: Role,
    input: &Path,
    config: Option<&Path>,
    direction: Direction,
    target: Option<String>,
    limits: &LimitArgs,
) -> ExitCode {
    let config: Option<serde_json::Value> = match config {
        None => None,
        Some(path) => match std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
        {
            Ok(v) => Some(v),
            Err(e) => return fail(format!("config {}: {e}", path.display())),
        },
    };
    let mut cases = match read_cases(input, config.as_ref()) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    // Bare input lines take the command line's direction and target.
    for case in &mut cases {
        if case.expect.is_none() && case.target.is_none() {
            case.direction = direction;
            case.target.clone_from(&target);
        }
    }
    let limits = Limits {
        call_timeout: Duration::from_millis(limits.timeout_ms),
        memory_bytes: limits.memory_mib << 20,
        ..Limits::default()
    };
    let runtime = match Runtime::new(Some(&data_dir.join("cache")), limits) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let plugin = match runtime.load_file(file, &file_stem(file), "dev") {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    if let Err(e) = plugin.require(role) {
        return fail(e);
    }
    let mut outcomes = fixtures::run(&plugin, role, &cases);
    if role == Role::Mapper {
        for (o, case) in outcomes.iter_mut().zip(&cases) {
            if let Some(problems) = vendor_type_problems(&plugin, o, case) {
                o.verdict = Some(Err(problems));
            }
        }
    }
    let mut failed = 0;
    for o in &outcomes {
        // A trap's message is several lines (the guest's backtrace): shown as lines, not escaped.
        if let Some(trap) = o.output.get("failed").and_then(serde_json::Value::as_str) {
            let verdict = match &o.verdict {
                Some(Ok(())) => "pass: the plugin failed, as expected",
                Some(Err(_)) | None => {
                    failed += 1;
                    "FAIL: the plugin failed"
                }
            };
            out!("{}\t{verdict}:", o.name);
            for line in trap.lines() {
                out!("    {line}");
            }
            continue;
        }
        let verdict = match &o.verdict {
            None => "-".to_string(),
            Some(Ok(())) => "pass".to_string(),
            Some(Err(why)) => {
                failed += 1;
                format!("FAIL: {why}")
            }
        };
        out!("{}\t{}\t{}", o.name, verdict, o.output);
    }
    let checked = outcomes.iter().filter(|o| o.verdict.is_some()).count();
    out!("{} passed, {} failed", checked - failed, failed);
    if failed > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS }
}

/// A mapper's output checked against the kinds of value its target platform
/// fixes (an email must be an address, `unsubscribe` a boolean…): what a real
/// run would refuse or silently drop, named by plugin, version, record and field.
fn vendor_type_problems(
    plugin: &crmsync_runtime::Plugin,
    o: &fixtures::Outcome,
    case: &Case,
) -> Option<String> {
    let record: crmsync_sdk::types::Record = serde_json::from_value(o.output.get("ok")?.clone()).ok()?;
    let problems = crmsync_connectors::vendors::check_mapped(&record);
    if problems.is_empty() {
        return None;
    }
    let source = case.input.get("id").and_then(serde_json::Value::as_str).unwrap_or("(no id)");
    let fields: Vec<String> =
        problems.into_iter().map(|(field, why)| format!("field {field} {why}")).collect();
    Some(format!("{} (mapper) on record {source}: {}", plugin.id(), fields.join("; ")))
}

fn validate(data_dir: &Path, file: &Path, roles: &[Role], fixtures_path: Option<&Path>) -> ExitCode {
    let runtime = match Runtime::new(Some(&data_dir.join("cache")), Limits::default()) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let plugin = match runtime.load_file(file, &file_stem(file), "dev") {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let roles: Vec<Role> =
        if roles.is_empty() { plugin.roles().iter().copied().collect() } else { roles.to_vec() };
    let cases = match fixtures_path.map(Path::to_path_buf).or_else(|| default_fixtures(file)) {
        Some(p) => match read_cases(&p, None) {
            Ok(c) => c,
            Err(e) => return fail(e),
        },
        None => Vec::new(),
    };
    let mut passed = 0;
    for role in &roles {
        if let Err(e) = plugin.require(*role) {
            return fail(e);
        }
        let cases: Vec<Case> = cases.iter().filter(|c| c.role.unwrap_or(*role) == *role).cloned().collect();
        match fixtures::validate(&plugin, *role, &cases) {
            Ok(n) => passed += n,
            Err(e) => return fail(e),
        }
    }
    let roles: Vec<String> = roles.iter().map(Role::to_string).collect();
    out!(
        "valid: {} plays {} (contract crmsync:plugin@{}); {passed} fixtures passed",
        file.display(),
        roles.join(", "),
        crmsync_runtime::contract::CONTRACT_VERSION
    );
    ExitCode::SUCCESS
}

/// What `plugin install` installs the file as.
struct Target {
    name: Option<String>,
    version: Option<String>,
    roles: Vec<Role>,
    config: Option<PathBuf>,
    schema: Option<PathBuf>,
}

fn install(
    toml: &Path,
    data_dir: &Path,
    file: &Path,
    Target { name, version, roles, config, schema }: Target,
    fixtures_path: Option<&Path>,
    activate: &[String],
) -> ExitCode {
    with_registry(toml, data_dir, |registry| {
        let schema = crmsync_runtime::watch::schema_beside(file, schema.as_deref())?;
        let config = match &config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
                Some(
                    serde_json::from_str::<serde_json::Value>(&text)
                        .map_err(|e| format!("{}: not JSON: {e}", path.display()))?,
                )
            }
            None => None,
        };
        let bytes = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let fixtures = match fixtures_path.map(Path::to_path_buf).or_else(|| default_fixtures(file)) {
            Some(p) => read_cases(&p, None)?,
            None => Vec::new(),
        };
        let version = version.unwrap_or_else(|| {
            use sha2::Digest;
            format!("sha-{}", &hex::encode(sha2::Sha256::digest(&bytes))[..12])
        });
        let manifest = Manifest {
            name: name.unwrap_or_else(|| file_stem(file)),
            version,
            roles,
            fixtures,
            config,
            schema,
        };
        let installed = registry.install(&bytes, &manifest).map_err(|e| e.to_string())?;
        let roles: Vec<String> = installed.roles.iter().map(Role::to_string).collect();
        out!(
            "installed {} ({}; {} fixtures passed)",
            installed.id,
            roles.join(", "),
            installed.fixtures_passed
        );
        let activate_roles: Vec<Role> = if manifest.roles.is_empty() {
            installed.roles.iter().copied().collect()
        } else {
            manifest.roles.clone()
        };
        for connection in activate {
            for role in &activate_roles {
                registry.activate(connection, *role, &installed.id.to_string()).map_err(|e| e.to_string())?;
                out!("{} is now the {role} of connection {connection}", installed.id);
            }
        }
        Ok(())
    })
}
