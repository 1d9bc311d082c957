//! The `sleep` step: waits for a fixed time. A scenario rarely needs it
//! (`eventually` and `expect-none ... for` wait on conditions); it is for
//! letting a period pass on purpose, e.g. a token's lifetime.

use std::time::Duration;

use serde_json::Value as Json;

use super::{KindDef, StepCx, StepError};
use crate::scenario::read::{duration, Cx};
use crate::scenario::schema;
use crate::scenario::vars::Scope;
use crate::scenario::yaml::Node;

impl KindDef for Duration {
    const NAME: &'static str = "sleep";
    const ABOUT: &'static str =
        "Waits for a fixed time (`sleep: 2s`); prefer `eventually`, which waits on a condition.";

    fn decode(cx: &mut Cx<'_>, node: &Node, _scope: &mut Scope) -> Option<Self> {
        duration(cx, node, "sleep")
    }

    fn schema() -> Json {
        schema::duration()
    }

    fn label(&self) -> String {
        format!("sleep {self:?}")
    }

    fn natural_wait(&self) -> Duration {
        *self
    }

    async fn run(&self, cx: &mut StepCx<'_, '_>) -> Result<(), StepError> {
        cx.waiting(tokio::time::sleep(*self)).await;
        Ok(())
    }
}
