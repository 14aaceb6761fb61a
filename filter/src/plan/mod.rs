//! Stage 3: what a request sends, as values: the calls, the nodes they go to, their bodies.

pub(crate) mod calls;
pub mod insertion;
pub mod partition;
pub(crate) mod passthrough;
pub(crate) mod scatter;
pub mod search_body;
