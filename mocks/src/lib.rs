#![doc = include_str!("../README.md")]

pub mod admin;
pub mod cli;
mod error;
mod expect;
mod faults;
pub mod gemini;
pub mod graph;
mod ids;
mod journal;
mod net;
mod openai;
mod schema;
pub mod script;
mod server;
pub mod stripe;
mod tls;

pub use error::MockError;
pub use expect::{Expectation, ExpectationSpec, Outcome, Times};
pub use faults::{parse_duration, Fault, FaultKind, FaultSet, FaultSpec, HeaderScope};
pub use gemini::{Gemini, GeminiBuilder};
pub use graph::{Graph, GraphBuilder, GraphSeed};
pub use journal::{Journal, RecordedRequest};
pub use openai::{OpenAi, OpenAiBuilder};
pub use script::Script;
pub use server::MockServer;
pub use stripe::{stripe_signature, Stripe, StripeBuilder};
pub use tls::TestCa;
/// wiremock's matchers, for [`Expectation::given`].
pub use wiremock::matchers;

pub(crate) use openai::embed as openai_embed;
