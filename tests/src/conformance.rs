//! The project's own runner for libiscsi's conformance suite (`iscsi-test-cu`).
//!
//! `iscsi-test-cu` runs CUnit suites against one LUN and prints, in verbose mode, a
//! `Suite:` line per suite and a `Test: NAME ...` line per test followed by its
//! messages and `passed` or `FAILED`. CUnit counts a test that printed `[SKIPPED]`
//! as passed; we do not, so that a suite that silently skips everything cannot look
//! green. Some targets (and some of our own bugs) make a test wait forever for an
//! answer, so each suite runs in its own process under an idle watchdog: a process
//! that prints nothing for [`Conformance::idle_timeout`] is killed, the test it was in
//! fails, and the rest of that suite is run test by test. A crash of `iscsi-test-cu`
//! likewise costs the test it was in, not the run.
//!
//! ```no_run
//! # use integration_tests::conformance::Conformance;
//! let report = Conformance::new("127.0.0.1:3260", "iqn.2026-11.test:t", 1)
//!     .patterns(&["SCSI.Read10", "SCSI.Write10.*"])
//!     .multipath()
//!     .run();
//! report.assert_no_failures();
//! println!("{}", report.summary());
//! ```

use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The outcome of one test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// CUnit said passed and the test printed no `[SKIPPED]`.
    Passed,
    /// CUnit said FAILED, or the process hung or died inside the test.
    Failed,
    /// The test passed in CUnit's eyes but printed `[SKIPPED]`: it did not run.
    Skipped,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Passed => "passed",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
        })
    }
}

/// One test's result: `Family.Suite.Test`, its status and, for a failure or a skip,
/// the first message that says why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestResult {
    /// `SCSI.Read10.Simple`.
    pub name: String,
    /// What happened.
    pub status: Status,
    /// The first `[FAILED]`/`[SKIPPED]` line, or the CUnit assertion that failed.
    pub reason: String,
}

/// How an `iscsi-test-cu` process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// It exited by itself with 0 or 1 (1: some test failed).
    Normally,
    /// The idle watchdog or the whole-process limit killed it.
    Hung,
    /// It died of a signal or exited with another code.
    Crashed,
}

/// Turn verbose `iscsi-test-cu` output into per-test results. `family` prefixes the
/// suite names (the tool prints `Suite: Read10`, not `SCSI.Read10`). A test the
/// output was still inside when the process ended fails with a reason saying how it
/// ended.
pub fn parse_output(text: &str, family: &str, ended: Ended) -> Vec<TestResult> {
    let mut p = Parser {
        family,
        suite: String::new(),
        current: None,
        messages: Vec::new(),
        results: Vec::new(),
        last_failed: None,
    };
    for raw in text.lines() {
        p.line(raw.trim());
    }
    if p.current.is_some() {
        let why = match ended {
            Ended::Hung => "[FAILED] hung: killed by the idle watchdog",
            Ended::Crashed => "[FAILED] iscsi-test-cu crashed",
            Ended::Normally => "[FAILED] the run ended inside this test",
        };
        p.messages.insert(0, why.to_string());
        p.close(Status::Failed);
    }
    p.results
}

struct Parser<'a> {
    family: &'a str,
    suite: String,
    current: Option<String>,
    messages: Vec<String>,
    results: Vec<TestResult>,
    /// The index of the result that just failed, to take the CUnit assertion line
    /// that the summary prints for it when no `[FAILED]` message said why.
    last_failed: Option<usize>,
}

impl Parser<'_> {
    fn line(&mut self, line: &str) {
        if let Some(rest) = line.strip_prefix("Suite: ") {
            self.close(Status::Passed);
            self.suite = rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string();
            return;
        }
        if let Some(rest) = line.strip_prefix("Test: ") {
            if let Some((name, after)) = rest.split_once(" ...") {
                self.close(Status::Passed);
                let name = name.trim();
                self.current = Some(if self.family.is_empty() {
                    format!("{}.{name}", self.suite)
                } else {
                    format!("{}.{}.{name}", self.family, self.suite)
                });
                let after = after.trim();
                if after.starts_with("passed") {
                    // Anything after it on the line is the next test's setup noise.
                    self.close(Status::Passed);
                } else if after.starts_with("FAILED") {
                    self.close(Status::Failed);
                } else if !after.is_empty() {
                    self.messages.push(after.to_string());
                }
                return;
            }
        }
        if line.starts_with("Run Summary") {
            self.close(Status::Passed);
            return;
        }
        if self.current.is_none() {
            self.assertion_line(line);
            return;
        }
        if line == "passed" || line.ends_with("...passed") {
            self.close(Status::Passed);
        } else if line == "FAILED" || line.ends_with("...FAILED") {
            self.close(Status::Failed);
        } else if line.starts_with("[SKIPPED]") || line.starts_with("[FAILED]") {
            self.messages.push(line.to_string());
        }
    }

    /// `1. test_read10_simple.c:70  - CU_ASSERT_EQUAL(...)` after a failure.
    fn assertion_line(&mut self, line: &str) {
        let Some(i) = self.last_failed else { return };
        let Some((num, rest)) = line.split_once(". ") else {
            return;
        };
        if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
            return;
        }
        if let Some((loc, assertion)) = rest.split_once(" - ") {
            if self.results[i].reason.is_empty() {
                self.results[i].reason = shorten(&format!("{} {}", loc.trim(), assertion.trim()));
            }
        }
    }

    fn close(&mut self, status: Status) {
        let Some(name) = self.current.take() else {
            return;
        };
        let failed = self.messages.iter().find(|m| m.starts_with("[FAILED]"));
        let skipped = self.messages.iter().find(|m| m.starts_with("[SKIPPED]"));
        let (status, reason) = match (status, failed, skipped) {
            (Status::Failed, f, _) => (Status::Failed, f.cloned().unwrap_or_default()),
            (_, None, Some(s)) => (Status::Skipped, s.clone()),
            (s, _, _) => (s, String::new()),
        };
        self.results.push(TestResult {
            name,
            status,
            reason: shorten(&reason),
        });
        self.last_failed = (status == Status::Failed).then_some(self.results.len() - 1);
        self.messages.clear();
    }
}

/// One line, at most 240 characters: enough to say why without a log dump.
fn shorten(s: &str) -> String {
    let one = s.split_whitespace().collect::<Vec<_>>().join(" ");
    one.chars().take(240).collect()
}

/// Shell-style glob with `*` and `?`, as `iscsi-test-cu` users write test patterns.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// The tests of `all` (`Family.Suite.Test` names, in the tool's order) that the
/// patterns select. A pattern is `FAMILY[.SUITE[.TEST]]` with globs and matches a
/// test by its whole name, its suite or its family. `ALL` (the tool's family that
/// repeats every SCSI and iSCSI test) maps onto `SCSI` and `iSCSI` so no test runs
/// twice; `LINUX` tests run only when a pattern names them.
pub fn select(all: &[String], patterns: &[String]) -> Vec<String> {
    let mut queries = Vec::new();
    for p in patterns {
        if p == "ALL" {
            queries.extend(["SCSI".to_string(), "iSCSI".to_string()]);
        } else if let Some(rest) = p.strip_prefix("ALL.") {
            queries.extend([format!("SCSI.{rest}"), format!("iSCSI.{rest}")]);
        } else {
            queries.push(p.clone());
        }
    }
    all.iter()
        .filter(|t| {
            let family = t.split('.').next().unwrap_or_default();
            let suite = t.rsplit_once('.').map(|(s, _)| s).unwrap_or_default();
            family != "ALL"
                && queries.iter().any(|q| {
                    (family != "LINUX" || q.starts_with("LINUX"))
                        && (glob_match(q, t) || glob_match(q, suite) || glob_match(q, family))
                })
        })
        .cloned()
        .collect()
}

/// Why a conformance run could not produce results at all.
#[derive(Debug)]
pub enum RunError {
    /// `iscsi-test-cu` could not be started or listed no tests.
    Tool(String),
    /// A pattern matched no test.
    NoMatch(Vec<String>),
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Tool(s) => write!(f, "iscsi-test-cu: {s}"),
            RunError::NoMatch(p) => write!(f, "no iscsi-test-cu test matches {p:?}"),
        }
    }
}

/// A conformance run's settings; [`Conformance::run`] runs it.
#[derive(Debug, Clone)]
pub struct Conformance {
    /// The program (default `iscsi-test-cu` from PATH).
    pub program: PathBuf,
    /// `iscsi://HOST:PORT/IQN/LUN`, and a second path for the MultipathIO tests.
    pub urls: Vec<String>,
    /// Which tests (default: every SCSI and iSCSI test).
    pub patterns: Vec<String>,
    /// `-d`: let the write tests write (the LUN's data is lost).
    pub dataloss: bool,
    /// `-S`: run the SANITIZE tests.
    pub sanitize: bool,
    /// `-i` / `-I`: the two initiator names (the reservation tests use both).
    pub initiators: (Option<String>, Option<String>),
    /// A process that prints nothing for this long is taken as hung.
    pub idle_timeout: Duration,
    /// The longest one process may run.
    pub unit_timeout: Duration,
    /// Log in with `iscsi-inq` first, so that an unreachable target fails every
    /// selected test at once instead of each after a timeout.
    pub preflight: bool,
    /// Where each process's log goes (default: a new directory under the temp dir).
    pub out_dir: Option<PathBuf>,
}

impl Conformance {
    /// Run against LUN `lun` of `iqn` at `portal` (`host:port`; CHAP as
    /// `user%secret@host:port`).
    pub fn new(portal: &str, iqn: &str, lun: u32) -> Conformance {
        Conformance {
            program: PathBuf::from("iscsi-test-cu"),
            urls: vec![format!("iscsi://{portal}/{iqn}/{lun}")],
            patterns: vec!["SCSI".into(), "iSCSI".into()],
            dataloss: true,
            sanitize: true,
            initiators: (None, None),
            idle_timeout: Duration::from_secs(60),
            unit_timeout: Duration::from_secs(600),
            preflight: true,
            out_dir: None,
        }
    }

    /// Select tests by pattern (see [`select`]).
    pub fn patterns(mut self, patterns: &[&str]) -> Self {
        self.patterns = patterns.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Give the same LUN as the second path, so the MultipathIO tests run over two
    /// sessions.
    pub fn multipath(mut self) -> Self {
        let first = self.urls[0].clone();
        self.urls.truncate(1);
        self.urls.push(first);
        self
    }

    /// The second path is `url` (another portal of the same LU).
    pub fn second_path(mut self, url: &str) -> Self {
        self.urls.truncate(1);
        self.urls.push(url.to_string());
        self
    }

    /// Set the idle watchdog.
    pub fn idle_timeout(mut self, t: Duration) -> Self {
        self.idle_timeout = t;
        self
    }

    /// Keep the logs in `dir`.
    pub fn out_dir(mut self, dir: &Path) -> Self {
        self.out_dir = Some(dir.to_path_buf());
        self
    }

    /// Run every selected test and return the report. Panics with the install hint
    /// when `iscsi-test-cu` is missing: a missing initiator is a failure.
    pub fn run(&self) -> Report {
        self.try_run().unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Conformance::run`], with the reasons it could not run as an error.
    pub fn try_run(&self) -> Result<Report, RunError> {
        let program = if self.program.components().count() == 1 {
            crate::require_tool(&self.program.to_string_lossy())
        } else {
            self.program.clone()
        };
        let out_dir = match &self.out_dir {
            Some(d) => d.clone(),
            None => {
                static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
                let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                std::env::temp_dir().join(format!("conformance-{}-{n}", std::process::id()))
            }
        };
        let logs = out_dir.join("logs");
        std::fs::create_dir_all(&logs).map_err(|e| RunError::Tool(format!("{logs:?}: {e}")))?;
        let all = list_tests(&program)?;
        let selected = select(&all, &self.patterns);
        if selected.is_empty() {
            return Err(RunError::NoMatch(self.patterns.clone()));
        }
        let mut report = Report {
            results: Vec::new(),
            logs: logs.clone(),
        };
        if self.preflight {
            if let Err(why) = self.preflight_login() {
                for t in &selected {
                    report.results.push(TestResult {
                        name: t.clone(),
                        status: Status::Failed,
                        reason: shorten(&format!("[FAILED] target unreachable: {why}")),
                    });
                }
                return Ok(report);
            }
        }
        let runner = Runner {
            program: &program,
            cfg: self,
            logs: &logs,
        };
        // One process per suite when the whole suite is selected, else per test.
        let mut suites: Vec<&str> = Vec::new();
        for t in &selected {
            let s = suite_of(t);
            if !suites.contains(&s) {
                suites.push(s);
            }
        }
        for suite in suites {
            let in_suite: Vec<&String> = all.iter().filter(|t| suite_of(t) == suite).collect();
            let chosen: Vec<&String> = selected.iter().filter(|t| suite_of(t) == suite).collect();
            if chosen.len() == in_suite.len() {
                let (results, ended) = runner.unit(suite);
                report.results.extend(results);
                if ended == Ended::Normally {
                    continue;
                }
                // Ended early: the tests with no result yet run one by one.
                for t in chosen {
                    if !report.has(t) {
                        report.results.extend(runner.unit(t).0);
                    }
                }
            } else {
                for t in chosen {
                    report.results.extend(runner.unit(t).0);
                }
            }
        }
        for t in &selected {
            if !report.has(t) {
                report.results.push(TestResult {
                    name: t.clone(),
                    status: Status::Failed,
                    reason: format!("[FAILED] no result (see {})", logs.display()),
                });
            }
        }
        Ok(report)
    }

    fn preflight_login(&self) -> Result<(), String> {
        let inq = crate::require_tool("iscsi-inq");
        let mut cmd = Command::new(inq);
        cmd.arg(&self.urls[0]);
        let (out, ended) = run_watched(
            &mut cmd,
            None,
            Duration::from_secs(20),
            Duration::from_secs(20),
        )
        .map_err(|e| e.to_string())?;
        match ended {
            Ended::Normally if out.0 == 0 => Ok(()),
            Ended::Hung => Err("iscsi-inq timed out".into()),
            _ => Err(out.1.trim().to_string()),
        }
    }
}

fn suite_of(t: &str) -> &str {
    t.rsplit_once('.').map(|(s, _)| s).unwrap_or(t)
}

/// `iscsi-test-cu -l`: every `Family.Suite.Test` name in the tool's order.
pub fn list_tests(program: &Path) -> Result<Vec<String>, RunError> {
    let out = Command::new(program)
        .arg("-l")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| RunError::Tool(format!("{}: {e}", program.display())))?;
    let all: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| l.split('.').count() == 3)
        .map(String::from)
        .collect();
    if all.is_empty() {
        return Err(RunError::Tool(format!(
            "{} -l listed no tests",
            program.display()
        )));
    }
    Ok(all)
}

struct Runner<'a> {
    program: &'a Path,
    cfg: &'a Conformance,
    logs: &'a Path,
}

impl Runner<'_> {
    /// Run one unit (a suite or a test) in its own process; its results and how it
    /// ended.
    fn unit(&self, unit: &str) -> (Vec<TestResult>, Ended) {
        let log = self.logs.join(format!("{unit}.log"));
        let mut cmd = Command::new(self.program);
        cmd.arg("-v");
        if self.cfg.dataloss {
            cmd.arg("-d");
        }
        if self.cfg.sanitize {
            cmd.arg("-S");
        }
        if let Some(i) = &self.cfg.initiators.0 {
            cmd.args(["-i", i]);
        }
        if let Some(i) = &self.cfg.initiators.1 {
            cmd.args(["-I", i]);
        }
        cmd.arg(format!("--test={unit}"))
            .args(&self.cfg.urls)
            .current_dir(self.logs);
        let ended = match run_watched(
            &mut cmd,
            Some(&log),
            self.cfg.idle_timeout,
            self.cfg.unit_timeout,
        ) {
            Ok((_, ended)) => ended,
            Err(e) => {
                let _ = std::fs::write(&log, format!("could not start: {e}\n"));
                Ended::Crashed
            }
        };
        let text = std::fs::read(&log).unwrap_or_default();
        let family = unit.split('.').next().unwrap_or_default();
        (
            parse_output(&String::from_utf8_lossy(&text), family, ended),
            ended,
        )
    }
}

/// Run `cmd` with its output in `log` (or captured), killing it when the output has
/// not grown for `idle` or the whole run exceeds `limit`. Returns (exit code, stderr
/// when captured) and how it ended.
fn run_watched(
    cmd: &mut Command,
    log: Option<&Path>,
    idle: Duration,
    limit: Duration,
) -> std::io::Result<((i32, String), Ended)> {
    let capture = std::env::temp_dir().join(format!(
        "conformance-watch-{}-{:?}.log",
        std::process::id(),
        std::thread::current().id()
    ));
    let path = log.unwrap_or(&capture).to_path_buf();
    let file = File::create(&path)?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .spawn()?;
    let start = Instant::now();
    let (mut last_size, mut last_change) = (0u64, Instant::now());
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if size != last_size {
            (last_size, last_change) = (size, Instant::now());
        }
        if last_change.elapsed() >= idle || start.elapsed() >= limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = if log.is_none() {
        let t = std::fs::read_to_string(&path).unwrap_or_default();
        let _ = std::fs::remove_file(&path);
        t
    } else {
        String::new()
    };
    Ok(match status {
        None => ((-1, text), Ended::Hung),
        Some(s) => match s.code() {
            Some(c @ (0 | 1)) => ((c, text), Ended::Normally),
            Some(c) => ((c, text), Ended::Crashed),
            None => ((-1, text), Ended::Crashed),
        },
    })
}

/// Every selected test's result and where the logs are.
#[derive(Debug, Clone)]
pub struct Report {
    /// One per selected test, in the order they ran.
    pub results: Vec<TestResult>,
    /// One log per `iscsi-test-cu` process, named after its suite or test.
    pub logs: PathBuf,
}

impl Report {
    fn has(&self, name: &str) -> bool {
        self.results.iter().any(|r| r.name == name)
    }

    fn with(&self, status: Status) -> Vec<&TestResult> {
        self.results.iter().filter(|r| r.status == status).collect()
    }

    /// The tests that passed.
    pub fn passed(&self) -> Vec<&TestResult> {
        self.with(Status::Passed)
    }

    /// The tests that failed, with why.
    pub fn failed(&self) -> Vec<&TestResult> {
        self.with(Status::Failed)
    }

    /// The tests that skipped themselves, with why.
    pub fn skipped(&self) -> Vec<&TestResult> {
        self.with(Status::Skipped)
    }

    /// `conformance: N passed, N failed, N skipped`.
    pub fn summary(&self) -> String {
        format!(
            "conformance: {} passed, {} failed, {} skipped",
            self.passed().len(),
            self.failed().len(),
            self.skipped().len()
        )
    }

    /// Panic when any test failed, naming each failed test with its reason and the
    /// log directory to read.
    pub fn assert_no_failures(&self) {
        let failed = self.failed();
        if failed.is_empty() && !self.results.is_empty() {
            return;
        }
        let mut msg = format!("{}; logs in {}\n", self.summary(), self.logs.display());
        for r in failed {
            msg.push_str(&format!("FAILED {}  {}\n", r.name, r.reason));
        }
        panic!("{msg}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const SAMPLE: &str = "\
Suite: Read10
  Test: Simple ...passed
  Test: BeyondEol ...
    [FAILED] READ10 beyond end of LUN did not fail
FAILED
  Test: ZeroBlocks ...
    [SKIPPED] READ10 is not implemented on this target
passed
  Test: Residuals ...
    Test READ10 with a residual
passed
Run Summary:    Type  Total    Ran Passed Failed Inactive
  1. test_read10_beyond_eol.c:70  - CU_ASSERT_EQUAL(ret,0)
";

    #[test]
    fn parses_passed_failed_and_skipped() {
        let r = parse_output(SAMPLE, "SCSI", Ended::Normally);
        let got: Vec<(&str, Status, &str)> = r
            .iter()
            .map(|t| (t.name.as_str(), t.status, t.reason.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("SCSI.Read10.Simple", Status::Passed, ""),
                (
                    "SCSI.Read10.BeyondEol",
                    Status::Failed,
                    "[FAILED] READ10 beyond end of LUN did not fail"
                ),
                (
                    "SCSI.Read10.ZeroBlocks",
                    Status::Skipped,
                    "[SKIPPED] READ10 is not implemented on this target"
                ),
                ("SCSI.Read10.Residuals", Status::Passed, ""),
            ]
        );
    }

    #[test]
    fn a_failure_without_message_takes_the_assertion() {
        let text = "Suite: Write10\n  Test: Flags ...FAILED\nRun Summary:\n  1. test_write10_flags.c:99  - CU_ASSERT_EQUAL(a,b)\n";
        let r = parse_output(text, "SCSI", Ended::Normally);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].status, Status::Failed);
        assert_eq!(r[0].reason, "test_write10_flags.c:99 CU_ASSERT_EQUAL(a,b)");
    }

    #[test]
    fn a_run_that_ends_inside_a_test_fails_it() {
        let text = "Suite: Nop\n  Test: A ...passed\n  Test: B ...\n";
        for (ended, why) in [
            (Ended::Hung, "hung"),
            (Ended::Crashed, "crashed"),
            (Ended::Normally, "ended inside"),
        ] {
            let r = parse_output(text, "iSCSI", ended);
            assert_eq!(r[0].status, Status::Passed);
            assert_eq!(r[1].name, "iSCSI.Nop.B");
            assert_eq!(r[1].status, Status::Failed);
            assert!(r[1].reason.contains(why), "{}", r[1].reason);
        }
    }

    #[test]
    fn globs_and_selection() {
        assert!(glob_match("SCSI.Read1*", "SCSI.Read10"));
        assert!(glob_match("*.Simple", "SCSI.Read10.Simple"));
        assert!(glob_match("SCSI.Read1?", "SCSI.Read16"));
        assert!(!glob_match("SCSI.Read1?", "SCSI.Read6"));
        assert!(!glob_match("SCSI.Read10", "SCSI.Read10.Simple"));
        let all: Vec<String> = [
            "ALL.Read10.Simple",
            "SCSI.Read10.Simple",
            "SCSI.Read10.BeyondEol",
            "SCSI.Read16.Simple",
            "iSCSI.Nop.A",
            "LINUX.Sg.A",
        ]
        .map(String::from)
        .to_vec();
        let s = |p: &[&str]| select(&all, &p.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            s(&["SCSI.Read10"]),
            ["SCSI.Read10.Simple", "SCSI.Read10.BeyondEol"]
        );
        assert_eq!(
            s(&["*.Simple"]),
            ["SCSI.Read10.Simple", "SCSI.Read16.Simple"]
        );
        assert_eq!(
            s(&["ALL"]),
            [
                "SCSI.Read10.Simple",
                "SCSI.Read10.BeyondEol",
                "SCSI.Read16.Simple",
                "iSCSI.Nop.A"
            ]
        );
        assert_eq!(s(&["LINUX"]), ["LINUX.Sg.A"]);
        assert!(s(&["SCSI.Nothing*"]).is_empty());
    }

    /// A stand-in for iscsi-test-cu: lists three suites; `Good` passes, `Hang`
    /// passes one test and then hangs in the next one (unless run test by test),
    /// `Crash` dies of SIGSEGV inside its first test.
    fn fake_tool(dir: &Path) -> PathBuf {
        let p = dir.join("fake-iscsi-test-cu");
        std::fs::write(
            &p,
            r#"#!/bin/sh
for a in "$@"; do case $a in --test=*) t=${a#--test=} ;; esac; done
case "$1" in -l) printf 'SCSI\nSCSI.Good\nSCSI.Good.One\nSCSI.Hang\nSCSI.Hang.First\nSCSI.Hang.Stuck\nSCSI.Hang.Last\nSCSI.Crash\nSCSI.Crash.Boom\n'; exit 0 ;; esac
case $t in
SCSI.Good) printf 'Suite: Good\n  Test: One ...passed\nRun Summary\n' ;;
SCSI.Hang) printf 'Suite: Hang\n  Test: First ...passed\n  Test: Stuck ...\n'; exec sleep 30 ;;
SCSI.Hang.Stuck) printf 'Suite: Hang\n  Test: Stuck ...\n'; exec sleep 30 ;;
SCSI.Hang.Last) printf 'Suite: Hang\n  Test: Last ...\n    [SKIPPED] no medium\npassed\nRun Summary\n' ;;
SCSI.Crash) printf 'Suite: Crash\n  Test: Boom ...\n'; kill -SEGV $$ ;;
*) echo "unexpected $t" >&2; exit 3 ;;
esac
"#,
        )
        .unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[test]
    fn hangs_and_crashes_cost_one_test_each() {
        let dir = crate::TempDir::new("conformance-unit");
        let mut c = Conformance::new("127.0.0.1:1", "iqn.x:y", 1)
            .idle_timeout(Duration::from_millis(700))
            .out_dir(&dir.path("out"));
        c.program = fake_tool(&dir.0);
        c.preflight = false;
        let started = Instant::now();
        let r = c.try_run().expect("run");
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the watchdog did not fire"
        );
        let got: Vec<(&str, Status)> = r
            .results
            .iter()
            .map(|t| (t.name.as_str(), t.status))
            .collect();
        assert_eq!(
            got,
            vec![
                ("SCSI.Good.One", Status::Passed),
                ("SCSI.Hang.First", Status::Passed),
                ("SCSI.Hang.Stuck", Status::Failed),
                ("SCSI.Hang.Last", Status::Skipped),
                ("SCSI.Crash.Boom", Status::Failed),
            ]
        );
        assert_eq!(r.summary(), "conformance: 2 passed, 2 failed, 1 skipped");
        assert!(r.failed()[0].reason.contains("hung"), "{:?}", r.failed());
        assert!(r.failed()[1].reason.contains("crashed"), "{:?}", r.failed());
        assert!(r.logs.join("SCSI.Hang.log").exists());
        let msg = std::panic::catch_unwind(|| r.assert_no_failures())
            .expect_err("must panic")
            .downcast::<String>()
            .expect("message");
        assert!(
            msg.contains("FAILED SCSI.Hang.Stuck") && msg.contains("logs in"),
            "{msg}"
        );
    }

    #[test]
    fn no_matching_test_is_an_error() {
        let dir = crate::TempDir::new("conformance-nomatch");
        let mut c = Conformance::new("127.0.0.1:1", "iqn.x:y", 1).patterns(&["SCSI.Nope"]);
        c.program = fake_tool(&dir.0);
        c.preflight = false;
        c.out_dir = Some(dir.path("out"));
        assert!(matches!(c.try_run(), Err(RunError::NoMatch(_))));
    }
}
