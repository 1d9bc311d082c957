//! Reports of a scenario run: JUnit XML for CI, JSON, and a self-contained
//! HTML page with a sequence diagram of what actually happened.

pub mod model;

pub use model::*;
