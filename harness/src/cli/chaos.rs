//! `tekup-harness chaos`: the chaos suites (steady load while a fault
//! happens, then the invariants) against an ecosystem it starts.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::{out, say, StartArgs};
use crate::chaos::suite::{self, Plan, SuiteName};
use crate::env::Runtime;
use crate::scenario::parse_duration;

#[derive(Debug, Args)]
#[command(after_help = "\
Suites:
  redis-killed        Redis killed, held down, restarted, during lead creation
  postgres-restarted  Postgres killed, held down, restarted, during lead creation
  mock-flaky          Graph fails 50 % with 500s, then 50 % with 429s, during leads and email syncs
  gateway-partition   the gateway's link to Redis is down while events are subscribed
  crm-paused          the CRM API frozen (SIGSTOP), then thawed, while the worker links leads
  worker-killed       the worker SIGKILLed while it holds jobs, then started again
  flow-api-killed     the Flow API SIGKILLed while leads it stored await their answers
  crm-api-killed      the CRM API SIGKILLed while the worker's calls reach it
  gateway-restarted   the gateway restarted while subscribers listen; they resume

Each suite creates fresh tenants, keeps leads coming at a steady rate, injects
its fault once a share of the load is sent (--fault-at), heals it after --hold
(per phase) while the load goes on, and then checks, for as long as the
platform makes progress and at most --recovery without any (a lead processed,
a queue shorter, a breaker closed, an event delivered): no
accepted lead lost, one contact association and one activity per lead, no
contact twice, every lead and job processed or dead-lettered, queues drained,
breakers closed, no job dead-lettered during a fault shorter than its queue's
retry-span in the contract, and (gateway-partition, gateway-restarted) every
LEAD_CREATED delivered once to its own tenant only.

Refusals are judged by phase: before the fault only a 429; during it and for
--grace after the heal only what the fault explains (a 503 when Redis,
Postgres or flow-api itself is down; no answer when flow-api is killed); after
that only a 429. Every 429 and 503 must carry Retry-After; the load's clients
wait that long and send the lead again. The report breaks refusals down by
phase and status. Exit 1 when any invariant does not hold.

The default size is the one CI runs; --full is 1,000 leads at 50/s with 5 s
faults. postgres-restarted holds Postgres down 10 s in both (unless --hold).
Faults need the process or docker runtime.")]
pub(super) struct ChaosArgs {
    /// Suites to run (default: all of them).
    suites: Vec<String>,
    /// The full size: 1,000 leads at 50/s, faults held 5 s (Postgres 10 s).
    #[arg(long)]
    full: bool,
    /// Leads in all (overrides the size).
    #[arg(long)]
    leads: Option<usize>,
    /// Leads started per second.
    #[arg(long)]
    rate: Option<f64>,
    /// How long the fault (each phase of it) lasts, e.g. 5s.
    #[arg(long, value_parser = parse_duration)]
    hold: Option<Duration>,
    /// The share of the load sent before the fault, 0 to 1.
    #[arg(long)]
    fault_at: Option<f64>,
    /// How long after the heal the platform may still refuse, e.g. 5s.
    #[arg(long, value_parser = parse_duration)]
    grace: Option<Duration>,
    /// How long the checks after the load wait without progress before they
    /// give up (and ten times it in all), e.g. 60s.
    #[arg(long, value_parser = parse_duration)]
    recovery: Option<Duration>,
    /// Start the ecosystem file's optional Prometheus too (process or
    /// docker runtime), and list the alerts it fired during each suite.
    #[arg(long)]
    prometheus: bool,
    #[command(flatten)]
    start: StartArgs,
}

impl ChaosArgs {
    fn plan(&self, name: SuiteName) -> Result<Plan, String> {
        let mut plan = if self.full {
            Plan::full(name)
        } else {
            Plan::bounded(name)
        };
        if let Some(leads) = self.leads {
            plan.load.leads = leads;
        }
        if let Some(rate) = self.rate {
            if rate.is_nan() || rate <= 0.0 {
                return Err(format!("--rate must be above 0, not {rate}"));
            }
            plan.load.rate = rate;
        }
        if let Some(at) = self.fault_at {
            if !(0.0..=1.0).contains(&at) {
                return Err(format!(
                    "--fault-at is a share of the load, 0 to 1, not {at}"
                ));
            }
            plan.fault_at = at;
        }
        plan.hold = self.hold.unwrap_or(plan.hold);
        plan.recovery = self.recovery.unwrap_or(plan.recovery);
        plan.grace = self.grace.unwrap_or(plan.grace);
        Ok(plan)
    }
}

pub(super) fn run(args: ChaosArgs, rt: &tokio::runtime::Runtime) -> ExitCode {
    let names = if args.suites.is_empty() {
        SuiteName::ALL.to_vec()
    } else {
        match args
            .suites
            .iter()
            .map(|s| SuiteName::parse(s))
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(names) => names,
            Err(e) => {
                say(&format!("error: {e}"));
                return ExitCode::FAILURE;
            }
        }
    };
    if args.start.runtime == Runtime::External {
        say("error: chaos suites kill and partition components; an external deployment refuses that (use --runtime process or docker)");
        return ExitCode::FAILURE;
    }
    let mut plans = Vec::new();
    for &name in &names {
        match args.plan(name) {
            Ok(plan) => plans.push((name, plan)),
            Err(e) => {
                say(&format!("error: {e}"));
                return ExitCode::FAILURE;
            }
        }
    }
    if args.prometheus {
        crate::env::prometheus::ask();
    }
    let mut harness = match args.start.suite() {
        Ok(suite) => suite,
        Err(code) => return code,
    };
    // No suite witness: each chaos suite sets up its own witness.
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
        let mut failed = Vec::new();
        for (name, plan) in &plans {
            let progress = |line: &str| say(line);
            match suite::run(eco, *name, plan, &progress).await {
                Ok(report) => {
                    out(&report.summary());
                    if !report.passed() {
                        failed.push(name.as_str());
                    }
                }
                Err(e) => {
                    say(&format!("error: {e}"));
                    failed.push(name.as_str());
                }
            }
        }
        out(&format!(
            "{} passed, {} failed{}",
            plans.len() - failed.len(),
            failed.len(),
            if failed.is_empty() {
                String::new()
            } else {
                format!(" ({})", failed.join(", "))
            }
        ));
        if failed.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    })
}
