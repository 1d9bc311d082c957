//! `tekup-harness sweep`: attacks every surface of the platform, generated
//! from its contract and OpenAPI documents (see [`crate::sweep`]).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::{out, say, StartArgs};
use crate::report::{self, Format};
use crate::sweep::{self, Class, Operations, Size, Target};

#[derive(Debug, Args)]
#[command(after_help = "\
Classes:
  access    every operation (the gateway's handshake too) x every app x own tenant,
            another tenant, a suspended tenant, a revoked key, a key of A with the
            id of B, missing or duplicated headers: the status the matrix implies
  inputs    every body field missing, null, mistyped, empty, oversized, with control
            characters, lone surrogates, bidi marks, SQL/HTML/path-traversal strings,
            huge numbers, unknown fields, another tenant's ids: a 4xx, never a 5xx
  limits    junk does not grow the metric series; slow and idle connections are
            closed; oversized WebSocket frames are refused; no oversized log line
  database  as the services' role: RLS enabled and forced on every tenant table, no
            view or SECURITY DEFINER function around it, no identity-table writes
  tokens    cross-app token rules (lifetime, iat, algorithm, audience, issuer), no
            long-lived token in the repository, webhook signatures and replays

Expectations come from the contract (fixtures/platform.yaml, or --contract) and
the services' OpenAPI documents (contract/*.json, or --openapi DIR), never from
the services' code. Each finding prints the smallest request that shows it as a
curl line (keys redacted) and as a scenario step. Reports go to
<reports-dir>/sweep/ (junit.xml, report.json, report.html). Exit 1 on a finding.")]
pub(super) struct SweepArgs {
    /// Classes to run (default: all of them).
    classes: Vec<String>,
    /// Every case of every input family, not a sample per field.
    #[arg(long)]
    full: bool,
    /// Directory of the services' OpenAPI documents (one *.json per service).
    #[arg(long, default_value = "contract")]
    openapi: PathBuf,
    /// Report formats (junit, json, html).
    #[arg(long, default_value = "junit,json,html", value_parser = Format::parse_list)]
    report: Vec<Vec<Format>>,
    #[command(flatten)]
    start: StartArgs,
}

pub(super) fn run(args: SweepArgs, rt: &tokio::runtime::Runtime) -> ExitCode {
    let classes = if args.classes.is_empty() {
        Class::ALL.to_vec()
    } else {
        match args.classes.iter().map(|c| Class::parse(c)).collect() {
            Ok(classes) => classes,
            Err(e) => {
                say(&format!("error: {e}"));
                return ExitCode::FAILURE;
            }
        }
    };
    let operations = match Operations::load_dir(&args.openapi) {
        Ok(ops) => ops,
        Err(e) => {
            say(&format!("error: {e}"));
            say("hint: give the services' OpenAPI documents with --openapi DIR (contract/ holds the reference services')");
            return ExitCode::FAILURE;
        }
    };
    let size = if args.full { Size::Full } else { Size::Bounded };
    let formats: Vec<Format> = args.report.into_iter().flatten().collect();
    let mut harness = match args.start.suite() {
        Ok(suite) => suite,
        Err(code) => return code,
    };
    // No suite witness: the sweep is not a run of scenarios; it keeps no witness.
    harness.witness = false;
    rt.block_on(async {
        let runner = match harness.runner().await {
            Ok(runner) => runner,
            Err(e) => {
                say(&format!("error: {e}"));
                return ExitCode::FAILURE;
            }
        };
        let eco = runner.ecosystem();
        let target = match Target::from_ecosystem(eco, operations, size).await {
            Ok(t) => t,
            Err(e) => {
                say(&format!("error: {e}"));
                return ExitCode::FAILURE;
            }
        };
        say(&format!(
            "sweep: {} operations of {} services, contract {}",
            target.operations.list.len(),
            target.operations.documents.len(),
            target.contract.source
        ));
        let report = sweep::run(&target, &classes, &|line| say(line)).await;
        for finding in report.findings() {
            out(&finding.to_string());
            out("");
        }
        out(&report.summary());
        let dir = args.start.reports_dir.join("sweep");
        match report::write(
            &report.to_run_report(eco.runtime().as_str()),
            &dir,
            &formats,
        ) {
            Ok(paths) => {
                for p in paths {
                    say(&format!("report: {}", p.display()));
                }
            }
            Err(e) => say(&format!("error: failed to write the reports: {e}")),
        }
        drop(runner);
        if let Some(tenants) = harness.finish(Vec::new(), 1, &[]).await.tenants {
            say(&tenants.describe());
        }
        if report.clean() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    })
}
