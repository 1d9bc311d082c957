//! The step kinds: one module per kind, each behind one trait
//! ([`KindDef`]), registered in one table ([`step_kinds!`] below).
//!
//! A kind's module holds everything about it: its data (what the runner
//! executes), its decoder (with `file:line:col` errors), its JSON Schema
//! (generated from the same key tables the decoder accepts), the one-line
//! label shown in progress and reports, how long it waits by its nature,
//! what it needs of the ecosystem, whether it changes what other scenarios
//! share, and how it runs against a [`StepCx`]: the small context that
//! gives it the run's values and records the time it spent waiting on the
//! system, the components it involved and what to clean up.
//!
//! Adding a kind is one new file and one line in the table; the decoder,
//! the schema, the runner and the reports pick it up from there.
//! `docs/ARCHITECTURE.md` walks through an example.

use std::time::Duration;

use serde_json::Value;

use super::model::Need;
use super::read::Cx;
pub(crate) use super::run::{StepCx, StepError};
use super::vars::Scope;
use super::yaml::Node;

pub(crate) mod chaos;
pub(crate) mod eventually;
pub(crate) mod http;
pub(crate) mod mock;
pub(crate) mod redis;
mod sleep;
pub(crate) mod sql;
pub(crate) mod stripe;
pub(crate) mod trace;
pub(crate) mod ws;

/// What a step kind is: the trait each kind's module implements.
///
/// `run` is an `async fn`: the table below dispatches statically, so the
/// runner's futures stay `Send` without boxing every step.
pub(crate) trait KindDef: Sized {
    /// The key that names the kind in a file (`http`).
    const NAME: &'static str;
    /// What the kind does, in one sentence: the schema's description of it.
    const ABOUT: &'static str;
    /// Whether `eventually` may retry it and `fail-fast-on` check with it.
    const RETRIED: bool = false;

    /// Decodes the value under the kind's key. Reports every problem to `cx`
    /// with its position; `None` when the step cannot be used. Names the
    /// step saves or opens are added to `scope` for the steps after it.
    fn decode(cx: &mut Cx<'_>, node: &Node, scope: &mut Scope) -> Option<Self>;

    /// The JSON Schema of the value under the kind's key.
    fn schema() -> Value;

    /// One line saying what the step does (progress, failures, reports).
    fn label(&self) -> String;

    /// How long the step waits by its nature (`within`, `for`), added to
    /// its deadline.
    fn natural_wait(&self) -> Duration {
        Duration::ZERO
    }

    /// What the step needs of the ecosystem beyond the services' HTTP and
    /// WebSocket APIs (which every runtime offers); `None` for nothing more.
    fn needs(&self) -> Option<Need> {
        None
    }

    /// Whether the step changes what other scenarios share (a fault, a
    /// mock's answers): its scenario then runs with the ecosystem alone.
    fn alone(&self) -> bool {
        false
    }

    /// What the step changes, if it acts rather than checks (`changes a
    /// mock`): `fail-fast-on` only takes steps that check.
    fn acts(&self) -> Option<&'static str> {
        None
    }

    /// Runs the step once (`eventually` runs its inner step again and
    /// again through this).
    async fn run(&self, cx: &mut StepCx<'_, '_>) -> Result<(), StepError>;
}

/// The table of step kinds, in the order the documentation lists them:
/// `Variant(Type)`, where `Type` implements [`KindDef`]. It makes the
/// [`StepKind`] enum and everything that goes from a kind's name or value
/// to its module.
macro_rules! step_kinds {
    ($($variant:ident($ty:ty),)*) => {
        /// What a step does: one variant per kind, each kind's own type.
        #[derive(Debug, Clone, PartialEq)]
        #[expect(
            clippy::large_enum_variant,
            reason = "steps are decoded once per file and borrowed while they run, never moved in bulk"
        )]
        pub enum StepKind {
            $($variant($ty),)*
        }

        /// The keys of the step kinds, in the table's order.
        pub const STEP_KINDS: &[&str] = &[$(<$ty as KindDef>::NAME,)*];

        /// The kinds `eventually` retries (and `fail-fast-on` checks
        /// with), in the table's order.
        pub(crate) fn retried_kinds() -> Vec<&'static str> {
            let mut kinds = Vec::new();
            $(if <$ty as KindDef>::RETRIED {
                kinds.push(<$ty as KindDef>::NAME);
            })*
            kinds
        }

        /// Decodes the value of a step of the kind `name` (a known kind:
        /// the caller checked it against [`STEP_KINDS`]).
        pub(crate) fn decode(
            name: &str,
            cx: &mut Cx<'_>,
            node: &Node,
            scope: &mut Scope,
        ) -> Option<StepKind> {
            $(if name == <$ty as KindDef>::NAME {
                return <$ty as KindDef>::decode(cx, node, scope).map(StepKind::$variant);
            })*
            None
        }

        /// Each kind's name, description and schema, in the table's order.
        pub(crate) fn schemas() -> Vec<(&'static str, &'static str, Value)> {
            vec![$((<$ty as KindDef>::NAME, <$ty as KindDef>::ABOUT, <$ty as KindDef>::schema()),)*]
        }

        impl StepKind {
            /// The key that names the kind in a file.
            pub fn name(&self) -> &'static str {
                match self {
                    $(StepKind::$variant(_) => <$ty as KindDef>::NAME,)*
                }
            }

            /// What the step needs of the ecosystem beyond the services'
            /// HTTP and WebSocket APIs (which every runtime offers); `None`
            /// for nothing more. The runner skips a scenario with a step
            /// whose need the ecosystem does not meet (an external
            /// deployment without a database DSN, say) rather than failing it.
            pub fn needs(&self) -> Option<Need> {
                match self {
                    $(StepKind::$variant(s) => s.needs(),)*
                }
            }

            /// Whether the step changes what other scenarios share.
            pub fn alone(&self) -> bool {
                match self {
                    $(StepKind::$variant(s) => s.alone(),)*
                }
            }

            /// One line saying what the step does.
            pub fn label(&self) -> String {
                match self {
                    $(StepKind::$variant(s) => s.label(),)*
                }
            }

            /// How long the step waits by its nature.
            pub fn natural_wait(&self) -> Duration {
                match self {
                    $(StepKind::$variant(s) => s.natural_wait(),)*
                }
            }

            /// What the step changes, if it acts rather than checks.
            pub(crate) fn acts(&self) -> Option<&'static str> {
                match self {
                    $(StepKind::$variant(s) => s.acts(),)*
                }
            }

            /// Runs the step once.
            pub(crate) async fn run(&self, cx: &mut StepCx<'_, '_>) -> Result<(), StepError> {
                match self {
                    $(StepKind::$variant(s) => s.run(cx).await,)*
                }
            }
        }
    };
}

step_kinds! {
    Http(http::HttpStep),
    Ws(ws::WsStep),
    Eventually(eventually::EventuallyStep),
    Sql(sql::SqlStep),
    Redis(redis::RedisStep),
    Mock(mock::MockStep),
    Stripe(stripe::StripeStep),
    Trace(trace::TraceStep),
    Chaos(chaos::ChaosStep),
    Sleep(Duration),
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{retried_kinds, schemas, STEP_KINDS};
    use crate::scenario::parse_str;

    /// Every kind in the table decodes through its own module: a value of
    /// the wrong shape is that kind's error, at the value, never another
    /// kind's step (a kind once missing from a decoder arm decoded as `sleep`).
    #[test]
    fn every_kind_reports_its_own_errors_at_the_value() {
        for kind in STEP_KINDS {
            let text = format!("name: k\nsteps:\n  - {kind}: [1, 2]\n");
            let err = parse_str(Path::new("k.yaml"), &text)
                .expect_err(&format!("`{kind}: [1, 2]` is refused"));
            let first = &err.0[0];
            assert_eq!(
                (first.pos.line, first.pos.col),
                (3, 11 + kind.len() - 4),
                "{kind}: {first}"
            );
            let says = format!("{}\n{}", first.message, first.hint);
            assert!(
                says.contains(kind) || (*kind == "sleep" && says.contains("duration")),
                "{kind}: the error does not name the kind: {first}"
            );
        }
    }

    /// The schema has every kind under `$defs`, with its description, and
    /// a step may hold exactly the table's kinds beside `timeout`, `name`
    /// and `because`.
    #[test]
    fn the_schema_is_the_tables() {
        let schema = crate::scenario::schema();
        for (name, about, _) in schemas() {
            assert_eq!(schema["$defs"][name]["description"], about, "{name}");
            assert!(!about.is_empty(), "{name} has no description");
        }
        let step = &schema["$defs"]["step"]["anyOf"][0]["properties"];
        let mut keys: Vec<&str> = step
            .as_object()
            .expect("step properties")
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        let mut want: Vec<&str> = STEP_KINDS.to_vec();
        want.extend(["timeout", "name", "because"]);
        want.sort_unstable();
        assert_eq!(keys, want);
        let eventually = &schema["$defs"]["eventually"]["properties"];
        for kind in retried_kinds() {
            assert!(eventually.get(kind).is_some(), "eventually retries {kind}");
        }
        assert!(eventually.get("chaos").is_none() && eventually.get("sleep").is_none());
    }
}
