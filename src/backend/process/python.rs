//! Python runtimes on the process backend: which interpreter runs `python3.<minor>`.
//!
//! Each `python3.X` runtime runs a Python 3.X that can `import awslambdaric`. It is
//! resolved once per emulator to an absolute path, and that path is what every environment
//! spawns: the function's own `PATH` (Lambda's `/var/lang/bin:/usr/local/bin:...`) plays
//! no part in finding it. The candidates, in order:
//!
//! 1. `EmulatorBuilder::python_for(Runtime::Python3X, ..)`, else `LAMBDA_TESTKIT_PYTHON_3_X`:
//!    when given, the only candidate, and it must work;
//! 2. `EmulatorBuilder::python(..)`, else `LAMBDA_TESTKIT_PYTHON`, when its version is 3.X;
//! 3. `python3.X`, then `python3`, on the emulator's own `PATH` (an activated venv);
//! 4. the venv `lambda-testkit doctor --fix` makes, `<cache>/python/venv-3.X/bin/python`
//!    (`~/.cache/lambda-testkit` by default);
//! 5. pyenv's `$PYENV_ROOT/versions/3.X.*/bin/python3.X` (default `~/.pyenv`), newest first;
//! 6. uv's `<uv python dir>/cpython-3.X.*/bin/python3.X`, newest first.
//!
//! The first that is Python 3.X and imports awslambdaric runs the runtime ([`choose`], a
//! pure function with the rules; [`resolve`] lists and probes the candidates). When there
//! is none the deploy fails, naming every candidate and why it was passed over, and how to
//! provide one. Only when the nearest-version fallback is allowed
//! (`EmulatorBuilder::python_fallback(true)`, `LAMBDA_TESTKIT_PYTHON_FALLBACK=nearest`) does
//! the closest other version with awslambdaric run instead (the newer on a tie); each cold
//! start's log and tracing then say which version ran, as do
//! `FunctionConfig::runtime_version` and `Stats::runtime_fallback`.
//!
//! A pyenv shim found on `PATH` is replaced by the interpreter it ran (`sys.executable`),
//! so the environment does not depend on pyenv's version selection.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use crate::config;
use crate::deploy::{Runtime, RuntimeVersion};
use crate::error::BackendError;

/// The Python settings given to the emulator's builder; the variables are read at resolve.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PythonSettings {
    /// `EmulatorBuilder::python`: an interpreter for whichever `python3.X` its version is.
    pub(crate) any: Option<PathBuf>,
    /// `EmulatorBuilder::python_for`: one runtime's interpreter, by minor version.
    pub(crate) by_minor: BTreeMap<u32, PathBuf>,
    /// `EmulatorBuilder::python_fallback`; `None`: `LAMBDA_TESTKIT_PYTHON_FALLBACK`.
    pub(crate) fallback: Option<bool>,
    /// `EmulatorBuilder::python_fork_server`; `None`: `LAMBDA_TESTKIT_PYTHON_FORK_SERVER`.
    pub(crate) fork_server: Option<bool>,
}

/// Where a candidate interpreter came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// `EmulatorBuilder::python_for`.
    BuilderFor,
    /// `LAMBDA_TESTKIT_PYTHON_3_<minor>`.
    VersionVariable(u32),
    /// `EmulatorBuilder::python`.
    Builder,
    /// `LAMBDA_TESTKIT_PYTHON`.
    Variable,
    /// This program name, found on the emulator's `PATH`.
    Path(String),
    /// The venv `lambda-testkit doctor --fix` made in the cache.
    Cache,
    /// A pyenv installation.
    Pyenv,
    /// A uv-managed installation.
    Uv,
}

impl Source {
    /// Named for one runtime by the user: then it is the only candidate for that runtime.
    fn explicit(&self) -> bool {
        matches!(self, Source::BuilderFor | Source::VersionVariable(_))
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::BuilderFor => f.write_str("EmulatorBuilder::python_for"),
            Source::VersionVariable(minor) => f.write_str(&config::python_version_env_var(*minor)),
            Source::Builder => f.write_str("EmulatorBuilder::python"),
            Source::Variable => f.write_str(config::PYTHON_ENV),
            Source::Path(name) => write!(f, "{name} on PATH"),
            Source::Cache => f.write_str("lambda-testkit doctor's venv"),
            Source::Pyenv => f.write_str("pyenv"),
            Source::Uv => f.write_str("uv"),
        }
    }
}

/// An interpreter that may run `python3.<minor>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub(crate) source: Source,
    /// An absolute path (as found or given; symlinks are not followed, so a venv stays one).
    pub(crate) path: PathBuf,
    /// The minor version it was named or looked for as.
    pub(crate) minor: u32,
}

/// What running a candidate showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Probe {
    /// It did not start, or did not answer as a Python does.
    NotPython(String),
    /// A Python of `version`.
    Python {
        /// `(3, 12, 1)`.
        version: (u32, u32, u32),
        /// What to spawn: the candidate's path, or for a pyenv shim the interpreter it ran.
        interpreter: PathBuf,
        /// Whether `import awslambdaric` works; else the error it printed.
        client: Result<(), String>,
    },
}

impl Probe {
    /// The version, when it is a Python that imports awslambdaric.
    fn usable(&self) -> Option<(u32, u32, u32)> {
        match self {
            Probe::Python {
                version,
                client: Ok(()),
                ..
            } => Some(*version),
            _ => None,
        }
    }

    /// Whether it can run `python3.<minor>`: a Python 3.`minor` that imports awslambdaric.
    fn runs(&self, minor: u32) -> bool {
        self.usable().is_some_and(|v| v.0 == 3 && v.1 == minor)
    }
}

/// The interpreter that runs a Python runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Choice {
    pub(crate) interpreter: PathBuf,
    pub(crate) version: (u32, u32, u32),
    pub(crate) source: Source,
    /// Not the version the runtime names (the nearest-version fallback).
    pub(crate) fallback: bool,
}

/// The rules, without I/O: which of the `probed` candidates runs `python3.<minor>`.
///
/// An explicit candidate for `minor` (builder's `python_for`, `LAMBDA_TESTKIT_PYTHON_3_X`)
/// decides alone: it runs if it is 3.`minor` with awslambdaric, else nothing does. Otherwise
/// the first usable 3.`minor` in list order runs; failing that, with `nearest`, the usable
/// candidate of the closest minor version (the newer on a tie, the earlier in the list
/// among equals). `Err` holds why each candidate was passed over.
pub(crate) fn choose(
    minor: u32,
    probed: &[(Candidate, Probe)],
    nearest: bool,
) -> Result<Choice, Vec<String>> {
    let choice = |(candidate, probe): &(Candidate, Probe), fallback| match probe {
        Probe::Python {
            version,
            interpreter,
            ..
        } => Choice {
            interpreter: interpreter.clone(),
            version: *version,
            source: candidate.source.clone(),
            fallback,
        },
        Probe::NotPython(_) => unreachable!("only usable candidates are chosen"),
    };
    let exact = |entry: &&(Candidate, Probe)| entry.1.runs(minor);
    if let Some(explicit) = probed
        .iter()
        .find(|(c, _)| c.source.explicit() && c.minor == minor)
    {
        return if exact(&explicit) {
            Ok(choice(explicit, false))
        } else {
            Err(vec![passed_over(minor, explicit)])
        };
    }
    if let Some(found) = probed.iter().find(exact) {
        return Ok(choice(found, false));
    }
    if nearest
        && let Some(found) = probed
            .iter()
            .filter_map(|entry| entry.1.usable().filter(|v| v.0 == 3).map(|v| (entry, v.1)))
            .min_by_key(|(_, m)| (m.abs_diff(minor), std::cmp::Reverse(*m)))
    {
        return Ok(choice(found.0, true));
    }
    Err(probed.iter().map(|e| passed_over(minor, e)).collect())
}

/// Why a candidate does not run `python3.<minor>`, for the deploy error.
fn passed_over(minor: u32, (candidate, probe): &(Candidate, Probe)) -> String {
    let who = format!("`{}` ({})", candidate.path.display(), candidate.source);
    match probe {
        Probe::NotPython(why) => format!("{who}: {why}"),
        Probe::Python {
            version: (major, m, p),
            client: Ok(()),
            ..
        } => format!("{who} is Python {major}.{m}.{p}"),
        Probe::Python {
            version: (major, m, p),
            client,
            interpreter,
        } => {
            let why = client.as_ref().err().map_or("", String::as_str);
            let install = if (*major, *m) == (3, minor) {
                format!(
                    ", which `{} -m pip install awslambdaric` installs",
                    interpreter.display()
                )
            } else {
                String::new()
            };
            format!("{who} is Python {major}.{m}.{p} without awslambdaric ({why}{install})")
        }
    }
}

/// The resolved interpreter of one Python runtime on this emulator.
#[derive(Debug, Clone)]
pub(crate) struct PythonRuntime {
    pub(crate) interpreter: PathBuf,
    /// What the runtime's config and stats report.
    pub(crate) version: RuntimeVersion,
    /// The line each cold start's log gets when another version runs (the fallback).
    pub(crate) fallback_note: Option<String>,
}

/// Why no interpreter runs a runtime, kept per emulator (the error is built per call).
#[derive(Debug, Clone)]
pub(crate) struct Unavailable {
    runtime: Runtime,
    tried: Vec<String>,
}

impl Unavailable {
    /// Each candidate and why it was passed over (and where nothing was found).
    pub(crate) fn tried(&self) -> &[String] {
        &self.tried
    }

    pub(crate) fn error(&self) -> BackendError {
        let minor = self.runtime.python_minor().unwrap_or_default();
        BackendError::PythonUnavailable {
            runtime: self.runtime.to_string(),
            version: format!("3.{minor}"),
            variable: config::python_version_env_var(minor),
            tried: self.tried.join("; "),
        }
    }
}

/// Resolves the interpreter of `runtime` (a `python3.*`): lists the candidates, probes them
/// in order until one runs it, and applies [`choose`]. Blocking (it runs interpreters; each
/// path is probed once per process).
pub(crate) fn resolve(
    runtime: Runtime,
    settings: &PythonSettings,
) -> Result<PythonRuntime, Unavailable> {
    let minor = runtime
        .python_minor()
        .expect("resolve is asked for python runtimes");
    let unavailable = |tried| Unavailable { runtime, tried };
    let nearest = match settings.fallback {
        Some(allowed) => allowed,
        None => config::python_fallback()
            .map_err(|e| unavailable(vec![e]))?
            .unwrap_or(false),
    };
    let (listed, mut not_found) = candidates(minor, settings);
    let mut probed: Vec<(Candidate, Probe)> = Vec::new();
    let mut seen = HashSet::new();
    for candidate in listed {
        if !seen.insert(candidate.path.clone()) {
            continue;
        }
        let probe = probe(&candidate.path);
        let done = candidate.source.explicit() || probe.runs(minor);
        probed.push((candidate, probe));
        if done {
            break;
        }
    }
    let explicit = probed.iter().any(|(c, _)| c.source.explicit());
    let exact = probed.iter().any(|(_, p)| p.runs(minor));
    if nearest && !explicit && !exact {
        // Every other version's candidates, so the nearest can be chosen.
        for other in python_minors().filter(|m| *m != minor) {
            for candidate in candidates(other, settings).0 {
                if seen.insert(candidate.path.clone()) {
                    let probe = probe(&candidate.path);
                    probed.push((candidate, probe));
                }
            }
        }
    }
    let choice = choose(minor, &probed, nearest).map_err(|mut tried| {
        if !explicit {
            not_found.append(&mut tried);
            tried = not_found;
        }
        unavailable(tried)
    })?;
    let (major, m, patch) = choice.version;
    let version = RuntimeVersion {
        language: "Python".to_string(),
        version: format!("{major}.{m}.{patch}"),
        program: choice.interpreter.clone(),
        found_by: choice.source.to_string(),
        fallback: choice.fallback,
    };
    let fallback_note = choice.fallback.then(|| {
        format!(
            "lambda-testkit: {runtime} is running on {version}: no Python 3.{minor} with awslambdaric was found, and the nearest-version fallback is on (EmulatorBuilder::python_fallback or {}=nearest)",
            config::PYTHON_FALLBACK_ENV
        )
    });
    match &fallback_note {
        Some(note) => tracing::warn!("{note}"),
        None => tracing::info!("{runtime} runs {version}"),
    }
    Ok(PythonRuntime {
        interpreter: choice.interpreter,
        version,
        fallback_note,
    })
}

/// The minor versions of the Python runtimes, oldest first.
fn python_minors() -> impl Iterator<Item = u32> {
    Runtime::all().iter().filter_map(|r| r.python_minor())
}

/// The candidates for `python3.<minor>` in order, and where nothing was found (for the
/// error). An explicit one (builder's `python_for`, then `LAMBDA_TESTKIT_PYTHON_3_X`) is
/// the only candidate.
fn candidates(minor: u32, settings: &PythonSettings) -> (Vec<Candidate>, Vec<String>) {
    let candidate = |source, path: PathBuf| Candidate {
        source,
        path: absolute(&path),
        minor,
    };
    if let Some(path) = settings.by_minor.get(&minor) {
        return (
            vec![candidate(Source::BuilderFor, path.clone())],
            Vec::new(),
        );
    }
    if let Some(path) = config::python_version(minor) {
        return (
            vec![candidate(Source::VersionVariable(minor), path)],
            Vec::new(),
        );
    }
    let mut found = Vec::new();
    let mut not_found = vec![format!(
        "{} is not set",
        config::python_version_env_var(minor)
    )];
    match (&settings.any, config::python()) {
        (Some(path), _) => found.push(candidate(Source::Builder, path.clone())),
        (None, Some(path)) => found.push(candidate(Source::Variable, path)),
        (None, None) => {}
    }
    let (mut searched, mut missing) = searched(minor);
    found.append(&mut searched);
    not_found.append(&mut missing);
    (found, not_found)
}

/// The candidates for `python3.<minor>` no setting names: on `PATH`, doctor's venv,
/// pyenv, uv; and where nothing was found.
fn searched(minor: u32) -> (Vec<Candidate>, Vec<String>) {
    let candidate = |source, path: PathBuf| Candidate {
        source,
        path: absolute(&path),
        minor,
    };
    let mut found = Vec::new();
    let mut not_found = Vec::new();
    for name in [format!("python3.{minor}"), "python3".to_string()] {
        match find_on_path(&name) {
            Some(path) => found.push(candidate(Source::Path(name), path)),
            None => not_found.push(format!("no `{name}` on PATH")),
        }
    }
    if let Some(venv) = config::python_venv(minor) {
        let python = venv.join("bin/python");
        if super::is_executable(&python) {
            found.push(candidate(Source::Cache, python));
        } else {
            not_found.push(format!("no venv at {}", venv.display()));
        }
    }
    let installs = [
        (
            Source::Pyenv,
            config::pyenv_root().map(|r| r.join("versions")),
        ),
        (Source::Uv, config::uv_python_dir()),
    ];
    for (source, dir) in installs {
        let Some(dir) = dir else { continue };
        let prefix = match source {
            Source::Uv => "cpython-",
            _ => "",
        };
        let paths = installed(&dir, prefix, minor);
        if paths.is_empty() {
            not_found.push(format!("no {source} Python 3.{minor} in {}", dir.display()));
        }
        found.extend(paths.into_iter().map(|p| candidate(source.clone(), p)));
    }
    (found, not_found)
}

/// The Python 3.`minor` interpreters found without any setting (on `PATH`, pyenv, uv; not
/// doctor's own venv), awslambdaric or not, as the paths they run: what a venv for that
/// version can be made from. Blocking (it probes them).
pub(crate) fn interpreters(minor: u32) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = Vec::new();
    for candidate in searched(minor).0 {
        if candidate.source == Source::Cache {
            continue;
        }
        if let Probe::Python {
            version: (3, m, _),
            interpreter,
            ..
        } = probe(&candidate.path)
            && m == minor
            && !found.contains(&interpreter)
        {
            found.push(interpreter);
        }
    }
    found
}

/// Forgets what every probe found, for a caller that just changed the interpreters (doctor
/// after `--fix`).
pub(crate) fn forget_probes() {
    probes().lock().unwrap_or_else(|e| e.into_inner()).clear();
}

fn probes() -> &'static Mutex<HashMap<PathBuf, Probe>> {
    static PROBED: OnceLock<Mutex<HashMap<PathBuf, Probe>>> = OnceLock::new();
    PROBED.get_or_init(Default::default)
}

/// `<dir>/<prefix>3.<minor>.<patch>[-...]/bin/python3.<minor>`, newest patch first.
fn installed(dir: &Path, prefix: &str, minor: u32) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let want = format!("{prefix}3.{minor}.");
    let mut found: Vec<(u32, PathBuf)> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let rest = name.strip_prefix(&want)?;
            // `3.12.1`, `cpython-3.12.7-linux-x86_64-gnu`; not `3.12.1t` (free-threaded) or
            // `3.12-dev`.
            let patch = rest.split('-').next()?.parse().ok()?;
            let python = entry.path().join(format!("bin/python3.{minor}"));
            super::is_executable(&python).then_some((patch, python))
        })
        .collect();
    found.sort_by_key(|b| std::cmp::Reverse(b.0));
    found.into_iter().map(|(_, p)| p).collect()
}

/// `path` made absolute: a bare name is looked up on the emulator's `PATH` (as a shell
/// would), a relative path is taken from the working directory.
fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        return path.to_path_buf();
    }
    if path.components().count() == 1
        && let Some(found) = path.to_str().and_then(find_on_path)
    {
        return found;
    }
    std::env::current_dir()
        .map(|cwd| cwd.join(path))
        .unwrap_or_else(|_| path.to_path_buf())
}

/// The first executable `name` on the emulator's `PATH`, as an absolute path.
fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    let cwd = std::env::current_dir().ok();
    std::env::split_paths(&path)
        .map(|dir| match (&cwd, dir.is_absolute()) {
            (Some(cwd), false) => cwd.join(dir).join(name),
            _ => dir.join(name),
        })
        .find(|p| super::is_executable(p))
}

/// Runs `path` once (per process): its version, `sys.executable`, and whether
/// `import awslambdaric` works. It runs with the search paths an environment gets
/// (`PATH`, `LD_LIBRARY_PATH` with the host's appended), not the emulator's whole
/// environment, so what the probe sees is what the runtime will see.
fn probe(path: &Path) -> Probe {
    let mut probed = probes().lock().unwrap_or_else(|e| e.into_inner());
    probed
        .entry(path.to_path_buf())
        .or_insert_with(|| run_probe(path))
        .clone()
}

fn run_probe(path: &Path) -> Probe {
    const SCRIPT: &str = "import sys\nprint('%d.%d.%d' % sys.version_info[:3])\nprint(sys.executable)\nsys.stdout.flush()\nimport awslambdaric\n";
    let host = |name: &str| {
        std::env::var_os(name)
            .map(|v| {
                let mut s = OsString::from(":");
                s.push(v);
                s
            })
            .unwrap_or_default()
    };
    let mut search = OsString::from("/usr/local/bin:/usr/bin:/bin");
    search.push(host("PATH"));
    let mut command = std::process::Command::new(path);
    command
        .args(["-c", SCRIPT])
        .env_clear()
        .env("PATH", search)
        .env("LANG", "en_US.UTF-8")
        .stdin(std::process::Stdio::null());
    if let Some(libraries) = std::env::var_os("LD_LIBRARY_PATH") {
        command.env("LD_LIBRARY_PATH", libraries);
    }
    let out = match super::unbusy(|| command.output()) {
        Ok(out) => out,
        Err(e) => return Probe::NotPython(format!("does not start: {e}")),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut lines = stdout.lines();
    let version = lines.next().and_then(|v| {
        let mut parts = v.trim().split('.').map(|p| p.parse::<u32>().ok());
        Some((parts.next()??, parts.next()??, parts.next()??))
    });
    let Some(version) = version else {
        return Probe::NotPython(match first_line(&out.stderr) {
            Some(line) => format!("not a Python interpreter ({line})"),
            None => format!("not a Python interpreter ({})", out.status),
        });
    };
    let executable = lines.next().map(str::trim).map(PathBuf::from);
    let interpreter = match executable {
        Some(real) if real.is_absolute() && is_pyenv_shim(path) => real,
        _ => path.to_path_buf(),
    };
    let client = if out.status.success() {
        Ok(())
    } else {
        Err(last_line(&out.stderr).unwrap_or_else(|| out.status.to_string()))
    };
    Probe::Python {
        version,
        interpreter,
        client,
    }
}

/// A pyenv shim: a script that runs whichever interpreter pyenv selects at the time.
fn is_pyenv_shim(path: &Path) -> bool {
    let mut head = [0u8; 512];
    let n = std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .unwrap_or(0);
    let head = &head[..n];
    const PYENV: &[u8] = b"libexec/pyenv";
    head.starts_with(b"#!") && head.windows(PYENV.len()).any(|w| w == PYENV)
}

/// The first line a program wrote to stderr that says something (e.g. a pyenv shim's
/// `pyenv: python3.12: command not found`).
fn first_line(stderr: &[u8]) -> Option<String> {
    String::from_utf8_lossy(stderr)
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_string)
}

/// The last line a program wrote to stderr that says something (Python: the exception).
fn last_line(stderr: &[u8]) -> Option<String> {
    String::from_utf8_lossy(stderr)
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(source: Source, path: &str, minor: u32) -> Candidate {
        Candidate {
            source,
            path: path.into(),
            minor,
        }
    }

    fn python(minor: u32, client: bool) -> Probe {
        Probe::Python {
            version: (3, minor, 4),
            interpreter: format!("/real/python3.{minor}").into(),
            client: if client {
                Ok(())
            } else {
                Err("ModuleNotFoundError: No module named 'awslambdaric'".into())
            },
        }
    }

    fn path(name: &str) -> Source {
        Source::Path(name.to_string())
    }

    #[test]
    fn the_first_interpreter_of_the_runtimes_version_with_awslambdaric_runs_it() {
        let probed = [
            (
                candidate(Source::Variable, "/venv311/bin/python", 12),
                python(11, true),
            ),
            (
                candidate(path("python3.12"), "/usr/bin/python3.12", 12),
                python(12, false),
            ),
            (
                candidate(Source::Pyenv, "/pyenv/3.12.4/bin/python3.12", 12),
                python(12, true),
            ),
            (
                candidate(Source::Uv, "/uv/3.12/bin/python3.12", 12),
                python(12, true),
            ),
        ];
        let choice = choose(12, &probed, false).unwrap();
        assert_eq!(choice.source, Source::Pyenv);
        assert_eq!(choice.interpreter, Path::new("/real/python3.12"));
        assert_eq!(choice.version, (3, 12, 4));
        assert!(!choice.fallback);
    }

    #[test]
    fn without_the_runtimes_version_nothing_runs_and_each_candidate_says_why() {
        let probed = [
            (
                candidate(Source::Variable, "/venv311/bin/python", 12),
                python(11, true),
            ),
            (
                candidate(path("python3.12"), "/usr/bin/python3.12", 12),
                python(12, false),
            ),
            (
                candidate(path("python3"), "/usr/bin/false", 12),
                Probe::NotPython("not a Python interpreter (exit status: 1)".into()),
            ),
        ];
        let tried = choose(12, &probed, false).unwrap_err();
        assert_eq!(
            tried,
            [
                "`/venv311/bin/python` (LAMBDA_TESTKIT_PYTHON) is Python 3.11.4",
                "`/usr/bin/python3.12` (python3.12 on PATH) is Python 3.12.4 without awslambdaric (ModuleNotFoundError: No module named 'awslambdaric', which `/real/python3.12 -m pip install awslambdaric` installs)",
                "`/usr/bin/false` (python3 on PATH): not a Python interpreter (exit status: 1)",
            ]
        );
    }

    #[test]
    fn an_explicit_interpreter_for_the_runtime_decides_alone() {
        let broken = [
            (
                candidate(Source::VersionVariable(12), "/venv312/bin/python", 12),
                python(12, false),
            ),
            (
                candidate(Source::Pyenv, "/pyenv/3.12.4/bin/python3.12", 12),
                python(12, true),
            ),
        ];
        let tried = choose(12, &broken, true).unwrap_err();
        assert_eq!(tried.len(), 1, "{tried:?}");
        assert!(
            tried[0].contains("(LAMBDA_TESTKIT_PYTHON_3_12) is Python 3.12.4 without awslambdaric")
        );

        let other_version = [(
            candidate(Source::BuilderFor, "/venv311/bin/python", 12),
            python(11, true),
        )];
        let tried = choose(12, &other_version, true).unwrap_err();
        assert_eq!(
            tried,
            ["`/venv311/bin/python` (EmulatorBuilder::python_for) is Python 3.11.4"]
        );
    }

    #[test]
    fn the_nearest_version_runs_only_when_the_fallback_is_allowed() {
        let probed = [
            (
                candidate(Source::Variable, "/venv39/bin/python", 12),
                python(9, true),
            ),
            (
                candidate(Source::Pyenv, "/pyenv/3.11/bin/python3.11", 11),
                python(11, true),
            ),
            (
                candidate(Source::Pyenv, "/pyenv/3.13/bin/python3.13", 13),
                python(13, true),
            ),
            (
                candidate(Source::Pyenv, "/pyenv/3.12/bin/python3.12", 12),
                python(12, false),
            ),
        ];
        assert!(choose(12, &probed, false).is_err());
        let choice = choose(12, &probed, true).unwrap();
        assert_eq!(choice.version, (3, 13, 4), "the newer of two equally near");
        assert!(choice.fallback);
        let choice = choose(10, &probed, true).unwrap();
        assert_eq!(choice.version, (3, 11, 4));
        assert_eq!(choose(9, &probed, true).unwrap().version, (3, 9, 4));
        assert!(!choose(9, &probed, true).unwrap().fallback);
    }

    #[test]
    fn an_explicit_interpreter_for_another_version_can_be_the_nearest() {
        let probed = [(
            candidate(Source::VersionVariable(13), "/venv313/bin/python", 13),
            python(13, true),
        )];
        let choice = choose(12, &probed, true).unwrap();
        assert_eq!((choice.version.1, choice.fallback), (13, true));
    }

    #[test]
    fn installations_are_found_by_minor_version_newest_patch_first() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "3.12.1",
            "3.12.10",
            "3.12.3t",
            "3.1.2",
            "3.13.0",
            "cpython-3.12.7-linux-x86_64-gnu",
        ] {
            let bin = dir.path().join(name).join("bin");
            std::fs::create_dir_all(&bin).unwrap();
            let minor = if name.contains("3.13") { "13" } else { "12" };
            let python = bin.join(format!("python3.{minor}"));
            std::fs::write(&python, "").unwrap();
            std::fs::set_permissions(&python, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
        }
        let found = installed(dir.path(), "", 12);
        let names: Vec<_> = found
            .iter()
            .map(|p| {
                p.strip_prefix(dir.path())
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(names, ["3.12.10/bin/python3.12", "3.12.1/bin/python3.12"]);
        let uv = installed(dir.path(), "cpython-", 12);
        assert_eq!(uv.len(), 1);
        assert!(uv[0].ends_with("cpython-3.12.7-linux-x86_64-gnu/bin/python3.12"));
    }

    /// A shell script answering the probe as a Python of `version` would, with or without
    /// awslambdaric.
    fn fake_python(dir: &Path, version: &str, client: bool) -> PathBuf {
        let fake = dir.join(format!("python-{version}"));
        let import = if client {
            "exit 0".to_string()
        } else {
            "echo \"ModuleNotFoundError: No module named 'awslambdaric'\" >&2; exit 1".to_string()
        };
        std::fs::write(
            &fake,
            format!("#!/bin/sh\necho {version}\necho /somewhere/else/python\n{import}\n"),
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        fake
    }

    #[test]
    fn the_probe_reads_the_version_and_keeps_the_path_it_ran() {
        let dir = tempfile::tempdir().unwrap();
        let fake = fake_python(dir.path(), "3.12.9", false);
        let Probe::Python {
            version,
            interpreter,
            client,
        } = run_probe(&fake)
        else {
            panic!("a python")
        };
        assert_eq!(version, (3, 12, 9));
        assert_eq!(interpreter, fake, "not a pyenv shim: the path itself runs");
        assert_eq!(
            client.unwrap_err(),
            "ModuleNotFoundError: No module named 'awslambdaric'"
        );
        assert!(matches!(
            run_probe(Path::new("/nonexistent/python3")),
            Probe::NotPython(ref e) if e.starts_with("does not start")
        ));
        assert!(matches!(
            run_probe(Path::new("/bin/false")),
            Probe::NotPython(ref e) if e.starts_with("not a Python interpreter")
        ));
    }

    #[test]
    fn an_explicit_interpreter_that_cannot_run_the_runtime_is_a_deploy_error_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let settings = PythonSettings {
            by_minor: [(12, fake_python(dir.path(), "3.12.9", false))].into(),
            fallback: Some(true),
            ..Default::default()
        };
        let err = resolve(Runtime::Python312, &settings)
            .unwrap_err()
            .error()
            .to_string();
        assert!(
            err.starts_with("python3.12 cannot run: no Python 3.12 interpreter with awslambdaric"),
            "{err}"
        );
        assert!(
            err.contains("(EmulatorBuilder::python_for) is Python 3.12.9 without awslambdaric"),
            "{err}"
        );
        assert!(err.contains("-m pip install awslambdaric"), "{err}");
        assert!(err.contains("LAMBDA_TESTKIT_PYTHON_3_12"), "{err}");
        assert!(
            err.contains("LAMBDA_TESTKIT_PYTHON_FALLBACK=nearest"),
            "{err}"
        );
    }

    #[test]
    fn an_explicit_interpreter_of_the_runtimes_version_with_awslambdaric_runs_it() {
        let dir = tempfile::tempdir().unwrap();
        let fake = fake_python(dir.path(), "3.13.2", true);
        let settings = PythonSettings {
            by_minor: [(13, fake.clone())].into(),
            ..Default::default()
        };
        let resolved = resolve(Runtime::Python313, &settings).unwrap();
        assert_eq!(resolved.interpreter, fake);
        assert_eq!(resolved.version.version, "3.13.2");
        assert_eq!(resolved.version.found_by, "EmulatorBuilder::python_for");
        assert!(resolved.fallback_note.is_none());
    }

    #[test]
    fn pyenv_shims_are_recognised() {
        let dir = tempfile::tempdir().unwrap();
        let shim = dir.path().join("python3");
        std::fs::write(
            &shim,
            "#!/usr/bin/env bash\nset -e\nexport PYENV_ROOT=\"/root/.pyenv\"\nexec \"/root/.pyenv/libexec/pyenv\" exec \"$program\" \"$@\"\n",
        )
        .unwrap();
        assert!(is_pyenv_shim(&shim));
        assert!(!is_pyenv_shim(&fake_python(dir.path(), "3.11.1", true)));
    }
}
